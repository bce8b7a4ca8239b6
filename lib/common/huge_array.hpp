// A large, zero-filled array of trivially constructible elements in anonymous memory that
// asks the kernel for transparent huge pages (madvise(MADV_HUGEPAGE)).
//
// Flow tables are tens of MiB and every lookup lands on a random line of them: with 4 KiB
// pages nearly every packet also misses the TLB. 2 MiB pages (where THP is "always" or
// "madvise", Debian's default) let the TLB cover the whole table. Without THP it is plain
// anonymous memory, as before. The mapping is 2 MiB-aligned so every page can be huge.
// Thread contract: none (plain owner object).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

namespace sluice {

template <class T>
class HugeArray {
    static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);

public:
    static constexpr size_t kHugePage = size_t{2} << 20;

    HugeArray() = default;
    explicit HugeArray(size_t n) {
        bytes_ = (n * sizeof(T) + kHugePage - 1) / kHugePage * kHugePage;
        if (bytes_ == 0) bytes_ = kHugePage;
        // Over-map by one huge page and trim, so the kept range starts on a 2 MiB boundary.
        void* raw = mmap(nullptr, bytes_ + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) throw std::bad_alloc();
        const auto start = reinterpret_cast<uintptr_t>(raw);
        const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
        if (aligned > start) munmap(raw, aligned - start);
        if (const uintptr_t end = start + bytes_ + kHugePage; end > aligned + bytes_)
            munmap(reinterpret_cast<void*>(aligned + bytes_), end - (aligned + bytes_));
        data_ = reinterpret_cast<T*>(aligned);
        madvise(data_, bytes_, MADV_HUGEPAGE);  // advice only: 4 KiB pages if THP is off
    }
    ~HugeArray() {
        if (data_) munmap(data_, bytes_);
    }
    HugeArray(const HugeArray&) = delete;
    HugeArray& operator=(const HugeArray&) = delete;
    HugeArray(HugeArray&& o) noexcept : data_(o.data_), bytes_(o.bytes_) { o.data_ = nullptr; }
    HugeArray& operator=(HugeArray&& o) noexcept {
        if (this != &o) {
            if (data_) munmap(data_, bytes_);
            data_ = o.data_;
            bytes_ = o.bytes_;
            o.data_ = nullptr;
        }
        return *this;
    }

    T* get() const noexcept { return data_; }
    size_t bytes() const noexcept { return bytes_; }  // as mapped: whole 2 MiB pages
    T& operator[](size_t i) const noexcept { return data_[i]; }

private:
    T* data_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace sluice
