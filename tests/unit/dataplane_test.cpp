// Component tests of lb::Dataplane with an lb::Service built from an lb::Config (no DPDK).
//
// Each scenario is a table: rows run in order against one worker (or two), each with a
// description, an input frame built with the fluent builder, the expected verdict, output port
// or worker, drop reason, the exact expected output frame (built with the builder, so every
// rewritten checksum is checked against the builder's independent RFC 1071 arithmetic), and
// the exact set of worker counters that must change. Toeplitz queues and NAT owners are
// recomputed with toeplitz_ref, not with the Dataplane's own table.
// Pure C++: no EAL.
#include "lib/lb/dataplane.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lib/lb/config.hpp"
#include "lib/lb/service.hpp"
#include "lib/lb/snat_ports.hpp"
#include "lib/lb/stats_json.hpp"
#include "lib/net/toeplitz.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::lb;
using sluice::net::IpAddr;
using sluice::net::Mac;
using sluice::test::Bytes;
using sluice::test::Pkt;
using sluice::test::kAck;
using sluice::test::kFin;
using sluice::test::kPsh;
using sluice::test::kRst;
using sluice::test::kSyn;

// --- The lab -------------------------------------------------------------------------------
constexpr const char* kClientMac = "02:00:00:00:00:c1";  // the client-side router
constexpr const char* kPort0Mac = "02:00:00:00:00:a0";   // Sluice, client port
constexpr const char* kPort1Mac = "02:00:00:00:00:b0";   // Sluice, backend port
constexpr const char* kBcast = "ff:ff:ff:ff:ff:ff";

constexpr const char* kClient = "10.0.0.1";
constexpr const char* kClient6 = "2001:db8:c::1";

// VIP 0: nat tcp 203.0.113.10:80 -> 198.51.100.11:8080
constexpr const char* kVipNat = "203.0.113.10";
constexpr const char* kBe1 = "198.51.100.11";
constexpr const char* kBe1Mac = "02:00:00:00:00:11";
// VIP 1: fullnat tcp 203.0.113.11:80 -> 198.51.100.12:8080, SNAT 192.0.2.100
constexpr const char* kVipFull = "203.0.113.11";
constexpr const char* kBe2 = "198.51.100.12";
constexpr const char* kBe2Mac = "02:00:00:00:00:12";
constexpr const char* kSnat = "192.0.2.100";
// VIP 2: dsr tcp 203.0.113.12:80 -> 198.51.100.13
constexpr const char* kVipDsr = "203.0.113.12";
constexpr const char* kBe3 = "198.51.100.13";
constexpr const char* kBe3Mac = "02:00:00:00:00:13";
// VIP 3: nat udp 203.0.113.10:53 -> 198.51.100.11:5353
// VIP 4: nat tcp [2001:db8::10]:80 -> [2001:db8:b::11]:8080
constexpr const char* kVip6Nat = "2001:db8::10";
constexpr const char* kBe6a = "2001:db8:b::11";
constexpr const char* kBe6aMac = "02:00:00:00:01:11";
// VIP 5: fullnat tcp [2001:db8::11]:80 -> [2001:db8:b::12]:8080, SNAT 2001:db8:5::100
constexpr const char* kVip6Full = "2001:db8::11";
constexpr const char* kBe6b = "2001:db8:b::12";
constexpr const char* kBe6bMac = "02:00:00:00:01:12";
constexpr const char* kSnat6 = "2001:db8:5::100";
// VIP 6: nat udp [2001:db8::10]:53 -> [2001:db8:b::11]:5353
// VIP 7: fullnat udp 203.0.113.11:53 -> 198.51.100.12:5353
// VIP 8: nat tcp 203.0.113.30:80 -> 198.51.100.21/22/23:80
constexpr const char* kVipPool = "203.0.113.30";
// Sluice's own addresses.
constexpr const char* kSelf = "192.0.2.1";
constexpr const char* kSelf6 = "2001:db8:5::1";

IpAddr ip(const char* s) {
    auto a = sluice::net::parse_ip(s);
    REQUIRE(a);
    return *a;
}
Mac macv(const char* s) {
    auto m = sluice::net::parse_mac(s);
    REQUIRE(m);
    return *m;
}

VipConf vip(const char* name, const char* addr, uint16_t port, Proto proto, Mode mode,
            std::vector<BackendConf> backends) {
    VipConf v;
    v.name = name;
    v.addr = ip(addr);
    v.port = port;
    v.proto = proto;
    v.mode = mode;
    v.table_size = 1021;
    v.backends = std::move(backends);
    return v;
}

Config lab_config() {
    Config c;
    c.vips = {
        vip("nat4", kVipNat, 80, Proto::tcp, Mode::nat, {{ip(kBe1), 8080, 1}}),
        vip("full4", kVipFull, 80, Proto::tcp, Mode::fullnat, {{ip(kBe2), 8080, 1}}),
        vip("dsr4", kVipDsr, 80, Proto::tcp, Mode::dsr, {{ip(kBe3), 0, 1}}),
        vip("dns4", kVipNat, 53, Proto::udp, Mode::nat, {{ip(kBe1), 5353, 1}}),
        vip("nat6", kVip6Nat, 80, Proto::tcp, Mode::nat, {{ip(kBe6a), 8080, 1}}),
        vip("full6", kVip6Full, 80, Proto::tcp, Mode::fullnat, {{ip(kBe6b), 8080, 1}}),
        vip("dns6", kVip6Nat, 53, Proto::udp, Mode::nat, {{ip(kBe6a), 5353, 1}}),
        vip("fulldns4", kVipFull, 53, Proto::udp, Mode::fullnat, {{ip(kBe2), 5353, 1}}),
        vip("pool", kVipPool, 80, Proto::tcp, Mode::nat,
            {{ip("198.51.100.21"), 0, 1}, {ip("198.51.100.22"), 0, 1}, {ip("198.51.100.23"), 0, 1}}),
    };
    c.snat_addrs = {ip(kSnat), ip(kSnat6)};
    c.self_addrs = {ip(kSelf), ip(kSelf6)};
    c.neighbors = {
        {ip(kBe1), macv(kBe1Mac)},           {ip(kBe2), macv(kBe2Mac)},
        {ip(kBe3), macv(kBe3Mac)},
        {ip(kBe6a), macv(kBe6aMac)},         {ip(kBe6b), macv(kBe6bMac)},
        {ip("198.51.100.21"), macv("02:00:00:00:00:21")}, {ip("198.51.100.22"), macv("02:00:00:00:00:22")},
        {ip("198.51.100.23"), macv("02:00:00:00:00:23")},
    };
    return c;
}

WorkerEnv env(uint16_t worker = 0, uint16_t workers = 1) {
    WorkerEnv e;
    e.worker_id = worker;
    e.nb_workers = workers;
    e.client_port = 0;
    e.backend_port = 1;
    e.port_macs = {macv(kPort0Mac), macv(kPort1Mac)};
    e.reta = sluice::net::Reta::round_robin(workers);
    return e;
}

// --- Counter deltas --------------------------------------------------------------------------
using Deltas = std::map<std::string, uint64_t>;

// Every scalar counter (for_each_scalar: none can be left out) and every drop reason.
Deltas diff(const WorkerCounters& a, const WorkerCounters& b) {
    std::vector<uint64_t> before;
    a.for_each_scalar([&](const char*, uint64_t v) { before.push_back(v); });
    Deltas d;
    size_t i = 0;
    b.for_each_scalar([&](const char* n, uint64_t v) {
        if (v != before[i]) d[n] = v - before[i];
        ++i;
    });
    for (size_t r = 0; r < kDropReasons; ++r)
        if (a.drops[r] != b.drops[r]) d[std::string("drop.") + to_string(static_cast<Drop>(r))] = b.drops[r] - a.drops[r];
    return d;
}
std::string str(const Deltas& d) {
    std::string s;
    for (const auto& [k, v] : d) s += k + "=" + std::to_string(v) + " ";
    return s;
}
// Shorthands for the usual sets.
const Deltas kNewFlow = {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}};
const Deltas kHit = {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"flow_hits", 1}};
const Deltas kReply = {{"rx", 1}, {"tx", 1}, {"replies", 1}};
Deltas dropped(const char* reason) { return {{"rx", 1}, {std::string("drop.") + reason, 1}}; }

const char* name(Verdict v) {
    switch (v) {
        case Verdict::tx: return "tx";
        case Verdict::drop: return "drop";
        case Verdict::redirect: return "redirect";
        case Verdict::control: return "control";
    }
    return "?";
}

uint16_t be16(const Bytes& b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }

// Runs f in a child process; returns the signal that killed it, or 0 if it returned.
template <class F>
int crash_signal(F&& f) {
    const pid_t pid = fork();
    if (pid == 0) {
        f();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

// --- Rig --------------------------------------------------------------------------------------
struct Out {
    Verdict verdict;
    uint16_t out;
    Drop reason;
    Bytes bytes;
};

struct Rig {
    explicit Rig(const Config& c = lab_config(), const WorkerEnv& e = env(), uint32_t capacity = 1024) {
        auto s = Service::build(c);
        if (!s) FAIL("Service::build: " << s.error());
        svc = std::make_shared<const Service>(std::move(*s));
        WorkerEnv configured = e;
        configured.settings = data_path_settings(c);
        dp = std::make_unique<Dataplane>(svc, configured, capacity);
    }
    Out run(const Bytes& in, uint32_t now = 0, uint16_t in_port = 0, bool redirected = false) {
        std::vector<uint8_t> buf(2048, 0xEE);
        std::memcpy(buf.data(), in.data(), in.size());
        PacketRef p;
        p.data = buf.data();
        p.len = static_cast<uint32_t>(in.size());
        p.cap = static_cast<uint32_t>(buf.size());
        p.in_port = in_port;
        p.redirected = redirected;
        dp->process(&p, 1, now);
        return Out{p.verdict, p.out, p.reason, Bytes(buf.begin(), buf.begin() + p.len)};
    }
    std::shared_ptr<const Service> svc;
    std::unique_ptr<Dataplane> dp;
};

struct Row {
    const char* what;
    Bytes in;
    Verdict verdict;
    uint16_t out;  // TX port, or worker for a redirect
    std::optional<Drop> reason;
    Bytes want;  // the expected frame after a tx (a redirect must leave the frame untouched)
    Deltas deltas;
    uint32_t now = 0;
    uint16_t in_port = 0;
    bool redirected = false;
};

Row tx(const char* what, Bytes in, uint16_t port, Bytes want, Deltas d, uint32_t now = 0, uint16_t in_port = 0,
       bool redirected = false) {
    return Row{what, std::move(in), Verdict::tx, port, std::nullopt, std::move(want), std::move(d), now, in_port, redirected};
}
Row drop(const char* what, Bytes in, Drop reason, Deltas d, uint32_t now = 0, uint16_t in_port = 0,
         bool redirected = false) {
    return Row{what, std::move(in), Verdict::drop, 0, reason, {}, std::move(d), now, in_port, redirected};
}
Row redirect(const char* what, Bytes in, uint16_t worker, Deltas d, uint32_t now = 0, uint16_t in_port = 0) {
    return Row{what, std::move(in), Verdict::redirect, worker, std::nullopt, {}, std::move(d), now, in_port, false};
}

// True if the frame's (innermost) ethertype is IPv4 or IPv6, and it is not a fragment (whose
// transport checksum covers bytes it does not carry: rows compare those byte for byte).
bool carries_ip(const Bytes& f) {
    size_t off = 12;
    while (off + 2 <= f.size() && be16(f, off) == 0x8100) off += 4;
    if (off + 2 > f.size()) return false;
    if (be16(f, off) == 0x0800) return !(f.size() >= off + 10 && (be16(f, off + 8) & 0x3FFF));
    return be16(f, off) == 0x86DD && !(f.size() >= off + 10 && f[off + 8] == 44);
}

void run_rows(Rig& rig, const std::vector<Row>& rows) {
    for (const auto& r : rows) {
        INFO(r.what << "\ninput:\n" << sluice::test::hexdump(r.in));
        const WorkerCounters before = rig.dp->counters();
        const Out o = rig.run(r.in, r.now, r.in_port, r.redirected);
        INFO("output:\n" << sluice::test::hexdump(o.bytes));
        CHECK(std::string(name(o.verdict)) == name(r.verdict));
        if (r.verdict != Verdict::drop) CHECK(o.out == r.out);
        if (r.reason && o.verdict == Verdict::drop) CHECK(std::string(to_string(o.reason)) == to_string(*r.reason));
        if (r.verdict == Verdict::tx && o.verdict == Verdict::tx) {
            CHECK(sluice::test::hexdump(o.bytes) == sluice::test::hexdump(r.want));
            if (carries_ip(o.bytes)) CHECK(sluice::test::checksums_ok(o.bytes));
        }
        if (r.verdict == Verdict::redirect) CHECK(sluice::test::hexdump(o.bytes) == sluice::test::hexdump(r.in));
        CHECK(str(diff(before, rig.dp->counters())) == str(r.deltas));
    }
}

// Client -> VIP and backend -> Sluice frames.
Pkt from_client() { return Pkt().eth(kClientMac, kPort0Mac); }
Pkt to_backend(const char* be_mac) { return Pkt().eth(kPort1Mac, be_mac); }
Pkt from_backend(const char* be_mac) { return Pkt().eth(be_mac, kPort1Mac); }
Pkt to_client() { return Pkt().eth(kPort0Mac, kClientMac); }

// The RSS queue (NIC view, bit-serial reference) for an address or a 4-tuple.
uint16_t queue_of(const sluice::net::Reta& reta, const std::vector<uint8_t>& input) {
    return reta.queue(sluice::net::toeplitz_ref(sluice::net::kDefaultRssKey.data(), sluice::net::kRssKeyLen, input.data(),
                                                input.size()));
}
template <size_t N>
std::vector<uint8_t> vec(const std::array<uint8_t, N>& a) {
    return std::vector<uint8_t>(a.begin(), a.end());
}

}  // namespace

TEST_CASE("dataplane: the JSON statistics carry every worker counter, summed over workers", "[dataplane]") {
    Rig a, b;
    uint64_t v = 0;
#define SLUICE_SET(name)               \
    a.dp->counters().name = ++v;       \
    b.dp->counters().name = 1000 * v;
    SLUICE_WORKER_SCALARS(SLUICE_SET)
#undef SLUICE_SET
    const std::string json = sluice::lb::stats_to_json({a.dp.get(), b.dp.get()});
    v = 0;
    a.dp->counters().for_each_scalar([&](const char* name, uint64_t) {
        ++v;
        INFO(name);
        CHECK(json.find(fmt::format("\"{}\":{},", name, 1001 * v)) != std::string::npos);  // the total
        CHECK(json.find(fmt::format("\"{}\":{},", name, 1000 * v)) != std::string::npos);  // worker b
    });
#define SLUICE_COUNT(name) +1
    CHECK(v == 0 SLUICE_WORKER_SCALARS(SLUICE_COUNT));  // every scalar visited
#undef SLUICE_COUNT
}

TEST_CASE("dataplane: nat forward and reply, IPv4", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("SYN to the VIP: dst -> backend, dport -> 8080, TTL-1, MACs to the backend",
           from_client().ipv4(kClient, kVipNat, 64).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
        tx("SYN-ACK from the backend: src -> VIP, sport -> 80, MACs to the client",
           from_backend(kBe1Mac).ipv4(kBe1, kClient, 64).tcp(8080, 40000, kSyn | kAck).build(), 0,
           to_client().ipv4(kVipNat, kClient, 63).tcp(80, 40000, kSyn | kAck).build(), kReply, 10, 1),
        tx("ACK with data: the flow is hit",
           from_client().ipv4(kClient, kVipNat, 17).tcp(40000, 80, kAck | kPsh).payload(100).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 16).tcp(40000, 8080, kAck | kPsh).payload(100).build(), kHit, 20),
        tx("reply with an odd-length payload",
           from_backend(kBe1Mac).ipv4(kBe1, kClient, 2).tcp(8080, 40000, kAck).payload(333).build(), 0,
           to_client().ipv4(kVipNat, kClient, 1).tcp(80, 40000, kAck).payload(333).build(), kReply, 30, 1),
        drop("reply with TTL 1", from_backend(kBe1Mac).ipv4(kBe1, kClient, 1).tcp(8080, 40000, kAck).build(),
             Drop::ttl_expired, dropped("ttl_expired"), 40, 1),
        drop("forward with TTL 1 on the established flow",
             from_client().ipv4(kClient, kVipNat, 1).tcp(40000, 80, kAck).build(), Drop::ttl_expired,
             dropped("ttl_expired"), 50),
        drop("forward with TTL 0", from_client().ipv4(kClient, kVipNat, 0).tcp(40000, 80, kAck).build(),
             Drop::ttl_expired, dropped("ttl_expired"), 50),
        tx("an IPv4 header with options keeps them",
           from_client().ipv4(kClient, kVipNat, 64).ip_options(2).tcp(40000, 80, kAck).payload(3).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).ip_options(2).tcp(40000, 8080, kAck).payload(3).build(), kHit, 60),
        drop("a frame on a VLAN no side serves", from_client().vlan(42).ipv4(kClient, kVipNat).tcp(40000, 80, kAck).build(),
             Drop::foreign_vlan, dropped("foreign_vlan"), 70),
        tx("Ethernet padding is carried along untouched",
           from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).pad_to(60).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kAck).pad_to(60).build(), kHit, 80),
        tx("a second client port is a new flow",
           from_client().ipv4(kClient, kVipNat).tcp(40001, 80, kSyn).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40001, 8080, kSyn).build(), kNewFlow, 90),
        drop("a reply for a client port with no flow",
             from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40002, kAck).build(), Drop::no_flow,
             dropped("no_flow"), 100, 1),
    });
    const WorkerCounters& c = rig.dp->counters();
    CHECK(c.vips[0].new_flows == 2);
    CHECK(c.vips[0].packets == 5);
    CHECK(c.backends[0].new_flows == 2);
    CHECK(c.backends[0].packets == 7);  // forwarded + replies
    CHECK(rig.dp->flows4().size() == 2);
    CHECK(rig.dp->flows6().size() == 0);
}

