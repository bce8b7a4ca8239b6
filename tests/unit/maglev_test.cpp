// Tests for lib/lb/maglev: the acceptance targets (balance, weights, order independence,
// disruption on removal), the error contract, the exactness of the fast build against the
// reference one, and a pinned table checksum that guards cross-version consistency.
//
// Member ids come from a fixed splitmix64 sequence, so every number asserted here is
// deterministic; the bounds are the module's targets, not fitted to one run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "lib/lb/limits.hpp"
#include "lib/lb/maglev.hpp"

namespace {

using sluice::lb::is_prime;
using sluice::lb::Maglev;
using sluice::lb::MaglevMember;

constexpr uint32_t kSize = Maglev::kDefaultSize;

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E37'79B9'7F4A'7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
}

std::vector<MaglevMember> members_with_weights(const std::vector<uint32_t>& weights,
                                                uint64_t seed) {
    std::vector<MaglevMember> members;
    for (const uint32_t w : weights) members.push_back({splitmix64(seed), w});
    return members;
}

std::vector<MaglevMember> equal_members(size_t n, uint64_t seed) {
    return members_with_weights(std::vector<uint32_t>(n, 1), seed);
}

Maglev build_ok(const std::vector<MaglevMember>& members, uint32_t size = kSize) {
    auto m = Maglev::build(members, size);
    INFO((m.ok() ? std::string() : m.error()));
    REQUIRE(m.ok());
    return std::move(m).value();
}

// Entries per caller position; every entry must name a member.
std::vector<uint32_t> counts(const Maglev& m, size_t members) {
    std::vector<uint32_t> c(members, 0);
    size_t strays = 0;
    for (const uint16_t e : m.table()) {
        if (e < members) {
            ++c[e];
        } else {
            ++strays;
        }
    }
    REQUIRE(strays == 0);
    return c;
}

// Per-member entries / (entries the member's weight is worth): 1.0 is a fair share.
std::vector<double> share_ratios(const Maglev& m, const std::vector<MaglevMember>& members) {
    uint64_t total = 0;
    for (const auto& mm : members) total += mm.weight;
    const std::vector<uint32_t> c = counts(m, members.size());
    std::vector<double> r;
    for (size_t i = 0; i < members.size(); ++i) {
        if (members[i].weight == 0) continue;
        r.push_back(c[i] / (static_cast<double>(m.size()) * members[i].weight / static_cast<double>(total)));
    }
    return r;
}

double max_ratio(const Maglev& m, const std::vector<MaglevMember>& members) {
    const auto r = share_ratios(m, members);
    return *std::max_element(r.begin(), r.end());
}

// Entries whose backend (by id) differs between two tables of the same size.
uint32_t remapped(const Maglev& a, const std::vector<MaglevMember>& ma, const Maglev& b,
                  const std::vector<MaglevMember>& mb) {
    REQUIRE(a.size() == b.size());
    uint32_t changed = 0;
    for (uint32_t s = 0; s < a.size(); ++s) {
        const uint16_t x = a.table()[s];
        const uint16_t y = b.table()[s];
        const uint64_t id_x = x == Maglev::kNoBackend ? 0 : ma[x].id;
        const uint64_t id_y = y == Maglev::kNoBackend ? 0 : mb[y].id;
        if (id_x != id_y) ++changed;
    }
    return changed;
}

// Removing member `victim`: what moved, against the ideal (the victim's share of the table).
struct Removal {
    uint32_t remapped;  // entries whose backend changed
    uint32_t own;       // entries the victim held: they move in any case
    double ratio;       // remapped / size over the victim's weight share
    double max_load;    // before the removal: the most loaded member's entries over its share
};

