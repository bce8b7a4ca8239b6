// Weighted Maglev table construction (contract and trade-off in maglev.hpp).
//
// Population, after Maglev (NSDI'16, §3.4), with changes:
//   - Lanes: a member of weight w probes through w / g lanes (g the gcd of the weights), each
//     with its own permutation; every lane probes once per round. Lanes are interchangeable,
//     so the chance that a given slot is reached first by one of a member's lanes is its share
//     of all lanes: shares follow weights exactly, even with two members of weights 1 and 100
//     (a single permutation probing 100 times faster does not: uniform probe positions favour
//     it, and the light member got half its share). Equal weights mean one lane per member.
//   - Permutations as in the paper: a lane's probe number j visits slot (offset + j * skip)
//     mod M, offset = h1(key) mod M, skip = h2(key) mod (M - 1) + 1, the key being the member's
//     id for its first lane. M prime makes every skip a generator, so a lane's probes visit
//     every slot once. h1, h2 are a splitmix64 finalizer with different seeds: no std::hash,
//     the same on every build and machine. Lanes that would walk the same cycle close behind
//     each other draw another skip (see spread_skips).
//   - A probe advances whether or not it claims. The paper's loop walks a member past taken
//     slots to its next free one within its turn, so after a removal every member's claims shift
//     by the slots it gained and the shift cascades (about 7x the ideal re-mapping at 1000
//     members and 65537 slots). Here a slot goes to the lane whose probe reaches it first, in
//     (round, lane order), as in rendezvous hashing: a removed member's slots go to the lanes
//     that probe them next, and nothing else moves unless some member's cap intervenes.
//   - Caps: a member stops after `cap` claims, cap ~ share * (1 + slack) (see entry_caps). The
//     caps bound the overload and sum to at least M, so the table always fills. After a
//     removal a member that reaches its cap earlier leaves its last claim to another member:
//     those chains are the re-mapping beyond the ideal, and more slack makes them shorter.
//   - Lane order (ties within a round): members by id, a member's lanes together. It depends
//     only on the set of members, never on the caller's list; the table stores caller positions.
//
// Cost: about M ln M probes in all (a coupon collector: the last free slots take most of the
// probes). The round loop is tight: an 8 KiB taken-bitmap that stays in L1, no branch on whether
// a probe claims while the table is less than 3/4 full, a well-predicted one after. Once few
// slots are left it switches to an exact event simulation (finish_by_events) that computes, per
// lane, which free slot it reaches next, instead of probing its way there. The result is the
// same table as running the rounds to the end (build_reference() does that; tests compare).
// No allocation per slot or per probe.
#include "lib/lb/maglev.hpp"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>

#include "lib/common/hash_mix.hpp"

