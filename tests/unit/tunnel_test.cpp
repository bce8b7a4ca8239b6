// Tunnel VIPs through the real data path: the client's packet arrives unchanged inside the
// outer header, whose fields and checksums are checked against the packet builder's
// independent sums; a packet that no longer fits becomes the ICMP error that says what fits.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/config/options.hpp"
#include "lib/lb/dataplane.hpp"
#include "tests/unit/packet_builder.hpp"

using namespace sluice;
using namespace sluice::lb;
using namespace sluice::test;

namespace {

constexpr const char* kPort0Mac = "02:00:00:00:00:01";
constexpr const char* kPort1Mac = "02:00:00:00:00:02";
constexpr const char* kClientMac = "02:00:00:00:00:c1";
constexpr const char* kGwMac = "02:00:00:00:00:99";
constexpr const char* kBe6Mac = "02:00:00:00:00:66";
constexpr uint32_t kHeadroom = 128;

struct TunnelRig {
    std::shared_ptr<const Service> svc;
    std::unique_ptr<Dataplane> dp;
    std::vector<uint8_t> buf;

    explicit TunnelRig(std::vector<std::string> extra = {}) {
        std::vector<std::string> args = {
            "--vip", "t4,203.0.113.10:80/tcp,tunnel", "--backend", "t4,198.51.100.200",
            "--vip", "t6,[2001:db8::10]:80/tcp,tunnel", "--backend", "t6,[2001:db8:b::20]",
            "--vip", "t46,203.0.113.11:80/tcp,tunnel", "--backend", "t46,[2001:db8:b::21]",
            "--vip", "g4,203.0.113.12:53/udp,tunnel,encap=gue,gue-port=7777", "--backend", "g4,198.51.100.201",
            "--vip", "g6,[2001:db8::12]:53/udp,tunnel,encap=gue", "--backend", "g6,[2001:db8:b::22]",
            "--tunnel-source", "198.51.100.2", "--tunnel-source", "2001:db8:a::2",
            "--tunnel-gateway", "198.51.100.1", "--neighbor", std::string("198.51.100.1,") + kGwMac,
            "--neighbor", std::string("2001:db8:b::20,") + kBe6Mac, "--neighbor", std::string("2001:db8:b::21,") + kBe6Mac,
            "--neighbor", std::string("2001:db8:b::22,") + kBe6Mac, "--tunnel-mtu", "1400"};
        args.insert(args.end(), extra.begin(), extra.end());
        auto p = config::parse_args(args);
        if (!p) FAIL("parse_args: " << p.error());
        auto s = Service::build(p->config);
        if (!s) FAIL("Service::build: " << s.error());
        svc = std::make_shared<const Service>(std::move(*s));
        WorkerEnv e;
        e.client_port = 0;
        e.backend_port = 1;
        e.port_macs = {*net::parse_mac(kPort0Mac), *net::parse_mac(kPort1Mac)};
        e.settings = data_path_settings(p->config);
        dp = std::make_unique<Dataplane>(svc, e, 4096);
    }

    // Runs one frame arriving on port 0; returns the frame as it leaves (empty if not sent).
    Bytes run(const Bytes& in, PacketRef* out = nullptr, uint32_t headroom = kHeadroom) {
        buf.assign(kHeadroom + 4096, 0xEE);
        PacketRef p;
        p.data = buf.data() + kHeadroom;
        std::memcpy(p.data, in.data(), in.size());
        p.len = static_cast<uint32_t>(in.size());
        p.cap = 4096;
        p.headroom = static_cast<uint16_t>(headroom);
        dp->process(&p, 1, 0);
        if (out) *out = p;
        if (p.verdict != Verdict::tx) return {};
        return Bytes(p.data, p.data + p.len);
    }
};

Pkt from_client() { return Pkt().eth(kClientMac, kPort0Mac); }

// The inner packet as the client sent it: everything after the Ethernet header.
Bytes ip_of(const Bytes& frame) { return Bytes(frame.begin() + 14, frame.end()); }

Bytes mac_bytes(const char* text) {
    const auto m = mac(text);
    return Bytes(m.begin(), m.end());
}

uint16_t be16(const Bytes& b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }

}  // namespace

