#include "drivers/dpdk/runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>

#include <grp.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "drivers/dpdk/port.hpp"
#include "drivers/dpdk/port_facts.hpp"
#include "drivers/linux/sd_notify.hpp"
#include "lib/config/options.hpp"
#include "lib/doctor/doctor.hpp"
#include "lib/lb/snat_ports.hpp"
#include "lib/lb/stats_json.hpp"

namespace sluice::dpdk {

namespace {

// Tells systemd (Type=notify) where Sluice stands; a no-op outside systemd. A failure only
// costs the service manager's view of the state, never the forwarding.
void sd_notify(const std::string& state) {
    if (auto st = linux_sd::notify(state); !st) fmt::print(stderr, "sluice: warning: {}\n", st.error());
}

// Tunnel probes' socket mark and routing table (and rule priority): Sluice's own numbers.
constexpr uint32_t kTunnelProbeMark = 0x51CE7E00;
constexpr uint32_t kTunnelProbeTable = 20942;

// Unix time in milliseconds (replication's timestamps).
uint64_t unix_ms() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// UTC wall-clock time to the millisecond, ISO 8601: the prefix of the control core's log lines.
std::string timestamp() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                       t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1'000'000);
}

const char* arms(const lb::WorkerEnv& env) { return env.client_port == env.backend_port ? "one-arm" : "two-arm"; }

}  // namespace

Runtime::Runtime(const lb::Config& cfg, std::vector<std::string> app_args, const std::atomic<bool>& stop,
                 std::atomic<bool>& reload)
    : cfg_(cfg), app_args_(std::move(app_args)), stop_(stop), reload_(reload) {}

Runtime::~Runtime() {
    // The order the pieces depend on each other: readers of the workers first, the pool last.
    telemetry_.reset();
    sync_.reset();
    ctl_.reset();
    metrics_.reset();
    cp_.reset();
    workers_.reset();
    if (pool_) rte_mempool_free(pool_);
}

Expected<std::unique_ptr<Runtime>> Runtime::build(const lb::Config& cfg, std::vector<std::string> app_args,
                                                  const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    std::unique_ptr<Runtime> rt(new Runtime(cfg, std::move(app_args), stop, reload));
    if (auto st = rt->bring_up(); !st) return make_error(st.error());
    return rt;
}

