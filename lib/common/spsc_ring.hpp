// A bounded single-producer single-consumer ring of trivially copyable values.
//
// For events a worker hands to the control core (the flow log) without DPDK: the producer
// never blocks and never allocates; when the ring is full, push() fails and the caller counts
// the loss. Head and tail live on their own cache lines.
// Thread contract: exactly one thread calls push(), exactly one (another) calls pop().
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>

namespace sluice {

template <class T>
class SpscRing {
    static_assert(std::is_trivially_copyable_v<T>);

public:
    // capacity is rounded up to a power of two.
    explicit SpscRing(size_t capacity) {
        size_t n = 2;
        while (n < capacity) n *= 2;
        mask_ = n - 1;
        slots_ = std::make_unique<T[]>(n);
    }

    bool push(const T& v) noexcept {
        const size_t t = tail_.load(std::memory_order_relaxed);
        if (t - head_.load(std::memory_order_acquire) > mask_) return false;
        slots_[t & mask_] = v;
        tail_.store(t + 1, std::memory_order_release);
        return true;
    }
    bool pop(T& out) noexcept {
        const size_t h = head_.load(std::memory_order_relaxed);
        if (h == tail_.load(std::memory_order_acquire)) return false;
        out = slots_[h & mask_];
        head_.store(h + 1, std::memory_order_release);
        return true;
    }

private:
    alignas(64) std::atomic<size_t> head_{0};
    alignas(64) std::atomic<size_t> tail_{0};
    alignas(64) size_t mask_ = 0;
    std::unique_ptr<T[]> slots_;
};

}  // namespace sluice
