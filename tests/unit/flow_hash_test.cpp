// Tests for lib/lb/flow_hash: SipHash-1-3 is SipHash (checked through a byte-oriented
// reference, itself checked against the SipHash-2-4 vector of the paper), both implementations
// depend on the key, and keys an attacker crafted to collide under the old CRC32-C spread
// evenly over the buckets.
#include "lib/lb/flow_hash.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

namespace {

using sluice::lb::HashKey;
using sluice::lb::KeyedHash;

uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

// SipHash-c-d over bytes, written from the paper (Aumasson & Bernstein 2012, section 2).
uint64_t siphash_ref(int c, int d, uint64_t k0, uint64_t k1, const uint8_t* m, size_t len) {
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL, v2 = k0 ^ 0x6c7967656e657261ULL,
             v3 = k1 ^ 0x7465646279746573ULL;
    auto round = [&] {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
    };
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = 0;
        for (int b = 0; b < 8; ++b) w |= uint64_t{m[i + b]} << (8 * b);
        v3 ^= w;
        for (int r = 0; r < c; ++r) round();
        v0 ^= w;
    }
    uint64_t last = uint64_t{len & 0xff} << 56;
    for (size_t b = 0; i + b < len; ++b) last |= uint64_t{m[i + b]} << (8 * b);
    v3 ^= last;
    for (int r = 0; r < c; ++r) round();
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < d; ++r) round();
    return v0 ^ v1 ^ v2 ^ v3;
}

HashKey key_of(uint64_t seed) {
    HashKey k;
    for (int i = 0; i < 8; ++i) k.w[i] = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) * 0xD6E8FEB86659FD93ull;
    return k;
}

}  // namespace

TEST_CASE("flow hash: the reference SipHash gives the paper's SipHash-2-4 vector", "[flow_hash]") {
    // Key 00..0f, message 00..0e (15 bytes): 0xa129ca6149be45e5 (paper, appendix A).
    uint8_t msg[15];
    for (int i = 0; i < 15; ++i) msg[i] = static_cast<uint8_t>(i);
    CHECK(siphash_ref(2, 4, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, 15) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("flow hash: the portable implementation is SipHash-1-3 of the key words", "[flow_hash]") {
    const HashKey k = key_of(7);
    const KeyedHash h(k, /*allow_aes=*/false);
    CHECK(h.impl() == KeyedHash::Impl::siphash);
    for (uint64_t i = 0; i < 1000; ++i) {
        const uint64_t w[3] = {i * 0x0123456789ABCDEFull, ~i, i << 17};
        uint8_t bytes[24];
        std::memcpy(bytes, w, 24);  // little-endian words, as SipHash reads them
        CHECK(h(w[0]) == siphash_ref(1, 3, k.w[0], k.w[1], bytes, 8));
        CHECK(h(w[0], w[1]) == siphash_ref(1, 3, k.w[0], k.w[1], bytes, 16));
        CHECK(h(w[0], w[1], w[2]) == siphash_ref(1, 3, k.w[0], k.w[1], bytes, 24));
    }
}

TEST_CASE("flow hash: both implementations depend on every part of the key and the input", "[flow_hash]") {
    for (const bool aes : {true, false}) {
        const KeyedHash a(key_of(1), aes), b(key_of(2), aes);
        INFO((a.impl() == KeyedHash::Impl::aes ? "aes" : "siphash"));
        int same_key = 0, same_input = 0;
        for (uint64_t i = 0; i < 10'000; ++i) {
            same_key += a(i) == b(i);
            same_key += a(i, i + 1, i + 2) == b(i, i + 1, i + 2);
            same_input += a(i) == a(i ^ 1);
            same_input += a(i, 0, 0) == a(i);  // one, two and three words never coincide by design
            same_input += a(i, 1) == a(i);
            same_input += a(i, 0) == a(i, 0, 0);
        }
        CHECK(same_key == 0);
        CHECK(same_input == 0);
        // Every key word matters (the AES variant uses all eight, SipHash the first two).
        for (int w = 0; w < (a.impl() == KeyedHash::Impl::aes ? 8 : 2); ++w) {
            HashKey k = key_of(1);
            k.w[w] ^= 1;
            CHECK(KeyedHash(k, aes)(12345) != a(12345));
        }
    }
}

TEST_CASE("flow hash: keys that collide under CRC32-C spread over the buckets", "[flow_hash]") {
    // The attacker's material: 2^16 distinct 64-bit keys with one CRC32-C. CRC is affine, so
    // for each high word x a low word exists that cancels x's contribution: solve it by
    // Gaussian elimination over the 32 low bits (where the CRC is invertible).
    for (const bool aes : {true, false}) {
        const KeyedHash h(key_of(3), aes);
        INFO((h.impl() == KeyedHash::Impl::aes ? "aes" : "siphash"));
        constexpr uint32_t kBuckets = 1024;
        std::vector<uint32_t> count(kBuckets, 0);
        std::set<uint64_t> seen;
        uint32_t n = 0;
        for (uint64_t hi = 0; hi < 65536; ++hi) {
            const uint64_t x = hi << 32;
            // crc(x | lo) = crc(x) ^ crc(lo) ^ crc(0): find lo with crc(lo) ^ crc(0) == crc(x) ^ crc(0).
            uint32_t lo = 0;
            uint32_t want = static_cast<uint32_t>(__builtin_ia32_crc32di(0, x)) ^
                            static_cast<uint32_t>(__builtin_ia32_crc32di(0, 0));
            uint32_t basis[32];
            for (int b = 0; b < 32; ++b)
                basis[b] = static_cast<uint32_t>(__builtin_ia32_crc32di(0, uint64_t{1} << b)) ^
                           static_cast<uint32_t>(__builtin_ia32_crc32di(0, 0));
            // Gaussian elimination over the 32 low bits.
            uint32_t rows[32], sel[32];
            for (int b = 0; b < 32; ++b) {
                rows[b] = basis[b];
                sel[b] = 1u << b;
            }
            for (int bit = 31, r = 0; bit >= 0; --bit) {
                int p = -1;
                for (int i = r; i < 32; ++i)
                    if ((rows[i] >> bit) & 1u) {
                        p = i;
                        break;
                    }
                if (p < 0) continue;
                std::swap(rows[p], rows[r]);
                std::swap(sel[p], sel[r]);
                for (int i = 0; i < 32; ++i)
                    if (i != r && ((rows[i] >> bit) & 1u)) {
                        rows[i] ^= rows[r];
                        sel[i] ^= sel[r];
                    }
                if ((want >> bit) & 1u) {
                    want ^= rows[r];
                    lo ^= sel[r];
                }
                ++r;
            }
            REQUIRE(want == 0);
            const uint64_t key = x | lo;
            REQUIRE(static_cast<uint32_t>(__builtin_ia32_crc32di(0x6B43A9B5u, key)) ==
                    static_cast<uint32_t>(__builtin_ia32_crc32di(0x6B43A9B5u, 0)));
            seen.insert(key);
            ++count[static_cast<uint32_t>(((h(key) >> 32) * kBuckets) >> 32)];
            ++n;
        }
        REQUIRE(seen.size() == n);
        // 2^16 keys over 1024 buckets: 64 expected per bucket; a fair hash stays far from
        // the 2^16 in one bucket that CRC32-C gives them.
        const uint32_t most = *std::max_element(count.begin(), count.end());
        INFO("fullest bucket " << most);
        CHECK(most < 120);
    }
}
