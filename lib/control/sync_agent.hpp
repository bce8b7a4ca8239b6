// The control core's side of state replication between the instances of a tier
// (docs/sync-protocol.md): it owns the UDP socket, the protocol's Encoder and Receiver, and
// moves state between them and the workers.
//
// Out: the workers report their fullnat sessions (lib/lb/dp_sync.cpp) and persistence entries;
// a session is sent once it has been confirmed for --sync-min-age (a shorter one never leaves
// the instance: one that closes (both FINs, or an RST) or ends before then is held back, and
// its add and remove cancel here), and its end when it was sent. Adds wait for
// the --sync-rate budget; removes and persistence entries go first. Every --sync-refresh the
// workers' sessions are walked and sent again (a peer's copy lives one timeout past the last
// refresh), which also repairs what the network lost beyond the protocol's resends.
// In: peers' sessions are installed through the command rings of the workers whose RSS queues
// their packets reach (the forward tuple's, and the reply tuple's if that is another worker);
// their persistence entries go to every worker. A peer's bulk-resync request is answered by
// walking every worker's tables, a chunk per turn.
// Start: every peer is asked for a bulk resync; until each has answered or failed to (a peer
// that is down, as when the whole tier starts), hold_reason() says why the instance must not
// announce yet. A peer that answers later is asked again when it is first heard.
//
// The workers' tables are the only copy of the state: nothing is mirrored here.
// Thread contract: the control core's thread only.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/control/workers.hpp"
#include "lib/lb/config.hpp"
#include "lib/lb/service.hpp"
#include "lib/sync/encoder.hpp"
#include "lib/sync/receiver.hpp"

namespace sluice::control {

// What the agent counts besides the protocol's own counters.
#define SLUICE_SYNC_AGENT_SCALARS(X)                                                                   \
    X(reports) X(reports_cancelled) X(adds_queued) X(adds_sent) X(updates_sent) X(removes_sent)     \
    X(persist_sent) X(refresh_sent) X(rate_deferred) X(pending_dropped) X(installed) X(removed)      \
    X(persist_installed) X(unknown_service) X(send_errors) X(walk_timeouts) X(bulk_sent)            \
    X(resyncs_answered)

struct SyncAgentCounters {
#define SLUICE_X(name) uint64_t name = 0;
    SLUICE_SYNC_AGENT_SCALARS(SLUICE_X)
#undef SLUICE_X
    template <class F>
    void for_each(F&& f) const {
#define SLUICE_X(name) f(#name, name);
        SLUICE_SYNC_AGENT_SCALARS(SLUICE_X)
#undef SLUICE_X
    }
};

class SyncAgent {
public:
    // Loads the key, binds the socket and asks every peer for its state. `log` takes one line
    // for the operator (resyncs, peers heard, restarts).
    static Expected<std::unique_ptr<SyncAgent>> open(const lb::SyncConf& conf, const lb::Timeouts& timeouts,
                                                     uint64_t unix_ms, std::function<void(const std::string&)> log);
    ~SyncAgent();
    SyncAgent(const SyncAgent&) = delete;
    SyncAgent& operator=(const SyncAgent&) = delete;

    // One control-core turn: the workers' reports out, the peers' datagrams in, timers.
    // unix_ms: the wall clock (the protocol's timestamps); `service`: the live snapshot.
    void poll(uint64_t unix_ms, Workers& workers, const lb::Service& service);

