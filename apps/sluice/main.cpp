// sluice: the load balancer. `sluice [EAL options] -- [options]`.
//
// The main lcore sets up ports and workers, then is the control core until SIGINT or SIGTERM:
// control socket, health probes, reloads (SIGHUP), snapshot publishing over RCU, the exception
// path to the kernel side (--kernel-if) and periodic statistics. Every other lcore runs one
// worker's poll loop. With a single lcore, the main lcore runs the only worker and gives the
// control core a turn every millisecond.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <grp.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "drivers/dpdk/eal.hpp"
#include "drivers/dpdk/port.hpp"
#include "drivers/dpdk/port_facts.hpp"
#include "drivers/dpdk/worker.hpp"
#include "drivers/linux/netlink.hpp"
#include "drivers/linux/sd_notify.hpp"
#include "lib/config/options.hpp"
#include "lib/control/control_plane.hpp"
#include "lib/control/ctl_server.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/lb/snat_ports.hpp"
#include "lib/lb/stats_json.hpp"
#include "lib/net/neighbor.hpp"

using namespace sluice;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
void on_hup(int) { g_reload.store(true, std::memory_order_relaxed); }

// Tells systemd (Type=notify) where Sluice stands; a no-op outside systemd. A failure only
// costs the service manager's view of the state, never the forwarding.
void sd_notify(const std::string& state) {
    if (auto st = linux_sd::notify(state); !st) fmt::print(stderr, "sluice: warning: {}\n", st.error());
}

int g_logtype = -1;       // rte_log type "sluice.control": --log-level=sluice.control:debug works
int g_flowlog_type = -1;  // rte_log type "sluice.flowlog"

// A request from the control core to one worker (the control core never touches a worker's
// table itself). The worker runs it between bursts and sets `done`.
struct WorkerCommand {
    enum class Kind : uint8_t { flush_removed, clear_counters, explain } kind = Kind::clear_counters;
    net::Family family = net::Family::v4;
    uint8_t src[16] = {}, dst[16] = {};
    uint16_t sport_raw = 0, dport_raw = 0;
    uint8_t proto = 0;
    lb::Dataplane::Explanation result;
    std::atomic<bool> done{false};
};

struct WorkerSlot {
    std::unique_ptr<dpdk::Worker> worker;
    uint16_t queue = 0;
    std::vector<rte_ring*> rings_in;   // from every other worker
    std::vector<rte_ring*> rings_out;  // to every other worker (nullptr for itself)
    rte_ring* commands = nullptr;      // control core -> worker (WorkerCommand*)
    rte_ring* to_control = nullptr;    // worker -> control core (mbufs for the kernel side)
    rte_ring* inject = nullptr;        // control core -> worker (mbufs to send as they are)
    uint64_t loops = 0;       // poll-loop iterations
    uint64_t busy_loops = 0;  // iterations that found packets (busy / loops = load)
};

struct Runtime {
    std::vector<WorkerSlot> slots;
    uint16_t nb_ports = 0;
    uint32_t burst = 32;
    uint64_t tsc_per_ms = 1;
    rte_rcu_qsbr* qsbr = nullptr;
    std::atomic<const lb::Service*> current{nullptr};
    bool main_runs_worker = false;
    std::function<void()> control_step;  // the control core's turn (main lcore)
};

Runtime g_rt;

uint32_t now_ms() noexcept { return static_cast<uint32_t>(rte_get_tsc_cycles() / g_rt.tsc_per_ms); }
uint64_t now_ms64() noexcept { return rte_get_tsc_cycles() / g_rt.tsc_per_ms; }

void flush(WorkerSlot& s) noexcept {
    dpdk::Worker& w = *s.worker;
    for (uint16_t port = 0; port < w.nb_ports(); ++port) {
        dpdk::Staging& st = w.tx(port);
        if (!st.n) continue;
        const uint16_t sent = rte_eth_tx_burst(port, s.queue, st.pkts, st.n);
        if (sent < st.n) {
            w.count_drop(lb::Drop::tx_full, st.n - sent);
            rte_pktmbuf_free_bulk(st.pkts + sent, st.n - sent);
        }
        w.dataplane().counters().tx -= st.n - sent;  // counted as tx by the data path
        st.n = 0;
    }
    for (uint16_t dst = 0; dst < w.nb_workers(); ++dst) {
        dpdk::Staging& st = w.redirect(dst);
        if (!st.n) continue;
        const unsigned q = s.rings_out[dst]
                               ? rte_ring_sp_enqueue_burst(s.rings_out[dst], reinterpret_cast<void**>(st.pkts), st.n, nullptr)
                               : 0;
        if (q < st.n) {
            w.count_drop(lb::Drop::redirect_full, st.n - q);
            rte_pktmbuf_free_bulk(st.pkts + q, st.n - q);
        }
        st.n = 0;
    }
    if (dpdk::Staging& st = w.control(); st.n) {
        const unsigned q =
            s.to_control ? rte_ring_sp_enqueue_burst(s.to_control, reinterpret_cast<void**>(st.pkts), st.n, nullptr) : 0;
        if (q < st.n) {
            w.count_drop(lb::Drop::control_full, st.n - q);
            rte_pktmbuf_free_bulk(st.pkts + q, st.n - q);
        }
        st.n = 0;
    }
}

