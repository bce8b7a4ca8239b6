// Tests for lib/lb/persist_table: lookup and expiry on a fake clock (wrap-around included),
// refresh, the capacity bound, what an insert into a full bucket may take (expired first, then
// the entry closest to expiry, never one that outlives the newcomer), that keys packed into one
// bucket cost nothing to the others, and how relayed decisions settle. Pure C++: no EAL.
#include "lib/lb/persist_table.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <vector>

namespace {

using sluice::lb::HashKey;
using sluice::lb::PersistEntry;
using sluice::lb::PersistKey;
using sluice::lb::PersistTable;
using Put = PersistTable::Put;

HashKey test_key() {
    HashKey k;
    REQUIRE(HashKey::from_hex("00112233445566778899aabbccddeeff0123456789abcdef", k));
    return k;
}

PersistKey v4(uint32_t net, uint16_t vip = 0, uint8_t mask = 24) {
    PersistKey k{};
    std::memcpy(k.net, &net, 4);
    k.vip = vip;
    k.family = 4;
    k.mask_len = mask;
    return k;
}

PersistKey v6(uint64_t hi, uint16_t vip = 0) {
    PersistKey k{};
    std::memcpy(k.net + 8, &hi, 8);
    k.vip = vip;
    k.family = 6;
    k.mask_len = 128;
    return k;
}

// `count` IPv4 keys that land in the same bucket as `first` (searched by brute force: the test
// knows the secret key an outsider does not).
std::vector<PersistKey> same_bucket(const PersistTable& t, const PersistKey& first, size_t count) {
    std::vector<PersistKey> out{first};
    const uint32_t b = t.bucket_of(first);
    for (uint32_t n = 1; out.size() < count; ++n) {
        const PersistKey k = v4(0x0A000000u + n * 256u);
        if (t.bucket_of(k) == b && !(k == first)) out.push_back(k);
    }
    return out;
}

}  // namespace

