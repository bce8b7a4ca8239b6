// Data-path behaviour under live backend changes, with real packets through lb::Dataplane.
//
// The control core changes the service by building a new snapshot from the current one
// (Service::build(config, previous)) and switching each worker to it between bursts. These
// tests drive that sequence by hand: flows are created on one snapshot, the worker moves to the
// next, and the following packets show where the flows went (the rewritten destination, or the
// destination MAC in dsr), under which verdict and with which counter deltas. Expected backends
// are recomputed from the snapshot's own Maglev table and maglev_flow_hash, and every check
// that a choice *changed* or *did not change* first asserts that it could have.
// Also covered: the passive handshake counters, the incremental flush of a backend's flows,
// explain(), the exception path and clearing the counters. Pure C++: no EAL.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lib/lb/config.hpp"
#include "lib/lb/dataplane.hpp"
#include "lib/lb/service.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::lb;
using sluice::net::Family;
using sluice::net::IpAddr;
using sluice::net::Mac;
using sluice::test::Bytes;
using sluice::test::kAck;
using sluice::test::kPsh;
using sluice::test::kRst;
using sluice::test::kSyn;
using sluice::test::Pkt;

// --- The lab -------------------------------------------------------------------------------
// VIP 0 nat4:  nat     tcp 203.0.113.10:80    -> 198.51.100.21-23:8080
// VIP 1 full4: fullnat tcp 203.0.113.11:80    -> 198.51.100.31-33:8080 (SNAT 192.0.2.100)
// VIP 2 nat6:  nat     tcp [2001:db8::10]:80  -> [2001:db8:b::21-23]:8080
// VIP 3 full6: fullnat tcp [2001:db8::11]:80  -> [2001:db8:b::31-33]:8080 (SNAT 2001:db8:5::100)
// VIP 4 dsr4:  dsr     tcp 203.0.113.12:80    -> 198.51.100.41-42
constexpr const char* kClientMac = "02:00:00:00:00:c1";
constexpr const char* kPort0Mac = "02:00:00:00:00:a0";  // Sluice, client side
constexpr const char* kPort1Mac = "02:00:00:00:00:b0";  // Sluice, backend side
constexpr const char* kClient = "10.0.0.1";
constexpr const char* kClient6 = "2001:db8:c::1";
constexpr const char* kSelf = "192.0.2.1";
constexpr const char* kSelf6 = "2001:db8:5::1";
constexpr uint32_t kCapacity = 1024;  // flows per family

IpAddr ip(const char* s) {
    auto a = sluice::net::parse_ip(s);
    REQUIRE(a);
    return *a;
}

uint16_t raw(uint16_t port) { return htons(port); }

VipConf vip(const char* name, const char* addr, Mode mode, std::vector<const char*> backends, uint16_t be_port = 8080) {
    VipConf v;
    v.name = name;
    v.addr = ip(addr);
    v.port = 80;
    v.proto = Proto::tcp;
    v.mode = mode;
    v.table_size = 1021;
    for (const char* b : backends) v.backends.push_back({ip(b), be_port, 1, BackendState::up});
    return v;
}

// Every backend gets a distinct static MAC.
void add_neighbor(Config& c, const IpAddr& a) {
    const auto n = static_cast<uint8_t>(c.neighbors.size() + 1);
    c.neighbors.push_back({a, Mac{{0x02, 0, 0, 0, 0x0b, n}}});
}

Config lab() {
    Config c;
    c.vips = {
        vip("nat4", "203.0.113.10", Mode::nat, {"198.51.100.21", "198.51.100.22", "198.51.100.23"}),
        vip("full4", "203.0.113.11", Mode::fullnat, {"198.51.100.31", "198.51.100.32", "198.51.100.33"}),
        vip("nat6", "2001:db8::10", Mode::nat, {"2001:db8:b::21", "2001:db8:b::22", "2001:db8:b::23"}),
        vip("full6", "2001:db8::11", Mode::fullnat, {"2001:db8:b::31", "2001:db8:b::32", "2001:db8:b::33"}),
        vip("dsr4", "203.0.113.12", Mode::dsr, {"198.51.100.41", "198.51.100.42"}, 0),
    };
    c.snat_addrs = {ip("192.0.2.100"), ip("2001:db8:5::100")};
    c.self_addrs = {ip(kSelf), ip(kSelf6)};
    c.self_prefixes = {24, 64};
    for (const auto& v : c.vips)
        for (const auto& b : v.backends) add_neighbor(c, b.addr);
    return c;
}

VipConf& vip_conf(Config& c, const char* name) {
    for (auto& v : c.vips)
        if (v.name == name) return v;
    FAIL("no VIP " << name);
    return c.vips.front();
}
BackendConf& backend_conf(Config& c, const char* vip_name, const IpAddr& addr) {
    for (auto& b : vip_conf(c, vip_name).backends)
        if (b.addr == addr) return b;
    FAIL("no backend " << sluice::net::to_string(addr) << " in " << vip_name);
    return c.vips.front().backends.front();
}
void remove_backend(Config& c, const char* vip_name, const IpAddr& addr) {
    auto& bs = vip_conf(c, vip_name).backends;
    const auto n = bs.size();
    std::erase_if(bs, [&](const BackendConf& b) { return b.addr == addr; });
    REQUIRE(bs.size() + 1 == n);
}
void remove_neighbor(Config& c, const IpAddr& addr) {
    std::erase_if(c.neighbors, [&](const NeighborConf& n) { return n.addr == addr; });
}

WorkerEnv env(bool exception_path = false) {
    WorkerEnv e;
    e.client_port = 0;
    e.backend_port = 1;
    e.port_macs = {*sluice::net::parse_mac(kPort0Mac), *sluice::net::parse_mac(kPort1Mac)};
    e.exception_path = exception_path;
    return e;
}

// --- Counter deltas --------------------------------------------------------------------------
using Deltas = std::map<std::string, uint64_t>;