void run_commands(WorkerSlot& s, uint32_t now) noexcept {
    void* items[8];
    const unsigned n = rte_ring_sc_dequeue_burst(s.commands, items, 8, nullptr);
    lb::Dataplane& dp = s.worker->dataplane();
    for (unsigned i = 0; i < n; ++i) {
        auto* c = static_cast<WorkerCommand*>(items[i]);
        switch (c->kind) {
            case WorkerCommand::Kind::flush_removed: dp.flush_removed(); break;
            case WorkerCommand::Kind::clear_counters: dp.counters().clear(); break;
            case WorkerCommand::Kind::explain:
                c->result = dp.explain(c->family, c->src, c->dst, c->sport_raw, c->dport_raw, c->proto, now);
                break;
        }
        c->done.store(true, std::memory_order_release);
    }
}

int worker_loop(void* arg) {
    WorkerSlot& s = *static_cast<WorkerSlot*>(arg);
    dpdk::Worker& w = *s.worker;
    rte_mbuf* pkts[512];
    const uint16_t burst = static_cast<uint16_t>(g_rt.burst);
    rte_rcu_qsbr_thread_register(g_rt.qsbr, s.queue);
    rte_rcu_qsbr_thread_online(g_rt.qsbr, s.queue);
    const lb::Service* running = &w.dataplane().service();
    uint64_t next_control = 0;  // 64-bit ms: the 32-bit data-path clock wraps
    // Received packets go through the data path in pieces the staging arrays can take: a burst
    // (up to 512) may exceed an array, and so may several sources (ports, every other worker's
    // ring, the inject ring) in one turn; the arrays are flushed when a piece might not fit.
    auto deliver = [&](rte_mbuf** p, uint16_t n, bool redirected, uint32_t t) {
        while (n > 0) {
            const uint16_t take = std::min<uint16_t>(n, lb::Dataplane::kMaxBurst);
            if (w.room() < take) flush(s);
            w.handle(p, take, redirected, t);
            p += take;
            n = static_cast<uint16_t>(n - take);
        }
    };
    while (!g_stop.load(std::memory_order_relaxed)) {
        // A newer snapshot: switch between bursts. The old one stays alive until every worker
        // has reported a quiescent state after this point (RCU).
        if (const lb::Service* cur = g_rt.current.load(std::memory_order_acquire); cur != running) {
            w.dataplane().set_service(cur);
            running = cur;
        }
        const uint32_t now = now_ms();
        bool busy = false;
        for (uint16_t port = 0; port < w.nb_ports(); ++port) {
            const uint16_t n = rte_eth_rx_burst(port, s.queue, pkts, burst);
            if (n) {
                deliver(pkts, n, false, now);
                busy = true;
            }
        }
        for (rte_ring* r : s.rings_in) {
            const unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), burst, nullptr);
            if (n) {
                deliver(pkts, static_cast<uint16_t>(n), true, now);
                busy = true;
            }
        }
        if (s.inject) {  // frames of the kernel side and the control core, sent unchanged
            const unsigned n = rte_ring_sc_dequeue_burst(s.inject, reinterpret_cast<void**>(pkts),
                                                         std::min<unsigned>(burst, dpdk::Staging::kCap), nullptr);
            if (n && w.room() < n) flush(s);
            for (unsigned i = 0; i < n; ++i) {
                dpdk::Staging& st = w.tx(pkts[i]->port < w.nb_ports() ? pkts[i]->port : 0);
                if (st.n < dpdk::Staging::kCap) {
                    st.pkts[st.n++] = pkts[i];
                    ++w.dataplane().counters().tx;
                } else {
                    w.count_drop(lb::Drop::tx_full);
                    rte_pktmbuf_free(pkts[i]);
                }
            }
        }
        flush(s);
        w.expire(now, 64);
        run_commands(s, now);
        rte_rcu_qsbr_quiescent(g_rt.qsbr, s.queue);
        s.busy_loops += busy;
        ++s.loops;
        if (g_rt.main_runs_worker) {  // one lcore: it is the control core too
            if (const uint64_t now64 = now_ms64(); now64 >= next_control) {
                g_rt.control_step();
                next_control = now64 + 1;
            }
        }
    }
    rte_rcu_qsbr_thread_offline(g_rt.qsbr, s.queue);
    rte_rcu_qsbr_thread_unregister(g_rt.qsbr, s.queue);
    return 0;
}

