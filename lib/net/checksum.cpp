#include "lib/net/checksum.hpp"

#include <cstring>

#include "lib/net/wire.hpp"

namespace sluice::net {

uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t sum) noexcept {
    uint64_t acc = sum;
    while (len >= 8) {
        const uint64_t w = load_raw64(data);
        acc += (w & 0xFFFFFFFF) + (w >> 32);
        data += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += load_raw16(data);
        data += 2;
        len -= 2;
    }
    if (len) {
        uint8_t tail[2] = {data[0], 0};
        acc += load_raw16(tail);
    }
    acc = (acc & 0xFFFFFFFF) + (acc >> 32);
    acc = (acc & 0xFFFFFFFF) + (acc >> 32);
    return csum_fold(static_cast<uint32_t>(acc));
}

void CsumDelta::change_bytes(const uint8_t* old_p, const uint8_t* new_p, size_t len) noexcept {
    for (size_t i = 0; i < len; i += 4) change32(load_raw32(old_p + i), load_raw32(new_p + i));
}

uint16_t csum_update128(uint16_t hc, const uint8_t* old_addr, const uint8_t* new_addr) noexcept {
    CsumDelta d;
    d.change_bytes(old_addr, new_addr, 16);
    return d.apply(hc);
}

uint32_t pseudo_sum_v4(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint16_t l4_len) noexcept {
    uint8_t tail[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
    uint32_t s = csum_partial(src, 4);
    s = csum_partial(dst, 4, s);
    return csum_partial(tail, 4, s);
}

uint32_t pseudo_sum_v6(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len) noexcept {
    uint8_t tail[8] = {static_cast<uint8_t>(l4_len >> 24), static_cast<uint8_t>(l4_len >> 16),
                       static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len), 0, 0, 0, proto};
    uint32_t s = csum_partial(src, 16);
    s = csum_partial(dst, 16, s);
    return csum_partial(tail, 8, s);
}

}  // namespace sluice::net
