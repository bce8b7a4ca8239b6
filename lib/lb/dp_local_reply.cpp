// What Sluice answers itself, in place, out of the port it came in by: ping to a VIP, ARP
// requests and IPv6 neighbour solicitations for its own addresses.
#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

namespace {

// Is an ICMP message of `len` bytes zero everywhere but its checksum field?
bool icmp_zero_but_checksum(const uint8_t* icmp, uint32_t len) noexcept {
    for (uint32_t i = 0; i < len; ++i)
        if (icmp[i] != 0 && i != IcmpOff::csum && i != IcmpOff::csum + 1u) return false;
    return true;
}

}  // namespace

// A VIP answers ping itself, in place: addresses swapped, a fresh TTL, type echo reply, and
// both checksums patched for exactly what changed (the IPv6 pseudo header sums the same
// addresses in the other order), so a corrupted request gets an equally corrupted answer.
template <size_t A>
void Dataplane::answer_echo(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    uint8_t* icmp = p.data + pp.l4_off;
    uint8_t tmp[A];
    std::memcpy(tmp, ip + Ip<A>::kSrc, A);
    std::memcpy(ip + Ip<A>::kSrc, ip + Ip<A>::kDst, A);
    std::memcpy(ip + Ip<A>::kDst, tmp, A);
    if constexpr (A == 4) {
        const uint16_t old_w = load_raw16(ip + Ipv4Off::ttl);
        ip[Ipv4Off::ttl] = 64;
        const uint16_t c = csum_update16(load_raw16(ip + Ipv4Off::csum), old_w, load_raw16(ip + Ipv4Off::ttl));
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else {
        ip[Ipv6Off::hop_limit] = 64;
    }
    const uint16_t old_type = load_raw16(icmp + IcmpOff::type);
    icmp[IcmpOff::type] = A == 4 ? kIcmpEchoReply : kIcmp6EchoReply;
    uint16_t c = csum_update16(load_raw16(icmp + IcmpOff::csum), old_type, load_raw16(icmp + IcmpOff::type));
    // RFC 1624 eqn. 3 never yields 0xFFFF: when an ICMPv4 reply is zero in every other byte
    // (echo reply, identifier, sequence and payload all zero) the sum is +0 and the only valid
    // checksum is 0xFFFF, where the update gives 0x0000. The pseudo header keeps ICMPv6 from
    // ever summing to zero.
    if (A == 4 && c == 0 && icmp_zero_but_checksum(icmp, pp.ip_end - pp.l4_off)) c = 0xFFFF;
    std::memcpy(icmp + IcmpOff::csum, &c, 2);
    ++counters_.echo_replies;
    send_back(p);
}

template void Dataplane::answer_echo<4>(PacketRef&, const ParsedPacket&) noexcept;
template void Dataplane::answer_echo<16>(PacketRef&, const ParsedPacket&) noexcept;

void Dataplane::handle_arp(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* a = p.data + pp.l3_off;
    if (load_be16(a + ArpOff::htype) != 1 || load_be16(a + ArpOff::ptype) != kEtherTypeIpv4 || a[ArpOff::hlen] != 6 ||
        a[ArpOff::plen] != 4)
        return drop(p, Drop::arp_ignored);
    // Answers to the kernel side's requests and gratuitous ARP, in either form (a reply, or a
    // request for the sender's own address, as a host that takes over an address or changes
    // its MAC sends), teach it and the control core the neighbours' MACs.
    // A request that claims one of Sluice's own addresses is answered, which defends it.
    const uint16_t op = load_be16(a + ArpOff::op);
    const bool ours = op == 1 && service_->owns_address(Family::v4, a + ArpOff::tpa);
    const bool gratuitous = op == 1 && !ours && std::memcmp(a + ArpOff::spa, a + ArpOff::tpa, 4) == 0;
    if ((op == 2 || gratuitous) && env_.exception_path) return to_control(p);
    if (!ours) return drop(p, Drop::arp_ignored);
    const Mac& mine = env_.port_macs[p.in_port];
    uint8_t target[4];
    std::memcpy(target, a + ArpOff::tpa, 4);
    store_be16(a + ArpOff::op, 2);
    std::memcpy(a + ArpOff::tha, a + ArpOff::sha, 6);
    std::memcpy(a + ArpOff::tpa, a + ArpOff::spa, 4);
    std::memcpy(a + ArpOff::sha, mine.bytes.data(), 6);
    std::memcpy(a + ArpOff::spa, target, 4);
    std::memcpy(p.data + EthOff::dst, a + ArpOff::tha, 6);
    std::memcpy(p.data + EthOff::src, mine.bytes.data(), 6);
    ++counters_.arp_replies;
    tx(p, p.in_port);
}

void Dataplane::handle_nd(PacketRef& p, const ParsedPacket& pp) noexcept {
    // RFC 4861 §7.1.1: hop limit 255, code 0, at least 24 bytes; §7.2.4: answer with an
    // advertisement (Solicited, Override) carrying our link-layer address. A solicitation from
    // the unspecified address is another node's duplicate address detection: the answer goes
    // to all-nodes with Solicited clear, which defends the address.
    uint8_t* ip = p.data + pp.l3_off;
    const uint8_t* icmp = p.data + pp.l4_off;
    static constexpr uint8_t kUnspecified[16] = {};
    static constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr uint8_t kAllNodesMac[6] = {0x33, 0x33, 0, 0, 0, 1};
    if (ip[Ipv6Off::hop_limit] != 255 || icmp[IcmpOff::code] != 0 || pp.l4_len < 24 ||
        !service_->owns_address(Family::v6, icmp + 8))
        return drop(p, Drop::nd_ignored);
    const bool dad = std::memcmp(ip + Ipv6Off::src, kUnspecified, 16) == 0;
    const uint32_t new_len = pp.l3_off + kIpv6HdrLen + 32;
    if (new_len > p.cap) return drop(p, Drop::nd_ignored);
    uint8_t target[16], asker[16];
    std::memcpy(target, icmp + 8, 16);
    std::memcpy(asker, dad ? kAllNodes : ip + Ipv6Off::src, 16);
    const Mac& mine = env_.port_macs[p.in_port];

    std::memcpy(p.data + EthOff::dst, dad ? kAllNodesMac : p.data + EthOff::src, 6);
    std::memcpy(p.data + EthOff::src, mine.bytes.data(), 6);
    store_be32(ip + Ipv6Off::vtc, 0x60000000u);  // version 6; our own traffic class and flow label
    store_be16(ip + Ipv6Off::payload_len, 32);
    ip[Ipv6Off::next] = kIpProtoIcmpv6;
    ip[Ipv6Off::hop_limit] = 255;
    std::memcpy(ip + Ipv6Off::src, target, 16);
    std::memcpy(ip + Ipv6Off::dst, asker, 16);
    uint8_t* na = ip + kIpv6HdrLen;
    std::memset(na, 0, 32);
    na[IcmpOff::type] = kIcmp6NeighborAdvert;
    na[4] = dad ? 0x20 : 0x60;  // Override, and Solicited unless answering DAD
    std::memcpy(na + 8, target, 16);
    na[24] = 2;  // Target Link-Layer Address option, 1 x 8 bytes
    na[25] = 1;
    std::memcpy(na + 26, mine.bytes.data(), 6);
    const uint16_t c = static_cast<uint16_t>(
        ~csum_fold(csum_partial(na, 32, pseudo_sum_v6(ip + Ipv6Off::src, ip + Ipv6Off::dst, kIpProtoIcmpv6, 32))));
    std::memcpy(na + IcmpOff::csum, &c, 2);
    p.len = new_len;
    ++counters_.nd_replies;
    tx(p, p.in_port);
}

}  // namespace sluice::lb