TEST_CASE("persist table: find, expiry and refresh", "[persist]") {
    PersistTable t(1024, test_key());
    CHECK(t.capacity() == 1024);
    const PersistKey a = v4(0x000200C0);  // 192.0.2.0
    CHECK(t.find(a, 0) == nullptr);
    CHECK(t.put(a, 7, 5'000, 0) == Put::inserted);
    REQUIRE(t.find(a, 4'999) != nullptr);
    CHECK(t.find(a, 4'999)->backend == 7);
    CHECK(PersistTable::left_ms(*t.find(a, 1'000), 1'000) == 4'000);
    CHECK(t.find(a, 5'000) == nullptr);  // dead from its expiry on
    // Another VIP, mask or family is another key.
    CHECK(t.find(v4(0x000200C0, 1), 10) == nullptr);
    CHECK(t.find(v4(0x000200C0, 0, 16), 10) == nullptr);
    // Refresh pushes the expiry out, never in.
    PersistEntry* e = t.find(a, 10);
    PersistTable::refresh(*e, 9'000);
    PersistTable::refresh(*e, 6'000);
    CHECK(t.find(a, 8'999) != nullptr);
    CHECK(t.find(a, 9'000) == nullptr);
    // A put over an existing key (live or dead) re-pins it in place.
    CHECK(t.put(a, 3, 20'000, 10'000) == Put::updated);
    CHECK(t.find(a, 10'001)->backend == 3);
    CHECK(t.find(a, 10'001)->pinned_ms == 10'000);
    // IPv6 keys.
    const PersistKey b = v6(0x1122334455667788ull);
    CHECK(t.put(b, 9, 1'000, 0) == Put::inserted);
    CHECK(t.find(b, 999)->backend == 9);
    CHECK(t.stats().inserts == 2);
}

TEST_CASE("persist table: the wrapping clock", "[persist]") {
    PersistTable t(1024, test_key());
    const PersistKey a = v4(0x000200C0);
    const uint32_t now = 0xFFFFF000u;
    CHECK(t.put(a, 1, now + 10'000, now) == Put::inserted);  // expiry wraps past 2^32
    CHECK(t.find(a, now + 5'000) != nullptr);
    CHECK(t.find(a, now + 9'999) != nullptr);
    CHECK(t.find(a, now + 10'000) == nullptr);
}

TEST_CASE("persist table: capacity is bounded, a full bucket evicts the entry closest to expiry", "[persist]") {
    PersistTable t(1024, test_key());
    // Far more keys than slots: the table never holds more than its capacity.
    for (uint32_t i = 0; i < 5000; ++i) t.put(v4(i << 8), 1, 100'000 + i, 0);
    size_t live = 0;
    t.for_each_live(0, [&](const PersistEntry&) { ++live; });
    CHECK(live <= t.capacity());
    CHECK(live > t.capacity() * 9 / 10);  // buckets fill evenly under a keyed hash

    PersistTable u(1024, test_key());
    const auto keys = same_bucket(u, v4(0x000200C0), PersistTable::kWays + 2);
    // Fill the bucket: expiries 1000, 2000, 3000, 4000.
    for (uint32_t i = 0; i < PersistTable::kWays; ++i) CHECK(u.put(keys[i], 1, (i + 1) * 1'000, 0) == Put::inserted);
    // A newcomer that lives longer evicts the entry closest to expiry (keys[0]).
    CHECK(u.put(keys[4], 2, 5'000, 10) == Put::evicted);
    CHECK(u.find(keys[0], 10) == nullptr);
    for (uint32_t i = 1; i < 5; ++i) CHECK(u.find(keys[i], 10) != nullptr);
    CHECK(u.stats().evictions == 1);
    // An expired entry is reclaimed before any live one is evicted.
    CHECK(u.put(keys[5], 3, 6'000, 2'500) == Put::inserted);  // keys[1] (2000) is dead at 2500
    CHECK(u.find(keys[2], 2'500) != nullptr);
    CHECK(u.stats().evictions == 1);
}

TEST_CASE("persist table: an insert is refused only when every entry of its bucket outlives it", "[persist]") {
    PersistTable t(1024, test_key());
    const auto keys = same_bucket(t, v4(0x000200C0), PersistTable::kWays + 1);
    for (uint32_t i = 0; i < PersistTable::kWays; ++i) t.put(keys[i], 1, 50'000, 0);
    // Dies before all of them: refused, nothing lost.
    CHECK(t.put(keys[4], 2, 40'000, 0) == Put::refused);
    CHECK(t.stats().refusals == 1);
    for (uint32_t i = 0; i < PersistTable::kWays; ++i) CHECK(t.find(keys[i], 1) != nullptr);
    // Dies with them (a tie): one of them goes.
    CHECK(t.put(keys[4], 2, 50'000, 0) == Put::evicted);
}

TEST_CASE("persist table: keys packed into one bucket cannot block a client of another", "[persist]") {
    PersistTable t(4096, test_key());
    const PersistKey victim = v4(0x000200C0);
    CHECK(t.put(victim, 5, 300'000, 0) == Put::inserted);
    // An attacker who could aim (this test knows the key) fills another bucket many times over,
    // refreshing its entries: the victim's entry and every other bucket are untouched.
    const PersistKey other = [&] {
        for (uint32_t n = 1;; ++n)
            if (const PersistKey k = v4(0x0B000000u + n * 256u); t.bucket_of(k) != t.bucket_of(victim)) return k;
    }();
    const auto flood = same_bucket(t, other, 64);
    for (uint32_t now = 0; now < 100; ++now)
        for (const auto& k : flood) t.put(k, 1, now + 300'000, now);
    CHECK(t.find(victim, 100) != nullptr);
    CHECK(t.find(victim, 100)->backend == 5);
    size_t in_flood_bucket = 0;
    t.for_each_live(100, [&](const PersistEntry& e) { in_flood_bucket += t.bucket_of(e.key) == t.bucket_of(other); });
    CHECK(in_flood_bucket == PersistTable::kWays);
    // Aimed at the victim's own bucket, a flood evicts at most that bucket's entries, and the
    // victim's next connection (a newcomer living as long as any of them) wins a slot back.
    const auto aimed = same_bucket(t, victim, 16);
    for (size_t i = 1; i < aimed.size(); ++i) t.put(aimed[i], 1, 200 + 300'000, 200);
    CHECK(t.find(victim, 201) == nullptr);
    CHECK(t.put(victim, 5, 300 + 300'000, 300) == Put::evicted);
    CHECK(t.find(victim, 301)->backend == 5);
}

TEST_CASE("persist table: relayed decisions settle on the latest pin", "[persist]") {
    PersistTable t(1024, test_key());
    const PersistKey a = v4(0x000200C0);
    CHECK(t.learn(a, 4, 10'000, 100, 200) == Put::inserted);
    CHECK(t.find(a, 200)->backend == 4);
    // The same backend: the later expiry stays.
    CHECK(t.learn(a, 4, 12'000, 150, 300) == Put::kept);
    CHECK(t.learn(a, 4, 11'000, 150, 300) == Put::kept);
    CHECK(t.find(a, 11'500) != nullptr);
    // Another backend chosen earlier than the entry's pin: ignored; later: it wins.
    CHECK(t.learn(a, 6, 20'000, 50, 400) == Put::kept);
    CHECK(t.find(a, 400)->backend == 4);
    CHECK(t.learn(a, 6, 20'000, 500, 600) == Put::updated);
    CHECK(t.find(a, 600)->backend == 6);
    // A tie of pin times: the lower backend index, whichever arrives first.
    const PersistKey b = v4(0x000300C0);
    t.put(b, 9, 10'000, 1'000);
    CHECK(t.learn(b, 8, 10'000, 1'000, 1'001) == Put::updated);
    CHECK(t.learn(b, 9, 10'000, 1'000, 1'002) == Put::kept);
    CHECK(t.find(b, 1'003)->backend == 8);
    // Dead on arrival: nothing.
    CHECK(t.learn(v4(0x000400C0), 1, 1'000, 0, 2'000) == Put::kept);
    CHECK(t.find(v4(0x000400C0), 2'000) == nullptr);
}

TEST_CASE("persist table: a sweep erases what its predicate names", "[persist]") {
    PersistTable t(1024, test_key());
    for (uint32_t i = 0; i < 100; ++i) t.put(v4(i << 8), static_cast<uint16_t>(i % 3), 10'000, 0);
    uint32_t cursor = 0;
    bool done = false;
    while (!done) done = t.sweep(cursor, 16, [](const PersistEntry& e) { return e.backend == 1; });
    std::map<uint16_t, int> by_backend;
    t.for_each_live(1, [&](const PersistEntry& e) { ++by_backend[e.backend]; });
    CHECK(by_backend.count(1) == 0);
    CHECK(by_backend[0] + by_backend[2] == 100 - 33);
}
