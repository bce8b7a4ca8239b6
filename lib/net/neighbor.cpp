#include "lib/net/neighbor.hpp"

#include <cstring>

#include "lib/net/checksum.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/wire.hpp"

namespace sluice::net {

namespace {
constexpr uint8_t kIcmp6OptSourceLla = 1, kIcmp6OptTargetLla = 2;

bool usable_mac(const uint8_t* m) noexcept {
    static constexpr uint8_t kZero[6] = {};
    return !(m[0] & 0x01) && std::memcmp(m, kZero, 6) != 0;  // unicast, not zero
}
}  // namespace

size_t build_arp_request(uint8_t* out, const Mac& src_mac, const IpAddr& sender, const IpAddr& target) noexcept {
    std::memset(out, 0xFF, 6);
    std::memcpy(out + EthOff::src, src_mac.bytes.data(), 6);
    store_be16(out + EthOff::type, kEtherTypeArp);
    uint8_t* a = out + kEthHdrLen;
    store_be16(a + ArpOff::htype, 1);
    store_be16(a + ArpOff::ptype, kEtherTypeIpv4);
    a[ArpOff::hlen] = 6;
    a[ArpOff::plen] = 4;
    store_be16(a + ArpOff::op, 1);
    std::memcpy(a + ArpOff::sha, src_mac.bytes.data(), 6);
    std::memcpy(a + ArpOff::spa, sender.bytes.data(), 4);
    std::memset(a + ArpOff::tha, 0, 6);
    std::memcpy(a + ArpOff::tpa, target.bytes.data(), 4);
    // Pad to the Ethernet minimum (60 bytes without FCS).
    std::memset(out + kEthHdrLen + kArpIpv4Len, 0, 60 - kEthHdrLen - kArpIpv4Len);
    return 60;
}

size_t build_neighbor_solicit(uint8_t* out, const Mac& src_mac, const IpAddr& sender, const IpAddr& target) noexcept {
    // Solicited-node group ff02::1:ffXX:XXXX and its MAC 33:33:ff:XX:XX:XX (RFC 4291 §2.7.1).
    uint8_t group[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0};
    std::memcpy(group + 13, target.bytes.data() + 13, 3);
    const uint8_t group_mac[6] = {0x33, 0x33, 0xff, target.bytes[13], target.bytes[14], target.bytes[15]};
    std::memcpy(out + EthOff::dst, group_mac, 6);
    std::memcpy(out + EthOff::src, src_mac.bytes.data(), 6);
    store_be16(out + EthOff::type, kEtherTypeIpv6);
    uint8_t* ip = out + kEthHdrLen;
    constexpr uint16_t kNsLen = 32;  // header, target, one 8-byte option
    store_be32(ip + Ipv6Off::vtc, 0x60000000u);
    store_be16(ip + Ipv6Off::payload_len, kNsLen);
    ip[Ipv6Off::next] = kIpProtoIcmpv6;
    ip[Ipv6Off::hop_limit] = 255;
    std::memcpy(ip + Ipv6Off::src, sender.bytes.data(), 16);
    std::memcpy(ip + Ipv6Off::dst, group, 16);
    uint8_t* ns = ip + kIpv6HdrLen;
    std::memset(ns, 0, kNsLen);
    ns[IcmpOff::type] = kIcmp6NeighborSolicit;
    std::memcpy(ns + 8, target.bytes.data(), 16);
    ns[24] = kIcmp6OptSourceLla;
    ns[25] = 1;
    std::memcpy(ns + 26, src_mac.bytes.data(), 6);
    const uint16_t c = static_cast<uint16_t>(
        ~csum_fold(csum_partial(ns, kNsLen, pseudo_sum_v6(ip + Ipv6Off::src, ip + Ipv6Off::dst, kIpProtoIcmpv6, kNsLen))));
    std::memcpy(ns + IcmpOff::csum, &c, 2);
    return kEthHdrLen + kIpv6HdrLen + kNsLen;
}

std::optional<std::pair<IpAddr, Mac>> learn_neighbor(const uint8_t* frame, size_t len) noexcept {
    ParsedPacket pp;
    if (len > UINT32_MAX || parse_packet_general(frame, static_cast<uint32_t>(len), pp) != ParseStatus::ok)
        return std::nullopt;
    Mac mac;
    if (pp.l3 == L3::arp) {
        const uint8_t* a = frame + pp.l3_off;
        if (load_be16(a + ArpOff::htype) != 1 || load_be16(a + ArpOff::ptype) != kEtherTypeIpv4 ||
            a[ArpOff::hlen] != 6 || a[ArpOff::plen] != 4)
            return std::nullopt;
        const uint16_t op = load_be16(a + ArpOff::op);
        if ((op != 1 && op != 2) || !usable_mac(a + ArpOff::sha)) return std::nullopt;
        IpAddr ip = IpAddr::v4(a + ArpOff::spa);
        if (ip.v4_be() == 0) return std::nullopt;  // a probe vouches for no address
        std::memcpy(mac.bytes.data(), a + ArpOff::sha, 6);
        return std::pair{ip, mac};
    }
    if (pp.l3 != L3::ipv6 || pp.l4_proto != kIpProtoIcmpv6 || pp.l4_len < 24) return std::nullopt;
    const uint8_t* ip = frame + pp.l3_off;
    const uint8_t* icmp = frame + pp.l4_off;
    if (ip[Ipv6Off::hop_limit] != 255 || icmp[IcmpOff::code] != 0) return std::nullopt;  // RFC 4861 §7.1
    const uint8_t type = icmp[IcmpOff::type];
    if (type != kIcmp6NeighborAdvert && type != kIcmp6NeighborSolicit) return std::nullopt;
    // An advertisement vouches for its target (target link-layer option); a solicitation for
    // its source (source link-layer option), unless it is DAD from the unspecified address.
    const uint8_t want = type == kIcmp6NeighborAdvert ? kIcmp6OptTargetLla : kIcmp6OptSourceLla;
    const uint8_t* addr = type == kIcmp6NeighborAdvert ? icmp + 8 : ip + Ipv6Off::src;
    static constexpr uint8_t kUnspecified[16] = {};
    if (std::memcmp(addr, kUnspecified, 16) == 0 || addr[0] == 0xff) return std::nullopt;
    for (size_t off = 24; off + 8 <= pp.l4_len;) {
        const uint8_t t = icmp[off], units = icmp[off + 1];
        if (units == 0 || off + units * 8u > pp.l4_len) return std::nullopt;  // §4.6: length 0 is invalid
        if (t == want && units == 1 && usable_mac(icmp + off + 2)) {
            std::memcpy(mac.bytes.data(), icmp + off + 2, 6);
            return std::pair{IpAddr::v6(addr), mac};
        }
        off += units * 8u;
    }
    return std::nullopt;
}

}  // namespace sluice::net