    // Empty once every peer's initial resync has finished (or failed: a peer that is down);
    // else why the instance should not announce its VIPs yet.
    std::string hold_reason() const;
    // `sluicectl stats` lines and the Prometheus series.
    std::string stats() const;
    std::string metrics() const;
    // Totals of the protocol's counters (encoder and receiver) and the agent's own.
    sync::SyncCounters protocol_counters() const;
    const SyncAgentCounters& counters() const noexcept { return c_; }
    // Lag of accepted messages (receive time minus send time), in ms: the p-th percentile
    // (0 < p < 1) over the samples since start, from a log-scale histogram.
    uint64_t lag_percentile(double p) const;

private:
    struct SessKey {
        uint8_t len = 4;
        uint16_t vip = 0;
        uint16_t port_raw = 0;
        std::array<uint8_t, 16> client{};
        friend bool operator==(const SessKey&, const SessKey&) = default;
    };
    static SessKey key_of(const lb::SessionReport& r) noexcept;
    struct SessKeyHash {
        size_t operator()(const SessKey& k) const noexcept;
    };
    struct Pending {
        lb::SessionReport report;
        uint64_t first_ms = 0;
    };
    // A walk over every worker's tables, a chunk per turn: a refresh (this instance's sessions)
    // or a peer's bulk resync (everything, persistence entries too).
    struct Walk {
        bool bulk = false;
        uint32_t peer = 0;
        std::optional<sync::BulkWriter> writer;
        uint16_t worker = 0;
        bool v6 = false;
        uint32_t cursor = 0;
        bool persist_done = false;
    };
    enum class PeerResync : uint8_t { asking, done, unanswered };
    struct PeerState {
        lb::SyncPeerConf conf;
        PeerResync resync = PeerResync::asking;
        uint32_t resync_id = 0;
        uint32_t retries = 0;
        bool holding = true;  // its first resync (at start) is not over: hold the routes back
    };

    SyncAgent(const lb::SyncConf& conf, const lb::Timeouts& timeouts, sync::Encoder enc, sync::Receiver rx, int fd,
              std::function<void(const std::string&)> log);
    void take_reports(uint64_t now, Workers& workers, const lb::Service& service);
    void send_pending(uint64_t now, const lb::Service& service);
    void add(const sync::Entry& e, uint64_t now, uint64_t& counter);
    void step_walk(uint64_t now, Workers& workers, const lb::Service& service);
    void receive(uint64_t now, Workers& workers, const lb::Service& service);
    // dp0: any worker (RSS queues are the same from each); clock: the workers' clock.
    void install(const sync::Entry& e, const lb::Dataplane* dp0, uint32_t clock, const lb::Service& service,
                 std::vector<std::vector<lb::SessionReport>>& sessions, std::vector<lb::PersistEntry>& persist);
    void act(const sync::Action& a, uint64_t now);
    void ask_resync(PeerState& p, uint64_t now);
    void send_to(uint32_t peer, const sync::Datagram& d);
    void send_all(std::vector<sync::Datagram>& out);
    void flush_out(uint64_t now);
    PeerState* peer(uint32_t id);
    std::optional<sync::Session> to_session(const lb::SessionReport& r, const lb::Service& service) const;
    std::optional<sync::Persist> to_persist(const lb::PersistEntry& e, const lb::Service& service,
                                            uint32_t clock) const;
    void note_lag(uint64_t lag_ms);

    lb::SyncConf conf_;
    lb::Timeouts timeouts_;
    sync::Encoder enc_;
    sync::Receiver rx_;
    int fd_ = -1;
    std::function<void(const std::string&)> log_;
    std::vector<PeerState> peers_;
    std::list<Pending> pending_;  // confirmed sessions waiting for their age or the rate budget
    std::unordered_map<SessKey, std::list<Pending>::iterator, SessKeyHash> pending_index_;
    // Sessions that closed while pending: never sent, so their end is not sent either.
    std::unordered_set<SessKey, SessKeyHash> closed_unsent_;
    std::vector<sync::Entry> urgent_;  // removes and updates: not held back by the rate budget
    double tokens_ = 0;
    uint64_t tokens_ms_ = 0;
    std::list<Walk> walks_;
    uint64_t next_refresh_ms_ = 0;
    uint64_t next_heartbeat_ms_ = 0;
    uint64_t next_poll_ms_ = 0;
    uint64_t last_now_ = 0;
    sync::Delivery delivery_;
    std::vector<sync::Action> actions_;
    std::vector<sync::Datagram> out_;
    std::vector<uint8_t> buf_;
    std::array<uint64_t, 24> lag_hist_{};  // bucket i: lag in [2^(i-1), 2^i) ms; bucket 0: 0 ms
    SyncAgentCounters c_;
};

}  // namespace sluice::control
