// Weighted Maglev consistent hashing: maps a flow hash to one backend of a VIP.
//
// What it is for: every worker picks the backend of a new flow with one table load, and every
// worker and every Sluice instance with the same backend set picks the same backend, so a flow
// keeps its backend when its packets land on another worker or another box, and a backend
// change moves few flows.
//
// Construction (details and the measurements behind them in maglev.cpp): each member gets
// permutations of the table slots as in Maglev (NSDI'16, §3.4: offset and skip from the
// member's id, table size prime), one per "lane", with lanes in proportion to its weight. The
// paper's population loop hands every member its next *free* preferred slot in turn; that is
// balanced to one entry, but a removal cascades: at 65537 slots and 1000 members it re-maps ~7x
// the ideal 1/N of the table. Here a slot goes to the lane whose permutation reaches it first
// (as in rendezvous hashing), and each member stops at a cap a little above its share
// (share = size * weight / total weight; kCapSlackPpm above it, rounded per member).
//
// Size: unless configured, a VIP's table has auto_size(backends) slots: at least 2048 per
// configured backend, in power-of-two steps from 65537 (up to 32 backends) to 2097169 (4 MiB;
// 513 backends and more). Why it must grow with the count: after a removal, members at their
// cap that gain more of the removed member's slots than their cap grows give up their last
// claims, and those chain on. With N members of E entries each the gains are Poisson of mean
// E / N, so the excess goes about as sqrt(N / E); the caps' slack cannot grow instead, it is
// what overload costs.
//
// Trade-off, measured by tests/maglev_disruption.cpp (10 / 100 / 1000 equal members, four id
// sets, six removals each) at the sizes auto_size() picks, 65537 / 262147 / 2097169:
//   - Overload: the most loaded member holds 1.005 / 1.005 / 1.005 times its share. Bound:
//     1 + slack + 1 / share, but never above ceil(share) / share when share < 200 (the least
//     integer entries allow; at a fixed 65537 slots that alone exceeds 1.01 for some counts
//     between 697 and 1000, and 1.03 with weights 1-4 at 1000 members).
//   - Under-load: members that lose rendezvous contests can end below their share (the lowest
//     holds 0.99 / 0.95 / 0.92 of it; at 65537 slots 0.99 / 0.88 / 0.82, worst seen 0.96 /
//     0.61 / 0.58): spare capacity, never overload. The deep cases are lanes whose skips are
//     small multiples of each other (2x, 3x, 7x seen) and start close together: the faster
//     one takes a share of the other's slots (spread_skips only separates equal skips).
//   - Removing one member re-maps 1.00x / 1.07x / 1.30x the ideal 1/N (worst removal 1.01x /
//     1.10x / 1.33x; about one 100-member set in twenty reaches 1.12x, when a member starved
//     as above has taken up the slack). Weights 1-4: 1.08x / 1.36x at 100 / 1000 members
//     (worst 1.56x: a light member's share is a quarter of a heavy one's). At a fixed 65537
//     slots: 1.00x / 1.21x / 3.5x (plain Maglev: 1.03x / 1.56x / 6.8x).
//   - Memory: 2 bytes an entry, 128 KiB to 4 MiB per VIP; above 32 backends, under 8 KiB per
//     backend. Past 1024 members the size stays at 2097169 and the excess grows again: 1.52x at 1500
//     members, 1.88x at 2000.
//
// Identity: members are identified by MaglevMember::id (a hash of address and port), not by
// their position: the table depends only on the set of (id, weight) and the size, never on list
// order, and is the same on every machine (no std::hash, no randomness); digest() names it.
//
// Thread contract: build() runs on the control plane (allocates; at the auto sizes ~1.2 / 5 /
// 45 ms for 10 / 100 / 1000 equal members, ~45 ms with weights 1-4 at 1000; ~1.6 ms for 1000
// members at 65537 slots). A built Maglev is immutable: lookup() is read-only, noexcept and
// safe from any number of threads; publish a new table (e.g. behind RCU) instead of changing
// one in place.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "lib/common/expected.hpp"

