// The flow log: sampled open/close events from the worker, rate-limited lines on the control
// core, and nothing lost silently.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "lib/config/options.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/lb/dataplane.hpp"
#include "tests/unit/packet_builder.hpp"

using namespace sluice;
using namespace sluice::lb;
using namespace sluice::test;
using Catch::Matchers::Contains;

namespace {

struct LogRig {
    std::shared_ptr<const Service> svc;
    std::unique_ptr<Dataplane> dp;
    FlowLogRing ring{1024};

    explicit LogRig(uint32_t one_in) {
        auto p = config::parse_args({"--vip", "web,203.0.113.10:80/tcp,nat", "--backend", "web,198.51.100.11:8080",
                                     "--neighbor", "198.51.100.11,02:00:00:00:00:11", "--timeout-tcp-established",
                                     "10"});
        REQUIRE(p.ok());
        auto s = Service::build(p->config);
        REQUIRE(s.ok());
        svc = std::make_shared<const Service>(std::move(*s));
        WorkerEnv e;
        e.port_macs = {net::Mac{{2, 0, 0, 0, 0, 1}}};
        e.settings = data_path_settings(p->config);
        dp = std::make_unique<Dataplane>(svc, e, 4096);
        dp->enable_flow_log(one_in, &ring);
    }
    Verdict send(const Bytes& in, uint32_t now) {
        std::vector<uint8_t> buf(in);
        buf.resize(2048);
        PacketRef p;
        p.data = buf.data();
        p.len = static_cast<uint32_t>(in.size());
        p.cap = static_cast<uint32_t>(buf.size());
        dp->process(&p, 1, now);
        return p.verdict;
    }
    std::vector<FlowEvent> events() {
        std::vector<FlowEvent> v;
        FlowEvent e;
        while (ring.pop(e)) v.push_back(e);
        return v;
    }
};

Bytes client(uint16_t sport, uint8_t flags, size_t payload = 0) {
    return Pkt().eth("02:00:00:00:c1:01", "02:00:00:00:00:01").ipv4("192.0.2.10", "203.0.113.10")
        .tcp(sport, 80, flags).payload(payload).build();
}
Bytes reply(uint16_t cport, uint8_t flags, size_t payload = 0) {
    return Pkt().eth("02:00:00:00:00:11", "02:00:00:00:00:01").ipv4("198.51.100.11", "192.0.2.10")
        .tcp(8080, cport, flags).payload(payload).build();
}

}  // namespace

TEST_CASE("a sampled flow logs its open and, when it expires, its packets, bytes and duration", "[flowlog]") {
    LogRig r(1);
    REQUIRE(r.send(client(40000, kSyn), 1000) == Verdict::tx);
    REQUIRE(r.send(reply(40000, kSyn | kAck), 1001) == Verdict::tx);
    REQUIRE(r.send(client(40000, kAck, 100), 1500) == Verdict::tx);
    auto ev = r.events();
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == FlowEvent::Kind::open);
    CHECK(ev[0].why == FlowEvent::Why::maglev_pick);
    CHECK_THAT(format_flow_event(ev[0], *r.svc),
               Contains("flow open tcp 192.0.2.10:40000 -> web 203.0.113.10:80 backend 198.51.100.11:8080 (maglev pick)"));
    // Established timeout 10 s after the last packet: expire well past it.
    for (uint32_t t = 2000; t < 30000; t += 100) r.dp->expire(t, 1024);
    ev = r.events();
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == FlowEvent::Kind::close);
    CHECK(ev[0].why == FlowEvent::Why::expired);
    CHECK(ev[0].packets == 3);
    CHECK(ev[0].bytes == client(40000, kSyn).size() + reply(40000, kSyn | kAck).size() + client(40000, kAck, 100).size());
    CHECK(ev[0].duration_ms == 500);
    CHECK_THAT(format_flow_event(ev[0], *r.svc), Contains("packets 3"));
    CHECK_THAT(format_flow_event(ev[0], *r.svc), Contains("(idle timeout)"));
    CHECK(r.dp->flow_log_lost() == 0);
}

TEST_CASE("sampling logs about 1 flow in N, always the same ones", "[flowlog]") {
    LogRig a(8), b(8);
    for (uint16_t p = 0; p < 4000; ++p) {
        a.send(client(static_cast<uint16_t>(20000 + p), kSyn), 0);
        b.send(client(static_cast<uint16_t>(20000 + p), kSyn), 0);
    }
    const auto ea = a.events(), eb = b.events();
    CHECK(ea.size() > 4000 / 8 / 2);
    CHECK(ea.size() < 4000 / 8 * 2);
    REQUIRE(ea.size() == eb.size());
    for (size_t i = 0; i < ea.size(); ++i) CHECK(ea[i].client_port_raw == eb[i].client_port_raw);
}

TEST_CASE("a full ring loses lines, counted; the writer rate-limits and reports the rest", "[flowlog]") {
    LogRig r(1);
    for (uint16_t p = 0; p < 1500; ++p) r.send(client(static_cast<uint16_t>(20000 + p), kSyn), 0);
    CHECK(r.dp->flow_log_lost() == 1500 - 1024);

    std::vector<std::string> lines;
    control::FlowLogWriter w(100, [&](const std::string& l) { lines.push_back(l); });
    w.add_ring(&r.ring);
    CHECK(w.drain(0, *r.svc) == 1024);
    CHECK(w.written() == 100);  // one second of burst
    CHECK(w.suppressed() == 924);
    CHECK(lines.size() == 100);
    CHECK(w.drain(1000, *r.svc) == 0);  // the count is reported once a second
    CHECK_THAT(lines.back(), Contains("924 lines suppressed"));
}