TEST_CASE("dataplane: nat forward and reply, IPv6", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("SYN to the v6 VIP: dst -> backend, hop limit - 1",
           from_client().ipv6(kClient6, kVip6Nat, 64).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe6aMac).ipv6(kClient6, kBe6a, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
        tx("SYN-ACK: src -> VIP", from_backend(kBe6aMac).ipv6(kBe6a, kClient6, 64).tcp(8080, 40000, kSyn | kAck).build(), 0,
           to_client().ipv6(kVip6Nat, kClient6, 63).tcp(80, 40000, kSyn | kAck).build(), kReply, 1, 1),
        tx("data after a hop-by-hop header",
           from_client().ipv6(kClient6, kVip6Nat, 64).ext(0).tcp(40000, 80, kAck).payload(51).build(), 1,
           to_backend(kBe6aMac).ipv6(kClient6, kBe6a, 63).ext(0).tcp(40000, 8080, kAck).payload(51).build(), kHit, 2),
        tx("UDP v6 with a checksum", from_client().ipv6(kClient6, kVip6Nat).udp(3333, 53).payload(21).build(), 1,
           to_backend(kBe6aMac).ipv6(kClient6, kBe6a, 63).udp(3333, 5353).payload(21).build(), kNewFlow, 3),
        tx("UDP v6 reply", from_backend(kBe6aMac).ipv6(kBe6a, kClient6).udp(5353, 3333).payload(40).build(), 0,
           to_client().ipv6(kVip6Nat, kClient6, 63).udp(53, 3333).payload(40).build(), kReply, 4, 1),
        drop("UDP v6 with checksum 0", from_client().ipv6(kClient6, kVip6Nat).udp(3333, 53).payload(21).l4_csum(0).build(),
             Drop::udp6_zero_checksum, dropped("udp6_zero_checksum"), 5),
        drop("UDP v6 reply with checksum 0",
             from_backend(kBe6aMac).ipv6(kBe6a, kClient6).udp(5353, 3333).l4_csum(0).build(), Drop::udp6_zero_checksum,
             dropped("udp6_zero_checksum"), 6, 1),
        drop("hop limit 1", from_client().ipv6(kClient6, kVip6Nat, 1).tcp(40000, 80, kAck).build(), Drop::ttl_expired,
             dropped("ttl_expired"), 7),
    });
    CHECK(rig.dp->flows6().size() == 2);
    CHECK(rig.dp->flows4().size() == 0);
}

TEST_CASE("dataplane: one arm, a stray TCP/UDP packet counts as no_flow, a VIP address's other port as no_vip",
          "[dataplane]") {
    // What README's drop list says: no_vip is for a VIP's address on a port or protocol no VIP
    // serves (and non-TCP/UDP/ICMP to other addresses); TCP or UDP to any other address is
    // taken for a reply and, matching no flow, counts as no_flow, on one arm as on two.
    WorkerEnv e = env();
    e.backend_port = 0;
    Rig rig(lab_config(), e);
    run_rows(rig, {
        drop("TCP to an address that is no VIP", from_client().ipv4(kClient, "198.18.0.1").tcp(1, 80).build(),
             Drop::no_flow, dropped("no_flow")),
        drop("UDP to an address that is no VIP", from_client().ipv4(kClient, "198.18.0.1").udp(1, 53).build(),
             Drop::no_flow, dropped("no_flow")),
        drop("TCP to a VIP address on another port", from_client().ipv4(kClient, kVipNat).tcp(1, 81).build(),
             Drop::no_vip, dropped("no_vip")),
        drop("GRE to an address that is no VIP", from_client().ipv4(kClient, "198.18.0.1").l4_proto(47).payload(20).build(),
             Drop::no_vip, dropped("no_vip")),
    });
}

TEST_CASE("dataplane: UDP over IPv4 with and without a checksum", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("nat: checksum 0 stays 0", from_client().ipv4(kClient, kVipNat).udp(5000, 53).payload(20).l4_csum(0).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).udp(5000, 5353).payload(20).l4_csum(0).build(), kNewFlow),
        tx("nat reply: checksum 0 stays 0",
           from_backend(kBe1Mac).ipv4(kBe1, kClient).udp(5353, 5000).payload(7).l4_csum(0).build(), 0,
           to_client().ipv4(kVipNat, kClient, 63).udp(53, 5000).payload(7).l4_csum(0).build(), kReply, 1, 1),
        tx("nat: a real checksum is updated", from_client().ipv4(kClient, kVipNat).udp(5000, 53).payload(9).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).udp(5000, 5353).payload(9).build(), kHit, 2),
        tx("fullnat: checksum 0 stays 0 through four rewrites",
           from_client().ipv4(kClient, kVipFull).udp(5001, 53).payload(20).l4_csum(0).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).udp(1024, 5353).payload(20).l4_csum(0).build(), kNewFlow, 3),
        tx("fullnat reply: checksum 0 stays 0",
           from_backend(kBe2Mac).ipv4(kBe2, kSnat).udp(5353, 1024).payload(20).l4_csum(0).build(), 0,
           to_client().ipv4(kVipFull, kClient, 63).udp(53, 5001).payload(20).l4_csum(0).build(), kReply, 4, 1),
    });
}

TEST_CASE("dataplane: a UDP checksum that becomes 0 is sent as 0xFFFF", "[dataplane]") {
    // Choose the last payload word so that the rewritten datagram sums to -0: its checksum is
    // then 0, which RFC 768 transmits as 0xFFFF (0 would mean "no checksum").
    Rig rig;
    for (uint16_t sport : {5000, 61234}) {
        INFO("sport " << sport);
        Bytes probe = to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).udp(sport, 5353).payload({0xAB, 0xCD, 0, 0}).l4_csum(0).build();
        const uint32_t pseudo = sluice::test::ref_sum(probe.data() + 26, 8) + 17 + 12;
        const uint16_t x = static_cast<uint16_t>(~sluice::test::ref_sum(probe.data() + 34, 12, pseudo));
        const Bytes pay = {0xAB, 0xCD, static_cast<uint8_t>(x >> 8), static_cast<uint8_t>(x)};
        const Bytes want = to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).udp(sport, 5353).payload(pay).build();
        REQUIRE(be16(want, 40) == 0xFFFF);
        const Bytes in = from_client().ipv4(kClient, kVipNat).udp(sport, 53).payload(pay).build();
        REQUIRE(be16(in, 40) != 0xFFFF);
        const Out o = rig.run(in);
        REQUIRE(o.verdict == Verdict::tx);
        CHECK(be16(o.bytes, 40) == 0xFFFF);
        CHECK(sluice::test::hexdump(o.bytes) == sluice::test::hexdump(want));
        CHECK(sluice::test::checksums_ok(o.bytes));
    }
}

TEST_CASE("dataplane: fullnat forward and reply", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("v4 SYN: src -> SNAT:1024, dst -> backend",
           from_client().ipv4(kClient, kVipFull, 64).tcp(40000, 80, kSyn).payload(4).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(1024, 8080, kSyn).payload(4).build(), kNewFlow),
        tx("v4 SYN-ACK: src -> VIP:80, dst -> client:40000",
           from_backend(kBe2Mac).ipv4(kBe2, kSnat, 64).tcp(8080, 1024, kSyn | kAck).build(), 0,
           to_client().ipv4(kVipFull, kClient, 63).tcp(80, 40000, kSyn | kAck).build(), kReply, 1, 1),
        tx("v4 second client: next SNAT port",
           from_client().ipv4("10.9.9.9", kVipFull, 64).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(1025, 8080, kSyn).build(), kNewFlow, 2),
        tx("v4 ACK: same SNAT port", from_client().ipv4(kClient, kVipFull, 64).tcp(40000, 80, kAck).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(1024, 8080, kAck).build(), kHit, 3),
        tx("v4 reply to the second client",
           from_backend(kBe2Mac).ipv4(kBe2, kSnat, 64).tcp(8080, 1025, kAck).payload(1).build(), 0,
           to_client().ipv4(kVipFull, "10.9.9.9", 63).tcp(80, 40000, kAck).payload(1).build(), kReply, 4, 1),
        drop("v4 reply to an unused SNAT port", from_backend(kBe2Mac).ipv4(kBe2, kSnat).tcp(8080, 1026, kAck).build(),
             Drop::no_flow, dropped("no_flow"), 5, 1),
        tx("v6 SYN: src -> SNAT6:1024 (ports are per family)",
           from_client().ipv6(kClient6, kVip6Full, 64).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).tcp(1024, 8080, kSyn).build(), kNewFlow, 6),
        tx("v6 SYN-ACK", from_backend(kBe6bMac).ipv6(kBe6b, kSnat6, 64).tcp(8080, 1024, kSyn | kAck).payload(3).build(), 0,
           to_client().ipv6(kVip6Full, kClient6, 63).tcp(80, 40000, kSyn | kAck).payload(3).build(), kReply, 7, 1),
    });
}

