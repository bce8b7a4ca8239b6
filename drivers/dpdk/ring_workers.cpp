#include "drivers/dpdk/ring_workers.hpp"

#include <algorithm>
#include <cerrno>
#include <new>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include <fmt/format.h>

#include "lib/doctor/doctor.hpp"

namespace sluice::dpdk {

// A request from the control core to one worker, run between bursts; `done` is set after.
// persist_learn: entries other workers made, to install; persist_list: the live entries of
// `vip`, copied into `listed` (reserved by the control core: the worker never allocates).
struct RingWorkers::Command {
// sessions_learn: sessions peers reported, to install; sessions_walk, persist_walk: a chunk of
// the worker's sessions, or its persistence entries, copied out (replication).
    enum class Kind : uint8_t {
        task,
        explain,
        persist_learn,
        persist_list,
        sessions_learn,
        sessions_walk,
        persist_walk
    } kind = Kind::task;
    Task task = Task::clear_counters;
    control::FlowQuery query;
    lb::Dataplane::Explanation result;
    uint16_t vip = 0;
    std::vector<lb::PersistEntry> entries;
    std::vector<lb::SessionReport> sessions;
    bool v6 = false;
    bool learnt = false;
    uint32_t cursor = 0;
    uint32_t budget = 0;
    std::atomic<bool> done{false};
};

RingWorkers::RingWorkers(Options o, const std::atomic<bool>& stop)
    : opt_(std::move(o)),
      stop_(stop),
      nb_workers_(opt_.lcores.empty() ? 1 : static_cast<uint16_t>(opt_.lcores.size())),
      tsc_per_ms_(std::max<uint64_t>(rte_get_tsc_hz() / 1000, 1)) {}

Expected<std::unique_ptr<RingWorkers>> RingWorkers::create(Options o, const std::atomic<bool>& stop) {
    std::unique_ptr<RingWorkers> w(new RingWorkers(std::move(o), stop));
    const size_t size = rte_rcu_qsbr_get_memsize(w->nb_workers_);
    w->qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sluice_qsbr", size, RTE_CACHE_LINE_SIZE));
    if (!w->qsbr_ || rte_rcu_qsbr_init(w->qsbr_, w->nb_workers_) != 0)
        return make_error(fmt::format("cannot set up RCU for {} workers", w->nb_workers_));
    return w;
}

RingWorkers::~RingWorkers() {
    slots_.clear();
    for (rte_ring* r : rings_) rte_ring_free(r);
    rte_free(qsbr_);
}

uint32_t RingWorkers::now_ms() const noexcept { return static_cast<uint32_t>(rte_get_tsc_cycles() / tsc_per_ms_); }
uint64_t RingWorkers::now_ms64() const noexcept { return rte_get_tsc_cycles() / tsc_per_ms_; }

namespace {

struct BuildArgs {
    std::unique_ptr<Worker>* into;
    std::shared_ptr<const lb::Service> service;
    const lb::WorkerEnv* env;
    uint32_t flow_capacity;
    uint16_t nb_ports;
};

}  // namespace

// 0, or -ENOMEM when the worker's tables do not fit (the caller names the setting to lower).
int RingWorkers::build_entry(void* arg) {
    auto* b = static_cast<BuildArgs*>(arg);
    try {
        *b->into = std::make_unique<Worker>(b->service, *b->env, b->flow_capacity, b->nb_ports);
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
    return 0;
}

Status RingWorkers::build(lb::WorkerEnv env, uint32_t flow_capacity) {
    if (!live_) return make_error("no snapshot published for the workers to start on");
    auto ring = [this](const std::string& name, unsigned size) {
        rte_ring* r = rte_ring_create(name.c_str(), size, static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r) rings_.push_back(r);
        return r;
    };
    slots_.resize(nb_workers_);
    for (uint16_t w = 0; w < nb_workers_; ++w) {
        env.worker_id = w;
        Slot& s = slots_[w];
        BuildArgs b{&s.worker, live_, &env, flow_capacity, opt_.nb_ports};
        int built;
        if (main_runs_worker() || rte_eal_remote_launch(build_entry, &b, opt_.lcores[w]) != 0) built = build_entry(&b);
        else built = rte_eal_wait_lcore(opt_.lcores[w]);
        if (built != 0)
            return make_error(fmt::format(
                "cannot allocate worker {}'s flow tables: {} flows per family take {} MiB per worker and the memory "
                "is not there (free memory, raise the process's limit, or lower --flow-capacity; `sluice doctor` "
                "sizes it for this host)",
                w, flow_capacity, doctor::flow_table_bytes(flow_capacity) >> 20));
        s.queue = w;
        s.rings_out.assign(nb_workers_, nullptr);
        s.commands = ring(fmt::format("cmd_{}", w), 256);  // control core -> this worker only
        if (opt_.exception_path) {
            s.to_control = ring(fmt::format("ctl_{}", w), 1024);
            if (w == 0) s.inject = ring("inject_0", 1024);
        }
        if (!s.commands || (opt_.exception_path && !s.to_control) || (opt_.exception_path && w == 0 && !s.inject))
            return make_error(fmt::format("cannot create worker rings: {}", rte_strerror(rte_errno)));
    }
    for (uint16_t a = 0; a < nb_workers_; ++a)
        for (uint16_t b = 0; b < nb_workers_; ++b) {
            if (a == b) continue;
            rte_ring* r = ring(fmt::format("redir_{}_{}", a, b), 1024);
            if (!r) return make_error(fmt::format("cannot create redirect ring: {}", rte_strerror(rte_errno)));
            slots_[a].rings_out[b] = r;
            slots_[b].rings_in.push_back(r);
        }
    return {};
}

void RingWorkers::enable_flow_log(uint32_t one_in, control::FlowLogWriter& writer) {
    for (Slot& s : slots_) writer.add_ring(s.worker->enable_flow_log(one_in));
}

// ---- the poll loop ---------------------------------------------------------------------------

void RingWorkers::flush(Slot& s) noexcept {
    Worker& w = *s.worker;
    for (uint16_t port = 0; port < w.nb_ports(); ++port) {
        Staging& st = w.tx(port);
        if (st.n) w.tx_done(port, rte_eth_tx_burst(port, s.queue, st.pkts, st.n));
    }
    for (uint16_t dst = 0; dst < w.nb_workers(); ++dst) {
        Staging& st = w.redirect(dst);
        if (!st.n) continue;
        const unsigned q =
            s.rings_out[dst] ? rte_ring_sp_enqueue_burst(s.rings_out[dst], reinterpret_cast<void**>(st.pkts), st.n, nullptr)
                             : 0;
        w.handed_over(st, q, lb::Drop::redirect_full);
    }
    if (Staging& st = w.control(); st.n) {
        const unsigned q =
            s.to_control ? rte_ring_sp_enqueue_burst(s.to_control, reinterpret_cast<void**>(st.pkts), st.n, nullptr) : 0;
        w.handed_over(st, q, lb::Drop::control_full);
    }
}

void RingWorkers::run_commands(Slot& s, uint32_t now) noexcept {
    void* items[8];
    const unsigned n = rte_ring_sc_dequeue_burst(s.commands, items, 8, nullptr);
    lb::Dataplane& dp = s.worker->dataplane();
    for (unsigned i = 0; i < n; ++i) {
        auto* c = static_cast<Command*>(items[i]);
        switch (c->kind) {
            case Command::Kind::explain: c->result = control::ask(dp, c->query, now); break;
            case Command::Kind::task: control::perform(c->task, dp); break;
            case Command::Kind::persist_learn: dp.learn_persist(c->entries.data(), c->entries.size(), now); break;
            case Command::Kind::persist_list: dp.list_persist(c->vip, now, c->entries); break;
            case Command::Kind::sessions_learn: dp.learn_sessions(c->sessions.data(), c->sessions.size(), now); break;
            case Command::Kind::sessions_walk:
                c->cursor = dp.walk_sessions(c->v6, c->cursor, c->budget, c->learnt, now, c->sessions);
                break;
            case Command::Kind::persist_walk: dp.walk_persist(now, c->entries); break;
        }
        c->done.store(true, std::memory_order_release);
    }
}

int RingWorkers::loop_entry(void* arg) {
    auto* self = static_cast<RingWorkers*>(arg);
    const unsigned lcore = rte_lcore_id();
    for (Slot& s : self->slots_)
        if (self->opt_.lcores[s.queue] == lcore) self->loop(s);
    return 0;
}

void RingWorkers::loop(Slot& s) {
    Worker& w = *s.worker;
    rte_mbuf* pkts[512];
    const uint16_t burst = static_cast<uint16_t>(opt_.burst);
    rte_rcu_qsbr_thread_register(qsbr_, s.queue);
    rte_rcu_qsbr_thread_online(qsbr_, s.queue);
    const lb::Service* running = &w.dataplane().service();
    uint64_t next_control = 0;  // 64-bit ms: the 32-bit data-path clock wraps
    uint32_t idle_polls = 0;
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
    while (!stop_.load(std::memory_order_relaxed)) {
        // A newer snapshot: switch between bursts. The old one stays alive until every worker
        // has reported a quiescent state after this point (RCU).
        if (const lb::Service* cur = current_.load(std::memory_order_acquire); cur != running) {
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
                                                         std::min<unsigned>(burst, Staging::kCap), nullptr);
            if (n && w.room() < n) flush(s);
            for (unsigned i = 0; i < n; ++i) w.stage_unchanged(pkts[i]);
        }
        flush(s);
        w.expire(now);
        run_commands(s, now);
        rte_rcu_qsbr_quiescent(qsbr_, s.queue);
        s.busy_loops += busy;
        ++s.loops;
        if (control_step_) {  // one lcore: it is the control core too
            if (const uint64_t now64 = now_ms64(); now64 >= next_control) {
                control_step_();
                next_control = now64 + 1;
            }
        }
        idle_polls = busy ? 0 : idle_polls + 1;
        if (opt_.idle_sleep_us && idle_polls >= kIdlePolls) {
            // Nothing to do for a while: give the core away. Offline, so that snapshots retired
            // meanwhile need not wait for the sleep.
            rte_rcu_qsbr_thread_offline(qsbr_, s.queue);
            rte_delay_us_sleep(opt_.idle_sleep_us);
            rte_rcu_qsbr_thread_online(qsbr_, s.queue);
        }
    }
    rte_rcu_qsbr_thread_offline(qsbr_, s.queue);
    rte_rcu_qsbr_thread_unregister(qsbr_, s.queue);
}

Status RingWorkers::launch() {
    if (main_runs_worker()) return {};
    for (uint16_t w = 0; w < nb_workers_; ++w)
        if (int rc = rte_eal_remote_launch(loop_entry, this, opt_.lcores[w]); rc != 0)
            return make_error(fmt::format("cannot start worker {} on lcore {}: {}", w, opt_.lcores[w], rte_strerror(-rc)));
    return {};
}

void RingWorkers::run_main(const std::function<void()>& control_step) {
    control_step_ = control_step;
    loop(slots_[0]);
    control_step_ = nullptr;
}

void RingWorkers::join() {
    if (!main_runs_worker()) rte_eal_mp_wait_lcore();
    // mbufs still in the hand-over rings go back to the pool, and each TX queue gets a moment
    // to finish what it was given, then releases it.
    auto empty = [](rte_ring* r) {
        void* m[64];
        unsigned n;
        while (r && (n = rte_ring_sc_dequeue_burst(r, m, 64, nullptr)) > 0)
            rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(m), n);
    };
    for (Slot& s : slots_) {
        for (rte_ring* r : s.rings_in) empty(r);
        empty(s.to_control);
        empty(s.inject);
    }
    rte_delay_ms(10);
    for (uint16_t p = 0; p < opt_.nb_ports; ++p)
        for (uint16_t q = 0; q < nb_workers_; ++q)
            for (int i = 0; i < 100 && rte_eth_tx_done_cleanup(p, q, 0) > 0; ++i) rte_delay_ms(1);
    inflight_.clear();
}

