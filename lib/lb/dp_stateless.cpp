// nat and dsr without a flow entry: client packets the flow table cannot hold go to Maglev's
// pick, and a nat backend's answer to such a client goes back by a hint of the client's MAC,
// or to the client side's router when the flow is another instance's (a tier).
#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

template <size_t A>
void Dataplane::forward_stateless(PacketRef& p, const ParsedPacket& pp, uint16_t vip_idx, uint16_t be_idx,
                                  Drop reason) noexcept {
    const VipEntry& vip = service_->vips()[vip_idx];
    if (vip.mode == Mode::fullnat) return drop(p, reason);
    const BackendEntry& be = service_->backends()[be_idx];
    if (!be.has_mac) [[unlikely]] return drop(p, Drop::no_neighbor);
    ++counters_.forwarded;
    ++counters_.stateless_forwarded;
    TrafficCounters& vc = counters_.vips[vip_idx];
    ++vc.packets;
    vc.bytes += p.len;
    TrafficCounters& bc = counters_.backends[be_idx];
    ++bc.packets;
    bc.bytes += p.len;
    if (vip.mode == Mode::tunnel) return emit_tunnel<A>(p, pp, vip, be);
    if (vip.mode == Mode::nat) {
        remember_client<A>(p, pp);  // so the backend's answer can go back
        nat_rewrite<A>(p.data, pp, true, be.addr.bytes.data(), be.port_raw, be.ip_sum_to_backend, be.l4_sum_to_backend);
    }
    set_macs(p.data, be.mac, env_.port_macs[env_.backend_port]);
    tx_side(p, retag_needed(pp.vlan, env_.backend_vlan), env_.backend_port, env_.backend_vlan);
}

template <size_t A>
void Dataplane::remember_client(const PacketRef& p, const ParsedPacket& pp) noexcept {
    const uint8_t* client = p.data + pp.l3_off + Ip<A>::kSrc;
    ClientMac<A>& cm = client_mac_slot<A>(client, pp.sport_raw);
    std::memcpy(cm.addr, client, A);
    cm.port_raw = pp.sport_raw;
    std::memcpy(cm.mac, p.data + EthOff::src, 6);
    cm.used = true;
}

template <size_t A>
Dataplane::ClientMac<A>& Dataplane::client_mac_slot(const uint8_t* addr, uint16_t port_raw) noexcept {
    uint64_t h;
    if constexpr (A == 4) h = hash_(load_raw32(addr) | uint64_t{port_raw} << 32 | uint64_t{1} << 63);
    else h = hash_(load_raw64(addr), load_raw64(addr + 8), uint64_t{port_raw} | uint64_t{1} << 63);
    ClientMac<A>* macs;
    if constexpr (A == 4) macs = client_macs4_.get(); else macs = client_macs6_.get();
    return macs[(h >> 32) % kClientMacs];
}

template <size_t A>
void Dataplane::reply_stateless(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const uint8_t* src = ip + Ip<A>::kSrc;
    const uint8_t* dst = ip + Ip<A>::kDst;
    const uint16_t be_idx = service_->nat_backend(Ip<A>::kFamily, src, pp.sport_raw, pp.l4_proto);
    if (be_idx == Service::kNoBackendEntry) return drop(p, Drop::no_flow);
    // The client's MAC as its packets came (this instance forwarded them without state), else
    // the client side's router: the flow is another instance's of the tier (--client-gateway).
    const ClientMac<A>& cm = client_mac_slot<A>(dst, pp.dport_raw);
    Mac client_mac;
    if (cm.used && cm.port_raw == pp.dport_raw && std::memcmp(cm.addr, dst, A) == 0)
        std::memcpy(client_mac.bytes.data(), cm.mac, 6);
    else if (const Mac* gw = service_->client_gateway(Ip<A>::kFamily))
        client_mac = *gw;
    else
        return drop(p, Drop::no_flow);
    if (pp.l4_proto == kIpProtoTcp && !tcp_flags_valid(pp.tcp_flags)) return drop(p, Drop::bad_tcp_flags);
    if (ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
    const BackendEntry& be = service_->backends()[be_idx];
    const VipEntry& vip = service_->vips()[be.vip];
    nat_rewrite<A>(p.data, pp, false, vip.addr.bytes.data(), vip.port_raw, be.ip_sum_to_vip, be.l4_sum_to_vip);
    set_macs(p.data, client_mac, env_.port_macs[env_.client_port]);
    ++counters_.replies;
    ++counters_.stateless_replies;
    TrafficCounters& bc = counters_.backends[be_idx];
    ++bc.packets;
    bc.bytes += p.len;
    tx_side(p, retag_needed(pp.vlan, env_.client_vlan), env_.client_port, env_.client_vlan);
}

template void Dataplane::forward_stateless<4>(PacketRef&, const ParsedPacket&, uint16_t, uint16_t, Drop) noexcept;
template void Dataplane::forward_stateless<16>(PacketRef&, const ParsedPacket&, uint16_t, uint16_t, Drop) noexcept;
template void Dataplane::remember_client<4>(const PacketRef&, const ParsedPacket&) noexcept;
template void Dataplane::remember_client<16>(const PacketRef&, const ParsedPacket&) noexcept;
template void Dataplane::reply_stateless<4>(PacketRef&, const ParsedPacket&) noexcept;
template void Dataplane::reply_stateless<16>(PacketRef&, const ParsedPacket&) noexcept;

}  // namespace sluice::lb