struct WorkerBuild {
    WorkerSlot* slot;
    std::shared_ptr<const lb::Service> service;
    lb::WorkerEnv env;
    uint32_t flow_capacity;
    uint16_t nb_ports;
};
// 0, or -ENOMEM when the worker's tables do not fit (the caller names the setting to lower).
int build_worker(void* arg) {
    auto* b = static_cast<WorkerBuild*>(arg);
    try {
        b->slot->worker = std::make_unique<dpdk::Worker>(b->service, b->env, b->flow_capacity, b->nb_ports);
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
    return 0;
}

// After the workers stopped: mbufs still in the hand-over rings go back to the pool, and each
// TX queue gets a moment to finish what it was given, then releases it.
void drain(uint16_t nb_ports, uint16_t nb_queues) {
    auto empty = [](rte_ring* r) {
        void* m[64];
        unsigned n;
        while (r && (n = rte_ring_sc_dequeue_burst(r, m, 64, nullptr)) > 0)
            rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(m), n);
    };
    for (WorkerSlot& s : g_rt.slots) {
        for (rte_ring* r : s.rings_in) empty(r);
        empty(s.to_control);
        empty(s.inject);
    }
    rte_delay_ms(10);
    for (uint16_t p = 0; p < nb_ports; ++p)
        for (uint16_t q = 0; q < nb_queues; ++q)
            for (int i = 0; i < 100 && rte_eth_tx_done_cleanup(p, q, 0) > 0; ++i) rte_delay_ms(1);
}

std::vector<const lb::Dataplane*> dataplanes() {
    std::vector<const lb::Dataplane*> v;
    for (auto& s : g_rt.slots) v.push_back(&s.worker->dataplane());
    return v;
}

lb::WorkerCounters total_counters() {
    lb::WorkerCounters t;
    for (auto* d : dataplanes()) t.add(d->counters());
    return t;
}

// ---- the control core's side of the workers -------------------------------------------------

// Snapshots published to the workers and not yet reclaimed: freed once every worker has
// passed a quiescent state after the publish (rte_rcu_qsbr token).
struct Publisher {
    std::shared_ptr<const lb::Service> live;
    std::vector<std::pair<std::shared_ptr<const lb::Service>, uint64_t>> retired;

    void publish(std::shared_ptr<const lb::Service> s) {
        g_rt.current.store(s.get(), std::memory_order_release);
        if (live) retired.emplace_back(std::move(live), rte_rcu_qsbr_start(g_rt.qsbr));
        live = std::move(s);
    }
    void reclaim() {
        while (!retired.empty() && rte_rcu_qsbr_check(g_rt.qsbr, retired.front().second, false) == 1)
            retired.erase(retired.begin());
    }
};

// Commands in flight to the workers; freed once done (or at exit, after the workers stopped).
struct Commander {
    std::vector<std::unique_ptr<WorkerCommand>> inflight;

    WorkerCommand* send(uint16_t worker, std::unique_ptr<WorkerCommand> c) {
        WorkerCommand* raw = c.get();
        if (rte_ring_sp_enqueue(g_rt.slots[worker].commands, raw) != 0) return nullptr;
        inflight.push_back(std::move(c));
        return raw;
    }
    void broadcast(const WorkerCommand& proto) {
        for (uint16_t w = 0; w < g_rt.slots.size(); ++w) {
            auto c = std::make_unique<WorkerCommand>();
            c->kind = proto.kind;
            if (!send(w, std::move(c)))
                rte_log(RTE_LOG_ERR, static_cast<uint32_t>(g_logtype), "sluice: worker %u command ring full\n", w);
        }
    }
    void reap() {
        std::erase_if(inflight, [](const auto& c) { return c->done.load(std::memory_order_acquire); });
    }
};

// Where the kernel side lives: one TAP per data port, MAC-identical to it, so the kernel's
// frames leave with the port's address and frames for the port's address reach the kernel.
struct KernelSide {
    std::vector<uint16_t> tap_of;   // data port -> TAP port id
    std::vector<uint16_t> data_of;  // TAP port id -> data port (indexed by TAP port id)
};

Expected<KernelSide> setup_kernel_side(const lb::Config& cfg, uint16_t nb_ports, const std::vector<net::Mac>& macs,
                                       uint16_t backend_port, rte_mempool* pool) {
    KernelSide k;
    k.tap_of.resize(nb_ports);
    for (uint16_t p = 0; p < nb_ports; ++p) {
        const std::string iface = fmt::format("{}{}", cfg.kernel_if, p);
        const std::string vdev = fmt::format("net_tap_sluice{}", p);
        const std::string args = fmt::format("iface={},mac={}", iface, net::to_string(macs[p]));
        if (int rc = rte_eal_hotplug_add("vdev", vdev.c_str(), args.c_str()); rc != 0)
            return make_error(fmt::format("cannot create TAP {} ({}): {} (is the tun module loaded?)", iface, args,
                                          rte_strerror(-rc)));
        uint16_t id = 0;
        if (rte_eth_dev_get_port_by_name(vdev.c_str(), &id) != 0)
            return make_error(fmt::format("TAP {} has no port id", iface));
        auto info = dpdk::setup_port(id, {1, 256, 256, pool});
        if (!info) return make_error(info.error());
        k.tap_of[p] = id;
        if (k.data_of.size() <= id) k.data_of.resize(id + 1, UINT16_MAX);
        k.data_of[id] = p;
        fmt::print("port {}: kernel side {} (port {})\n", p, iface, id);
    }
    const std::string iface = fmt::format("{}{}", cfg.kernel_if, backend_port);
    for (size_t i = 0; i < cfg.self_addrs.size(); ++i) {
        const uint8_t len = i < cfg.self_prefixes.size() ? cfg.self_prefixes[i] : (cfg.self_addrs[i].is_v4() ? 32 : 128);
        if (auto st = linux_nl::add_address(iface, cfg.self_addrs[i], len); !st) return make_error(st.error());
        fmt::print("kernel side: {}/{} on {}\n", net::to_string(cfg.self_addrs[i]), len, iface);
    }
    return k;
}