namespace sluice::lb {

namespace {

constexpr uint64_t kOffsetSeed = kGoldenRatio64;
constexpr uint64_t kSkipSeed = 0xC2B2'AE3D'27D4'EB4Full;
constexpr uint64_t kCapSeed = 0x1656'67B1'9E37'79F9ull;
constexpr uint64_t kLaneSeed = 0xD6E8'FEB8'6659'FD93ull;
constexpr uint64_t kSkipDraws = 16;
constexpr uint64_t kMaxLanes = 65536;

__extension__ using u128 = unsigned __int128;

// splitmix64's finalizer: a bijection with full avalanche, so ids that differ in one bit get
// unrelated permutations.
uint64_t mix64(uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xBF58'476D'1CE4'E5B9ull;
    x ^= x >> 27;
    x *= 0x94D0'49BB'1331'11EBull;
    x ^= x >> 31;
    return x;
}

// Entry caps for members (weights > 0): cap = floor(x + d), where d in [0, 1)
// is a fixed function of the member's id and x is a little above share = size * weight / total,
// so that the caps leave some slack: x = share * (1 + slack), limited when shares are small as
// described below. The caps must sum to >= size, or the table could not be filled: they do by
// about slack * size on average, and should small shares fall short, the members closest to
// their next entry get one more.
//
// Why d: with one cap for every member of a weight class, all those caps step together when a
// removal moves share across an integer: a plain ceil(share) at 65537 slots took 993 -> 992
// equal members from cap 66 to 67 for everyone and re-mapped 17x the ideal. With d each member
// steps at its own point, so a removal changes about `share` caps by one, whatever the count.
//
// Small shares (share * slack < 1): x + d may not exceed ceil(share), the best balance integer
// entries allow (a share of 65.5 needs some members at 66). But x must also equal share at
// integer shares, or caps would jump there; x = min(share * (1 + slack), share + min(f, 1 - f)),
// f the fractional part of share, rises from share to ceil(share) and back without a jump.
std::vector<uint32_t> entry_caps(std::span<const MaglevMember* const> members, uint32_t size,
                                 uint64_t total) {
    constexpr u128 kOne = u128{1} << 32;  // fixed point 32.32
    std::vector<uint32_t> caps(members.size());
    std::vector<uint32_t> fraction(members.size());
    std::vector<uint32_t> ceil_share(members.size());
    uint64_t sum = 0;
    for (size_t i = 0; i < members.size(); ++i) {
        const u128 share = ((u128{size} * members[i]->weight) << 32) / total;
        u128 x = share * (1'000'000 + Maglev::kCapSlackPpm) / 1'000'000;
        if (x - share < kOne) {
            const auto f = static_cast<uint64_t>(share & (kOne - 1));
            x = std::min(x, share + std::min<uint64_t>(f, static_cast<uint64_t>(kOne) - f));
        }
        const u128 fixed = x + (mix64(members[i]->id ^ kCapSeed) >> 32);
        caps[i] = static_cast<uint32_t>(std::min<u128>(fixed >> 32, size));
        fraction[i] = static_cast<uint32_t>(fixed);
        ceil_share[i] = static_cast<uint32_t>((share + kOne - 1) >> 32);
        sum += caps[i];
    }
    if (sum < size && !members.empty()) {
        // Every cap is at least ceil(share) - 1 and the ceilings sum to >= size, so enough
        // members are one short of their ceiling: raise those closest to rounding up.
        std::vector<size_t> short_of_ceil;
        for (size_t i = 0; i < members.size(); ++i) {
            if (caps[i] < ceil_share[i]) short_of_ceil.push_back(i);
        }
        std::stable_sort(short_of_ceil.begin(), short_of_ceil.end(),
                         [&](size_t a, size_t b) { return fraction[a] > fraction[b]; });
        for (size_t i = 0; sum < size; ++i, ++sum) ++caps[short_of_ceil[i]];
    }
    return caps;
}

// x mod m for x < 2^64 without a division instruction (Barrett: magic = floor(2^64 / m)).
struct FastMod {
    uint64_t m;
    uint64_t magic;
    explicit FastMod(uint32_t mod) : m(mod), magic(~uint64_t{0} / mod) {}
    uint64_t operator()(uint64_t x) const noexcept {
        const auto q = static_cast<uint64_t>((u128{x} * magic) >> 64);
        const uint64_t r = x - q * m;  // q is floor(x / m) or one less
        return r >= m ? r - m : r;
    }
};

// a^-1 mod m for prime m and 0 < a < m (extended Euclid; 32-bit divisions are the cheap ones).
uint32_t mod_inverse(uint32_t a, uint32_t m) {
    int64_t t = 0;
    int64_t new_t = 1;
    uint32_t r = m;
    uint32_t new_r = a;
    while (new_r != 0) {
        const uint32_t q = r / new_r;
        t = std::exchange(new_t, t - int64_t{q} * new_t);
        r = std::exchange(new_r, r - q * new_r);
    }
    return static_cast<uint32_t>(t < 0 ? t + m : t);
}

// Permutation steps for lanes, given their keys and offsets: skip = h2(key) mod (M - 1) + 1 as
// in the paper, except that two lanes do not share a skip when they start close together.
//
// Why: lanes with the same skip walk the same cycle of slots, one a fixed number of probes
// behind the other. If the gap is short, the lane behind finds nearly every slot it reaches
// already claimed by the one ahead: among 1000 members about 8 pairs share one of the 65536
// skips, and the trailing member of a close pair ended with as little as a fifth of its share.
// With a gap of more than M / 8 probes they claim in different stretches of the cycle (a lane
// makes far fewer probes than that once members are many, and with few members collisions are
// rare), so only close pairs draw again (h2 of key + t), in key order. A redraw moves the
// redrawn lane's entries when its partner comes or goes, so it is kept to the pairs that need it.
std::vector<uint32_t> spread_skips(std::span<const uint64_t> keys,
                                   std::span<const uint32_t> offsets, uint32_t size) {
    std::vector<size_t> by_key(keys.size());
    std::iota(by_key.begin(), by_key.end(), size_t{0});
    std::stable_sort(by_key.begin(), by_key.end(),
                     [&](size_t a, size_t b) { return keys[a] < keys[b]; });
    const FastMod mod(size);
    std::unordered_multimap<uint32_t, uint32_t> starts;  // skip -> offsets of lanes using it
    starts.reserve(keys.size());
    std::vector<uint32_t> skips(keys.size());
    for (const size_t i : by_key) {
        uint32_t skip = 0;
        // A bounded number of draws: with more lanes than skips, some must stay close.
        for (uint64_t t = 0; t < kSkipDraws; ++t) {
            skip = static_cast<uint32_t>(mix64((keys[i] + t) ^ kSkipSeed) % (size - 1) + 1);
            bool close = false;
            const auto [first, last] = starts.equal_range(skip);
            for (auto it = first; it != last && !close; ++it) {
                const uint32_t delta = offsets[i] >= it->second ? offsets[i] - it->second
                                                                : offsets[i] + size - it->second;
                const auto gap =
                    static_cast<uint32_t>(mod(uint64_t{delta} * mod_inverse(skip, size)));
                close = std::min(gap, size - gap) < size / 8;
            }
            if (!close) break;
        }
        starts.emplace(skip, offsets[i]);
        skips[i] = skip;
    }
    return skips;
}

// Runs the population. Per-lane state is kept as parallel arrays, since a round reads pos and
// skip of every lane and writes pos back; per-member state (entries left, caller position) is
// reached through the lane's member index.
class Filler {
public:
    Filler(uint32_t size, std::vector<uint16_t>& table)
        : size_(size), taken_(size / 64 + 1, 0), table_(table) {
        // Bits from `size` on are slots that do not exist: permanently taken.
        taken_.back() = ~uint64_t{0} << (size % 64);
    }

