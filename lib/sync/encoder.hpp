// The sending side of state replication: entries in, sealed datagrams out. No sockets: the
// caller sends what take() hands out to every peer (the same bytes to each), and what the
// control methods return to the one peer concerned.
//
// Packing: entries go into the open datagram in the order added until the next one would push
// it past the MTU budget; then it is sealed (numbered, stamped, encrypted and tagged) and a new
// one opened. Order is kept because later entries of a key must win (an update after an add, a
// remove after both), and with entries of at most 81 bytes filling each datagram in turn leaves
// at most 80 bytes unused per datagram: the fewest datagrams that keep the order. flush() seals
// a partly filled one: the caller's latency bound (call it once per control-loop turn).
//
// Sealed entries datagrams are retained (the last `retain` of them, a receiver window's worth
// by default) so that a peer's NACK can be answered with the same bytes: resending the same
// ciphertext under the same nonce reveals nothing new, where re-encoding under an old sequence
// number would reuse a nonce for another plaintext.
//
// Thread contract: one Encoder per process and identity (two would reuse nonces), used by one
// thread (the control core); no locking. Allocates (datagram buffers) on that thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/sync/codec.hpp"
#include "lib/sync/counters.hpp"
#include "lib/sync/key.hpp"

namespace sluice::sync {

using Datagram = std::vector<uint8_t>;

// Who sends: the instance id (configured, unique in the tier) and the epoch of this life.
struct Identity {
    uint32_t instance = 0;
    uint64_t epoch = 0;
};

// An epoch for a process started at unix_ms: the start time in the high 44 bits (so a later
// life has a higher epoch, which is how receivers tell a restart from a replay of an earlier
// life) and 20 random bits (two processes started in the same millisecond under one id still
// differ). Calls crypto_init().
uint64_t make_epoch(uint64_t unix_ms) noexcept;

struct EncoderConfig {
    uint32_t mtu_bytes = kDefaultMtuBytes;  // largest datagram (UDP payload), kMinMtuBytes..kMaxDatagramBytes
    uint32_t retain = 1024;                 // entries datagrams kept for resends
};

class BulkWriter;

class Encoder {
public:
    // Fails on instance 0, epoch 0, an MTU budget out of range, or libsodium failing to start.
    static Expected<Encoder> create(const Key& key, Identity id, EncoderConfig cfg = {});

    // Appends e to the open entries datagram, sealing that one first (stamped now_ms) if e does
    // not fit. An entry validate() refuses is not added: the error says why (counted as
    // entries_invalid).
    Status add(const Entry& e, uint64_t now_ms);
    // Seals the open entries datagram, if it holds any entry.
    void flush(uint64_t now_ms);
    // Moves the sealed entries datagrams, oldest first, to the end of `out`; returns how many.
    size_t take(std::vector<Datagram>& out);
    size_t pending_entries() const noexcept { return open_count_; }
    // The last stream sequence number sealed (0: none yet).
    uint64_t highest_seq() const noexcept { return stream_seq_; }

    // Copies of the retained entries datagrams first..last to the end of `out` (a peer's NACK,
    // Action::resend); numbers no longer retained are counted as resend_unavailable (the peer
    // gives them up, and the next refresh repairs what they carried). Returns how many.
    size_t resend(uint64_t first, uint64_t last, std::vector<Datagram>& out);

    // Control messages, each one datagram for one peer (a heartbeat: for all).
    Datagram heartbeat(uint64_t now_ms);
    // The ack of Receiver::make_ack(). Ranges past the MTU budget are left out (the oldest stay).
    // Fails on an ack the peer would refuse (target or epoch 0, ranges out of order).
    Expected<Datagram> ack(const Ack& a, uint64_t now_ms);
    // Fails on target or resync_id 0.
    Expected<Datagram> resync_request(uint32_t target, uint32_t resync_id, uint64_t now_ms);

    // A bulk resync for `target` (Action::resync_requested gives all three). The writer uses
    // this Encoder and must not outlive it.
    BulkWriter bulk(uint32_t target, uint64_t target_epoch, uint32_t resync_id);

    const Identity& identity() const noexcept { return id_; }
    uint32_t mtu_bytes() const noexcept { return cfg_.mtu_bytes; }
    const SyncCounters& counters() const noexcept { return c_; }

private:
    friend class BulkWriter;
    Encoder(const Key& key, Identity id, EncoderConfig cfg);
    // Starts a datagram of `type` with `fixed` body bytes before any entry.
    void begin(Datagram& d, size_t fixed) const;
    // Writes the header (count, body length, sequence, timestamp), encrypts, appends the tag.
    void seal(Datagram& d, MsgType type, uint8_t flags, uint16_t count, uint64_t seq, uint64_t now_ms);
    void close_open(uint64_t now_ms);

    Key key_;
    Identity id_;
    EncoderConfig cfg_;
    uint64_t stream_seq_ = 0;
    uint64_t control_seq_ = 0;
    Datagram open_;
    uint16_t open_count_ = 0;
    std::vector<Datagram> sealed_;
    std::deque<Datagram> retained_;  // stream numbers highest_seq() - size() + 1 .. highest_seq()
    SyncCounters c_;
};

// The chunks of one bulk resync: add every entry of the state, then finish(); take() whenever
// convenient (a large table need not sit in memory whole). The last chunk carries the done
// flag; an empty state is one empty chunk with it.
class BulkWriter {
public:
    Status add(const Entry& e, uint64_t now_ms);
    void finish(uint64_t now_ms);
    size_t take(std::vector<Datagram>& out);
    uint32_t chunks() const noexcept { return info_.index; }  // sealed so far
    bool finished() const noexcept { return finished_; }

private:
    friend class Encoder;
    BulkWriter(Encoder& enc, const ChunkInfo& info);
    void close_open(uint64_t now_ms, bool last);

    Encoder* enc_;
    ChunkInfo info_;  // index: the chunk being filled
    Datagram open_;
    uint16_t open_count_ = 0;
    bool finished_ = false;
    std::vector<Datagram> sealed_;
};

}  // namespace sluice::sync