void RingWorkers::park() {
    for (Slot& s : slots_) s.worker->dataplane().set_service(live_.get());
}

// ---- the control core's side -----------------------------------------------------------------

void RingWorkers::publish(std::shared_ptr<const lb::Service> s) {
    current_.store(s.get(), std::memory_order_release);
    if (live_) retired_.emplace_back(std::move(live_), rte_rcu_qsbr_start(qsbr_));
    live_ = std::move(s);
}

void RingWorkers::reclaim() {
    while (!retired_.empty() && rte_rcu_qsbr_check(qsbr_, retired_.front().second, false) == 1)
        retired_.erase(retired_.begin());
    std::erase_if(inflight_, [](const auto& c) { return c->done.load(std::memory_order_acquire); });
}

RingWorkers::Command* RingWorkers::send(uint16_t worker, std::unique_ptr<Command> c) {
    Command* raw = c.get();
    if (rte_ring_sp_enqueue(slots_[worker].commands, raw) != 0) return nullptr;
    inflight_.push_back(std::move(c));
    return raw;
}

void RingWorkers::run_on_all(Task t) {
    for (uint16_t w = 0; w < slots_.size(); ++w) {
        auto c = std::make_unique<Command>();
        c->task = t;
        if (!send(w, std::move(c)))
            rte_log(RTE_LOG_ERR, static_cast<uint32_t>(opt_.logtype), "sluice: worker %u command ring full\n", w);
    }
}