// Telemetry: /sluice/stats and /sluice/drops for dpdk-telemetry.py (read from the telemetry
// thread: worker counters are read as the stats line reads them, slightly stale).
// The telemetry thread reads the workers' counters; shutdown flips g_telemetry_live under the
// mutex before freeing them.
std::mutex g_telemetry_mutex;
bool g_telemetry_live = true;

int telemetry_stats(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_telemetry_mutex);
    rte_tel_data_start_dict(d);
    if (!g_telemetry_live) return 0;
    const lb::WorkerCounters t = total_counters();
    t.for_each_scalar([d](const char* k, uint64_t v) { rte_tel_data_add_dict_u64(d, k, v); });
    rte_tel_data_add_dict_u64(d, "drops", t.total_drops());
    return 0;
}
int telemetry_drops(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_telemetry_mutex);
    rte_tel_data_start_dict(d);
    if (!g_telemetry_live) return 0;
    const lb::WorkerCounters t = total_counters();
    for (size_t i = 0; i < lb::kDropReasons; ++i) rte_tel_data_add_dict_u64(d, lb::to_string(static_cast<lb::Drop>(i)), t.drops[i]);
    return 0;
}

int run(const lb::Config& cfg, const std::vector<std::string>& eal_args,
        const std::vector<std::string>& app_args) {
    // Before anything slow: a SIGHUP or SIGTERM during start-up must not kill the process.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_hup);
    if (auto st = dpdk::init_eal(eal_args); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
    g_logtype = rte_log_register_type_and_pick_level("sluice.control", RTE_LOG_INFO);
    if (g_logtype < 0) g_logtype = RTE_LOGTYPE_USER1;
    g_flowlog_type = rte_log_register_type_and_pick_level("sluice.flowlog", RTE_LOG_INFO);
    if (g_flowlog_type < 0) g_flowlog_type = RTE_LOGTYPE_USER2;
    g_rt.tsc_per_ms = rte_get_tsc_hz() / 1000;
    g_rt.burst = cfg.burst;
    const uint16_t nb_ports = rte_eth_dev_count_avail();
    if (nb_ports == 0 || nb_ports > dpdk::kMaxPorts) {
        fmt::print(stderr, "sluice: found {} DPDK ports; Sluice needs 1 (one-arm) or 2 (client side, backend side)\n",
                   nb_ports);
        return 1;
    }
    g_rt.nb_ports = nb_ports;
    lb::WorkerEnv env;
    if (auto st = lb::assign_port_roles(cfg, nb_ports, env); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
    // The flow and fragment tables' secret: fresh per process, never logged (flow_hash.hpp).
    if (!lb::HashKey::random(env.hash_key)) {
        fmt::print(stderr, "sluice: cannot read a random hash key from the kernel (getrandom, /dev/urandom)\n");
        return 1;
    }

    std::vector<unsigned> lcores;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) lcores.push_back(lc);
    const bool main_runs_worker = lcores.empty();
    g_rt.main_runs_worker = main_runs_worker;
    const uint16_t nb_workers = main_runs_worker ? 1 : static_cast<uint16_t>(lcores.size());

    // What the hardware cannot serve stops here, before any port or memory is touched.
    if (!dpdk::preflight(cfg)) return 1;
    const uint32_t nb_mbufs = cfg.total_num_mbufs ? cfg.total_num_mbufs
                                                  : doctor::mbufs_needed(nb_ports, nb_workers, cfg.rxd, cfg.txd, cfg.burst,
                                                                         cfg.mbcache, !cfg.kernel_if.empty());
    // Packet memory on the NUMA node of the NIC that DMAs into it (the doctor warns when the
    // workers sit elsewhere); vdevs report no node: the main lcore's.
    const int port_socket = rte_eth_dev_socket_id(env.client_port);
    const int data_socket = port_socket >= 0 ? port_socket : static_cast<int>(rte_socket_id());
    rte_mempool* pool = rte_pktmbuf_pool_create("sluice_mbufs", nb_mbufs, cfg.mbcache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                data_socket);
    if (!pool && port_socket >= 0) {
        // No memory on the NIC's node (hugepages reserved elsewhere): slower, but running.
        fmt::print(stderr, "sluice: warning: no room for {} mbufs on NUMA node {} (port {}'s): using any node; "
                   "reserve hugepages on node {}\n", nb_mbufs, port_socket, env.client_port, port_socket);
        pool = rte_pktmbuf_pool_create("sluice_mbufs", nb_mbufs, cfg.mbcache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    }
    if (!pool) {
        fmt::print(stderr, "sluice: cannot allocate {} mbufs: {} (reserve hugepages or lower --total-num-mbufs)\n",
                   nb_mbufs, rte_strerror(rte_errno));
        return 1;
    }

    env.nb_workers = nb_workers;
    env.reta = net::Reta::round_robin(nb_workers);
    env.exception_path = !cfg.kernel_if.empty();
    for (const auto& share : lb::snat_shares(cfg, nb_workers, env.reta)) fmt::print("{}\n", lb::describe(share));
    if (auto st = lb::check_snat_shares(cfg, nb_workers, env.reta); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
    for (uint16_t p = 0; p < nb_ports; ++p) {
        auto info = dpdk::setup_port(p, {nb_workers, static_cast<uint16_t>(cfg.rxd), static_cast<uint16_t>(cfg.txd), pool});
        if (!info) {
            fmt::print(stderr, "sluice: {}\n", info.error());
            return 1;
        }
        env.port_macs.push_back(info->mac);
        fmt::print("port {}: {} ({}) mac {} queues {}{}\n", p, info->name, info->driver, net::to_string(info->mac),
                   nb_workers, info->rss ? " rss" : "");
    }
    dpdk::check_links_after_start(nb_ports);
    KernelSide kernel;
    if (env.exception_path) {
        auto k = setup_kernel_side(cfg, nb_ports, env.port_macs, env.backend_port, pool);
        if (!k) {
            fmt::print(stderr, "sluice: {}\n", k.error());
            return 1;
        }
        kernel = std::move(*k);
    }
    if (rte_pdump_init() != 0)  // lets dpdk-dumpcap capture from the running process
        fmt::print(stderr, "sluice: warning: pdump unavailable: {}\n", rte_strerror(rte_errno));

    const size_t qsbr_size = rte_rcu_qsbr_get_memsize(nb_workers);
    g_rt.qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sluice_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
    if (!g_rt.qsbr || rte_rcu_qsbr_init(g_rt.qsbr, nb_workers) != 0) {
        fmt::print(stderr, "sluice: cannot set up RCU for {} workers\n", nb_workers);
        return 1;
    }

    // The control plane builds the first snapshot; workers start on it.
    auto prober = control::Prober::create();
    if (!prober) {
        fmt::print(stderr, "sluice: {}\n", prober.error());
        return 1;
    }
    Publisher publisher;
    Commander commander;
    control::Hooks hooks;
    hooks.publish = [&](std::shared_ptr<const lb::Service> s) { publisher.publish(std::move(s)); };
    hooks.flush_removed = [&] {
        WorkerCommand c;
        c.kind = WorkerCommand::Kind::flush_removed;
        commander.broadcast(c);
    };
    hooks.clear_counters = [&] {
        WorkerCommand c;
        c.kind = WorkerCommand::Kind::clear_counters;
        commander.broadcast(c);
    };
    hooks.counters = [] { return total_counters(); };
    hooks.log = [](const std::string& line) {
        rte_log(RTE_LOG_NOTICE, static_cast<uint32_t>(g_logtype), "sluice: %s\n", line.c_str());
    };
    hooks.admit = [&](const lb::Config& next) { return lb::check_snat_shares(next, nb_workers, env.reta); };
    hooks.reread = [&]() -> Expected<lb::Config> {
        auto p = config::parse_args(app_args);
        if (!p) return make_error(p.error());
        return p->config;
    };
    hooks.explain = [&](const control::Hooks::Tuple& t) -> std::optional<lb::Dataplane::Explanation> {
        // Every worker answers from its own table; a hit anywhere wins (the flow's owner).
        std::vector<WorkerCommand*> asked;
        for (uint16_t w = 0; w < g_rt.slots.size(); ++w) {
            auto c = std::make_unique<WorkerCommand>();
            c->kind = WorkerCommand::Kind::explain;
            const auto& [proto, src, sport, dst, dport] = t;
            c->family = src.family;
            std::memcpy(c->src, src.bytes.data(), 16);
            std::memcpy(c->dst, dst.bytes.data(), 16);
            c->sport_raw = rte_cpu_to_be_16(sport);
            c->dport_raw = rte_cpu_to_be_16(dport);
            c->proto = static_cast<uint8_t>(proto);
            if (auto* raw = commander.send(w, std::move(c))) asked.push_back(raw);
        }
        const uint64_t deadline = now_ms64() + 200;
        std::optional<lb::Dataplane::Explanation> best;
        for (WorkerCommand* c : asked) {
            while (!c->done.load(std::memory_order_acquire)) {
                if (now_ms64() > deadline) return std::nullopt;
                if (g_rt.main_runs_worker) run_commands(g_rt.slots[0], now_ms());
                rte_pause();
            }
            if (!best || c->result.how == lb::Dataplane::Explanation::How::flow_hit) best = c->result;
        }
        return best;
    };
    control::ControlPlane cp(cfg, std::move(hooks), std::move(*prober));
    // Probes leave from Sluice's own address on the backend side (which only the kernel side
    // holds; without one the kernel picks the source).
    if (env.exception_path)
        for (const auto& a : cfg.self_addrs) cp.prober().set_source(a);
    if (auto st = cp.start(now_ms64()); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
    auto shared = cp.service();

    g_rt.slots.resize(nb_workers);
    for (uint16_t w = 0; w < nb_workers; ++w) {
        env.worker_id = w;
        WorkerSlot& s = g_rt.slots[w];
        // Built on its own lcore, so the flow tables' pages are first touched, hence placed, on
        // the worker's NUMA node.
        WorkerBuild wb{&s, shared, env, cfg.flow_capacity, nb_ports};
        int built;
        if (main_runs_worker || rte_eal_remote_launch(build_worker, &wb, lcores[w]) != 0) built = build_worker(&wb);
        else built = rte_eal_wait_lcore(lcores[w]);
        if (built != 0) {
            fmt::print(stderr,
                       "sluice: cannot allocate worker {}'s flow tables: {} flows per family take {} MiB per worker "
                       "and the memory is not there (free memory, raise the process's limit, or lower "
                       "--flow-capacity; `sluice doctor` sizes it for this host)\n",
                       w, cfg.flow_capacity, doctor::flow_table_bytes(cfg.flow_capacity) >> 20);
            return 1;
        }
        s.queue = w;
        s.rings_out.assign(nb_workers, nullptr);
        s.commands = rte_ring_create(fmt::format("cmd_{}", w).c_str(), 256, static_cast<int>(rte_socket_id()),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);  // control core -> this worker only
        if (env.exception_path) {
            s.to_control = rte_ring_create(fmt::format("ctl_{}", w).c_str(), 1024, static_cast<int>(rte_socket_id()),
                                           RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (w == 0)
                s.inject = rte_ring_create("inject_0", 1024, static_cast<int>(rte_socket_id()),
                                           RING_F_SP_ENQ | RING_F_SC_DEQ);
        }
        if (!s.commands || (env.exception_path && !s.to_control) || (env.exception_path && w == 0 && !s.inject)) {
            fmt::print(stderr, "sluice: cannot create worker rings: {}\n", rte_strerror(rte_errno));
            return 1;
        }
    }
    // Flow log: one event ring per worker, drained and rate-limited by the control core.
    std::vector<std::unique_ptr<lb::FlowLogRing>> flow_rings;
    control::FlowLogWriter flow_log(cfg.flow_log_rate, [](const std::string& line) {
        rte_log(RTE_LOG_INFO, static_cast<uint32_t>(g_flowlog_type), "sluice: %s\n", line.c_str());
    });
    if (cfg.flow_log_one_in)
        for (WorkerSlot& s : g_rt.slots) {
            flow_rings.push_back(std::make_unique<lb::FlowLogRing>(4096));
            s.worker->dataplane().enable_flow_log(cfg.flow_log_one_in, flow_rings.back().get());
            flow_log.add_ring(flow_rings.back().get());
        }
    for (uint16_t a = 0; a < nb_workers; ++a)
        for (uint16_t b = 0; b < nb_workers; ++b) {
            if (a == b) continue;
            rte_ring* r = rte_ring_create(fmt::format("redir_{}_{}", a, b).c_str(), 1024,
                                          static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!r) {
                fmt::print(stderr, "sluice: cannot create redirect ring: {}\n", rte_strerror(rte_errno));
                return 1;
            }
            g_rt.slots[a].rings_out[b] = r;
            g_rt.slots[b].rings_in.push_back(r);
        }

    std::optional<control::CtlServer> ctl;
    if (!cfg.control_socket.empty()) {
        // The default lives in /run/sluice (systemd's RuntimeDirectory); make it if absent.
        if (auto slash = cfg.control_socket.rfind('/'); slash != std::string::npos && slash > 0)
            ::mkdir(cfg.control_socket.substr(0, slash).c_str(), 0755);  // others may read (roles: ctl_server.hpp)
        control::CtlServerOptions ctl_options;
        if (!cfg.control_group.empty()) {
            const group* g = ::getgrnam(cfg.control_group.c_str());
            if (!g) {
                fmt::print(stderr, "sluice: --control-group '{}': no such group\n", cfg.control_group);
                return 1;
            }
            ctl_options.control_gid = g->gr_gid;
        }
        auto srv = control::CtlServer::open(cfg.control_socket, ctl_options);
        if (!srv) {
            fmt::print(stderr, "sluice: control socket: {} (or pass --control-socket none)\n", srv.error());
            return 1;
        }
        ctl.emplace(std::move(*srv));
    }
    rte_telemetry_register_cmd("/sluice/stats", telemetry_stats, "Sluice totals. Takes no parameters");
    rte_telemetry_register_cmd("/sluice/drops", telemetry_drops, "Sluice drops by reason. Takes no parameters");

    fmt::print("sluice: {} VIPs, {} workers, {} ports ({}), forwarding; Ctrl-C to stop\n", cfg.vips.size(),
               nb_workers, nb_ports, env.client_port == env.backend_port ? "one-arm" : "two-arm");
    std::fflush(stdout);

    // The control core's turn: control socket, probes, reload, the exception path, neighbour
    // resolution, snapshot reclamation. Never blocks for long (a worker may be running it).
    uint64_t next_resolve = 0, next_refresh = 0;
    const int ctl_wait = main_runs_worker ? 0 : 1;
    const auto control_handler = [&](const Expected<control::Command>& c, const control::Peer& peer) {
        return cp.handle(c, now_ms64(), peer);
    };
    // READY=1 waits for the control core's first turn: by then the workers poll their queues.
    bool announced = false;
    const std::string status = fmt::format("STATUS=forwarding: {} VIPs, {} workers, {} ports ({})", cfg.vips.size(),
                                           nb_workers, nb_ports,
                                           env.client_port == env.backend_port ? "one-arm" : "two-arm");
    g_rt.control_step = [&] {
        const uint64_t now = now_ms64();
        if (!announced) {
            announced = true;
            sd_notify("READY=1\n" + status);
        }
        if (ctl) ctl->poll(0, control_handler);
        cp.poll(now, ctl_wait);
        if (g_reload.exchange(false)) {
            // systemctl reload waits from RELOADING=1 to the next READY=1, failed reload or not
            // (a rejected file leaves the old configuration forwarding).
            sd_notify(linux_sd::reloading_message());
            if (auto st = cp.reload(now); !st) {
                fmt::print(stderr, "sluice: reload failed: {}\n", st.error());
                sd_notify("READY=1\nSTATUS=forwarding; reload failed, old configuration kept: " + st.error());
            } else {
                sd_notify("READY=1\nSTATUS=forwarding; configuration reloaded");
            }
        }
        if (env.exception_path) {
            rte_mbuf* pkts[32];
            // Worker -> kernel: learn neighbours on the way, then hand the frame to the TAP.
            for (WorkerSlot& s : g_rt.slots) {
                const unsigned n = rte_ring_sc_dequeue_burst(s.to_control, reinterpret_cast<void**>(pkts), 32, nullptr);
                for (unsigned i = 0; i < n; ++i) {
                    rte_mbuf* m = pkts[i];
                    // Backends live on the backend side: a claim from the client side is not
                    // believed (it could redirect a backend's traffic).
                    // The kernel side knows no VLANs: the data path let through only its
                    // side's VLAN, whose tag comes off here.
                    if (m->data_len >= RTE_ETHER_HDR_LEN + 4 &&
                        rte_pktmbuf_mtod(m, const rte_ether_hdr*)->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN))
                        rte_vlan_strip(m);
                    if (m->port == env.backend_port)
                        if (auto nb = net::learn_neighbor(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len))
                            cp.learn_neighbor(nb->first, nb->second);
                    const uint16_t tap = kernel.tap_of[m->port < nb_ports ? m->port : 0];
                    if (rte_eth_tx_burst(tap, 0, &m, 1) != 1) rte_pktmbuf_free(m);
                }
            }
            // Kernel -> wire: through worker 0's TX queue (the control core owns no data queue).
            for (uint16_t p = 0; p < nb_ports; ++p) {
                uint16_t n = rte_eth_rx_burst(kernel.tap_of[p], 0, pkts, 32);
                const uint16_t vlan = p == env.backend_port ? env.backend_vlan : p == env.client_port ? env.client_vlan : 0;
                uint16_t kept = 0;
                for (uint16_t i = 0; i < n; ++i) {
                    pkts[i]->port = p;
                    if (vlan) {  // the kernel's frames leave on its side's VLAN
                        pkts[i]->vlan_tci = vlan;
                        if (rte_vlan_insert(&pkts[i]) != 0) {
                            rte_pktmbuf_free(pkts[i]);
                            continue;
                        }
                    }
                    pkts[kept++] = pkts[i];
                }
                n = kept;
                const unsigned q = n ? rte_ring_sp_enqueue_burst(g_rt.slots[0].inject, reinterpret_cast<void**>(pkts), n, nullptr) : 0;
                if (q < n) rte_pktmbuf_free_bulk(pkts + q, n - q);
            }
            // Neighbour resolution for backends without a static MAC: every second while
            // unresolved, every 30 s for the others (a replaced server changes MAC).
            const bool refresh = now >= next_refresh;
            if (now >= next_resolve || refresh) {
                next_resolve = now + 1000;
                if (refresh) next_refresh = now + 30'000;
                const auto targets = refresh ? cp.dynamic_neighbors() : cp.unresolved();
                for (const auto& t : targets) {
                    const net::IpAddr* sender = nullptr;
                    for (const auto& a : cfg.self_addrs)
                        if (a.family == t.family) sender = &a;
                    if (!sender && !t.is_v4()) continue;  // a solicitation needs a source address
                    rte_mbuf* m = rte_pktmbuf_alloc(pool);
                    if (!m) break;
                    uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
                    const net::IpAddr any = net::IpAddr{};
                    size_t len = t.is_v4() ? net::build_arp_request(buf, env.port_macs[env.backend_port], sender ? *sender : any, t)
                                                 : net::build_neighbor_solicit(buf, env.port_macs[env.backend_port], *sender, t);
                    if (env.backend_vlan) len = net::insert_vlan_tag(buf, len, env.backend_vlan);
                    m->data_len = static_cast<uint16_t>(len);
                    m->pkt_len = static_cast<uint32_t>(len);
                    m->port = env.backend_port;
                    if (rte_ring_sp_enqueue(g_rt.slots[0].inject, m) != 0) rte_pktmbuf_free(m);
                }
            }
        }
        if (cfg.flow_log_one_in) flow_log.drain(now, *cp.service());
        publisher.reclaim();
        commander.reap();
    };

    const uint64_t start = rte_get_tsc_cycles();
    if (main_runs_worker) {
        worker_loop(&g_rt.slots[0]);
    } else {
        for (uint16_t w = 0; w < nb_workers; ++w)
            if (int rc = rte_eal_remote_launch(worker_loop, &g_rt.slots[w], lcores[w]); rc != 0) {
                fmt::print(stderr, "sluice: cannot start worker {} on lcore {}: {}\n", w, lcores[w], rte_strerror(-rc));
                g_stop.store(true);
                break;
            }
        uint64_t last_rx = 0, last_tx = 0, last_new = 0, last_tsc = start;
        while (!g_stop.load(std::memory_order_relaxed)) {
            g_rt.control_step();
            const uint64_t now = rte_get_tsc_cycles();
            if (!cfg.stats_period_s || now - last_tsc < cfg.stats_period_s * rte_get_tsc_hz()) continue;
            const lb::WorkerCounters t = total_counters();
            const double secs = static_cast<double>(now - last_tsc) / static_cast<double>(rte_get_tsc_hz());
            auto rate = [secs](uint64_t now_v, uint64_t then_v) { return static_cast<double>(now_v - then_v) / secs; };
            fmt::print("stats: rx-pps {:.0f} tx-pps {:.0f} new-flows-ps {:.0f} | {}\n", rate(t.rx, last_rx),
                       rate(t.tx, last_tx), rate(t.maglev_picks, last_new), lb::stats_summary(dataplanes()));
            std::fflush(stdout);
            sd_notify(fmt::format("STATUS=forwarding: rx-pps {:.0f} tx-pps {:.0f} new-flows-ps {:.0f}", rate(t.rx, last_rx),
                                  rate(t.tx, last_tx), rate(t.maglev_picks, last_new)));
            last_rx = t.rx;
            last_tx = t.tx;
            last_new = t.maglev_picks;
            last_tsc = now;
        }
        rte_eal_mp_wait_lcore();
    }
    sd_notify("STOPPING=1\nSTATUS=stopping: printing totals");
    drain(nb_ports, nb_workers);
    const double secs = static_cast<double>(rte_get_tsc_cycles() - start) / static_cast<double>(rte_get_tsc_hz());

    // Workers stopped: point them at the live snapshot (the one they last ran may be reclaimed).
    for (WorkerSlot& s : g_rt.slots) s.worker->dataplane().set_service(cp.service().get());
    lb::WorkerCounters total = total_counters();
    fmt::print("\n---------------------- Forward statistics for all ports ----------------------\n");
    for (uint16_t p = 0; p < nb_ports; ++p) {
        rte_eth_stats st{};
        rte_eth_stats_get(p, &st);
        fmt::print("  port {}: RX-packets: {:<12} RX-dropped: {:<10} TX-packets: {:<12} TX-errors: {}\n", p,
                   st.ipackets, st.imissed + st.ierrors, st.opackets, st.oerrors);
    }
    fmt::print("  {}\n", lb::stats_summary(dataplanes()));
    for (size_t w = 0; w < g_rt.slots.size(); ++w) {
        const WorkerSlot& s = g_rt.slots[w];
        fmt::print("  worker {}: {} polls, {:.1f}% found packets\n", w, s.loops,
                   s.loops ? 100.0 * static_cast<double>(s.busy_loops) / static_cast<double>(s.loops) : 0.0);
    }
    fmt::print("  elapsed {:.3f} s, rx {:.3f} Mpps, tx {:.3f} Mpps\n", secs,
               static_cast<double>(total.rx) / secs / 1e6, static_cast<double>(total.tx) / secs / 1e6);
    if (!cfg.stats_json.empty()) {
        std::ofstream(cfg.stats_json) << lb::stats_to_json(dataplanes());
    }
    g_rt.control_step = nullptr;
    ctl.reset();
    {
        // DPDK cannot unregister telemetry commands: make them answer empty from now on.
        std::lock_guard<std::mutex> lock(g_telemetry_mutex);
        g_telemetry_live = false;
    }
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
    const unsigned back = rte_mempool_avail_count(pool);
    int rc = 0;
    if (back != pool->size) {
        fmt::print(stderr, "sluice: mbuf leak: {} of {} mbufs not returned to the pool\n", pool->size - back, pool->size);
        rc = 1;
    } else {
        fmt::print("  mbufs: all {} back in the pool\n", pool->size);
    }
    g_rt.slots.clear();
    rte_mempool_free(pool);
    rte_eal_cleanup();
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    dpdk::SplitArgs args;
    if (!dpdk::split_doctor_args(argc, argv, args)) args = dpdk::split_args(argc, argv);
    auto parsed = config::parse_args(args.app);
    if (!parsed) {
        fmt::print(stderr, "sluice: error: {}\n", parsed.error());
        return 2;
    }
    switch (parsed->action) {
        case config::Action::help:
        case config::Action::version:
        case config::Action::check_config:
            fmt::print("{}", parsed->text);
            return 0;
        case config::Action::doctor:
            return dpdk::run_doctor(parsed->config, args.eal);
        case config::Action::run:
            break;
    }
    try {
        return run(parsed->config, args.eal, args.app);
    } catch (const std::bad_alloc&) {
        fmt::print(stderr, "sluice: out of memory while starting (free memory, raise the process's limit, or lower "
                           "--flow-capacity / --total-num-mbufs; `sluice doctor` sizes them for this host)\n");
        return 1;
    }
}