// Every scalar counter of a worker (for_each_scalar: none can be left out) and every drop
// reason, by name.
std::vector<std::pair<std::string, uint64_t>> scalars(const WorkerCounters& c) {
    std::vector<std::pair<std::string, uint64_t>> v;
    c.for_each_scalar([&](const char* name, uint64_t x) { v.emplace_back(name, x); });
    for (size_t i = 0; i < kDropReasons; ++i)
        v.emplace_back(std::string("drop.") + to_string(static_cast<Drop>(i)), c.drops[i]);
    return v;
}

Deltas diff(const WorkerCounters& a, const WorkerCounters& b) {
    const auto x = scalars(a), y = scalars(b);
    Deltas d;
    for (size_t i = 0; i < x.size(); ++i)
        if (x[i].second != y[i].second) d[x[i].first] = y[i].second - x[i].second;
    return d;
}
std::string str(const Deltas& d) {
    std::string s;
    for (const auto& [k, v] : d) s += k + "=" + std::to_string(v) + " ";
    return s;
}
const Deltas kHit = {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"flow_hits", 1}};
const Deltas kNewFlow = {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}};
const Deltas kMoved = {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"rescheduled", 1}};
const Deltas kReply = {{"rx", 1}, {"tx", 1}, {"replies", 1}};
Deltas dropped(const char* reason) { return {{"rx", 1}, {std::string("drop.") + reason, 1}}; }

// --- Frames ----------------------------------------------------------------------------------
uint16_t be16(const Bytes& b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }

struct Endpoint {
    IpAddr addr;
    uint16_t port = 0;  // host order
};
// Source or destination of an untagged IPv4/IPv6 TCP frame.
Endpoint endpoint(const Bytes& f, bool source) {
    Endpoint e;
    REQUIRE(f.size() >= 54);
    if (be16(f, 12) == 0x0800) {
        e.addr = IpAddr::v4(f.data() + (source ? 26 : 30));
        const size_t l4 = 14 + (f[14] & 0x0Fu) * 4;
        e.port = be16(f, l4 + (source ? 0 : 2));
    } else {
        REQUIRE(be16(f, 12) == 0x86DD);
        e.addr = IpAddr::v6(f.data() + (source ? 22 : 38));
        e.port = be16(f, 54 + (source ? 0 : 2));
    }
    return e;
}

// A TCP segment from the client to VIP `v` of the snapshot.
Bytes to_vip(const Service& s, uint16_t v, uint16_t sport, uint8_t flags, size_t payload = 0) {
    const VipEntry& e = s.vips()[v];
    const std::string dst = sluice::net::to_string(e.addr);
    Pkt p = Pkt().eth(kClientMac, kPort0Mac);
    if (e.addr.is_v4()) p.ipv4(kClient, dst);
    else p.ipv6(kClient6, dst);
    return p.tcp(sport, ntohs(e.port_raw), flags).payload(payload).build();
}
// The backend's answer to a frame Sluice sent it: addresses, ports and MACs swapped.
Bytes answer(const Bytes& sent, uint8_t flags) {
    const Endpoint src = endpoint(sent, true), dst = endpoint(sent, false);
    Mac be_mac, our_mac;
    std::memcpy(be_mac.bytes.data(), sent.data(), 6);
    std::memcpy(our_mac.bytes.data(), sent.data() + 6, 6);
    Pkt p = Pkt().eth(sluice::net::to_string(be_mac), sluice::net::to_string(our_mac));
    if (dst.addr.is_v4()) p.ipv4(sluice::net::to_string(dst.addr), sluice::net::to_string(src.addr));
    else p.ipv6(sluice::net::to_string(dst.addr), sluice::net::to_string(src.addr));
    return p.tcp(dst.port, src.port, flags).build();
}

struct Out {
    Verdict verdict;
    uint16_t out;
    Drop reason;
    Bytes bytes;
};

// The backend entry a forwarded frame went to: by destination address and port (nat,
// fullnat) or destination MAC (dsr), among the VIP's entries. -1 if none matches.
int backend_of(const Service& s, uint16_t v, const Out& o) {
    if (o.verdict != Verdict::tx) return -1;
    const bool dsr = s.vips()[v].mode == Mode::dsr;
    const Endpoint dst = endpoint(o.bytes, false);
    for (uint16_t b : s.vips()[v].backends) {
        const BackendEntry& e = s.backends()[b];
        if (dsr ? std::memcmp(e.mac.bytes.data(), o.bytes.data(), 6) == 0
                : e.addr == dst.addr && e.port_raw == raw(dst.port))
            return b;
    }
    return -1;
}

// The backend entry the snapshot's Maglev table gives a new flow of the lab client, or -1.
int maglev_pick(const Service& s, uint16_t v, uint16_t sport) {
    const VipEntry& e = s.vips()[v];
    const IpAddr client = ip(e.addr.is_v4() ? kClient : kClient6);
    const uint16_t pick = e.maglev.lookup(
        maglev_flow_hash(e.addr.family, client.bytes.data(), e.addr.bytes.data(), raw(sport), e.port_raw, 6));
    return pick == Maglev::kNoBackend ? -1 : e.backends[pick];
}

Dataplane::Explanation explain(const Dataplane& dp, uint16_t v, uint16_t sport, uint32_t now) {
    const VipEntry& e = dp.service().vips()[v];
    const IpAddr client = ip(e.addr.is_v4() ? kClient : kClient6);
    return dp.explain(e.addr.family, client.bytes.data(), e.addr.bytes.data(), raw(sport), e.port_raw, 6, now);
}