Removal remove_member(const std::vector<MaglevMember>& members, size_t victim,
                      uint32_t size = kSize) {
    const Maglev before = build_ok(members, size);
    std::vector<MaglevMember> fewer = members;
    fewer.erase(fewer.begin() + static_cast<ptrdiff_t>(victim));
    const Maglev after = build_ok(fewer, size);
    uint64_t total = 0;
    for (const auto& m : members) total += m.weight;
    const double ideal = static_cast<double>(members[victim].weight) / static_cast<double>(total);
    Removal r;
    r.remapped = remapped(before, members, after, fewer);
    r.own = counts(before, members.size())[victim];
    r.ratio = (r.remapped / static_cast<double>(size)) / ideal;
    r.max_load = max_ratio(before, members);
    return r;
}

}  // namespace

TEST_CASE("maglev: is_prime", "[maglev]") {
    CHECK_FALSE(is_prime(0));
    CHECK_FALSE(is_prime(1));
    CHECK(is_prime(2));
    CHECK(is_prime(3));
    CHECK_FALSE(is_prime(9));
    CHECK(is_prime(65537));
    CHECK(is_prime(655373));
    CHECK_FALSE(is_prime(65535));
    CHECK_FALSE(is_prime(65536));
    CHECK(is_prime(4294967291u));  // the largest 32-bit prime
    CHECK_FALSE(is_prime(4294967295u));
}

TEST_CASE("maglev: errors name the bad input", "[maglev]") {
    const auto members = equal_members(3, 1);
    for (const uint32_t size : {0u, 1u, 4u, 65535u, 65536u}) {
        const auto m = Maglev::build(members, size);
        REQUIRE_FALSE(m.ok());
        CHECK_THAT(m.error(), Catch::Contains(std::to_string(size)) && Catch::Contains("prime"));
    }
    // A prime, but beyond the size guard.
    const auto huge = Maglev::build(members, 67108879);
    REQUIRE_FALSE(huge.ok());
    CHECK_THAT(huge.error(), Catch::Contains("67108879"));

    auto dup = equal_members(4, 2);
    dup[3].id = dup[1].id;
    const auto d = Maglev::build(dup, kSize);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Catch::Contains("same id") && Catch::Contains(std::to_string(dup[1].id)));

    const auto too_many = equal_members(Maglev::kMaxMembers + 1, 3);
    const auto t = Maglev::build(too_many, kSize);
    REQUIRE_FALSE(t.ok());
    CHECK_THAT(t.error(), Catch::Contains("65536"));

    CHECK(Maglev::build(members, 2).ok());
    CHECK(Maglev::build(members, 3).ok());
}

TEST_CASE("maglev: one member takes every entry", "[maglev]") {
    const auto members = equal_members(1, 4);
    const Maglev m = build_ok(members);
    CHECK(m.size() == kSize);
    REQUIRE(m.table().size() == kSize);
    CHECK(std::all_of(m.table().begin(), m.table().end(), [](uint16_t e) { return e == 0; }));
    uint64_t h = 5;
    for (int i = 0; i < 1000; ++i) CHECK(m.lookup(splitmix64(h)) == 0);
}

TEST_CASE("maglev: no member with weight > 0 means kNoBackend everywhere", "[maglev]") {
    const auto all_zero = members_with_weights({0, 0, 0}, 5);
    const Maglev m = build_ok(all_zero);
    REQUIRE(m.table().size() == kSize);
    CHECK(std::all_of(m.table().begin(), m.table().end(),
                      [](uint16_t e) { return e == Maglev::kNoBackend; }));
    CHECK(m.lookup(0) == Maglev::kNoBackend);
    CHECK(m.lookup(~uint64_t{0}) == Maglev::kNoBackend);

    const Maglev empty = build_ok({});
    CHECK(empty.lookup(12345) == Maglev::kNoBackend);

    const Maglev unbuilt;
    CHECK(unbuilt.lookup(0) == Maglev::kNoBackend);
    CHECK(unbuilt.lookup(~uint64_t{0}) == Maglev::kNoBackend);
}

TEST_CASE("maglev: zero-weight members take nothing and change nothing", "[maglev]") {
    const auto members = members_with_weights({1, 0, 1, 1, 0, 1}, 6);
    const Maglev m = build_ok(members);
    const auto c = counts(m, members.size());
    CHECK(c[1] == 0);
    CHECK(c[4] == 0);
    CHECK(c[0] + c[2] + c[3] + c[5] == kSize);

    // The same table, entry for entry, as without them.
    const std::vector<MaglevMember> weighted = {members[0], members[2], members[3], members[5]};
    CHECK(remapped(m, members, build_ok(weighted), weighted) == 0);
}

