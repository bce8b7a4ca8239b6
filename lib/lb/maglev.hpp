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
// Trade-off, measured at 65537 slots with 10 / 100 / 1000 equal members:
//   - Overload: the most loaded member holds 1.005 / 1.006 / 1.007 times its share. Bound:
//     1 + slack + 1 / share, but never above ceil(share) / share when share < 200 (the least
//     integer entries allow; that alone exceeds 1.01 for some counts between 697 and 1000).
//   - Under-load: members that lose rendezvous contests can end below their share (typically
//     the lowest holds 0.99 / 0.95 / 0.82 of it; worst seen 0.96 / 0.61 / 0.58): spare
//     capacity, never overload.
//   - Removing one member re-maps 1.00x / 1.2x / 3.5x the ideal 1/N (plain Maglev: 1.03x /
//     1.56x / 6.8x). The excess grows as entries per member shrink (65 at 1000 members): for
//     VIPs with hundreds of backends prefer a larger prime size (655373 slots: 1.8x at 1000
//     members, plain Maglev 4.3x; ~19 ms to build, 1.3 MB).
//
// Identity: members are identified by MaglevMember::id (a hash of address and port), not by
// their position: the table depends only on the set of (id, weight), never on list order, and is
// the same on every machine (no std::hash, no randomness).
//
// Thread contract: build() runs on the control plane (allocates; ~1.6 ms for 1000 equal members
// and 65537 slots, ~2.3 ms with weights 1-4). A built Maglev is immutable: lookup() is
// read-only, noexcept and safe from any number of threads; publish a new table (e.g. behind RCU)
// instead of changing one in place.
#pragma once

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