// --- Rig --------------------------------------------------------------------------------------
// One worker and the snapshots it has seen (kept alive, as RCU would until the worker moved on).
struct Rig {
    explicit Rig(const Config& c = lab(), const WorkerEnv& e = env(), bool require_neighbors = true) {
        auto s = Service::build(c, nullptr, require_neighbors);
        if (!s) FAIL("Service::build: " << s.error());
        snaps.push_back(std::make_shared<const Service>(std::move(*s)));
        WorkerEnv configured = e;
        configured.settings = data_path_settings(c);
        dp = std::make_unique<Dataplane>(snaps.back(), configured, kCapacity);
    }
    // Builds the next snapshot from the current one and switches the worker to it.
    const Service& apply(const Config& c, bool require_neighbors = true) {
        auto s = Service::build(c, &dp->service(), require_neighbors);
        if (!s) FAIL("Service::build: " << s.error());
        snaps.push_back(std::make_shared<const Service>(std::move(*s)));
        dp->set_service(snaps.back().get());
        return *snaps.back();
    }
    const Service& svc() const { return dp->service(); }
    uint16_t vip(const char* name) const {
        const int v = svc().find_vip_by_name(name);
        REQUIRE(v >= 0);
        return static_cast<uint16_t>(v);
    }
    Out run(const Bytes& in, uint32_t now, uint16_t in_port = 0) {
        std::vector<uint8_t> buf(2048, 0xEE);
        std::memcpy(buf.data(), in.data(), in.size());
        PacketRef p;
        p.data = buf.data();
        p.len = static_cast<uint32_t>(in.size());
        p.cap = static_cast<uint32_t>(buf.size());
        p.in_port = in_port;
        dp->process(&p, 1, now);
        return Out{p.verdict, p.out, p.reason, Bytes(buf.begin(), buf.begin() + p.len)};
    }
    // Runs one packet and checks its verdict and the exact counter deltas.
    Out expect(const Bytes& in, uint32_t now, Verdict verdict, const Deltas& deltas, uint16_t in_port = 0) {
        const WorkerCounters before = dp->counters();
        const Out o = run(in, now, in_port);
        CHECK(o.verdict == verdict);
        CHECK(str(diff(before, dp->counters())) == str(deltas));
        if (o.verdict == Verdict::tx) CHECK(sluice::test::checksums_ok(o.bytes));
        return o;
    }
    // Opens a TCP flow (SYN, then ACK: established) and returns the backend entry it went to.
    int open(uint16_t v, uint16_t sport, uint32_t now) {
        const Out syn = run(to_vip(svc(), v, sport, kSyn), now);
        REQUIRE(syn.verdict == Verdict::tx);
        const int b = backend_of(svc(), v, syn);
        REQUIRE(b >= 0);
        REQUIRE(b == maglev_pick(svc(), v, sport));
        const Out ack = run(to_vip(svc(), v, sport, kAck), now);
        REQUIRE(ack.verdict == Verdict::tx);
        REQUIRE(backend_of(svc(), v, ack) == b);
        return b;
    }

    std::vector<std::shared_ptr<const Service>> snaps;
    std::unique_ptr<Dataplane> dp;
};

struct Flow {
    uint16_t vip;
    uint16_t sport;
    int backend;
};

}  // namespace

TEST_CASE("live: a snapshot swap keeps established flows and sends new ones by the new Maglev", "[live]") {
    const Config a = lab();
    Rig rig(a);
    const Service& A = rig.svc();
    const char* names[] = {"nat4", "full4", "nat6", "full6"};
    std::vector<Flow> flows;
    for (const char* n : names)
        for (uint16_t sport = 1000; sport < 1064; ++sport) flows.push_back({rig.vip(n), sport, rig.open(rig.vip(n), sport, 0)});

    // B: each VIP gains a fourth backend and its second backend's weight goes from 1 to 3.
    Config b = a;
    for (const char* n : names) {
        VipConf& v = vip_conf(b, n);
        const IpAddr added = ip(v.addr.is_v4() ? (v.mode == Mode::nat ? "198.51.100.24" : "198.51.100.34")
                                               : (v.mode == Mode::nat ? "2001:db8:b::24" : "2001:db8:b::34"));
        v.backends.push_back({added, 8080, 1, BackendState::up});
        add_neighbor(b, added);
        v.backends[1].weight = 3;
    }
    const Service& B = rig.apply(b);

    // Indices are stable: A's entries are the same backends in B; the added ones come after.
    REQUIRE(B.backends().size() == A.backends().size() + 4);
    for (size_t i = 0; i < A.backends().size(); ++i) {
        CHECK(B.backends()[i].addr == A.backends()[i].addr);
        CHECK(B.backends()[i].port_raw == A.backends()[i].port_raw);
        CHECK_FALSE(B.backends()[i].removed);
    }
    for (size_t v = 0; v < A.vips().size(); ++v) CHECK(B.vips()[v].name == A.vips()[v].name);

    // Every established flow keeps its backend, even where B's Maglev would now choose another.
    size_t maglev_moved = 0;
    for (const Flow& f : flows) {
        INFO(B.vips()[f.vip].name << " client port " << f.sport);
        const Out o = rig.expect(to_vip(B, f.vip, f.sport, kAck | kPsh, 40), 10, Verdict::tx, kHit);
        CHECK(o.out == 1);
        CHECK(backend_of(B, f.vip, o) == f.backend);
        if (maglev_pick(B, f.vip, f.sport) != f.backend) ++maglev_moved;
    }
    CHECK(maglev_moved > 0);  // otherwise the test above could not tell a hit from a new pick

    // Replies of the old flows still translate back to the VIP and the client.
    for (const Flow& f : {flows[0], flows[64], flows[128], flows[192]}) {
        INFO(B.vips()[f.vip].name);
        const Out fwd = rig.run(to_vip(B, f.vip, f.sport, kAck), 20);
        REQUIRE(fwd.verdict == Verdict::tx);
        const Out rep = rig.expect(answer(fwd.bytes, kAck), 20, Verdict::tx, kReply, 1);
        CHECK(rep.out == 0);
        CHECK(endpoint(rep.bytes, true).addr == B.vips()[f.vip].addr);
        CHECK(endpoint(rep.bytes, true).port == 80);
        CHECK(endpoint(rep.bytes, false).port == f.sport);
    }

    // New flows go where B's Maglev says, and the added backends take some of them.
    std::set<int> added_used;
    for (const char* n : names) {
        const uint16_t v = rig.vip(n);
        for (uint16_t sport = 5000; sport < 5064; ++sport) {
            INFO(n << " client port " << sport);
            const Out o = rig.expect(to_vip(B, v, sport, kSyn), 30, Verdict::tx, kNewFlow);
            const int be = backend_of(B, v, o);
            CHECK(be == maglev_pick(B, v, sport));
            if (be >= static_cast<int>(A.backends().size())) added_used.insert(be);
        }
    }
    CHECK(added_used.size() == 4);
}

