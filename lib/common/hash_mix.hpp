// Unkeyed mixing: the golden-ratio multipliers and flow_mix, for every table whose contents
// outsiders do not choose (and for Maglev, whose choices every instance must share). Tables
// an outsider can fill hash with a secret key instead (lib/lb/flow_hash.hpp).
// Thread contract: none needed (constants and pure functions).
#pragma once

#include <cstdint>

namespace sluice {

// 2^64 / phi and 2^32 / phi, rounded to odd: multiplying by them spreads consecutive inputs
// evenly (Fibonacci hashing; a Weyl sequence), and the high bits of the product are the well
// mixed ones.
constexpr uint64_t kGoldenRatio64 = 0x9E3779B97F4A7C15ull;
constexpr uint32_t kGoldenRatio32 = 0x9E3779B9u;
// The prime closest to 2^32 / phi (Knuth's multiplicative hashing constant).
constexpr uint32_t kGoldenPrime32 = 0x9E3779B1u;

// murmur3's 64-bit finaliser (fmix64): a bijection on 64-bit words in which every input bit
// affects every output bit. Not keyed, so anyone who knows an input knows its output: where
// an outsider picks the input, its result only ever feeds a keyed hash (it folds a word into
// another without losing entropy: IPv6 flow and fragment keys), never a bucket on its own.
inline uint64_t flow_mix(uint64_t h) noexcept {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

}  // namespace sluice
