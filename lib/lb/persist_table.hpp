// Per-worker persistence table (sticky clients, ipvsadm -p / -M): which backend a client
// network is pinned to for a VIP, and until when.
//
// Maglev stays the ground truth of a first pick: a client with no entry gets Maglev's answer
// for a hash of (VIP, masked client address) alone (lib/lb/service.hpp persist_hash), the same
// on every worker and every instance. An entry only matters once the backend set has changed
// since the pin: it keeps the client where it was. So losing an entry (eviction, restart) costs
// stickiness only across such a change, and the table can stay small and bounded.
//
// Layout: set-associative, kWays entries of 32 bytes per bucket (two cache lines), the bucket
// chosen by the caller-independent keyed hash of the key (flow_hash.hpp: a per-process secret,
// so an outsider cannot aim at one bucket). No displacement: a key lives in its bucket or
// nowhere. An insert takes a free or expired slot first, else evicts the live entry closest to
// expiry, unless every entry of the bucket would outlive the newcomer (then the insert is
// refused: an entry is never cut short for one that would die before it). Whatever an attacker
// puts in one bucket therefore costs only the clients of that bucket, and those win back their
// slot with their next connection. Expiry is lazy: an entry past its time is ignored by
// lookups and reclaimed by inserts; nothing walks the table on a timer.
//
// Times are the caller's wrapping millisecond clock (entries live at most a day, far below the
// 24.8 days a signed 32-bit difference can tell apart).
// Thread contract: owned by exactly one worker; no locking, no allocation after construction.
// The control core reads it only through a command the worker answers (for_each_live).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lib/common/huge_array.hpp"
#include "lib/lb/flow_hash.hpp"

namespace sluice::lb {

// A client network of a VIP: the masked address (IPv4 in the first 4 bytes, the rest zero),
// the VIP's index, the family (4 or 6) and the prefix length.
// Plain data (no member initialisers: the table is a zero-filled huge array); value-initialise
// one (PersistKey k{}) before filling it.
struct PersistKey {
    uint8_t net[16];
    uint16_t vip;
    uint8_t family;  // 4 or 6; 0 marks a free slot in the table
    uint8_t mask_len;
    friend bool operator==(const PersistKey& a, const PersistKey& b) noexcept {
        return std::memcmp(&a, &b, sizeof(PersistKey)) == 0;
    }
};
static_assert(sizeof(PersistKey) == 20);

struct PersistEntry {
    PersistKey key;
    uint16_t backend;    // backend entry index in the worker's service
    uint16_t unused;
    uint32_t expiry_ms;  // dead from this time on
    uint32_t pinned_ms;  // when the backend was chosen (newer decisions win between workers)
};
static_assert(std::is_trivial_v<PersistEntry>);
static_assert(sizeof(PersistEntry) == 32);

struct PersistTableStats {
    uint64_t inserts = 0;    // keys given a slot (free, expired or evicted)
    uint64_t evictions = 0;  // live entries dropped for a newcomer of their bucket
    uint64_t refusals = 0;   // inserts refused: every entry of the bucket outlives the newcomer
};

class PersistTable {
public:
    static constexpr uint32_t kWays = 4;
    struct alignas(64) Bucket {
        PersistEntry e[kWays];
    };
    static_assert(sizeof(Bucket) == 128);

    // What put() and learn() did.
    enum class Put : uint8_t { inserted, updated, evicted, refused, kept };

    static constexpr uint32_t buckets_for(uint32_t capacity) noexcept {
        return std::max<uint32_t>(1, (capacity + kWays - 1) / kWays);
    }

    PersistTable(uint32_t capacity, const HashKey& key)
        : nb_buckets_(buckets_for(capacity)), hash_(key), buckets_(nb_buckets_) {
        std::memset(static_cast<void*>(buckets_.get()), 0, sizeof(Bucket) * nb_buckets_);
    }

    uint32_t capacity() const noexcept { return nb_buckets_ * kWays; }
    size_t memory_bytes() const noexcept { return buckets_.bytes(); }
    const PersistTableStats& stats() const noexcept { return stats_; }

    static bool live(const PersistEntry& e, uint32_t now_ms) noexcept {
        return e.key.family != 0 && static_cast<int32_t>(e.expiry_ms - now_ms) > 0;
    }
    // Milliseconds an entry has left (0 once dead).
    static uint32_t left_ms(const PersistEntry& e, uint32_t now_ms) noexcept {
        return live(e, now_ms) ? e.expiry_ms - now_ms : 0;
    }

    uint64_t hash(const PersistKey& k) const noexcept {
        const uint64_t meta = uint64_t{k.vip} | uint64_t{k.mask_len} << 16 | uint64_t{k.family} << 24;
        uint64_t lo, hi;
        std::memcpy(&lo, k.net, 8);
        std::memcpy(&hi, k.net + 8, 8);
        if (k.family == 4) return hash_(lo << 32 >> 32 | meta << 32);
        return hash_(lo, hi, meta | uint64_t{1} << 40);
    }
    uint32_t bucket_of(const PersistKey& k) const noexcept {
        return static_cast<uint32_t>(((hash(k) >> 32) * static_cast<uint64_t>(nb_buckets_)) >> 32);
    }

