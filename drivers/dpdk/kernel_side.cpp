#include "drivers/dpdk/kernel_side.hpp"

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
#include "lib/net/wire.hpp"

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
    return k;
}

void KernelSide::pump(RingWorkers& workers, control::ControlPlane& cp, uint64_t now_ms) {
    to_kernel(workers, cp);
    from_kernel(workers);
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
void KernelSide::from_kernel(RingWorkers& workers) {
    rte_mbuf* pkts[32];
    for (uint16_t p = 0; p < tap_of_.size(); ++p) {
        const uint16_t n = rte_eth_rx_burst(tap_of_[p], 0, pkts, 32);
        const uint16_t vlan = p == backend_port_ ? backend_vlan_ : p == client_port_ ? client_vlan_ : 0;
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            pkts[i]->port = p;
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

}  // namespace sluice::dpdk