    // Members (by id), each followed by its lanes, must be added in lane order: it decides ties.
    uint32_t add_member(uint32_t cap, uint16_t caller_position) {
        left_.push_back(cap);
        caller_.push_back(caller_position);
        lanes_of_.push_back(0);
        return static_cast<uint32_t>(left_.size() - 1);
    }
    void add_lane(uint32_t member, uint32_t offset, uint32_t skip) {
        pos_.push_back(offset);
        offset_.push_back(offset);
        skip_.push_back(skip);
        member_.push_back(member);
        ++lanes_of_[member];
    }

    // Fills table[0..size) (table[size] is scratch). event_tail = false runs the rounds to the
    // end: the reference that the event simulation must match exactly.
    void run(bool event_tail) {
        while (filled_ < size_ && !pos_.empty()) {
            if (event_tail && tail_is_short()) {
                drop_dead();
                finish_by_events();
                return;
            }
            // With one lane per member (equal weights), lane k is member k: no indirection.
            const bool one_lane = pos_.size() == left_.size();
            if (uint64_t{filled_} * 4 >= uint64_t{size_} * 3) {
                one_lane ? round<false, true>() : round<false, false>();
            } else {
                one_lane ? round<true, true>() : round<true, false>();
            }
            // A dead lane costs a probe per round; compacting costs a pass over all.
            if (dead_ * 8 >= pos_.size()) drop_dead();
        }
    }

private:
    // The event simulation costs one multiplication per (live lane, free slot) and a scan of
    // the free slots per claim; the rounds cost ~M / free probes per claim. Switch when the
    // former drops below ~M / 2 operations (measured: lower or higher both cost more).
    bool tail_is_short() const {
        const uint64_t free = size_ - filled_;
        return free * (free + pos_.size() - dead_) * 2 <= size_;
    }

    // Claims slot s for the member of lane k; a member at its cap kills its lanes.
    void claim(size_t k, uint32_t s) {
        const uint32_t m = member_[k];
        taken_[s >> 6] |= uint64_t{1} << (s & 63);
        table_[s] = caller_[m];
        ++filled_;
        if (--left_[m] == 0) dead_ += lanes_of_[m];
    }

