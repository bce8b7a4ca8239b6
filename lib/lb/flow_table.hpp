// Per-worker flow table: a fixed-capacity cache of load-balancing decisions.
//
// Maglev is the ground truth; this table only remembers decisions so established flows keep
// their backend when the backend set changes, and maps replies of nat/fullnat flows back to
// their flow. Layout, chosen to stay within 64 bytes per IPv4 flow with both directions:
//  - records: one FlowRecord<A> per flow in a flat array (36 bytes for IPv4, 48 for IPv6);
//  - index: partial-key cuckoo hash (two candidate buckets, 8 slots of {32-bit signature,
//    32-bit reference} per 64-byte bucket), one slot per direction. The alternate bucket is
//    derived from the signature alone, so entries can move without their key; keys are never
//    stored twice, a hit is confirmed against the record by the caller's predicate.
//    Sized for 2 x capacity slots at <= 85% load: ~19 bytes per flow. Hashes come from the
//    caller, keyed (lib/lb/flow_hash.hpp), so an outsider cannot aim at a bucket.
//  - slot positions: where each direction of each flow sits in the index (bucket x 8 + slot),
//    kept up to date as entries move; 8 bytes per flow beside the buckets. Removing a flow
//    (eviction, expiry, removal) clears its slots through them, so it needs neither its keys
//    nor a hash: otherwise each flow a full table evicts for a newcomer costs two keyed hashes
//    on the newcomer's dependent chain. Lookups never read them, so the established path
//    touches what it did.
//  - expiry: one timer wheel per timeout class (256 slots of timeout/128 ms each). A flow is
//    filed under the slot of its deadline when it is created or changes state; touching it
//    only stamps last_ms. The expiry pass walks the slots whose time has passed: flows idle
//    past their timeout are freed, the others are re-filed under their real deadline. So expiry
//    needs no scan, a packet costs no list surgery (lazy + incremental), and a flow is freed at
//    most one slot (timeout/128) after its deadline. Lookups treat a flow idle past its
//    timeout as gone (is_stale), so forwarding is exact whatever the expiry lag.
//  - when the records run out, an insert first reclaims a flow already idle past its timeout,
//    then evicts by value: the least recently active unconfirmed flow, then a closing one,
//    then a half-open one. Established, half-closed and confirmed UDP flows are never evicted
//    for a newcomer: the insert is refused instead and the caller decides (forward without
//    state, or drop). All of it is bounded work.
// Time is a caller-supplied millisecond clock (wrapping uint32), so tests and the replay
// harness drive it.
// Thread contract: owned by exactly one worker; no locking, no allocation after construction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>

#include <emmintrin.h>

#include "lib/common/hash_mix.hpp"
#include "lib/common/huge_array.hpp"
#include "lib/lb/config.hpp"