TEST_CASE("dataplane: dsr forward rewrites only the MACs", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("SYN: IP header untouched, TTL unchanged",
           from_client().ipv4(kClient, kVipDsr, 64).tcp(40000, 80, kSyn).payload(8).build(), 1,
           to_backend(kBe3Mac).ipv4(kClient, kVipDsr, 64).tcp(40000, 80, kSyn).payload(8).build(), kNewFlow),
        tx("ACK: flow hit", from_client().ipv4(kClient, kVipDsr, 64).tcp(40000, 80, kAck).build(), 1,
           to_backend(kBe3Mac).ipv4(kClient, kVipDsr, 64).tcp(40000, 80, kAck).build(), kHit, 1),
        tx("TTL 1 is still forwarded: dsr does not route",
           from_client().ipv4(kClient, kVipDsr, 1).tcp(40000, 80, kAck).build(), 1,
           to_backend(kBe3Mac).ipv4(kClient, kVipDsr, 1).tcp(40000, 80, kAck).build(), kHit, 2),
    });
    // dsr flows have no reverse entry: a packet from the backend to the client is not a reply.
    run_rows(rig, {drop("backend -> client is unknown", from_backend(kBe3Mac).ipv4(kBe3, kClient).tcp(80, 40000, kAck).build(),
                        Drop::no_flow, dropped("no_flow"), 3, 1)});
}

