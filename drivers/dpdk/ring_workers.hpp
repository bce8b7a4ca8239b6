// The sluice binary's workers: one poll loop per lcore, reached by the control core only
// through rings and RCU.
//
// Each worker owns RX queue i and TX queue i of every port, its dpdk::Worker (flow tables,
// counters), a command ring from the control core, a redirect ring to every other worker, and
// with an exception path a ring of frames for the kernel side (worker 0 also sends what the
// kernel side gives back, through an inject ring). Snapshots are published with a
// release-store and reclaimed once every worker has reported a quiescent state after the
// publish (rte_rcu_qsbr); workers switch between bursts.
//
// Thread contract: the control::Workers methods, build(), reclaim() and the kernel side's
// rings are for the control core (the main lcore); the poll loops run on their own lcores.
// With a single lcore, run_main() runs worker 0's loop on the main lcore and gives the
// control core a turn every millisecond.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "drivers/dpdk/worker.hpp"
#include "lib/common/expected.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/control/workers.hpp"

namespace sluice::dpdk {

class RingWorkers final : public control::Workers {
public:
    struct Options {
        uint16_t nb_ports = 1;
        uint32_t burst = 32;
        bool exception_path = false;  // rings to and from the kernel side
        // The lcores the workers run on; empty: one worker, on the main lcore.
        std::vector<unsigned> lcores;
        int logtype = 0;  // rte_log type of the control core's messages
        // After kIdlePolls polls in a row found nothing, each further empty poll sleeps this
        // long (offline for RCU meanwhile); 0: never sleep.
        uint32_t idle_sleep_us = 0;
    };
    static constexpr uint32_t kIdlePolls = 64;

    // `stop` ends every poll loop when set; it outlives this object.
    static Expected<std::unique_ptr<RingWorkers>> create(Options o, const std::atomic<bool>& stop);
    ~RingWorkers() override;
    RingWorkers(const RingWorkers&) = delete;
    RingWorkers& operator=(const RingWorkers&) = delete;

    uint16_t size() const noexcept { return nb_workers_; }
    bool main_runs_worker() const noexcept { return opt_.lcores.empty(); }

    // Builds every worker on its own lcore (so the flow tables' pages are first touched, hence
    // placed, on the worker's NUMA node), starting on the published snapshot, and their rings.
    Status build(lb::WorkerEnv env, uint32_t flow_capacity);
    // Samples new flows into the flow log; the writer drains every worker's ring.
    void enable_flow_log(uint32_t one_in, control::FlowLogWriter& writer);

    // Starts every worker's poll loop on its lcore (not with a single lcore: see run_main).
    Status launch();
    // Single lcore: runs worker 0's loop here until stop, calling control_step every ms.
    void run_main(const std::function<void()>& control_step);
    // Waits for every poll loop to end (after stop), then hands back what the rings still hold
    // and gives each TX queue a moment to send what it was given.
    void join();
    // After join: points every worker at the live snapshot (the one they last ran may be
    // reclaimed) so that their counters can be read against it.
    void park();

    // control::Workers
    void publish(std::shared_ptr<const lb::Service> s) override;
    void run_on_all(Task t) override;
    std::optional<std::vector<lb::Dataplane::Explanation>> ask_all(const control::FlowQuery& q) override;
    std::optional<std::vector<std::vector<lb::PersistEntry>>> persist_entries(uint16_t vip,
                                                                             size_t max_per_worker) override;
    void send_persist(uint16_t w, std::vector<lb::PersistEntry> entries) override;
    void send_sessions(uint16_t w, std::vector<lb::SessionReport> sessions) override;
    std::optional<SessionWalk> walk_sessions(uint16_t w, bool v6, uint32_t cursor, uint32_t budget, bool learnt,
                                             size_t max) override;
    std::optional<std::vector<lb::PersistEntry>> walk_persist(uint16_t w, size_t max) override;
    uint32_t clock_ms() const override;
    void for_each(const std::function<void(const lb::Dataplane&)>& f) const override;

    // Frees the snapshots no worker can see any more and the commands the workers have done.
    void reclaim();

    // The kernel side's traffic: frames worker w hands to the kernel, and the ring whose
    // frames worker 0 sends unchanged. nullptr without an exception path.
    rte_ring* to_control(uint16_t w) const noexcept { return slots_[w].to_control; }
    rte_ring* inject() const noexcept { return slots_.empty() ? nullptr : slots_[0].inject; }

    struct LoopStats {
        uint64_t loops = 0;       // poll-loop iterations
        uint64_t busy_loops = 0;  // iterations that found packets (busy / loops = load)
    };
    LoopStats loop_stats(uint16_t w) const noexcept { return {slots_[w].loops, slots_[w].busy_loops}; }

private:
    struct Command;
    struct Slot {
        std::unique_ptr<Worker> worker;
        uint16_t queue = 0;
        std::vector<rte_ring*> rings_in;   // from every other worker
        std::vector<rte_ring*> rings_out;  // to every other worker (nullptr for itself)
        rte_ring* commands = nullptr;      // control core -> worker (Command*)
        rte_ring* to_control = nullptr;    // worker -> control core (mbufs for the kernel side)
        rte_ring* inject = nullptr;        // control core -> worker 0 (mbufs to send as they are)
        uint64_t loops = 0;
        uint64_t busy_loops = 0;
    };

    RingWorkers(Options o, const std::atomic<bool>& stop);
    static int loop_entry(void* arg);
    static int build_entry(void* arg);
    void loop(Slot& s);
    void flush(Slot& s) noexcept;
    void run_commands(Slot& s, uint32_t now) noexcept;
    Command* send(uint16_t worker, std::unique_ptr<Command> c);
    // Sends c to every worker (made by make()) and waits for their answers (200 ms at most);
    // false if one did not answer in time.
    // Waits for c's worker to have run it (200 ms at most); false if it did not (or c is null).
    bool ask_one(Command* c);
    bool ask_every(const std::function<std::unique_ptr<Command>()>& make, std::vector<Command*>& asked);
    uint32_t now_ms() const noexcept;
    uint64_t now_ms64() const noexcept;

    Options opt_;
    const std::atomic<bool>& stop_;
    uint16_t nb_workers_;
    uint64_t tsc_per_ms_;
    std::vector<Slot> slots_;
    std::vector<rte_ring*> rings_;  // every ring, for freeing
    rte_rcu_qsbr* qsbr_ = nullptr;
    std::atomic<const lb::Service*> current_{nullptr};
    // Snapshots published and not yet reclaimed, with the RCU token of their retirement.
    std::shared_ptr<const lb::Service> live_;
    std::vector<std::pair<std::shared_ptr<const lb::Service>, uint64_t>> retired_;
    std::vector<std::unique_ptr<Command>> inflight_;  // freed once done, or after join()
    std::function<void()> control_step_;              // single lcore: the control core's turn
};

}  // namespace sluice::dpdk