namespace sluice::lb {

// A flow's state, which is also its timeout class (state - 1).
//  tcp_syn: half-open, a client SYN seen; tcp_established: the handshake completed (in nat and
//  fullnat only once the backend answered it); tcp_closing: FIN from both sides, or an RST;
//  udp: a UDP flow the backend answered (nat, fullnat); unconfirmed: a flow picked up from a
//  packet that starts no connection (a TCP non-SYN miss, a UDP datagram of an unknown flow),
//  promoted only by the backend's answer; tcp_half_closed: FIN from one side only.
enum class FlowState : uint8_t { free = 0, tcp_syn, tcp_established, tcp_closing, udp, unconfirmed, tcp_half_closed };
constexpr int kTimeoutClasses = 6;

template <size_t A>
struct FlowRecord {
    uint8_t client_addr[A];
    uint16_t client_port_raw;  // network order
    uint16_t snat_port_raw;    // network order (fullnat)
    uint16_t vip;              // VIP index in the worker's service table
    uint16_t backend;          // backend index in the worker's service table
    uint8_t client_mac[6];     // where replies to the client go
    FlowState state;
    uint8_t snat_idx : 7;      // which SNAT address (fullnat)
    uint8_t replied : 1;       // the backend has answered (SYN-ACK seen; nat/fullnat)
    uint32_t last_ms;          // last packet seen
    uint32_t prev, next;       // expiry list links (next doubles as the free-list link)
    uint8_t tick;              // expiry wheel slot it is filed under
    uint8_t fin_client : 1;    // the client has sent FIN
    uint8_t fin_backend : 1;   // the backend has sent FIN (nat/fullnat)
    uint8_t synack : 1;        // synack_ack16 holds the backend's SYN-ACK (nat/fullnat)
    uint8_t synced : 1;        // replication: reported to the tier's peers (fullnat)
    uint8_t learnt : 1;        // replication: installed from a peer's report, not made here
    // The low 16 bits of the backend's SYN-ACK sequence number plus one: what the client's
    // ACK must acknowledge to establish the flow. 16 bits keep the record at 36 bytes and give a
    // blind spoofer one chance in 65,536, as a 32-bit number with a 64 KiB window would.
    uint16_t synack_ack16;
};
static_assert(sizeof(FlowRecord<4>) == 36);
static_assert(sizeof(FlowRecord<16>) == 48);

struct FlowTableStats {
    uint64_t inserts = 0;
    uint64_t insert_failures = 0;  // index full even after displacement
    uint64_t evictions = 0;        // flows dropped to make room (unconfirmed, closing, half-open)
    uint64_t expiries = 0;
    uint64_t removals = 0;
    uint64_t refusals = 0;         // full of flows that must be kept: the insert was refused
};

template <size_t A>
class FlowTable {
public:
    using Record = FlowRecord<A>;
    static constexpr uint32_t kNone = 0xFFFFFFFFu;
    static constexpr uint32_t kSlots = 8;
    // Slot positions are 32-bit (bucket x kSlots + slot): room for 2^28 flows, four times
    // --flow-capacity's maximum.
    static constexpr uint32_t kMaxCapacity = 1u << 28;
    // A reference stored in the index: flow id << 1 | direction (0 forward, 1 reverse).
    static constexpr uint32_t ref_id(uint32_t ref) noexcept { return ref >> 1; }
    static constexpr uint32_t ref_dir(uint32_t ref) noexcept { return ref & 1u; }

    struct alignas(64) Bucket {
        uint32_t sig[kSlots];
        uint32_t ref[kSlots];
    };
    static_assert(sizeof(Bucket) == 64);

    // Index buckets for `capacity` flows: 2 x capacity slots at <= 85% load, and at least 16
    // (tiny tables: room for displacement to work).
    static constexpr uint32_t buckets_for(uint32_t capacity) noexcept {
        capacity = std::max<uint32_t>(capacity, 2);
        return std::max<uint32_t>(16, static_cast<uint32_t>((2ull * capacity * 100 / 85 + kSlots - 1) / kSlots));
    }
    // The index's bytes: buckets, overflow bits and two slot positions per flow, in one mapping.
    static constexpr uint64_t index_bytes_for(uint32_t capacity) noexcept {
        const uint64_t buckets = buckets_for(capacity);
        return sizeof(Bucket) * buckets + sizeof(uint64_t) * ((buckets + 63) / 64) +
               sizeof(uint32_t) * 2 * uint64_t{std::max<uint32_t>(capacity, 2)};
    }
    // The bytes a table of `capacity` flows allocates: the index and the records (the huge
    // arrays then round up to whole pages; memory_bytes() says what was mapped).
    static constexpr uint64_t bytes_for(uint32_t capacity) noexcept {
        return index_bytes_for(capacity) + sizeof(Record) * uint64_t{std::max<uint32_t>(capacity, 2)};
    }

    // Throws std::length_error above kMaxCapacity, std::bad_alloc when the memory is not there.
    FlowTable(uint32_t capacity, const Timeouts& t) : capacity_(std::max<uint32_t>(capacity, 2)) {
        if (capacity_ > kMaxCapacity) throw std::length_error("flow table capacity above 2^28");
        nb_buckets_ = buckets_for(capacity_);
        // Huge pages where the kernel gives them: lookups land anywhere in these arrays.
        // Zeroed here, so the pages are first touched (and placed) by the constructing thread.
        // One mapping for the index: the slot positions fill what the buckets leave of a page.
        index_ = HugeArray<uint8_t>(index_bytes_for(capacity_));
        std::memset(index_.get(), 0, index_bytes_for(capacity_));
        buckets_ = reinterpret_cast<Bucket*>(index_.get());
        overflow_ = reinterpret_cast<uint64_t*>(buckets_ + nb_buckets_);
        pos_ = reinterpret_cast<uint32_t*>(overflow_ + (nb_buckets_ + 63) / 64);
        std::memset(static_cast<void*>(pos_), 0xFF, sizeof(uint32_t) * 2 * uint64_t{capacity_});  // kNone
        records_ = HugeArray<Record>(capacity_);
        std::memset(static_cast<void*>(records_.get()), 0, sizeof(Record) * capacity_);
        for (uint32_t i = 0; i < capacity_; ++i) records_[i].next = i + 1 < capacity_ ? i + 1 : kNone;
        free_head_ = 0;
        set_timeouts(t);
    }

