// Whose frame is it: the arrival port's VLANs and MAC, judged before anything the frame
// carries (the common frame is cleared by the fast parser in process()); and the 802.1Q tag
// a frame leaves with.
#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

Drop Dataplane::not_addressed_here_slow(const PacketRef& p) const noexcept {
    if (p.len < kEthHdrLen) return Drop::count_;  // the parser's: runt
    const PortIdentity& me = ports_[p.in_port & (kPortSlots - 1)];
    const uint8_t* f = p.data;
    // A frame too short for its tag is the parser's (bad_vlan).
    const uint16_t vid = vlan_id_of(f, p.len);
    if (vid != me.vlan[0] && vid != me.vlan[1]) [[unlikely]]
        return Drop::foreign_vlan;
    if (load_raw48(f + EthOff::dst) == me.mac) return Drop::count_;
    return (f[EthOff::dst] & 1) ? Drop::count_ : Drop::foreign_mac;  // broadcast/multicast: judged once parsed
}

bool Dataplane::on_kernel_vlan(const PacketRef& p) const noexcept {
    return vlan_id_of(p.data, p.len) == ports_[p.in_port & (kPortSlots - 1)].kernel_vlan;
}

Drop Dataplane::judge_frame(const PacketRef& p, ParsedPacket& pp, ParseStatus& st) const noexcept {
    Drop why = not_addressed_here_slow(p);
    if (why != Drop::count_) {
        st = ParseStatus::ok;
        return why;
    }
    st = parse_packet_general(p.data, p.len, pp, p.ip_csum_good);
    if ((p.data[EthOff::dst] & 1) && st == ParseStatus::ok && !finds_neighbours(p, pp)) {
        st = ParseStatus::ok;
        return Drop::foreign_mac;
    }
    return Drop::count_;
}

bool Dataplane::finds_neighbours(const PacketRef& p, const ParsedPacket& pp) const noexcept {
    if (pp.l3 == L3::arp) return true;
    if (pp.l3 != L3::ipv6 || pp.l4_proto != kIpProtoIcmpv6 || pp.frag != Frag::none || pp.l4_len < kIcmpHdrLen)
        return false;
    const uint8_t type = p.data[pp.l4_off + IcmpOff::type];
    return type == kIcmp6NeighborSolicit || type == kIcmp6NeighborAdvert;
}

bool Dataplane::retag(PacketRef& p, uint16_t vid) noexcept {
    uint8_t* f = p.data;
    const bool tagged = has_vlan_tag(f, p.len);
    if (tagged && vid != 0) {
        const uint16_t tci = static_cast<uint16_t>((load_be16(f + kEthHdrLen) & 0xF000) | vid);
        store_be16(f + kEthHdrLen, tci);
    } else if (tagged) {
        std::memmove(f + EthOff::type, f + EthOff::type + kVlanHdrLen, p.len - EthOff::type - kVlanHdrLen);
        p.len -= kVlanHdrLen;
    } else if (vid != 0) {
        if (p.len + kVlanHdrLen > p.cap) return false;
        p.len = static_cast<uint32_t>(insert_vlan_tag(f, p.len, vid));
    }
    return true;
}

}  // namespace sluice::lb
