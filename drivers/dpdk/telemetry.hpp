// DPDK telemetry commands, so dpdk-telemetry.py and Telegraf read Sluice as they read DPDK:
// /sluice/stats (every counter, summed over the workers) and /sluice/drops (by reason).
//
// Thread contract: the commands run on DPDK's telemetry thread and read the workers'
// counters as the stats line does (each value whole, slightly stale). Construct after the
// workers are built; the destructor, before the workers go, makes the commands answer empty
// from then on (DPDK cannot unregister them).
#pragma once

#include "lib/control/workers.hpp"

namespace sluice::dpdk {

class Telemetry {
public:
    explicit Telemetry(const control::Workers& workers);
    ~Telemetry();
    Telemetry(const Telemetry&) = delete;
    Telemetry& operator=(const Telemetry&) = delete;
};

}  // namespace sluice::dpdk