    // Only valid while the table is empty (at start): flows are filed by the old timeouts.
    void set_timeouts(const Timeouts& t) noexcept {
        caught_up_ = false;
        timeout_ms_[0] = t.tcp_syn_ms ? t.tcp_syn_ms : 1;
        timeout_ms_[1] = t.tcp_established_ms ? t.tcp_established_ms : 1;
        timeout_ms_[2] = t.tcp_closing_ms ? t.tcp_closing_ms : 1;
        timeout_ms_[3] = t.udp_ms ? t.udp_ms : 1;
        timeout_ms_[4] = t.unconfirmed_ms ? t.unconfirmed_ms : 1;
        timeout_ms_[5] = t.tcp_half_closed_ms ? t.tcp_half_closed_ms : 1;
        for (int c = 0; c < kTimeoutClasses; ++c) {
            wheels_[c].gran_ms = (timeout_ms_[c] + kWheelSlots / 2 - 1) / (kWheelSlots / 2);
            wheels_[c].started = false;
        }
    }

    uint32_t capacity() const noexcept { return capacity_; }
    uint32_t size() const noexcept { return used_; }
    const FlowTableStats& stats() const noexcept { return stats_; }
    size_t memory_bytes() const noexcept { return index_.bytes() + records_.bytes(); }
    Record& record(uint32_t id) noexcept { return records_[id]; }
    const Record& record(uint32_t id) const noexcept { return records_[id]; }

