// Software Toeplitz hash, bit-exact with what RSS NICs compute (Microsoft RSS spec).
//
// Used where Sluice must predict the queue a NIC will pick: choosing fullnat SNAT ports whose
// replies land on the owning worker, deciding a nat flow's owner, and spreading replayed
// captures over worker queues in the harness. The table form costs one 256-entry lookup per
// input byte; Toeplitz is linear over XOR, so contributions of separate fields can be combined.
// Thread contract: immutable after construction; safe to share.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::net {

constexpr size_t kRssKeyLen = 40;
// The key most NICs and DPDK's testpmd use by default (Microsoft RSS verification suite).
extern const std::array<uint8_t, kRssKeyLen> kDefaultRssKey;

// Reference bit-serial implementation (the definition; used by tests as the oracle).
uint32_t toeplitz_ref(const uint8_t* key, size_t key_len, const uint8_t* in, size_t len) noexcept;

class Toeplitz {
public:
    static constexpr size_t kMaxInput = 36;  // IPv6 addresses + ports
    explicit Toeplitz(const std::array<uint8_t, kRssKeyLen>& key = kDefaultRssKey);

    // Hash of `len` bytes placed at byte offset `pos` of the input (other bytes zero).
    uint32_t hash_at(size_t pos, const uint8_t* in, size_t len) const noexcept {
        uint32_t h = 0;
        for (size_t i = 0; i < len; ++i) h ^= table_[(pos + i) * 256 + in[i]];
        return h;
    }
    uint32_t hash(const uint8_t* in, size_t len) const noexcept { return hash_at(0, in, len); }

    // Standard RSS inputs: (src, dst[, sport, dport]) with addresses of addr_len (4 or 16) bytes
    // and ports as they lie in memory (network order).
    uint32_t hash_tuple(const uint8_t* src, const uint8_t* dst, size_t addr_len, uint16_t sport_raw,
                        uint16_t dport_raw) const noexcept;
    uint32_t hash_addrs(const uint8_t* src, const uint8_t* dst, size_t addr_len) const noexcept {
        return hash_at(0, src, addr_len) ^ hash_at(addr_len, dst, addr_len);
    }

private:
    std::vector<uint32_t> table_;  // kMaxInput * 256 entries
};

// The redirection table a NIC applies to the hash: queue = reta[hash % size].
struct Reta {
    static constexpr uint32_t kSize = 128;
    std::array<uint16_t, kSize> entries{};
    static Reta round_robin(uint16_t nb_queues) noexcept {
        Reta r;
        for (uint32_t i = 0; i < kSize; ++i) r.entries[i] = static_cast<uint16_t>(i % (nb_queues ? nb_queues : 1));
        return r;
    }
    uint16_t queue(uint32_t hash) const noexcept { return entries[hash % kSize]; }
};

}  // namespace sluice::net
