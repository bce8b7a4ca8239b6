// Tunnel VIPs: the client's packet, unchanged, inside an outer IPv4 or IPv6 header (and a UDP
// header for GUE) from Sluice's tunnel source to the backend, which decapsulates it and
// answers the client directly. The outer packet goes to the backend's next hop (the tunnel
// gateway of its family, else the backend on the link).
//
// The outer header (tunnel_encap.hpp says its fields) is written into the mbuf's headroom:
// the inner packet does not move. Entropy for the paths and the backend's receive side comes
// from the inner flow (addresses and ports, addresses only for fragments, so every fragment
// of a datagram travels alike): the IPv6 flow label, and GUE's UDP source port.
//
// A packet that would no longer fit --tunnel-mtu once wrapped is never fragmented: an IPv4
// packet with DF and every IPv6 packet get ICMP fragmentation-needed / packet-too-big from the
// VIP with the MTU that fits (path-MTU discovery does the rest); an IPv4 packet without DF is
// dropped as tunnel_too_big (its sender did not ask for discovery, and fragmenting the outer
// packet would leave the backend reassembling at line rate).
#include <algorithm>
#include <cstring>

#include "lib/common/hash_mix.hpp"
#include "lib/lb/dataplane_internal.hpp"
#include "lib/lb/tunnel_encap.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

namespace {

constexpr uint8_t kIcmpTtl = 64;
// ICMP errors are kept within what every host accepts: 576 bytes for IPv4 (RFC 1812), the
// minimum MTU for IPv6 (RFC 4443 §2.4).
constexpr uint32_t kIcmp4ErrorMax = 576;
constexpr uint32_t kIcmp6ErrorMax = 1280;

// A stable per-flow value for ECMP and receive-side scaling past Sluice.
template <size_t A>
uint32_t tunnel_entropy(const uint8_t* inner, const ParsedPacket& pp, const uint8_t* frame) noexcept {
    uint64_t a;
    if constexpr (A == 4) {
        a = uint64_t{load_raw32(inner + Ipv4Off::src)} << 32 | load_raw32(inner + Ipv4Off::dst);
    } else {
        a = load_raw64(inner + Ipv6Off::src) ^ load_raw64(inner + Ipv6Off::src + 8) ^
            flow_mix(load_raw64(inner + Ipv6Off::dst) ^ load_raw64(inner + Ipv6Off::dst + 8));
    }
    uint64_t ports = pp.l4_proto;
    if (pp.frag == Frag::none && (pp.l4_proto == kIpProtoTcp || pp.l4_proto == kIpProtoUdp))
        ports |= uint64_t{load_raw32(frame + pp.l4_off)} << 8;
    return static_cast<uint32_t>(flow_mix(a ^ flow_mix(ports)));
}

}  // namespace

template <size_t A>
void Dataplane::emit_tunnel(PacketRef& p, const ParsedPacket& pp, const VipEntry& vip, const BackendEntry& be) noexcept {
    uint8_t* inner = p.data + pp.l3_off;
    const uint32_t inner_len = pp.ip_end - pp.l3_off;  // Ethernet padding stays out
    const bool outer4 = be.addr.is_v4();
    const bool gue = vip.encap == Encap::gue;
    const uint32_t outer_len = tunnel_overhead(outer4, gue);
    if (outer_len + inner_len > env_.settings.tunnel_mtu) [[unlikely]]
        return tunnel_too_big<A>(p, pp, outer_len);
    const uint32_t grow = kEthHdrLen + outer_len - pp.l3_off;  // the VLAN tag, if any, goes
    if (grow > p.headroom) [[unlikely]] return drop(p, Drop::no_headroom);
    // Only IPv6's flow label and GUE's source port carry entropy: IPv4 in IPv4 skips it.
    const uint32_t entropy = !outer4 || gue ? tunnel_entropy<A>(inner, pp, p.data) : 0;

    p.data = write_tunnel_headers(inner, inner_len, A == 4, entropy,
                                  {be.mac, env_.port_macs[env_.backend_port], service_->tunnel_source(be.addr.family),
                                   be.addr, gue, vip.gue_port_raw});
    p.headroom = static_cast<uint16_t>(p.headroom - grow);
    p.cap = static_cast<uint16_t>(p.cap + grow);
    p.len = kEthHdrLen + outer_len + inner_len;
    ++counters_.tunneled;
    tx_side(p, retag_needed(false, env_.backend_vlan), env_.backend_port, env_.backend_vlan);
}