TEST_CASE("live: table=auto sizes a VIP's Maglev by its configured backends, not by their health", "[live]") {
    Config c = lab();
    VipConf& big = vip_conf(c, "nat4");
    big.table_size = 0;  // auto
    for (int i = 0; big.backends.size() < 33; ++i) {
        const IpAddr a = ip(fmt::format("198.51.101.{}", 10 + i).c_str());
        big.backends.push_back({a, 8080, 1, BackendState::up});
        add_neighbor(c, a);
    }
    Rig rig(c);
    const uint16_t v = rig.vip("nat4");
    CHECK(rig.svc().vips()[v].maglev.size() == 131101);  // >= 2048 x 33
    CHECK(rig.svc().vips()[rig.vip("full4")].maglev.size() == 1021);  // configured
    const uint64_t digest = rig.svc().vips()[v].maglev.digest();

    // A backend down: another table, the same size (a resize would re-map nearly every flow).
    vip_conf(c, "nat4").backends[5].state = BackendState::down;
    CHECK(rig.apply(c).vips()[v].maglev.size() == 131101);
    CHECK(rig.svc().vips()[v].maglev.digest() != digest);
    // Back up: the same table as at first, by content.
    vip_conf(c, "nat4").backends[5].state = BackendState::up;
    CHECK(rig.apply(c).vips()[v].maglev.digest() == digest);
    // One backend fewer in the configuration: 32 take the smallest auto size.
    vip_conf(c, "nat4").backends.pop_back();
    CHECK(rig.apply(c).vips()[v].maglev.size() == 65537);
}

TEST_CASE("live: flows of a down or disabled or draining backend follow the VIP's on-down policy", "[live]") {
    enum class Expect { moves, stays, dropped };
    struct Case {
        const char* what;
        BackendState state;
        DownPolicy policy;
        Expect expect;
    };
    const Case cases[] = {
        {"down, reschedule: moves to an up backend", BackendState::down, DownPolicy::reschedule, Expect::moves},
        {"disabled, reschedule: moves to an up backend", BackendState::disabled, DownPolicy::reschedule, Expect::moves},
        {"down, keep: stays", BackendState::down, DownPolicy::keep, Expect::stays},
        {"disabled, keep: stays", BackendState::disabled, DownPolicy::keep, Expect::stays},
        {"down, drop: dropped as backend_down", BackendState::down, DownPolicy::drop, Expect::dropped},
        {"disabled, drop: dropped as backend_down", BackendState::disabled, DownPolicy::drop, Expect::dropped},
        {"draining, reschedule: stays", BackendState::draining, DownPolicy::reschedule, Expect::stays},
        {"draining, drop: stays", BackendState::draining, DownPolicy::drop, Expect::stays},
    };
    for (const Case& c : cases) {
        for (const char* name : {"nat4", "full6"}) {
            INFO(c.what << " (" << name << ")");
            Config a = lab();
            vip_conf(a, name).on_down = c.policy;
            Rig rig(a);
            const uint16_t v = rig.vip(name);
            std::vector<Flow> flows;
            for (uint16_t sport = 1000; sport < 1032; ++sport) flows.push_back({v, sport, rig.open(v, sport, 0)});
            const int x = flows[0].backend;
            const auto on_x = std::count_if(flows.begin(), flows.end(), [&](const Flow& f) { return f.backend == x; });
            REQUIRE(on_x >= 1);
            REQUIRE(on_x < static_cast<long>(flows.size()));  // some flows are on other backends

            Config b = a;
            backend_conf(b, name, rig.svc().backends()[static_cast<size_t>(x)].addr).state = c.state;
            const Service& B = rig.apply(b);
            REQUIRE(B.backends()[static_cast<size_t>(x)].state == c.state);

            for (const Flow& f : flows) {
                INFO("client port " << f.sport << " on backend " << f.backend);
                const Bytes ack = to_vip(B, v, f.sport, kAck | kPsh, 10);
                if (f.backend != x || c.expect == Expect::stays) {
                    CHECK(backend_of(B, v, rig.expect(ack, 10, Verdict::tx, kHit)) == f.backend);
                } else if (c.expect == Expect::dropped) {
                    const Out o = rig.expect(ack, 10, Verdict::drop, dropped("backend_down"));
                    CHECK(o.reason == Drop::backend_down);
                } else {
                    const uint64_t x_new = rig.dp->counters().backends[static_cast<size_t>(x)].new_flows;
                    const Out o = rig.expect(ack, 10, Verdict::tx, kMoved);
                    const int to = backend_of(B, v, o);
                    CHECK(to != x);
                    CHECK(to == maglev_pick(B, v, f.sport));
                    REQUIRE(to >= 0);
                    CHECK(B.backends()[static_cast<size_t>(to)].state == BackendState::up);
                    CHECK(rig.dp->counters().backends[static_cast<size_t>(x)].new_flows == x_new);
                    // Moved once: the next packet hits the new flow.
                    CHECK(backend_of(B, v, rig.expect(ack, 11, Verdict::tx, kHit)) == to);
                }
            }
            // No state but up takes new flows.
            for (uint16_t sport = 6000; sport < 6128; ++sport) {
                const Out o = rig.run(to_vip(B, v, sport, kSyn), 20);
                REQUIRE(o.verdict == Verdict::tx);
                CHECK(backend_of(B, v, o) != x);
            }
        }
    }
}

