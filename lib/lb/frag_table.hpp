// First-fragment tracking: later fragments of a datagram follow its first one.
//
// Only the first fragment of a fragmented TCP/UDP datagram carries ports, so only it can be
// load-balanced. The worker remembers what it did with it, keyed by the datagram's identity
// (RFC 791: source, destination, protocol, identification; RFC 8200: source, destination,
// identification), and applies the same outcome to the later fragments: the same rewritten
// addresses, TTL decrement, MACs and port, or the same hand-over to the owning worker. Later
// fragments that arrive before their first one are dropped (counted): nothing is buffered.
//
// Memory is fixed at construction: a 4-way set-associative array. An entry lives for
// kTimeoutMs after its first fragment; a full set gives up its oldest entry (counted), so a
// fragment flood costs the flood's own datagrams their later fragments and nothing else.
// Thread contract: one per worker, used only by that worker.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "lib/lb/flow_hash.hpp"
#include "lib/lb/flow_table.hpp"
#include "lib/lb/service.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

template <size_t A>
class FragTable {
public:
    static constexpr uint32_t kWays = 4;
    static constexpr uint32_t kTimeoutMs = 5000;

    struct Key {
        uint8_t src[A];
        uint8_t dst[A];
        uint32_t id;
        uint8_t proto;  // IPv4 protocol; 0 for IPv6 (not part of its fragment identity)
        bool operator==(const Key& o) const noexcept {
            return id == o.id && proto == o.proto && std::memcmp(src, o.src, A) == 0 &&
                   std::memcmp(dst, o.dst, A) == 0;
        }
    };
    // What the first fragment became.
    struct Outcome {
        bool redirect = false;  // handed to worker `out` (which remembers its own outcome)
        bool ttl_dec = false;   // nat/fullnat route: TTL / hop limit minus one
        uint16_t out = 0;       // TX port, or the worker
        uint8_t src[A];         // addresses after the rewrite
        uint8_t dst[A];
        uint8_t macs[12];       // Ethernet destination and source after the rewrite
        // Whose traffic the datagram is, for the per-VIP and per-backend counters (kNoVip,
        // kNoBackendEntry: none; a reply counts for its backend only, as replies do).
        uint16_t vip = Service::kNoVip;
        uint16_t backend = Service::kNoBackendEntry;
        uint16_t vlan = 0;      // the VLAN it left on (0: untagged)
    };

    FragTable(uint32_t capacity, const KeyedHash& hash) : hash_(hash) {
        sets_ = 1;
        while (sets_ * kWays < capacity) sets_ <<= 1;
        entries_.reset(new Entry[sets_ * kWays]());
    }

    uint32_t capacity() const noexcept { return sets_ * kWays; }
    size_t memory_bytes() const noexcept { return sizeof(Entry) * capacity(); }

    // The live outcome for `k`, or nullptr.
    const Outcome* find(const Key& k, uint32_t now_ms) const noexcept {
        const Entry* set = &entries_[set_of(k) * kWays];
        for (uint32_t w = 0; w < kWays; ++w)
            if (set[w].used && set[w].key == k && now_ms - set[w].stamp_ms < kTimeoutMs) return &set[w].outcome;
        return nullptr;
    }

    // Remembers `o` for `k` (replacing an older outcome of the same key). True if a live
    // entry of another datagram had to give way (the set was full).
    bool insert(const Key& k, const Outcome& o, uint32_t now_ms) noexcept {
        Entry* set = &entries_[set_of(k) * kWays];
        Entry* victim = nullptr;
        for (uint32_t w = 0; w < kWays; ++w) {
            Entry& e = set[w];
            if (e.used && e.key == k) {
                victim = &e;
                break;
            }
            if (!e.used || now_ms - e.stamp_ms >= kTimeoutMs) {
                if (!victim || victim->used) victim = &e;
            } else if (!victim || (victim->used && now_ms - e.stamp_ms > now_ms - victim->stamp_ms)) {
                victim = &e;
            }
        }
        const bool evicted = victim->used && !(victim->key == k) && now_ms - victim->stamp_ms < kTimeoutMs;
        victim->used = true;
        victim->key = k;
        victim->outcome = o;
        victim->stamp_ms = now_ms;
        return evicted;
    }

private:
    struct Entry {
        Key key;
        Outcome outcome;
        uint32_t stamp_ms;
        bool used;
    };

    uint32_t set_of(const Key& k) const noexcept {
        const uint64_t c = uint64_t{k.id} | uint64_t{k.proto} << 32;
        uint64_t a, b;
        if constexpr (A == 4) {
            a = net::load_raw32(k.src);
            b = net::load_raw32(k.dst);
        } else {
            a = net::load_raw64(k.src) ^ flow_mix(net::load_raw64(k.src + 8));
            b = net::load_raw64(k.dst) ^ flow_mix(net::load_raw64(k.dst + 8));
        }
        return static_cast<uint32_t>(hash_(a, b, c) >> 32) & (sets_ - 1);
    }

    KeyedHash hash_;
    uint32_t sets_ = 1;
    std::unique_ptr<Entry[]> entries_;
};

}  // namespace sluice::lb
