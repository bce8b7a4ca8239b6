// Tests for lib/sync, the state-replication protocol: the key file, entry rules, round trips of
// every message type, packing under the MTU budget, authentication (wrong key, every bit
// flipped), strict decoding of authentic but malformed datagrams, the anti-replay window,
// reordering, gaps reported, filled and given up, a peer's restart, and bulk resync.
// Plain C++ on a fake clock: no sockets, no sleeps.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lib/net/wire.hpp"
#include "lib/sync/codec.hpp"
#include "lib/sync/encoder.hpp"
#include "lib/sync/receiver.hpp"
#include "lib/sync/window.hpp"

namespace {

using namespace sluice;
using namespace sluice::sync;
using Kind = Action::Kind;

constexpr uint32_t kA = 1, kB = 2, kC = 3;
constexpr uint64_t kEpochA = 1000ull << 20 | 1, kEpochB = 1000ull << 20 | 2;
constexpr uint64_t kT0 = 1'700'000'000'000;  // a Unix time in ms

Key test_key(uint8_t seed = 1) {
    std::array<uint8_t, Key::kBytes> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(seed * 31 + i * 7 + 1);
    return Key(b);
}

net::IpAddr ip(const char* s) {
    auto a = net::parse_ip(s);
    REQUIRE(a);
    return *a;
}

Session session4(uint32_t i) {
    Session s;
    s.key.proto = lb::Proto::tcp;
    uint8_t c[4] = {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    s.key.client = net::IpAddr::v4(c);
    s.key.client_port = static_cast<uint16_t>(10000 + i % 50000);
    s.key.vip = ip("203.0.113.40");
    s.key.vip_port = 80;
    s.backend = ip("198.51.100.41");
    s.backend_port = 8080;
    s.snat = ip("192.0.2.200");
    s.snat_port = static_cast<uint16_t>(1024 + i % 60000);
    s.state = lb::FlowState::tcp_established;
    s.replied = true;
    s.idle_ms = i % 1000;
    return s;
}

Session session6(uint32_t i) {
    Session s;
    s.key.proto = lb::Proto::udp;
    s.key.client = ip("2001:db8:c::1");
    s.key.client.bytes[14] = static_cast<uint8_t>(i >> 8);
    s.key.client.bytes[15] = static_cast<uint8_t>(i);
    s.key.client_port = 53000;
    s.key.vip = ip("2001:db8:f::40");
    s.key.vip_port = 53;
    s.backend = ip("2001:db8:be::41");
    s.backend_port = 5353;
    s.snat = ip("2001:db8:5::1");
    s.snat_port = 65535;
    s.state = lb::FlowState::udp;
    s.idle_ms = kMaxIdleMs;
    return s;
}

Persist persist4() {
    Persist p;
    p.key.proto = lb::Proto::tcp;
    p.key.vip = ip("203.0.113.10");
    p.key.vip_port = 443;
    p.key.net = ip("198.18.7.0");
    p.key.prefix_len = 24;
    p.backend = ip("198.51.100.12");
    p.backend_port = 0;
    p.left_ms = 60'000;
    p.pinned_age_ms = 1234;
    return p;
}

Persist persist6() {
    Persist p;
    p.key.proto = lb::Proto::udp;
    p.key.vip = ip("2001:db8:f::10");
    p.key.vip_port = 53;
    p.key.net = ip("2001:db8:c::");
    p.key.prefix_len = 48;
    p.backend = ip("2001:db8:be::12");
    p.backend_port = 5353;
    p.left_ms = lb::kMaxPersistMs;
    p.pinned_age_ms = kMaxPinnedAgeMs;
    return p;
}

// One entry of every kind and family, in an order a caller could send them.
std::vector<Entry> every_entry() {
    std::vector<Entry> v;
    v.push_back(session4(7));
    v.push_back(session6(9));
    v.push_back(SessionRemove{session4(7).key});
    v.push_back(SessionRemove{session6(9).key});
    v.push_back(persist4());
    v.push_back(persist6());
    v.push_back(PersistRemove{persist4().key});
    v.push_back(PersistRemove{persist6().key});
    return v;
}

Encoder encoder(uint32_t id = kA, uint64_t epoch = kEpochA, uint32_t mtu = kDefaultMtuBytes, const Key& k = test_key()) {
    auto e = Encoder::create(k, {id, epoch}, {.mtu_bytes = mtu});
    REQUIRE(e);
    return std::move(*e);
}

Receiver receiver(uint32_t self = kB, uint64_t epoch = kEpochB, const Key& k = test_key()) {
    ReceiverConfig cfg;
    cfg.self = self;
    cfg.self_epoch = epoch;
    for (uint32_t p : {kA, kB, kC})
        if (p != self) cfg.peers.push_back(p);
    auto r = Receiver::create(k, cfg);
    REQUIRE(r);
    return std::move(*r);
}

// Entries datagrams for `entries`, all flushed.
std::vector<Datagram> encode(Encoder& e, const std::vector<Entry>& entries, uint64_t now = kT0) {
    for (const Entry& x : entries) REQUIRE(e.add(x, now));
    e.flush(now);
    std::vector<Datagram> out;
    e.take(out);
    return out;
}

// One single-entry entries datagram per call: sequence numbers 1, 2, ...
Datagram one(Encoder& e, uint32_t i = 0, uint64_t now = kT0) {
    auto v = encode(e, {session4(i)}, now);
    REQUIRE(v.size() == 1);
    return v[0];
}

bool has_action(const std::vector<Action>& v, Kind k) {
    for (const Action& a : v)
        if (a.kind == k) return true;
    return false;
}

uint64_t refused(const Receiver& r, Refusal why) { return r.counters().refused[static_cast<size_t>(why)]; }

// An authentic datagram with any header and body: what a peer holding the key could send.
Datagram craft(Header h, const std::vector<uint8_t>& body, const Key& k = test_key()) {
    Datagram d(kHeaderBytes + body.size() + kTagBytes);
    h.body_len = static_cast<uint16_t>(body.size());
    put_header(d.data(), h);
    std::copy(body.begin(), body.end(), d.begin() + kHeaderBytes);
    seal(k, d.data());
    return d;
}

Header header(MsgType t, uint16_t count, uint64_t seq = 1) {
    Header h;
    h.type = t;
    h.sender = kA;
    h.count = count;
    h.epoch = kEpochA;
    h.seq = seq;
    h.sent_ms = kT0;
    return h;
}

std::vector<uint8_t> entry_bytes_of(const Entry& e) {
    std::vector<uint8_t> b(entry_bytes(e));
    put_entry(b.data(), e);
    return b;
}

}  // namespace

// --- The key file ------------------------------------------------------------------------------

TEST_CASE("sync key: raw and hex forms, and what is refused", "[sync][key]") {
    const std::string hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    auto k1 = parse_key(hex, "k");
    REQUIRE(k1);
    CHECK(k1->data()[0] == 0x00);
    CHECK(k1->data()[1] == 0x11);
    CHECK(k1->data()[31] == 0xff);
    auto k2 = parse_key(hex + "\n", "k");
    REQUIRE(k2);
    CHECK(std::memcmp(k1->data(), k2->data(), Key::kBytes) == 0);
    CHECK(parse_key(hex + "\r\n", "k"));

    std::string raw(32, '\0');
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(0x80 + i);
    auto k3 = parse_key(raw, "k");
    REQUIRE(k3);
    CHECK(k3->data()[5] == 0x85);

    // (Not "g" + hex.substr(1): GCC 12 warns about a memcpy overlap inside operator+ that
    // cannot happen, and warnings are errors.)
    auto replaced = [](std::string str, size_t at, char c) {
        str[at] = c;
        return str;
    };
    struct Bad {
        std::string content;
        const char* message;
    };
    const Bad bad[] = {
        {"", "key file k: 0 bytes (expected 32 raw bytes, or 64 hex digits and at most one newline)"},
        {std::string(31, 'x'), "key file k: 31 bytes (expected"},
        {raw + "\n", "key file k: 33 bytes"},
        {hex.substr(0, 63), "key file k: 63 hex digits"},
        {hex + "0", "key file k: 65 hex digits"},
        {hex + "\n\n", "key file k: 66 bytes"},
        {replaced(hex, 0, 'g'), "key file k: bad character 0x67 at byte 0"},
        {replaced(hex, 40, ' '), "key file k: bad character 0x20 at byte 40"},
        {hex.substr(0, 32), "key file k: 32 hex digits, a 128-bit key"},
        {hex.substr(0, 32) + "\n", "key file k: 32 hex digits"},
        {std::string(64, '0'), "key file k: the key is all zero"},
        {std::string(32, '\0'), "key file k: the key is all zero"},
    };
    for (const Bad& b : bad) {
        INFO(b.content.size() << " bytes");
        auto k = parse_key(b.content, "k");
        REQUIRE_FALSE(k);
        CHECK_THAT(k.error(), Catch::StartsWith(b.message));
    }
}

TEST_CASE("sync key: file permissions and reading", "[sync][key]") {
    CHECK(check_key_mode(0100600, "k"));
    CHECK(check_key_mode(0100640, "k"));
    CHECK(check_key_mode(0100400, "k"));
    auto s = check_key_mode(0100644, "/etc/sluice/sync.key");
    REQUIRE_FALSE(s);
    CHECK(s.error() == "key file /etc/sluice/sync.key: other users may access it (mode 0644; chmod o-rwx it)");
    CHECK_FALSE(check_key_mode(0100602, "k"));
    CHECK_FALSE(check_key_mode(0100601, "k"));

    char path[] = "/tmp/sluice-sync-key-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const std::string hex = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n";
    REQUIRE(write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size()));
    close(fd);
    REQUIRE(chmod(path, 0600) == 0);
    auto k = load_key_file(path);
    REQUIRE(k);
    CHECK(k->data()[0] == 0x0f);
    REQUIRE(chmod(path, 0604) == 0);
    auto w = load_key_file(path);
    REQUIRE_FALSE(w);
    CHECK_THAT(w.error(), Catch::Contains("other users may access it (mode 0604"));
    // Too long to be a key, whatever it holds.
    REQUIRE(chmod(path, 0600) == 0);
    std::ofstream(path) << std::string(200, 'a');
    auto l = load_key_file(path);
    REQUIRE_FALSE(l);
    CHECK_THAT(l.error(), Catch::Contains("longer than 72 bytes"));
    unlink(path);
    auto m = load_key_file(path);
    REQUIRE_FALSE(m);
    CHECK_THAT(m.error(), Catch::Contains("No such file"));
    auto d = load_key_file("/tmp");
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("not a regular file"));
}