TEST_CASE("live: flows of a removed backend reschedule whatever the on-down policy", "[live]") {
    for (DownPolicy policy : {DownPolicy::reschedule, DownPolicy::keep, DownPolicy::drop}) {
        INFO("on-down " << to_string(policy));
        Config a = lab();
        vip_conf(a, "nat4").on_down = policy;
        Rig rig(a);
        const uint16_t v = rig.vip("nat4");
        std::vector<Flow> flows;
        for (uint16_t sport = 1000; sport < 1032; ++sport) flows.push_back({v, sport, rig.open(v, sport, 0)});
        const int x = flows[0].backend;
        const IpAddr x_addr = rig.svc().backends()[static_cast<size_t>(x)].addr;

        Config b = a;
        remove_backend(b, "nat4", x_addr);
        const Service& B = rig.apply(b);
        REQUIRE(B.backends()[static_cast<size_t>(x)].removed);  // a tombstone keeps the index
        REQUIRE(B.backends()[static_cast<size_t>(x)].addr == x_addr);

        size_t moved = 0;
        for (const Flow& f : flows) {
            INFO("client port " << f.sport);
            const Bytes ack = to_vip(B, v, f.sport, kAck, 10);
            if (f.backend != x) {
                CHECK(backend_of(B, v, rig.expect(ack, 10, Verdict::tx, kHit)) == f.backend);
                continue;
            }
            const int to = backend_of(B, v, rig.expect(ack, 10, Verdict::tx, kMoved));
            CHECK(to != x);
            CHECK(to == maglev_pick(B, v, f.sport));
            ++moved;
        }
        CHECK(moved >= 1);
        CHECK(rig.dp->counters().rescheduled == moved);
        CHECK(rig.dp->counters().non_syn_miss == 0);
    }
}

TEST_CASE("live: a VIP whose backends are all down drops new flows as no_backend", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("nat4");
    const int b0 = rig.open(v, 1000, 0);
    REQUIRE(b0 >= 0);

    Config b = lab();
    for (auto& be : vip_conf(b, "nat4").backends) be.state = BackendState::down;
    const Service& B = rig.apply(b);
    for (uint16_t sport = 2000; sport < 2016; ++sport) {
        const Out o = rig.expect(to_vip(B, v, sport, kSyn), 10, Verdict::drop, dropped("no_backend"));
        CHECK(o.reason == Drop::no_backend);
    }
    // The established flow (on-down reschedule) leaves its down backend and finds none.
    rig.expect(to_vip(B, v, 1000, kAck), 10, Verdict::drop,
               {{"rx", 1}, {"rescheduled", 1}, {"drop.no_backend", 1}});
    // Down, disabled and draining mixed: still nothing takes new flows.
    Config c = lab();
    auto& bs = vip_conf(c, "nat4").backends;
    bs[0].state = BackendState::down;
    bs[1].state = BackendState::disabled;
    bs[2].state = BackendState::draining;
    const Service& C = rig.apply(c);
    rig.expect(to_vip(C, v, 3000, kSyn), 20, Verdict::drop, dropped("no_backend"));
    // Other VIPs are untouched.
    rig.expect(to_vip(C, rig.vip("nat6"), 3000, kSyn), 20, Verdict::tx, kNewFlow);
}

TEST_CASE("live: a backend without a MAC takes no new flows", "[live]") {
    Config c = lab();
    const IpAddr x = ip("198.51.100.22");
    remove_neighbor(c, x);
    REQUIRE_FALSE(Service::build(c).ok());  // required by default
    // Every nat6 backend lacks a MAC too.
    for (const auto& be : vip_conf(c, "nat6").backends) remove_neighbor(c, be.addr);
    Rig rig(c, env(), false);
    const Service& S = rig.svc();
    const uint16_t v = rig.vip("nat4");
    const int xi = S.find_backend(v, x, 8080);
    REQUIRE(xi >= 0);
    REQUIRE_FALSE(S.backends()[static_cast<size_t>(xi)].has_mac);

    // Maglev weight 0: no table entry names it, and no new flow goes there.
    const auto& members = S.vips()[v].backends;
    const auto pos = static_cast<uint16_t>(std::find(members.begin(), members.end(), xi) - members.begin());
    const auto& table = S.vips()[v].maglev.table();
    CHECK(std::count(table.begin(), table.end(), pos) == 0);
    std::set<int> used;
    for (uint16_t sport = 1000; sport < 1128; ++sport) {
        const Out o = rig.expect(to_vip(S, v, sport, kSyn), 0, Verdict::tx, kNewFlow);
        used.insert(backend_of(S, v, o));
    }
    CHECK(used.size() == 2);
    CHECK(used.count(xi) == 0);

    // No backend of nat6 is reachable: no_backend.
    const Out o = rig.expect(to_vip(S, rig.vip("nat6"), 1000, kSyn), 0, Verdict::drop, dropped("no_backend"));
    CHECK(o.reason == Drop::no_backend);
}

TEST_CASE("live: a flow whose backend loses its MAC waits for it as no_neighbor", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("nat4");
    const int b = rig.open(v, 1000, 0);
    Config c = lab();
    remove_neighbor(c, rig.svc().backends()[static_cast<size_t>(b)].addr);
    const Service& B = rig.apply(c, false);
    REQUIRE_FALSE(B.backends()[static_cast<size_t>(b)].has_mac);
    // The flow is still its (the backend is up); its packets wait, they do not move.
    rig.expect(to_vip(B, v, 1000, kAck), 10, Verdict::drop,
               {{"rx", 1}, {"flow_hits", 1}, {"drop.no_neighbor", 1}});
    // Once the MAC is known again, the same flow resumes on the same backend.
    const Service& C = rig.apply(lab());
    CHECK(backend_of(C, v, rig.expect(to_vip(C, v, 1000, kAck), 20, Verdict::tx, kHit)) == b);
}

TEST_CASE("live: passive health counts failed handshakes per backend", "[live]") {
    for (const char* name : {"nat4", "full4", "nat6", "full6"}) {
        INFO(name);
        const auto failures = [](const Rig& r, int b) {
            return r.dp->counters().backends[static_cast<size_t>(b)].handshake_failures;
        };
        const auto total = [](const Rig& r) {
            uint64_t t = 0;
            for (const auto& c : r.dp->counters().backends) t += c.handshake_failures;
            return t;
        };
        {
            // The client repeats its SYN before any answer: one failure on that backend.
            Rig rig;
            const uint16_t v = rig.vip(name);
            const Out syn = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 0);
            const int b = backend_of(rig.svc(), v, syn);
            REQUIRE(b >= 0);
            CHECK(failures(rig, b) == 0);
            rig.expect(to_vip(rig.svc(), v, 1000, kSyn), 1000, Verdict::tx, kHit);
            CHECK(failures(rig, b) == 1);
            CHECK(total(rig) == 1);
        }
        {
            // The backend answered with a SYN-ACK: a repeated SYN is not its failure.
            Rig rig;
            const uint16_t v = rig.vip(name);
            const Out syn = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 0);
            REQUIRE(syn.verdict == Verdict::tx);
            rig.expect(answer(syn.bytes, kSyn | kAck), 1, Verdict::tx, kReply, 1);
            rig.expect(to_vip(rig.svc(), v, 1000, kSyn), 1000, Verdict::tx, kHit);
            CHECK(total(rig) == 0);
        }
        {
            // The backend refuses: an RST answering the SYN is one failure.
            Rig rig;
            const uint16_t v = rig.vip(name);
            const Out syn = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 0);
            const int b = backend_of(rig.svc(), v, syn);
            REQUIRE(b >= 0);
            rig.expect(answer(syn.bytes, kRst | kAck), 1, Verdict::tx, kReply, 1);
            CHECK(failures(rig, b) == 1);
            CHECK(total(rig) == 1);
        }
    }
}

