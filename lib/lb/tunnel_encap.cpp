#include "lib/lb/tunnel_encap.hpp"

#include <cstring>

#include "lib/net/checksum.hpp"

namespace sluice::lb {

using namespace sluice::net;

namespace {
constexpr uint8_t kIpProtoIpip = 4;   // IPv4 inside
constexpr uint8_t kIpProtoIpv6 = 41;  // IPv6 inside
constexpr uint8_t kOuterTtl = 64;
}  // namespace

uint8_t* write_tunnel_headers(uint8_t* inner, uint32_t inner_len, bool inner_v4, uint32_t entropy,
                              const TunnelHeader& th) noexcept {
    const bool outer4 = th.dst.is_v4();
    const uint32_t outer_len = tunnel_overhead(outer4, th.gue);
    uint8_t* f = inner - kEthHdrLen - outer_len;
    std::memcpy(f + EthOff::dst, th.dst_mac.bytes.data(), 6);
    std::memcpy(f + EthOff::src, th.src_mac.bytes.data(), 6);
    store_be16(f + EthOff::type, outer4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
    uint8_t* o = f + kEthHdrLen;
    const uint8_t tclass = inner_v4 ? inner[Ipv4Off::tos] : static_cast<uint8_t>(load_be16(inner) >> 4);
    const uint8_t next = th.gue ? kIpProtoUdp : inner_v4 ? kIpProtoIpip : kIpProtoIpv6;
    // Headers are built in registers and stored whole; the IPv4 checksum is summed from the
    // same values (reading back bytes just stored would wait on store forwarding).
    if (outer4) {
        const uint16_t total = static_cast<uint16_t>(outer_len + inner_len);
        const uint8_t* s4 = th.src.bytes.data();
        const uint8_t* d4 = th.dst.bytes.data();
        uint32_t sum = (0x4500u | tclass) + total + 0x4000u + (uint32_t{kOuterTtl} << 8 | next) + load_be16(s4) +
                       load_be16(s4 + 2) + load_be16(d4) + load_be16(d4 + 2);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        const uint16_t c = static_cast<uint16_t>(~sum);
        const uint8_t h[kIpv4MinHdrLen] = {0x45, tclass, static_cast<uint8_t>(total >> 8), static_cast<uint8_t>(total),
                                           0, 0, 0x40, 0,  // ID 0, DF
                                           kOuterTtl, next, static_cast<uint8_t>(c >> 8), static_cast<uint8_t>(c),
                                           s4[0], s4[1], s4[2], s4[3], d4[0], d4[1], d4[2], d4[3]};
        std::memcpy(o, h, sizeof h);
    } else {
        uint8_t h[kIpv6HdrLen];
        store_be32(h, 6u << 28 | uint32_t{tclass} << 20 | (entropy & 0xFFFFF));
        store_be16(h + Ipv6Off::payload_len, static_cast<uint16_t>(outer_len - kIpv6HdrLen + inner_len));
        h[Ipv6Off::next] = next;
        h[Ipv6Off::hop_limit] = kOuterTtl;
        std::memcpy(h + Ipv6Off::src, th.src.bytes.data(), 16);
        std::memcpy(h + Ipv6Off::dst, th.dst.bytes.data(), 16);
        std::memcpy(o, h, sizeof h);
    }
    if (th.gue) {
        uint8_t* u = o + (outer4 ? kIpv4MinHdrLen : kIpv6HdrLen);
        store_be16(u + UdpOff::sport, static_cast<uint16_t>(0xC000 | (entropy >> 20 & 0x3FFF)));
        std::memcpy(u + UdpOff::dport, &th.gue_port_raw, 2);
        const uint16_t ulen = static_cast<uint16_t>(kUdpHdrLen + inner_len);
        store_be16(u + UdpOff::len, ulen);
        store_be16(u + UdpOff::csum, 0);
        if (!outer4) {
            uint32_t s = csum_partial(o + Ipv6Off::src, 32);
            s = csum_partial(u, ulen, s + port_to_raw(ulen) + port_to_raw(kIpProtoUdp));
            uint16_t c = static_cast<uint16_t>(~csum_fold(s));
            if (c == 0) c = 0xFFFF;
            std::memcpy(u + UdpOff::csum, &c, 2);
        }
    }
    return f;
}

}  // namespace sluice::lb
