// The receiving side of state replication: datagrams from the tier's peers in, entries to
// install and things to do out. No sockets, no clock of its own: the caller reads datagrams
// and passes the time.
//
// feed() takes one datagram. It checks length, magic and version, then the tag (nothing else
// is read before it verifies), then the header and the whole body, and only then the sender's
// state: a datagram is taken whole or refused whole (one counted reason), and a refused one
// changes no state. What a taken datagram brings:
//  - entries (entries messages, bulk chunks) in `Delivery::entries`, in the order sent. Later
//    entries of one key win; reordering between datagrams can bring an older state after a
//    newer one (a removed session back): such a session then expires on its idle timeout, as a
//    flow table entry that sees no packets does, and the next refresh corrects the rest;
//  - actions in `Delivery::actions` (and from poll()): say hello to a new peer, NACK gaps,
//    resend what a peer misses, answer a resync request, and how a resync this instance asked
//    for ended.
// Per peer (instance id), each life (epoch) has two sequence spaces: its entries stream, whose
// gaps are found, reported and given up after a timeout, and its control messages (acks,
// heartbeats, resync requests, bulk chunks), replay-protected only. A new epoch is accepted only
// if higher than the current one (epochs grow with the start time: make_epoch()), or once the
// peer has been silent for forget_ms (a peer whose clock went back across a restart).
//
// Thread contract: one Receiver per control-core thread; no locking. Allocates on the control
// core only (peer table at creation, entry and action vectors as they grow, reused across calls).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/sync/codec.hpp"
#include "lib/sync/counters.hpp"
#include "lib/sync/key.hpp"
#include "lib/sync/window.hpp"

namespace sluice::sync {

struct ReceiverConfig {
    uint32_t self = 0;                // this instance's id
    uint64_t self_epoch = 0;          // this instance's epoch (acks and chunks must name it)
    std::vector<uint32_t> peers;      // the other instances of the tier, nonzero, not self
    uint32_t gap_timeout_ms = 1000;   // a missing entries message not resent by then is lost
    uint32_t nack_interval_ms = 100;  // while gaps stay open, a NACK at most this often
    uint32_t resync_timeout_ms = 5000;  // a resync with no chunk for this long has failed
    uint32_t forget_ms = 60'000;      // a peer silent this long may come back with any epoch
};

// What the caller should do. Which fields are set depends on the kind.
struct Action {
    enum class Kind : uint8_t {
        hello,              // peer: first contact since this receiver started (or forgot it);
                            //   ask it for a resync if this instance needs the tier's state
        peer_restarted,     // peer: a new life; what it had is gone, it will ask for a resync
        send_ack,           // peer: its stream has gaps; send it make_ack(peer) now
        lost,               // peer, first..last: entries messages given up (refresh repairs them)
        resend,             // peer, first..last: our stream's messages it misses (Encoder::resend)
        resync_requested,   // peer, epoch, resync_id: it asks for our state (Encoder::bulk)
        resync_done,        // peer, resync_id: every chunk arrived
        resync_failed,      // peer, resync_id: timed out or the peer restarted: ask again
    };
    Kind kind = Kind::hello;
    uint32_t peer = 0;
    uint32_t resync_id = 0;
    uint64_t epoch = 0;
    uint64_t first = 0;
    uint64_t last = 0;
    friend bool operator==(const Action&, const Action&) = default;
};
const char* to_string(Action::Kind k) noexcept;

// The outcome of one feed(). Vectors are cleared by feed() and keep their capacity.
struct Delivery {
    uint32_t peer = 0;
    MsgType type = MsgType::entries;
    uint64_t seq = 0;
    bool bulk = false;            // entries come from a bulk resync
    std::vector<Entry> entries;   // to install, in order
    std::vector<Action> actions;
};

// A peer as the receiver sees it (for status output and metrics).
struct PeerStatus {
    uint32_t id = 0;
    bool heard = false;          // anything accepted from it yet
    uint64_t epoch = 0;
    uint64_t last_heard_ms = 0;
    uint64_t highest = 0;        // its stream's highest known sequence number
    uint64_t cumulative = 0;     // everything up to here received, given up or from before us
    uint64_t missing = 0;        // sequence numbers in open gaps
    int64_t lag_ms = 0;          // receive time minus its timestamp, last accepted message
    uint64_t rtt_ms = 0;         // last round trip measured from its acks' echo
    bool resync_pending = false;
};

class Receiver {
public:
    // Fails on a bad configuration: self 0, a peer 0 or equal to self or listed twice, no
    // self_epoch, a zero timeout.
    static Expected<Receiver> create(const Key& key, ReceiverConfig cfg);

    // Takes one datagram received at now_ms (the caller's clock, the one its Encoder stamps:
    // Unix milliseconds). nullopt: accepted, `out` filled; else the reason, counted, and `out`
    // left empty.
    std::optional<Refusal> feed(std::span<const uint8_t> datagram, uint64_t now_ms, Delivery& out);

    // Timers: gaps given up (lost), NACKs repeated while gaps stay open, resyncs timed out.
    // Appends actions to `out`. Call every few tens of milliseconds.
    void poll(uint64_t now_ms, std::vector<Action>& out);

    // The ack to send `peer` about its stream (oldest missing ranges first, at most
    // kMaxAckRanges), or nullopt if nothing was heard from it yet. Restarts the NACK interval.
    std::optional<Ack> make_ack(uint32_t peer, uint64_t now_ms);

    // Starts waiting for a bulk resync from `peer`; returns the id to put in the request
    // (Encoder::resync_request), or 0 if `peer` is not configured. A new request supersedes an
    // outstanding one (its late chunks are refused as stale_resync).
    uint32_t start_resync(uint32_t peer, uint64_t now_ms);

    std::optional<PeerStatus> status(uint32_t peer) const;
    std::vector<PeerStatus> status() const;
    const SyncCounters& counters() const noexcept { return c_; }

private:
    struct Peer {
        uint32_t id = 0;
        bool heard = false;
        uint64_t epoch = 0;
        uint64_t last_heard_ms = 0;
        StreamTracker stream;
        ReplayWindow control;
        uint64_t echo_sent_ms = 0;  // its latest stream or heartbeat timestamp, echoed in acks
        int64_t lag_ms = 0;
        uint64_t rtt_ms = 0;
        uint64_t last_nack_ms = 0;
        // The resync this instance asked the peer for.
        bool resync_active = false;
        uint32_t resync_id = 0;
        uint64_t resync_last_ms = 0;  // request or latest chunk
        std::vector<bool> chunks;     // received, by index
        uint32_t chunks_received = 0;
        uint32_t chunks_total = 0;    // 0 until the last chunk arrived
    };

    Receiver(const Key& key, ReceiverConfig cfg);
    Peer* find(uint32_t id) noexcept;
    const Peer* find(uint32_t id) const noexcept;
    std::optional<Refusal> refuse(Refusal r) noexcept {
        c_.refuse(r);
        return r;
    }
    void note_lag(Peer& p, uint64_t sent_ms, uint64_t now_ms) noexcept;
    void new_life(Peer& p, uint64_t epoch, bool keep_resync, std::vector<Action>& actions);
    void count_stream(Peer& p, const StreamTracker::Outcome& o, std::vector<Action>& actions);
    void take_chunk(Peer& p, const Message& m, uint64_t now_ms, std::vector<Action>& actions);

    Key key_;
    ReceiverConfig cfg_;
    std::vector<Peer> peers_;
    uint32_t next_resync_id_ = 1;
    std::vector<uint8_t> scratch_;
    Message msg_;
    SyncCounters c_;
};

}  // namespace sluice::sync
