// Tests for lib/lb/flow_table: lookups in both directions, removal, the capacity bound and
// eviction, expiry per timeout class on a fake millisecond clock (including wrap-around at
// 2^32), the lazy re-filing of touched flows, a randomized model check against
// std::unordered_map, and the memory budget per flow. Pure C++: no EAL.
#include "lib/lb/flow_table.hpp"

#include "lib/lb/flow_hash.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using sluice::lb::FlowRecord;
using sluice::lb::FlowState;
using sluice::lb::FlowTable;
using sluice::lb::Timeouts;
using FT = FlowTable<4>;
constexpr uint32_t kNone = FT::kNone;

// Small, distinct timeouts so each class is recognisable.
Timeouts timeouts() {
    Timeouts t;
    t.tcp_syn_ms = 5'000;
    t.tcp_established_ms = 300'000;
    t.tcp_closing_ms = 10'000;
    t.udp_ms = 30'000;
    t.unconfirmed_ms = 3'000;
    t.tcp_half_closed_ms = 120'000;
    return t;
}

struct Key {
    uint32_t addr;
    uint16_t port;
    bool operator==(const Key&) const = default;
};
struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>{}(uint64_t{k.addr} << 16 | k.port); }
};

const sluice::lb::KeyedHash& hasher() {
    static const sluice::lb::KeyedHash h([] {
        sluice::lb::HashKey k;
        for (int i = 0; i < 8; ++i) k.w[i] = 0x0123456789ABCDEFull * static_cast<uint64_t>(i + 1);
        return k;
    }());
    return h;
}
uint64_t fwd_h(const Key& k) { return hasher()(uint64_t{k.addr} | uint64_t{k.port} << 32); }
uint64_t rev_h(const Key& k) { return hasher()(uint64_t{k.addr} | uint64_t{k.port} << 32, 1); }

// A table plus the bookkeeping a caller does: keys live in the records, the drop callback
// reports which ids the table freed.
struct Harness {
    explicit Harness(uint32_t capacity, Timeouts t = timeouts()) : ft(capacity, t) {}

    FT ft;
    std::vector<uint32_t> dropped;  // ids freed by eviction or expiry, in order

    static Key key_of(const FlowRecord<4>& r) {
        Key k;
        std::memcpy(&k.addr, r.client_addr, 4);
        k.port = r.client_port_raw;
        return k;
    }
    auto dropper() {
        return [this](uint32_t id) {
            REQUIRE(ft.record(id).state != FlowState::free);  // reported while it still holds the flow
            dropped.push_back(id);
        };
    }
    uint32_t insert(const Key& k, FlowState s, uint32_t now) {
        const uint32_t id = ft.insert(fwd_h(k), rev_h(k), true, s, now, dropper());
        if (id != kNone) {
            std::memcpy(ft.record(id).client_addr, &k.addr, 4);
            ft.record(id).client_port_raw = k.port;
        }
        return id;
    }
    // The id of k's flow found through direction dir (0 forward, 1 reverse), or kNone.
    uint32_t find(const Key& k, uint32_t dir = 0) const {
        const uint32_t ref = ft.find(dir ? rev_h(k) : fwd_h(k), [&](uint32_t r) {
            return FT::ref_dir(r) == dir && key_of(ft.record(FT::ref_id(r))) == k;
        });
        if (ref == kNone) return kNone;
        REQUIRE(FT::ref_dir(ref) == dir);
        return FT::ref_id(ref);
    }
    bool present(const Key& k) const { return find(k, 0) != kNone; }
    void remove(uint32_t id) { ft.remove(id, false); }
    uint32_t expire(uint32_t now, uint32_t budget = 1u << 30) { return ft.expire(now, budget, dropper()); }
    // Each direction of flow id (key k) sits where its slot position says, under the hash
    // recomputed from k.
    bool indexed_as(uint32_t id, const Key& k) const {
        return ft.indexed_at(id << 1, fwd_h(k)) && ft.indexed_at(id << 1 | 1u, rev_h(k));
    }
};

Key key(uint32_t i) { return Key{0x0A000000u + i, static_cast<uint16_t>(1000 + i % 50000)}; }

