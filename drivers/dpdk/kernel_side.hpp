// The kernel side (--kernel-if): the exception path between the data ports and the host's
// network stack, run by the control core.
//
// One TAP per data port, MAC-identical to it, so the kernel's frames leave with the port's
// address and frames for the port's address reach the kernel; Sluice's own addresses
// (--self-addr) live on the backend side's TAP, so health probes and a routing daemon use
// them. The control core pumps frames both ways: what the workers hand over goes to the TAP
// (learning backends' neighbours on the way), what the kernel sends leaves through worker 0's
// TX queue. It also resolves the backends' MACs: ARP/ND solicitations every second while a
// backend is unresolved, and every 30 s for the others (a replaced server changes MAC).
//
// Health probes of tunnel VIPs go through the tunnel, as clients' packets do: the prober's
// marked sockets connect to the VIP (policy routing: a table of their own holds host routes
// to the VIPs out the backend side's TAP, with permanent neighbours, so nothing else on the
// host is affected), and their frames are wrapped here for the backend their source port
// names (control::ControlPlane::tunnel_probe). The backend's answer comes straight back to
// Sluice's own address, through the data path to the kernel, as for any probe.
//
// VLANs: the kernel knows none. The data path lets through only its side's VLAN, whose tag
// comes off here; the kernel's frames get their side's tag on the way out.
//
// Thread contract: control core only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <rte_mempool.h>

#include "drivers/dpdk/ring_workers.hpp"
#include "lib/common/expected.hpp"
#include "lib/control/control_plane.hpp"
#include "lib/lb/config.hpp"
#include "lib/lb/dataplane.hpp"

namespace sluice::dpdk {

class KernelSide {
public:
    // Creates the TAPs and puts Sluice's own addresses on the backend side's.
    static Expected<KernelSide> open(const lb::Config& cfg, const lb::WorkerEnv& env, uint16_t nb_ports,
                                     rte_mempool* pool);

    // One turn: moves the frames waiting in both directions, and solicits the neighbours due.
    void pump(RingWorkers& workers, control::ControlPlane& cp, uint64_t now_ms);

    // Sets up the policy routing of tunnel probes (sockets marked `mark` look up `table`);
    // on error nothing is left behind.
    Status enable_tunnel_probes(uint32_t mark, uint32_t table);
    // Removes the routing rules again (the routes and neighbours go with the TAP).
    void disable_tunnel_probes();

    // The tier (--announce): a VIP address on (or off) the client side's TAP, as a host
    // address, where the routing daemon sees it (BIRD: protocol direct). It vanishes with the
    // TAP, so with the process.
    Status offer(const net::IpAddr& vip, bool on);

private:
    enum class Probe : uint8_t { no, wrapped, dropped };
    void to_kernel(RingWorkers& workers, control::ControlPlane& cp);
    void from_kernel(RingWorkers& workers, const control::ControlPlane& cp);
    Probe wrap_tunnel_probe(rte_mbuf* m, const control::ControlPlane& cp);
    void sync_tunnel_routes(const control::ControlPlane& cp);
    void resolve(RingWorkers& workers, control::ControlPlane& cp, uint64_t now_ms);

    std::vector<uint16_t> tap_of_;  // data port -> TAP port id
    std::vector<net::IpAddr> self_addrs_;
    net::Mac backend_mac_;
    uint16_t client_port_ = 0, backend_port_ = 0;
    uint16_t client_vlan_ = 0, backend_vlan_ = 0;
    rte_mempool* pool_ = nullptr;
    uint64_t next_resolve_ = 0, next_refresh_ = 0;
    std::string backend_if_;  // the backend side's TAP
    std::string client_if_;   // the client side's TAP (the same in one-arm)
    uint32_t probe_mark_ = 0, probe_table_ = 0;
    uint64_t probe_generation_ = ~uint64_t{0};
    std::vector<net::IpAddr> probe_routes_;  // VIPs routed out the TAP for tunnel probes
};

}  // namespace sluice::dpdk