Status Runtime::bring_up() {
    logtype_ = rte_log_register_type_and_pick_level("sluice.control", RTE_LOG_INFO);
    if (logtype_ < 0) logtype_ = RTE_LOGTYPE_USER1;
    flowlog_type_ = rte_log_register_type_and_pick_level("sluice.flowlog", RTE_LOG_INFO);
    if (flowlog_type_ < 0) flowlog_type_ = RTE_LOGTYPE_USER2;
    tsc_per_ms_ = rte_get_tsc_hz() / 1000;
    nb_ports_ = rte_eth_dev_count_avail();
    if (nb_ports_ == 0 || nb_ports_ > kMaxPorts)
        return make_error(
            fmt::format("found {} DPDK ports; Sluice needs 1 (one-arm) or 2 (client side, backend side)", nb_ports_));
    if (auto st = lb::configure_worker_env(cfg_, nb_ports_, env_); !st) return st;
    // Tunnels: without --tunnel-mtu, what the backend side's port carries.
    if (uint16_t mtu = 0; !cfg_.tunnel_mtu && rte_eth_dev_get_mtu(env_.backend_port, &mtu) == 0 && mtu >= 576)
        env_.settings.tunnel_mtu = mtu;
    // The flow and fragment tables' secret: fresh per process, never logged (flow_hash.hpp).
    if (!lb::HashKey::random(env_.hash_key))
        return make_error("cannot read a random hash key from the kernel (getrandom, /dev/urandom)");

    RingWorkers::Options wo;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) wo.lcores.push_back(lc);
    const uint16_t nb_workers = wo.lcores.empty() ? 1 : static_cast<uint16_t>(wo.lcores.size());

    // What the hardware cannot serve stops here, before any port or memory is touched.
    if (!preflight(cfg_)) return make_error("");  // its findings are printed
    const uint32_t nb_mbufs = cfg_.total_num_mbufs ? cfg_.total_num_mbufs
                                                   : doctor::mbufs_needed(nb_ports_, nb_workers, cfg_.rxd, cfg_.txd,
                                                                          cfg_.burst, cfg_.mbcache, !cfg_.kernel_if.empty());
    // Packet memory on the NUMA node of the NIC that DMAs into it (the doctor warns when the
    // workers sit elsewhere); vdevs report no node: the main lcore's.
    const int port_socket = rte_eth_dev_socket_id(env_.client_port);
    const int data_socket = port_socket >= 0 ? port_socket : static_cast<int>(rte_socket_id());
    pool_ = rte_pktmbuf_pool_create("sluice_mbufs", nb_mbufs, cfg_.mbcache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, data_socket);
    if (!pool_ && port_socket >= 0) {
        // No memory on the NIC's node (hugepages reserved elsewhere): slower, but running.
        fmt::print(stderr, "sluice: warning: no room for {} mbufs on NUMA node {} (port {}'s): using any node; "
                   "reserve hugepages on node {}\n", nb_mbufs, port_socket, env_.client_port, port_socket);
        pool_ = rte_pktmbuf_pool_create("sluice_mbufs", nb_mbufs, cfg_.mbcache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                        SOCKET_ID_ANY);
    }
    if (!pool_)
        return make_error(fmt::format("cannot allocate {} mbufs: {} (reserve hugepages or lower --total-num-mbufs)",
                                      nb_mbufs, rte_strerror(rte_errno)));

    env_.nb_workers = nb_workers;
    env_.reta = net::Reta::round_robin(nb_workers);
    env_.exception_path = !cfg_.kernel_if.empty();
    for (const auto& share : lb::snat_shares(cfg_, nb_workers, env_.reta)) fmt::print("{}\n", lb::describe(share));
    if (auto st = lb::check_snat_shares(cfg_, nb_workers, env_.reta); !st) return st;
    for (uint16_t p = 0; p < nb_ports_; ++p) {
        auto info = setup_port(p, {nb_workers, static_cast<uint16_t>(cfg_.rxd), static_cast<uint16_t>(cfg_.txd), pool_});
        if (!info) return make_error(info.error());
        env_.port_macs.push_back(info->mac);
        fmt::print("port {}: {} ({}) mac {} queues {}{}\n", p, info->name, info->driver, net::to_string(info->mac),
                   nb_workers, info->rss ? " rss" : "");
    }
    check_links_after_start(nb_ports_);
    if (env_.exception_path) {
        auto k = KernelSide::open(cfg_, env_, nb_ports_, pool_);
        if (!k) return make_error(k.error());
        kernel_.emplace(std::move(*k));
    }
    if (rte_pdump_init() != 0)  // lets dpdk-dumpcap capture from the running process
        fmt::print(stderr, "sluice: warning: pdump unavailable: {}\n", rte_strerror(rte_errno));

    wo.nb_ports = nb_ports_;
    wo.burst = cfg_.burst;
    wo.exception_path = env_.exception_path;
    wo.logtype = logtype_;
    wo.idle_sleep_us = cfg_.idle_sleep_us;
    auto workers = RingWorkers::create(std::move(wo), halt_);
    if (!workers) return make_error(workers.error());
    workers_ = std::move(*workers);

    // The control plane builds the first snapshot; the workers start on it.
    auto prober = control::Prober::create();
    if (!prober) return make_error(prober.error());
    control::Hooks hooks;
    hooks.log = [this](const std::string& line) {
        rte_log(RTE_LOG_NOTICE, static_cast<uint32_t>(logtype_), "%s sluice: %s\n", timestamp().c_str(), line.c_str());
    };
    hooks.admit = [this](const lb::Config& next) { return lb::check_snat_shares(next, env_.nb_workers, env_.reta); };
    if (cfg_.announce && kernel_)  // the rules demand --kernel-if with --announce
        hooks.route = [this](const net::IpAddr& vip, bool on) { return kernel_->offer(vip, on); };
    hooks.reread = [this]() -> Expected<lb::Config> {
        auto p = config::parse_args(app_args_);
        if (!p) return make_error(p.error());
        return p->config;
    };
    hooks.more_stats = [this] { return sync_ ? sync_->stats() : std::string(); };
    // systemd waits from RELOADING=1 to the next READY=1, failed reload or not (a refused file
    // leaves the old configuration forwarding); the status line keeps the outcome.
    hooks.reload_started = [] { sd_notify(linux_sd::reloading_message()); };
    hooks.reload_done = [this](const Status& st) {
        if (!st) {
            // The control plane has logged it, once ("reload rejected, ..."); the status says it
            // on one line (a newline would end the STATUS= field).
            std::string why = st.error();
            std::replace(why.begin(), why.end(), '\n', ' ');
            reload_outcome_ = fmt::format("reload failed at {}, old configuration kept: {}", timestamp(), why);
        } else {
            reload_outcome_ = fmt::format("configuration reloaded at {}", timestamp());
        }
        sd_notify("READY=1\nSTATUS=forwarding; " + reload_outcome_);
    };
    cp_ = std::make_unique<control::ControlPlane>(cfg_, *workers_, std::move(hooks), std::move(*prober));
    // Probes leave from Sluice's own address on the backend side (which only the kernel side
    // holds; without one the kernel picks the source).
    if (env_.exception_path)
        for (const auto& a : cfg_.self_addrs) cp_->prober().set_source(a);
    if (auto st = cp_->start(now_ms64()); !st) return st;
    // Tunnel VIPs' probes through the tunnel need the kernel side (and CAP_NET_ADMIN for the
    // socket marks and routing rules); without them they probe the backends' own addresses.
    if (kernel_) {
        if (auto st = kernel_->enable_tunnel_probes(kTunnelProbeMark, kTunnelProbeTable); st)
            cp_->enable_tunnel_probes(kTunnelProbeMark);
        else
            fmt::print(stderr, "sluice: warning: tunnel VIPs' health checks will probe the backends' own addresses, "
                               "not through the tunnel: {}\n", st.error());
    }
    if (auto st = workers_->build(env_, cfg_.flow_capacity); !st) return st;

    // Replication: until every peer has sent its state (or failed to: down), nothing is offered.
    if (cfg_.sync.id) {
        auto agent = control::SyncAgent::open(cfg_.sync, cfg_.timeouts, unix_ms(), [this](const std::string& line) {
            rte_log(RTE_LOG_NOTICE, static_cast<uint32_t>(logtype_), "%s sluice: %s\n", timestamp().c_str(),
                    line.c_str());
        });
        if (!agent) return make_error(agent.error());
        sync_ = std::move(*agent);
        cp_->hold(sync_->hold_reason());
    }

    // Flow log: one event ring per worker, drained and rate-limited by the control core.
    if (cfg_.flow_log_one_in) {
        flow_log_.emplace(cfg_.flow_log_rate, [this](const std::string& line) {
            rte_log(RTE_LOG_INFO, static_cast<uint32_t>(flowlog_type_), "%s sluice: %s\n", timestamp().c_str(),
                    line.c_str());
        });
        workers_->enable_flow_log(cfg_.flow_log_one_in, *flow_log_);
    }

    if (!cfg_.control_socket.empty()) {
        // The default lives in /run/sluice (systemd's RuntimeDirectory); make it if absent.
        if (auto slash = cfg_.control_socket.rfind('/'); slash != std::string::npos && slash > 0)
            ::mkdir(cfg_.control_socket.substr(0, slash).c_str(), 0755);  // others may read (roles: ctl_server.hpp)
        control::CtlServerOptions ctl_options;
        if (!cfg_.control_group.empty()) {
            const group* g = ::getgrnam(cfg_.control_group.c_str());
            if (!g) return make_error(fmt::format("--control-group '{}': no such group", cfg_.control_group));
            ctl_options.control_gid = g->gr_gid;
        }
        auto srv = control::CtlServer::open(cfg_.control_socket, ctl_options);
        if (!srv) return make_error(fmt::format("control socket: {} (or pass --control-socket none)", srv.error()));
        ctl_.emplace(std::move(*srv));
    }
    if (cfg_.metrics_listen) {
        auto m = control::MetricsServer::open(cfg_.metrics_listen->first, cfg_.metrics_listen->second);
        if (!m) return make_error(m.error());
        metrics_.emplace(std::move(*m));
        fmt::print("metrics: http://{}/metrics\n", net::to_string(cfg_.metrics_listen->first, metrics_->port()));
    }
    telemetry_.emplace(*workers_);

    fmt::print("sluice: {} VIPs, {} workers, {} ports ({}), forwarding; Ctrl-C to stop\n", cfg_.vips.size(),
               nb_workers, nb_ports_, arms(env_));
    std::fflush(stdout);
    status_ = fmt::format("STATUS=forwarding: {} VIPs, {} workers, {} ports ({})", cfg_.vips.size(), nb_workers,
                          nb_ports_, arms(env_));
    return {};
}