// The documented expiry lag: each timeout class has a wheel of slots of timeout/128 ms, and a
// flow is freed at most one slot after its deadline (never before it).
uint32_t lag(uint32_t timeout_ms) { return (timeout_ms + 127) / 128; }

}  // namespace

TEST_CASE("flow table: record layout and memory per flow", "[flow_table]") {
    CHECK(sizeof(FlowRecord<4>) == 36);
    CHECK(sizeof(FlowRecord<16>) == 48);
    const Timeouts t = timeouts();
    constexpr uint32_t kCap = 1u << 20;
    FlowTable<4> t4(kCap, t);
    FlowTable<16> t6(kCap, t);
    INFO("v4 bytes/flow " << double(t4.memory_bytes()) / kCap << ", v6 bytes/flow " << double(t6.memory_bytes()) / kCap);
    CHECK(t4.memory_bytes() <= 64ull * kCap);
    CHECK(t6.memory_bytes() <= 128ull * kCap);
    // Index: two slots per flow at <= 85% load in 64-byte buckets of 8 slots, one overflow bit
    // per bucket and two 32-bit slot positions per flow, in one mapping; it and the records are
    // mapped in whole 2 MiB pages.
    const uint64_t buckets = (2ull * kCap * 100 / 85 + 7) / 8;
    const uint64_t bitmap = (buckets + 63) / 64 * 8;
    const auto pages = [](uint64_t bytes) { return (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20); };
    CHECK(t4.memory_bytes() == pages(buckets * 64 + bitmap + 8ull * kCap) + pages(36ull * kCap));
    CHECK(t6.memory_bytes() == pages(buckets * 64 + bitmap + 8ull * kCap) + pages(48ull * kCap));
    CHECK(FlowTable<4>::bytes_for(kCap) == buckets * 64 + bitmap + 8ull * kCap + 36ull * kCap);
    CHECK(t4.capacity() == kCap);
    CHECK(t4.size() == 0);
}

TEST_CASE("flow table: insert and find in both directions", "[flow_table]") {
    Harness h(16);
    const Key a = key(1), b = key(2);
    const uint32_t ia = h.insert(a, FlowState::tcp_syn, 100);
    REQUIRE(ia != kNone);
    CHECK(h.ft.size() == 1);
    CHECK(h.ft.stats().inserts == 1);
    CHECK(h.find(a, 0) == ia);
    CHECK(h.find(a, 1) == ia);
    CHECK(h.find(b, 0) == kNone);
    CHECK(h.find(b, 1) == kNone);
    CHECK(h.ft.record(ia).state == FlowState::tcp_syn);
    CHECK(h.ft.record(ia).last_ms == 100);

    const uint32_t ib = h.insert(b, FlowState::udp, 200);
    REQUIRE(ib != kNone);
    CHECK(ib != ia);
    CHECK(h.find(b, 0) == ib);
    CHECK(h.find(b, 1) == ib);
    CHECK(h.find(a, 0) == ia);
    CHECK(h.ft.size() == 2);

    // A forward-only flow (dsr) is not reachable through a reverse hash.
    const Key c = key(3);
    const uint32_t ic = h.ft.insert(fwd_h(c), 0, false, FlowState::tcp_established, 300, h.dropper());
    std::memcpy(h.ft.record(ic).client_addr, &c.addr, 4);
    h.ft.record(ic).client_port_raw = c.port;
    CHECK(h.find(c, 0) == ic);
    CHECK(h.find(c, 1) == kNone);
}

TEST_CASE("flow table: keys with identical hashes are told apart by the predicate", "[flow_table]") {
    Harness h(16);
    const uint64_t same = 0x123456789ABCDEF0ull;
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < 6; ++i) {
        const uint32_t id = h.ft.insert(same, same + 1, true, FlowState::udp, 0, h.dropper());
        REQUIRE(id != kNone);
        h.ft.record(id).client_port_raw = static_cast<uint16_t>(i);
        ids.push_back(id);
    }
    for (uint32_t i = 0; i < 6; ++i) {
        const uint32_t ref = h.ft.find(same, [&](uint32_t r) {
            return FT::ref_dir(r) == 0 && h.ft.record(FT::ref_id(r)).client_port_raw == i;
        });
        CHECK(ref == ids[i] << 1);
        const uint32_t rev = h.ft.find(same + 1, [&](uint32_t r) {
            return FT::ref_dir(r) == 1 && h.ft.record(FT::ref_id(r)).client_port_raw == i;
        });
        CHECK(rev == (ids[i] << 1 | 1u));
    }
}