TEST_CASE("dataplane: flows stick to their backend, through a hit and through Maglev", "[dataplane]") {
    Rig rig;
    REQUIRE(rig.svc->vips().size() == 9);
    const VipEntry& pool = rig.svc->vips()[8];
    REQUIRE(pool.name == "pool");
    std::set<std::string> used;
    for (uint16_t port = 41000; port < 41064; ++port) {
        INFO("client port " << port);
        const Out syn = rig.run(from_client().ipv4(kClient, kVipPool).tcp(port, 80, kSyn).build(), 0);
        REQUIRE(syn.verdict == Verdict::tx);
        const Bytes be(syn.bytes.begin() + 30, syn.bytes.begin() + 34);
        // The choice is Maglev's for this 5-tuple.
        const auto c = sluice::test::ip4(kClient), v = sluice::test::ip4(kVipPool);
        const uint16_t sp = static_cast<uint16_t>(port >> 8 | port << 8), dp = static_cast<uint16_t>(80 << 8);
        const uint16_t pick = pool.maglev.lookup(maglev_flow_hash(sluice::net::Family::v4, c.data(), v.data(), sp, dp, 6));
        REQUIRE(pick < pool.backends.size());
        const IpAddr& expect = rig.svc->backends()[pool.backends[pick]].addr;
        CHECK(std::memcmp(be.data(), expect.bytes.data(), 4) == 0);
        used.insert(sluice::test::hexdump(be));

        // A hit keeps it.
        const Out ack = rig.run(from_client().ipv4(kClient, kVipPool).tcp(port, 80, kAck).build(), 1'000);
        REQUIRE(ack.verdict == Verdict::tx);
        CHECK(Bytes(ack.bytes.begin() + 30, ack.bytes.begin() + 34) == be);
    }
    CHECK(used.size() == 3);  // the pool spreads; a constant pick would not notice stickiness
    // After the established timeout the flows are stale: Maglev picks the same backends again,
    // and so does a worker that never saw the flows.
    const WorkerCounters before = rig.dp->counters();
    Rig fresh;
    const uint32_t later = 1'000 + 300'000;
    for (uint16_t port = 41000; port < 41064; ++port) {
        INFO("client port " << port);
        const Out a = rig.run(from_client().ipv4(kClient, kVipPool).tcp(port, 80, kAck).build(), later);
        const Out b = fresh.run(from_client().ipv4(kClient, kVipPool).tcp(port, 80, kAck).build(), 0);
        const Out c = rig.run(from_client().ipv4(kClient, kVipPool).tcp(port, 80, kSyn).build(), later);
        REQUIRE(a.verdict == Verdict::tx);
        REQUIRE(b.verdict == Verdict::tx);
        REQUIRE(c.verdict == Verdict::tx);
        CHECK(sluice::test::hexdump(a.bytes) == sluice::test::hexdump(b.bytes));
        CHECK(Bytes(c.bytes.begin() + 30, c.bytes.begin() + 34) == Bytes(a.bytes.begin() + 30, a.bytes.begin() + 34));
    }
    const Deltas d = diff(before, rig.dp->counters());
    CHECK(d.at("non_syn_miss") == 64);
    CHECK(d.at("maglev_picks") == 64);
    CHECK(d.at("flow_hits") == 64);  // the extra SYNs hit the re-created flows
    CHECK(fresh.dp->counters().non_syn_miss == 64);
}

TEST_CASE("dataplane: TCP state drives the flow's timeout", "[dataplane]") {
    Rig rig;
    const Bytes syn = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kSyn).build();
    const Bytes synack = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kSyn | kAck).seq(7000).build();
    const Bytes ack = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).ack(7001).build();
    const Bytes fin = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kFin | kAck).ack(7001).build();
    const Bytes reply = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kAck).build();
    const Bytes reply_fin = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kFin | kAck).build();
    const auto state = [&] {
        uint32_t st = 0;
        for (uint32_t i = 0; i < rig.dp->flows4().capacity(); ++i)
            if (rig.dp->flows4().record(i).state != FlowState::free) st = static_cast<uint32_t>(rig.dp->flows4().record(i).state);
        return static_cast<FlowState>(st);
    };
    // SYN only: half-open, 5 s.
    REQUIRE(rig.run(syn, 0).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_syn);
    CHECK(rig.run(reply, 4'999, 1).verdict == Verdict::tx);
    CHECK(rig.run(reply, 4'999 + 5'000, 1).reason == Drop::no_flow);
    // SYN, SYN-ACK, then an ACK of something else: still half-open (no evidence).
    REQUIRE(rig.run(syn, 20'000).verdict == Verdict::tx);
    REQUIRE(rig.run(synack, 20'001, 1).verdict == Verdict::tx);
    REQUIRE(rig.run(from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).ack(99).build(), 20'002).verdict ==
            Verdict::tx);
    CHECK(state() == FlowState::tcp_syn);
    // The ACK of the SYN-ACK: established, 300 s.
    REQUIRE(rig.run(ack, 20'003).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_established);
    CHECK(rig.run(reply, 20'003 + 299'999, 1).verdict == Verdict::tx);
    // The client's FIN half-closes: the backend may go on sending for 120 s of silence.
    REQUIRE(rig.run(fin, 400'000).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_half_closed);
    CHECK(rig.run(reply, 400'000 + 119'999, 1).verdict == Verdict::tx);
    // The backend's FIN closes it: 10 s.
    REQUIRE(rig.run(reply_fin, 600'000, 1).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_closing);
    CHECK(rig.run(reply, 609'999, 1).verdict == Verdict::tx);
    CHECK(rig.run(reply, 609'999 + 10'000, 1).reason == Drop::no_flow);
    // RST from the backend closes at once.
    REQUIRE(rig.run(syn, 700'000).verdict == Verdict::tx);
    REQUIRE(rig.run(synack, 700'001, 1).verdict == Verdict::tx);
    REQUIRE(rig.run(ack, 700'002).verdict == Verdict::tx);
    const Bytes rst = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kRst).build();
    REQUIRE(rig.run(rst, 700'003, 1).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_closing);
    CHECK(rig.run(reply, 700'003 + 10'000, 1).reason == Drop::no_flow);
    // An ACK of no flow is picked up unconfirmed (5 s) and promoted by the backend's answer.
    REQUIRE(rig.run(ack, 800'000).verdict == Verdict::tx);
    CHECK(state() == FlowState::unconfirmed);
    REQUIRE(rig.run(reply, 804'999, 1).verdict == Verdict::tx);
    CHECK(state() == FlowState::tcp_established);
    CHECK(rig.run(reply, 804'999 + 299'999, 1).verdict == Verdict::tx);
    // ... but not by an RST: the backend does not know the connection.
    REQUIRE(rig.run(from_client().ipv4(kClient, kVipNat).tcp(40001, 80, kAck).build(), 1'200'000).verdict == Verdict::tx);
    REQUIRE(rig.run(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40001, kRst).build(), 1'200'001, 1).verdict ==
            Verdict::tx);
    // Gone after the closing timeout. (Its answer would still go back without the flow: an
    // unconfirmed nat flow leaves a hint of its client, in case a full table evicts it.)
    const uint64_t stateless = rig.dp->counters().stateless_replies;
    CHECK(rig.run(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40001, kAck).build(), 1'210'001, 1).verdict ==
          Verdict::tx);
    CHECK(rig.dp->counters().stateless_replies == stateless + 1);
    // UDP: unconfirmed for 5 s until answered, then 30 s; expire() frees idle flows.
    const Bytes dns = from_client().ipv4(kClient, kVipNat).udp(5000, 53).build();
    const Bytes dns_reply = from_backend(kBe1Mac).ipv4(kBe1, kClient).udp(5353, 5000).build();
    REQUIRE(rig.run(dns, 2'300'000).verdict == Verdict::tx);
    CHECK(rig.run(dns_reply, 2'305'000, 1).verdict == Verdict::tx);  // the flow has expired: by the hint
    CHECK(rig.dp->counters().stateless_replies == stateless + 2);
    REQUIRE(rig.run(dns, 2'400'000).verdict == Verdict::tx);
    CHECK(state() == FlowState::unconfirmed);
    REQUIRE(rig.run(dns_reply, 2'400'001, 1).verdict == Verdict::tx);
    CHECK(state() == FlowState::udp);
    rig.dp->expire(2'400'002, 1u << 20);
    CHECK(rig.dp->flows4().size() == 1);  // every flow above has timed out
    rig.dp->expire(2'430'000, 1u << 20);
    CHECK(rig.dp->flows4().size() == 1);
    rig.dp->expire(2'430'001 + 235, 1u << 20);  // within one expiry slot (30 s / 128) of the deadline
    CHECK(rig.dp->flows4().size() == 0);
}

TEST_CASE("dataplane: a TCP non-SYN packet with no flow is forwarded and counted", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        tx("ACK with no flow", from_client().ipv4(kClient, kVipNat).tcp(50000, 80, kAck).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(50000, 8080, kAck).build(),
           {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"non_syn_miss", 1}}),
        tx("the next ACK hits the flow created by the first",
           from_client().ipv4(kClient, kVipNat).tcp(50000, 80, kAck).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(50000, 8080, kAck).build(), kHit, 1),
        tx("UDP never counts as a non-SYN miss", from_client().ipv4(kClient, kVipNat).udp(50000, 53).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).udp(50000, 5353).build(), kNewFlow, 2),
    });
}

TEST_CASE("dataplane: each side on its VLAN", "[dataplane]") {
    SECTION("two ports, both sides tagged: the VID changes, the priority bits stay") {
        WorkerEnv e = env();
        e.client_vlan = 100;
        e.backend_vlan = 200;
        Rig rig(lab_config(), e);
        run_rows(rig, {
            tx("client SYN on VLAN 100 (PCP 5) leaves on VLAN 200 (PCP 5)",
               from_client().vlan(0xA064).ipv4(kClient, kVipNat, 64).tcp(40000, 80, kSyn).build(), 1,
               to_backend(kBe1Mac).vlan(0xA0C8).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
            tx("the backend's SYN-ACK on VLAN 200 goes back on VLAN 100",
               from_backend(kBe1Mac).vlan(200).ipv4(kBe1, kClient, 64).tcp(8080, 40000, kSyn | kAck).build(), 0,
               to_client().vlan(100).ipv4(kVipNat, kClient, 63).tcp(80, 40000, kSyn | kAck).build(), kReply, 10, 1),
            drop("an untagged client frame", from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).build(),
                 Drop::foreign_vlan, dropped("foreign_vlan"), 20),
            drop("a client frame on the backend VLAN",
                 from_client().vlan(200).ipv4(kClient, kVipNat).tcp(40000, 80, kAck).build(), Drop::foreign_vlan,
                 dropped("foreign_vlan"), 20),
            drop("a backend frame on the client VLAN",
                 from_backend(kBe1Mac).vlan(100).ipv4(kBe1, kClient).tcp(8080, 40000, kAck).build(), Drop::foreign_vlan,
                 dropped("foreign_vlan"), 20, 1),
            tx("ARP on the client VLAN is answered on it",
               Pkt().eth(kClientMac, kBcast).vlan(100).arp_request(kClientMac, kClient, kVipNat).build(), 0,
               Pkt().eth(kPort0Mac, kClientMac).vlan(100).arp(2, kPort0Mac, kVipNat, kClientMac, kClient).build(),
               {{"rx", 1}, {"tx", 1}, {"arp_replies", 1}}),
            tx("dsr: the client's frame moves to the backend VLAN, nothing else changes",
               from_client().vlan(100).ipv4(kClient, kVipDsr, 64).tcp(40001, 80, kSyn).build(), 1,
               to_backend(kBe3Mac).vlan(200).ipv4(kClient, kVipDsr, 64).tcp(40001, 80, kSyn).build(), kNewFlow, 30),
        });
    }
    SECTION("client side tagged, backend side untagged: the tag is removed and added back") {
        WorkerEnv e = env();
        e.client_vlan = 100;
        Rig rig(lab_config(), e);
        run_rows(rig, {
            tx("client SYN on VLAN 100 leaves untagged",
               from_client().vlan(100).ipv4(kClient, kVipNat, 64).tcp(40000, 80, kSyn).pad_to(64).build(), 1,
               to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kSyn).pad_to(60).build(), kNewFlow),
            tx("the untagged SYN-ACK gets the client VLAN's tag",
               from_backend(kBe1Mac).ipv4(kBe1, kClient, 64).tcp(8080, 40000, kSyn | kAck).payload(7).build(), 0,
               to_client().vlan(100).ipv4(kVipNat, kClient, 63).tcp(80, 40000, kSyn | kAck).payload(7).build(), kReply,
               10, 1),
            drop("a tagged backend frame", from_backend(kBe1Mac).vlan(100).ipv4(kBe1, kClient).tcp(8080, 40000, kAck).build(),
                 Drop::foreign_vlan, dropped("foreign_vlan"), 20, 1),
        });
        // No room in the buffer for the tag: counted, the frame left as it was.
        const Bytes in = from_backend(kBe1Mac).ipv4(kBe1, kClient, 64).tcp(8080, 40000, kAck).build();
        std::vector<uint8_t> buf(in.begin(), in.end());
        PacketRef p;
        p.data = buf.data();
        p.len = p.cap = static_cast<uint32_t>(buf.size());
        p.in_port = 1;
        rig.dp->process(&p, 1, 30);
        CHECK(p.verdict == Verdict::drop);
        CHECK(p.reason == Drop::vlan_no_room);
    }
    SECTION("one arm: one port serves both VLANs") {
        WorkerEnv e = env();
        e.backend_port = 0;
        e.client_vlan = 100;
        e.backend_vlan = 200;
        Rig rig(lab_config(), e);
        run_rows(rig, {
            tx("client SYN on VLAN 100 goes back out of port 0 on VLAN 200",
               from_client().vlan(100).ipv4(kClient, kVipNat, 64).tcp(40000, 80, kSyn).build(), 0,
               Pkt().eth(kPort0Mac, kBe1Mac).vlan(200).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
            tx("the SYN-ACK on VLAN 200 goes back on VLAN 100",
               Pkt().eth(kBe1Mac, kPort0Mac).vlan(200).ipv4(kBe1, kClient, 64).tcp(8080, 40000, kSyn | kAck).build(), 0,
               to_client().vlan(100).ipv4(kVipNat, kClient, 63).tcp(80, 40000, kSyn | kAck).build(), kReply, 10),
            drop("untagged", from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).build(), Drop::foreign_vlan,
                 dropped("foreign_vlan"), 20),
        });
    }
    SECTION("one arm: the kernel side lives on the backend VLAN only") {
        WorkerEnv e = env();
        e.backend_port = 0;
        e.client_vlan = 100;
        e.backend_vlan = 200;
        e.exception_path = true;
        Rig rig(lab_config(), e);
        const Bytes on_backend_vlan =
            Pkt().eth(kBe1Mac, kPort0Mac).vlan(200).ipv4(kBe1, kSelf).tcp(8080, 33000, kSyn | kAck).build();
        const Out o = rig.run(on_backend_vlan, 0, 0);
        CHECK(o.verdict == Verdict::control);
        // The same from the client VLAN: a claim or probe answer that is not the backends'.
        const Out c = rig.run(from_client().vlan(100).ipv4(kClient, kSelf).tcp(1, 22, kSyn).build(), 0, 0);
        CHECK(c.verdict == Verdict::drop);
        CHECK(c.reason == Drop::foreign_vlan);
    }
}

TEST_CASE("dataplane: frames not addressed to the port are dropped as foreign_mac", "[dataplane]") {
    Rig rig;
    run_rows(rig, {
        drop("to another host's MAC", Pkt().eth(kClientMac, "02:00:00:00:00:99").ipv4(kClient, kVipNat).tcp(1, 80, kSyn).build(),
             Drop::foreign_mac, dropped("foreign_mac")),
        drop("to the other port's MAC", Pkt().eth(kClientMac, kPort1Mac).ipv4(kClient, kVipNat).tcp(1, 80, kSyn).build(),
             Drop::foreign_mac, dropped("foreign_mac")),
        drop("IPv4 broadcast to a VIP", Pkt().eth(kClientMac, kBcast).ipv4(kClient, kVipNat).udp(1, 53).build(),
             Drop::foreign_mac, dropped("foreign_mac")),
        drop("IPv6 multicast UDP to a VIP",
             Pkt().eth(kClientMac, "33:33:00:00:00:10").ipv6(kClient6, kVip6Nat).udp(1, 80).build(), Drop::foreign_mac,
             dropped("foreign_mac")),
        drop("a backend's reply to the client port's MAC",
             Pkt().eth(kBe1Mac, kPort0Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kAck).build(), Drop::foreign_mac,
             dropped("foreign_mac"), 0, 1),
    });
    CHECK(rig.dp->flows4().size() == 0);
    CHECK(rig.dp->flows6().size() == 0);
    CHECK(rig.dp->counters().vips[0].packets == 0);
}

TEST_CASE("dataplane: ARP for Sluice's addresses is answered, others dropped", "[dataplane]") {
    Rig rig;
    const char* kBeMac = kBe1Mac;
    run_rows(rig, {
        tx("who-has VIP (client side)", Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, kVipNat).build(), 0,
           Pkt().eth(kPort0Mac, kClientMac).arp(2, kPort0Mac, kVipNat, kClientMac, kClient).build(),
           {{"rx", 1}, {"tx", 1}, {"arp_replies", 1}}),
        tx("who-has SNAT (backend side, answered with port 1's MAC)",
           Pkt().eth(kBeMac, kBcast).arp_request(kBeMac, kBe1, kSnat).build(), 1,
           Pkt().eth(kPort1Mac, kBeMac).arp(2, kPort1Mac, kSnat, kBeMac, kBe1).build(),
           {{"rx", 1}, {"tx", 1}, {"arp_replies", 1}}, 0, 1),
        tx("who-has self, padded frame keeps its length",
           Pkt().eth(kBeMac, kBcast).arp_request(kBeMac, kBe1, kSelf).pad_to(60).build(), 1,
           Pkt().eth(kPort1Mac, kBeMac).arp(2, kPort1Mac, kSelf, kBeMac, kBe1).pad_to(60).build(),
           {{"rx", 1}, {"tx", 1}, {"arp_replies", 1}}, 0, 1),
        drop("who-has VIP in a VLAN Sluice does not serve",
             Pkt().eth(kClientMac, kBcast).vlan(12).arp_request(kClientMac, kClient, kVipDsr).build(), Drop::foreign_vlan,
             dropped("foreign_vlan")),
        drop("who-has another address", Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, "203.0.113.99").build(),
             Drop::arp_ignored, dropped("arp_ignored")),
        drop("who-has a backend", Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, kBe1).build(),
             Drop::arp_ignored, dropped("arp_ignored")),
        drop("an ARP reply about the VIP",
             Pkt().eth(kClientMac, kPort0Mac).arp(2, kClientMac, kVipNat, kPort0Mac, kClient).build(), Drop::arp_ignored,
             dropped("arp_ignored")),
        drop("truncated ARP", Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, kVipNat).truncate(40).build(),
             Drop::truncated_arp, dropped("truncated_arp")),
    });
}

TEST_CASE("dataplane: neighbour solicitations for Sluice's addresses get a valid advertisement", "[dataplane]") {
    Rig rig;
    const Deltas nd = {{"rx", 1}, {"tx", 1}, {"nd_replies", 1}};
    auto ns = [](uint8_t hops = 255, const char* src = kClient6) {
        return Pkt().eth(kClientMac, "33:33:ff:00:00:10").ipv6(src, "ff02::1:ff00:10", hops);
    };
    run_rows(rig, {
        tx("NS for the v6 VIP, with a source link-layer option",
           ns().nd_solicit(kVip6Nat, kClientMac).build(), 0,
           Pkt().eth(kPort0Mac, kClientMac).ipv6(kVip6Nat, kClient6, 255).nd_advert(kVip6Nat, kPort0Mac, 0x60).build(), nd),
        tx("NS for the v6 SNAT address on the backend port, no option (grows to 32 bytes)",
           Pkt().eth(kBe6bMac, "33:33:ff:00:01:00").ipv6(kBe6b, "ff02::1:ff00:100", 255).nd_solicit(kSnat6).build(), 1,
           Pkt().eth(kPort1Mac, kBe6bMac).ipv6(kSnat6, kBe6b, 255).nd_advert(kSnat6, kPort1Mac, 0x60).build(), nd, 0, 1),
        tx("NS for self", ns().nd_solicit(kSelf6, kClientMac).build(), 0,
           Pkt().eth(kPort0Mac, kClientMac).ipv6(kSelf6, kClient6, 255).nd_advert(kSelf6, kPort0Mac, 0x60).build(), nd),
        drop("NS for another address", ns().nd_solicit("2001:db8::99", kClientMac).build(), Drop::nd_ignored,
             dropped("nd_ignored")),
        drop("NS with hop limit 64 (RFC 4861 §7.1.1)", ns(64).nd_solicit(kVip6Nat, kClientMac).build(),
             Drop::nd_ignored, dropped("nd_ignored")),
        tx("NS from the unspecified address (DAD): defended to all-nodes, Solicited clear (RFC 4861 §7.2.4)",
           ns(255, "::").nd_solicit(kVip6Nat).build(), 0,
           Pkt().eth(kPort0Mac, "33:33:00:00:00:01").ipv6(kVip6Nat, "ff02::1", 255).nd_advert(kVip6Nat, kPort0Mac, 0x20).build(),
           nd),
        drop("NS with code 1", Pkt().eth(kClientMac, kPort0Mac).ipv6(kClient6, kVip6Nat, 255).icmpv6(135, 1).payload(16).build(),
             Drop::nd_ignored, dropped("nd_ignored")),
        drop("NS shorter than 24 bytes", Pkt().eth(kClientMac, kPort0Mac).ipv6(kClient6, kVip6Nat, 255).icmpv6(135).payload(8).build(),
             Drop::nd_ignored, dropped("nd_ignored")),
        tx("an echo request to the VIP is answered", Pkt().eth(kClientMac, kPort0Mac).ipv6(kClient6, kVip6Nat).icmpv6(128).build(),
           0, Pkt().eth(kPort0Mac, kClientMac).ipv6(kVip6Nat, kClient6, 64).icmpv6(129).build(),
           {{"rx", 1}, {"tx", 1}, {"echo_replies", 1}}),
    });
}

TEST_CASE("dataplane: an NA that does not fit the buffer is not written", "[dataplane]") {
    Rig rig;
    const Bytes in = Pkt().eth(kClientMac, kPort0Mac).ipv6(kClient6, kVip6Nat, 255).nd_solicit(kVip6Nat).build();
    REQUIRE(in.size() == 14 + 40 + 24);
    std::vector<uint8_t> buf(in.begin(), in.end());
    PacketRef p;
    p.data = buf.data();
    p.len = static_cast<uint32_t>(buf.size());
    p.cap = p.len;  // no tailroom for the 8-byte option
    rig.dp->process(&p, 1, 0);
    CHECK(p.verdict == Verdict::drop);
    CHECK(p.reason == Drop::nd_ignored);
    CHECK(buf == in);
}

TEST_CASE("dataplane: every malformed packet is dropped under its reason", "[dataplane]") {
    Rig rig;
    auto c4 = [] { return from_client().ipv4(kClient, kVipNat); };
    auto c6 = [] { return from_client().ipv6(kClient6, kVip6Nat); };
    std::vector<Row> rows = {
        drop("runt", c4().tcp(1, 80).truncate(13).build(), Drop::runt, dropped("runt")),
        drop("stacked VLANs", from_client().vlan(0).vlan(2).ipv4(kClient, kVipNat).tcp(1, 80).build(), Drop::bad_vlan,
             dropped("bad_vlan")),
        drop("unknown ethertype", from_client().ethertype(0x88CC).payload(46).build(), Drop::unknown_ethertype,
             dropped("unknown_ethertype")),
        drop("truncated IPv4 header", c4().tcp(1, 80).truncate(30).build(), Drop::truncated_l3, dropped("truncated_l3")),
        drop("IPv4 ethertype, version 5", c4().tcp(1, 80).ip_version(5).build(), Drop::bad_ip_version,
             dropped("bad_ip_version")),
        drop("IHL 3", c4().tcp(1, 80).ihl(3).build(), Drop::bad_ihl, dropped("bad_ihl")),
        drop("total length past the frame", c4().tcp(1, 80).total_len(100).build(), Drop::bad_ip_length,
             dropped("bad_ip_length")),
        drop("bad IPv4 header checksum", c4().tcp(1, 80).ip_csum(0x1234).build(), Drop::bad_ip_checksum,
             dropped("bad_ip_checksum")),
        drop("IPv4 later fragment, first one never seen", c4().tcp(1, 80).frag(false, 8).build(), Drop::fragment,
             dropped("fragment")),
        drop("IPv6 later fragment, first one never seen", c6().ext(44).frag(true, 3).tcp(1, 80).build(), Drop::fragment,
             dropped("fragment")),
        drop("IPv4 tiny first fragment (RFC 1858)", c4().tcp(1, 80).frag(true, 0).total_len(32).build(),
             Drop::bad_fragment, dropped("bad_fragment")),
        drop("ICMP fragment (only TCP and UDP fragments are followed)", c4().icmp(8).frag(true, 0).build(),
             Drop::fragment, dropped("fragment")),
        drop("IPv6 with AH", c6().ext(51).tcp(1, 80).build(), Drop::bad_ext_header, dropped("bad_ext_header")),
        drop("TCP cut short", c4().tcp(1, 80).total_len(30).build(), Drop::truncated_l4, dropped("truncated_l4")),
        drop("TCP data offset past the end", c4().tcp(1, 80).tcp_doff(10).build(), Drop::bad_l4_length,
             dropped("bad_l4_length")),
        drop("UDP length lies", c4().udp(1, 53).payload(4).udp_len(100).build(), Drop::bad_l4_length,
             dropped("bad_l4_length")),
        drop("GRE to a VIP address", c4().l4_proto(47).payload(20).build(), Drop::unsupported_l4,
             dropped("unsupported_l4")),
        drop("GRE elsewhere", from_client().ipv4(kClient, "198.18.0.1").l4_proto(47).payload(20).build(), Drop::no_vip,
             dropped("no_vip")),
        tx("ICMP echo to a VIP is answered", c4().icmp(8).build(), 0,
           Pkt().eth(kPort0Mac, kClientMac).ipv4(kVipNat, kClient, 64).icmp(0).build(),
           {{"rx", 1}, {"tx", 1}, {"echo_replies", 1}}),
        tx("ICMP echo of all zeros is answered with checksum 0xFFFF, not 0x0000", c4().icmp(8).icmp_rest(Bytes(4, 0)).build(),
           0, Pkt().eth(kPort0Mac, kClientMac).ipv4(kVipNat, kClient, 64).icmp(0).icmp_rest(Bytes(4, 0)).build(),
           {{"rx", 1}, {"tx", 1}, {"echo_replies", 1}}),
        drop("ICMP echo elsewhere", from_client().ipv4(kClient, "198.18.0.1").icmp(8).build(), Drop::icmp_unhandled,
             dropped("icmp_unhandled")),
        drop("TCP to a VIP address on another port", from_client().ipv4(kClient, kVipNat).tcp(1, 81).build(), Drop::no_vip,
             dropped("no_vip")),
        drop("UDP to the TCP-only VIP port", from_client().ipv4(kClient, kVipDsr).udp(1, 80).build(), Drop::no_vip,
             dropped("no_vip")),
        drop("TCP to an unknown address", from_client().ipv4(kClient, "198.18.0.1").tcp(1, 80).build(), Drop::no_flow,
             dropped("no_flow")),
    };
    run_rows(rig, rows);
    // Nothing above created a flow.
    CHECK(rig.dp->flows4().size() == 0);
    CHECK(rig.dp->flows6().size() == 0);
    CHECK(rig.dp->counters().maglev_picks == 0);
}

// Maglev::build with no member of weight > 0 must give an all-kNoBackend table (maglev.hpp).
// An earlier Maglev crashed there (entry_caps indexed an empty vector), so the Service is
// first built in a child process: a crash fails this test instead of ending the whole run.
TEST_CASE("dataplane: a VIP whose backends all have weight 0 has no backend", "[dataplane]") {
    Config c = lab_config();
    c.vips.push_back(vip("drained", "203.0.113.20", 80, Proto::tcp, Mode::nat, {{ip("198.51.100.14"), 0, 0}}));
    c.vips.push_back(vip("half", "203.0.113.21", 80, Proto::tcp, Mode::nat,
                         {{ip("198.51.100.14"), 0, 0}, {ip(kBe1), 8080, 1}}));
    c.neighbors.push_back({ip("198.51.100.14"), macv("02:00:00:00:00:14")});
    const int sig = crash_signal([&] { (void)Service::build(c); });
    INFO("Service::build with an all-weight-0 VIP died with signal " << sig);
    REQUIRE(sig == 0);
    Rig rig(c);
    run_rows(rig, {
        drop("SYN to the drained VIP", from_client().ipv4(kClient, "203.0.113.20").tcp(1, 80).build(), Drop::no_backend,
             dropped("no_backend")),
        drop("non-SYN to the drained VIP", from_client().ipv4(kClient, "203.0.113.20").tcp(1, 80, kAck).build(),
             Drop::no_backend, {{"rx", 1}, {"non_syn_miss", 1}, {"drop.no_backend", 1}}),
        tx("a VIP with one drained and one live backend uses the live one",
           from_client().ipv4(kClient, "203.0.113.21").tcp(1, 80).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(1, 8080, kSyn).build(), kNewFlow),
    });
    CHECK(rig.dp->flows4().size() == 1);
}

TEST_CASE("dataplane: SNAT ports run out", "[dataplane]") {
    Config c = lab_config();
    c.snat_port_min = 5000;
    c.snat_port_max = 5001;
    Rig rig(c);
    run_rows(rig, {
        tx("first flow: 5000", from_client().ipv4(kClient, kVipFull).tcp(1, 80, kSyn).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(5000, 8080, kSyn).build(), kNewFlow),
        tx("second flow: 5001", from_client().ipv4(kClient, kVipFull).tcp(2, 80, kSyn).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(5001, 8080, kSyn).build(), kNewFlow),
        drop("third flow: none left (Maglev was consulted first)",
             from_client().ipv4(kClient, kVipFull).tcp(3, 80, kSyn).build(), Drop::snat_exhausted,
             {{"rx", 1}, {"maglev_picks", 1}, {"drop.snat_exhausted", 1}}),
        tx("existing flows keep working", from_client().ipv4(kClient, kVipFull).tcp(1, 80, kAck).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(5000, 8080, kAck).build(), kHit),
    });
    // Once the first flow is idle past its timeout its port is free again, even before the
    // expiry pass has reached it.
    run_rows(rig, {tx("port of a stale flow reused", from_client().ipv4(kClient, kVipFull).tcp(3, 80, kSyn).build(), 1,
                      to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(5000, 8080, kSyn).build(), kNewFlow, 1'000'000)});
    // And after the expiry pass every port is.
    rig.dp->expire(1'000'000 + 5'000 + 40, 1u << 20);
    run_rows(rig, {tx("port freed by the expiry pass", from_client().ipv4(kClient, kVipFull).tcp(4, 80, kSyn).build(), 1,
                      to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(5001, 8080, kSyn).build(), kNewFlow, 1'000'000 + 5'040)});
}

TEST_CASE("dataplane: a full flow table evicts and never fails", "[dataplane]") {
    constexpr uint32_t kCap = 4;
    Rig rig(lab_config(), env(), kCap);
    for (uint16_t port = 1; port <= 10; ++port) {
        const Out o = rig.run(from_client().ipv4(kClient, kVipNat).tcp(port, 80, kSyn).build(), port);
        REQUIRE(o.verdict == Verdict::tx);
        REQUIRE(rig.dp->flows4().size() <= kCap);
    }
    CHECK(rig.dp->flows4().size() == kCap);
    CHECK(rig.dp->flows4().stats().evictions == 6);
    CHECK(rig.dp->counters().drops[static_cast<size_t>(Drop::flow_table_full)] == 0);
    // The oldest six were evicted: their replies are unknown; the newest four still translate.
    for (uint16_t port = 1; port <= 10; ++port) {
        INFO("client port " << port);
        const Out o = rig.run(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, port, kSyn | kAck).build(), 20, 1);
        if (port <= 6) {
            CHECK(o.verdict == Verdict::drop);
            CHECK(o.reason == Drop::no_flow);
        } else {
            CHECK(o.verdict == Verdict::tx);
            CHECK(o.bytes == to_client().ipv4(kVipNat, kClient, 63).tcp(80, port, kSyn | kAck).build());
        }
    }
    // Mixed v4/v6/fullnat churn on a tiny table: never a crash, every packet accounted for.
    std::mt19937 rng(5);
    for (int i = 0; i < 5'000; ++i) {
        const uint16_t port = static_cast<uint16_t>(1 + rng() % 64);
        Bytes in;
        switch (rng() % 4) {
            case 0: in = from_client().ipv4(kClient, kVipNat).tcp(port, 80, kSyn).build(); break;
            case 1: in = from_client().ipv4(kClient, kVipFull).tcp(port, 80, kAck).build(); break;
            case 2: in = from_client().ipv6(kClient6, kVip6Nat).tcp(port, 80, kSyn).build(); break;
            default: in = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, port, kAck).build(); break;
        }
        const Out o = rig.run(in, 100 + static_cast<uint32_t>(i), in[6] == 0x02 && in[11] == 0x11 ? 1 : 0);
        REQUIRE(o.verdict != Verdict::redirect);
        REQUIRE(rig.dp->flows4().size() <= kCap);
        REQUIRE(rig.dp->flows6().size() <= kCap);
    }
    const WorkerCounters& c = rig.dp->counters();
    CHECK(c.rx == c.tx + c.total_drops());
}

TEST_CASE("dataplane: bursts give the same verdicts as single packets", "[dataplane]") {
    Rig single, burst;
    std::vector<Bytes> in;
    for (uint16_t i = 0; i < 32; ++i) {
        switch (i % 8) {
            case 0: in.push_back(from_client().ipv4(kClient, kVipNat).tcp(100 + i, 80, kSyn).build()); break;
            case 1: in.push_back(from_client().ipv4(kClient, kVipFull).tcp(100 + i, 80, kSyn).payload(i).build()); break;
            case 2: in.push_back(from_client().ipv6(kClient6, kVip6Nat).tcp(100 + i, 80, kSyn).build()); break;
            case 3: in.push_back(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 100 + i - 3, kAck).build()); break;
            case 4: in.push_back(Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, kVipNat).build()); break;
            case 5: in.push_back(from_client().ipv4(kClient, kVipNat).tcp(100 + i - 5, 80, kAck).build()); break;
            case 6: in.push_back(from_client().ipv4(kClient, kVipNat).tcp(1, 80).ip_csum(1).build()); break;
            default:  // the same address as VIP 0 behind another port and protocol (VIP 3), or none
                if (i % 16 == 7) in.push_back(from_client().ipv4(kClient, kVipDsr).udp(1, 80).build());
                else in.push_back(from_client().ipv4(kClient, kVipNat).udp(100 + i, 53).build());
                break;
        }
    }
    std::vector<Out> one;
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<PacketRef> refs(in.size());
    // Backends' frames arrive on the backend port (addressed to its MAC).
    auto port_of = [](const Bytes& b) -> uint16_t { return b[5] == 0xb0 ? 1 : 0; };
    for (const auto& b : in) one.push_back(single.run(b, 7, port_of(b)));
    for (size_t i = 0; i < in.size(); ++i) {
        bufs.emplace_back(2048, 0);
        std::memcpy(bufs[i].data(), in[i].data(), in[i].size());
        refs[i].data = bufs[i].data();
        refs[i].len = static_cast<uint32_t>(in[i].size());
        refs[i].cap = 2048;
        refs[i].in_port = port_of(in[i]);
    }
    burst.dp->process(refs.data(), static_cast<uint32_t>(refs.size()), 7);
    for (size_t i = 0; i < in.size(); ++i) {
        INFO("packet " << i);
        CHECK(refs[i].verdict == one[i].verdict);
        if (refs[i].verdict == Verdict::drop) CHECK(refs[i].reason == one[i].reason);
        CHECK(Bytes(bufs[i].begin(), bufs[i].begin() + refs[i].len) == one[i].bytes);
    }
    CHECK(str(diff(WorkerCounters{}, burst.dp->counters())) == str(diff(WorkerCounters{}, single.dp->counters())));
    CHECK(burst.dp->counters().tx == 26);
}

TEST_CASE("dataplane: malformed-packet fuzz never crashes and accounts for every packet", "[dataplane]") {
    Rig rig(lab_config(), env(), 64);
    std::mt19937 rng(77);
    const std::vector<Bytes> seeds = {
        from_client().ipv4(kClient, kVipNat).tcp(1, 80, kSyn).payload(10).build(),
        from_client().ipv4(kClient, kVipFull).udp(1, 53).payload(10).build(),
        from_client().ipv6(kClient6, kVip6Nat).ext(0).tcp(1, 80, kSyn).build(),
        Pkt().eth(kClientMac, kPort0Mac).ipv6(kClient6, "ff02::1:ff00:10", 255).nd_solicit(kVip6Nat, kClientMac).build(),
        Pkt().eth(kClientMac, kBcast).arp_request(kClientMac, kClient, kVipNat).build(),
        from_backend(kBe2Mac).ipv4(kBe2, kSnat).tcp(8080, 1024, kAck).build(),
    };
    for (int i = 0; i < 50'000; ++i) {
        Bytes f = seeds[rng() % seeds.size()];
        for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) f[rng() % std::min<size_t>(f.size(), 80)] ^= static_cast<uint8_t>(1u << (rng() % 8));
        if (rng() % 8 == 0) f.resize(rng() % (f.size() + 1));
        const Out o = rig.run(f, static_cast<uint32_t>(i), static_cast<uint16_t>(rng() % 2));
        REQUIRE(o.verdict != Verdict::redirect);
        REQUIRE(o.bytes.size() <= 2048);
    }
    const WorkerCounters& c = rig.dp->counters();
    CHECK(c.rx == 50'000);
    CHECK(c.rx == c.tx + c.total_drops());
    CHECK(c.tx > 100);
}

// --- Two workers ---------------------------------------------------------------------------------

namespace {

// The nat owner as the NIC would compute it: Toeplitz over the client's address and port.
uint16_t owner_of(const sluice::net::Reta& reta, const std::string& addr, uint16_t port) {
    std::vector<uint8_t> in = vec(sluice::test::ip4(addr));
    in.push_back(static_cast<uint8_t>(port >> 8));
    in.push_back(static_cast<uint8_t>(port));
    return queue_of(reta, in);
}

// A client address whose nat flow from `port` is owned by `worker`.
std::string client_owned_by(uint16_t worker, const sluice::net::Reta& reta, uint16_t port = 40000) {
    for (int i = 1; i < 250; ++i) {
        const std::string a = "10.0.1." + std::to_string(i);
        if (owner_of(reta, a, port) == worker) return a;
    }
    FAIL("no client address for worker " << worker);
    return {};
}

}  // namespace

TEST_CASE("dataplane: two workers, nat flows are handled by the client's owner", "[dataplane]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    Rig w0(lab_config(), env(0, 2)), w1(lab_config(), env(1, 2));
    const std::string c1 = client_owned_by(1, reta), c0 = client_owned_by(0, reta);
    const char* a1 = c1.c_str();
    const char* a0 = c0.c_str();
    // The Dataplane agrees with the NIC's view (bit-serial Toeplitz of address and port).
    const uint16_t p40000 = static_cast<uint16_t>(40000 >> 8 | 40000 << 8);
    CHECK(w0.dp->nat_owner(sluice::test::ip4(a1).data(), 4, p40000) == 1);
    CHECK(w0.dp->nat_owner(sluice::test::ip4(a0).data(), 4, p40000) == 0);
    CHECK(w1.dp->nat_owner(sluice::test::ip4(a1).data(), 4, p40000) == 1);
    // The port matters: one client's flows spread over both workers.
    std::set<uint16_t> owners;
    for (uint16_t port = 40000; port < 40032; ++port) {
        const uint16_t raw = static_cast<uint16_t>(port >> 8 | port << 8);
        const uint16_t o = w0.dp->nat_owner(sluice::test::ip4(a1).data(), 4, raw);
        CHECK(o == owner_of(reta, c1, port));
        owners.insert(o);
    }
    CHECK(owners.size() == 2);

    const Bytes syn = from_client().ipv4(a1, kVipNat).tcp(40000, 80, kSyn).build();
    const Bytes syn_out = to_backend(kBe1Mac).ipv4(a1, kBe1, 63).tcp(40000, 8080, kSyn).build();
    const Bytes rep = from_backend(kBe1Mac).ipv4(kBe1, a1).tcp(8080, 40000, kSyn | kAck).build();
    const Bytes rep_out = to_client().ipv4(kVipNat, a1, 63).tcp(80, 40000, kSyn | kAck).build();
    run_rows(w0, {
        redirect("SYN from worker 1's client lands on worker 0", syn, 1, {{"rx", 1}, {"redirected_out", 1}}),
        redirect("its reply lands on worker 0 too", rep, 1, {{"rx", 1}, {"redirected_out", 1}}, 1, 1),
        drop("a reply redirected to a worker that does not own it", rep, Drop::redirect_loop,
             {{"redirected_in", 1}, {"drop.redirect_loop", 1}}, 2, 1, true),
        tx("worker 0's own client is served locally", from_client().ipv4(a0, kVipNat).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe1Mac).ipv4(a0, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow, 3),
    });
    run_rows(w1, {
        tx("worker 1 takes the redirected SYN", syn, 1, syn_out,
           {{"redirected_in", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}}, 0, 0, true),
        tx("and the redirected reply", rep, 0, rep_out, {{"redirected_in", 1}, {"tx", 1}, {"replies", 1}}, 1, 1, true),
        tx("a reply that RSS brings straight to worker 1", rep, 0, rep_out, kReply, 2, 1),
    });
    CHECK(w0.dp->flows4().size() == 1);
    CHECK(w1.dp->flows4().size() == 1);
}

// Dataplane::forward redirects a nat packet to its owner only when it was not redirected
// already; a redirected packet that lands on a non-owner is processed there instead of being
// dropped as redirect_loop (reply() does drop it). The flow is then created on a worker whose
// replies RSS never delivers.
TEST_CASE("dataplane: a redirected nat forward packet on a non-owner is a redirect loop", "[dataplane]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    Rig w0(lab_config(), env(0, 2));
    const std::string c1 = client_owned_by(1, reta);
    run_rows(w0, {drop("SYN for worker 1's client, redirected to worker 0",
                       from_client().ipv4(c1.c_str(), kVipNat).tcp(40000, 80, kSyn).build(), Drop::redirect_loop,
                       {{"redirected_in", 1}, {"drop.redirect_loop", 1}}, 0, 0, true)});
    CHECK(w0.dp->flows4().size() == 0);
}

TEST_CASE("dataplane: two workers, fullnat SNAT ports bring replies back to the worker", "[dataplane]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    const auto be = sluice::test::ip4(kBe2), snat = sluice::test::ip4(kSnat);
    // The reply's RSS input: backend, SNAT, backend port, SNAT port.
    auto reply_queue = [&](uint16_t snat_port) {
        std::vector<uint8_t> in = vec(be);
        in.insert(in.end(), snat.begin(), snat.end());
        const uint8_t ports[4] = {8080 >> 8, 8080 & 0xFF, static_cast<uint8_t>(snat_port >> 8), static_cast<uint8_t>(snat_port)};
        in.insert(in.end(), ports, ports + 4);
        return queue_of(reta, in);
    };
    for (uint16_t w = 0; w < 2; ++w) {
        Rig rig(lab_config(), env(w, 2));
        // Expected: the SNAT ports from 1024 up whose reply hashes to this worker, in order.
        std::vector<uint16_t> want;
        for (uint32_t p = 1024; want.size() < 20; ++p)
            if (reply_queue(static_cast<uint16_t>(p)) == w) want.push_back(static_cast<uint16_t>(p));
        for (size_t i = 0; i < want.size(); ++i) {
            INFO("worker " << w << " flow " << i);
            const uint16_t cport = static_cast<uint16_t>(30000 + i);
            const std::string client = "10.0.2." + std::to_string(1 + i);
            const Out o = rig.run(from_client().ipv4(client, kVipFull).tcp(cport, 80, kSyn).build(), 0);
            REQUIRE(o.verdict == Verdict::tx);
            const uint16_t port = be16(o.bytes, 34);
            CHECK(port == want[i]);
            CHECK(reply_queue(port) == w);
            CHECK(o.bytes == to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).tcp(port, 8080, kSyn).build());
            // The reply, delivered by RSS to this worker, is translated back here.
            const Out r = rig.run(from_backend(kBe2Mac).ipv4(kBe2, kSnat).tcp(8080, port, kSyn | kAck).build(), 1, 1);
            REQUIRE(r.verdict == Verdict::tx);
            CHECK(r.bytes == to_client().ipv4(kVipFull, client, 63).tcp(80, cport, kSyn | kAck).build());
        }
        CHECK(rig.dp->counters().redirected_out == 0);
    }
}

// --- Fragments -------------------------------------------------------------------------------

TEST_CASE("dataplane: later fragments follow their first one, both ways", "[dataplane][frag]") {
    Rig rig;
    // UDP to the nat DNS VIP: the first fragment's UDP length counts the whole datagram.
    auto first = [](Pkt p) { return p.ip_id(0x4242).udp(5000, 53).payload(24).frag(true, 0).udp_len(8 + 24 + 16); };
    auto later = [](Pkt p, uint16_t id = 0x4242) { return p.ip_id(id).l4_proto(17).payload(16).frag(false, 4); };
    auto rfirst = [](Pkt p) { return p.ip_id(7).udp(5353, 5000).payload(40).frag(true, 0).udp_len(8 + 40 + 8); };
    auto rlater = [](Pkt p) { return p.ip_id(7).l4_proto(17).payload(8).frag(false, 6); };
    const Deltas kLater = {{"rx", 1}, {"tx", 1}, {"frag_forwarded", 1}};
    run_rows(rig, {
        tx("first fragment: balanced and rewritten like any packet",
           first(from_client().ipv4(kClient, kVipNat, 64)).build(), 1,
           first(to_backend(kBe1Mac).ipv4(kClient, kBe1, 63)).udp(5000, 5353).build(),
           {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"frag_tracked", 1}}),
        tx("later fragment: same addresses, TTL and MACs; payload untouched",
           later(from_client().ipv4(kClient, kVipNat, 64)).build(), 1,
           later(to_backend(kBe1Mac).ipv4(kClient, kBe1, 63)).build(), kLater, 1),
        drop("a later fragment of another datagram", later(from_client().ipv4(kClient, kVipNat, 64), 0x4243).build(),
             Drop::fragment, dropped("fragment"), 2),
        drop("a later fragment with TTL 1", later(from_client().ipv4(kClient, kVipNat, 1)).build(), Drop::ttl_expired,
             dropped("ttl_expired"), 3),
        tx("reply first fragment", rfirst(from_backend(kBe1Mac).ipv4(kBe1, kClient, 64)).build(), 0,
           rfirst(to_client().ipv4(kVipNat, kClient, 63)).udp(53, 5000).build(),
           {{"rx", 1}, {"tx", 1}, {"replies", 1}, {"frag_tracked", 1}}, 4, 1),
        tx("reply later fragment", rlater(from_backend(kBe1Mac).ipv4(kBe1, kClient, 64)).build(), 0,
           rlater(to_client().ipv4(kVipNat, kClient, 63)).build(), kLater, 5, 1),
        drop("five seconds later the datagram is forgotten", later(from_client().ipv4(kClient, kVipNat, 64)).build(),
             Drop::fragment, dropped("fragment"), 5001),
    });
    // Later fragments are the VIP's and the backend's traffic too: the VIP counts the client's
    // two fragments, the backend those and the reply's two.
    const int dns4 = rig.svc->find_vip_by_name("dns4");
    REQUIRE(dns4 >= 0);
    const uint16_t be = rig.svc->vips()[static_cast<size_t>(dns4)].backends[0];
    const uint64_t fwd_bytes = first(from_client().ipv4(kClient, kVipNat, 64)).build().size() +
                               later(from_client().ipv4(kClient, kVipNat, 64)).build().size();
    const uint64_t rev_bytes = rfirst(from_backend(kBe1Mac).ipv4(kBe1, kClient, 64)).build().size() +
                               rlater(from_backend(kBe1Mac).ipv4(kBe1, kClient, 64)).build().size();
    const TrafficCounters& vc = rig.dp->counters().vips[static_cast<size_t>(dns4)];
    const TrafficCounters& bc = rig.dp->counters().backends[be];
    CHECK(vc.packets == 2);
    CHECK(vc.bytes == fwd_bytes);
    CHECK(bc.packets == 4);
    CHECK(bc.bytes == fwd_bytes + rev_bytes);
}

TEST_CASE("dataplane: IPv6 fullnat fragments", "[dataplane][frag]") {
    Rig rig;
    run_rows(rig, {
        tx("first fragment: SNAT source, backend destination",
           from_client().ipv6(kClient6, kVip6Full, 64).ext(44).frag(true, 0).tcp(40000, 80, kAck).payload(8).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).ext(44).frag(true, 0).tcp(1024, 8080, kAck).payload(8).build(),
           {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"non_syn_miss", 1}, {"frag_tracked", 1}}),
        tx("later fragment",
           from_client().ipv6(kClient6, kVip6Full, 64).ext(44).frag(false, 5).l4_proto(6).payload(16).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).ext(44).frag(false, 5).l4_proto(6).payload(16).build(),
           {{"rx", 1}, {"tx", 1}, {"frag_forwarded", 1}}, 1),
        tx("a first fragment whose fragmentable part starts with destination options",
           from_client().ipv6(kClient6, kVip6Full, 64).ext(44).ext(60).frag(true, 0).tcp(40001, 80, kAck).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).ext(44).ext(60).frag(true, 0).tcp(1025, 8080, kAck).build(),
           {{"rx", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"non_syn_miss", 1}, {"frag_tracked", 1}}, 2),
        tx("its later fragment names that header, not TCP, and still follows",
           from_client().ipv6(kClient6, kVip6Full, 64).ext(44).frag(false, 3).l4_proto(60).payload(16).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).ext(44).frag(false, 3).l4_proto(60).payload(16).build(),
           {{"rx", 1}, {"tx", 1}, {"frag_forwarded", 1}}, 3),
    });
}

TEST_CASE("dataplane: two workers, fragments of another worker's flow are handed over together", "[dataplane][frag]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    Rig w0(lab_config(), env(0, 2)), w1(lab_config(), env(1, 2));
    const std::string c1 = client_owned_by(1, reta, 5000);
    const char* a1 = c1.c_str();
    auto first = [&](Pkt p) { return p.ip_id(9).udp(5000, 53).payload(24).frag(true, 0).udp_len(8 + 24 + 16); };
    auto later = [&](Pkt p) { return p.ip_id(9).l4_proto(17).payload(16).frag(false, 4); };
    run_rows(w0, {
        redirect("first fragment of worker 1's client", first(from_client().ipv4(a1, kVipNat)).build(), 1,
                 {{"rx", 1}, {"redirected_out", 1}, {"frag_tracked", 1}}),
        redirect("its later fragment goes the same way", later(from_client().ipv4(a1, kVipNat)).build(), 1,
                 {{"rx", 1}, {"redirected_out", 1}}, 1),
    });
    run_rows(w1, {
        tx("worker 1 balances the first fragment", first(from_client().ipv4(a1, kVipNat)).build(), 1,
           first(to_backend(kBe1Mac).ipv4(a1, kBe1, 63)).udp(5000, 5353).build(),
           {{"redirected_in", 1}, {"tx", 1}, {"forwarded", 1}, {"maglev_picks", 1}, {"frag_tracked", 1}}, 0, 0, true),
        tx("and the later one", later(from_client().ipv4(a1, kVipNat)).build(), 1,
           later(to_backend(kBe1Mac).ipv4(a1, kBe1, 63)).build(), {{"redirected_in", 1}, {"tx", 1}, {"frag_forwarded", 1}},
           1, 0, true),
    });
}

// Found by the fuzzer: two datagrams of one client with the same IP ID, whose flows belong to
// different workers, each reach the other worker first. Each worker then remembers the
// identity as "hand over to the other"; a later fragment must not bounce between them.
TEST_CASE("dataplane: two workers, a reused IP ID does not make fragments loop", "[dataplane][frag]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    Rig w0(lab_config(), env(0, 2)), w1(lab_config(), env(1, 2));
    const std::string c = client_owned_by(1, reta, 5000);
    uint16_t p0 = 5001;
    while (owner_of(reta, c, p0) != 0) ++p0;
    auto first = [&](uint16_t port) {
        return from_client().ipv4(c.c_str(), kVipNat).ip_id(77).udp(port, 53).payload(24).frag(true, 0).udp_len(48).build();
    };
    const Bytes later = from_client().ipv4(c.c_str(), kVipNat).ip_id(77).l4_proto(17).payload(16).frag(false, 4).build();
    run_rows(w0, {redirect("worker 1's datagram reaches worker 0", first(5000), 1,
                           {{"rx", 1}, {"redirected_out", 1}, {"frag_tracked", 1}})});
    run_rows(w1, {redirect("worker 0's datagram, same IP ID, reaches worker 1", first(p0), 0,
                           {{"rx", 1}, {"redirected_out", 1}, {"frag_tracked", 1}}, 1)});
    run_rows(w0, {redirect("a later fragment at worker 0 follows its record", later, 1,
                           {{"rx", 1}, {"redirected_out", 1}}, 2)});
    run_rows(w1, {drop("handed to worker 1, whose record points back: dropped, not looped", later, Drop::fragment,
                       {{"redirected_in", 1}, {"drop.fragment", 1}}, 3, 0, true)});
}

TEST_CASE("dataplane: a fragment flood stays within the fragment table", "[dataplane][frag]") {
    Rig rig;
    const uint64_t before = rig.dp->counters().frag_tracked;
    for (uint32_t i = 0; i < 50000; ++i) {
        const Out o = rig.run(from_client()
                                  .ipv4(kClient, kVipNat)
                                  .ip_id(static_cast<uint16_t>(i))
                                  .udp(static_cast<uint16_t>(1024 + i % 60000), 53)
                                  .payload(8)
                                  .frag(true, 0)
                                  .udp_len(100)
                                  .build(),
                              i / 100);
        REQUIRE(o.verdict == Verdict::tx);
    }
    const WorkerCounters& c = rig.dp->counters();
    CHECK(c.frag_tracked - before == 50000);
    CHECK(c.frag_evictions > 0);
    CHECK(c.frag_evictions <= 50000);
    // The newest datagram is still followed.
    const Out o = rig.run(from_client().ipv4(kClient, kVipNat).ip_id(49999).l4_proto(17).payload(8).frag(false, 2).build(), 500);
    CHECK(o.verdict == Verdict::tx);
}

// --- ICMP errors ------------------------------------------------------------------------------

namespace {
Bytes ip_part(const Bytes& frame) { return Bytes(frame.begin() + 14, frame.end()); }
Bytes head(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)); }
constexpr const char* kRouter = "198.18.0.1";
constexpr const char* kRouter6 = "2001:db8:ffff::1";
const Deltas kIcmp = {{"rx", 1}, {"tx", 1}, {"icmp_forwarded", 1}};
}  // namespace

TEST_CASE("dataplane: ICMP errors about nat flows reach the other side, translated", "[dataplane][icmp]") {
    Rig rig;
    // The packets Sluice sent, as quoted by the routers that could not deliver them.
    const Bytes to_cl = ip_part(to_client().ipv4(kVipNat, kClient, 63).tcp(80, 40000, kAck).payload(20).build());
    const Bytes to_cl_b = ip_part(Pkt().ipv4(kBe1, kClient, 63).tcp(8080, 40000, kAck).payload(20).build());
    const Bytes to_be = ip_part(to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kAck).payload(20).build());
    const Bytes to_be_c = ip_part(Pkt().ipv4(kClient, kVipNat, 63).tcp(40000, 80, kAck).payload(20).build());
    run_rows(rig, {
        tx("the flow", from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe1Mac).ipv4(kClient, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
        tx("fragmentation needed on the client side: to the backend, quoting the backend's own packet",
           from_client().ipv4(kRouter, kVipNat, 250).icmp(3, 4).payload(to_cl).build(), 1,
           to_backend(kBe1Mac).ipv4(kRouter, kBe1, 249).icmp(3, 4).payload(to_cl_b).build(), kIcmp, 1),
        tx("a quote of only 8 transport bytes (RFC 792): no transport checksum to patch",
           from_client().ipv4(kRouter, kVipNat, 250).icmp(11, 0).payload(head(to_cl, 28)).build(), 1,
           to_backend(kBe1Mac).ipv4(kRouter, kBe1, 249).icmp(11, 0).payload(head(to_cl_b, 28)).build(), kIcmp, 2),
        tx("unreachable on the backend side: to the client, from the VIP, quoting its packet to the VIP",
           from_backend(kBe1Mac).ipv4("198.51.100.254", kClient, 64).icmp(3, 1).payload(to_be).build(), 0,
           to_client().ipv4(kVipNat, kClient, 63).icmp(3, 1).payload(to_be_c).build(), kIcmp, 3, 1),
        tx("the backend itself refuses: its address is hidden too",
           from_backend(kBe1Mac).ipv4(kBe1, kClient, 64).icmp(3, 3).payload(to_be).build(), 0,
           to_client().ipv4(kVipNat, kClient, 63).icmp(3, 3).payload(to_be_c).build(), kIcmp, 4, 1),
        drop("an error about a client port with no flow",
             from_client().ipv4(kRouter, kVipNat).icmp(3, 4)
                 .payload(ip_part(Pkt().ipv4(kVipNat, kClient, 63).tcp(80, 40001, kAck).build())).build(),
             Drop::icmp_no_flow, dropped("icmp_no_flow"), 5),
        drop("a quote of 10 bytes", from_client().ipv4(kRouter, kVipNat).icmp(3, 4).payload(head(to_cl, 10)).build(),
             Drop::icmp_bad_quote, dropped("icmp_bad_quote"), 6),
        drop("a quote of the IP header and 4 bytes", from_client().ipv4(kRouter, kVipNat).icmp(3, 4).payload(head(to_cl, 24)).build(),
             Drop::icmp_bad_quote, dropped("icmp_bad_quote"), 7),
        drop("a redirect is not an error", from_client().ipv4(kRouter, kVipNat).icmp(5, 1).payload(to_cl).build(),
             Drop::icmp_unhandled, dropped("icmp_unhandled"), 8),
        drop("an error with TTL 1", from_client().ipv4(kRouter, kVipNat, 1).icmp(3, 4).payload(to_cl).build(),
             Drop::ttl_expired, dropped("ttl_expired"), 9),
    });
}

TEST_CASE("dataplane: ICMP errors about fullnat and dsr flows", "[dataplane][icmp]") {
    Rig rig;
    const Bytes to_cl = ip_part(Pkt().ipv4(kVipFull, kClient, 63).udp(53, 5001).payload(11).build());
    const Bytes to_cl_b = ip_part(Pkt().ipv4(kBe2, kSnat, 63).udp(5353, 1024).payload(11).build());
    const Bytes to_be = ip_part(Pkt().ipv4(kSnat, kBe2, 63).udp(1024, 5353).payload(11).build());
    const Bytes to_be_c = ip_part(Pkt().ipv4(kClient, kVipFull, 63).udp(5001, 53).payload(11).build());
    const Bytes dsr_q = ip_part(Pkt().ipv4(kVipDsr, kClient, 64).tcp(80, 40000, kAck).build());
    run_rows(rig, {
        tx("the fullnat flow", from_client().ipv4(kClient, kVipFull).udp(5001, 53).payload(11).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).udp(1024, 5353).payload(11).build(), kNewFlow),
        tx("client side: to the backend from the SNAT address, the quote as the backend sent it",
           from_client().ipv4(kRouter, kVipFull, 64).icmp(3, 4).payload(to_cl).build(), 1,
           to_backend(kBe2Mac).ipv4(kSnat, kBe2, 63).icmp(3, 4).payload(to_cl_b).build(), kIcmp, 1),
        tx("backend side: to the client from the VIP, the quote as the client sent it",
           from_backend(kBe2Mac).ipv4(kBe2, kSnat, 64).icmp(3, 3).payload(to_be).build(), 0,
           to_client().ipv4(kVipFull, kClient, 63).icmp(3, 3).payload(to_be_c).build(), kIcmp, 2, 1),
        drop("backend side, addressed to someone other than the quoted source",
             from_backend(kBe2Mac).ipv4(kBe2, kSelf, 64).icmp(3, 3).payload(to_be).build(), Drop::for_self,
             dropped("for_self"), 3, 1),
        tx("the dsr flow", from_client().ipv4(kClient, kVipDsr).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe3Mac).ipv4(kClient, kVipDsr).tcp(40000, 80, kSyn).build(), kNewFlow, 4),
        tx("dsr: the error about the backend's direct reply goes to it unchanged but for the MACs",
           from_client().ipv4(kRouter, kVipDsr, 64).icmp(3, 4).payload(dsr_q).build(), 1,
           to_backend(kBe3Mac).ipv4(kRouter, kVipDsr, 64).icmp(3, 4).payload(dsr_q).build(), kIcmp, 5),
    });
}

TEST_CASE("dataplane: ICMPv6 packet too big and unreachable, nat and fullnat", "[dataplane][icmp]") {
    Rig rig;
    const Bytes to_cl = ip_part(Pkt().ipv6(kVip6Nat, kClient6, 63).tcp(80, 40000, kAck).payload(30).build());
    const Bytes to_cl_b = ip_part(Pkt().ipv6(kBe6a, kClient6, 63).tcp(8080, 40000, kAck).payload(30).build());
    const Bytes to_be = ip_part(Pkt().ipv6(kSnat6, kBe6b, 63).tcp(1024, 8080, kSyn).build());
    const Bytes to_be_c = ip_part(Pkt().ipv6(kClient6, kVip6Full, 63).tcp(40000, 80, kSyn).build());
    run_rows(rig, {
        tx("nat flow", from_client().ipv6(kClient6, kVip6Nat).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe6aMac).ipv6(kClient6, kBe6a, 63).tcp(40000, 8080, kSyn).build(), kNewFlow),
        tx("packet too big on the client side: to the backend (pseudo header and quote patched)",
           from_client().ipv6(kRouter6, kVip6Nat, 64).icmpv6(2, 0).payload(to_cl).build(), 1,
           to_backend(kBe6aMac).ipv6(kRouter6, kBe6a, 63).icmpv6(2, 0).payload(to_cl_b).build(), kIcmp, 1),
        tx("fullnat flow", from_client().ipv6(kClient6, kVip6Full).tcp(40000, 80, kSyn).build(), 1,
           to_backend(kBe6bMac).ipv6(kSnat6, kBe6b, 63).tcp(1024, 8080, kSyn).build(), kNewFlow, 2),
        tx("unreachable on the backend side: to the client",
           from_backend(kBe6bMac).ipv6("2001:db8:b::fe", kSnat6, 64).icmpv6(1, 4).payload(to_be).build(), 0,
           to_client().ipv6(kVip6Full, kClient6, 63).icmpv6(1, 4).payload(to_be_c).build(), kIcmp, 3, 1),
        tx("a quote with hop-by-hop and destination-options headers is walked like a packet",
           from_client().ipv6(kRouter6, kVip6Nat, 64).icmpv6(2, 0)
               .payload(ip_part(Pkt().ipv6(kVip6Nat, kClient6, 63).ext(0).ext(60).tcp(80, 40000, kAck).payload(9).build()))
               .build(),
           1,
           to_backend(kBe6aMac).ipv6(kRouter6, kBe6a, 63).icmpv6(2, 0)
               .payload(ip_part(Pkt().ipv6(kBe6a, kClient6, 63).ext(0).ext(60).tcp(8080, 40000, kAck).payload(9).build()))
               .build(),
           kIcmp, 4),
        tx("a quote of a first fragment (its ports are there)",
           from_client().ipv6(kRouter6, kVip6Nat, 64).icmpv6(2, 0)
               .payload(ip_part(Pkt().ipv6(kVip6Nat, kClient6, 63).ext(44).frag(true, 0).tcp(80, 40000, kAck).payload(9).build()))
               .build(),
           1,
           to_backend(kBe6aMac).ipv6(kRouter6, kBe6a, 63).icmpv6(2, 0)
               .payload(ip_part(Pkt().ipv6(kBe6a, kClient6, 63).ext(44).frag(true, 0).tcp(8080, 40000, kAck).payload(9).build()))
               .build(),
           kIcmp, 5),
        drop("a quote of a later fragment has no ports",
             from_client().ipv6(kRouter6, kVip6Nat).icmpv6(2, 0)
                 .payload(ip_part(Pkt().ipv6(kVip6Nat, kClient6).ext(44).frag(true, 8).tcp(80, 40000, kAck).build())).build(),
             Drop::icmp_no_flow, dropped("icmp_no_flow"), 6),
        drop("a quote whose extension header is cut short",
             from_client().ipv6(kRouter6, kVip6Nat).icmpv6(2, 0)
                 .payload(head(ip_part(Pkt().ipv6(kVip6Nat, kClient6).ext(60).tcp(80, 40000, kAck).build()), 44)).build(),
             Drop::icmp_bad_quote, dropped("icmp_bad_quote"), 7),
    });
}

TEST_CASE("dataplane: two workers, an ICMP error lands on the flow's owner", "[dataplane][icmp]") {
    const auto reta = sluice::net::Reta::round_robin(2);
    Rig w0(lab_config(), env(0, 2)), w1(lab_config(), env(1, 2));
    const std::string c1 = client_owned_by(1, reta);
    const char* a1 = c1.c_str();
    const Bytes q = ip_part(Pkt().ipv4(kVipNat, a1, 63).tcp(80, 40000, kAck).build());
    const Bytes icmp = from_client().ipv4(kRouter, kVipNat).icmp(3, 4).payload(q).build();
    run_rows(w1, {tx("worker 1's flow", from_client().ipv4(a1, kVipNat).tcp(40000, 80, kSyn).build(), 1,
                     to_backend(kBe1Mac).ipv4(a1, kBe1, 63).tcp(40000, 8080, kSyn).build(), kNewFlow)});
    run_rows(w0, {redirect("the error arrives at worker 0", icmp, 1, {{"rx", 1}, {"redirected_out", 1}}, 1)});
    run_rows(w1, {tx("worker 1 translates it", icmp, 1,
                     to_backend(kBe1Mac).ipv4(kRouter, kBe1, 63).icmp(3, 4)
                         .payload(ip_part(Pkt().ipv4(kBe1, a1, 63).tcp(8080, 40000, kAck).build())).build(),
                     {{"redirected_in", 1}, {"tx", 1}, {"icmp_forwarded", 1}}, 2, 0, true)});
}

TEST_CASE("snat ports: each worker's share is predicted, enforced, and a worker with none refused", "[dataplane]") {
    Config c = lab_config();
    c.snat_port_min = 40000;
    c.snat_port_max = 40015;
    const auto reta = sluice::net::Reta::round_robin(2);
    const sluice::net::Toeplitz t;
    // Brute force, port by port: the worker that the reply backend -> SNAT:port reaches.
    auto owned = [&](const char* be, uint16_t be_port, uint16_t w) {
        const IpAddr b = ip(be), s = ip(kSnat);
        uint32_t n = 0;
        for (uint32_t p = c.snat_port_min; p <= c.snat_port_max; ++p)
            n += reta.queue(t.hash_tuple(b.bytes.data(), s.bytes.data(), 4, htons(be_port), htons(static_cast<uint16_t>(p)))) == w;
        return n;
    };
    const auto shares = snat_shares(c, 2, reta);
    REQUIRE(shares.size() == 2);  // both SNAT addresses serve fullnat VIPs
    REQUIRE(shares[0].addr == ip(kSnat));
    for (uint16_t w = 0; w < 2; ++w) {
        INFO("worker " << w);
        // full4 (TCP to 8080) and fulldns4 (UDP to 5353) share backend kBe2: the fewer counts.
        CHECK(shares[0].fewest[w] == std::min(owned(kBe2, 8080, w), owned(kBe2, 5353, w)));
        // The data path takes exactly the predicted ports, then refuses.
        Rig rig(c, env(w, 2));
        uint32_t made = 0;
        for (uint16_t i = 0; i < 40; ++i) {
            const Out o = rig.run(from_client().ipv4(kClient, kVipFull).tcp(static_cast<uint16_t>(1000 + i), 80, kSyn).build(), i);
            made += o.verdict == Verdict::tx;
        }
        CHECK(made == owned(kBe2, 8080, w));
        CHECK(rig.dp->counters().drops[static_cast<size_t>(Drop::snat_exhausted)] == 40 - made);
    }
    CHECK(check_snat_shares(c, 2, reta));
    // One port: one of the two workers owns none toward each backend.
    c.snat_port_max = c.snat_port_min;
    const auto st = check_snat_shares(c, 2, reta);
    REQUIRE(!st);
    CHECK(st.error().find("owns none of SNAT") != std::string::npos);
    CHECK(check_snat_shares(c, 1, sluice::net::Reta::round_robin(1)));
}

TEST_CASE("dataplane: a nat answer of a flow another instance started goes to the client gateway", "[dataplane]") {
    // Without --client-gateway there is nowhere to send it.
    {
        Rig rig;
        CHECK(rig.run(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 41000, kAck).build(), 0, 1).reason ==
              Drop::no_flow);
    }
    Config c = lab_config();
    const char* gw_mac = "02:00:00:00:00:fe";
    c.client_gateways = {ip("192.0.2.1"), ip("2001:db8:1::1")};
    c.neighbors.push_back({ip("192.0.2.1"), macv(gw_mac)});  // as ARP would have learnt it
    Rig rig(c);
    const Out v4 = rig.run(from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 41000, kAck).build(), 0, 1);
    REQUIRE(v4.verdict == Verdict::tx);
    CHECK(v4.out == 0);
    CHECK(v4.bytes == Pkt().eth(kPort0Mac, gw_mac).ipv4(kVipNat, kClient, 63).tcp(80, 41000, kAck).build());
    CHECK(rig.dp->counters().stateless_replies == 1);
    // IPv6: its gateway is not resolved yet, so the answer is dropped, counted.
    CHECK(rig.run(from_backend(kBe6aMac).ipv6(kBe6a, kClient6).tcp(8080, 41000, kAck).build(), 0, 1).reason ==
          Drop::no_flow);
}

