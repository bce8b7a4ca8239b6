// Counters of the state-replication protocol: what was sent, what was taken, and every
// datagram refused under a named reason (as lib/lb/counters.hpp does for packets).
//
// The Encoder and the Receiver each own one SyncCounters block; a reader adds them up.
// Thread contract: single writer (the control core thread that owns the Encoder or Receiver);
// readers on the same thread, or through whatever hand-over the owner provides.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sluice::sync {

// Why a received datagram was refused, in the order the checks run (docs/sync-protocol.md,
// "Receiving"): the first four are decided before authentication, the rest after it.
#define SLUICE_SYNC_REFUSALS(X)                                                                        \
    X(too_short)     /* shorter than a header and a tag */                                             \
    X(too_long)      /* longer than kMaxDatagramBytes */                                               \
    X(bad_magic)     /* not a Sluice sync datagram */                                                  \
    X(bad_version)   /* another protocol version */                                                    \
    X(bad_tag)       /* authentication failed: wrong key, or altered on the way */                     \
    X(bad_type)      /* authentic, but a message type this version does not know */                   \
    X(malformed)     /* lengths or counts that disagree, reserved bits set, unknown entry kind */      \
    X(bad_value)     /* a field out of range: family, prefix, port, state, time, sequence 0 */        \
    X(unknown_peer)  /* an instance id that is not configured as a peer */                             \
    X(from_self)     /* our own instance id: a loop, or a peer configured with our id */               \
    X(stale_epoch)   /* an earlier life of the peer (a replay from before its restart) */              \
    X(replayed)      /* a sequence number already received */                                         \
    X(too_old)       /* a sequence number below the anti-replay window */                             \
    X(wrong_target)  /* an ack, resync request or chunk for another instance or another life of ours */ \
    X(stale_resync)  /* a bulk-resync chunk of no resync this instance is waiting for */

enum class Refusal : uint8_t {
#define SLUICE_X(name) name,
    SLUICE_SYNC_REFUSALS(SLUICE_X)
#undef SLUICE_X
    count_
};
constexpr size_t kRefusals = static_cast<size_t>(Refusal::count_);
const char* to_string(Refusal r) noexcept;

// The scalar members of SyncCounters, in declaration order (checked below).
#define SLUICE_SYNC_SCALARS(X)                                                                         \
    X(datagrams_sent) X(bytes_sent) X(entries_sent) X(entries_invalid) X(heartbeats_sent) X(acks_sent)   \
    X(nack_ranges_sent) X(resync_requests_sent) X(bulk_chunks_sent) X(bulk_entries_sent) X(resent)       \
    X(resend_unavailable) X(datagrams_received) X(bytes_received) X(accepted) X(entries_accepted)       \
    X(session_upserts) X(session_removes) X(persist_upserts) X(persist_removes) X(heartbeats_received)  \
    X(acks_received) X(nack_ranges_received) X(resync_requests_received) X(bulk_chunks_received)        \
    X(resyncs_completed) X(resyncs_failed) X(peers_new) X(peer_restarts) X(missing) X(filled) X(lost)    \
    X(late) X(lag_samples) X(lag_ms_sum) X(lag_ms_max) X(rtt_samples) X(rtt_ms_sum)

struct SyncCounters {
    // Sending (Encoder). Datagrams and bytes count every datagram handed out, resends included.
    uint64_t datagrams_sent = 0;
    uint64_t bytes_sent = 0;
    uint64_t entries_sent = 0;       // entries in entries messages (not bulk, not resends)
    uint64_t entries_invalid = 0;    // entries the encoder refused (validate() said why)
    uint64_t heartbeats_sent = 0;
    uint64_t acks_sent = 0;
    uint64_t nack_ranges_sent = 0;   // missing ranges reported in acks
    uint64_t resync_requests_sent = 0;
    uint64_t bulk_chunks_sent = 0;
    uint64_t bulk_entries_sent = 0;
    uint64_t resent = 0;             // entries datagrams sent again on a peer's NACK
    uint64_t resend_unavailable = 0; // NACKed sequence numbers no longer retained
    // Receiving (Receiver). Every datagram fed counts in datagrams/bytes_received; it is then
    // either accepted or refused under one reason.
    uint64_t datagrams_received = 0;
    uint64_t bytes_received = 0;
    uint64_t accepted = 0;
    uint64_t entries_accepted = 0;   // handed to the caller to install (bulk included)
    uint64_t session_upserts = 0;
    uint64_t session_removes = 0;
    uint64_t persist_upserts = 0;
    uint64_t persist_removes = 0;
    uint64_t heartbeats_received = 0;
    uint64_t acks_received = 0;
    uint64_t nack_ranges_received = 0;
    uint64_t resync_requests_received = 0;
    uint64_t bulk_chunks_received = 0;
    uint64_t resyncs_completed = 0;  // every chunk of a resync this instance asked for arrived
    uint64_t resyncs_failed = 0;     // timed out, chunks missing, or the peer restarted meanwhile
    uint64_t peers_new = 0;          // first contact with a peer (or after it was forgotten)
    uint64_t peer_restarts = 0;      // a peer came back with a new epoch
    // Entries messages of the peers' streams: found missing (a gap), arrived after all, given
    // up (lost: not resent within the gap timeout, or pushed out of the window), and arrived
    // after being given up (late).
    uint64_t missing = 0;
    uint64_t filled = 0;
    uint64_t lost = 0;
    uint64_t late = 0;
    // Sync lag: receive time minus the sender's timestamp of accepted entries, heartbeat and
    // bulk messages (docs/sync-protocol.md, "Lag"); negative values (a peer's clock ahead) count
    // as 0. Round trip: the receive time of an ack minus the timestamp it echoes (one clock).
    uint64_t lag_samples = 0;
    uint64_t lag_ms_sum = 0;
    uint64_t lag_ms_max = 0;
    uint64_t rtt_samples = 0;
    uint64_t rtt_ms_sum = 0;
    std::array<uint64_t, kRefusals> refused{};

    void refuse(Refusal r) noexcept { ++refused[static_cast<size_t>(r)]; }
    uint64_t refused_total() const noexcept {
        uint64_t s = 0;
        for (auto v : refused) s += v;
        return s;
    }
    // Calls f(name, value) for every scalar counter, then f("refused_<reason>", value) for
    // every reason: the one list exports walk.
    template <class F>
    void for_each(F&& f) const {
#define SLUICE_X(name) f(#name, name);
        SLUICE_SYNC_SCALARS(SLUICE_X)
#undef SLUICE_X
#define SLUICE_X(name) f("refused_" #name, refused[static_cast<size_t>(Refusal::name)]);
        SLUICE_SYNC_REFUSALS(SLUICE_X)
#undef SLUICE_X
    }
    // Adds another block (totals); lag_ms_max takes the larger.
    void add(const SyncCounters& o) noexcept;
};
#define SLUICE_X(name) +1
static_assert(offsetof(SyncCounters, refused) == sizeof(uint64_t) * (0 SLUICE_SYNC_SCALARS(SLUICE_X)));
#undef SLUICE_X

}  // namespace sluice::sync
