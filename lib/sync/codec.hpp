// The state-replication wire format, version 1 (docs/sync-protocol.md is the specification;
// this file and codec.cpp are its one implementation).
//
// A datagram is a 40-byte header in clear, a body, and a 16-byte tag:
//   header  magic "SLSY", version, type, flags, reserved, sender instance id, entry/range count,
//           body length, epoch, sequence number, sender's timestamp (all big endian)
//   body    XChaCha20-Poly1305 ciphertext of the type's fields and entries
//   tag     its Poly1305 tag, the header being the associated data
// The nonce is not sent: it is (instance id, epoch, sequence, type), which never repeats under
// one key (docs/sync-protocol.md, "Authentication"). Every integer is big endian and every
// field has a fixed size for its kind and family, so decoding is bounds checks and loads.
//
// Decoding is strict: lengths and counts must add up exactly, reserved bits are zero, every
// value is checked (validate() for entries), and re-encoding what was decoded gives the same
// bytes (the fuzzer checks it). Nothing here allocates but the output vectors.
// Thread contract: pure functions over caller buffers; reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "lib/sync/counters.hpp"
#include "lib/sync/entry.hpp"
#include "lib/sync/key.hpp"

namespace sluice::sync {

inline constexpr uint8_t kMagic[4] = {'S', 'L', 'S', 'Y'};
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 40;
inline constexpr size_t kTagBytes = 16;  // crypto_aead_xchacha20poly1305_ietf_ABYTES
inline constexpr size_t kOverheadBytes = kHeaderBytes + kTagBytes;
// The largest datagram sent or accepted (a 9000-byte jumbo frame's worth), and the smallest
// MTU budget an encoder takes (room for the largest entry and an ack with a few ranges).
inline constexpr size_t kMaxDatagramBytes = 9000;
inline constexpr size_t kMinMtuBytes = 512;
inline constexpr size_t kDefaultMtuBytes = 1400;

enum class MsgType : uint8_t { entries = 1, ack = 2, heartbeat = 3, resync_request = 4, bulk_chunk = 5 };
const char* to_string(MsgType t) noexcept;
// Entries messages number their own stream (gaps in it are found and repaired); every other
// type is numbered in the sender's control sequence (replay protection only).
constexpr bool in_stream(MsgType t) noexcept { return t == MsgType::entries; }

// Header flags. kFlagDone marks a bulk resync's last chunk; no other bit is defined.
inline constexpr uint8_t kFlagDone = 0x01;

struct Header {
    MsgType type = MsgType::entries;
    uint8_t flags = 0;
    uint32_t sender = 0;     // instance id, 1..2^32-1
    uint16_t count = 0;      // entries (entries, bulk_chunk) or missing ranges (ack); else 0
    uint16_t body_len = 0;   // bytes between header and tag
    uint64_t epoch = 0;      // the sender's life, nonzero
    uint64_t seq = 0;        // stream or control sequence number, from 1
    uint64_t sent_ms = 0;    // the sender's clock (Unix milliseconds) when sealed
    friend bool operator==(const Header&, const Header&) = default;
};

// An inclusive range of sequence numbers.
struct SeqRange {
    uint64_t first = 0;
    uint64_t last = 0;
    friend bool operator==(const SeqRange&, const SeqRange&) = default;
};

// ack: what a receiver has of the target's stream, and what it misses.
inline constexpr size_t kMaxAckRanges = 64;
struct Ack {
    uint32_t target = 0;        // the instance whose stream is acknowledged
    uint64_t target_epoch = 0;  // ... in that life
    uint64_t cumulative = 0;    // every sequence number up to this one was received or given up
    uint64_t highest = 0;       // the highest sequence number known to exist
    uint64_t echo_sent_ms = 0;  // sent_ms of the target's latest accepted message (round trip)
    std::vector<SeqRange> missing;  // ascending, disjoint, within (cumulative, highest]
    friend bool operator==(const Ack&, const Ack&) = default;
};

struct Heartbeat {
    uint64_t highest = 0;  // the sender's highest stream sequence number so far (0: none yet)
    friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

struct ResyncRequest {
    uint32_t target = 0;     // the instance asked for its state
    uint32_t resync_id = 0;  // chosen by the requester, nonzero; chunks carry it back
    friend bool operator==(const ResyncRequest&, const ResyncRequest&) = default;
};

// The fixed part of a bulk_chunk body; entries follow.
inline constexpr uint32_t kMaxBulkChunks = 1u << 20;
struct ChunkInfo {
    uint32_t target = 0;         // the requester
    uint64_t target_epoch = 0;   // ... in the life that asked (the request's epoch)
    uint32_t resync_id = 0;
    uint32_t index = 0;          // 0.. in sending order, < kMaxBulkChunks
    uint64_t snapshot_seq = 0;   // the sender's stream position when the snapshot began
    friend bool operator==(const ChunkInfo&, const ChunkInfo&) = default;
};

inline constexpr size_t kAckFixedBytes = 36;
inline constexpr size_t kAckRangeBytes = 16;
inline constexpr size_t kHeartbeatBytes = 8;
inline constexpr size_t kResyncRequestBytes = 8;
inline constexpr size_t kChunkFixedBytes = 28;

// Wire size of an entry (its kind, family and fields); the largest is kMaxEntryBytes.
inline constexpr size_t kMaxEntryBytes = 81;
size_t entry_bytes(const Entry& e) noexcept;
// Writes a valid entry (validate(e) == nullptr) at p, entry_bytes(e) bytes; returns the end.
uint8_t* put_entry(uint8_t* p, const Entry& e) noexcept;
// Reads one entry from [p, end): on success advances p and fills out. Refusal::malformed for an
// unknown kind or family or a short buffer, Refusal::bad_value for a field validate() refuses.
std::optional<Refusal> get_entry(const uint8_t*& p, const uint8_t* end, Entry& out);

void put_header(uint8_t* p, const Header& h) noexcept;
// The header fields of a datagram whose length, magic and version were checked.
Header get_header(const uint8_t* p) noexcept;

void put_ack_body(uint8_t* p, const Ack& a) noexcept;  // kAckFixedBytes + 16 per range
void put_chunk_info(uint8_t* p, const ChunkInfo& c) noexcept;

// Encrypts the body of the datagram in `buf` in place and writes its tag after it. The buffer
// holds the header (body_len set) and the plaintext body, with kTagBytes of room beyond.
void seal(const Key& key, uint8_t* buf) noexcept;
// The same over body_len bytes whatever the header says: for tests and the fuzzer, which need
// authentic datagrams whose header lies about their length.
void seal_body(const Key& key, uint8_t* buf, size_t body_len) noexcept;
// Verifies the tag of the datagram in `buf` (len bytes, length, magic and version checked)
// and decrypts its body in place. False: not authentic; the body is then left as it was.
bool open(const Key& key, uint8_t* buf, size_t len) noexcept;

// A decoded message: the header, then what its type carries.
struct Message {
    Header header;
    Ack ack;
    Heartbeat heartbeat;
    ResyncRequest resync;
    ChunkInfo chunk;
    std::vector<Entry> entries;  // entries, bulk_chunk
    void clear() noexcept {
        ack.missing.clear();
        entries.clear();
    }
};

// Checks length, magic and version: what is looked at before the tag.
std::optional<Refusal> check_frame(std::span<const uint8_t> d) noexcept;
// Decodes an opened (decrypted) datagram: the header's type, flags, lengths and counts, then
// the body. Refusals: bad_type, malformed, bad_value. out.entries / out.ack.missing are
// cleared first and reused.
std::optional<Refusal> decode_opened(std::span<const uint8_t> d, Message& out);

}  // namespace sluice::sync
