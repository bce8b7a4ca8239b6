// Workers called directly on the caller's thread: the replay harness and tests run the same
// control plane and the same worker code as the binary, without lcores, rings or RCU.
// Publishing switches every worker at once (between the packets the caller feeds), and every
// snapshot stays alive until the end (runs are short).
//
// Thread contract: one thread does everything.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "drivers/dpdk/worker.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/control/workers.hpp"

namespace sluice::dpdk {

class DirectWorkers final : public control::Workers {
public:
    // Builds `count` workers on the published snapshot (publish the first one before).
    void build(uint16_t count, lb::WorkerEnv env, uint32_t flow_capacity, uint16_t nb_ports);
    // Samples new flows into the flow log; the writer drains every worker's ring.
    void enable_flow_log(uint32_t one_in, control::FlowLogWriter& writer);

    uint16_t size() const noexcept { return static_cast<uint16_t>(workers_.size()); }
    Worker& operator[](uint16_t w) noexcept { return *workers_[w]; }
    // The time explain() answers at (the caller's virtual clock).
    void set_clock(uint32_t now_ms) noexcept { clock_ms_ = now_ms; }
    // Frees the workers (their mbufs in staging arrays must have been handled).
    void clear() noexcept { workers_.clear(); }

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
    uint32_t clock_ms() const override { return clock_ms_; }
    void for_each(const std::function<void(const lb::Dataplane&)>& f) const override;

private:
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::shared_ptr<const lb::Service>> snapshots_;
    uint32_t clock_ms_ = 0;
};

}  // namespace sluice::dpdk