namespace sluice::lb {

struct MaglevMember {
    uint64_t id;      // stable identity of the backend (a hash of its address and port)
    uint32_t weight;  // 0 = member takes no slots (drained)
};

class Maglev {
public:
    static constexpr uint32_t kDefaultSize = 65537;
    // The sizes auto_size() picks from: the first prime above 2^16, 2^17, ..., 2^21 (128 KiB to
    // 4 MiB of entries). Steps of two, so that adding or removing a backend in the
    // configuration rarely changes the size: a new size re-maps nearly every entry.
    static constexpr std::array<uint32_t, 6> kAutoSizes = {65537, 131101, 262147, 524309, 1048583, 2097169};
    // auto_size() gives each configured member at least this many entries, up to the largest
    // of kAutoSizes (the disruption on removal grows as entries per member shrink; see above).
    static constexpr uint32_t kAutoEntriesPerMember = 2048;
    static constexpr uint16_t kNoBackend = 0xFFFF;
    static constexpr size_t kMaxMembers = 65535;   // indices 0..65534; 0xFFFF is kNoBackend
    static constexpr uint32_t kMaxSize = 1u << 26;  // 128 MiB of table: a typo guard
    // Entries a member may take beyond its exact share, in millionths of it: slack that keeps
    // removals local, paid for in overload (see above).
    static constexpr uint32_t kCapSlackPpm = 5'000;

    // An empty table: lookup() returns kNoBackend. Lets a VIP exist before its first build.
    Maglev() : Maglev(std::vector<uint16_t>(1, kNoBackend), {}) {}

    // Builds the lookup table for members (any order; the result is the same for the same set).
    // Errors: size not prime or above kMaxSize, more than kMaxMembers members, two members with
    // the same id. Members of weight 0 get no entries; if no member has weight > 0 every entry
    // is kNoBackend. Thread-safe (no shared state); allocates.
    static Expected<Maglev> build(std::span<const MaglevMember> members,
                                  uint32_t size = kDefaultSize) {
        return build_impl(members, size, true);
    }

    // The same table as build(), made by running the probing rounds to the very end instead of
    // finishing the last free slots with the exact shortcut. Slower; for tests and benchmarks.
    static Expected<Maglev> build_reference(std::span<const MaglevMember> members,
                                            uint32_t size = kDefaultSize) {
        return build_impl(members, size, false);
    }

    // The position, in the span given to build(), of the member that owns flow_hash's entry, or
    // kNoBackend when no member has weight > 0. Uses flow_hash's 64 bits folded to 32 and a
    // multiply-shift range reduction (no division): a 32-bit hash in the low bits works as well
    // as a 64-bit one. Thread-safe, allocation-free.
    uint16_t lookup(uint64_t flow_hash) const noexcept {
        const uint64_t folded = (flow_hash ^ (flow_hash >> 32)) & 0xFFFF'FFFFu;
        return entries_[(folded * size_) >> 32];
    }

    // The table size for a VIP of `members` configured backends (up, down or drained: a health
    // change must not resize the table) when the configuration does not give one: the smallest
    // of kAutoSizes with at least kAutoEntriesPerMember entries per member, else the largest
    // (above 1024 members: the memory cap, 4 MiB per VIP; balance holds, disruption grows).
    // A function of the count alone, so every instance with the same configuration agrees.
    // Thread-safe.
    static uint32_t auto_size(size_t members) noexcept;

    uint32_t size() const noexcept { return size_; }
    const std::vector<uint16_t>& table() const noexcept { return *table_; }

    // A digest of the size and of the member *id* at every entry (FNV-1a over 64-bit words,
    // kNoBackend entries as id 0), computed by build(): unlike table(), which holds positions
    // in the caller's span, it is the same on every instance that built the same set at the
    // same size, whatever the order of its list, so instances of a tier can compare tables by
    // it. Not a keyed or collision-resistant hash. Thread-safe, O(1).
    uint64_t digest() const noexcept { return digest_; }

private:
    static Expected<Maglev> build_impl(std::span<const MaglevMember> members, uint32_t size,
                                       bool event_tail);
    // table: the entries, indices into members or kNoBackend; its size is the table size.
    Maglev(std::vector<uint16_t> table, std::span<const MaglevMember> members);

    // size_ entries, each a caller index or kNoBackend. Immutable, so copies share it: a
    // snapshot that keeps a VIP's members keeps its table without copying 128 KiB (freed with
    // the last snapshot that holds it, after the workers moved on).
    std::shared_ptr<const std::vector<uint16_t>> table_;
    const uint16_t* entries_;  // table_->data(): lookup() reads one pointer
    uint32_t size_;
    uint64_t digest_;
};

// Deterministic primality test (trial division; fine for table sizes). 0 and 1 are not prime.
bool is_prime(uint32_t n);

}  // namespace sluice::lb