bool RingWorkers::ask_every(const std::function<std::unique_ptr<Command>()>& make, std::vector<Command*>& asked) {
    for (uint16_t w = 0; w < slots_.size(); ++w)
        if (auto* raw = send(w, make())) asked.push_back(raw);
    const uint64_t deadline = now_ms64() + 200;
    for (Command* c : asked) {
        while (!c->done.load(std::memory_order_acquire)) {
            if (now_ms64() > deadline) return false;
            if (main_runs_worker()) run_commands(slots_[0], now_ms());
            rte_pause();
        }
    }
    return asked.size() == slots_.size();
}

std::optional<std::vector<lb::Dataplane::Explanation>> RingWorkers::ask_all(const control::FlowQuery& q) {
    std::vector<Command*> asked;
    const bool all = ask_every(
        [&] {
            auto c = std::make_unique<Command>();
            c->kind = Command::Kind::explain;
            c->query = q;
            return c;
        },
        asked);
    if (!all) return std::nullopt;
    std::vector<lb::Dataplane::Explanation> answers;
    for (Command* c : asked) answers.push_back(c->result);
    return answers;
}

std::optional<std::vector<std::vector<lb::PersistEntry>>> RingWorkers::persist_entries(uint16_t vip,
                                                                                        size_t max_per_worker) {
    std::vector<Command*> asked;
    const bool all = ask_every(
        [&] {
            auto c = std::make_unique<Command>();
            c->kind = Command::Kind::persist_list;
            c->vip = vip;
            c->entries.reserve(max_per_worker);
            return c;
        },
        asked);
    if (!all) return std::nullopt;
    std::vector<std::vector<lb::PersistEntry>> out;
    for (Command* c : asked) out.push_back(c->entries);
    return out;
}

