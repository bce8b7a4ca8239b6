// The sluice binary's process: everything between a parsed configuration and exit.
//
// build() brings up what forwarding needs, in order: the packet pool, the ports, the kernel
// side, the control plane and its first snapshot, the workers (on their lcores) and their
// rings, the control socket and telemetry. run() starts the poll loops and is the control
// core until `stop`: control socket, health probes, reloads (when `reload` is raised), the
// exception path, snapshot reclamation and periodic statistics. With a single lcore the main
// lcore runs the only worker and gives the control core a turn every millisecond.
// shutdown() prints the forward statistics, closes the ports and checks that every mbuf came
// back to the pool.
//
// Thread contract: the main lcore, after the EAL is initialised.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rte_mempool.h>

#include "drivers/dpdk/kernel_side.hpp"
#include "drivers/dpdk/ring_workers.hpp"
#include "drivers/dpdk/telemetry.hpp"
#include "lib/common/expected.hpp"
#include "lib/control/control_plane.hpp"
#include "lib/control/ctl_server.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/control/metrics_server.hpp"
#include "lib/control/sync_agent.hpp"
#include "lib/lb/config.hpp"

namespace sluice::dpdk {

class Runtime {
public:
    // `app_args` are re-parsed on every reload; `stop` and `reload` are raised by signal
    // handlers and outlive the runtime. An empty error has been reported already (the
    // pre-flight findings).
    static Expected<std::unique_ptr<Runtime>> build(const lb::Config& cfg, std::vector<std::string> app_args,
                                                    const std::atomic<bool>& stop, std::atomic<bool>& reload);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Forwards until `stop`; an error if the workers could not all start (then stop it too).
    Status run();
    // Prints the totals and releases the ports and the pool; 1 if mbufs leaked, else 0.
    int shutdown();

private:
    Runtime(const lb::Config& cfg, std::vector<std::string> app_args, const std::atomic<bool>& stop,
            std::atomic<bool>& reload);
    Status bring_up();
    void control_step();
    void check_stop(uint64_t now_ms);
    void check_workers(uint64_t now_ms);
    std::string metrics() const;
    void print_stats_line(uint64_t now_tsc);
    uint64_t now_ms64() const noexcept;

    lb::Config cfg_;
    std::vector<std::string> app_args_;
    const std::atomic<bool>& stop_;
    std::atomic<bool>& reload_;
    int logtype_ = 0;       // rte_log type "sluice.control": --log-level=sluice.control:debug works
    int flowlog_type_ = 0;  // rte_log type "sluice.flowlog"
    uint64_t tsc_per_ms_ = 1;
    uint16_t nb_ports_ = 0;
    lb::WorkerEnv env_;
    rte_mempool* pool_ = nullptr;
    std::unique_ptr<RingWorkers> workers_;
    std::optional<KernelSide> kernel_;
    std::unique_ptr<control::ControlPlane> cp_;
    std::optional<control::FlowLogWriter> flow_log_;
    std::optional<control::CtlServer> ctl_;
    std::optional<control::MetricsServer> metrics_;
    std::unique_ptr<control::SyncAgent> sync_;  // replication (--sync-id)
    std::optional<Telemetry> telemetry_;
    bool ready_sent_ = false;  // READY=1 sent to systemd
    // Stopping: the signal came at stop_; the poll loops end at halt_, after --drain-time.
    std::atomic<bool> halt_{false};
    bool stopping_ = false;
    uint64_t halt_at_ms_ = 0;
    // Worker liveness for the tier: each worker's poll count when it last moved.
    struct Progress {
        uint64_t loops = 0;
        uint64_t moved_ms = 0;
    };
    std::vector<Progress> progress_;
    uint64_t next_progress_ms_ = 0;
    std::string status_;      // systemd STATUS= while forwarding
    // The last SIGHUP reload's outcome, with its time: every later STATUS= carries it, so
    // `systemctl status` shows a refused reload until the next one.
    std::string reload_outcome_;
    uint64_t start_tsc_ = 0;
    struct {
        uint64_t rx = 0, tx = 0, new_flows = 0, tsc = 0;
    } last_;  // at the previous stats line
};

}  // namespace sluice::dpdk
