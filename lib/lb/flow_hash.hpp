// Keyed hashing for every table an outsider can fill (flows, fragments).
//
// An unkeyed hash lets an attacker who knows the function aim packets at one bucket: with
// CRC32-C, which is linear, one spoofed source address per source port collides with any chosen
// tuple, and 16 such packets fill a victim's two candidate buckets. A secret per-process key
// removes the aim: without it, which bucket a tuple lands in is unpredictable, so a flood only
// fills the table at random, which eviction and capacity already handle.
//
// Two keyed functions, picked once at construction:
//  - with AES-NI: a Pelican-MAC-style construction (Daemen & Rijmen, 2005): the 128-bit state
//    starts as a secret whitening key, each 16-byte block of the key is XORed in and followed
//    by four AES rounds with secret round keys, and the output folds the final state to 64
//    bits. Four rounds give every input difference at least 25 active S-boxes (AES's wide trail
//    bound), so chosen inputs cannot steer the output without the key; a key of up to two
//    words (IPv4) is one block: four AESENC instructions;
//  - otherwise SipHash-1-3 (Aumasson & Bernstein; the variant Rust's HashMap used), a portable
//    keyed pseudo-random function made for hash-flooding defence.
// The low 32 bits of a hash are a table's signature, the high 32 its bucket.
//
// Unkeyed mixing (flow_mix, the golden-ratio multipliers) lives in lib/common/hash_mix.hpp.
//
// Maglev's choice of backend is deliberately NOT keyed here: every instance of a tier must
// give a flow the same backend, and an attacker gains nothing from aiming at a backend that
// an honest client population cannot also reach.
//
// Thread contract: immutable after construction; share freely.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__AES__)
#include <wmmintrin.h>
#define SLUICE_HAVE_AESNI 1
#endif

namespace sluice::lb {

// 64 bytes of secret: AES whitening and three round keys, or SipHash's two 64-bit keys (the
// first 16 bytes).
struct HashKey {
    uint64_t w[8] = {};
    // A key from the kernel's random source (getrandom); falls back to /dev/urandom.
    // Returns false (and leaves the key unchanged) if neither can be read.
    static bool random(HashKey& out) noexcept;
    // Parses 1..128 hex digits (the rest are zero): for reproducible test runs only.
    static bool from_hex(const char* hex, HashKey& out) noexcept;
};

class KeyedHash {
public:
    enum class Impl : uint8_t { aes, siphash };

    // The fastest implementation this CPU runs; allow_aes = false forces SipHash (tests
    // compare the two).
    explicit KeyedHash(const HashKey& key, bool allow_aes = true) noexcept : key_(key) {
#ifdef SLUICE_HAVE_AESNI
        __builtin_cpu_init();
        aes_ = allow_aes && __builtin_cpu_supports("aes");
        std::memcpy(&k_[0], &key.w[0], 16);
        std::memcpy(&k_[1], &key.w[2], 16);
        std::memcpy(&k_[2], &key.w[4], 16);
        std::memcpy(&k_[3], &key.w[6], 16);
#else
        (void)allow_aes;
#endif
    }
    KeyedHash() noexcept : KeyedHash(HashKey{}) {}

    Impl impl() const noexcept { return aes_ ? Impl::aes : Impl::siphash; }
    const HashKey& key() const noexcept { return key_; }

    // Keys of one, two and three words; the word count is hashed in (one and two words fill
    // one AES block, told apart by the last round key), so key shapes never meet.
    [[gnu::always_inline]] uint64_t operator()(uint64_t w0) const noexcept {
        if (aes_) [[likely]] return with<Impl::aes>(w0);
        return with<Impl::siphash>(w0);
    }
    [[gnu::always_inline]] uint64_t operator()(uint64_t w0, uint64_t w1) const noexcept {
        if (aes_) [[likely]] return with<Impl::aes>(w0, w1);
        return with<Impl::siphash>(w0, w1);
    }
    [[gnu::always_inline]] uint64_t operator()(uint64_t w0, uint64_t w1, uint64_t w2) const noexcept {
        if (aes_) [[likely]] return with<Impl::aes>(w0, w1, w2);
        return with<Impl::siphash>(w0, w1, w2);
    }