void RingWorkers::send_persist(uint16_t w, std::vector<lb::PersistEntry> entries) {
    if (w >= slots_.size()) return;
    auto c = std::make_unique<Command>();
    c->kind = Command::Kind::persist_learn;
    c->entries = std::move(entries);
    // A full command ring loses these reports: the worker decides by Maglev over the client's
    // network meanwhile, and the next report of the entry brings it.
    if (!send(w, std::move(c)))
        rte_log(RTE_LOG_WARNING, static_cast<uint32_t>(opt_.logtype),
                "sluice: worker %u command ring full: persistence reports dropped\n", w);
}

bool RingWorkers::ask_one(Command* c) {
    if (!c) return false;
    const uint64_t deadline = now_ms64() + 200;
    while (!c->done.load(std::memory_order_acquire)) {
        if (now_ms64() > deadline) return false;
        if (main_runs_worker()) run_commands(slots_[0], now_ms());
        rte_pause();
    }
    return true;
}

void RingWorkers::send_sessions(uint16_t w, std::vector<lb::SessionReport> sessions) {
    if (w >= slots_.size()) return;
    auto c = std::make_unique<Command>();
    c->kind = Command::Kind::sessions_learn;
    c->sessions = std::move(sessions);
    // A full command ring loses these sessions until the peer's next refresh (counted by the
    // replication as entries it could not hand over).
    if (!send(w, std::move(c)))
        rte_log(RTE_LOG_WARNING, static_cast<uint32_t>(opt_.logtype),
                "sluice: worker %u command ring full: replicated sessions dropped\n", w);
}

std::optional<control::Workers::SessionWalk> RingWorkers::walk_sessions(uint16_t w, bool v6, uint32_t cursor,
                                                                        uint32_t budget, bool learnt, size_t max) {
    if (w >= slots_.size()) return std::nullopt;
    auto c = std::make_unique<Command>();
    c->kind = Command::Kind::sessions_walk;
    c->v6 = v6;
    c->cursor = cursor;
    c->budget = budget;
    c->learnt = learnt;
    c->sessions.reserve(max);
    Command* raw = send(w, std::move(c));
    if (!ask_one(raw)) return std::nullopt;
    return SessionWalk{std::move(raw->sessions), raw->cursor};
}

std::optional<std::vector<lb::PersistEntry>> RingWorkers::walk_persist(uint16_t w, size_t max) {
    if (w >= slots_.size()) return std::nullopt;
    auto c = std::make_unique<Command>();
    c->kind = Command::Kind::persist_walk;
    c->entries.reserve(max);
    Command* raw = send(w, std::move(c));
    if (!ask_one(raw)) return std::nullopt;
    return std::move(raw->entries);
}

uint32_t RingWorkers::clock_ms() const { return now_ms(); }

void RingWorkers::for_each(const std::function<void(const lb::Dataplane&)>& f) const {
    for (const Slot& s : slots_)
        if (s.worker) f(s.worker->dataplane());
}

}  // namespace sluice::dpdk