    // One round: every lane probes once, in order; a lane whose member is at its cap (dead,
    // awaiting compaction) claims nothing.
    // kBranchless: while many slots are free, whether a probe claims is a coin toss that a
    // branch predictor loses, so it is done with arithmetic (a losing probe writes the scratch
    // entry table[size]); later almost every probe misses and a predicted branch is cheaper.
    template <bool kBranchless, bool kOneLane>
    void round() {
        // Locals, so that the compiler keeps them in registers across the stores below.
        uint64_t* __restrict const taken = taken_.data();
        uint16_t* __restrict const table = table_.data();
        uint32_t* __restrict const pos = pos_.data();
        uint32_t* __restrict const left = left_.data();
        const uint32_t* __restrict const skip = skip_.data();
        const uint32_t* __restrict const member = member_.data();
        const uint16_t* __restrict const caller = caller_.data();
        const size_t n = pos_.size();
        const uint32_t size = size_;
        uint32_t filled = filled_;
        for (size_t k = 0; k < n; ++k) {
            const uint32_t slot = pos[k];
            const uint32_t next = slot + skip[k];  // < 2 * kMaxSize: no overflow
            pos[k] = next >= size ? next - size : next;
            const uint64_t word = taken[slot >> 6];
            const uint32_t m = kOneLane ? static_cast<uint32_t>(k) : member[k];
            if constexpr (kBranchless) {
                const auto free = static_cast<uint32_t>(((word >> (slot & 63)) & 1) ^ 1);
                const uint32_t claims = free & static_cast<uint32_t>(left[m] != 0);
                const uint32_t mask = 0u - claims;
                taken[slot >> 6] = word | (uint64_t{claims} << (slot & 63));
                table[(slot & mask) | (size & ~mask)] = caller[m];
                filled += claims;
                left[m] -= claims;
                if (claims != 0 && left[m] == 0) dead_ += lanes_of_[m];
            } else {
                if (((word >> (slot & 63)) & 1) != 0) [[likely]] continue;
                if (left[m] == 0) continue;
                taken[slot >> 6] = word | (uint64_t{1} << (slot & 63));
                table[slot] = caller[m];
                ++filled;
                if (--left[m] == 0) dead_ += lanes_of_[m];
            }
        }
        filled_ = filled;
    }

    // Removes dead lanes and their members. Stable: the order of the others, hence their
    // tie-breaks, must not change.
    void drop_dead() {
        constexpr uint32_t kGone = UINT32_MAX;
        std::vector<uint32_t> renumbered(left_.size(), kGone);
        uint32_t members = 0;
        for (size_t m = 0; m < left_.size(); ++m) {
            if (left_[m] == 0) continue;
            renumbered[m] = members;
            left_[members] = left_[m];
            caller_[members] = caller_[m];
            lanes_of_[members] = lanes_of_[m];
            ++members;
        }
        left_.resize(members);
        caller_.resize(members);
        lanes_of_.resize(members);
        size_t out = 0;
        for (size_t k = 0; k < pos_.size(); ++k) {
            if (renumbered[member_[k]] == kGone) continue;
            pos_[out] = pos_[k];
            offset_[out] = offset_[k];
            skip_[out] = skip_[k];
            member_[out] = renumbered[member_[k]];
            ++out;
        }
        for (auto* v : {&pos_, &offset_, &skip_, &member_}) v->resize(out);
        dead_ = 0;
    }