TEST_CASE("tunnel: IPv4 in IPv4 through the gateway, the packet unchanged inside", "[tunnel]") {
    TunnelRig rig;
    const Bytes in = from_client().ipv4("192.0.2.7", "203.0.113.10", 9).tcp(40000, 80, kSyn).payload(30).build();
    PacketRef p;
    const Bytes out = rig.run(in, &p);
    REQUIRE(p.verdict == Verdict::tx);
    CHECK(p.out == 1);
    REQUIRE(out.size() == 14 + 20 + in.size() - 14);
    CHECK(Bytes(out.begin(), out.begin() + 6) == mac_bytes(kGwMac));
    CHECK(Bytes(out.begin() + 6, out.begin() + 12) == mac_bytes(kPort1Mac));
    CHECK(be16(out, 12) == 0x0800);
    const uint8_t* o = out.data() + 14;
    CHECK(o[0] == 0x45);
    CHECK(be16(out, 14 + 2) == 20 + in.size() - 14);
    CHECK(be16(out, 14 + 6) == 0x4000);  // DF, never fragmented
    CHECK(o[8] == 64);
    CHECK(o[9] == 4);  // IPv4 inside
    CHECK(ref_sum(o, 20) == 0xFFFF);
    CHECK(Bytes(o + 12, o + 16) == Bytes{198, 51, 100, 2});
    CHECK(Bytes(o + 16, o + 20) == Bytes{198, 51, 100, 200});
    CHECK(Bytes(out.begin() + 34, out.end()) == ip_of(in));  // TTL 9 kept: the backend routes
    CHECK(rig.dp->counters().tunneled == 1);
}

TEST_CASE("tunnel: IPv6 in IPv6 and IPv4 in IPv6 to on-link backends", "[tunnel]") {
    TunnelRig rig;
    for (bool inner6 : {true, false}) {
        const Bytes in = inner6 ? from_client().ipv6("2001:db8:c::7", "2001:db8::10").tcp(40000, 80, kSyn).build()
                                : from_client().ipv4("192.0.2.7", "203.0.113.11").tcp(40000, 80, kSyn).build();
        const Bytes out = rig.run(in);
        REQUIRE(out.size() == 14 + 40 + in.size() - 14);
        CHECK(Bytes(out.begin(), out.begin() + 6) == mac_bytes(kBe6Mac));
        CHECK(be16(out, 12) == 0x86DD);
        CHECK(out[14] >> 4 == 6);
        CHECK(be16(out, 14 + 4) == in.size() - 14);
        CHECK(out[14 + 6] == (inner6 ? 41 : 4));
        CHECK(out[14 + 7] == 64);
        CHECK(Bytes(out.begin() + 54, out.end()) == ip_of(in));
    }
}

TEST_CASE("tunnel: GUE carries the packet in UDP with a per-flow source port", "[tunnel]") {
    TunnelRig rig;
    const Bytes a = from_client().ipv4("192.0.2.7", "203.0.113.12").udp(40000, 53).payload(12).build();
    const Bytes out = rig.run(a);
    REQUIRE(out.size() == 14 + 20 + 8 + a.size() - 14);
    CHECK(out[14 + 9] == 17);
    CHECK(be16(out, 34 + 2) == 7777);
    CHECK(be16(out, 34) >= 0xC000);
    CHECK(be16(out, 34 + 4) == 8 + a.size() - 14);
    CHECK(be16(out, 34 + 6) == 0);  // IPv4: no UDP checksum
    CHECK(Bytes(out.begin() + 42, out.end()) == ip_of(a));
    // The same flow, the same source port; another flow, most likely another.
    CHECK(be16(rig.run(a), 34) == be16(out, 34));

    const Bytes b = from_client().ipv6("2001:db8:c::7", "2001:db8::12").udp(40000, 53).payload(12).build();
    const Bytes out6 = rig.run(b);
    REQUIRE(out6.size() == 14 + 40 + 8 + b.size() - 14);
    CHECK(be16(out6, 54 + 2) == 6080);
    // IPv6: the UDP checksum covers the pseudo header and the whole inner packet.
    Bytes pseudo(out6.begin() + 14 + 8, out6.begin() + 14 + 40);
    const uint16_t ulen = be16(out6, 54 + 4);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<uint8_t>(ulen >> 8), static_cast<uint8_t>(ulen), 0, 0, 0, 17});
    CHECK(ref_sum(out6.data() + 54, ulen, ref_sum(pseudo.data(), pseudo.size())) == 0xFFFF);
}

