#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

// An ICMP error quotes the IP header and at least 8 bytes of the packet that caused it (RFC
// 792, RFC 4443 §2.4): enough for its ports, so for its flow. Two kinds concern a flow:
//  - about a packet Sluice sent a client (quoted source: a VIP; e.g. a router on the way to
//    the client needs fragmentation): it goes to the flow's backend, translated the way the
//    backend's packets were, backwards, so the backend's stack recognises its own packet;
//  - about a packet Sluice sent a backend (quoted destination: the backend): it goes to the
//    client, translated so the client recognises its packet to the VIP, from the VIP.
// Every changed word of the quote is also patched into the inner IPv4 and transport checksums
// (when quoted) and into the ICMP checksum, which covers the quote (and for ICMPv6 the outer
// addresses); the outer header as for any routed packet. dsr flows: the client's side only,
// forwarded unchanged to the backend, which owns the VIP too.
template <size_t A>
void Dataplane::handle_icmp_error(PacketRef& p, const ParsedPacket& pp, uint32_t now_ms) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    uint8_t* icmp = p.data + pp.l4_off;
    uint8_t* q = icmp + kIcmpHdrLen;
    const uint32_t qlen = pp.ip_end - pp.l4_off - kIcmpHdrLen;  // parse checked >= 0
    uint32_t qhl = kIpv6HdrLen;
    uint8_t qproto = 0;
    if constexpr (A == 4) {
        if (qlen < kIpv4MinHdrLen || (q[0] >> 4) != 4) return drop(p, Drop::icmp_bad_quote);
        qhl = (q[0] & 0x0F) * 4u;
        if (qhl < kIpv4MinHdrLen || qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
        if (load_be16(q + Ipv4Off::frag) & 0x1FFF) return drop(p, Drop::icmp_no_flow);  // a later fragment: no ports
        qproto = q[Ipv4Off::proto];
    } else {
        if (qlen < kIpv6HdrLen + 8 || (q[0] >> 4) != 6) return drop(p, Drop::icmp_bad_quote);
        // The quoted packet's extension headers, walked as the outer ones are (RFC 8200 §4):
        // options and a routing header with no segments left are passed over, and so is a
        // first fragment's header; a later fragment quotes no ports.
        qproto = q[Ipv6Off::next];
        for (int i = 0; i < 8; ++i) {
            if (qproto == kIpProtoHopOpts || qproto == kIpProtoDstOpts || qproto == kIpProtoRouting) {
                if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
                if (qproto == kIpProtoRouting && q[qhl + 3] != 0) return drop(p, Drop::icmp_no_flow);
                qproto = q[qhl];
                qhl += (q[qhl + 1] + 1u) * 8u;
            } else if (qproto == kIpProtoFragment) {
                if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
                if (load_be16(q + qhl + 2) & 0xFFF8) return drop(p, Drop::icmp_no_flow);
                qproto = q[qhl];
                qhl += 8;
            } else {
                break;
            }
        }
        if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
    }
    if (qproto != kIpProtoTcp && qproto != kIpProtoUdp) return drop(p, Drop::icmp_no_flow);
    uint8_t* qsrc = q + Ip<A>::kSrc;
    uint8_t* qdst = q + Ip<A>::kDst;
    uint8_t* ql4 = q + qhl;
    const uint16_t qsport = load_raw16(ql4), qdport = load_raw16(ql4 + 2);
    constexpr Family f = Ip<A>::kFamily;
    FlowTable<A>& ft = table<A>();

    // Which flow, and where it goes: the new outer and quoted addresses (nullptr: unchanged).
    const uint8_t *out_src = nullptr, *out_dst = nullptr, *in_src = nullptr, *in_dst = nullptr;
    uint16_t in_sport = 0, in_dport = 0;
    const Mac* dst_mac;
    Mac client_mac;
    uint16_t out_port, out_vlan;
    bool routed;
    const BackendEntry* tunnel_be = nullptr;  // a tunnel VIP's flow: the error goes wrapped
    uint16_t tunnel_vip = 0;
    const uint16_t vip_idx = service_->find_vip(f, qsrc, qsport, qproto);
    if (vip_idx != Service::kNoVip && std::memcmp(ip + Ip<A>::kDst, qsrc, A) == 0) {
        // About the client side: the quoted packet went VIP -> client.
        const VipEntry& vip = service_->vips()[vip_idx];
        const uint32_t ref = find_forward<A>(vip_idx, qdst, qdport, fwd_hash<A>(hash_, vip_idx, qdst, qdport));
        if (ref == FlowTable<A>::kNone || ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) {
            if (env_.nb_workers > 1) {
                const uint16_t owner = vip.mode == Mode::nat ? nat_owner(qdst, A, qdport)
                                                             : rss_owner<A>(qdst, qsrc, qdport, qsport);
                if (owner != env_.worker_id) return redirect(p, owner);
            }
            return drop(p, Drop::icmp_no_flow);
        }
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(ref));
        const BackendEntry& be = service_->backends()[rec.backend];
        if (!be.has_mac) return drop(p, Drop::no_neighbor);
        dst_mac = &be.mac;
        out_port = env_.backend_port;
        out_vlan = env_.backend_vlan;
        routed = !direct_return(vip.mode);
        if (vip.mode == Mode::tunnel) {
            tunnel_be = &be;
            tunnel_vip = vip_idx;
        }
        if (routed) {
            out_dst = in_src = be.addr.bytes.data();
            in_sport = be.port_raw;
        }
        if (vip.mode == Mode::fullnat) {
            out_src = in_dst = service_->snat(f)[rec.snat_idx].bytes.data();
            in_dport = rec.snat_port_raw;
        }
    } else {
        // About the backend side: the quoted packet went client (nat) or SNAT (fullnat) ->
        // backend, and the error is addressed to that source.
        if (std::memcmp(ip + Ip<A>::kDst, qsrc, A) != 0) return drop(p, Drop::icmp_no_flow);
        const uint32_t ref = find_reply<A>(qdst, qsrc, qdport, qsport, qproto, rev_hash<A>(hash_, qdst, qsrc, qdport, qsport, qproto));
        if (ref == FlowTable<A>::kNone || ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) {
            if (env_.nb_workers > 1) {
                const uint16_t owner = !service_->owns_address(f, qsrc) ? nat_owner(qsrc, A, qsport)
                                                                       : rss_owner<A>(qdst, qsrc, qdport, qsport);
                if (owner != env_.worker_id) return redirect(p, owner);
            }
            return drop(p, Drop::icmp_no_flow);
        }
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(ref));
        const VipEntry& vip = service_->vips()[rec.vip];
        std::memcpy(client_mac.bytes.data(), rec.client_mac, 6);
        dst_mac = &client_mac;
        out_port = env_.client_port;
        out_vlan = env_.client_vlan;
        routed = true;
        out_src = in_dst = vip.addr.bytes.data();
        in_dport = vip.port_raw;
        if (vip.mode == Mode::fullnat) {
            out_dst = in_src = rec.client_addr;
            in_sport = rec.client_port_raw;
        }
    }
    if (routed && ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);

    CsumDelta icmp_d, in_addrs, in_ports, out_addrs;
    if (in_src) {
        move_addr<A>(qsrc, in_src, in_addrs);
        move_port(ql4, in_sport, in_ports);
    }
    if (in_dst) {
        move_addr<A>(qdst, in_dst, in_addrs);
        move_port(ql4 + 2, in_dport, in_ports);
    }
    icmp_d += in_addrs;
    icmp_d += in_ports;
    if constexpr (A == 4) {  // the quoted header's own checksum
        const uint16_t old_c = load_raw16(q + Ipv4Off::csum);
        const uint16_t c = in_addrs.apply(old_c);
        std::memcpy(q + Ipv4Off::csum, &c, 2);
        icmp_d.change16(old_c, c);
    }
    // The quoted transport checksum, when the quote reaches it (UDP's always does; TCP's needs
    // 18 bytes). It cannot be verified against a truncated payload, only kept consistent.
    const uint32_t csum_off = qproto == kIpProtoUdp ? UdpOff::csum : TcpOff::csum;
    if (qhl + csum_off + 2 <= qlen) {
        const uint16_t old_c = load_raw16(ql4 + csum_off);
        if (!(A == 4 && qproto == kIpProtoUdp && old_c == 0)) {
            CsumDelta d = in_addrs;
            d += in_ports;
            uint16_t c = d.apply(old_c);
            if (qproto == kIpProtoUdp && c == 0) c = 0xFFFF;
            std::memcpy(ql4 + csum_off, &c, 2);
            icmp_d.change16(old_c, c);
        }
    }
    if (out_src) move_addr<A>(ip + Ip<A>::kSrc, out_src, out_addrs);
    if (out_dst) move_addr<A>(ip + Ip<A>::kDst, out_dst, out_addrs);
    if constexpr (A == 4) {
        if (routed) {
            const uint16_t old_w = load_raw16(ip + Ipv4Off::ttl);
            --ip[Ipv4Off::ttl];
            out_addrs.change16(old_w, load_raw16(ip + Ipv4Off::ttl));
        }
        const uint16_t c = out_addrs.apply(load_raw16(ip + Ipv4Off::csum));
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else {
        if (routed) --ip[Ipv6Off::hop_limit];
        icmp_d += out_addrs;  // ICMPv6 sums the pseudo header (RFC 4443 §2.3); hop limit is not in it
    }
    const uint16_t c = icmp_d.apply(load_raw16(icmp + IcmpOff::csum));
    std::memcpy(icmp + IcmpOff::csum, &c, 2);
    ++counters_.icmp_forwarded;
    if (tunnel_be) return emit_tunnel<A>(p, pp, service_->vips()[tunnel_vip], *tunnel_be);
    set_macs(p.data, *dst_mac, env_.port_macs[out_port]);
    tx_side(p, retag_needed(pp.vlan, out_vlan), out_port, out_vlan);
}

template void Dataplane::handle_icmp_error<4>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;
template void Dataplane::handle_icmp_error<16>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;

}  // namespace sluice::lb