    // Replays the rest of the rounds claim by claim, in the same (round, lane) order.
    //
    // A lane's probe number j visits offset + j * skip, so the probe that visits slot s is
    // (s - offset) / skip mod M, and every lane makes probe j in round j. A live lane has
    // claimed every free slot it visited, so every slot still free lies ahead of it: its next
    // claim (if no lane gets there first) is the free slot with the smallest probe number.
    void finish_by_events() {
        std::vector<uint32_t> free_slots;
        free_slots.reserve(size_ - filled_);
        for (uint32_t w = 0; w < taken_.size(); ++w) {
            for (uint64_t bits = ~taken_[w]; bits != 0; bits &= bits - 1) {
                free_slots.push_back(w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits)));
            }
        }
        const size_t f = free_slots.size();
        const size_t n = pos_.size();
        const FastMod mod(size_);
        // probe_of[k * f + i]: the probe number with which lane k visits free_slots[i].
        std::vector<uint32_t> probe_of(n * f);
        for (size_t k = 0; k < n; ++k) {
            const uint64_t inverse = mod_inverse(skip_[k], size_);
            for (size_t i = 0; i < f; ++i) {
                const uint32_t s = free_slots[i];
                const uint32_t delta = s >= offset_[k] ? s - offset_[k] : s + size_ - offset_[k];
                probe_of[k * f + i] = static_cast<uint32_t>(mod(delta * inverse));
            }
        }
        // ORed into a probe number once the slot is taken: never the minimum while one is free.
        std::vector<uint32_t> gone(f, 0);
        std::vector<uint32_t> target(n);  // index into free_slots
        std::vector<uint32_t> when(n);    // round of its probe of target; UINT32_MAX: dead
        const auto aim = [&](size_t k) {
            const uint32_t* row = &probe_of[k * f];
            // The minimum first (independent lanes, no index to carry), then where it is.
            uint32_t lane[4] = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
            size_t i = 0;
            for (; i + 4 <= f; i += 4) {
                for (size_t l = 0; l < 4; ++l) lane[l] = std::min(lane[l], row[i + l] | gone[i + l]);
            }
            for (; i < f; ++i) lane[0] = std::min(lane[0], row[i] | gone[i]);
            const uint32_t best = std::min(std::min(lane[0], lane[1]), std::min(lane[2], lane[3]));
            i = 0;
            while ((row[i] | gone[i]) != best) ++i;
            target[k] = static_cast<uint32_t>(i);
            when[k] = best;
        };
        for (size_t k = 0; k < n; ++k) aim(k);
        while (filled_ < size_) {
            size_t k = 0;
            uint32_t first = when[0];
            for (size_t j = 1; j < n; ++j) {
                k = when[j] < first ? j : k;  // ties: the earlier lane probes first
                first = when[j] < first ? when[j] : first;
            }
            if (first == UINT32_MAX) break;  // every lane dead: cannot happen, caps sum >= M
            const uint32_t i = target[k];
            if (gone[i] == 0) {
                gone[i] = UINT32_MAX;
                claim(k, free_slots[i]);
                if (left_[member_[k]] == 0) {
                    for (size_t j = 0; j < n; ++j) {
                        if (member_[j] == member_[k]) when[j] = UINT32_MAX;
                    }
                    continue;
                }
            }
            // Claimed or found taken: either way its next claim is further along.
            if (filled_ < size_) aim(k);
        }
    }

    uint32_t size_;
    std::vector<uint64_t> taken_;
    std::vector<uint16_t>& table_;
    // Per lane.
    std::vector<uint32_t> pos_;     // slot of the lane's next probe
    std::vector<uint32_t> offset_;  // slot of its probe number 0
    std::vector<uint32_t> skip_;    // permutation step, in [1, M - 1]
    std::vector<uint32_t> member_;  // index of its member
    // Per member.
    std::vector<uint32_t> left_;      // entries it may still claim; 0: its lanes are dead
    std::vector<uint16_t> caller_;    // what the table stores: the caller's position
    std::vector<uint32_t> lanes_of_;  // how many lanes it has
    uint32_t filled_ = 0;
    size_t dead_ = 0;  // lanes of members at their cap not yet compacted away
};

// Lanes per member (weights > 0, in order): weight / gcd of the weights, so the lanes are in the
// exact ratio of the weights. Past kMaxLanes in all they are scaled down (at least one each),
// trading exact proportions for build time in such extreme sets; caps still use true weights.
std::vector<uint32_t> lane_counts(std::span<const MaglevMember* const> members) {
    uint64_t g = 0;
    for (const auto* m : members) g = std::gcd(g, uint64_t{m->weight});
    uint64_t total = 0;
    for (const auto* m : members) total += m->weight / g;
    std::vector<uint32_t> lanes;
    for (const auto* m : members) {
        const uint64_t exact = m->weight / g;
        lanes.push_back(static_cast<uint32_t>(
            total <= kMaxLanes ? exact : std::max<uint64_t>(1, exact * kMaxLanes / total)));
    }
    return lanes;
}

}  // namespace

