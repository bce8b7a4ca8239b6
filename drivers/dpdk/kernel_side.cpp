#include "drivers/dpdk/kernel_side.hpp"

#include <algorithm>
#include <string>

#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <fmt/format.h>

#include "drivers/dpdk/port.hpp"
#include "drivers/linux/netlink.hpp"
#include "lib/net/neighbor.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/wire.hpp"
#include "lib/common/hash_mix.hpp"
#include "lib/lb/tunnel_encap.hpp"

namespace sluice::dpdk {

Expected<KernelSide> KernelSide::open(const lb::Config& cfg, const lb::WorkerEnv& env, uint16_t nb_ports,
                                      rte_mempool* pool) {
    KernelSide k;
    k.tap_of_.resize(nb_ports);
    for (uint16_t p = 0; p < nb_ports; ++p) {
        const std::string iface = fmt::format("{}{}", cfg.kernel_if, p);
        const std::string vdev = fmt::format("net_tap_sluice{}", p);
        const std::string args = fmt::format("iface={},mac={}", iface, net::to_string(env.port_macs[p]));
        if (int rc = rte_eal_hotplug_add("vdev", vdev.c_str(), args.c_str()); rc != 0)
            return make_error(fmt::format("cannot create TAP {} ({}): {} (is the tun module loaded?)", iface, args,
                                          rte_strerror(-rc)));
        uint16_t id = 0;
        if (rte_eth_dev_get_port_by_name(vdev.c_str(), &id) != 0)
            return make_error(fmt::format("TAP {} has no port id", iface));
        auto info = setup_port(id, {1, 256, 256, pool});
        if (!info) return make_error(info.error());
        k.tap_of_[p] = id;
        fmt::print("port {}: kernel side {} (port {})\n", p, iface, id);
    }
    const std::string iface = fmt::format("{}{}", cfg.kernel_if, env.backend_port);
    for (size_t i = 0; i < cfg.self_addrs.size(); ++i) {
        const uint8_t len = i < cfg.self_prefixes.size() ? cfg.self_prefixes[i] : (cfg.self_addrs[i].is_v4() ? 32 : 128);
        if (auto st = linux_nl::add_address(iface, cfg.self_addrs[i], len); !st) return make_error(st.error());
        fmt::print("kernel side: {}/{} on {}\n", net::to_string(cfg.self_addrs[i]), len, iface);
    }
    k.self_addrs_ = cfg.self_addrs;
    k.backend_mac_ = env.port_macs[env.backend_port];
    k.client_port_ = env.client_port;
    k.backend_port_ = env.backend_port;
    k.client_vlan_ = env.client_vlan;
    k.backend_vlan_ = env.backend_vlan;
    k.pool_ = pool;
    k.backend_if_ = iface;
    k.client_if_ = fmt::format("{}{}", cfg.kernel_if, env.client_port);
    return k;
}

Status KernelSide::offer(const net::IpAddr& vip, bool on) {
    const uint8_t len = vip.is_v4() ? 32 : 128;
    return on ? linux_nl::add_address(client_if_, vip, len) : linux_nl::delete_address(client_if_, vip, len);
}

void KernelSide::pump(RingWorkers& workers, control::ControlPlane& cp, uint64_t now_ms) {
    to_kernel(workers, cp);
    if (probe_mark_ && cp.tunnel_probe_generation() != probe_generation_) sync_tunnel_routes(cp);
    from_kernel(workers, cp);
    resolve(workers, cp, now_ms);
}

// Worker -> kernel: learn neighbours on the way, then hand the frame to the TAP.
void KernelSide::to_kernel(RingWorkers& workers, control::ControlPlane& cp) {
    rte_mbuf* pkts[32];
    const uint16_t nb_ports = static_cast<uint16_t>(tap_of_.size());
    for (uint16_t w = 0; w < workers.size(); ++w) {
        const unsigned n = rte_ring_sc_dequeue_burst(workers.to_control(w), reinterpret_cast<void**>(pkts), 32, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            if (m->data_len >= RTE_ETHER_HDR_LEN + 4 &&
                rte_pktmbuf_mtod(m, const rte_ether_hdr*)->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN))
                rte_vlan_strip(m);
            // Backends live on the backend side: a claim from the client side is not believed
            // (it could redirect a backend's traffic).
            if (m->port == backend_port_)
                if (auto nb = net::learn_neighbor(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len))
                    cp.learn_neighbor(nb->first, nb->second);
            const uint16_t tap = tap_of_[m->port < nb_ports ? m->port : 0];
            if (rte_eth_tx_burst(tap, 0, &m, 1) != 1) rte_pktmbuf_free(m);
        }
    }
}