    // The live entry of k, or nullptr.
    PersistEntry* find(const PersistKey& k, uint32_t now_ms) noexcept {
        Bucket& b = buckets_[bucket_of(k)];
        for (PersistEntry& e : b.e)
            if (e.key == k) return live(e, now_ms) ? &e : nullptr;
        return nullptr;
    }
    const PersistEntry* find(const PersistKey& k, uint32_t now_ms) const noexcept {
        return const_cast<PersistTable*>(this)->find(k, now_ms);
    }

    // A decision of this worker: k pinned to backend until expiry_ms, chosen at now_ms. An entry
    // of k (live or not) is overwritten; otherwise a slot is found as the file comment says.
    Put put(const PersistKey& k, uint16_t backend, uint32_t expiry_ms, uint32_t now_ms) noexcept {
        Bucket& b = buckets_[bucket_of(k)];
        for (PersistEntry& e : b.e)
            if (e.key == k) {
                e.backend = backend;
                e.expiry_ms = expiry_ms;
                e.pinned_ms = now_ms;
                return Put::updated;
            }
        return place(b, k, backend, expiry_ms, now_ms, now_ms);
    }

    // Another worker's decision, relayed: an entry of k with the same backend keeps the later
    // expiry; one with another backend gives way only to a decision taken later than its own
    // (the same time: the lower backend index wins, so every worker settles on one answer).
    Put learn(const PersistKey& k, uint16_t backend, uint32_t expiry_ms, uint32_t pinned_ms, uint32_t now_ms) noexcept {
        if (static_cast<int32_t>(expiry_ms - now_ms) <= 0) return Put::kept;  // dead on arrival
        Bucket& b = buckets_[bucket_of(k)];
        for (PersistEntry& e : b.e) {
            if (!(e.key == k)) continue;
            if (!live(e, now_ms)) {
                e = PersistEntry{k, backend, 0, expiry_ms, pinned_ms};
                return Put::updated;
            }
            if (e.backend == backend) {
                if (static_cast<int32_t>(expiry_ms - e.expiry_ms) > 0) e.expiry_ms = expiry_ms;
                return Put::kept;
            }
            const int32_t newer = static_cast<int32_t>(pinned_ms - e.pinned_ms);
            if (newer < 0 || (newer == 0 && backend > e.backend)) return Put::kept;
            e = PersistEntry{k, backend, 0, expiry_ms, pinned_ms};
            return Put::updated;
        }
        return place(b, k, backend, expiry_ms, pinned_ms, now_ms);
    }

    // Pushes an entry's expiry out to expiry_ms (never brings it closer).
    static void refresh(PersistEntry& e, uint32_t expiry_ms) noexcept {
        if (static_cast<int32_t>(expiry_ms - e.expiry_ms) > 0) e.expiry_ms = expiry_ms;
    }
    static void erase(PersistEntry& e) noexcept { e = PersistEntry{}; }

    // f(entry) for every live entry, in table order.
    template <class F>
    void for_each_live(uint32_t now_ms, F&& f) const {
        for (uint32_t i = 0; i < nb_buckets_; ++i)
            for (const PersistEntry& e : buckets_[i].e)
                if (live(e, now_ms)) f(e);
    }

    // Visits the buckets from `cursor` on, at most `budget` of them, erasing the entries for
    // which drop(entry) is true; advances cursor. Returns true once the whole table was visited.
    template <class Drop>
    bool sweep(uint32_t& cursor, uint32_t budget, Drop&& drop) noexcept {
        for (const uint32_t end = std::min(nb_buckets_, cursor + budget); cursor < end; ++cursor)
            for (PersistEntry& e : buckets_[cursor].e)
                if (e.key.family != 0 && drop(static_cast<const PersistEntry&>(e))) erase(e);
        return cursor >= nb_buckets_;
    }

private:
    Put place(Bucket& b, const PersistKey& k, uint16_t backend, uint32_t expiry_ms, uint32_t pinned_ms,
              uint32_t now_ms) noexcept {
        PersistEntry* victim = nullptr;
        for (PersistEntry& e : b.e) {
            if (!live(e, now_ms)) {  // free, or dead: reclaimed first
                victim = &e;
                break;
            }
            if (!victim || static_cast<int32_t>(e.expiry_ms - victim->expiry_ms) < 0) victim = &e;
        }
        const bool evicting = live(*victim, now_ms);
        // Every entry outlives the newcomer: keep them.
        if (evicting && static_cast<int32_t>(victim->expiry_ms - expiry_ms) > 0) {
            ++stats_.refusals;
            return Put::refused;
        }
        *victim = PersistEntry{k, backend, 0, expiry_ms, pinned_ms};
        ++stats_.inserts;
        if (evicting) ++stats_.evictions;
        return evicting ? Put::evicted : Put::inserted;
    }

    uint32_t nb_buckets_;
    KeyedHash hash_;
    HugeArray<Bucket> buckets_;
    PersistTableStats stats_;
};

}  // namespace sluice::lb