TEST_CASE("tunnel: too big once wrapped: ICMP with the MTU that fits, never fragments", "[tunnel]") {
    TunnelRig rig;
    // 1400-byte tunnel MTU, 20 bytes of outer IPv4: 1380 fits, 1381 does not.
    const Bytes fits = from_client().ipv4("192.0.2.7", "203.0.113.10").df().tcp(40000, 80, kAck).payload(1380 - 40).build();
    CHECK(!rig.run(fits).empty());
    const Bytes big = from_client().ipv4("192.0.2.7", "203.0.113.10").df().tcp(40000, 80, kAck).payload(1381 - 40).build();
    PacketRef p;
    const Bytes err = rig.run(big, &p);
    REQUIRE(p.verdict == Verdict::tx);
    CHECK(p.out == 0);  // back to the client
    CHECK(Bytes(err.begin(), err.begin() + 6) == mac_bytes(kClientMac));
    const uint8_t* ip = err.data() + 14;
    CHECK(ip[9] == 1);
    CHECK(Bytes(ip + 12, ip + 16) == Bytes{203, 0, 113, 10});
    CHECK(Bytes(ip + 16, ip + 20) == Bytes{192, 0, 2, 7});
    CHECK(ref_sum(ip, 20) == 0xFFFF);
    CHECK(err.size() == 14 + 576);
    CHECK(ip[20] == 3);
    CHECK(ip[21] == 4);
    CHECK(be16(err, 14 + 26) == 1380);
    CHECK(ref_sum(ip + 20, err.size() - 34) == 0xFFFF);
    CHECK(Bytes(ip + 28, ip + 48) == Bytes(big.begin() + 14, big.begin() + 34));  // the quoted header
    CHECK(rig.dp->counters().tunnel_too_big_sent == 1);

    const Bytes nodf = from_client().ipv4("192.0.2.7", "203.0.113.10").tcp(40000, 80, kAck).payload(1381 - 40).build();
    rig.run(nodf, &p);
    CHECK(p.verdict == Verdict::drop);
    CHECK(p.reason == Drop::tunnel_too_big);

    // IPv6 over IPv6: 40 bytes of outer header.
    const Bytes big6 = from_client().ipv6("2001:db8:c::7", "2001:db8::10").tcp(40000, 80, kAck).payload(1361 - 60).build();
    const Bytes err6 = rig.run(big6, &p);
    REQUIRE(p.verdict == Verdict::tx);
    CHECK(err6.size() == 14 + 1280);
    CHECK(err6[14 + 6] == 58);
    CHECK(err6[54] == 2);  // packet too big
    CHECK((uint32_t{be16(err6, 58)} << 16 | be16(err6, 60)) == 1360);
    Bytes pseudo(err6.begin() + 22, err6.begin() + 54);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<uint8_t>(1240 >> 8), static_cast<uint8_t>(1240 & 0xFF), 0, 0, 0, 58});
    CHECK(ref_sum(err6.data() + 54, 1240, ref_sum(pseudo.data(), pseudo.size())) == 0xFFFF);
}

TEST_CASE("tunnel: no headroom for the outer header is a counted drop", "[tunnel]") {
    TunnelRig rig;
    PacketRef p;
    rig.run(from_client().ipv4("192.0.2.7", "203.0.113.10").tcp(40000, 80, kSyn).build(), &p, 8);
    CHECK(p.verdict == Verdict::drop);
    CHECK(p.reason == Drop::no_headroom);
}

TEST_CASE("tunnel: the rules a tunnel configuration must follow", "[tunnel][config]") {
    auto err = [](std::vector<std::string> a) {
        auto p = config::parse_args(a);
        return p ? std::string() : p.error();
    };
    const std::vector<std::string> base = {"--vip", "t,203.0.113.10:80/tcp,tunnel", "--backend", "t,198.51.100.200",
                                           "--neighbor", "198.51.100.200,02:00:00:00:00:99"};
    auto with = [&](std::vector<std::string> more) {
        auto a = base;
        a.insert(a.end(), more.begin(), more.end());
        return a;
    };
    CHECK(err(base).find("needs a --tunnel-source of its family (IPv4)") != std::string::npos);
    CHECK(err(with({"--tunnel-source", "198.51.100.2"})).empty());
    CHECK(err(with({"--tunnel-source", "198.51.100.2", "--tunnel-source", "198.51.100.3"})).find("one per family") !=
          std::string::npos);
    CHECK(err(with({"--tunnel-source", "198.51.100.2", "--tunnel-gateway", "198.51.100.1"}))
              .find("no --neighbor for the gateway") != std::string::npos);
    CHECK(err(with({"--tunnel-source", "198.51.100.2", "--tunnel-mtu", "1000"})).find("below 1280") != std::string::npos);
    CHECK(err({"--vip", "t,203.0.113.10:80/tcp,nat,encap=gue", "--backend", "t,198.51.100.200"})
              .find("encap is for tunnel VIPs only") != std::string::npos);
    CHECK(err({"--vip", "t,203.0.113.10:80/tcp,tunnel,gue-port=9"}).find("gue-port needs encap=gue") != std::string::npos);
    CHECK(err(with({"--tunnel-source", "198.51.100.2", "--backend", "t,198.51.100.201:8080"}))
              .find("tunnel backend port must be the VIP port 80") != std::string::npos);
}