TEST_CASE("maglev: balance with equal weights", "[maglev]") {
    // Target: max entries / mean <= 1.01 (1 + slack + one entry's rounding, see maglev.hpp).
    for (const size_t n : {10, 100, 1000}) {
        const auto members = equal_members(n, 100 + n);
        const Maglev m = build_ok(members);
        const auto r = share_ratios(m, members);
        const double hi = *std::max_element(r.begin(), r.end());
        const double lo = *std::min_element(r.begin(), r.end());
        INFO("members " << n << ": max " << hi << ", min " << lo);
        CHECK(hi <= 1.01);
        // Under-load is possible (lost rendezvous contests) but bounded in practice.
        CHECK(lo >= 0.5);
    }
}

TEST_CASE("maglev: the overload bound holds for every count", "[maglev]") {
    // cap <= ceil(share) while share * slack < 1, else <= floor(share * (1 + slack)) + 1.
    const double slack = Maglev::kCapSlackPpm / 1e6;
    for (const uint32_t size : {101u, 4099u, kSize}) {
        for (const size_t n : {1, 2, 3, 7, 33, 64, 99, 250, 400, 700}) {
            const auto members = equal_members(n, size * 7 + n);
            const Maglev m = build_ok(members, size);
            const double share = static_cast<double>(size) / static_cast<double>(n);
            const double bound = share * slack < 1 ? std::ceil(share)
                                                   : std::floor(share * (1 + slack)) + 1;
            const auto c = counts(m, n);
            INFO("size " << size << ", members " << n << ", share " << share);
            CHECK(*std::max_element(c.begin(), c.end()) <= bound);
        }
    }
}