uint64_t Runtime::now_ms64() const noexcept { return rte_get_tsc_cycles() / tsc_per_ms_; }

// The control core's turn: control socket, probes, reload, the exception path, neighbour
// resolution, snapshot reclamation. Never blocks for long (a worker may be running it).
void Runtime::control_step() {
    const uint64_t now = now_ms64();
    if (!ready_sent_) {  // READY=1 waits for the first turn: by then the workers poll their queues
        ready_sent_ = true;
        sd_notify("READY=1\n" + status_);
    }
    check_stop(now);
    check_workers(now);
    if (ctl_)
        ctl_->poll(0, [&](const Expected<control::Command>& c, const control::Peer& peer) {
            return cp_->handle(c, peer);
        });
    cp_->poll(now, workers_->main_runs_worker() ? 0 : 1);
    if (metrics_) metrics_->poll(now, [this] { return metrics(); });
    // SIGHUP; `sluicectl reload` (the unit's ExecReload) takes the same path through the
    // control plane, whose hooks tell systemd (reload_started, reload_done).
    if (reload_.exchange(false)) (void)cp_->reload();
    if (kernel_) kernel_->pump(*workers_, *cp_, now);
    if (cfg_.stats_period_s)
        if (const uint64_t tsc = rte_get_tsc_cycles(); tsc - last_.tsc >= cfg_.stats_period_s * rte_get_tsc_hz())
            print_stats_line(tsc);
    if (telemetry_) telemetry_->set_service(cp_->service());
    if (flow_log_) flow_log_->drain(now, *cp_->service());
    if (sync_) {
        sync_->poll(unix_ms(), *workers_, *cp_->service());
        cp_->hold(sync_->hold_reason());
    } else {
        workers_->relay_persist();
    }
    workers_->reclaim();
}