namespace {
// The backends' flow gauges must say what the tables hold, state by state.
void check_gauges(const Rig& rig) {
    std::map<uint16_t, std::pair<uint64_t, uint64_t>> held;  // backend -> (active, inactive)
    const auto count = [&](const auto& ft) {
        for (uint32_t i = 0; i < ft.capacity(); ++i) {
            const auto& r = ft.record(i);
            if (r.state == FlowState::free) continue;
            auto& h = held[r.backend];
            ++(r.state == FlowState::tcp_established ? h.first : h.second);
        }
    };
    count(rig.dp->flows4());
    count(rig.dp->flows6());
    const auto& backends = rig.dp->counters().backends;
    for (uint16_t b = 0; b < backends.size(); ++b) {
        INFO("backend entry " << b);
        CHECK(backends[b].active_flows == held[b].first);
        CHECK(backends[b].inactive_flows == held[b].second);
    }
}
}  // namespace

TEST_CASE("dataplane: the backends' active and inactive flow gauges follow the table", "[dataplane]") {
    Rig rig;
    const int be1 = rig.svc->find_backend(0, ip(kBe1), 8080);
    REQUIRE(be1 >= 0);
    const auto gauges = [&] {
        const auto& c = rig.dp->counters().backends[static_cast<size_t>(be1)];
        return std::make_pair(c.active_flows, c.inactive_flows);
    };
    const Bytes syn = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kSyn).build();
    const Bytes synack = from_backend(kBe1Mac).ipv4(kBe1, kClient).tcp(8080, 40000, kSyn | kAck).seq(7000).build();
    const Bytes ack = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kAck).ack(7001).build();
    const Bytes fin = from_client().ipv4(kClient, kVipNat).tcp(40000, 80, kFin | kAck).ack(7001).build();
    REQUIRE(rig.run(syn, 0).verdict == Verdict::tx);
    CHECK(gauges() == std::make_pair(uint64_t{0}, uint64_t{1}));  // half-open
    REQUIRE(rig.run(synack, 1, 1).verdict == Verdict::tx);
    REQUIRE(rig.run(ack, 2).verdict == Verdict::tx);
    CHECK(gauges() == std::make_pair(uint64_t{1}, uint64_t{0}));  // established
    REQUIRE(rig.run(fin, 3).verdict == Verdict::tx);
    CHECK(gauges() == std::make_pair(uint64_t{0}, uint64_t{1}));  // half-closed
    rig.dp->expire(400'000, 1u << 20);
    CHECK(gauges() == std::make_pair(uint64_t{0}, uint64_t{0}));  // expired
    // Many flows of every kind, a full table evicting some, expiry: the gauges stay exact.
    Rig small(lab_config(), env(), 1024);
    uint32_t now = 0;
    for (uint32_t i = 0; i < 3000; ++i) {
        const uint16_t port = static_cast<uint16_t>(1024 + i);
        const char* client = i % 3 ? kClient : "10.0.0.2";
        switch (i % 5) {
            case 0: small.run(from_client().ipv4(client, kVipNat).tcp(port, 80, kSyn).build(), now); break;
            case 1: small.run(from_client().ipv4(client, kVipNat).tcp(port, 80, kAck).build(), now); break;
            case 2: small.run(from_client().ipv4(client, kVipNat).udp(port, 53).build(), now); break;
            case 3: small.run(from_backend(kBe1Mac).ipv4(kBe1, client).tcp(8080, static_cast<uint16_t>(port - 2), kAck).build(), now, 1); break;
            default: small.run(from_client().ipv6(kClient6, kVip6Nat).tcp(port, 80, kSyn).build(), now); break;
        }
        now += 7;
        if (i % 500 == 0) small.dp->expire(now, 64);
    }
    check_gauges(small);
    small.dp->expire(now + 10'000, 1u << 20);
    check_gauges(small);
    small.dp->expire(now + 1'000'000, 1u << 20);
    check_gauges(small);
    CHECK(small.dp->flows4().size() == 0);
}

namespace {

std::vector<SessionReport> pop_all(Dataplane& dp) {
    std::vector<SessionReport> v;
    SessionReport r;
    REQUIRE(dp.session_reports());
    while (dp.session_reports()->pop(r)) v.push_back(r);
    return v;
}

Config sync_config() {
    Config c = lab_config();
    c.sync.id = 1;
    // A peer owns SNAT 192.0.2.200: its sessions' answers may come here once it is gone.
    c.sync.peers.push_back(SyncPeerConf{2, ip("192.0.2.2"), 7447, {ip("192.0.2.200")}});
    c.client_gateways = {ip("192.0.2.254")};
    c.neighbors.push_back({ip("192.0.2.254"), macv(kClientMac)});
    return c;
}

}  // namespace

TEST_CASE("dataplane: replication reports confirmed fullnat sessions and installs a peer's", "[dataplane][sync]") {
    Rig rig(sync_config());
    Dataplane& dp = *rig.dp;
    // A handshake: nothing is reported before the client acknowledges the backend's SYN-ACK.
    REQUIRE(rig.run(from_client().ipv4(kClient, kVipFull, 64).tcp(40000, 80, kSyn).seq(100).build(), 1).verdict ==
            Verdict::tx);
    REQUIRE(rig.run(from_backend(kBe2Mac).ipv4(kBe2, kSnat, 64).tcp(8080, 1024, kSyn | kAck).seq(5000).ack(101).build(),
                    2, 1)
                .verdict == Verdict::tx);
    CHECK(pop_all(dp).empty());
    REQUIRE(rig.run(from_client().ipv4(kClient, kVipFull, 64).tcp(40000, 80, kAck).seq(101).ack(5001).build(), 3)
                .verdict == Verdict::tx);
    auto up = pop_all(dp);
    REQUIRE(up.size() == 1);
    CHECK(up[0].kind == SessionReport::Kind::up);
    CHECK(up[0].state == FlowState::tcp_established);
    CHECK(up[0].addr_len == 4);
    CHECK(ntohs(up[0].snat_port_raw) == 1024);
    CHECK(up[0].snat_idx == 0);
    CHECK(up[0].replied);
    CHECK(std::memcmp(up[0].client, ip(kClient).bytes.data(), 4) == 0);
    // A nat flow is never reported (Maglev recomputes it).
    rig.run(from_client().ipv4(kClient, kVipNat, 64).tcp(40001, 80, kSyn).build(), 4);
    CHECK(pop_all(dp).empty());
    // Walking the table finds the session this worker made.
    std::vector<SessionReport> walked;
    walked.reserve(16);
    CHECK(dp.walk_sessions(false, 0, dp.flows4().capacity(), false, 5, walked) == dp.flows4().capacity());
    REQUIRE(walked.size() == 1);
    CHECK(walked[0].client_port_raw == htons(40000));
    CHECK(walked[0].idle_ms == 2);

    // A peer's session on its own SNAT address: installed, then its backend's answers are
    // translated back to the client (through the client gateway), and the client's packets go
    // out with the peer's SNAT address and port.
    const auto& snats = rig.svc->snat(sluice::net::Family::v4);
    REQUIRE(snats.size() == 2);  // ours, then the peer's
    CHECK(rig.svc->snat_own(sluice::net::Family::v4) == 1);
    SessionReport peer = up[0];
    peer.client_port_raw = htons(41000);
    peer.snat_idx = 1;
    peer.snat_port_raw = htons(3000);
    peer.idle_ms = 100;
    dp.learn_sessions(&peer, 1, 10);
    CHECK(dp.counters().sync_installed == 1);
    CHECK(pop_all(dp).empty());  // a learnt session is not reported again
    auto reply = rig.run(from_backend(kBe2Mac).ipv4(kBe2, "192.0.2.200", 64).tcp(8080, 3000, kAck).payload(2).build(),
                         11, 1);
    REQUIRE(reply.verdict == Verdict::tx);
    CHECK(sluice::test::hexdump(reply.bytes) ==
          sluice::test::hexdump(to_client().ipv4(kVipFull, kClient, 63).tcp(80, 41000, kAck).payload(2).build()));
    auto fwd = rig.run(from_client().ipv4(kClient, kVipFull, 64).tcp(41000, 80, kAck).build(), 12);
    REQUIRE(fwd.verdict == Verdict::tx);
    CHECK(sluice::test::hexdump(fwd.bytes) ==
          sluice::test::hexdump(to_backend(kBe2Mac).ipv4("192.0.2.200", kBe2, 63).tcp(3000, 8080, kAck).build()));
    // Its own flow of a tuple wins over a peer's report of it.
    SessionReport clash = up[0];
    clash.snat_idx = 1;
    dp.learn_sessions(&clash, 1, 13);
    CHECK(dp.counters().sync_conflicts == 1);
    // The peer's remove takes its session away; its answers are then no flow's.
    peer.kind = SessionReport::Kind::down;
    dp.learn_sessions(&peer, 1, 14);
    CHECK(dp.counters().sync_removed == 1);
    CHECK(rig.run(from_backend(kBe2Mac).ipv4(kBe2, "192.0.2.200", 64).tcp(8080, 3000, kAck).build(), 15, 1).reason ==
          Drop::no_flow);
    // A report naming what this snapshot lacks is refused and counted.
    SessionReport bad = up[0];
    bad.snat_idx = 7;
    dp.learn_sessions(&bad, 1, 16);
    bad = up[0];
    bad.vip = 0;  // a nat VIP
    dp.learn_sessions(&bad, 1, 16);
    CHECK(dp.counters().sync_install_refused == 2);
    // Our session's end is reported.
    rig.run(from_client().ipv4(kClient, kVipFull, 64).tcp(40000, 80, kRst).build(), 17);
    CHECK(rig.run(from_backend(kBe2Mac).ipv4(kBe2, kSnat, 64).tcp(8080, 1024, kAck).build(), 18, 1).verdict ==
          Verdict::tx);  // closing: still translated
    dp.expire(400'000, 1u << 20);
    auto down = pop_all(dp);
    REQUIRE(!down.empty());
    CHECK(down.back().kind == SessionReport::Kind::down);
    CHECK(down.back().client_port_raw == htons(40000));
}

TEST_CASE("dataplane: a new fullnat flow never takes a peer's SNAT address", "[dataplane][sync]") {
    Rig rig(sync_config());
    for (uint16_t p = 0; p < 50; ++p) {
        auto o = rig.run(from_client().ipv4(kClient, kVipFull, 64).tcp(static_cast<uint16_t>(30000 + p), 80, kSyn).build(),
                         p);
        REQUIRE(o.verdict == Verdict::tx);
        CHECK(std::memcmp(o.bytes.data() + 26, ip(kSnat).bytes.data(), 4) == 0);
    }
}