// Kernel -> wire: through worker 0's TX queue (the control core owns no data queue).
void KernelSide::from_kernel(RingWorkers& workers, const control::ControlPlane& cp) {
    rte_mbuf* pkts[32];
    for (uint16_t p = 0; p < tap_of_.size(); ++p) {
        const uint16_t n = rte_eth_rx_burst(tap_of_[p], 0, pkts, 32);
        const uint16_t vlan = p == backend_port_ ? backend_vlan_ : p == client_port_ ? client_vlan_ : 0;
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            pkts[i]->port = p;
            if (probe_mark_ && p == backend_port_ && wrap_tunnel_probe(pkts[i], cp) == Probe::dropped) {
                rte_pktmbuf_free(pkts[i]);
                continue;
            }
            if (vlan) {
                pkts[i]->vlan_tci = vlan;
                if (rte_vlan_insert(&pkts[i]) != 0) {
                    rte_pktmbuf_free(pkts[i]);
                    continue;
                }
            }
            pkts[kept++] = pkts[i];
        }
        const unsigned q = kept ? rte_ring_sp_enqueue_burst(workers.inject(), reinterpret_cast<void**>(pkts), kept, nullptr) : 0;
        if (q < kept) rte_pktmbuf_free_bulk(pkts + q, kept - q);
    }
}

// Solicits backends without a static MAC: every second while unresolved, every 30 s for the
// others.
void KernelSide::resolve(RingWorkers& workers, control::ControlPlane& cp, uint64_t now_ms) {
    const bool refresh = now_ms >= next_refresh_;
    if (now_ms < next_resolve_ && !refresh) return;
    next_resolve_ = now_ms + 1000;
    if (refresh) next_refresh_ = now_ms + 30'000;
    const auto targets = refresh ? cp.dynamic_neighbors() : cp.unresolved();
    for (const auto& t : targets) {
        const net::IpAddr* sender = nullptr;
        for (const auto& a : self_addrs_)
            if (a.family == t.family) sender = &a;
        if (!sender && !t.is_v4()) continue;  // a solicitation needs a source address
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        if (!m) break;
        uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
        const net::IpAddr any = net::IpAddr{};
        size_t len = t.is_v4() ? net::build_arp_request(buf, backend_mac_, sender ? *sender : any, t)
                               : net::build_neighbor_solicit(buf, backend_mac_, *sender, t);
        if (backend_vlan_) len = net::insert_vlan_tag(buf, len, backend_vlan_);
        m->data_len = static_cast<uint16_t>(len);
        m->pkt_len = static_cast<uint32_t>(len);
        m->port = backend_port_;
        if (rte_ring_sp_enqueue(workers.inject(), m) != 0) rte_pktmbuf_free(m);
    }
}

Status KernelSide::enable_tunnel_probes(uint32_t mark, uint32_t table) {
    const uint32_t priority = table;
    if (auto st = linux_nl::add_mark_rule(net::Family::v4, mark, table, priority); !st) return st;
    if (auto st = linux_nl::add_mark_rule(net::Family::v6, mark, table, priority); !st) {
        (void)linux_nl::delete_mark_rule(net::Family::v4, mark, table, priority);
        return st;
    }
    probe_mark_ = mark;
    probe_table_ = table;
    return {};
}