    // Prefetches h's primary bucket only: inserts try it first, so below ~85% load almost
    // every entry lives there, and fetching the alternate too doubles the DRAM traffic of a
    // large table for the rare displaced entry.
    // The prefetchers are always inlined: GCC's pure-const analysis takes a function whose only
    // effect is a prefetch for one without effects, and deletes the calls of one left out of line
    // (which removed the burst's bucket and record prefetches).
    [[gnu::always_inline]] void prefetch(uint64_t h) const noexcept { __builtin_prefetch(&buckets_[bucket_of(h)]); }
    // The same in two steps, for a caller that keeps h's primary bucket for its find().
    uint32_t bucket_of(uint64_t h) const noexcept {
        return static_cast<uint32_t>(((h >> 32) * static_cast<uint64_t>(nb_buckets_)) >> 32);
    }
    [[gnu::always_inline]] void prefetch_bucket(uint32_t b) const noexcept { __builtin_prefetch(&buckets_[b]); }
    // Prefetches the records of h's primary bucket b whose signature matches (call once the
    // bucket itself has been prefetched): the second stage of a burst's lookup pipeline.
    [[gnu::always_inline]] void prefetch_records(uint64_t h, uint32_t b) const noexcept {
        const Bucket& bk = buckets_[b];
        // All eight signatures compared at once; usually one matches (or none, for a new flow).
        const __m128i s = _mm_set1_epi32(static_cast<int>(sig_of(h)));
        const __m128i lo = _mm_cmpeq_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(bk.sig)), s);
        const __m128i hi = _mm_cmpeq_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(bk.sig + 4)), s);
        for (unsigned m = static_cast<unsigned>(_mm_movemask_ps(_mm_castsi128_ps(lo))) |
                          static_cast<unsigned>(_mm_movemask_ps(_mm_castsi128_ps(hi))) << 4;
             m; m &= m - 1)
            __builtin_prefetch(&records_[ref_id(bk.ref[__builtin_ctz(m)])]);
    }

    // Returns the reference (id << 1 | dir) whose record satisfies match(ref), or kNone.
    template <class Match>
    uint32_t find(uint64_t h, Match&& match) const noexcept {
        return find(h, bucket_of(h), match);
    }
    // find() with h's primary bucket b1 (== bucket_of(h)) already known.
    template <class Match>
    uint32_t find(uint64_t h, uint32_t b1, Match&& match) const noexcept {
        const uint32_t sig = sig_of(h);
        if (uint32_t r = scan(buckets_[b1], sig, match); r != kNone) return r;
        // Nothing whose primary bucket is b1 was ever placed in its alternate: a miss is
        // final without touching a second cache line (the common case for new flows).
        if (!overflowed(b1)) return kNone;
        const uint32_t b2 = alt_bucket(b1, sig);
        if (b2 == b1) return kNone;
        return scan(buckets_[b2], sig, match);
    }

    // Takes a free record (reclaiming an expired flow or evicting a less valuable one when none
    // is free; see the file comment) and indexes it under h_fwd (and h_rev unless has_rev is
    // false). The caller fills the record's key fields. on_drop(id) is called for each flow
    // freed to make room, while its record still holds it. Returns the id, or kNone: refused
    // (every flow must be kept: stats().refusals) or no index slot (stats().insert_failures).
    template <class OnDrop>
    uint32_t insert(uint64_t h_fwd, uint64_t h_rev, bool has_rev, FlowState state, uint32_t now_ms,
                    OnDrop&& on_drop) noexcept {
        if (free_head_ == kNone && !evict_one(now_ms, on_drop)) {
            ++stats_.refusals;
            return kNone;
        }
        // Taken off the free list first: reclaiming an index slot below may free other records.
        const uint32_t id = free_head_;
        free_head_ = records_[id].next;
        const bool indexed = index_insert_reclaiming(h_fwd, id << 1, now_ms, on_drop);
        if (!indexed || (has_rev && !index_insert_reclaiming(h_rev, id << 1 | 1u, now_ms, on_drop))) {
            if (indexed) index_erase(id << 1);
            records_[id].next = free_head_;
            free_head_ = id;
            ++stats_.insert_failures;
            return kNone;
        }
        Record& r = records_[id];
        r.state = state;
        r.last_ms = now_ms;
        r.fin_client = r.fin_backend = r.synack = r.synced = r.learnt = 0;
        list_push(id, extend(now_ms) + timeout_ms(state));
        ++used_;
        ++stats_.inserts;
        return id;
    }

    // True if the flow has been idle past its timeout but the incremental pass has not reached
    // it yet: lookups treat it as gone, so timeouts are exact whatever the expiry budget.
    bool is_stale(uint32_t id, uint32_t now_ms) const noexcept {
        const Record& r = records_[id];
        return static_cast<int32_t>(now_ms - r.last_ms) >= static_cast<int32_t>(timeout_ms(r.state));
    }

    // Marks a packet on the flow. Cheap: no list movement unless the timeout class changes.
    void touch(uint32_t id, uint32_t now_ms) noexcept { records_[id].last_ms = now_ms; }

    void set_state(uint32_t id, FlowState s, uint32_t now_ms) noexcept {
        Record& r = records_[id];
        if (r.state == s) return;
        list_unlink(id);
        r.state = s;
        list_push(id, extend(now_ms) + timeout_ms(s));
    }

    // Removes flow id; `expired` picks the counter.
    void remove(uint32_t id, bool expired) noexcept {
        unindex(id);
        list_unlink(id);
        release(id);
        ++(expired ? stats_.expiries : stats_.removals);
    }

    // Frees flows idle past their timeout, doing at most `budget` units of work (flows
    // examined or empty slots passed); returns the work done. on_drop(id) is called for each
    // flow freed, while its record still holds it.
    template <class OnDrop>
    uint32_t expire(uint32_t now_ms, uint32_t budget, OnDrop&& on_drop) noexcept {
        // Called between every two bursts, mostly within the same millisecond: once a pass has
        // done all the work due at now_ms, nothing more can fall due before the clock moves
        // (flows filed since have deadlines after now_ms).
        if (caught_up_ && now_ms == caught_up_ms_) return 0;
        uint32_t work = 0;
        const uint64_t now64 = extend(now_ms);
        for (int c = 0; c < kTimeoutClasses && work < budget; ++c) {
            Wheel& w = wheels_[c];
            if (!w.started) continue;
            const uint64_t target = now64 / w.gran_ms;
            // After a long pause every filed tick is due: visit each slot once, not each tick.
            if (target > w.cursor + kWheelSlots) w.cursor = target - kWheelSlots;
            if (w.cursor < target) w.evict_hint = 0;  // offsets are relative to the cursor
            // Only slots entirely in the past: every deadline filed there has passed.
            while (w.cursor < target && work < budget) {
                List& l = w.slots[w.cursor % kWheelSlots];
                if (l.head == kNone) {
                    ++w.cursor;
                    ++work;
                    continue;
                }
                const uint32_t id = l.head;
                Record& r = records_[id];
                ++work;
                if (static_cast<int32_t>(now_ms - r.last_ms) >= static_cast<int32_t>(timeout_ms_[c])) {
                    drop_flow(id, on_drop);
                    ++stats_.expiries;
                } else {
                    list_unlink(id);
                    // Re-file under its real deadline (last_ms is within a timeout of now).
                    list_push(id, now64 - static_cast<uint32_t>(now_ms - r.last_ms) + timeout_ms_[c]);
                }
            }
        }
        caught_up_ = work < budget;
        caught_up_ms_ = now_ms;
        return work;
    }

    uint32_t timeout_ms(FlowState s) const noexcept { return timeout_ms_[static_cast<int>(s) - 1]; }

    // Where ref (id << 1 | dir) sits in the index: bucket x kSlots + slot, or kNone.
    uint32_t position(uint32_t ref) const noexcept { return pos_[ref]; }
    // For tests: is ref (id << 1 | dir) indexed where its slot position says, under hash h (in
    // one of h's two buckets, with h's signature)? O(1).
    bool indexed_at(uint32_t ref, uint64_t h) const noexcept {
        const uint32_t at = pos_[ref];
        if (at == kNone) return false;
        const uint32_t b = at / kSlots, b1 = bucket_of(h), sig = sig_of(h);
        const Bucket& bk = buckets_[b];
        return bk.ref[at % kSlots] == ref && bk.sig[at % kSlots] == sig && (b == b1 || b == alt_bucket(b1, sig));
    }
    // For tests: every occupied index slot is where its reference's position says, and every
    // position points at a slot holding its reference. O(table).
    bool positions_consistent() const noexcept {
        uint64_t occupied = 0;
        for (uint32_t b = 0; b < nb_buckets_; ++b)
            for (uint32_t i = 0; i < kSlots; ++i) {
                if (buckets_[b].sig[i] == 0) continue;
                ++occupied;
                const uint32_t ref = buckets_[b].ref[i];
                if (ref_id(ref) >= capacity_ || pos_[ref] != b * kSlots + i) return false;
            }
        uint64_t positions = 0;
        for (uint64_t ref = 0; ref < 2ull * capacity_; ++ref) {
            const uint32_t at = pos_[ref];
            if (at == kNone) continue;
            ++positions;
            if (at / kSlots >= nb_buckets_ || buckets_[at / kSlots].ref[at % kSlots] != ref ||
                buckets_[at / kSlots].sig[at % kSlots] == 0)
                return false;
        }
        return occupied == positions;
    }