    // The same with the implementation chosen by the caller (which asked impl() once, e.g. per
    // burst): no per-call test. I must be impl().
    template <Impl I>
    [[gnu::always_inline]] uint64_t with(uint64_t w0) const noexcept {
#ifdef SLUICE_HAVE_AESNI
        if constexpr (I == Impl::aes) return aes1(w0, 1);
#endif
        return sip13(w0, 0, 0, 1);
    }
    template <Impl I>
    [[gnu::always_inline]] uint64_t with(uint64_t w0, uint64_t w1) const noexcept {
#ifdef SLUICE_HAVE_AESNI
        if constexpr (I == Impl::aes) return aes2(w0, w1);
#endif
        return sip13(w0, w1, 0, 2);
    }
    template <Impl I>
    [[gnu::always_inline]] uint64_t with(uint64_t w0, uint64_t w1, uint64_t w2) const noexcept {
#ifdef SLUICE_HAVE_AESNI
        if constexpr (I == Impl::aes) return aes3(w0, w1, w2);
#endif
        return sip13(w0, w1, w2, 3);
    }

private:
#ifdef SLUICE_HAVE_AESNI
    [[gnu::always_inline]] static __m128i rounds4(__m128i s, const __m128i* k) noexcept {
        s = _mm_aesenc_si128(s, k[1]);
        s = _mm_aesenc_si128(s, k[2]);
        s = _mm_aesenc_si128(s, k[3]);
        return _mm_aesenc_si128(s, k[0]);
    }
    [[gnu::always_inline]] static uint64_t fold(__m128i s) noexcept {
        return static_cast<uint64_t>(_mm_cvtsi128_si64(s)) ^
               static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s)));
    }
    [[gnu::always_inline]] uint64_t aes1(uint64_t w0, uint64_t words) const noexcept {
        const __m128i s = _mm_xor_si128(k_[0], _mm_set_epi64x(static_cast<long long>(words), static_cast<long long>(w0)));
        return fold(rounds4(s, k_));
    }
    [[gnu::always_inline]] uint64_t aes2(uint64_t w0, uint64_t w1) const noexcept {
        __m128i s = _mm_xor_si128(k_[0], _mm_set_epi64x(static_cast<long long>(w1), static_cast<long long>(w0)));
        s = _mm_aesenc_si128(s, k_[1]);
        s = _mm_aesenc_si128(s, k_[2]);
        s = _mm_aesenc_si128(s, k_[3]);
        return fold(_mm_aesenc_si128(s, k_[1]));
    }
    [[gnu::always_inline]] uint64_t aes3(uint64_t w0, uint64_t w1, uint64_t w2) const noexcept {
        __m128i s = rounds4(_mm_xor_si128(k_[0], _mm_set_epi64x(static_cast<long long>(w1), static_cast<long long>(w0))), k_);
        s = _mm_xor_si128(s, _mm_set_epi64x(3, static_cast<long long>(w2)));
        return fold(rounds4(s, k_));
    }
    __m128i k_[4];
#endif

    static uint64_t rotl(uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }
    struct Sip {
        uint64_t v0, v1, v2, v3;
        void round() noexcept {
            v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
            v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
            v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
            v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
        }
        void absorb(uint64_t m) noexcept {
            v3 ^= m;
            round();
            v0 ^= m;
        }
    };
    // SipHash-1-3 of the `words` little-endian 64-bit words (8 * words bytes).
    uint64_t sip13(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t words) const noexcept {
        const uint64_t k0 = key_.w[0], k1 = key_.w[1];
        Sip s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
              k1 ^ 0x7465646279746573ULL};
        s.absorb(w0);
        if (words >= 2) s.absorb(w1);
        if (words == 3) s.absorb(w2);
        s.absorb((words * 8) << 56);  // the final block: length byte, no tail
        s.v2 ^= 0xff;
        s.round();
        s.round();
        s.round();
        return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
    }

    HashKey key_;
    bool aes_ = false;
};

}  // namespace sluice::lb
