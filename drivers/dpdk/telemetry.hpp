// DPDK telemetry commands, so dpdk-telemetry.py and Telegraf read Sluice as they read DPDK:
//   /sluice/stats   every counter, summed over the workers
//   /sluice/drops   drops by reason
//   /sluice/flows   flow gauges: each worker's table fill (arrays indexed by worker), and per
//                   VIP the flows its backends hold (arrays parallel to "vips")
//   /sluice/vip,NAME  one VIP's flows, and per backend (arrays parallel to "backends")
// Flows are ipvsadm's ActiveConn (established TCP) and InActConn (every other state), as in
// `sluicectl list`. DPDK 22.11 nests no deeper than an array of numbers or strings in a dict,
// hence the parallel arrays.
//
// Thread contract: the commands run on DPDK's telemetry thread and read the workers'
// counters and table sizes as the stats line does (each value whole, slightly stale); VIP
// names come from the service snapshot the control core last handed to set_service(). Construct
// after the workers are built; the destructor, before the workers go, makes the commands
// answer empty from then on (DPDK cannot unregister them).
#pragma once

#include <memory>

#include "lib/control/workers.hpp"
#include "lib/lb/service.hpp"

namespace sluice::dpdk {

class Telemetry {
public:
    explicit Telemetry(const control::Workers& workers);
    ~Telemetry();
    Telemetry(const Telemetry&) = delete;
    Telemetry& operator=(const Telemetry&) = delete;

    // The snapshot whose VIP and backend names the flow commands report. Control core only;
    // cheap when `service` is the one already held.
    void set_service(const std::shared_ptr<const lb::Service>& service);

private:
    // The snapshot set_service() last handed over (held there, so its address is not reused).
    const lb::Service* held_ = nullptr;
};

}  // namespace sluice::dpdk
