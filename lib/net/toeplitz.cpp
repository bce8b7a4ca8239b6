#include "lib/net/toeplitz.hpp"

namespace sluice::net {

const std::array<uint8_t, kRssKeyLen> kDefaultRssKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

namespace {
// The 32-bit window of the key starting at bit `bit` (MSB first).
uint32_t key_window(const uint8_t* key, size_t key_len, size_t bit) noexcept {
    uint32_t w = 0;
    for (size_t i = 0; i < 32; ++i) {
        const size_t b = bit + i;
        const uint32_t kb = b / 8 < key_len ? (key[b / 8] >> (7 - b % 8)) & 1u : 0u;
        w = w << 1 | kb;
    }
    return w;
}
}  // namespace

uint32_t toeplitz_ref(const uint8_t* key, size_t key_len, const uint8_t* in, size_t len) noexcept {
    uint32_t h = 0;
    for (size_t i = 0; i < len * 8; ++i)
        if ((in[i / 8] >> (7 - i % 8)) & 1u) h ^= key_window(key, key_len, i);
    return h;
}

Toeplitz::Toeplitz(const std::array<uint8_t, kRssKeyLen>& key) : table_(kMaxInput * 256) {
    for (size_t pos = 0; pos < kMaxInput; ++pos) {
        uint32_t bitw[8];
        for (int b = 0; b < 8; ++b) bitw[b] = key_window(key.data(), key.size(), pos * 8 + b);
        for (uint32_t v = 0; v < 256; ++v) {
            uint32_t h = 0;
            for (int b = 0; b < 8; ++b)
                if (v & (0x80u >> b)) h ^= bitw[b];
            table_[pos * 256 + v] = h;
        }
    }
}

uint32_t Toeplitz::hash_tuple(const uint8_t* src, const uint8_t* dst, size_t addr_len, uint16_t sport_raw,
                              uint16_t dport_raw) const noexcept {
    uint8_t ports[4];
    __builtin_memcpy(ports, &sport_raw, 2);
    __builtin_memcpy(ports + 2, &dport_raw, 2);
    return hash_addrs(src, dst, addr_len) ^ hash_at(2 * addr_len, ports, 4);
}

}  // namespace sluice::net