// The client's packet becomes the ICMP error that tells it the size that fits, from the VIP,
// out of the port it came in by.
template <size_t A>
void Dataplane::tunnel_too_big(PacketRef& p, const ParsedPacket& pp, uint32_t outer_len) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    if (A == 4 && !(ip[Ipv4Off::frag] & 0x40)) return drop(p, Drop::tunnel_too_big);
    const uint32_t hdr = A == 4 ? kIpv4MinHdrLen + kIcmpHdrLen : kIpv6HdrLen + kIcmpHdrLen;
    const uint32_t limit = A == 4 ? kIcmp4ErrorMax : kIcmp6ErrorMax;
    const uint32_t inner_len = pp.ip_end - pp.l3_off;
    // As much of the packet as the error may carry and the buffer can hold.
    uint32_t quote = std::min(inner_len, limit - hdr);
    if (pp.l3_off + hdr + quote > p.cap) quote = p.cap > pp.l3_off + hdr ? p.cap - pp.l3_off - hdr : 0;
    // The quote must hold the transport ports the client matches the error against.
    if (quote < std::min<uint32_t>(inner_len, pp.l4_off + 8 - pp.l3_off)) return drop(p, Drop::tunnel_too_big);
    uint8_t client[A], vip[A];
    std::memcpy(client, ip + Ip<A>::kSrc, A);
    std::memcpy(vip, ip + Ip<A>::kDst, A);
    std::memmove(ip + hdr, ip, quote);
    const uint16_t mtu = static_cast<uint16_t>(env_.settings.tunnel_mtu - outer_len);
    uint8_t* icmp = ip + (A == 4 ? kIpv4MinHdrLen : kIpv6HdrLen);
    const uint32_t icmp_len = kIcmpHdrLen + quote;
    if constexpr (A == 4) {
        ip[Ipv4Off::ver_ihl] = 0x45;
        ip[Ipv4Off::tos] = 0;
        store_be16(ip + Ipv4Off::total_len, static_cast<uint16_t>(hdr + quote));
        store_be16(ip + Ipv4Off::id, 0);
        store_be16(ip + Ipv4Off::frag, 0);
        ip[Ipv4Off::ttl] = kIcmpTtl;
        ip[Ipv4Off::proto] = kIpProtoIcmp;
        store_be16(ip + Ipv4Off::csum, 0);
        std::memcpy(ip + Ipv4Off::src, vip, 4);
        std::memcpy(ip + Ipv4Off::dst, client, 4);
        const uint16_t c = csum(ip, kIpv4MinHdrLen);
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
        icmp[IcmpOff::type] = kIcmpDestUnreach;
        icmp[IcmpOff::code] = 4;  // fragmentation needed and DF set (RFC 1191)
        store_be16(icmp + 4, 0);
        store_be16(icmp + 6, mtu);
        store_be16(icmp + IcmpOff::csum, 0);
        const uint16_t ic = csum(icmp, icmp_len);
        std::memcpy(icmp + IcmpOff::csum, &ic, 2);
    } else {
        store_be32(ip, 6u << 28);
        store_be16(ip + Ipv6Off::payload_len, static_cast<uint16_t>(icmp_len));
        ip[Ipv6Off::next] = kIpProtoIcmpv6;
        ip[Ipv6Off::hop_limit] = kIcmpTtl;
        std::memcpy(ip + Ipv6Off::src, vip, 16);
        std::memcpy(ip + Ipv6Off::dst, client, 16);
        icmp[IcmpOff::type] = kIcmp6PacketTooBig;
        icmp[IcmpOff::code] = 0;
        store_be32(icmp + 4, mtu);
        store_be16(icmp + IcmpOff::csum, 0);
        uint32_t s = csum_partial(ip + Ipv6Off::src, 32);
        s = csum_partial(icmp, icmp_len, s + port_to_raw(static_cast<uint16_t>(icmp_len)) + port_to_raw(kIpProtoIcmpv6));
        const uint16_t ic = static_cast<uint16_t>(~csum_fold(s));
        std::memcpy(icmp + IcmpOff::csum, &ic, 2);
    }
    p.len = pp.l3_off + hdr + quote;
    ++counters_.tunnel_too_big_sent;
    send_back(p);
}

template void Dataplane::emit_tunnel<4>(PacketRef&, const ParsedPacket&, const VipEntry&, const BackendEntry&) noexcept;
template void Dataplane::emit_tunnel<16>(PacketRef&, const ParsedPacket&, const VipEntry&, const BackendEntry&) noexcept;
template void Dataplane::tunnel_too_big<4>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;
template void Dataplane::tunnel_too_big<16>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;

}  // namespace sluice::lb
