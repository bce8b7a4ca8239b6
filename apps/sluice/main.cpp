// sluice: the load balancer. `sluice [EAL options] -- [options]`.
//
// The main lcore sets up ports and workers, then prints periodic statistics until SIGINT or
// SIGTERM; every other lcore runs one worker's poll loop. With a single lcore, the main lcore
// runs the only worker itself.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <fmt/format.h>

#include "drivers/dpdk/eal.hpp"
#include "drivers/dpdk/port.hpp"
#include "drivers/dpdk/worker.hpp"
#include "lib/config/options.hpp"
#include "lib/lb/stats_json.hpp"

using namespace sluice;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

struct WorkerSlot {
    std::unique_ptr<dpdk::Worker> worker;
    uint16_t queue = 0;
    std::vector<rte_ring*> rings_in;   // from every other worker
    std::vector<rte_ring*> rings_out;  // to every other worker (nullptr for itself)
    uint64_t loops = 0;       // poll-loop iterations
    uint64_t busy_loops = 0;  // iterations that found packets (busy / loops = load)
};

struct Runtime {
    std::vector<WorkerSlot> slots;
    uint16_t nb_ports = 0;
    uint32_t burst = 32;
    uint64_t tsc_per_ms = 1;
};

Runtime g_rt;

uint32_t now_ms() noexcept { return static_cast<uint32_t>(rte_get_tsc_cycles() / g_rt.tsc_per_ms); }

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
}

int worker_loop(void* arg) {
    WorkerSlot& s = *static_cast<WorkerSlot*>(arg);
    dpdk::Worker& w = *s.worker;
    rte_mbuf* pkts[512];
    const uint16_t burst = static_cast<uint16_t>(g_rt.burst);
    while (!g_stop.load(std::memory_order_relaxed)) {
        const uint32_t now = now_ms();
        bool busy = false;
        for (uint16_t port = 0; port < w.nb_ports(); ++port) {
            const uint16_t n = rte_eth_rx_burst(port, s.queue, pkts, burst);
            if (n) {
                w.handle(pkts, n, false, now);
                busy = true;
            }
        }
        for (rte_ring* r : s.rings_in) {
            const unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), burst, nullptr);
            if (n) {
                w.handle(pkts, static_cast<uint16_t>(n), true, now);
                busy = true;
            }
        }
        flush(s);
        w.expire(now, 64);
        s.busy_loops += busy;
        ++s.loops;
    }
    return 0;
}

std::vector<const lb::Dataplane*> dataplanes() {
    std::vector<const lb::Dataplane*> v;
    for (auto& s : g_rt.slots) v.push_back(&s.worker->dataplane());
    return v;
}

int run(const lb::Config& cfg, const std::vector<std::string>& eal_args) {
    if (auto st = dpdk::init_eal(eal_args); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
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

    std::vector<unsigned> lcores;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) lcores.push_back(lc);
    const bool main_runs_worker = lcores.empty();
    const uint16_t nb_workers = main_runs_worker ? 1 : static_cast<uint16_t>(lcores.size());

    uint32_t nb_mbufs = cfg.total_num_mbufs;
    if (!nb_mbufs)
        nb_mbufs = std::max<uint32_t>(16384, nb_ports * nb_workers * (cfg.rxd + cfg.txd + 4 * cfg.burst) +
                                                 nb_workers * 4 * 1024);
    rte_mempool* pool = rte_pktmbuf_pool_create("sluice_mbufs", nb_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                static_cast<int>(rte_socket_id()));
    if (!pool) {
        fmt::print(stderr, "sluice: cannot allocate {} mbufs: {} (reserve hugepages or lower --total-num-mbufs)\n",
                   nb_mbufs, rte_strerror(rte_errno));
        return 1;
    }

    env.nb_workers = nb_workers;
    env.reta = net::Reta::round_robin(nb_workers);
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

    auto service = lb::Service::build(cfg);
    if (!service) {
        fmt::print(stderr, "sluice: {}\n", service.error());
        return 1;
    }
    auto shared = std::make_shared<const lb::Service>(std::move(*service));

    g_rt.slots.resize(nb_workers);
    for (uint16_t w = 0; w < nb_workers; ++w) {
        env.worker_id = w;
        g_rt.slots[w].worker = std::make_unique<dpdk::Worker>(shared, env, cfg.flow_capacity, nb_ports);
        g_rt.slots[w].queue = w;
        g_rt.slots[w].rings_out.assign(nb_workers, nullptr);
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

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    fmt::print("sluice: {} VIPs, {} workers, {} ports ({}), forwarding; Ctrl-C to stop\n", shared->vips().size(),
               nb_workers, nb_ports, env.client_port == env.backend_port ? "one-arm" : "two-arm");
    std::fflush(stdout);

    const uint64_t start = rte_get_tsc_cycles();
    if (main_runs_worker) {
        worker_loop(&g_rt.slots[0]);
    } else {
        for (uint16_t w = 0; w < nb_workers; ++w) rte_eal_remote_launch(worker_loop, &g_rt.slots[w], lcores[w]);
        uint64_t last_rx = 0, last_tx = 0, last_new = 0, last_tsc = start;
        while (!g_stop.load(std::memory_order_relaxed)) {
            rte_delay_ms(50);
            const uint64_t now = rte_get_tsc_cycles();
            if (!cfg.stats_period_s || now - last_tsc < cfg.stats_period_s * rte_get_tsc_hz()) continue;
            lb::WorkerCounters t;
            for (auto* d : dataplanes()) t.add(d->counters());
            const double secs = static_cast<double>(now - last_tsc) / static_cast<double>(rte_get_tsc_hz());
            auto rate = [secs](uint64_t now_v, uint64_t then_v) { return static_cast<double>(now_v - then_v) / secs; };
            fmt::print("stats: rx-pps {:.0f} tx-pps {:.0f} new-flows-ps {:.0f} | {}\n", rate(t.rx, last_rx),
                       rate(t.tx, last_tx), rate(t.maglev_picks, last_new), lb::stats_summary(dataplanes()));
            std::fflush(stdout);
            last_rx = t.rx;
            last_tx = t.tx;
            last_new = t.maglev_picks;
            last_tsc = now;
        }
        rte_eal_mp_wait_lcore();
    }
    const double secs = static_cast<double>(rte_get_tsc_cycles() - start) / static_cast<double>(rte_get_tsc_hz());

    lb::WorkerCounters total;
    for (auto* d : dataplanes()) total.add(d->counters());
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
    for (uint16_t p = 0; p < nb_ports; ++p) {
        rte_eth_dev_stop(p);
        rte_eth_dev_close(p);
    }
    g_rt.slots.clear();
    rte_eal_cleanup();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const dpdk::SplitArgs args = dpdk::split_args(argc, argv);
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
        case config::Action::run:
            break;
    }
    return run(parsed->config, args.eal);
}