void KernelSide::disable_tunnel_probes() {
    if (!probe_mark_) return;
    for (auto f : {net::Family::v4, net::Family::v6})
        if (auto st = linux_nl::delete_mark_rule(f, probe_mark_, probe_table_, probe_table_); !st)
            fmt::print(stderr, "sluice: warning: {}\n", st.error());
    probe_mark_ = 0;
}

// Host routes to the VIPs that tunnel probes go to, out the backend side's TAP, and the TAP's
// own MAC as their neighbour (the frames come back here, never to the wire as they are).
void KernelSide::sync_tunnel_routes(const control::ControlPlane& cp) {
    probe_generation_ = cp.tunnel_probe_generation();
    for (const auto& vip : cp.tunnel_probe_vips()) {
        if (std::find(probe_routes_.begin(), probe_routes_.end(), vip) != probe_routes_.end()) continue;
        auto st = linux_nl::add_neighbor(backend_if_, vip, backend_mac_);
        if (st) st = linux_nl::add_route(backend_if_, vip, probe_table_);
        if (!st) {
            fmt::print(stderr, "sluice: warning: tunnel probes to {}: {}\n", net::to_string(vip), st.error());
            continue;
        }
        probe_routes_.push_back(vip);
    }
}

// A probe of a tunnel VIP (TCP to the VIP from a tunnel probe port) is wrapped, in its mbuf,
// for the backend its source port names; anything else is left as it is.
KernelSide::Probe KernelSide::wrap_tunnel_probe(rte_mbuf* m, const control::ControlPlane& cp) {
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    net::ParsedPacket pp;
    if (net::parse_packet(f, m->data_len, pp) != net::ParseStatus::ok || pp.l4_proto != net::kIpProtoTcp ||
        pp.frag != net::Frag::none)
        return Probe::no;
    const uint16_t sport = net::port_from_raw(pp.sport_raw), dport = net::port_from_raw(pp.dport_raw);
    if (sport < control::ControlPlane::kTunnelProbePortFirst ||
        sport >= control::ControlPlane::kTunnelProbePortFirst + control::ControlPlane::kTunnelProbePorts)
        return Probe::no;
    uint8_t* ip = f + pp.l3_off;
    const bool v4 = pp.l3 == net::L3::ipv4;
    const net::IpAddr dst = v4 ? net::IpAddr::v4(ip + net::Ipv4Off::dst) : net::IpAddr::v6(ip + net::Ipv6Off::dst);
    const uint32_t inner_len = pp.ip_end - pp.l3_off;
    const auto route = cp.tunnel_probe(dst, dport, sport);
    if (!route) return Probe::dropped;  // to a VIP routed here, but for no backend (any more)
    const lb::Service& s = *cp.service();
    const lb::VipEntry& vip = s.vips()[route->vip];
    const lb::BackendEntry& be = s.backends()[route->backend];
    if (!be.has_mac) return Probe::dropped;  // the next hop is not resolved yet: the check fails
    const uint32_t overhead = lb::tunnel_overhead(be.addr.is_v4(), vip.encap == lb::Encap::gue);
    if (rte_pktmbuf_prepend(m, static_cast<uint16_t>(overhead)) == nullptr) return Probe::dropped;
    const uint32_t frame_len = net::kEthHdrLen + overhead + inner_len;
    m->data_len = static_cast<uint16_t>(frame_len);
    m->pkt_len = frame_len;
    lb::write_tunnel_headers(ip, inner_len, v4, static_cast<uint32_t>(flow_mix(sport)),
                             {be.mac, backend_mac_, s.tunnel_source(be.addr.family), be.addr,
                              vip.encap == lb::Encap::gue, vip.gue_port_raw});
    return Probe::wrapped;
}

}  // namespace sluice::dpdk