TEST_CASE("live: in dsr a retransmitted SYN is a failed handshake", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("dsr4");
    const Out syn = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 0);
    const int b = backend_of(rig.svc(), v, syn);
    REQUIRE(b >= 0);
    rig.expect(to_vip(rig.svc(), v, 1000, kSyn), 1000, Verdict::tx, kHit);
    CHECK(rig.dp->counters().backends[static_cast<size_t>(b)].handshake_failures == 1);
    // A completed handshake (the client's ACK) is not one.
    const Out syn2 = rig.run(to_vip(rig.svc(), v, 1001, kSyn), 0);
    const int b2 = backend_of(rig.svc(), v, syn2);
    REQUIRE(b2 >= 0);
    const uint64_t before = rig.dp->counters().backends[static_cast<size_t>(b2)].handshake_failures;
    rig.expect(to_vip(rig.svc(), v, 1001, kAck), 10, Verdict::tx, kHit);
    CHECK(rig.dp->counters().backends[static_cast<size_t>(b2)].handshake_failures == before);
}

TEST_CASE("live: flush_removed then expire removes only the removed backend's flows a budget at a time", "[live]") {
    Rig rig;
    const uint16_t v4 = rig.vip("nat4"), v6 = rig.vip("nat6");
    std::vector<Flow> flows;
    for (uint16_t sport = 1000; sport < 1100; ++sport) flows.push_back({v4, sport, rig.open(v4, sport, 0)});
    for (uint16_t sport = 1000; sport < 1020; ++sport) rig.open(v6, sport, 0);
    const int x = flows[0].backend;
    const auto on_x = static_cast<uint32_t>(
        std::count_if(flows.begin(), flows.end(), [&](const Flow& f) { return f.backend == x; }));
    REQUIRE(on_x >= 1);
    REQUIRE(on_x < flows.size());
    REQUIRE(rig.dp->flows4().size() == 100);
    REQUIRE(rig.dp->flows6().size() == 20);

    Config b = lab();
    remove_backend(b, "nat4", rig.svc().backends()[static_cast<size_t>(x)].addr);
    const Service& B = rig.apply(b);
    CHECK_FALSE(rig.dp->flush_pending());
    rig.dp->flush_removed();
    CHECK(rig.dp->flush_pending());

    // A budget of 64 records per call: capacity / 64 calls, the table shrinking monotonically.
    constexpr uint32_t kBudget = 64;
    uint32_t calls = 0;
    uint32_t last = rig.dp->flows4().size();
    while (rig.dp->flush_pending() && calls < 1000) {
        rig.dp->expire(100, kBudget);  // long before any timeout: only the flush removes flows
        ++calls;
        CHECK(rig.dp->flows4().size() <= last);
        last = rig.dp->flows4().size();
    }
    CHECK(calls == kCapacity / kBudget);
    CHECK_FALSE(rig.dp->flush_pending());
    CHECK(rig.dp->flows4().size() == 100 - on_x);
    CHECK(rig.dp->flows6().size() == 20);
    CHECK(rig.dp->counters().rescheduled == 0);

    // Both directions of the flushed flows are gone; the others still forward and translate.
    for (const Flow& f : flows) {
        INFO("client port " << f.sport);
        if (f.backend == x) {
            const IpAddr& xa = B.backends()[static_cast<size_t>(x)].addr;
            const Bytes rep = Pkt()
                                  .eth("02:00:00:00:0b:02", kPort1Mac)
                                  .ipv4(sluice::net::to_string(xa), kClient)
                                  .tcp(8080, f.sport, kAck)
                                  .build();
            rig.expect(rep, 200, Verdict::drop, dropped("no_flow"), 1);
        } else {
            const Out o = rig.expect(to_vip(B, v4, f.sport, kAck), 200, Verdict::tx, kHit);
            CHECK(backend_of(B, v4, o) == f.backend);
            rig.expect(answer(o.bytes, kAck), 200, Verdict::tx, kReply, 1);
        }
    }
}