// --- Entries ------------------------------------------------------------------------------------

TEST_CASE("sync entries: what validate() refuses", "[sync][entry]") {
    for (const Entry& e : every_entry()) CHECK(validate(e) == nullptr);

    struct Case {
        const char* what;
        Entry e;
        const char* why;
    };
    auto s = [](auto f) {
        Session x = session4(1);
        f(x);
        return Entry(x);
    };
    auto p = [](auto f) {
        Persist x = persist4();
        f(x);
        return Entry(x);
    };
    const Case cases[] = {
        {"mixed families", s([](Session& x) { x.backend = ip("2001:db8::1"); }),
         "backend or SNAT address of another family than the VIP"},
        {"client of another family", s([](Session& x) { x.key.client = ip("2001:db8::1"); }),
         "client and VIP of different address families"},
        {"unspecified client", s([](Session& x) { x.key.client = ip("0.0.0.0"); }), "client address unspecified"},
        {"unspecified snat", s([](Session& x) { x.snat = ip("0.0.0.0"); }), "SNAT address unspecified"},
        {"IPv4 with bytes past 4", s([](Session& x) { x.key.vip.bytes[9] = 1; }), "unknown address family"},
        {"unknown family", s([](Session& x) { x.key.vip.family = static_cast<net::Family>(5); }),
         "unknown address family"},
        {"protocol", s([](Session& x) { x.key.proto = static_cast<lb::Proto>(1); }), "protocol neither tcp nor udp"},
        {"snat port", s([](Session& x) { x.snat_port = 1023; }), "SNAT port below 1024"},
        {"backend port", s([](Session& x) { x.backend_port = 0; }), "backend port 0"},
        {"free state", s([](Session& x) { x.state = lb::FlowState::free; }), "no such state for the protocol"},
        {"udp state on tcp", s([](Session& x) { x.state = lb::FlowState::udp; }), "no such state for the protocol"},
        {"tcp state on udp",
         s([](Session& x) {
             x.key.proto = lb::Proto::udp;
             x.fin_client = false;
         }),
         "no such state for the protocol"},
        {"fin on udp",
         s([](Session& x) {
             x.key.proto = lb::Proto::udp;
             x.state = lb::FlowState::udp;
             x.fin_backend = true;
         }),
         "FIN flags on a UDP session"},
        {"idle", s([](Session& x) { x.idle_ms = kMaxIdleMs + 1; }), "idle time over a day"},
        {"prefix 0", p([](Persist& x) { x.key.prefix_len = 0; }), "prefix length out of range"},
        {"prefix 33", p([](Persist& x) { x.key.prefix_len = 33; }), "prefix length out of range"},
        {"unmasked", p([](Persist& x) { x.key.net = ip("198.18.7.1"); }),
         "client network has bits set past its prefix length"},
        {"left 0", p([](Persist& x) { x.left_ms = 0; }), "time left out of range"},
        {"left over a day", p([](Persist& x) { x.left_ms = lb::kMaxPersistMs + 1; }), "time left out of range"},
        {"pinned age", p([](Persist& x) { x.pinned_age_ms = kMaxPinnedAgeMs + 1u; }), "pinned age out of range"},
        {"persist backend family", p([](Persist& x) { x.backend = ip("2001:db8::1"); }),
         "backend of another family than the VIP"},
        {"remove: unspecified VIP", Entry(PersistRemove{[] {
             PersistKey k = persist4().key;
             k.vip = ip("0.0.0.0");
             return k;
         }()}),
         "VIP address unspecified"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        const char* why = validate(c.e);
        REQUIRE(why != nullptr);
        CHECK(std::string(why) == c.why);
    }
    // The network 0.0.0.0/1 and a /32 are fine; so is a client port 0 (the data path takes it).
    CHECK(validate(p([](Persist& x) {
              x.key.net = ip("0.0.0.0");
              x.key.prefix_len = 1;
          })) == nullptr);
    CHECK(validate(p([](Persist& x) {
              x.key.net = ip("198.18.7.9");
              x.key.prefix_len = 32;
          })) == nullptr);
    CHECK(validate(s([](Session& x) { x.key.client_port = 0; })) == nullptr);
}

TEST_CASE("sync entries: wire sizes", "[sync][entry]") {
    const size_t expected[] = {33, 81, 15, 39, 28, 64, 14, 38};
    const auto all = every_entry();
    for (size_t i = 0; i < all.size(); ++i) {
        CHECK(entry_bytes(all[i]) == expected[i]);
        CHECK(entry_bytes(all[i]) <= kMaxEntryBytes);
    }
}

TEST_CASE("sync encoder: an invalid entry is refused and not sent", "[sync][entry]") {
    Encoder e = encoder();
    Session bad = session4(1);
    bad.snat_port = 80;
    auto st = e.add(bad, kT0);
    REQUIRE_FALSE(st);
    CHECK(st.error() == "sync: entry not sent: SNAT port below 1024");
    CHECK(e.pending_entries() == 0);
    CHECK(e.counters().entries_invalid == 1);
    CHECK(Encoder::create(test_key(), {0, kEpochA}).error() == "sync: instance id 0 (expected 1..4294967295)");
    CHECK_FALSE(Encoder::create(test_key(), {kA, 0}));
    CHECK(Encoder::create(test_key(), {kA, kEpochA}, {.mtu_bytes = 511}).error() ==
          "sync: MTU budget 511 bytes out of range (512..9000)");
    CHECK_FALSE(Encoder::create(test_key(), {kA, kEpochA}, {.mtu_bytes = 9001}));
}

// --- Round trips ------------------------------------------------------------------------------

TEST_CASE("sync round trip: every entry kind and family", "[sync][roundtrip]") {
    Encoder a = encoder();
    Receiver b = receiver();
    const auto entries = every_entry();
    auto dg = encode(a, entries, kT0);
    REQUIRE(dg.size() == 1);
    size_t expected_len = kOverheadBytes;
    for (const Entry& e : entries) expected_len += entry_bytes(e);
    CHECK(dg[0].size() == expected_len);

    Delivery out;
    REQUIRE_FALSE(b.feed(dg[0], kT0 + 3, out));
    CHECK(out.peer == kA);
    CHECK(out.type == MsgType::entries);
    CHECK(out.seq == 1);
    CHECK_FALSE(out.bulk);
    CHECK(out.entries == entries);
    REQUIRE(out.actions.size() == 1);
    CHECK(out.actions[0] == Action{.kind = Kind::hello, .peer = kA, .epoch = kEpochA});
    const auto& c = b.counters();
    CHECK(c.accepted == 1);
    CHECK(c.entries_accepted == 8);
    CHECK(c.session_upserts == 2);
    CHECK(c.session_removes == 2);
    CHECK(c.persist_upserts == 2);
    CHECK(c.persist_removes == 2);
    CHECK(c.lag_samples == 1);
    CHECK(c.lag_ms_sum == 3);
    CHECK(b.status(kA)->lag_ms == 3);
    CHECK(a.counters().entries_sent == 8);
    CHECK(a.counters().datagrams_sent == 1);
    CHECK(a.counters().bytes_sent == expected_len);

    // The body is encrypted: no entry's bytes appear in clear.
    const auto clear = entry_bytes_of(entries[0]);
    CHECK(std::search(dg[0].begin(), dg[0].end(), clear.begin() + 5, clear.end()) == dg[0].end());
}

TEST_CASE("sync round trip: heartbeat, ack, resync request", "[sync][roundtrip]") {
    Encoder a = encoder();
    Encoder b_enc = encoder(kB, kEpochB);
    Receiver a_rx = receiver(kA, kEpochA);
    Receiver b = receiver();
    Delivery out;

    // A's stream: 1, (2 lost), 3; then a heartbeat announcing 4.
    const Datagram d1 = one(a, 1), d2 = one(a, 2), d3 = one(a, 3), d4 = one(a, 4);
    REQUIRE_FALSE(b.feed(d1, kT0, out));
    REQUIRE_FALSE(b.feed(d3, kT0 + 1, out));
    CHECK(has_action(out.actions, Kind::send_ack));
    REQUIRE_FALSE(b.feed(a.heartbeat(kT0 + 2), kT0 + 2, out));
    CHECK(out.type == MsgType::heartbeat);
    CHECK(out.seq == 1);  // the control sequence is separate from the stream's
    CHECK(has_action(out.actions, Kind::send_ack));
    CHECK(b.counters().heartbeats_received == 1);

    auto ack = b.make_ack(kA, kT0 + 2);
    REQUIRE(ack);
    CHECK(ack->target == kA);
    CHECK(ack->target_epoch == kEpochA);
    CHECK(ack->cumulative == 1);
    CHECK(ack->highest == 4);
    CHECK(ack->echo_sent_ms == kT0 + 2);
    CHECK(ack->missing == std::vector<SeqRange>{{2, 2}, {4, 4}});

    // The ack travels to A, whose receiver asks it to resend 2 and 4; it measures the round trip.
    auto ad = b_enc.ack(*ack, kT0 + 3);
    REQUIRE(ad);
    REQUIRE_FALSE(a_rx.feed(*ad, kT0 + 7, out));
    CHECK(out.type == MsgType::ack);
    CHECK(out.actions == std::vector<Action>{{.kind = Kind::hello, .peer = kB, .epoch = kEpochB},
                                             {.kind = Kind::resend, .peer = kB, .first = 2, .last = 2},
                                             {.kind = Kind::resend, .peer = kB, .first = 4, .last = 4}});
    CHECK(a_rx.status(kB)->rtt_ms == 5);
    CHECK(a_rx.counters().nack_ranges_received == 2);

    std::vector<Datagram> again;
    CHECK(a.resend(2, 2, again) == 1);
    CHECK(a.resend(4, 4, again) == 1);
    REQUIRE(again.size() == 2);
    CHECK(again[0] == d2);  // the same bytes: the same nonce, the same plaintext
    CHECK(again[1] == d4);
    for (const Datagram& d : again) REQUIRE_FALSE(b.feed(d, kT0 + 8, out));
    CHECK(b.counters().filled == 2);
    ack = b.make_ack(kA, kT0 + 8);
    CHECK(ack->cumulative == 4);
    CHECK(ack->missing.empty());

    // Resync request.
    auto rq = b_enc.resync_request(kA, 77, kT0);
    REQUIRE(rq);
    REQUIRE_FALSE(a_rx.feed(*rq, kT0, out));
    CHECK(out.actions ==
          std::vector<Action>{{.kind = Kind::resync_requested, .peer = kB, .resync_id = 77, .epoch = kEpochB}});
    CHECK_FALSE(b_enc.resync_request(0, 1, kT0));
    CHECK_FALSE(b_enc.resync_request(kA, 0, kT0));
}

TEST_CASE("sync round trip: bulk resync in chunks, out of order", "[sync][roundtrip][bulk]") {
    Encoder a = encoder();
    Encoder b_enc = encoder(kB, kEpochB);
    Receiver a_rx = receiver(kA, kEpochA);
    Receiver b = receiver();
    Delivery out;

    const uint32_t id = b.start_resync(kA, kT0);
    REQUIRE(id != 0);
    CHECK(b.status(kA)->resync_pending);
    REQUIRE_FALSE(a_rx.feed(*b_enc.resync_request(kA, id, kT0), kT0, out));
    REQUIRE(out.actions.size() == 2);  // hello, then the request
    const Action rq = out.actions[1];
    REQUIRE(rq.kind == Kind::resync_requested);

    one(a, 1);  // the stream has moved on a little: the snapshot records where
    BulkWriter w = a.bulk(rq.peer, rq.epoch, rq.resync_id);
    std::vector<Entry> state;
    for (uint32_t i = 0; i < 300; ++i) state.push_back(i % 3 ? Entry(session4(i)) : Entry(session6(i)));
    for (const Entry& e : state) REQUIRE(w.add(e, kT0 + 1));
    w.finish(kT0 + 1);
    CHECK_FALSE(w.add(state[0], kT0 + 1));
    std::vector<Datagram> chunks;
    w.take(chunks);
    REQUIRE(chunks.size() > 3);
    CHECK(w.chunks() == chunks.size());

    // Last first, then the rest backwards: done only when all are in.
    std::vector<Entry> got;
    for (size_t i = chunks.size(); i-- > 0;) {
        REQUIRE_FALSE(b.feed(chunks[i], kT0 + 2, out));
        CHECK(out.bulk);
        CHECK(out.type == MsgType::bulk_chunk);
        got.insert(got.begin(), out.entries.begin(), out.entries.end());
        CHECK(has_action(out.actions, Kind::resync_done) == (i == 0));
    }
    CHECK(got == state);
    CHECK(b.counters().resyncs_completed == 1);
    CHECK(b.counters().bulk_chunks_received == chunks.size());
    CHECK_FALSE(b.status(kA)->resync_pending);

    // Chunks of no outstanding resync, or of another id, are refused.
    REQUIRE(b.feed(chunks[0], kT0 + 3, out) == Refusal::replayed);
    BulkWriter w2 = a.bulk(kB, kEpochB, id);
    REQUIRE(w2.add(state[0], kT0));
    w2.finish(kT0);
    std::vector<Datagram> late;
    w2.take(late);
    CHECK(b.feed(late[0], kT0 + 3, out) == Refusal::stale_resync);
    const uint32_t id2 = b.start_resync(kA, kT0 + 3);
    CHECK(id2 != id);
    CHECK(b.feed(late[0], kT0 + 3, out) == Refusal::stale_resync);
    // ... and chunks for another instance, or another life of this one.
    BulkWriter w3 = a.bulk(kB, kEpochB + 1, id2);
    w3.finish(kT0);
    std::vector<Datagram> other;
    w3.take(other);
    CHECK(b.feed(other[0], kT0 + 3, out) == Refusal::wrong_target);
}

TEST_CASE("sync bulk: an empty state, and a resync that times out", "[sync][bulk]") {
    Encoder a = encoder();
    Receiver b = receiver(kB, kEpochB);
    Delivery out;
    const uint32_t id = b.start_resync(kA, kT0);
    BulkWriter w = a.bulk(kB, kEpochB, id);
    w.finish(kT0);
    std::vector<Datagram> chunks;
    w.take(chunks);
    REQUIRE(chunks.size() == 1);
    CHECK(chunks[0].size() == kOverheadBytes + kChunkFixedBytes);
    REQUIRE_FALSE(b.feed(chunks[0], kT0, out));
    CHECK(out.entries.empty());
    CHECK(has_action(out.actions, Kind::resync_done));

    const uint32_t id2 = b.start_resync(kA, kT0 + 10);
    std::vector<Action> acts;
    b.poll(kT0 + 10 + 4999, acts);
    CHECK(acts.empty());
    b.poll(kT0 + 10 + 5000, acts);
    CHECK(acts == std::vector<Action>{{.kind = Kind::resync_failed, .peer = kA, .resync_id = id2}});
    CHECK(b.counters().resyncs_failed == 1);
    CHECK(b.start_resync(99, kT0) == 0);
}

// --- Packing -------------------------------------------------------------------------------------

TEST_CASE("sync packing: as few datagrams as fit the MTU budget, in order", "[sync][packing]") {
    for (uint32_t mtu : {512u, 1400u, 1500u, 9000u}) {
        INFO("mtu " << mtu);
        Encoder a = encoder(kA, kEpochA, mtu);
        Receiver b = receiver();
        std::vector<Entry> entries;
        for (uint32_t i = 0; i < 2000; ++i) {
            switch (i % 5) {
                case 0: entries.push_back(session4(i)); break;
                case 1: entries.push_back(session6(i)); break;
                case 2: entries.push_back(SessionRemove{session4(i).key}); break;
                case 3: entries.push_back(persist4()); break;
                default: entries.push_back(PersistRemove{persist6().key}); break;
            }
        }
        auto dg = encode(a, entries);
        std::vector<Entry> got;
        size_t next = 0;  // index of the first entry of the next datagram
        Delivery out;
        for (size_t i = 0; i < dg.size(); ++i) {
            CHECK(dg[i].size() <= mtu);
            REQUIRE_FALSE(b.feed(dg[i], kT0, out));
            next += out.entries.size();
            got.insert(got.end(), out.entries.begin(), out.entries.end());
            // Greedy: the next entry would not have fitted in this one.
            if (next < entries.size()) CHECK(dg[i].size() + entry_bytes(entries[next]) > mtu);
        }
        CHECK(got == entries);
        size_t bytes = 0;
        for (const Entry& e : entries) bytes += entry_bytes(e);
        // Every datagram but the last leaves less than the largest entry unused.
        CHECK((dg.size() - 1) * (mtu - kOverheadBytes - (kMaxEntryBytes - 1)) < bytes);
        CHECK(dg.size() >= (bytes + mtu - kOverheadBytes - 1) / (mtu - kOverheadBytes));
    }
}

TEST_CASE("sync packing: flush seals a partial datagram; an ack is cut to the budget", "[sync][packing]") {
    Encoder a = encoder(kA, kEpochA, 512);
    REQUIRE(a.add(session4(1), kT0));
    CHECK(a.pending_entries() == 1);
    std::vector<Datagram> v;
    CHECK(a.take(v) == 0);
    a.flush(kT0);
    a.flush(kT0);  // nothing more to seal
    CHECK(a.take(v) == 1);
    CHECK(a.highest_seq() == 1);

    Ack ack{.target = kB, .target_epoch = kEpochB, .cumulative = 0, .highest = 1000, .echo_sent_ms = 0, .missing = {}};
    for (uint64_t s = 1; s < 1000; s += 2) ack.missing.push_back({s, s});
    auto d = a.ack(ack, kT0);
    REQUIRE(d);
    CHECK(d->size() <= 512);
    CHECK(net::load_be16(d->data() + 12) == (512 - kOverheadBytes - kAckFixedBytes) / kAckRangeBytes);
    ack.missing = {{5, 6}, {3, 4}};
    CHECK_FALSE(a.ack(ack, kT0));
    ack.missing = {{3, 4}, {5, 6}};  // adjacent: must be one range
    CHECK_FALSE(a.ack(ack, kT0));
}

// --- Authentication --------------------------------------------------------------------------------

TEST_CASE("sync authentication: a wrong key is refused", "[sync][auth]") {
    Encoder a = encoder(kA, kEpochA, kDefaultMtuBytes, test_key(2));
    Receiver b = receiver();
    Delivery out;
    CHECK(b.feed(one(a), kT0, out) == Refusal::bad_tag);
    CHECK(refused(b, Refusal::bad_tag) == 1);
    CHECK(b.counters().accepted == 0);
    CHECK_FALSE(b.status(kA)->heard);  // nothing about the peer changed
    CHECK(out.entries.empty());
}

TEST_CASE("sync authentication: a flipped bit anywhere is refused", "[sync][auth]") {
    Encoder a = encoder();
    Encoder b_enc = encoder(kB, kEpochB);
    const std::vector<Datagram> samples = {encode(a, every_entry())[0], a.heartbeat(kT0),
                                           *b_enc.resync_request(kA, 5, kT0)};
    Receiver b = receiver();
    Delivery out;
    uint64_t flips = 0;
    for (const Datagram& d : samples) {
        for (size_t i = 0; i < d.size(); ++i) {
            for (int bit = 0; bit < 8; ++bit) {
                Datagram x = d;
                x[i] ^= static_cast<uint8_t>(1u << bit);
                const auto r = b.feed(x, kT0, out);
                REQUIRE(r);
                if (i < 4)
                    CHECK(*r == Refusal::bad_magic);
                else if (i == 4)
                    CHECK(*r == Refusal::bad_version);
                else
                    CHECK(*r == Refusal::bad_tag);
                ++flips;
            }
        }
    }
    CHECK(b.counters().accepted == 0);
    CHECK(b.counters().refused_total() == flips);
    // The originals still go through: nothing was marked by the refusals.
    REQUIRE_FALSE(b.feed(samples[0], kT0, out));
    REQUIRE_FALSE(b.feed(samples[1], kT0, out));
}

TEST_CASE("sync decoding: lengths, magic and version", "[sync][decode]") {
    Encoder a = encoder();
    Receiver b = receiver();
    Delivery out;
    const Datagram d = one(a);
    CHECK(b.feed(std::span(d.data(), kOverheadBytes - 1), kT0, out) == Refusal::too_short);
    CHECK(b.feed({}, kT0, out) == Refusal::too_short);
    Datagram big(kMaxDatagramBytes + 1);
    std::copy(d.begin(), d.end(), big.begin());
    CHECK(b.feed(big, kT0, out) == Refusal::too_long);
    Datagram cut(d.begin(), d.end() - 1);
    CHECK(b.feed(cut, kT0, out) == Refusal::bad_tag);
    Datagram v2 = d;
    v2[4] = 2;
    CHECK(b.feed(v2, kT0, out) == Refusal::bad_version);
    CHECK(b.counters().datagrams_received == 5);
    CHECK(b.counters().refused_total() == 5);
}

TEST_CASE("sync decoding: authentic but malformed datagrams are refused whole", "[sync][decode]") {
    const auto s4 = entry_bytes_of(session4(1));
    const auto p6 = entry_bytes_of(persist6());
    auto with = [](std::vector<uint8_t> b, size_t at, uint8_t v) {
        b[at] = v;
        return b;
    };
    auto cat = [](std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
    };
    auto hdr = [](MsgType t, uint16_t count, auto f) {
        Header h = header(t, count);
        f(h);
        return h;
    };
    auto none = [](Header&) {};
    struct Case {
        const char* what;
        Header h;
        std::vector<uint8_t> body;
        Refusal why;
    };
    const std::vector<uint8_t> hb(8, 0);
    const Case cases[] = {
        {"type 0", header(static_cast<MsgType>(0), 0), hb, Refusal::bad_type},
        {"type 6", header(static_cast<MsgType>(6), 0), hb, Refusal::bad_type},
        {"flags on entries", hdr(MsgType::entries, 1, [](Header& h) { h.flags = kFlagDone; }), s4, Refusal::malformed},
        {"unknown flag", hdr(MsgType::bulk_chunk, 0, [](Header& h) { h.flags = 2; }), std::vector<uint8_t>(28, 1),
         Refusal::malformed},
        {"sequence 0", hdr(MsgType::entries, 1, [](Header& h) { h.seq = 0; }), s4, Refusal::bad_value},
        {"epoch 0", hdr(MsgType::entries, 1, [](Header& h) { h.epoch = 0; }), s4, Refusal::bad_value},
        {"sender 0", hdr(MsgType::entries, 1, [](Header& h) { h.sender = 0; }), s4, Refusal::bad_value},
        {"no entries", header(MsgType::entries, 0), {}, Refusal::malformed},
        {"count above the entries", header(MsgType::entries, 2), s4, Refusal::malformed},
        {"count below the entries", header(MsgType::entries, 1), cat(s4, p6), Refusal::malformed},
        {"huge count", header(MsgType::entries, 60000), s4, Refusal::malformed},
        {"trailing byte", header(MsgType::entries, 1), cat(s4, {0}), Refusal::malformed},
        {"truncated entry", header(MsgType::entries, 1), std::vector<uint8_t>(s4.begin(), s4.end() - 1),
         Refusal::malformed},
        {"entry kind 0", header(MsgType::entries, 1), with(s4, 0, 0), Refusal::malformed},
        {"entry kind 5", header(MsgType::entries, 1), with(s4, 0, 5), Refusal::malformed},
        {"family 5", header(MsgType::entries, 1), with(s4, 1, 5), Refusal::malformed},
        {"family 6 with IPv4 length", header(MsgType::entries, 1), with(s4, 1, 6), Refusal::malformed},
        {"protocol 1", header(MsgType::entries, 1), with(s4, 2, 1), Refusal::bad_value},
        {"state 0", header(MsgType::entries, 1), with(s4, 3, 0), Refusal::bad_value},
        {"state 7", header(MsgType::entries, 1), with(s4, 3, 7), Refusal::bad_value},
        {"reserved session flag", header(MsgType::entries, 1), with(s4, 4, 0x09), Refusal::malformed},
        {"snat port 80", header(MsgType::entries, 1), with(with(s4, 11, 0), 12, 80), Refusal::bad_value},
        {"prefix 129", header(MsgType::entries, 1), with(p6, 3, 129), Refusal::bad_value},
        {"unmasked network", header(MsgType::entries, 1), with(p6, 16 + 16 + 15, 1), Refusal::bad_value},
        {"heartbeat short", header(MsgType::heartbeat, 0), std::vector<uint8_t>(7, 0), Refusal::malformed},
        {"heartbeat with a count", header(MsgType::heartbeat, 1), hb, Refusal::malformed},
        {"resync request target 0", header(MsgType::resync_request, 0), {0, 0, 0, 0, 0, 0, 0, 1}, Refusal::bad_value},
        {"resync request id 0", header(MsgType::resync_request, 0), {0, 0, 0, 2, 0, 0, 0, 0}, Refusal::bad_value},
        {"ack short", header(MsgType::ack, 0), std::vector<uint8_t>(35, 1), Refusal::malformed},
        {"ack ranges missing", header(MsgType::ack, 1), std::vector<uint8_t>(36, 1), Refusal::malformed},
        {"chunk short", header(MsgType::bulk_chunk, 0), std::vector<uint8_t>(27, 1), Refusal::malformed},
        {"empty chunk not last", header(MsgType::bulk_chunk, 0), std::vector<uint8_t>(28, 1), Refusal::malformed},
    };
    (void)none;
    for (const Case& c : cases) {
        INFO(c.what);
        Receiver b = receiver();
        Delivery out;
        CHECK(b.feed(craft(c.h, c.body), kT0, out) == c.why);
        CHECK(out.entries.empty());
        CHECK(out.actions.empty());
        CHECK_FALSE(b.status(kA)->heard);
    }
    // The reserved header byte, set before sealing: authentic, and refused.
    Datagram d(kHeaderBytes + s4.size() + kTagBytes);
    Header h = header(MsgType::entries, 1);
    h.body_len = static_cast<uint16_t>(s4.size());
    put_header(d.data(), h);
    d[7] = 1;
    std::copy(s4.begin(), s4.end(), d.begin() + kHeaderBytes);
    seal(test_key(), d.data());
    Receiver b = receiver();
    Delivery out;
    CHECK(b.feed(d, kT0, out) == Refusal::malformed);
    // Control: the crafted form of a good datagram is taken.
    CHECK_FALSE(b.feed(craft(header(MsgType::entries, 2), cat(s4, p6)), kT0, out));
    CHECK(out.entries.size() == 2);
}

TEST_CASE("sync decoding: ack ranges must be canonical", "[sync][decode]") {
    auto body = [](uint64_t cum, uint64_t high, std::vector<SeqRange> r) {
        Ack a{.target = kB, .target_epoch = kEpochB, .cumulative = cum, .highest = high, .echo_sent_ms = 0, .missing = r};
        std::vector<uint8_t> b(kAckFixedBytes + kAckRangeBytes * r.size());
        put_ack_body(b.data(), a);
        return b;
    };
    struct Case {
        const char* what;
        uint64_t cum, high;
        std::vector<SeqRange> r;
        std::optional<Refusal> why;
    };
    const Case cases[] = {
        {"good", 3, 10, {{5, 6}, {8, 10}}, std::nullopt},
        {"cumulative above highest", 11, 10, {}, Refusal::bad_value},
        {"range at cumulative", 3, 10, {{3, 4}}, Refusal::bad_value},
        {"range past highest", 3, 10, {{5, 11}}, Refusal::bad_value},
        {"reversed range", 3, 10, {{6, 5}}, Refusal::bad_value},
        {"out of order", 3, 10, {{8, 9}, {5, 6}}, Refusal::bad_value},
        {"overlapping", 3, 10, {{5, 8}, {8, 9}}, Refusal::bad_value},
        {"adjacent", 3, 10, {{5, 6}, {7, 9}}, Refusal::bad_value},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        Receiver b = receiver();
        Delivery out;
        CHECK(b.feed(craft(header(MsgType::ack, static_cast<uint16_t>(c.r.size())), body(c.cum, c.high, c.r)), kT0,
                     out) == c.why);
    }
}

// --- Peers, replay, gaps ------------------------------------------------------------------------------

TEST_CASE("sync peers: unknown, self, wrong target", "[sync][peer]") {
    Receiver b = receiver();
    Delivery out;
    Encoder d = encoder(4, kEpochA);
    CHECK(b.feed(one(d), kT0, out) == Refusal::unknown_peer);
    Encoder self = encoder(kB, kEpochA);
    CHECK(b.feed(one(self), kT0, out) == Refusal::from_self);
    Encoder c = encoder(kC, kEpochA);
    auto rq = c.resync_request(kA, 1, kT0);  // for A, not B
    CHECK(b.feed(*rq, kT0, out) == Refusal::wrong_target);
    Ack ack{.target = kB, .target_epoch = kEpochB + 1, .cumulative = 0, .highest = 0, .echo_sent_ms = 0, .missing = {}};
    CHECK(b.feed(*c.ack(ack, kT0), kT0, out) == Refusal::wrong_target);  // about another life of B
    ack.target_epoch = kEpochB;
    CHECK_FALSE(b.feed(*c.ack(ack, kT0), kT0, out));

    ReceiverConfig cfg{.self = kB, .self_epoch = kEpochB, .peers = {kA, kB}};
    CHECK(Receiver::create(test_key(), cfg).error() == "sync: peer 2 is this instance's own id");
    cfg.peers = {kA, kC, kA};
    CHECK(Receiver::create(test_key(), cfg).error() == "sync: peer 1 listed twice");
    cfg.peers = {0};
    CHECK_FALSE(Receiver::create(test_key(), cfg));
    cfg.peers = {kA};
    cfg.gap_timeout_ms = 0;
    CHECK_FALSE(Receiver::create(test_key(), cfg));
}

TEST_CASE("sync replay: duplicates and too-old numbers are refused and counted", "[sync][replay]") {
    Encoder a = encoder();
    Receiver b = receiver();
    Delivery out;
    std::vector<Datagram> d;
    for (uint32_t i = 0; i < 1100; ++i) d.push_back(one(a, i));
    const Datagram hb = a.heartbeat(kT0);

    REQUIRE_FALSE(b.feed(d[0], kT0, out));
    CHECK(b.feed(d[0], kT0, out) == Refusal::replayed);
    REQUIRE_FALSE(b.feed(hb, kT0, out));
    CHECK(out.actions == std::vector<Action>{{.kind = Kind::lost, .peer = kA, .first = 2, .last = 76},
                                             {.kind = Kind::send_ack, .peer = kA}});
    CHECK(b.feed(hb, kT0, out) == Refusal::replayed);  // control messages too
    CHECK(refused(b, Refusal::replayed) == 2);

    // Jump to 1100: the window is 77..1100, 76 and below are too old.
    REQUIRE_FALSE(b.feed(d[1099], kT0, out));
    CHECK(b.feed(d[75], kT0, out) == Refusal::too_old);
    CHECK(refused(b, Refusal::too_old) == 1);
    REQUIRE_FALSE(b.feed(d[76], kT0, out));  // seq 77: the bottom of the window, still fresh
    CHECK(b.feed(d[76], kT0, out) == Refusal::replayed);
    // The heartbeat (sent after all 1100) announced 2..1100 missing; 1100 and 77 filled it, and
    // 2..76, below the window, are lost.
    CHECK(b.counters().missing == 1099);
    CHECK(b.counters().filled == 2);
    CHECK(b.counters().lost == 75);
}

TEST_CASE("sync reordering within the window is accepted; a gap is reported, then filled", "[sync][gap]") {
    Encoder a = encoder();
    Receiver b = receiver();
    Delivery out;
    std::vector<Datagram> d;
    for (uint32_t i = 0; i < 10; ++i) d.push_back(one(a, i));

    // 1, 2, 5, 3, 4: the jump to 5 finds 3 and 4 missing; they arrive.
    for (int i : {0, 1}) REQUIRE_FALSE(b.feed(d[i], kT0, out));
    REQUIRE_FALSE(b.feed(d[4], kT0 + 1, out));
    CHECK(out.actions == std::vector<Action>{{.kind = Kind::send_ack, .peer = kA}});
    CHECK(b.status(kA)->missing == 2);
    CHECK(b.make_ack(kA, kT0 + 1)->missing == std::vector<SeqRange>{{3, 4}});
    REQUIRE_FALSE(b.feed(d[2], kT0 + 2, out));
    CHECK(out.entries.size() == 1);
    CHECK(b.make_ack(kA, kT0 + 2)->missing == std::vector<SeqRange>{{4, 4}});
    REQUIRE_FALSE(b.feed(d[3], kT0 + 3, out));
    CHECK(b.status(kA)->missing == 0);
    CHECK(b.status(kA)->cumulative == 5);

    // A gap in the middle of a range splits it.
    for (int i : {9, 6}) REQUIRE_FALSE(b.feed(d[i], kT0 + 4, out));
    CHECK(b.make_ack(kA, kT0 + 4)->missing == std::vector<SeqRange>{{6, 6}, {8, 9}});
    const auto& c = b.counters();
    CHECK(c.missing == 2 + 4);
    CHECK(c.filled == 2 + 1);
    CHECK(c.lost == 0);
    CHECK(c.accepted == 7);

    // poll() repeats the NACK while gaps stay open, no more often than the interval.
    std::vector<Action> acts;
    b.poll(kT0 + 50, acts);
    CHECK(acts.empty());
    b.poll(kT0 + 104, acts);
    CHECK(acts == std::vector<Action>{{.kind = Kind::send_ack, .peer = kA}});
    acts.clear();
    b.poll(kT0 + 150, acts);
    CHECK(acts.empty());
}

TEST_CASE("sync gaps: given up after the timeout, a late arrival still taken", "[sync][gap]") {
    Encoder a = encoder();
    Receiver b = receiver();
    Delivery out;
    const Datagram d1 = one(a, 1), d2 = one(a, 2), d3 = one(a, 3);
    REQUIRE_FALSE(b.feed(d1, kT0, out));
    REQUIRE_FALSE(b.feed(d3, kT0, out));
    std::vector<Action> acts;
    b.poll(kT0 + 999, acts);
    CHECK_FALSE(has_action(acts, Kind::lost));
    acts.clear();
    b.poll(kT0 + 1000, acts);
    CHECK(acts == std::vector<Action>{{.kind = Kind::lost, .peer = kA, .first = 2, .last = 2}});
    CHECK(b.counters().lost == 1);
    CHECK(b.make_ack(kA, kT0 + 1000)->cumulative == 3);
    REQUIRE_FALSE(b.feed(d2, kT0 + 2000, out));
    CHECK(b.counters().late == 1);
    CHECK(b.feed(d2, kT0 + 2000, out) == Refusal::replayed);
}

TEST_CASE("sync gaps: a heartbeat reveals lost tail messages", "[sync][gap]") {
    Encoder a = encoder();
    Receiver b = receiver();
    Delivery out;
    const Datagram d1 = one(a, 1);
    one(a, 2);
    one(a, 3);
    REQUIRE_FALSE(b.feed(d1, kT0, out));
    REQUIRE_FALSE(b.feed(a.heartbeat(kT0 + 5), kT0 + 5, out));
    CHECK(has_action(out.actions, Kind::send_ack));
    CHECK(b.make_ack(kA, kT0 + 5)->missing == std::vector<SeqRange>{{2, 3}});
    // A second heartbeat with nothing new adds nothing; a later one extends the range.
    REQUIRE_FALSE(b.feed(a.heartbeat(kT0 + 6), kT0 + 6, out));
    CHECK(out.actions.empty());
    one(a, 4);
    REQUIRE_FALSE(b.feed(a.heartbeat(kT0 + 7), kT0 + 7, out));
    CHECK(b.make_ack(kA, kT0 + 7)->missing == std::vector<SeqRange>{{2, 4}});
    // A heartbeat first: the receiver starts from there, nothing before it is missing.
    Receiver c = receiver(kC, kEpochB);
    REQUIRE_FALSE(c.feed(a.heartbeat(kT0), kT0, out));
    CHECK(out.actions == std::vector<Action>{{.kind = Kind::hello, .peer = kA, .epoch = kEpochA}});
    CHECK(c.status(kA)->highest == 4);
    CHECK(c.status(kA)->missing == 0);
}

TEST_CASE("sync epochs: a restart resets the peer's windows; an earlier life is refused", "[sync][epoch]") {
    Encoder a1 = encoder(kA, kEpochA);
    Receiver b = receiver();
    Delivery out;
    const Datagram old1 = one(a1, 1), old2 = one(a1, 2), old3 = one(a1, 3);
    REQUIRE_FALSE(b.feed(old1, kT0, out));
    REQUIRE_FALSE(b.feed(old3, kT0, out));  // 2 is missing
    const uint32_t id = b.start_resync(kA, kT0);
    (void)id;

    // The restarted process: a higher epoch, numbering from 1 again.
    Encoder a2 = encoder(kA, kEpochA + (5000ull << 20));
    const Datagram new1 = one(a2, 1);
    REQUIRE_FALSE(b.feed(new1, kT0 + 10, out));
    CHECK(out.actions.size() == 2);
    CHECK(out.actions[0] == Action{.kind = Kind::peer_restarted, .peer = kA, .epoch = kEpochA + (5000ull << 20)});
    CHECK(out.actions[1].kind == Kind::resync_failed);
    CHECK(b.status(kA)->epoch == kEpochA + (5000ull << 20));
    CHECK(b.status(kA)->missing == 0);  // the old life's gap is forgotten
    CHECK(b.status(kA)->highest == 1);
    CHECK(b.counters().peer_restarts == 1);

    // The old life's messages, replayed: refused, even those never seen.
    CHECK(b.feed(old2, kT0 + 20, out) == Refusal::stale_epoch);
    CHECK(b.feed(old1, kT0 + 20, out) == Refusal::stale_epoch);
    CHECK(b.feed(new1, kT0 + 20, out) == Refusal::replayed);
    REQUIRE_FALSE(b.feed(one(a2, 2), kT0 + 20, out));

    // After forget_ms of silence, a lower epoch is taken (a peer whose clock went back).
    REQUIRE_FALSE(b.feed(old2, kT0 + 20 + 60'000, out));
    CHECK(out.actions[0].kind == Kind::peer_restarted);
    CHECK(b.counters().peer_restarts == 2);
}

TEST_CASE("sync epochs: make_epoch grows with the start time", "[sync][epoch]") {
    const uint64_t e1 = make_epoch(kT0), e2 = make_epoch(kT0 + 1);
    CHECK(e1 >> 20 == kT0);
    CHECK(e2 > e1);
}

TEST_CASE("sync window: the bitmap on its own", "[sync][window]") {
    using C = ReplayWindow::Check;
    ReplayWindow w;
    CHECK(w.check(1) == C::fresh);
    w.mark(1);
    CHECK(w.check(1) == C::replayed);
    w.mark(1024);
    CHECK(w.check(1) == C::replayed);
    CHECK(w.check(2) == C::fresh);
    w.mark(1025);  // 1 leaves the window
    CHECK(w.check(1) == C::too_old);
    CHECK(w.check(2) == C::fresh);
    CHECK(w.has(1024));
    w.mark(5000);  // a jump past the whole window clears it
    CHECK(w.check(5000 - 1023) == C::fresh);
    CHECK(w.check(5000 - 1024) == C::too_old);
    CHECK_FALSE(w.has(1024));
    // Bits reused around the ring are cleared as the window slides.
    w.mark(5000 + 1024);
    CHECK(w.check(5000 + 1024) == C::replayed);
    CHECK(w.check(5001) == C::fresh);
    CHECK(w.check(5000) == C::too_old);
    // The top of the number space (the fuzzer's first find: the slide looped forever there).
    const uint64_t max = UINT64_MAX;
    w.mark(max - 3);
    w.mark(max);
    CHECK(w.check(max) == C::replayed);
    CHECK(w.check(max - 3) == C::replayed);
    CHECK(w.check(max - 2) == C::fresh);
    StreamTracker t;
    CHECK_FALSE(t.accept(max - 1, 0).new_missing);
    CHECK(t.accept(max, 0).new_missing == 0);
    CHECK(t.cumulative() == max);
}

TEST_CASE("sync counters: names for every counter and refusal", "[sync][counters]") {
    SyncCounters a, b;
    a.refuse(Refusal::bad_tag);
    a.lag_ms_max = 7;
    b.lag_ms_max = 3;
    b.lost = 2;
    a.add(b);
    CHECK(a.lag_ms_max == 7);
    CHECK(a.lost == 2);
    std::vector<std::string> names;
    uint64_t bad_tag = 0;
    a.for_each([&](const char* n, uint64_t v) {
        names.emplace_back(n);
        if (names.back() == "refused_bad_tag") bad_tag = v;
    });
    CHECK(bad_tag == 1);
    CHECK(names.size() == 38 + kRefusals);
    CHECK(std::string(to_string(Refusal::stale_resync)) == "stale_resync");
}
