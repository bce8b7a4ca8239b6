// The control core's view of the workers, whatever runs them: the sluice binary's lcores,
// reached through command rings and RCU (drivers/dpdk/ring_workers.hpp), or workers called
// directly on one thread by the replay harness and tests (drivers/dpdk/direct_workers.hpp).
// The control plane reaches the workers only through this interface, so both run the same
// control logic: what "a hit on any worker wins" means is written once, here.
//
// Thread contract: called from the control core's thread, except for_each() and counters(),
// which the telemetry thread may call too (they only read).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "lib/lb/config.hpp"
#include "lib/lb/counters.hpp"
#include "lib/lb/dataplane.hpp"
#include "lib/net/addr.hpp"

namespace sluice::control {

// A question for every worker's table: where does a flow of this tuple go (sluicectl explain)?
struct FlowQuery {
    lb::Proto proto = lb::Proto::tcp;
    net::IpAddr src;
    uint16_t sport = 0;
    net::IpAddr dst;
    uint16_t dport = 0;
};

// One worker's answer to a query, from its own table (read-only).
lb::Dataplane::Explanation ask(const lb::Dataplane& dp, const FlowQuery& q, uint32_t now_ms) noexcept;

class Workers {
public:
    // Work a worker does between two bursts when the control core asks for it.
    enum class Task : uint8_t {
        flush_removed,   // forget the flows of the backends the published snapshot removed
        clear_counters,  // zero the worker's counters
    };

    virtual ~Workers() = default;

    // Makes the snapshot current for every worker; it stays alive until none can see it.
    virtual void publish(std::shared_ptr<const lb::Service> s) = 0;
    // Has every worker run the task (the binary does not wait for it to be done).
    virtual void run_on_all(Task t) = 0;
    // Every worker's answer to the query, or nullopt if one did not answer in time.
    virtual std::optional<std::vector<lb::Dataplane::Explanation>> ask_all(const FlowQuery& q) = 0;
    // Every worker's live persistence entries of VIP vip (at most max_per_worker each), in
    // worker order, or nullopt if one did not answer in time.
    virtual std::optional<std::vector<std::vector<lb::PersistEntry>>> persist_entries(uint16_t vip,
                                                                                     size_t max_per_worker) = 0;
    // Hands worker w persistence entries the other workers made, to install between bursts.
    virtual void send_persist(uint16_t w, std::vector<lb::PersistEntry> entries) = 0;
    // Replication (lib/control/sync_agent.hpp). Hands worker w sessions the tier's peers
    // reported, to install between bursts.
    virtual void send_sessions(uint16_t w, std::vector<lb::SessionReport> sessions) = 0;
    // Worker w's live fullnat sessions among its records [cursor, cursor + budget) (at most
    // max; learnt: those installed from peers too) and the cursor to go on from; nullopt if it
    // did not answer in time.
    struct SessionWalk {
        std::vector<lb::SessionReport> sessions;
        uint32_t next = 0;
    };
    virtual std::optional<SessionWalk> walk_sessions(uint16_t w, bool v6, uint32_t cursor, uint32_t budget,
                                                     bool learnt, size_t max) = 0;
    // Worker w's live persistence entries (at most max), or nullopt if it did not answer in time.
    virtual std::optional<std::vector<lb::PersistEntry>> walk_persist(uint16_t w, size_t max) = 0;
    // The workers' millisecond clock, which their entries' times are on.
    virtual uint32_t clock_ms() const = 0;
    // Reads every worker's data path, in worker order. From the control core of the binary the
    // counters are read while the workers write them: each value is whole, the set is not a
    // snapshot.
    virtual void for_each(const std::function<void(const lb::Dataplane&)>& f) const = 0;

    // The sum of every worker's counters.
    virtual lb::WorkerCounters counters() const;
    std::vector<const lb::Dataplane*> dataplanes() const;
    // Where the flow goes: the worker whose table holds it (its owner) answers; without a hit
    // anywhere, Maglev's answer (the same on every worker). nullopt if a worker did not answer.
    std::optional<lb::Dataplane::Explanation> explain(const FlowQuery& q);
    // Persistence between workers: pops what every worker reported (the entries it pinned or
    // extended) and sends each report to every other worker. The control core calls it every
    // turn; a worker that has not received an entry yet decides by Maglev over the client's
    // network meanwhile (lib/lb/dp_persist.cpp). Returns the reports relayed.
    // With `also`, every report is handed to it too, whatever the number of workers (the
    // replication sends them to the tier's peers).
    size_t relay_persist(const std::function<void(const lb::PersistEntry&)>& also = {});
};

// A worker does the task on its own data path (called on the worker's thread).
void perform(Workers::Task t, lb::Dataplane& dp) noexcept;

}  // namespace sluice::control