TEST_CASE("live: explain names the flow's backend or Maglev's pick or why there is none", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("nat4"), v6 = rig.vip("full6");
    const int b = rig.open(v, 1000, 0);
    const int b6 = rig.open(v6, 1000, 0);
    const WorkerCounters before = rig.dp->counters();

    // An existing flow: a hit on its backend.
    auto e = explain(*rig.dp, v, 1000, 1);
    CHECK(e.how == Dataplane::Explanation::How::flow_hit);
    CHECK(e.vip == v);
    CHECK(e.backend == b);
    CHECK_FALSE(e.would_reschedule);
    e = explain(*rig.dp, v6, 1000, 1);
    CHECK(e.how == Dataplane::Explanation::How::flow_hit);
    CHECK(e.backend == b6);

    // A new tuple: Maglev's pick, which is where its first packet then goes.
    std::set<int> picks;
    for (uint16_t sport = 2000; sport < 2032; ++sport) {
        INFO("client port " << sport);
        for (uint16_t vi : {v, v6}) {
            e = explain(*rig.dp, vi, sport, 1);
            CHECK(e.how == Dataplane::Explanation::How::maglev);
            CHECK(e.vip == vi);
            CHECK(e.backend == maglev_pick(rig.svc(), vi, sport));
            picks.insert(e.backend);
        }
    }
    CHECK(picks.size() == 6);  // spread over the backends of both VIPs
    CHECK(str(diff(before, rig.dp->counters())) == "");  // explaining changed nothing
    CHECK(rig.dp->flows4().size() == 1);
    e = explain(*rig.dp, v, 2000, 1);
    const Out o = rig.run(to_vip(rig.svc(), v, 2000, kSyn), 1);
    CHECK(backend_of(rig.svc(), v, o) == e.backend);

    // Not a VIP: another address, or the VIP's address on another port.
    const IpAddr client = ip(kClient), other = ip("203.0.113.99"), vaddr = ip("203.0.113.10");
    e = rig.dp->explain(Family::v4, client.bytes.data(), other.bytes.data(), raw(1000), raw(80), 6, 1);
    CHECK(e.how == Dataplane::Explanation::How::no_vip);
    CHECK(e.vip == Service::kNoVip);
    e = rig.dp->explain(Family::v4, client.bytes.data(), vaddr.bytes.data(), raw(1000), raw(81), 6, 1);
    CHECK(e.how == Dataplane::Explanation::How::no_vip);

    // The flow's backend goes down: still a hit, flagged as about to move; a packet moves it.
    Config down = lab();
    backend_conf(down, "nat4", rig.svc().backends()[static_cast<size_t>(b)].addr).state = BackendState::down;
    const Service& B = rig.apply(down);
    e = explain(*rig.dp, v, 1000, 2);
    CHECK(e.how == Dataplane::Explanation::How::flow_hit);
    CHECK(e.backend == b);
    CHECK(e.would_reschedule);
    const Out moved = rig.expect(to_vip(B, v, 1000, kAck), 2, Verdict::tx, kMoved);
    e = explain(*rig.dp, v, 1000, 3);
    CHECK(e.how == Dataplane::Explanation::How::flow_hit);
    CHECK(e.backend == backend_of(B, v, moved));
    CHECK_FALSE(e.would_reschedule);

    // No backend up: no_backend for a new tuple.
    Config none = lab();
    for (auto& be : vip_conf(none, "nat4").backends) be.state = BackendState::disabled;
    rig.apply(none);
    e = explain(*rig.dp, v, 3000, 4);
    CHECK(e.how == Dataplane::Explanation::How::no_backend);
    CHECK(e.vip == v);
}

TEST_CASE("live: traffic for Sluice's own addresses goes to the exception path or is dropped without one", "[live]") {
    struct Row {
        const char* what;
        Bytes in;
        Drop without;  // the drop reason when there is no exception path
    };
    const Pkt from_lan = Pkt().eth("02:00:00:00:0b:01", kPort1Mac);
    const std::vector<Row> rows = {
        {"TCP to a --self address matching no flow",
         Pkt(from_lan).ipv4("198.51.100.21", kSelf).tcp(8080, 45000, kSyn | kAck).build(), Drop::for_self},
        {"TCP to the IPv6 --self address", Pkt(from_lan).ipv6("2001:db8:b::21", kSelf6).tcp(22, 45000, kAck).build(),
         Drop::for_self},
        {"ICMP echo to a --self address", Pkt(from_lan).ipv4("198.51.100.21", kSelf).icmp(8).payload(16).build(),
         Drop::for_self},
        {"ARP reply (op 2) to Sluice",
         Pkt(from_lan).arp(2, "02:00:00:00:0b:01", "198.51.100.21", kPort1Mac, kSelf).build(), Drop::arp_ignored},
        {"gratuitous ARP request (a backend announcing a new MAC)",
         Pkt().eth("02:00:00:00:0b:09", "ff:ff:ff:ff:ff:ff")
             .arp(1, "02:00:00:00:0b:09", "198.51.100.21", "00:00:00:00:00:00", "198.51.100.21")
             .build(),
         Drop::arp_ignored},
    };
    for (bool exception_path : {true, false}) {
        Rig rig(lab(), env(exception_path));
        for (const Row& r : rows) {
            INFO(r.what << (exception_path ? " (exception path)" : " (none)"));
            const Out o = exception_path
                              ? rig.expect(r.in, 0, Verdict::control, {{"rx", 1}, {"to_control", 1}}, 1)
                              : rig.expect(r.in, 0, Verdict::drop, dropped(to_string(r.without)), 1);
            if (!exception_path) CHECK(o.reason == r.without);
            CHECK(o.bytes == r.in);  // handed over or dropped, never rewritten
        }
    }
}

TEST_CASE("live: a gratuitous ARP claiming Sluice's own address is answered, not passed on", "[live]") {
    Rig rig(lab(), env(true));
    const Bytes in = Pkt()
                         .eth("02:00:00:00:0b:09", "ff:ff:ff:ff:ff:ff")
                         .arp(1, "02:00:00:00:0b:09", kSelf, "00:00:00:00:00:00", kSelf)
                         .build();
    const uint64_t replies = rig.dp->counters().arp_replies, to_control = rig.dp->counters().to_control;
    const Out o = rig.run(in, 0, 1);
    CHECK(o.verdict == Verdict::tx);
    CHECK(o.out == 1);
    CHECK(rig.dp->counters().arp_replies == replies + 1);
    CHECK(rig.dp->counters().to_control == to_control);
    CHECK(o.bytes == Pkt()
                         .eth(kPort1Mac, "02:00:00:00:0b:09")
                         .arp(2, kPort1Mac, kSelf, "02:00:00:00:0b:09", kSelf)
                         .build());
}