TEST_CASE("maglev: shares are proportional to weights", "[maglev]") {
    SECTION("weights 1, 2, 3") {
        const auto members = members_with_weights({1, 2, 3}, 7);
        const Maglev m = build_ok(members);
        const auto c = counts(m, 3);
        INFO(c[0] << " " << c[1] << " " << c[2]);
        const auto r = share_ratios(m, members);
        for (const double x : r) {
            CHECK(x <= 1.01);
            CHECK(x >= 0.98);
        }
        CHECK(c[0] < c[1]);
        CHECK(c[1] < c[2]);
    }
    SECTION("300 members of weights 1, 2, 3") {
        std::vector<uint32_t> weights;
        for (int i = 0; i < 300; ++i) weights.push_back(1 + i % 3);
        const auto members = members_with_weights(weights, 8);
        const Maglev m = build_ok(members);
        // Per unit of weight, the weight classes get the same on average.
        const auto c = counts(m, members.size());
        double per_unit[3] = {0, 0, 0};
        for (size_t i = 0; i < members.size(); ++i) per_unit[i % 3] += c[i] / double(1 + i % 3);
        const double mean = kSize / 600.0 * 100;  // 100 members per class, total weight 600
        for (const double x : per_unit) {
            CHECK(x / mean <= 1.01);
            CHECK(x / mean >= 0.97);
        }
        CHECK(max_ratio(m, members) <= 1.01);
    }
    SECTION("a light member among heavy ones gets its share") {
        // A single permutation probing 100 times faster than the light one's would win most
        // races (uniform probe positions favour it): the light member got half its share. A
        // large table keeps the light share (~6500 / ~2200 entries) clear of counting noise.
        constexpr uint32_t kLarge = 655373;
        for (const size_t heavy : {1, 3}) {
            std::vector<uint32_t> weights(heavy, 100);
            weights.push_back(1);
            const auto members = members_with_weights(weights, 20 + heavy);
            const Maglev m = build_ok(members, kLarge);
            const auto r = share_ratios(m, members);
            INFO(heavy << " heavy: light " << r.back() << ", first heavy " << r.front());
            CHECK(r.back() >= 0.95);
            CHECK(*std::max_element(r.begin(), r.end()) <= 1.01);
        }
    }
    SECTION("a very heavy and a very light member") {
        const auto members = members_with_weights({65535, 1, 1, 4'000'000'000u}, 9);
        const Maglev m = build_ok(members);
        const auto c = counts(m, members.size());
        const double total = 65535.0 + 2 + 4e9;
        CHECK(c[3] <= std::ceil(kSize * 4e9 / total));
        CHECK(c[0] >= 1);
        CHECK(c[0] + c[1] + c[2] + c[3] == kSize);
    }
}

TEST_CASE("maglev: the table depends on the set of members, not on their order", "[maglev]") {
    std::vector<uint32_t> weights;
    for (int i = 0; i < 200; ++i) weights.push_back(i % 5);  // includes zero weights
    const auto members = members_with_weights(weights, 10);
    const Maglev m = build_ok(members);

    auto shuffled = members;
    std::mt19937_64 rng(11);
    for (int round = 0; round < 3; ++round) {
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        const Maglev s = build_ok(shuffled);
        CHECK(remapped(m, members, s, shuffled) == 0);
    }
    std::reverse(shuffled.begin(), shuffled.end());
    CHECK(remapped(m, members, build_ok(shuffled), shuffled) == 0);
}

TEST_CASE("maglev: removing a member re-maps little more than its own entries", "[maglev]") {
    // Target: <= 1.6x the ideal (the removed member's share) up to 100 members. Plain Maglev
    // measures ~1.55x at 100 and ~6.9x at 1000 members on 65537 slots; here ~1.2x and ~3.5x.
    for (const size_t n : {10, 50, 100}) {
        const auto members = equal_members(n, 200 + n);
        for (const size_t victim : {size_t{0}, n / 3, n - 1}) {
            const Removal r = remove_member(members, victim);
            INFO("members " << n << ", removed #" << victim << ": " << r.ratio << "x ideal");
            CHECK(r.remapped >= r.own);
            CHECK(r.ratio <= 1.6);
        }
    }
    SECTION("1000 members: bounded, well under plain Maglev") {
        const auto members = equal_members(1000, 1200);
        for (const size_t victim : {size_t{0}, size_t{517}}) {
            const Removal r = remove_member(members, victim);
            INFO("removed #" << victim << ": " << r.ratio << "x ideal");
            CHECK(r.remapped >= r.own);
            CHECK(r.ratio <= 4.5);
        }
    }
    SECTION("weighted members") {
        std::vector<uint32_t> weights;
        for (int i = 0; i < 60; ++i) weights.push_back(1 + i % 4);
        const auto members = members_with_weights(weights, 12);
        for (const size_t victim : {size_t{3}, size_t{30}}) {
            const Removal r = remove_member(members, victim);
            INFO("removed #" << victim << " (weight " << members[victim].weight << "): "
                             << r.ratio << "x ideal");
            CHECK(r.remapped >= r.own);
            CHECK(r.ratio <= 1.6);
        }
    }
}

TEST_CASE("maglev: auto_size steps by powers of two, 2048 entries per member up to 4 MiB",
          "[maglev]") {
    for (size_t k = 0; k < Maglev::kAutoSizes.size(); ++k) {
        const uint32_t size = Maglev::kAutoSizes[k];
        const uint32_t power = 65536u << k;
        INFO("size " << size);
        CHECK(is_prime(size));
        CHECK(size > power);
        for (uint32_t n = power + 1; n < size; ++n) CHECK_FALSE(is_prime(n));  // the first prime
        CHECK(size <= sluice::lb::kMaxTableSize);  // table= accepts every auto size
    }
    CHECK(Maglev::kAutoSizes.front() == Maglev::kDefaultSize);
    CHECK(Maglev::auto_size(0) == 65537);
    CHECK(Maglev::auto_size(1) == 65537);
    CHECK(Maglev::auto_size(32) == 65537);
    CHECK(Maglev::auto_size(33) == 131101);
    CHECK(Maglev::auto_size(100) == 262147);
    CHECK(Maglev::auto_size(512) == 1048583);
    CHECK(Maglev::auto_size(513) == 2097169);
    CHECK(Maglev::auto_size(1000) == 2097169);
    CHECK(Maglev::auto_size(1024) == 2097169);
    // Above 1024 members: the cap.
    CHECK(Maglev::auto_size(1025) == 2097169);
    CHECK(Maglev::auto_size(Maglev::kMaxMembers) == 2097169);
    for (size_t n = 1; n <= 1024; n = n * 3 / 2 + 1) {
        CHECK(Maglev::auto_size(n) >= n * Maglev::kAutoEntriesPerMember);
        CHECK(Maglev::auto_size(n) / 2 < std::max<size_t>(n * Maglev::kAutoEntriesPerMember, 65537));
    }
}

TEST_CASE("maglev: at the auto size, removing one of many members re-maps close to 1/N",
          "[maglev]") {
    // Targets: <= 1.1x the ideal at 100 members, <= 1.5x at 1000, max/mean <= 1.01, on the
    // first id set of tests/maglev_disruption.cpp (which measures 1.07x and 1.30x on average
    // over four sets). Not every set meets them: about one 100-member set in twenty holds a
    // pair of lanes whose skips are small multiples of each other (2x, 3x, 7x seen) starting
    // close together; the faster one takes a share of the other's slots, and the starved
    // member's spare capacity is missing from the caps' slack: 1.10x to 1.12x. One removal at
    // 1000 members: two builds of 2M entries, the slow part of this file in a debug build.
    for (const auto& [n, victims, bound] : {std::tuple{size_t{100}, 3, 1.1}, std::tuple{size_t{1000}, 1, 1.5}}) {
        const auto members = equal_members(n, 1000 + n);
        const uint32_t size = Maglev::auto_size(n);
        for (int v = 0; v < victims; ++v) {
            const size_t victim = n * static_cast<size_t>(v) / 3 + 7;
            const Removal r = remove_member(members, victim, size);
            INFO("members " << n << ", size " << size << ", removed #" << victim << ": " << r.ratio
                            << "x ideal, max/mean " << r.max_load);
            CHECK(r.remapped >= r.own);
            CHECK(r.ratio <= bound);
            CHECK(r.max_load <= 1.01);
        }
    }
}

TEST_CASE("maglev: draining a member to weight 0 moves only its entries and a few more",
          "[maglev]") {
    auto members = equal_members(40, 13);
    const Maglev before = build_ok(members);
    const uint32_t own = counts(before, members.size())[7];
    members[7].weight = 0;
    const Maglev after = build_ok(members);
    CHECK(counts(after, members.size())[7] == 0);
    const uint32_t moved = remapped(before, members, after, members);
    CHECK(moved >= own);
    CHECK(moved <= own * 1.6);
}

TEST_CASE("maglev: the fast build yields exactly the reference table", "[maglev]") {
    std::mt19937_64 rng(14);
    for (int i = 0; i < 60; ++i) {
        const uint32_t sizes[] = {2, 3, 7, 101, 1009, 4099, kSize};
        const uint32_t size = sizes[i % 7];
        const size_t n = i % 10 == 9 ? 700 : rng() % 60;
        std::vector<uint32_t> weights(n);
        for (auto& w : weights) {
            w = i % 3 == 0 ? 1 : i % 3 == 1 ? static_cast<uint32_t>(rng() % 4)
                                            : static_cast<uint32_t>(1 + rng() % 100);
        }
        const auto members = members_with_weights(weights, rng());
        const auto fast = Maglev::build(members, size);
        const auto ref = Maglev::build_reference(members, size);
        REQUIRE(fast.ok());
        REQUIRE(ref.ok());
        INFO("size " << size << ", members " << n);
        CHECK(fast->table() == ref->table());
        const bool any_weight = std::any_of(weights.begin(), weights.end(), [](uint32_t w) { return w > 0; });
        if (any_weight) {
            CHECK(std::none_of(fast->table().begin(), fast->table().end(),
                               [](uint16_t e) { return e == Maglev::kNoBackend; }));
        }
    }
}

TEST_CASE("maglev: lookup reads the table at a multiply-shift of the folded hash", "[maglev]") {
    const auto members = equal_members(10, 15);
    const Maglev m = build_ok(members);
    uint64_t h = 16;
    for (int i = 0; i < 1000; ++i) {
        const uint64_t x = splitmix64(h);
        const uint64_t folded = (x ^ (x >> 32)) & 0xFFFF'FFFFu;
        CHECK(m.lookup(x) == m.table()[(folded * kSize) >> 32]);
    }
    // A 32-bit hash (upper half zero) spans the whole table.
    CHECK(m.lookup(0) == m.table().front());
    CHECK(m.lookup(0xFFFF'FFFFu) == m.table().back());

    // Lookups of random hashes land on members in proportion to their entries.
    const auto c = counts(m, members.size());
    std::vector<uint32_t> hits(members.size(), 0);
    constexpr int kLookups = 1'000'000;
    for (int i = 0; i < kLookups; ++i) ++hits[m.lookup(splitmix64(h))];
    for (size_t i = 0; i < members.size(); ++i) {
        const double expected = kLookups * (c[i] / static_cast<double>(kSize));
        CHECK(std::abs(hits[i] - expected) <= 0.02 * expected);
    }
}

TEST_CASE("maglev: the table for a given set never changes across versions", "[maglev]") {
    // Every Sluice instance, old or new, must map a flow to the same backend. If this checksum
    // changes, an upgrade re-maps flows: change it only on purpose, and say so in the release.
    std::vector<uint32_t> weights;
    for (int i = 0; i < 50; ++i) weights.push_back(i < 40 ? 1 : 3);
    const auto members = members_with_weights(weights, 2024);
    const Maglev m = build_ok(members);
    uint64_t fnv = 0xCBF2'9CE4'8422'2325ull;
    for (const uint16_t e : m.table()) {
        fnv = (fnv ^ members[e].id) * 0x0000'0100'0000'01B3ull;
    }
    CHECK(fnv == 0x118D'76BE'09DA'5690ull);
}

TEST_CASE("maglev: the digest names the table by member ids, not by list positions", "[maglev]") {
    std::vector<uint32_t> weights;
    for (int i = 0; i < 120; ++i) weights.push_back(1 + i % 4);
    const auto members = members_with_weights(weights, 30);
    const Maglev m = build_ok(members);

    // The same set in another order: other positions in table(), the same digest.
    auto shuffled = members;
    std::mt19937_64 rng(31);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const Maglev s = build_ok(shuffled);
    REQUIRE(m.table() != s.table());
    CHECK(s.digest() == m.digest());

    // A weight change, a removed member, another size: other tables, other digests.
    auto reweighted = members;
    reweighted[17].weight += 1;
    CHECK(build_ok(reweighted).digest() != m.digest());
    auto fewer = members;
    fewer.pop_back();
    CHECK(build_ok(fewer).digest() != m.digest());
    CHECK(build_ok(members, 65521).digest() != m.digest());

    // Copies share the table and its digest; an unbuilt table has one of its own.
    const Maglev copy = m;
    CHECK(copy.digest() == m.digest());
    CHECK(Maglev().digest() == Maglev().digest());
    CHECK(Maglev().digest() != m.digest());
    CHECK(build_ok({}).digest() == build_ok(members_with_weights({0, 0}, 32)).digest());
}

TEST_CASE("maglev: the digest of a given set never changes across versions", "[maglev]") {
    // Instances of a tier (and of different versions) compare digests to see whether they
    // pick the same backends: like the table itself, change it only on purpose.
    std::vector<uint32_t> weights;
    for (int i = 0; i < 50; ++i) weights.push_back(i < 40 ? 1 : 3);
    const auto members = members_with_weights(weights, 2024);
    CHECK(build_ok(members).digest() == 0xFA6A'BAD9'857E'FBC2ull);
}
