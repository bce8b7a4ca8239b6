// Internet checksum: full computation (RFC 1071) and incremental update (RFC 1624).
//
// The data path rewrites addresses and ports in place and patches the existing checksums
// with RFC 1624 eqn. 3 (HC' = ~(~HC + ~m + m')), which is exact, including for the 0xFFFF/0
// corner cases, and costs a few adds per changed word instead of a pass over the payload.
// Operands are raw memory-order 16-bit words: one's-complement sums are byte-order neutral.
// Thread contract: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::net {

// One's-complement sum of len bytes, folded to 32 bits (not complemented).
uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t sum = 0) noexcept;

inline uint16_t csum_fold(uint32_t sum) noexcept {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// Complemented checksum of a buffer (what goes into an IPv4 header csum field).
inline uint16_t csum(const uint8_t* data, size_t len) noexcept {
    return static_cast<uint16_t>(~csum_fold(csum_partial(data, len)));
}

// A sum folded to 16 bits with end-around carry: the same one's-complement value, in the
// range a single add to a 16-bit word can take without a second fold.
inline uint16_t csum_fold64(uint64_t s) noexcept {
    s = (s & 0xFFFFFFFF) + (s >> 32);
    s = (s & 0xFFFFFFFF) + (s >> 32);
    return csum_fold(static_cast<uint32_t>(s));
}

// RFC 1624 eqn. 3 accumulated: note every changed word as ~m + m', then patch a checksum once
// (HC' = ~(~HC + sum)). The data path sums all of a packet's rewrites this way and folds once
// per checksum instead of once per field.
struct CsumDelta {
    uint64_t sum = 0;
    void change16(uint16_t old_raw, uint16_t new_raw) noexcept { sum += static_cast<uint16_t>(~old_raw) + new_raw; }
    // A 32-bit field as two words: one's-complement sums fold 32-bit words just as well.
    void change32(uint32_t old_raw, uint32_t new_raw) noexcept { sum += uint64_t{~old_raw} + new_raw; }
    void change_bytes(const uint8_t* old_p, const uint8_t* new_p, size_t len) noexcept;  // len % 4 == 0
    CsumDelta& operator+=(const CsumDelta& o) noexcept {
        sum += o.sum;
        return *this;
    }
    uint16_t apply(uint16_t hc) const noexcept {
        return static_cast<uint16_t>(~csum_fold64(static_cast<uint16_t>(~hc) + sum));
    }
};

// RFC 1624 eqn. 3 with the changes already summed and folded (sum16 <= 0xFFFF): one add and
// one fold (the sum is at most 0x1FFFE, which folds to at most 0xFFFF). Gives exactly what
// CsumDelta::apply gives for the unfolded sum, both being the end-around fold of the same
// positive integer.
inline uint16_t csum_apply16(uint16_t hc, uint16_t sum16) noexcept {
    uint32_t s = static_cast<uint32_t>(static_cast<uint16_t>(~hc)) + sum16;
    s = (s & 0xFFFF) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

// Single-field forms: update checksum `hc` (raw field value) when a 16-bit word, a 32-bit value
// or a 128-bit address (raw bytes) changes from old to new.
inline uint16_t csum_update16(uint16_t hc, uint16_t old_w, uint16_t new_w) noexcept {
    CsumDelta d;
    d.change16(old_w, new_w);
    return d.apply(hc);
}
inline uint16_t csum_update32(uint16_t hc, uint32_t old_w, uint32_t new_w) noexcept {
    CsumDelta d;
    d.change32(old_w, new_w);
    return d.apply(hc);
}
uint16_t csum_update128(uint16_t hc, const uint8_t* old_addr, const uint8_t* new_addr) noexcept;

// Pseudo-header sums (RFC 793 / RFC 8200 §8.1), not complemented, for full L4 checksums.
uint32_t pseudo_sum_v4(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint16_t l4_len) noexcept;
uint32_t pseudo_sum_v6(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len) noexcept;

}  // namespace sluice::net