private:
    struct List {
        uint32_t head = kNone;
        uint32_t tail = kNone;
    };

    static uint32_t sig_of(uint64_t h) noexcept {
        const uint32_t s = static_cast<uint32_t>(h);
        return s ? s : 1u;  // 0 marks an empty slot
    }
    // Partial-key cuckoo: alt(alt(b)) == b for any bucket count, so a displaced entry's other
    // bucket follows from its signature.
    uint32_t alt_bucket(uint32_t b, uint32_t sig) const noexcept {
        // One multiply spreads the signature (already a hash) over the buckets.
        const uint32_t t = static_cast<uint32_t>((((sig * kGoldenRatio64) >> 32) * nb_buckets_) >> 32);
        return t >= b ? t - b : t + nb_buckets_ - b;
    }

    template <class Match>
    uint32_t scan(const Bucket& bk, uint32_t sig, Match& match) const noexcept {
        // Slot 0 first: a lightly loaded bucket holds its flow there, and the hit costs a
        // compare; the other seven are compared at once (a miss looks at them all).
        if (bk.sig[0] == sig && match(bk.ref[0])) return bk.ref[0];
        for (uint32_t m = slots_with(bk, sig) & ~1u; m; m &= m - 1) {
            const uint32_t i = static_cast<uint32_t>(__builtin_ctz(m));
            if (match(bk.ref[i])) return bk.ref[i];
        }
        return kNone;
    }

    static int free_slot(const Bucket& bk) noexcept {
        const uint32_t m = slots_with(bk, 0);
        return m ? __builtin_ctz(m) : -1;
    }

    // The slots of bk whose signature is sig, as a bit mask (bit i: slot i): one compare of
    // the bucket's eight signatures at once, instead of a branch per slot. For free slots: in
    // a full table an insert looks at all sixteen of its two buckets.
    static uint32_t slots_with(const Bucket& bk, uint32_t sig) noexcept {
        const __m128i s = _mm_set1_epi32(static_cast<int>(sig));
        const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(bk.sig));
        const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(bk.sig + 4));
        return static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(lo, s))) |
                                     _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(hi, s))) << 4);
    }

    // The common case inline: a free slot in the primary bucket, else in the alternate (whose
    // address is only computed then). A full pair goes to the displacement walk, out of line:
    // its stack frame and the registers it saves would otherwise cost every insert.
    bool index_insert(uint64_t h, uint32_t ref) noexcept {
        const uint32_t sig = sig_of(h);
        const uint32_t b = bucket_of(h);
        if (int s = free_slot(buckets_[b]); s >= 0) [[likely]] {
            place(b, static_cast<uint32_t>(s), sig, ref);
            return true;
        }
        if (const uint32_t b2 = alt_bucket(b, sig); b2 != b) {
            if (int s = free_slot(buckets_[b2]); s >= 0) {
                place(b2, static_cast<uint32_t>(s), sig, ref);
                mark_overflow(b);
                return true;
            }
        }
        return displace(b, sig, ref);
    }

    // Places (sig, ref), whose two buckets are full, by moving entries to their other buckets.
    [[gnu::noinline]] bool displace(uint32_t b, uint32_t sig, uint32_t ref) noexcept {
        // Displacement walk: kick a slot to its alternate bucket, bounded; undone on failure.
        constexpr int kMaxKicks = 64;
        struct Step { uint32_t bucket; uint32_t slot; };
        Step path[kMaxKicks];
        uint32_t cur_sig = sig, cur_ref = ref, cur_b = b;
        for (int k = 0; k < kMaxKicks; ++k) {
            const uint32_t slot = (cur_sig ^ static_cast<uint32_t>(k) * kGoldenRatio32) >> 29;  // 0..7
            Bucket& bk = buckets_[cur_b];
            path[k] = {cur_b, slot};
            std::swap(bk.sig[slot], cur_sig);
            std::swap(bk.ref[slot], cur_ref);
            // The kicked entry leaves cur_b for its other bucket; cur_b may have been its primary.
            mark_overflow(cur_b);
            cur_b = alt_bucket(cur_b, cur_sig);
            if (int s = free_slot(buckets_[cur_b]); s >= 0) {
                place(cur_b, static_cast<uint32_t>(s), cur_sig, cur_ref);
                // The walk's slots hold other entries now (the new one in the first): their
                // positions follow, read back so an entry kicked twice ends up where it is.
                for (int j = 0; j <= k; ++j)
                    pos_[buckets_[path[j].bucket].ref[path[j].slot]] = path[j].bucket * kSlots + path[j].slot;
                return true;
            }
            if (k + 1 == kMaxKicks) {
                for (int j = k; j >= 0; --j) {  // undo: walk the path backwards
                    Bucket& pb = buckets_[path[j].bucket];
                    std::swap(pb.sig[path[j].slot], cur_sig);
                    std::swap(pb.ref[path[j].slot], cur_ref);
                }
            }
        }
        return false;
    }

    // One bit per bucket: set once an entry that may have this bucket as its primary was
    // placed in its alternate. Never cleared (conservative); lookups only need it to be sound.
    bool overflowed(uint32_t b) const noexcept { return (overflow_[b / 64] >> (b % 64)) & 1u; }
    void mark_overflow(uint32_t b) noexcept { overflow_[b / 64] |= uint64_t{1} << (b % 64); }

    void place(uint32_t b, uint32_t slot, uint32_t sig, uint32_t ref) noexcept {
        buckets_[b].sig[slot] = sig;
        buckets_[b].ref[slot] = ref;
        pos_[ref] = b * kSlots + slot;
    }

    // Clears ref's slot, found through its position (ref must be indexed).
    void index_erase(uint32_t ref) noexcept {
        const uint32_t at = pos_[ref];
        Bucket& bk = buckets_[at / kSlots];
        bk.sig[at % kSlots] = 0;
        bk.ref[at % kSlots] = 0;
        pos_[ref] = kNone;
    }
    // Both directions of flow id (the reverse one only if it was indexed: not for dsr).
    void unindex(uint32_t id) noexcept {
        index_erase(id << 1);
        if (pos_[id << 1 | 1u] != kNone) index_erase(id << 1 | 1u);
    }

    static constexpr uint32_t kWheelSlots = 256;
    struct Wheel {
        uint32_t gran_ms = 1;
        uint64_t cursor = 0;  // first tick not yet processed
        uint32_t evict_hint = 0;  // no flow is filed less than this many slots past the cursor
        bool started = false;
        List slots[kWheelSlots];
    };

    Wheel& wheel_of(const Record& r) noexcept { return wheels_[static_cast<int>(r.state) - 1]; }

    // The caller's wrapping millisecond clock extended to 64 bits, so the wheels' ticks never
    // wrap (the clock is monotonic; it wraps every 49.7 days).
    uint64_t extend(uint32_t now_ms) noexcept {
        if (now_ms < last_now_ && last_now_ - now_ms > 0x80000000u) ++epoch_;
        last_now_ = now_ms;
        return static_cast<uint64_t>(epoch_) << 32 | now_ms;
    }

    // Files the flow under the tick of deadline_ms, clamped to the wheel's horizon.
    void list_push(uint32_t id, uint64_t deadline_ms) noexcept {
        Record& r = records_[id];
        Wheel& w = wheel_of(r);
        uint64_t tick = deadline_ms / w.gran_ms;
        if (!w.started) {
            w.cursor = tick;
            w.started = true;
        }
        if (tick < w.cursor) tick = w.cursor;
        if (tick - w.cursor >= kWheelSlots) tick = w.cursor + kWheelSlots - 1;
        if (tick - w.cursor < w.evict_hint) w.evict_hint = static_cast<uint32_t>(tick - w.cursor);
        r.tick = static_cast<uint8_t>(tick % kWheelSlots);
        List& l = w.slots[r.tick];
        r.prev = l.tail;
        r.next = kNone;
        if (l.tail != kNone) records_[l.tail].next = id; else l.head = id;
        l.tail = id;
    }
    void list_unlink(uint32_t id) noexcept {
        Record& r = records_[id];
        List& l = wheel_of(r).slots[r.tick];
        if (r.prev != kNone) records_[r.prev].next = r.next; else l.head = r.next;
        if (r.next != kNone) records_[r.next].prev = r.prev; else l.tail = r.prev;
    }
    void release(uint32_t id) noexcept {
        Record& r = records_[id];
        r.state = FlowState::free;
        r.next = free_head_;
        free_head_ = id;
        --used_;
    }

    template <class OnDrop>
    void drop_flow(uint32_t id, OnDrop& on_drop) noexcept {
        on_drop(id);
        unindex(id);
        list_unlink(id);
        release(id);
    }

    // index_insert(), and when both candidate buckets are full, once more after freeing a flow
    // of theirs that is idle past its timeout (an expired flow never holds a slot a newcomer
    // needs). The record being inserted is not yet in use, so it is never the one freed.
    // The first try inline, the rest (rare: a full pair of buckets) out of line.
    template <class OnDrop>
    bool index_insert_reclaiming(uint64_t h, uint32_t ref, uint32_t now_ms, OnDrop& on_drop) noexcept {
        if (index_insert(h, ref)) [[likely]] return true;
        return reclaim_and_insert(h, ref, now_ms, on_drop);
    }
    template <class OnDrop>
    [[gnu::noinline]] bool reclaim_and_insert(uint64_t h, uint32_t ref, uint32_t now_ms, OnDrop& on_drop) noexcept {
        const uint32_t sig = sig_of(h);
        const uint32_t b1 = bucket_of(h);
        for (uint32_t cand : {b1, alt_bucket(b1, sig)}) {
            const Bucket& bk = buckets_[cand];
            for (uint32_t i = 0; i < kSlots; ++i) {
                if (bk.sig[i] == 0) continue;
                const uint32_t victim = ref_id(bk.ref[i]);
                if (victim == ref_id(ref) || records_[victim].state == FlowState::free || !is_stale(victim, now_ms))
                    continue;
                drop_flow(victim, on_drop);
                ++stats_.expiries;
                return index_insert(h, ref);
            }
        }
        return false;
    }

    // The record's real deadline, from its last packet.
    uint64_t deadline_of(uint32_t id, uint32_t now_ms, int c) noexcept {
        return extend(now_ms) - static_cast<uint32_t>(now_ms - records_[id].last_ms) + timeout_ms_[c];
    }

    // The earliest-filed flow of class c after re-filing up to `refiles` flows that were touched
    // since they were filed (so the answer approximates the least recently active flow), or
    // kNone. Bounded: at most kWheelSlots slots and `refiles` moves.
    uint32_t oldest(int c, uint32_t now_ms, uint32_t refiles) noexcept {
        Wheel& w = wheels_[c];
        if (!w.started) return kNone;
        // Under a flood the oldest slots empty one by one while the cursor waits for their
        // time: start where the last search found a flow instead of rescanning them.
        uint32_t i = w.evict_hint;
        for (; i < kWheelSlots; ++i) {
            const uint32_t slot = static_cast<uint32_t>((w.cursor + i) % kWheelSlots);
            const uint32_t id = w.slots[slot].head;
            if (id == kNone) continue;
            if (refiles && i + 1 < kWheelSlots) {
                // Touched since it was filed, its real deadline lies past this slot's end (a
                // multiply, not a division: this runs on every eviction of a flood).
                const uint64_t slot_end_ms = (w.cursor + i + 1) * w.gran_ms;
                if (deadline_of(id, now_ms, c) >= slot_end_ms && !is_stale(id, now_ms)) {
                    --refiles;
                    list_unlink(id);
                    list_push(id, deadline_of(id, now_ms, c));
                    --i;  // look at this slot again
                    continue;
                }
            }
            w.evict_hint = i;
            return id;
        }
        w.evict_hint = i;
        return kNone;
    }

    // Frees one record for an insert: a flow idle past its timeout if the front of any wheel
    // holds one, else the least valuable flow still live (unconfirmed, closing, half-open, in
    // that order). Returns false when only flows that must be kept remain.
    template <class OnDrop>
    bool evict_one(uint32_t now_ms, OnDrop& on_drop) noexcept {
        constexpr uint32_t kRefiles = 8;
        uint32_t front[kTimeoutClasses];
        for (int c = 0; c < kTimeoutClasses; ++c) {
            front[c] = oldest(c, now_ms, kRefiles);
            if (front[c] != kNone && is_stale(front[c], now_ms)) {
                drop_flow(front[c], on_drop);
                ++stats_.expiries;
                return true;
            }
        }
        constexpr FlowState kByValue[] = {FlowState::unconfirmed, FlowState::tcp_closing, FlowState::tcp_syn};
        for (FlowState s : kByValue) {
            const uint32_t id = front[static_cast<int>(s) - 1];
            if (id == kNone) continue;
            drop_flow(id, on_drop);
            ++stats_.evictions;
            return true;
        }
        return false;
    }

    uint32_t capacity_;
    uint32_t nb_buckets_ = 0;
    uint32_t free_head_ = kNone;
    uint32_t used_ = 0;
    uint32_t last_now_ = 0;
    uint32_t epoch_ = 0;
    bool caught_up_ = false;  // expire() left nothing due at caught_up_ms_
    uint32_t caught_up_ms_ = 0;
    uint32_t timeout_ms_[kTimeoutClasses] = {};
    Wheel wheels_[kTimeoutClasses];
    HugeArray<uint8_t> index_;    // buckets_, overflow_ and pos_, in that order
    Bucket* buckets_ = nullptr;
    uint64_t* overflow_ = nullptr;
    uint32_t* pos_ = nullptr;     // per reference (id << 1 | dir): bucket x kSlots + slot, or kNone
    HugeArray<Record> records_;
    FlowTableStats stats_;
};

}  // namespace sluice::lb