// SIGINT/SIGTERM: with --drain-time, withdraw every VIP and forward that long first, so that
// the routers move the traffic away before the instance goes (a graceful stop breaks nothing).
void Runtime::check_stop(uint64_t now_ms) {
    if (!stopping_ && stop_.load(std::memory_order_relaxed)) {
        stopping_ = true;
        halt_at_ms_ = now_ms + uint64_t{cfg_.drain_time_s} * 1000;
        if (cfg_.drain_time_s) {
            cp_->withdraw_all(fmt::format("stopping: forwarding {} s more while the routers move away", cfg_.drain_time_s));
            fmt::print("{} sluice: stopping in {} s (--drain-time); forwarding until then\n", timestamp(),
                       cfg_.drain_time_s);
            std::fflush(stdout);
            sd_notify(fmt::format("STOPPING=1\nSTATUS=draining: VIPs withdrawn, exiting in {} s", cfg_.drain_time_s));
        }
    }
    if (stopping_ && now_ms >= halt_at_ms_) halt_.store(true, std::memory_order_relaxed);
}

// The tier: VIPs are offered only while every worker polls. One that has not moved for a
// second (stuck, or starved of its core) withdraws them all until it moves again.
void Runtime::check_workers(uint64_t now_ms) {
    if (now_ms < next_progress_ms_) return;
    next_progress_ms_ = now_ms + 100;
    constexpr uint64_t kStallMs = 1000;
    progress_.resize(workers_->size(), Progress{0, now_ms});
    std::string stalled;
    for (uint16_t w = 0; w < workers_->size(); ++w) {
        const uint64_t loops = workers_->loop_stats(w).loops;
        if (loops != progress_[w].loops) progress_[w] = {loops, now_ms};
        if (progress_[w].loops == 0 || now_ms - progress_[w].moved_ms >= kStallMs)
            stalled = progress_[w].loops == 0 ? fmt::format("worker {} has not started polling", w)
                                              : fmt::format("worker {} has not polled for {} ms", w,
                                                            now_ms - progress_[w].moved_ms);
    }
    cp_->set_forwarding(stalled.empty(), stalled);
}

// The control plane's series, and the poll loops' own.
std::string Runtime::metrics() const {
    std::string o = cp_->metrics();
    if (sync_) o += sync_->metrics();
    o += "# HELP sluice_worker_polls_total Poll-loop iterations of the worker.\n"
         "# TYPE sluice_worker_polls_total counter\n";
    for (uint16_t w = 0; w < workers_->size(); ++w)
        o += fmt::format("sluice_worker_polls_total{{worker=\"{}\"}} {}\n", w, workers_->loop_stats(w).loops);
    o += "# HELP sluice_worker_busy_polls_total Poll-loop iterations that found packets (busy / polls = load).\n"
         "# TYPE sluice_worker_busy_polls_total counter\n";
    for (uint16_t w = 0; w < workers_->size(); ++w)
        o += fmt::format("sluice_worker_busy_polls_total{{worker=\"{}\"}} {}\n", w, workers_->loop_stats(w).busy_loops);
    return o;
}