TEST_CASE("flow table: remove frees the flow and its record", "[flow_table]") {
    Harness h(4);
    const Key a = key(1), b = key(2);
    const uint32_t ia = h.insert(a, FlowState::tcp_established, 0);
    const uint32_t ib = h.insert(b, FlowState::tcp_established, 0);
    h.remove(ia);
    CHECK(h.find(a, 0) == kNone);
    CHECK(h.find(a, 1) == kNone);
    CHECK(h.find(b, 0) == ib);
    CHECK(h.ft.size() == 1);
    CHECK(h.ft.stats().removals == 1);
    CHECK(h.ft.stats().expiries == 0);
    CHECK(h.ft.record(ia).state == FlowState::free);
    // The freed record is reused first, and the removed flow no longer expires.
    CHECK(h.insert(key(3), FlowState::tcp_syn, 1) == ia);
    h.expire(1'000'000);
    CHECK(h.dropped.size() == 2);  // b and key(3), never a's old incarnation twice
    CHECK(h.ft.size() == 0);
}

TEST_CASE("flow table: capacity bound, eviction of exactly one half-open flow per insert", "[flow_table]") {
    constexpr uint32_t kCap = 8;
    Harness h(kCap);
    for (uint32_t i = 0; i < kCap; ++i) REQUIRE(h.insert(key(i), FlowState::tcp_syn, i) != kNone);
    CHECK(h.ft.size() == kCap);
    CHECK(h.ft.stats().evictions == 0);
    CHECK(h.dropped.empty());

    // Full: the next insert evicts exactly one flow, the oldest half-open one.
    const uint32_t id = h.insert(key(100), FlowState::tcp_syn, 50);
    REQUIRE(id != kNone);
    CHECK(h.ft.size() == kCap);
    CHECK(h.ft.stats().evictions == 1);
    REQUIRE(h.dropped.size() == 1);
    CHECK(!h.present(key(0)));
    CHECK(h.find(key(0), 1) == kNone);
    for (uint32_t i = 1; i < kCap; ++i) CHECK(h.present(key(i)));
    CHECK(h.present(key(100)));

    // Keep inserting: the size never exceeds the capacity and every insert evicts one flow.
    for (uint32_t i = 0; i < 10'000; ++i) {
        REQUIRE(h.insert(key(1000 + i), FlowState::tcp_syn, 100 + i / 8) != kNone);
        REQUIRE(h.ft.size() == kCap);
    }
    CHECK(h.ft.stats().evictions == 10'001);
    CHECK(h.ft.stats().inserts == kCap + 10'001);
    CHECK(h.ft.stats().insert_failures == 0);
    for (uint32_t i = 10'000 - kCap; i < 10'000; ++i) CHECK(h.present(key(1000 + i)));
    CHECK(!h.present(key(1000 + 10'000 - kCap - 1)));
}

TEST_CASE("flow table: live established, half-closed and answered UDP flows are never evicted", "[flow_table]") {
    constexpr uint32_t kCap = 6;
    Harness h(kCap);
    for (uint32_t i = 0; i < kCap; ++i) {
        const FlowState s = i % 3 == 0 ? FlowState::tcp_established
                            : i % 3 == 1 ? FlowState::tcp_half_closed : FlowState::udp;
        REQUIRE(h.insert(key(i), s, 0) != kNone);
    }
    // However many newcomers arrive, and whatever their state, the insert is refused.
    for (uint32_t i = 0; i < 1000; ++i) {
        CHECK(h.insert(key(100 + i), i % 2 ? FlowState::tcp_syn : FlowState::unconfirmed, 1000 + i) == kNone);
    }
    CHECK(h.ft.stats().refusals == 1000);
    CHECK(h.ft.stats().evictions == 0);
    CHECK(h.dropped.empty());
    for (uint32_t i = 0; i < kCap; ++i) CHECK(h.present(key(i)));
    // Once one of them has been idle past its timeout (udp: 30 s), an insert reclaims it at once,
    // before any expiry pass has run.
    const uint32_t id = h.insert(key(999), FlowState::tcp_syn, 30'001);
    REQUIRE(id != kNone);
    REQUIRE(h.dropped.size() == 1);
    CHECK(!h.present(key(2)));
    CHECK(h.ft.stats().expiries == 1);
    CHECK(h.ft.stats().evictions == 0);
}

TEST_CASE("flow table: eviction by value: unconfirmed, then closing, then half-open", "[flow_table]") {
    Harness h(4);
    const uint32_t est = h.insert(key(1), FlowState::tcp_established, 0);
    const uint32_t syn = h.insert(key(2), FlowState::tcp_syn, 1000);
    const uint32_t closing = h.insert(key(3), FlowState::tcp_closing, 0);
    const uint32_t unconf = h.insert(key(4), FlowState::unconfirmed, 1500);
    REQUIRE(h.insert(key(5), FlowState::tcp_syn, 2000) != kNone);
    REQUIRE(h.dropped.size() == 1);
    CHECK(h.dropped[0] == unconf);
    REQUIRE(h.insert(key(6), FlowState::tcp_syn, 2001) != kNone);
    CHECK(h.dropped.back() == closing);
    REQUIRE(h.insert(key(7), FlowState::tcp_syn, 2002) != kNone);
    CHECK(h.dropped.back() == syn);  // the oldest half-open flow
    CHECK(h.present(key(1)));
    CHECK(h.ft.stats().evictions == 3);
    (void)est;
}

TEST_CASE("flow table: eviction takes the least recently active flow of a class", "[flow_table]") {
    Harness h(4);
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < 4; ++i) ids.push_back(h.insert(key(i), FlowState::unconfirmed, i * 10));
    // The earliest-filed ones stay active; key(2) is now the least recently active.
    h.ft.touch(ids[0], 2000);
    h.ft.touch(ids[1], 2000);
    h.ft.touch(ids[3], 2000);
    REQUIRE(h.insert(key(10), FlowState::unconfirmed, 2001) != kNone);
    REQUIRE(h.dropped.size() == 1);
    CHECK(h.dropped[0] == ids[2]);
    CHECK(h.present(key(0)));
    CHECK(h.present(key(1)));
    CHECK(h.present(key(3)));
}

TEST_CASE("flow table: a full bucket gives up a flow idle past its timeout", "[flow_table]") {
    // Many flows under one hash (as a collision attack on an unkeyed hash would make): once
    // both candidate buckets are full, an insert still succeeds if one of them has expired.
    Harness h(64);
    const uint64_t same = 0x0123456789ABCDEFull;
    std::vector<uint32_t> freed;
    auto on_drop = [&](uint32_t id) { freed.push_back(id); };
    uint32_t placed = 0, first = kNone;
    for (uint32_t i = 0; i < 32; ++i) {
        const uint32_t id =
            h.ft.insert(same, 0, false, i == 0 ? FlowState::unconfirmed : FlowState::tcp_established, 0, on_drop);
        if (id == kNone) break;
        if (i == 0) first = id;
        ++placed;
    }
    CHECK(placed == 16);  // two buckets of eight
    CHECK(h.ft.stats().insert_failures == 1);
    CHECK(h.ft.insert(same, 0, false, FlowState::tcp_syn, 1000, on_drop) == kNone);
    CHECK(h.ft.size() == 16);
    // The unconfirmed flow times out after 3 s: its slot is taken back on demand.
    const uint32_t id = h.ft.insert(same, 0, false, FlowState::tcp_syn, 3000, on_drop);
    CHECK(id != kNone);
    REQUIRE(freed.size() == 1);
    CHECK(freed[0] == first);
    CHECK(h.ft.size() == 16);
    CHECK(h.ft.stats().expiries == 1);
    // No record was lost on the way: once everything has expired, all 64 can be filled again.
    h.ft.expire(1'000'000, 1u << 20, on_drop);
    CHECK(h.ft.size() == 0);
    for (uint32_t i = 0; i < 64; ++i)
        CHECK(h.ft.insert(fwd_h(key(i)), 0, false, FlowState::tcp_established, 1'000'000, on_drop) != kNone);
    CHECK(h.ft.size() == 64);
}

TEST_CASE("flow table: slot positions follow entries through displacement, eviction, expiry and removal",
          "[flow_table]") {
    // A full table: the index at its 85% design load, so inserts displace entries (cuckoo
    // kicks) and every later insert evicts. Removal finds a flow's slots by their positions
    // alone; each must agree with the hashes recomputed from the flow's key.
    constexpr uint32_t kCap = 4096;
    Harness h(kCap);
    std::unordered_map<uint32_t, Key> live;  // by id
    auto check_all = [&] {
        REQUIRE(h.ft.positions_consistent());
        for (const auto& [id, k] : live) REQUIRE(h.indexed_as(id, k));
    };
    auto absorb = [&] {
        for (uint32_t id : h.dropped) REQUIRE(live.erase(id) == 1);
        h.dropped.clear();
    };
    uint32_t next = 0, now = 0;
    for (; next < kCap; ++next) {
        const uint32_t id = h.insert(key(next), FlowState::tcp_syn, now);
        REQUIRE(id != kNone);
        live[id] = key(next);
    }
    check_all();
    // Entries outside their primary bucket: the table had to place (or kick) them there, so
    // the positions were kept through the kicks of the displacement walk.
    uint32_t displaced = 0;
    for (const auto& [id, k] : live)
        for (uint32_t dir = 0; dir < 2; ++dir)
            displaced += h.ft.position(id << 1 | dir) / FT::kSlots != h.ft.bucket_of(dir ? rev_h(k) : fwd_h(k));
    CHECK(displaced > 0);
    for (int round = 0; round < 4; ++round) {
        for (uint32_t i = 0; i < kCap / 2; ++i, ++next) {  // inserts evict (once the removed are refilled)
            now += i % 2;
            const uint32_t id = h.insert(key(next), FlowState::tcp_syn, now);
            REQUIRE(id != kNone);
            absorb();
            live[id] = key(next);
        }
        check_all();
        // Remove a few by id only.
        for (uint32_t i = 0; i < 64 && !live.empty(); ++i) {
            const uint32_t id = live.begin()->first;
            h.remove(id);
            live.erase(id);
        }
        check_all();
    }
    // Expiry frees everything through the same positions; the index is empty after.
    h.expire(now + 1'000'000);
    absorb();
    CHECK(live.empty());
    CHECK(h.ft.size() == 0);
    CHECK(h.ft.stats().evictions > 4 * (kCap / 2 - 64));
    check_all();
}

TEST_CASE("flow table: expiry by state timeouts on a fake clock", "[flow_table]") {
    Harness h(16);
    h.insert(key(1), FlowState::tcp_syn, 0);
    h.insert(key(2), FlowState::tcp_established, 0);
    h.insert(key(3), FlowState::tcp_closing, 0);
    h.insert(key(4), FlowState::udp, 0);
    // Never freed before its deadline; always freed within one slot after it.
    const uint32_t syn = 5'000, closing = 10'000, udp = 30'000, est = 300'000;
    struct Step {
        uint32_t now;
        bool syn, est, closing, udp;
    };
    const Step steps[] = {
        {syn - 1, true, true, true, true},
        {syn + lag(syn), false, true, true, true},
        {closing - 1, false, true, true, true},
        {closing + lag(closing), false, true, false, true},
        {udp - 1, false, true, false, true},
        {udp + lag(udp), false, true, false, false},
        {est - 1, false, true, false, false},
        {est + lag(est), false, false, false, false},
    };
    for (const auto& s : steps) {
        INFO("t=" << s.now);
        h.expire(s.now);
        CHECK(h.present(key(1)) == s.syn);
        CHECK(h.present(key(2)) == s.est);
        CHECK(h.present(key(3)) == s.closing);
        CHECK(h.present(key(4)) == s.udp);
        CHECK(h.ft.size() == uint32_t(s.syn) + s.est + s.closing + s.udp);
    }
    CHECK(h.ft.stats().expiries == 4);
    CHECK(h.ft.stats().evictions == 0);
}

TEST_CASE("flow table: expire respects its budget and resumes", "[flow_table]") {
    Harness h(64);
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < 40; ++i) ids.push_back(h.insert(key(i), FlowState::udp, i));
    CHECK(h.expire(100'000, 0) == 0);
    CHECK(h.ft.size() == 40);
    // Each call does at most `budget` units of work (flows examined or empty slots passed);
    // together they free everything, oldest first.
    int calls = 0;
    while (h.ft.size() > 0 && calls < 1000) {
        const uint32_t before = h.ft.size();
        const uint32_t work = h.expire(100'000, 10);
        REQUIRE(work <= 10);
        REQUIRE(before - h.ft.size() <= work);
        ++calls;
    }
    CHECK(h.ft.size() == 0);
    CHECK(calls <= (256 + 40) / 10 + 1);
    CHECK(h.ft.stats().expiries == 40);
    CHECK(h.dropped == ids);
    // The cursor then catches up with the clock through the remaining empty slots, at most one
    // wheel's worth, after which there is nothing left to do at this time.
    CHECK(h.expire(100'000, 1'000) <= 256);
    CHECK(h.expire(100'000, 1'000) == 0);
}

TEST_CASE("flow table: a touched flow is re-filed, not expired", "[flow_table]") {
    Harness h(16);
    const uint32_t id = h.insert(key(1), FlowState::udp, 0);
    h.ft.touch(id, 20'000);
    CHECK(h.expire(30'000 + lag(30'000)) >= 1);  // its first deadline passed: examined...
    CHECK(h.present(key(1)));                    // ...and re-filed under last packet + timeout
    CHECK(h.ft.stats().expiries == 0);
    h.expire(49'999);
    CHECK(h.present(key(1)));
    h.expire(50'000 + lag(30'000));
    CHECK(!h.present(key(1)));
    CHECK(h.ft.stats().expiries == 1);
}

TEST_CASE("flow table: a flow re-filed behind younger flows still expires on time", "[flow_table]") {
    Harness h(16);
    const uint32_t b = h.insert(key(1), FlowState::udp, 0);
    h.ft.touch(b, 20'000);                       // b's last packet: t=20'000 -> deadline 50'000
    h.insert(key(2), FlowState::udp, 25'000);    // a: deadline 55'000
    h.expire(30'000 + lag(30'000));              // b examined at its first deadline, re-filed
    CHECK(h.present(key(1)));
    CHECK(h.present(key(2)));
    h.expire(50'000 + lag(30'000));
    CHECK_FALSE(h.present(key(1)));
    CHECK(h.present(key(2)));
    CHECK(h.ft.size() == 1);
    h.expire(55'000 + lag(30'000));
    CHECK(h.ft.size() == 0);
}

TEST_CASE("flow table: set_state moves a flow to the new class's timeout", "[flow_table]") {
    Harness h(16);
    const uint32_t id = h.insert(key(1), FlowState::tcp_syn, 0);
    h.ft.touch(id, 1'000);
    h.ft.set_state(id, FlowState::tcp_established, 1'000);
    CHECK(h.ft.record(id).state == FlowState::tcp_established);
    h.expire(6'000 + lag(5'000));  // past the SYN timeout: established flows stay
    CHECK(h.present(key(1)));
    CHECK_FALSE(h.ft.is_stale(id, 300'999));
    CHECK(h.ft.is_stale(id, 301'000));
    h.expire(300'999);
    CHECK(h.present(key(1)));
    h.expire(301'000 + lag(300'000));
    CHECK(!h.present(key(1)));
    // And back: a closing flow gets the short timeout.
    const uint32_t c = h.insert(key(2), FlowState::tcp_established, 400'000);
    h.ft.set_state(c, FlowState::tcp_closing, 400'000);
    h.expire(409'999);
    CHECK(h.present(key(2)));
    h.expire(410'000 + lag(10'000));
    CHECK(!h.present(key(2)));
}

TEST_CASE("flow table: is_stale follows the last packet and the state's timeout", "[flow_table]") {
    Harness h(16);
    const uint32_t syn = h.insert(key(1), FlowState::tcp_syn, 1'000);
    CHECK_FALSE(h.ft.is_stale(syn, 1'000));
    CHECK_FALSE(h.ft.is_stale(syn, 5'999));
    CHECK(h.ft.is_stale(syn, 6'000));
    h.ft.touch(syn, 5'000);
    CHECK_FALSE(h.ft.is_stale(syn, 6'000));
    CHECK(h.ft.is_stale(syn, 10'000));
    const uint32_t udp = h.insert(key(2), FlowState::udp, 0);
    CHECK_FALSE(h.ft.is_stale(udp, 29'999));
    CHECK(h.ft.is_stale(udp, 30'000));
    CHECK(h.ft.timeout_ms(FlowState::tcp_closing) == 10'000);
}

TEST_CASE("flow table: the millisecond clock wraps around 2^32", "[flow_table]") {
    Harness h(16);
    const uint32_t t0 = 0xFFFFF000u;  // 4096 ms before the wrap
    const uint32_t syn = h.insert(key(1), FlowState::tcp_syn, t0);
    const uint32_t udp = h.insert(key(2), FlowState::udp, t0);
    CHECK_FALSE(h.ft.is_stale(syn, t0 + 4'999));  // 0x00000387
    CHECK(h.ft.is_stale(syn, t0 + 5'000));
    h.expire(t0 + 4'999);
    CHECK(h.present(key(1)));
    h.expire(t0 + 5'000 + lag(5'000));
    CHECK(!h.present(key(1)));
    // Touched after the wrap: alive until 30 s after that, gone within a slot of it.
    h.ft.touch(udp, 0x00000100u);
    h.expire(t0 + 30'000 + lag(30'000));
    CHECK(h.present(key(2)));
    CHECK_FALSE(h.ft.is_stale(udp, 0x100u + 29'999));
    h.expire(0x100u + 29'999);
    CHECK(h.present(key(2)));
    h.expire(0x100u + 30'000 + lag(30'000));
    CHECK(!h.present(key(2)));
    // A flow created after the wrap expires like any other.
    h.insert(key(3), FlowState::tcp_closing, 0x00010000u);
    h.expire(0x00010000u + 9'999);
    CHECK(h.present(key(3)));
    h.expire(0x00010000u + 10'000 + lag(10'000));
    CHECK(!h.present(key(3)));
    CHECK(h.ft.stats().expiries == 3);
}

TEST_CASE("flow table: randomized model check against std::unordered_map", "[flow_table]") {
    Timeouts t;
    t.tcp_syn_ms = 200;
    t.tcp_established_ms = 20'000;
    t.tcp_closing_ms = 500;
    t.udp_ms = 4'000;
    t.unconfirmed_ms = 300;
    t.tcp_half_closed_ms = 6'000;
    constexpr uint32_t kCap = 512;
    Harness h(kCap, t);
    struct Model {
        uint32_t id;
        FlowState state;
        uint32_t last;
        uint32_t filed;  // when its current timeout class was entered
    };
    std::unordered_map<Key, Model, KeyHash> model;
    std::unordered_map<uint32_t, Key> by_id;
    auto timeout = [&](FlowState s) {
        switch (s) {
            case FlowState::tcp_syn: return t.tcp_syn_ms;
            case FlowState::tcp_established: return t.tcp_established_ms;
            case FlowState::tcp_closing: return t.tcp_closing_ms;
            case FlowState::unconfirmed: return t.unconfirmed_ms;
            case FlowState::tcp_half_closed: return t.tcp_half_closed_ms;
            default: return t.udp_ms;
        }
    };
    auto evictable = [](FlowState s) {
        return s == FlowState::unconfirmed || s == FlowState::tcp_closing || s == FlowState::tcp_syn;
    };
    std::mt19937 rng(12345);
    uint32_t now = 0xFFFF0000u;  // crosses the 2^32 wrap half way through
    uint64_t evicted = 0, expired = 0, hits = 0, refused = 0;
    // Moves the table's drop reports into the model. An expiry pass drops only idle flows; an
    // insert drops an idle flow, or else evicts a flow of an evictable class.
    auto absorb = [&](bool expiry) {
        for (uint32_t id : h.dropped) {
            auto it = by_id.find(id);
            REQUIRE(it != by_id.end());
            const Model& m = model.at(it->second);
            const bool idle = static_cast<int32_t>(now - m.last) >= static_cast<int32_t>(timeout(m.state));
            if (expiry) REQUIRE(idle);
            else REQUIRE((idle || evictable(m.state)));
            model.erase(it->second);
            by_id.erase(it);
            ++(idle ? expired : evicted);
        }
        h.dropped.clear();
    };
    for (int op = 0; op < 100'000; ++op) {
        now += rng() % 3;
        const Key k = key(rng() % 1500);
        auto it = model.find(k);
        const uint32_t r = rng() % 100;
        if (r < 35) {  // insert if absent
            if (it != model.end()) continue;
            const FlowState s = static_cast<FlowState>(1 + rng() % 6);
            const uint32_t id = h.insert(k, s, now);
            REQUIRE(h.dropped.size() <= 1);
            absorb(false);
            if (id == kNone) {
                // Refused only when full of live flows that must be kept.
                REQUIRE(h.ft.size() == kCap);
                for (const auto& [mk, m] : model)
                    REQUIRE(!evictable(m.state));
                ++refused;
                continue;
            }
            REQUIRE(by_id.count(id) == 0);
            model[k] = Model{id, s, now, now};
            by_id[id] = k;
        } else if (r < 65) {  // find both ways
            const uint32_t f = h.find(k, 0), b = h.find(k, 1);
            if (it == model.end()) {
                REQUIRE(f == kNone);
                REQUIRE(b == kNone);
            } else {
                REQUIRE(f == it->second.id);
                REQUIRE(b == it->second.id);
                REQUIRE(h.ft.is_stale(f, now) ==
                        (static_cast<int32_t>(now - it->second.last) >= static_cast<int32_t>(timeout(it->second.state))));
                ++hits;
            }
        } else if (r < 80) {  // touch
            if (it == model.end()) continue;
            h.ft.touch(it->second.id, now);
            it->second.last = now;
        } else if (r < 85) {  // state change
            if (it == model.end()) continue;
            const FlowState s = static_cast<FlowState>(1 + rng() % 6);
            h.ft.set_state(it->second.id, s, now);
            if (s != it->second.state) it->second.filed = now;
            it->second.state = s;
        } else if (r < 92) {  // remove
            if (it == model.end()) continue;
            h.remove(it->second.id);
            by_id.erase(it->second.id);
            model.erase(it);
        } else {  // expiry pass with a random budget
            h.expire(now, rng() % 32);
            absorb(true);
        }
        REQUIRE(h.ft.size() == model.size());
        REQUIRE(h.ft.size() <= kCap);
        if (op % 5'000 == 0) {
            // A full expiry pass leaves no flow more than one slot past its deadline.
            h.expire(now, 1u << 30);
            absorb(true);
            REQUIRE(h.ft.size() == model.size());
            for (const auto& [mk, m] : model) {
                const uint32_t base = static_cast<int32_t>(m.filed - m.last) > 0 ? m.filed : m.last;
                INFO("idle " << now - m.last << " in state " << int(m.state));
                REQUIRE(now - base < timeout(m.state) + lag(timeout(m.state)));
                REQUIRE(h.find(mk, 0) == m.id);
                REQUIRE(h.find(mk, 1) == m.id);
                REQUIRE(h.ft.record(m.id).state == m.state);
                REQUIRE(h.indexed_as(m.id, mk));
            }
            REQUIRE(h.ft.positions_consistent());
        }
    }
    INFO("evicted " << evicted << " expired " << expired << " hits " << hits << " refused " << refused);
    CHECK(evicted > 100);
    CHECK(expired > 100);
    CHECK(hits > 1000);
    CHECK(h.ft.stats().insert_failures == 0);
    CHECK(h.ft.stats().evictions + h.ft.stats().expiries == evicted + expired);
    CHECK(h.ft.stats().refusals == refused);
}