TEST_CASE("live: clearing the counters zeroes them (not handshake failures) and keeps the slots", "[live]") {
    Rig rig(lab(), env(true));
    const uint16_t v = rig.vip("nat4");
    // Traffic that moves most counters: flows, replies, a reschedule, drops, the exception path.
    const int b = rig.open(v, 1000, 0);
    const Out syn = rig.run(to_vip(rig.svc(), v, 1001, kSyn), 0);
    rig.run(answer(syn.bytes, kRst), 1, 1);
    rig.run(to_vip(rig.svc(), v, 1002, kAck), 1);
    rig.run(Pkt().eth(kClientMac, "ff:ff:ff:ff:ff:ff").arp_request(kClientMac, kClient, "203.0.113.10").build(), 1);
    rig.run(Pkt().eth(kClientMac, kPort0Mac).ipv4(kClient, kSelf).icmp(8).build(), 1);
    rig.run(Pkt().eth(kClientMac, kPort0Mac).ipv4(kClient, "203.0.113.10").tcp(1, 81).build(), 1);
    Config c = lab();
    backend_conf(c, "nat4", rig.svc().backends()[static_cast<size_t>(b)].addr).state = BackendState::down;
    rig.apply(c);
    rig.run(to_vip(rig.svc(), v, 1000, kAck), 2);

    WorkerCounters& wc = rig.dp->counters();
    for (const char* n : {"rx", "tx", "forwarded", "replies", "arp_replies", "non_syn_miss", "maglev_picks",
                          "flow_hits", "rescheduled", "to_control", "drop.no_vip"}) {
        INFO(n);
        const auto all = scalars(wc);
        CHECK(std::find_if(all.begin(), all.end(), [&](const auto& p) { return p.first == n; })->second > 0);
    }
    // Counters this rig cannot move (two workers, ND) are set by hand, so clear() must zero them too.
    wc.redirected_in = wc.redirected_out = wc.nd_replies = 5;
    wc.drops.fill(3);
    for (auto& t : wc.backends) t = TrafficCounters{1, 2, 3, 4};
    const size_t nv = wc.vips.size(), nb = wc.backends.size();
    const auto* vdata = wc.vips.data();
    const auto* bdata = wc.backends.data();
    REQUIRE(nv == rig.svc().vips().size());
    REQUIRE(nb == rig.svc().backends().size());
    CHECK(wc.vips[v].packets > 0);

    wc.clear();
    for (const auto& [n, x] : scalars(wc)) {
        INFO(n);
        CHECK(x == 0);
    }
    CHECK(wc.total_drops() == 0);
    REQUIRE(wc.vips.size() == nv);
    REQUIRE(wc.backends.size() == nb);
    CHECK(wc.vips.data() == vdata);  // in place: a reader walking them is never left dangling
    CHECK(wc.backends.data() == bdata);
    for (const auto& t : wc.vips) CHECK((t.packets | t.bytes | t.new_flows) == 0);
    for (const auto& t : wc.backends) CHECK((t.packets | t.bytes | t.new_flows) == 0);
    // Handshake failures stay: passive detection reads their increase.
    for (const auto& t : wc.backends) CHECK(t.handshake_failures == 4);

    // Counting resumes from zero.
    rig.expect(to_vip(rig.svc(), v, 1000, kAck), 3, Verdict::tx, kHit);
    CHECK(wc.rx == 1);
}

TEST_CASE("live: a new handshake on a closing flow's tuple starts unanswered", "[live]") {
    // SYN, SYN-ACK, ACK, FIN: then the client reuses the tuple. Its unanswered SYN (repeated)
    // and a refusal of it must both count, although the first connection was answered.
    for (const bool refused : {false, true}) {
        INFO((refused ? "refused" : "unanswered"));
        Rig rig;
        const uint16_t v = rig.vip("nat4");
        const Out syn = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 0);
        const int b = backend_of(rig.svc(), v, syn);
        REQUIRE(b >= 0);
        rig.expect(answer(syn.bytes, kSyn | kAck), 1, Verdict::tx, kReply, 1);
        rig.expect(to_vip(rig.svc(), v, 1000, kAck), 2, Verdict::tx, kHit);
        rig.expect(to_vip(rig.svc(), v, 1000, sluice::test::kFin | kAck), 3, Verdict::tx, kHit);
        const Out again = rig.run(to_vip(rig.svc(), v, 1000, kSyn), 100);
        REQUIRE(again.verdict == Verdict::tx);
        if (refused)
            rig.expect(answer(again.bytes, kRst | kAck), 101, Verdict::tx, kReply, 1);
        else
            rig.expect(to_vip(rig.svc(), v, 1000, kSyn), 1100, Verdict::tx, kHit);
        CHECK(rig.dp->counters().backends[static_cast<size_t>(b)].handshake_failures == 1);
    }
}

TEST_CASE("live: a second flush during a sweep still covers the whole table", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("nat4");
    std::vector<Flow> flows;
    for (uint16_t sport = 1000; sport < 1100; ++sport) flows.push_back({v, sport, rig.open(v, sport, 0)});
    const int x = flows[0].backend;
    int y = -1;
    for (const Flow& f : flows)
        if (f.backend != x) y = f.backend;
    REQUIRE(y >= 0);
    const auto on = [&](int b) {
        return static_cast<uint32_t>(std::count_if(flows.begin(), flows.end(), [&](const Flow& f) { return f.backend == b; }));
    };
    Config c = lab();
    remove_backend(c, "nat4", rig.svc().backends()[static_cast<size_t>(x)].addr);
    rig.apply(c);
    rig.dp->flush_removed();
    rig.dp->expire(100, 512);  // the sweep is past every record in use
    remove_backend(c, "nat4", rig.svc().backends()[static_cast<size_t>(y)].addr);
    rig.apply(c);
    rig.dp->flush_removed();
    for (int i = 0; i < 1000 && rig.dp->flush_pending(); ++i) rig.dp->expire(100, 512);
    CHECK_FALSE(rig.dp->flush_pending());
    CHECK(rig.dp->flows4().size() == 100 - on(x) - on(y));
}

TEST_CASE("live: a backend added back before the sweep reaches its flows keeps them", "[live]") {
    Rig rig;
    const uint16_t v = rig.vip("nat4");
    for (uint16_t sport = 1000; sport < 1100; ++sport) rig.open(v, sport, 0);
    Config c = lab();
    remove_backend(c, "nat4", rig.svc().backends()[rig.svc().vips()[v].backends[0]].addr);
    rig.apply(c);
    rig.dp->flush_removed();
    rig.apply(lab());  // back again, same index
    for (int i = 0; i < 1000 && rig.dp->flush_pending(); ++i) rig.dp->expire(100, 512);
    CHECK(rig.dp->flows4().size() == 100);
}