void Runtime::print_stats_line(uint64_t now_tsc) {
    const lb::WorkerCounters t = workers_->counters();
    const double secs = static_cast<double>(now_tsc - last_.tsc) / static_cast<double>(rte_get_tsc_hz());
    auto rate = [secs](uint64_t now_v, uint64_t then_v) { return static_cast<double>(now_v - then_v) / secs; };
    const std::string rates = fmt::format("rx-pps {:.0f} tx-pps {:.0f} new-flows-ps {:.0f}", rate(t.rx, last_.rx),
                                          rate(t.tx, last_.tx), rate(t.maglev_picks, last_.new_flows));
    fmt::print("{} stats: {} | {}\n", timestamp(), rates, lb::stats_summary(workers_->dataplanes()));
    std::fflush(stdout);
    sd_notify("STATUS=forwarding: " + rates + (reload_outcome_.empty() ? "" : "; " + reload_outcome_));
    last_ = {t.rx, t.tx, t.maglev_picks, now_tsc};
}

Status Runtime::run() {
    start_tsc_ = last_.tsc = rte_get_tsc_cycles();
    if (workers_->main_runs_worker()) {
        workers_->run_main([this] { control_step(); });
        return {};
    }
    Status launched = workers_->launch();
    while (launched && !halt_.load(std::memory_order_relaxed)) control_step();
    return launched;
}

int Runtime::shutdown() {
    halt_.store(true, std::memory_order_relaxed);  // also when run() failed half-way
    sd_notify("STOPPING=1\nSTATUS=stopping: printing totals");
    workers_->join();
    const double secs = static_cast<double>(rte_get_tsc_cycles() - start_tsc_) / static_cast<double>(rte_get_tsc_hz());
    workers_->park();
    const lb::WorkerCounters total = workers_->counters();
    const auto dataplanes = workers_->dataplanes();
    fmt::print("\n---------------------- Forward statistics for all ports ----------------------\n");
    for (uint16_t p = 0; p < nb_ports_; ++p) {
        rte_eth_stats st{};
        rte_eth_stats_get(p, &st);
        fmt::print("  port {}: RX-packets: {:<12} RX-dropped: {:<10} TX-packets: {:<12} TX-errors: {}\n", p,
                   st.ipackets, st.imissed + st.ierrors, st.opackets, st.oerrors);
    }
    fmt::print("  {}\n", lb::stats_summary(dataplanes));
    for (uint16_t w = 0; w < workers_->size(); ++w) {
        const auto ls = workers_->loop_stats(w);
        fmt::print("  worker {}: {} polls, {:.1f}% found packets\n", w, ls.loops,
                   ls.loops ? 100.0 * static_cast<double>(ls.busy_loops) / static_cast<double>(ls.loops) : 0.0);
    }
    fmt::print("  elapsed {:.3f} s, rx {:.3f} Mpps, tx {:.3f} Mpps\n", secs,
               static_cast<double>(total.rx) / secs / 1e6, static_cast<double>(total.tx) / secs / 1e6);
    if (!cfg_.stats_json.empty()) std::ofstream(cfg_.stats_json) << lb::stats_to_json(dataplanes);
    telemetry_.reset();
    ctl_.reset();
    metrics_.reset();
    if (kernel_) kernel_->disable_tunnel_probes();
    // Ids first: closing a port lowers rte_eth_dev_count_avail(), which would leave the last
    // ports (the kernel side's TAPs) open, their RX rings holding mbufs.
    std::vector<uint16_t> all_ports;
    uint16_t pid;
    RTE_ETH_FOREACH_DEV(pid) all_ports.push_back(pid);
    for (uint16_t p : all_ports) {
        rte_eth_dev_stop(p);
        rte_eth_dev_close(p);
    }
    // Every mbuf is back once the ports are closed: anything missing leaked on some path.
    const unsigned back = rte_mempool_avail_count(pool_);
    int rc = 0;
    if (back != pool_->size) {
        fmt::print(stderr, "sluice: mbuf leak: {} of {} mbufs not returned to the pool\n", pool_->size - back,
                   pool_->size);
        rc = 1;
    } else {
        fmt::print("  mbufs: all {} back in the pool\n", pool_->size);
    }
    return rc;
}

}  // namespace sluice::dpdk