Maglev::Maglev(std::vector<uint16_t> table, std::span<const MaglevMember> members)
    : table_(std::make_shared<const std::vector<uint16_t>>(std::move(table))),
      entries_(table_->data()),
      size_(static_cast<uint32_t>(table_->size())) {
    // FNV-1a, a 64-bit word at a time: cheap (one multiply per entry, ~1 ms at 1M entries),
    // and ids are hashes already; flow_mix at the end spreads the high-only carries of the
    // multiplies over the whole word.
    constexpr uint64_t kFnvOffset = 0xCBF2'9CE4'8422'2325ull;
    constexpr uint64_t kFnvPrime = 0x0000'0100'0000'01B3ull;
    uint64_t h = (kFnvOffset ^ size_) * kFnvPrime;
    for (const uint16_t e : *table_) h = (h ^ (e == kNoBackend ? 0 : members[e].id)) * kFnvPrime;
    digest_ = flow_mix(h);
}

uint32_t Maglev::auto_size(size_t members) noexcept {
    for (const uint32_t size : kAutoSizes) {
        if (uint64_t{members} * kAutoEntriesPerMember <= size) return size;
    }
    return kAutoSizes.back();
}

bool is_prime(uint32_t n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2) {
        if (n % d == 0) return false;
    }
    return true;
}

Expected<Maglev> Maglev::build_impl(std::span<const MaglevMember> members, uint32_t size,
                                    bool event_tail) {
    if (size > kMaxSize) {
        return make_error("maglev: table size " + std::to_string(size) + " exceeds the maximum " +
                          std::to_string(kMaxSize));
    }
    if (!is_prime(size)) {
        return make_error("maglev: table size " + std::to_string(size) + " is not prime");
    }
    if (members.size() > kMaxMembers) {
        return make_error("maglev: " + std::to_string(members.size()) +
                          " members exceed the maximum " + std::to_string(kMaxMembers));
    }

    std::vector<uint16_t> order(members.size());  // id order -> caller position
    std::iota(order.begin(), order.end(), uint16_t{0});
    std::sort(order.begin(), order.end(),
              [&](uint16_t a, uint16_t b) { return members[a].id < members[b].id; });
    uint64_t total_weight = 0;
    std::vector<const MaglevMember*> weighted;
    std::vector<uint16_t> caller;
    for (size_t i = 0; i < order.size(); ++i) {
        const MaglevMember& m = members[order[i]];
        if (i > 0 && members[order[i - 1]].id == m.id) {
            return make_error("maglev: members " + std::to_string(order[i - 1]) + " and " +
                              std::to_string(order[i]) + " have the same id " +
                              std::to_string(m.id));
        }
        total_weight += m.weight;
        if (m.weight == 0) continue;
        weighted.push_back(&m);
        caller.push_back(order[i]);
    }

    const std::vector<uint32_t> caps = entry_caps(weighted, size, total_weight);
    const std::vector<uint32_t> lanes = lane_counts(weighted);
    // Lane 0 of a member is keyed by its id, so equal weights give one lane per member with
    // the paper's offset and skip; further lanes by a mix of id and lane number.
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < weighted.size(); ++i) {
        if (caps[i] == 0) continue;  // takes no entries: cannot change anyone's claims
        for (uint64_t l = 0; l < lanes[i]; ++l) {
            keys.push_back(l == 0 ? weighted[i]->id : mix64(weighted[i]->id ^ (l * kLaneSeed)));
        }
    }
    std::vector<uint32_t> offsets;
    for (const uint64_t key : keys) {
        offsets.push_back(static_cast<uint32_t>(mix64(key ^ kOffsetSeed) % size));
    }
    const std::vector<uint32_t> skips = spread_skips(keys, offsets, size);

    std::vector<uint16_t> table(size + 1, kNoBackend);
    Filler filler(size, table);
    size_t lane = 0;
    for (size_t i = 0; i < weighted.size(); ++i) {
        if (caps[i] == 0) continue;
        const uint32_t member = filler.add_member(caps[i], caller[i]);
        for (uint32_t l = 0; l < lanes[i]; ++l, ++lane) {
            filler.add_lane(member, offsets[lane], skips[lane]);
        }
    }
    filler.run(event_tail);
    table.pop_back();
    return Maglev(std::move(table), members);
}

}  // namespace sluice::lb
