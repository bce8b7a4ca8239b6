// Tests for lib/config/options: the option grammar, the file/command-line merge and every
// validation rule. Each rejected input must produce an error that quotes the bad value, so
// the failure tables check for it explicitly. Pure C++: no EAL.
#include "lib/config/options.hpp"
#include "lib/lb/service.hpp"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

using sluice::config::Action;
using sluice::config::parse_args;
using sluice::config::parse_config_text;
using sluice::config::usage;
using sluice::config::validate;
using sluice::lb::Config;
using sluice::lb::Mode;
using sluice::lb::Proto;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Args = std::vector<std::string>;

sluice::net::IpAddr ip(const char* text) {
    auto a = sluice::net::parse_ip(text);
    REQUIRE(a);
    return *a;
}

sluice::net::Mac mac(const char* text) {
    auto m = sluice::net::parse_mac(text);
    REQUIRE(m);
    return *m;
}

// One valid nat service: a VIP, one backend and its neighbor.
Args base(std::initializer_list<std::string> more = {}) {
    Args a = {"--vip", "web,203.0.113.10:80/tcp,nat", "--backend", "web,198.51.100.11:8080",
              "--neighbor", "198.51.100.11,02:00:00:00:00:11"};
    a.insert(a.end(), more);
    return a;
}

// A file that removes itself; named after the pid so parallel test runs do not collide.
struct TempFile {
    explicit TempFile(const std::string& text) {
        static int seq = 0;
        path = (std::filesystem::temp_directory_path() / fmt::format("sluice-options-test-{}-{}.conf", getpid(), seq++))
                   .string();
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
    std::string path;
};

struct BadCase {
    const char* what;
    Args args;
    std::vector<std::string> needles;  // all must appear in the error
};

void check_rejected(const std::vector<BadCase>& cases) {
    for (const auto& c : cases) {
        INFO(c.what);
        auto r = parse_args(c.args);
        REQUIRE_FALSE(r.ok());
        INFO(r.error());
        for (const auto& n : c.needles) CHECK_THAT(r.error(), Contains(n));
    }
}

}  // namespace

TEST_CASE("to_string names modes and protocols as the grammar spells them", "[options]") {
    CHECK(std::string(sluice::lb::to_string(Mode::dsr)) == "dsr");
    CHECK(std::string(sluice::lb::to_string(Mode::nat)) == "nat");
    CHECK(std::string(sluice::lb::to_string(Mode::fullnat)) == "fullnat");
    CHECK(std::string(sluice::lb::to_string(Proto::tcp)) == "tcp");
    CHECK(std::string(sluice::lb::to_string(Proto::udp)) == "udp");
}

TEST_CASE("--help, -h and --version work without other arguments", "[options]") {
    for (const char* flag : {"--help", "-h"}) {
        auto r = parse_args({flag});
        REQUIRE(r.ok());
        CHECK(r->action == Action::help);
        CHECK(r->text == usage());
    }
    CHECK_THAT(usage(), Contains("--vip NAME,ADDR:PORT/PROTO,MODE[,KEY=VALUE...]"));
    CHECK_THAT(usage(), Contains("--backend VIP,ADDR[:PORT][,weight=N][,state=S]"));
    CHECK_THAT(usage(), Contains("--check-config"));
    // EAL's options, --log-level above all, are placed before `--` by the help itself.
    CHECK_THAT(usage(), Contains("EAL options go before `--`"));
    CHECK_THAT(usage(), Contains("--log-level=sluice.control:debug"));

    auto v = parse_args({"--version"});
    REQUIRE(v.ok());
    CHECK(v->action == Action::version);
    CHECK_THAT(v->text, StartsWith("sluice "));
    CHECK(v->text.back() == '\n');

    // Help wins over the rest, which is not even validated.
    auto h = parse_args({"--vip", "nonsense", "--help"});
    REQUIRE(h.ok());
    CHECK(h->action == Action::help);
}

TEST_CASE("a full valid configuration parses to the right values", "[options]") {
    auto r = parse_args({
        "--vip", "web,203.0.113.10:80/tcp,nat",
        "--vip", "web6,[2001:db8:1::10]:443/tcp,fullnat,table=65537",
        "--vip", "dns,203.0.113.53:53/udp,dsr,table=251",
        "--backend", "web,198.51.100.11:8080,weight=2",
        "--backend", "web,198.51.100.12",
        "--backend", "web6,[2001:db8:2::11]:8080",
        "--backend", "web6,[2001:db8:2::12],weight=0",
        "--backend", "dns,198.51.100.11:53",
        "--backend", "dns,198.51.100.13,weight=65535",
        "--snat", "192.0.2.100", "--snat", "2001:db8:ff::100",
        "--self", "198.51.100.1", "--self", "[2001:db8:2::1]",
        "--neighbor", "198.51.100.11,02:00:00:00:00:11",
        "--neighbor", "198.51.100.12,02:00:00:00:00:12",
        "--neighbor", "198.51.100.13,02:00:00:00:00:13",
        "--neighbor", "2001:db8:2::11,02:00:00:00:01:11",
        "--neighbor", "[2001:db8:2::12],02:00:00:00:01:12",
        "--timeout-tcp-syn", "3", "--timeout-tcp-established", "86400",
        "--timeout-tcp-closing", "1", "--timeout-udp", "60",
        "--flow-capacity", "1024", "--snat-ports", "20000-29999",
        "--client-port", "0", "--backend-port", "31",
        "--burst", "512", "--rxd", "64", "--txd", "16384",
        "--total-num-mbufs", "262143", "--stats-period", "10", "--stats-json", "/tmp/stats.json",
    });
    REQUIRE(r.ok());
    CHECK(r->action == Action::run);
    CHECK(r->text.empty());
    const Config& c = r->config;

    REQUIRE(c.vips.size() == 3);
    const auto& web = c.vips[0];
    CHECK(web.name == "web");
    CHECK(web.addr == ip("203.0.113.10"));
    CHECK(web.port == 80);
    CHECK(web.proto == Proto::tcp);
    CHECK(web.mode == Mode::nat);
    CHECK(web.table_size == 0);  // auto
    CHECK(sluice::lb::maglev_table_size(web) == 65537);
    REQUIRE(web.backends.size() == 2);
    CHECK(web.backends[0].addr == ip("198.51.100.11"));
    CHECK(web.backends[0].port == 8080);
    CHECK(web.backends[0].weight == 2);
    CHECK(web.backends[1].addr == ip("198.51.100.12"));
    CHECK(web.backends[1].port == 0);
    CHECK(web.backends[1].weight == 1);

    const auto& web6 = c.vips[1];
    CHECK(web6.addr == ip("2001:db8:1::10"));
    CHECK(web6.port == 443);
    CHECK(web6.mode == Mode::fullnat);
    REQUIRE(web6.backends.size() == 2);
    CHECK(web6.backends[0].addr == ip("2001:db8:2::11"));
    CHECK(web6.backends[0].port == 8080);
    CHECK(web6.backends[1].port == 0);
    CHECK(web6.backends[1].weight == 0);

    const auto& dns = c.vips[2];
    CHECK(dns.proto == Proto::udp);
    CHECK(dns.mode == Mode::dsr);
    CHECK(dns.table_size == 251);
    REQUIRE(dns.backends.size() == 2);
    CHECK(dns.backends[0].port == 53);
    CHECK(dns.backends[1].weight == 65535);

    REQUIRE(c.snat_addrs.size() == 2);
    CHECK(c.snat_addrs[0] == ip("192.0.2.100"));
    CHECK(c.snat_addrs[1] == ip("2001:db8:ff::100"));
    REQUIRE(c.self_addrs.size() == 2);
    CHECK(c.self_addrs[1] == ip("2001:db8:2::1"));
    REQUIRE(c.neighbors.size() == 5);
    CHECK(c.neighbors[0].addr == ip("198.51.100.11"));
    CHECK(c.neighbors[0].mac == mac("02:00:00:00:00:11"));
    CHECK(c.neighbors[4].addr == ip("2001:db8:2::12"));

    CHECK(c.timeouts.tcp_syn_ms == 3'000);
    CHECK(c.timeouts.tcp_established_ms == 86'400'000);
    CHECK(c.timeouts.tcp_closing_ms == 1'000);
    CHECK(c.timeouts.udp_ms == 60'000);
    CHECK(c.flow_capacity == 1024);
    CHECK(c.snat_port_min == 20000);
    CHECK(c.snat_port_max == 29999);
    CHECK(c.client_port == 0);
    CHECK(c.backend_port == 31);
    CHECK(c.burst == 512);
    CHECK(c.rxd == 64);
    CHECK(c.txd == 16384);
    CHECK(c.total_num_mbufs == 262143);
    CHECK(c.stats_period_s == 10);
    CHECK(c.stats_json == "/tmp/stats.json");
}

TEST_CASE("unset options keep the model's defaults; --name=value is accepted", "[options]") {
    auto r = parse_args(base({"--burst=64"}));
    REQUIRE(r.ok());
    const Config& c = r->config;
    const Config d;
    CHECK(c.burst == 64);
    CHECK(c.timeouts.tcp_syn_ms == d.timeouts.tcp_syn_ms);
    CHECK(c.timeouts.udp_ms == d.timeouts.udp_ms);
    CHECK(c.flow_capacity == d.flow_capacity);
    CHECK(c.snat_port_min == d.snat_port_min);
    CHECK(c.snat_port_max == d.snat_port_max);
    CHECK(c.client_port == -1);
    CHECK(c.backend_port == -1);
    CHECK(c.rxd == d.rxd);
    CHECK(c.stats_json.empty());
    CHECK(c.vips[0].table_size == 0);  // auto
    CHECK(sluice::lb::maglev_table_size(c.vips[0]) == 65537);
    CHECK(r->config_path.empty());
}

TEST_CASE("table=auto sizes the Maglev table by the VIP's backends", "[options]") {
    Args a = base({"--vip", "auto,203.0.113.11:80/tcp,nat,table=auto", "--vip", "fixed,203.0.113.12:80/tcp,nat,table=251"});
    for (int i = 0; i < 100; ++i) {
        for (const char* vip : {"auto", "fixed"}) {
            if (vip[0] == 'f' && i >= 3) continue;
            const auto addr = fmt::format("198.51.{}.{}", vip[0] == 'a' ? 101 : 102, 10 + i);
            a.insert(a.end(), {"--backend", fmt::format("{},{}", vip, addr), "--neighbor",
                               fmt::format("{},02:00:00:00:{:02x}:{:02x}", addr, vip[0] == 'a' ? 1 : 2, i)});
        }
    }
    auto r = parse_args(a);
    INFO((r.ok() ? "" : r.error()));
    REQUIRE(r.ok());
    const auto& vips = r->config.vips;
    REQUIRE(vips.size() == 3);
    CHECK(vips[1].table_size == 0);
    CHECK(sluice::lb::maglev_table_size(vips[1]) == 262147);  // >= 2048 x 100
    CHECK(vips[2].table_size == 251);
    CHECK(sluice::lb::maglev_table_size(vips[2]) == 251);

    // Every backend counts, whatever its state or weight: a health change never resizes.
    auto v = vips[1];
    v.backends.resize(32);
    CHECK(sluice::lb::maglev_table_size(v) == 65537);
    v.backends.push_back(v.backends[0]);
    v.backends.back().weight = 0;
    CHECK(sluice::lb::maglev_table_size(v) == 131101);
}

TEST_CASE("the largest table size and the boundary values are accepted", "[options]") {
    CHECK(parse_args(base({"--vip", "big,203.0.113.11:80/tcp,nat,table=2097169", "--backend",
                           "big,198.51.100.11"})).ok());
    CHECK(parse_args(base({"--vip", "tiny,203.0.113.11:80/tcp,nat,table=2", "--backend", "tiny,198.51.100.11"}))
              .ok());
    CHECK(parse_args(base({"--flow-capacity", "67108864", "--snat-ports", "1024-1024", "--txd", "64", "--rxd",
                           "16384", "--burst", "1", "--stats-period", "0", "--total-num-mbufs", "0"}))
              .ok());
    // Same address and port with another protocol is another service.
    CHECK(parse_args(base({"--vip", "web-udp,203.0.113.10:80/udp,nat", "--backend", "web-udp,198.51.100.11"})).ok());
    // dsr backends may repeat the VIP port explicitly.
    CHECK(parse_args(base({"--vip", "d,203.0.113.12:443/tcp,dsr", "--backend", "d,198.51.100.11:443"})).ok());
    // The same backend may serve two VIPs.
    CHECK(parse_args(base({"--vip", "api,203.0.113.13:80/tcp,nat", "--backend", "api,198.51.100.11:8080"})).ok());
}

TEST_CASE("command-line syntax errors name the option", "[options]") {
    check_rejected({
        {"unknown option", base({"--frobnicate", "1"}), {"--frobnicate"}},
        {"EAL's --log-level after --", base({"--log-level=sluice.control:debug"}),
         {"'--log-level=sluice.control:debug' is an EAL option: give it before `--`"}},
        {"EAL's -l after --", base({"-l", "0-2"}), {"'-l' is an EAL option: give it before `--`"}},
        {"EAL's --vdev after --", base({"--vdev", "net_null0"}), {"'--vdev' is an EAL option"}},
        {"no abbreviations", {"--vi", "web,203.0.113.10:80/tcp,nat"}, {"--vi"}},
        {"missing value at the end", base({"--burst"}), {"--burst", "missing"}},
        {"missing value before an option", {"--vip", "--backend", "web,198.51.100.11"}, {"--vip", "missing"}},
        {"stray argument", base({"stray"}), {"stray"}},
        {"flag with a value", {"--help=yes"}, {"--help"}},
        {"scalar twice", base({"--burst", "64", "--burst", "128"}), {"--burst '128'", "more than once"}},
        {"config twice", {"--config", "a", "--config", "b"}, {"--config 'b'", "more than once"}},
        {"config unreadable", {"--config", "/nonexistent/sluice.conf"}, {"/nonexistent/sluice.conf"}},
    });
}

TEST_CASE("bad VIP values are rejected with the value quoted", "[options]") {
    auto vip = [](const std::string& v) { return base({"--vip", v}); };
    check_rejected({
        {"too few fields", vip("x,203.0.113.20:80/tcp"), {"x,203.0.113.20:80/tcp", "expected NAME"}},
        {"bad address", vip("x,203.0.113.300:80/tcp,nat"), {"203.0.113.300"}},
        {"v6 without brackets", vip("x,2001:db8::1:80/tcp,nat"), {"2001:db8::1:80", "brackets"}},
        {"v4 in brackets", vip("x,[203.0.113.20]:80/tcp,nat"), {"203.0.113.20", "brackets are for IPv6 addresses only"}},
        {"unterminated bracket", vip("x,[2001:db8::1:80/tcp,nat"), {"[2001:db8::1:80"}},
        {"port out of range", vip("x,203.0.113.20:65536/tcp,nat"),
         {"x,203.0.113.20:65536/tcp,nat", "port 65536 out of range (0..65535)"}},
        {"port not a number", vip("x,203.0.113.20:8o/tcp,nat"), {"'8o'"}},
        {"port missing", vip("x,203.0.113.20/tcp,nat"), {"203.0.113.20/tcp", "lacks a port"}},
        {"port zero", vip("x,203.0.113.20:0/tcp,nat"), {"x,203.0.113.20:0/tcp,nat", "port 0"}},
        {"proto missing", vip("x,203.0.113.20:80,nat"), {"203.0.113.20:80", "/PROTO"}},
        {"bad proto", vip("x,203.0.113.20:80/sctp,nat"), {"'sctp'"}},
        {"bad mode", vip("x,203.0.113.20:80/tcp,ipip"), {"'ipip'", "tunnel"}},
        {"table not prime", vip("x,203.0.113.20:80/tcp,nat,table=65536"), {"table=65536", "65536 is not prime"}},
        {"table one", vip("x,203.0.113.20:80/tcp,nat,table=1"), {"table=1", "not prime"}},
        {"table zero", vip("x,203.0.113.20:80/tcp,nat,table=0"), {"table=0", "out of range"}},
        {"table too big", vip("x,203.0.113.20:80/tcp,nat,table=2097211"), {"table=2097211", "out of range"}},
        {"table not a number", vip("x,203.0.113.20:80/tcp,nat,table=big"), {"'big'", "a prime or auto"}},
        {"table auto twice", vip("x,203.0.113.20:80/tcp,nat,table=auto,table=251"), {"table given twice"}},
        {"table twice", vip("x,203.0.113.20:80/tcp,nat,table=7,table=11"), {"table given twice"}},
        {"unknown field", vip("x,203.0.113.20:80/tcp,nat,tabel=7"), {"'tabel=7'"}},
        {"field without value", vip("x,203.0.113.20:80/tcp,nat,check"), {"'check'", "KEY=VALUE"}},
        {"bad check", vip("x,203.0.113.20:80/tcp,nat,check=icmp"), {"'icmp'", "none, tcp or http"}},
        {"bad on-down", vip("x,203.0.113.20:80/tcp,nat,on-down=panic"), {"'panic'", "reschedule"}},
        {"inter zero", vip("x,203.0.113.20:80/tcp,nat,inter=0s"), {"inter out of range"}},
        {"inter without unit", vip("x,203.0.113.20:80/tcp,nat,inter=2"), {"bad inter '2': a whole number and a unit, ms, s, m or h (500ms, 2s, 1m)"}},
        {"inter unknown unit", vip("x,203.0.113.20:80/tcp,nat,inter=2sec"), {"bad inter '2sec'", "(500ms, 2s, 1m)"}},
        {"timeout fraction", vip("x,203.0.113.20:80/tcp,nat,timeout=1.5s"), {"bad timeout '1.5s'"}},
        {"inter unit", vip("x,203.0.113.20:80/tcp,nat,inter=2h"), {"'2h'"}},
        {"inter too long", vip("x,203.0.113.20:80/tcp,nat,inter=61m"), {"above one hour"}},
        {"rise zero", vip("x,203.0.113.20:80/tcp,nat,rise=0"), {"rise out of range"}},
        {"fall too big", vip("x,203.0.113.20:80/tcp,nat,fall=101"), {"fall out of range"}},
        {"http field without http", vip("x,203.0.113.20:80/tcp,nat,check=tcp,http-path=/h"), {"needs check=http"}},
        {"http path relative", vip("x,203.0.113.20:80/tcp,nat,check=http,http-path=h"), {"starts with /"}},
        {"http status", vip("x,203.0.113.20:80/tcp,nat,check=http,http-status=99"), {"http-status out of range"}},
        {"check twice", vip("x,203.0.113.20:80/tcp,nat,check=tcp,check=http"), {"check given twice"}},
        {"bad name", vip("we b,203.0.113.20:80/tcp,nat"), {"'we b'"}},
        {"empty name", vip(",203.0.113.20:80/tcp,nat"), {"bad VIP name ''"}},
        {"unspecified v4", vip("x,0.0.0.0:80/tcp,nat"), {"0.0.0.0", "not unicast"}},
        {"multicast v4", vip("x,224.0.0.5:80/tcp,nat"), {"224.0.0.5", "multicast"}},
        {"broadcast v4", vip("x,255.255.255.255:80/tcp,nat"), {"255.255.255.255", "broadcast"}},
        {"unspecified v6", vip("x,[::]:80/tcp,nat"), {"[::]:80", "not unicast"}},
        {"multicast v6", vip("x,[ff02::1]:80/tcp,nat"), {"ff02::1", "multicast"}},
        {"duplicate name",
         base({"--vip", "web,203.0.113.21:80/tcp,nat", "--backend", "web,198.51.100.11:9090"}),
         {"web,203.0.113.21:80/tcp,nat", "duplicate VIP name 'web'"}},
        {"duplicate service", base({"--vip", "web2,203.0.113.10:80/tcp,dsr", "--backend", "web2,198.51.100.11"}),
         {"web2,203.0.113.10:80/tcp,dsr", "as VIP 'web'"}},
        {"no backends", base({"--vip", "lonely,203.0.113.22:80/tcp,nat"}), {"lonely", "no --backend"}},
        {"fullnat without snat", base({"--vip", "f,203.0.113.23:80/tcp,fullnat", "--backend", "f,198.51.100.11"}),
         {"f,203.0.113.23:80/tcp,fullnat", "--snat", "IPv4"}},
        {"fullnat with snat of the other family",
         {"--vip", "f6,[2001:db8:1::10]:80/tcp,fullnat", "--backend", "f6,[2001:db8:2::11]", "--neighbor",
          "2001:db8:2::11,02:00:00:00:00:11", "--snat", "192.0.2.100"},
         {"f6,[2001:db8:1::10]:80/tcp,fullnat", "IPv6"}},
    });
}

TEST_CASE("health-check, down-policy and state fields", "[options]") {
    auto r = parse_args({"--vip", "web,203.0.113.10:80/tcp,nat,check=http,inter=500ms,timeout=1s,rise=3,fall=2,"
                                  "http-path=/healthz,http-status=204,http-body=ok,on-down=keep,passive=5",
                         "--backend", "web,198.51.100.11:8080,state=draining,weight=3", "--backend",
                         "web,198.51.100.12:8080,state=disabled", "--kernel-if", "sl"});
    REQUIRE(r.ok());
    const auto& v = r->config.vips.at(0);
    CHECK(v.check.kind == sluice::lb::CheckConf::Kind::http);
    CHECK(v.check.inter_ms == 500);
    CHECK(v.check.effective_timeout_ms() == 1000);
    CHECK(v.check.rise == 3);
    CHECK(v.check.fall == 2);
    CHECK(v.check.http_path == "/healthz");
    CHECK(v.check.http_status == 204);
    CHECK(v.check.http_body == "ok");
    CHECK(v.on_down == sluice::lb::DownPolicy::keep);
    CHECK(v.passive_failures == 5);
    CHECK(v.backends.at(0).state == sluice::lb::BackendState::draining);
    CHECK(v.backends.at(0).weight == 3);
    CHECK(v.backends.at(1).state == sluice::lb::BackendState::disabled);
    CHECK(r->config.kernel_if == "sl");  // and no --neighbor needed with it

    auto d = parse_args({"--vip", "web,203.0.113.10:80/tcp,nat,inter=2s", "--backend", "web,198.51.100.11"});
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("no --neighbor for 198.51.100.11"));
    CHECK_THAT(d.error(), Contains("--kernel-if"));
}

TEST_CASE("bad backend values are rejected with the value quoted", "[options]") {
    check_rejected({
        {"port out of range", base({"--backend", "web,198.51.100.11:99999"}),
         {"--backend 'web,198.51.100.11:99999': bad address '198.51.100.11:99999' (port 99999 out of range"}},
        {"empty port", base({"--backend", "web,198.51.100.11:"}), {"web,198.51.100.11:", "port '' is not a decimal number"}},
        {"bad address", base({"--backend", "web,198.51.100.311"}), {"198.51.100.311"}},
        {"too few fields", base({"--backend", "web"}), {"'web'", "expected VIP,ADDR"}},
        {"empty VIP name", base({"--backend", ",198.51.100.11"}), {"missing VIP name"}},
        {"unknown VIP", base({"--backend", "api,198.51.100.11"}), {"api,198.51.100.11", "unknown VIP 'api'"}},
        {"weight too big", base({"--backend", "web,198.51.100.12,weight=65536"}), {"weight=65536", "out of range"}},
        {"weight not a number", base({"--backend", "web,198.51.100.12,weight=-1"}), {"'-1'"}},
        {"unknown field", base({"--backend", "web,198.51.100.12,wieght=2"}), {"'wieght=2'"}},
        {"family mismatch",
         base({"--backend", "web,[2001:db8:2::11]:8080", "--neighbor", "2001:db8:2::11,02:00:00:00:00:12"}),
         {"web,[2001:db8:2::11]:8080", "IPv6 backend for IPv4 VIP 'web'"}},
        {"duplicate backend", base({"--backend", "web,198.51.100.11:8080,weight=3"}),
         {"web,198.51.100.11:8080,weight=3", "duplicate backend"}},
        {"duplicate backend through the default port",
         {"--vip", "w,203.0.113.10:80/tcp,nat", "--backend", "w,198.51.100.11", "--backend", "w,198.51.100.11:80",
          "--neighbor", "198.51.100.11,02:00:00:00:00:11"},
         {"w,198.51.100.11:80", "duplicate backend 198.51.100.11:80"}},
        {"dsr port differs",
         {"--vip", "d,203.0.113.10:80/tcp,dsr", "--backend", "d,198.51.100.11:8080", "--neighbor",
          "198.51.100.11,02:00:00:00:00:11"},
         {"d,198.51.100.11:8080", "dsr", "VIP port 80"}},
        {"multicast backend", base({"--backend", "web,239.1.2.3", "--neighbor", "198.51.100.12,02:00:00:00:00:12"}),
         {"239.1.2.3", "multicast"}},
        {"unspecified backend", base({"--backend", "web,0.0.0.0:80"}), {"0.0.0.0", "not unicast"}},
        {"no neighbor", base({"--backend", "web,198.51.100.12:8080"}),
         {"web,198.51.100.12:8080", "no --neighbor for 198.51.100.12"}},
    });
}

TEST_CASE("bad snat, self and neighbor values are rejected", "[options]") {
    check_rejected({
        {"bad snat", base({"--snat", "192.0.2.300"}), {"--snat '192.0.2.300'", "bad address"}},
        {"multicast snat", base({"--snat", "224.1.1.1"}), {"224.1.1.1", "multicast"}},
        {"duplicate snat", base({"--snat", "192.0.2.1", "--snat", "192.0.2.1"}), {"192.0.2.1", "duplicate"}},
        {"bad self", base({"--self", "self"}), {"--self 'self'"}},
        {"broadcast self", base({"--self", "255.255.255.255"}), {"255.255.255.255", "broadcast"}},
        {"duplicate self", base({"--self", "[2001:db8::1]", "--self", "2001:db8::1"}), {"2001:db8::1", "duplicate"}},
        {"neighbor without MAC", base({"--neighbor", "198.51.100.12"}), {"'198.51.100.12'", "ADDR,MAC"}},
        {"neighbor bad MAC", base({"--neighbor", "198.51.100.12,02:00:00:00:00"}), {"02:00:00:00:00", "bad MAC"}},
        {"neighbor bad address", base({"--neighbor", "198.51.100.312,02:00:00:00:00:12"}), {"198.51.100.312"}},
        {"neighbor zero MAC", base({"--neighbor", "198.51.100.12,00:00:00:00:00:00"}), {"00:00:00:00:00:00", "zero"}},
        {"neighbor multicast MAC", base({"--neighbor", "198.51.100.12,01:00:5e:00:00:01"}),
         {"01:00:5e:00:00:01", "multicast"}},
        {"neighbor broadcast MAC", base({"--neighbor", "198.51.100.12,ff:ff:ff:ff:ff:ff"}),
         {"ff:ff:ff:ff:ff:ff", "multicast/broadcast"}},
        {"neighbor multicast address", base({"--neighbor", "224.0.0.1,02:00:00:00:00:12"}), {"224.0.0.1"}},
        {"duplicate neighbor", base({"--neighbor", "198.51.100.11,02:00:00:00:00:99"}),
         {"198.51.100.11,02:00:00:00:00:99", "duplicate neighbor"}},
    });
}

TEST_CASE("process settings out of range are rejected with the value quoted", "[options]") {
    auto with = [](const std::string& opt, const std::string& v) { return base({opt, v}); };
    check_rejected({
        {"syn timeout zero", with("--timeout-tcp-syn", "0"), {"--timeout-tcp-syn '0'", "out of range (1..86400)"}},
        {"established timeout too long", with("--timeout-tcp-established", "86401"), {"'86401'", "out of range"}},
        {"closing timeout not a number", with("--timeout-tcp-closing", "10s"), {"'10s'"}},
        {"udp timeout negative", with("--timeout-udp", "-5"), {"'-5'"}},
        {"flow capacity small", with("--flow-capacity", "1023"), {"'1023'", "1024..67108864"}},
        {"flow capacity big", with("--flow-capacity", "67108865"), {"'67108865'"}},
        {"flow capacity overflow", with("--flow-capacity", "99999999999999999999999"), {"out of range"}},
        {"snat ports reversed", with("--snat-ports", "3000-2000"), {"'3000-2000'", "MIN is above MAX"}},
        {"snat ports low", with("--snat-ports", "80-2000"), {"'80-2000'", "out of range"}},
        {"snat ports high", with("--snat-ports", "2000-65536"), {"'2000-65536'", "out of range"}},
        {"snat ports one number", with("--snat-ports", "2000"), {"'2000'", "MIN-MAX"}},
        {"client port big", with("--client-port", "32"), {"--client-port '32'", "0..31"}},
        {"backend port negative", with("--backend-port", "-1"), {"--backend-port '-1'"}},
        {"burst zero", with("--burst", "0"), {"--burst '0'", "1..512"}},
        {"burst big", with("--burst", "513"), {"'513'"}},
        {"rxd small", with("--rxd", "63"), {"--rxd '63'", "64..16384"}},
        {"txd big", with("--txd", "16385"), {"--txd '16385'"}},
        {"mbufs overflow", with("--total-num-mbufs", "4294967296"), {"'4294967296'"}},
        {"stats period long", with("--stats-period", "86401"), {"'86401'"}},
        {"stats json empty", with("--stats-json", ""), {"--stats-json", "missing file name"}},
    });
}

TEST_CASE("a config file parses like the command line, comments and blanks included", "[options]") {
    auto r = parse_config_text(
        "# Sluice test configuration\n"
        "\n"
        "vip = web,203.0.113.10:80/tcp,nat   # the web service\n"
        "  backend=web,198.51.100.11:8080,weight=2\n"
        "backend = web,198.51.100.12\n"
        "\t neighbor = 198.51.100.11,02:00:00:00:00:11\r\n"
        "neighbor = 198.51.100.12,02:00:00:00:00:12\n"
        "timeout-udp = 45\n"
        "burst = 128\n",
        "test.conf");
    REQUIRE(r.ok());
    REQUIRE(r->vips.size() == 1);
    REQUIRE(r->vips[0].backends.size() == 2);
    CHECK(r->vips[0].backends[0].weight == 2);
    CHECK(r->vips[0].backends[1].addr == ip("198.51.100.12"));
    REQUIRE(r->neighbors.size() == 2);
    CHECK(r->neighbors[0].mac == mac("02:00:00:00:00:11"));
    CHECK(r->timeouts.udp_ms == 45'000);
    CHECK(r->burst == 128);
}

TEST_CASE("config file errors carry the file and line", "[options]") {
    struct Case {
        const char* what;
        const char* text;
        std::vector<std::string> needles;
    };
    const std::vector<Case> cases = {
        {"unknown option", "# c\nfrobnicate = 1\n", {"f.conf:2", "unknown option 'frobnicate'"}},
        {"no equals sign", "\n\nburst 64\n", {"f.conf:3", "'burst 64'"}},
        {"section", "[service]\nvip = x\n", {"f.conf:1", "[service]"}},
        {"command-line-only option", "help = 1\n", {"f.conf:1", "'help'"}},
        {"nested config", "config = other.conf\n", {"f.conf:1", "'config'"}},
        {"bad value", "# a\n\nburst = 0\n", {"f.conf:3: --burst '0'", "out of range"}},
        {"scalar twice", "burst = 64\nburst = 32\n", {"f.conf:2: --burst '32'", "more than once"}},
        {"semantic error on a later line",
         "vip = web,203.0.113.10:80/tcp,nat\n"
         "# the backend lacks a neighbor\n"
         "backend = web,198.51.100.11:8080\n",
         {"f.conf:3: --backend 'web,198.51.100.11:8080'", "no --neighbor for 198.51.100.11"}},
        {"vip without backends", "\nvip = web,203.0.113.10:80/tcp,nat\n", {"f.conf:2: --vip", "no --backend"}},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        auto r = parse_config_text(c.text, "f.conf");
        REQUIRE_FALSE(r.ok());
        INFO(r.error());
        for (const auto& n : c.needles) CHECK_THAT(r.error(), Contains(n));
    }
    // An empty or comment-only file is a mistake (a reload would remove every VIP), unless
    // running without VIPs is asked for.
    for (const char* text : {"", "# only a comment\n\n", "burst = 64\n"}) {
        auto r = parse_config_text(text, "empty.conf");
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error(), Contains("no VIP configured"));
    }
    CHECK(parse_config_text("allow-no-vips = yes\n", "empty.conf").ok());
    CHECK_THAT(parse_config_text("allow-no-vips = maybe\n", "empty.conf").error(), Contains("expected yes or no"));
}

TEST_CASE("the command line adds to a config file's lists and overrides its scalars", "[options]") {
    TempFile file(
        "vip = web,203.0.113.10:80/tcp,nat\n"
        "backend = web,198.51.100.11:8080\n"
        "neighbor = 198.51.100.11,02:00:00:00:00:11\n"
        "neighbor = 198.51.100.12,02:00:00:00:00:12\n"
        "burst = 64\n"
        "timeout-udp = 45\n");
    auto r = parse_args({"--config", file.path, "--backend", "web,198.51.100.12:8080", "--burst", "256"});
    REQUIRE(r.ok());
    CHECK(r->action == Action::run);
    CHECK(r->config_path == file.path);
    const Config& c = r->config;
    REQUIRE(c.vips.size() == 1);
    REQUIRE(c.vips[0].backends.size() == 2);
    CHECK(c.vips[0].backends[0].addr == ip("198.51.100.11"));  // file first
    CHECK(c.vips[0].backends[1].addr == ip("198.51.100.12"));  // then the command line
    CHECK(c.neighbors.size() == 2);
    CHECK(c.burst == 256);                // overridden
    CHECK(c.timeouts.udp_ms == 45'000);   // kept from the file

    SECTION("a command-line VIP can take backends from the file and vice versa") {
        TempFile f2(
            "backend = api,198.51.100.11:9000\n"
            "neighbor = 198.51.100.11,02:00:00:00:00:11\n");
        auto r2 = parse_args({"--vip", "api,203.0.113.11:80/tcp,nat", "--config", f2.path});
        REQUIRE(r2.ok());
        REQUIRE(r2->config.vips.size() == 1);
        CHECK(r2->config.vips[0].backends.size() == 1);
    }
    SECTION("errors from the file name the file and line; errors from argv do not") {
        auto bad = parse_args({"--config", file.path, "--backend", "web,198.51.100.11:8080"});
        REQUIRE_FALSE(bad.ok());
        CHECK_THAT(bad.error(), StartsWith("--backend 'web,198.51.100.11:8080': duplicate backend"));
        TempFile broken("burst = 64\nrxd = 10\n");
        auto bad2 = parse_args({"--config", broken.path});
        REQUIRE_FALSE(bad2.ok());
        CHECK_THAT(bad2.error(), StartsWith(broken.path + ":2: --rxd '10'"));
    }
    SECTION("--check-config reports a one-paragraph summary") {
        auto chk = parse_args({"--config", file.path, "--check-config", "--vip", "d,[2001:db8:1::53]:53/udp,dsr",
                               "--backend", "d,[2001:db8:2::53],weight=0", "--neighbor",
                               "2001:db8:2::53,02:00:00:00:00:53"});
        REQUIRE(chk.ok());
        CHECK(chk->action == Action::check_config);
        CHECK(chk->config.vips.size() == 2);
        const auto& t = chk->text;
        INFO(t);
        CHECK_THAT(t, StartsWith("configuration OK (" + file.path + ")"));
        CHECK_THAT(t, Contains("2 VIPs (1 IPv4, 1 IPv6; 1 dsr, 1 nat)"));
        CHECK_THAT(t, Contains("2 backends (1 drained)"));
        CHECK_THAT(t, Contains("257 KiB of Maglev tables"));  // two auto tables of 65537 entries
        CHECK_THAT(t, Contains("3 neighbors"));
        CHECK(t.back() == '\n');
        CHECK(t.find('\n') == t.size() - 1);
    }
    SECTION("--check-config fails like a run would") {
        auto chk = parse_args({"--config", file.path, "--check-config", "--burst", "0"});
        REQUIRE_FALSE(chk.ok());
        CHECK_THAT(chk.error(), Contains("--burst '0'"));
    }
}

TEST_CASE("persistence: persist=DURATION and persist-mask=/N", "[options]") {
    auto r = parse_args({"--vip", "web,203.0.113.10:80/tcp,nat,persist=5m,persist-mask=/24", "--backend",
                         "web,198.51.100.11:8080", "--neighbor", "198.51.100.11,02:00:00:00:00:11",
                         "--persist-capacity", "4096"});
    REQUIRE(r.ok());
    CHECK(r->config.vips.at(0).persist_ms == 300'000);
    CHECK(r->config.vips.at(0).persist_mask == 24);
    CHECK(r->config.persist_capacity == 4096);
    const char* ok[][2] = {{"persist=1s", "1000"}, {"persist=24h", "86400000"}, {"persist=90s", "90000"},
                           {"persist=1440m", "86400000"}};
    for (auto& [field, ms] : ok) {
        auto o = parse_args(base({"--vip", std::string("p,203.0.113.21:80/tcp,nat,") + field, "--backend",
                                  "p,198.51.100.11"}));
        INFO(field);
        REQUIRE(o.ok());
        CHECK(std::to_string(o->config.vips.back().persist_ms) == ms);
        CHECK(o->config.vips.back().persist_mask == 0);  // the whole address
    }
    auto v6 = parse_args(base({"--vip", "p6,[2001:db8::10]:80/tcp,nat,persist=1m,persist-mask=64", "--backend",
                               "p6,[2001:db8::11]", "--neighbor", "2001:db8::11,02:00:00:00:00:21"}));
    REQUIRE(v6.ok());
    CHECK(v6->config.vips.back().persist_mask == 64);
    CHECK(parse_args({"--vip", "web,203.0.113.10:80/tcp,nat", "--backend", "web,198.51.100.11:8080", "--neighbor",
                      "198.51.100.11,02:00:00:00:00:11"})
              ->config.persist_capacity == 65536);

    auto vip = [](const std::string& v) { return base({"--vip", v, "--backend", "p,198.51.100.11"}); };
    check_rejected({
        {"persist below a second", vip("p,203.0.113.21:80/tcp,nat,persist=500ms"),
         {"persist=500ms", "out of range (1s..24h", "persist=5m"}},
        {"persist above a day", vip("p,203.0.113.21:80/tcp,nat,persist=25h"), {"persist above 24 hours ('25h')"}},
        {"persist not a duration", vip("p,203.0.113.21:80/tcp,nat,persist=soon"), {"'soon'"}},
        {"mask beyond IPv4", vip("p,203.0.113.21:80/tcp,nat,persist=1m,persist-mask=/33"),
         {"persist-mask=/33 is beyond an IPv4 address", "/1../32"}},
        {"mask zero", vip("p,203.0.113.21:80/tcp,nat,persist=1m,persist-mask=/0"), {"bad persist-mask '/0'", "/1../32"}},
        {"mask not a number", vip("p,203.0.113.21:80/tcp,nat,persist=1m,persist-mask=/x"), {"bad persist-mask '/x'"}},
        {"mask without persist", vip("p,203.0.113.21:80/tcp,nat,persist-mask=/24"),
         {"persist-mask needs persist=DURATION"}},
        {"mask beyond IPv6", base({"--vip", "p6,[2001:db8::10]:80/tcp,nat,persist=1m,persist-mask=/129", "--backend",
                                   "p6,[2001:db8::11]", "--neighbor", "2001:db8::11,02:00:00:00:00:21"}),
         {"bad persist-mask '/129'", "/1../128"}},
        {"capacity too small", base({"--persist-capacity", "100"}), {"persist-capacity", "out of range"}},
    });
}

TEST_CASE("validate() holds a Config built in code to the same rules", "[options]") {
    CHECK_FALSE(validate(Config{}).ok());
    Config empty;
    empty.allow_no_vips = true;
    CHECK(validate(empty).ok());

    Config c;
    sluice::lb::VipConf v;
    v.name = "web";
    v.addr = ip("203.0.113.10");
    v.port = 80;
    v.backends.push_back({ip("198.51.100.11"), 8080, 1});
    c.vips.push_back(v);
    c.neighbors.push_back({ip("198.51.100.11"), mac("02:00:00:00:00:11")});
    REQUIRE(validate(c).ok());

    SECTION("messages quote a canonical rendering") {
        c.vips[0].port = 0;
        auto s = validate(c);
        REQUIRE_FALSE(s.ok());
        CHECK_THAT(s.error(), Contains("--vip 'web,203.0.113.10:0/tcp,nat'"));
        CHECK_THAT(s.error(), Contains("port 0"));
    }
    SECTION("table size must be prime") {
        c.vips[0].table_size = 65535;
        auto s = validate(c);
        REQUIRE_FALSE(s.ok());
        CHECK_THAT(s.error(), Contains("table=65535"));
    }
    SECTION("backend weight above 65535") {
        c.vips[0].backends[0].weight = 70000;
        auto s = validate(c);
        REQUIRE_FALSE(s.ok());
        CHECK_THAT(s.error(), Contains("--backend 'web,198.51.100.11:8080,weight=70000'"));
    }
    SECTION("timeouts are checked in milliseconds") {
        c.timeouts.udp_ms = 500;  // sub-second is fine in code
        CHECK(validate(c).ok());
        c.timeouts.udp_ms = 0;
        auto s = validate(c);
        REQUIRE_FALSE(s.ok());
        CHECK_THAT(s.error(), Contains("--timeout-udp '0'"));
        c.timeouts.udp_ms = 86'400'001;
        CHECK_THAT(validate(c).error(), Contains("--timeout-udp '86400001 ms'"));
    }
    SECTION("ports ids") {
        c.client_port = 32;
        CHECK_THAT(validate(c).error(), Contains("--client-port '32'"));
        c.client_port = -2;
        CHECK_THAT(validate(c).error(), Contains("--client-port '-2'"));
    }
    SECTION("snat port range") {
        c.snat_port_min = 5000;
        c.snat_port_max = 4000;
        CHECK_THAT(validate(c).error(), Contains("--snat-ports '5000-4000'"));
    }    SECTION("configurations that cannot work are refused, each with its reason") {
        auto refused = [&](const char* needle) {
            auto st = validate(c);
            REQUIRE_FALSE(st.ok());
            CHECK_THAT(st.error(), Contains(needle));
        };
        SECTION("a Maglev table smaller than its backends") {
            c.vips[0].backends.push_back({ip("198.51.100.12"), 8080, 1});
            c.vips[0].backends.push_back({ip("198.51.100.13"), 8080, 1});
            c.neighbors.push_back({ip("198.51.100.12"), mac("02:00:00:00:00:12")});
            c.neighbors.push_back({ip("198.51.100.13"), mac("02:00:00:00:00:13")});
            c.vips[0].table_size = 2;
            refused("table=2 is smaller than its 3 backends");
            c.vips[0].table_size = 3;
            CHECK(validate(c).ok());
        }
        SECTION("a SNAT or self address equal to a VIP") {
            c.snat_addrs = {ip("203.0.113.10")};
            refused("also a SNAT address");
            c.snat_addrs.clear();
            c.self_addrs = {ip("203.0.113.10")};
            refused("also a --self address");
        }
        SECTION("a backend that is a VIP, a SNAT or a self address") {
            c.vips[0].backends[0].addr = ip("203.0.113.10");
            c.neighbors.push_back({ip("203.0.113.10"), mac("02:00:00:00:00:10")});
            refused("is a VIP address");
            c.vips[0].backends[0].addr = ip("198.51.100.11");
            c.snat_addrs = {ip("198.51.100.11")};
            refused("SNAT addresses");
        }
        SECTION("loopback and reserved VIPs") {
            c.vips[0].addr = ip("127.0.0.1");
            refused("is loopback");
            c.vips[0].addr = ip("240.0.0.1");
            refused("reserved");
        }
        SECTION("more VIPs than a process can hold") {
            c.kernel_if = "sl";  // no neighbours needed
            c.vips.resize(sluice::lb::kMaxVipSlots + 1, c.vips[0]);
            for (size_t i = 0; i < c.vips.size(); ++i) {
                c.vips[i].name = fmt::format("v{}", i);
                c.vips[i].port = static_cast<uint16_t>(1 + i);
            }
            refused("4097 VIPs, at most 4096");
        }
        SECTION("a control socket path longer than a Unix socket holds") {
            c.control_socket = "/run/" + std::string(103, 'x');
            refused("a Unix socket path holds at most 107");
            c.control_socket = "/run/" + std::string(102, 'x');
            CHECK(validate(c).ok());
        }
        SECTION("a pool that cannot fill one ring") {
            c.total_num_mbufs = 100;
            refused("cannot fill even one RX and one TX ring");
        }
        SECTION("an expected body longer than a probe reads") {
            c.vips[0].check.kind = sluice::lb::CheckConf::Kind::http;
            c.vips[0].check.http_body = std::string(sluice::lb::kMaxProbeResponse + 1, 'x');
            refused("a probe reads at most");
        }
    }
    SECTION("long values are cut in messages") {
        auto r = parse_config_text("vip = " + std::string(1'000'000, 'x') + "\n", "long.conf");
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().size() < 600);
        CHECK_THAT(r.error(), Contains("bytes in all"));
        auto raw = parse_config_text(std::string("vip = we\x1b[2Jb,203.0.113.10:80/tcp,nat\n"), "esc.conf");
        REQUIRE_FALSE(raw.ok());
        CHECK_THAT(raw.error(), Contains("we\\x1b[2Jb"));
    }
}

TEST_CASE("at most 65535 backends in all", "[options]") {
    Config c;
    sluice::lb::VipConf v;
    v.name = "big";
    v.addr = ip("203.0.113.10");
    v.port = 80;
    c.vips.push_back(v);
    v.name = "big2";
    v.port = 81;
    c.vips.push_back(v);
    // 65535 distinct backends in 10.0.0.0/8, split over two VIPs, each with a neighbor.
    for (uint32_t i = 0; i < 65535; ++i) {
        // Odd last octets only (no .0 or .255): 7 bits there, the other 9 in the middle octets.
        uint8_t b[4] = {10, static_cast<uint8_t>(i >> 15), static_cast<uint8_t>(i >> 7),
                        static_cast<uint8_t>((i & 0x7f) << 1 | 1)};
        auto a = sluice::net::IpAddr::v4(b);
        c.vips[i % 2].backends.push_back({a, 0, 1});
        c.neighbors.push_back({a, mac("02:00:00:00:00:01")});
    }
    auto ok = validate(c);
    INFO(ok.error());
    CHECK(ok.ok());

    uint8_t extra[4] = {11, 0, 0, 1};
    auto a = sluice::net::IpAddr::v4(extra);
    c.vips[0].backends.push_back({a, 0, 1});
    c.neighbors.push_back({a, mac("02:00:00:00:00:01")});
    auto s = validate(c);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.error(), Contains("65536 backends"));
    CHECK_THAT(s.error(), Contains("65535"));
}

TEST_CASE("a --self address may not also be a --snat address", "[options]") {
    auto r = parse_args({"--vip", "web,203.0.113.10:80/tcp,fullnat", "--backend", "web,198.51.100.11", "--neighbor",
                         "198.51.100.11,02:00:00:00:00:11", "--snat", "198.51.100.100", "--self", "198.51.100.100/24"});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Contains("--self '198.51.100.100/24'"));
    CHECK_THAT(r.error(), Contains("also a --snat address"));
}

TEST_CASE("--mbcache sizes the per-lcore mbuf cache; --doctor asks for the pre-flight report", "[options]") {
    auto r = parse_args(base());
    REQUIRE(r.ok());
    CHECK(r->config.mbcache == sluice::lb::kDefaultMbcache);
    CHECK(r->action == Action::run);

    r = parse_args(base({"--mbcache", "512", "--doctor"}));
    REQUIRE(r.ok());
    CHECK(r->config.mbcache == 512);
    CHECK(r->action == Action::doctor);

    TempFile file("mbcache = 0\n");
    r = parse_args(base({"--config", file.path}));
    REQUIRE(r.ok());
    CHECK(r->config.mbcache == 0);

    check_rejected({
        {"mbcache above the mempool's maximum", base({"--mbcache", "513"}), {"--mbcache '513'", "0..512"}},
        {"mbcache not a number", base({"--mbcache", "lots"}), {"--mbcache 'lots'"}},
        {"doctor in a file", base({"--config", TempFile("doctor = 1\n").path}), {"only on the command line"}},
    });
}

TEST_CASE("replication: --sync-id, --sync-listen, --sync-peer, --sync-key and their rules", "[options]") {
    const Args fullnat = {"--vip", "f,203.0.113.30:80/tcp,fullnat", "--backend", "f,198.51.100.11:80", "--neighbor",
                          "198.51.100.11,02:00:00:00:00:11", "--snat", "203.0.113.201", "--client-gateway",
                          "198.51.100.254", "--neighbor", "198.51.100.254,02:00:00:00:00:fe"};
    auto with = [&](Args extra) {
        Args a = fullnat;
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    const Args sync = {"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key", "/etc/sluice/sync.key",
                       "--sync-peer", "2,198.51.100.2:7500,snat=203.0.113.202,snat=2001:db8:3::202"};
    auto r = parse_args(with(sync));
    REQUIRE(r.ok());
    const auto& y = r->config.sync;
    CHECK(y.id == 1);
    CHECK(y.listen == ip("198.51.100.1"));
    CHECK(y.listen_port == sluice::lb::kDefaultSyncPort);
    REQUIRE(y.peers.size() == 1);
    CHECK(y.peers[0].id == 2);
    CHECK(y.peers[0].port == 7500);
    CHECK(y.peers[0].snat == std::vector{ip("203.0.113.202"), ip("2001:db8:3::202")});
    CHECK(y.min_age_ms == 500);
    CHECK(y.refresh_ms == 15'000);  // half the default UDP timeout
    auto more = parse_args(with({"--sync-id", "1", "--sync-listen", "198.51.100.1:9000", "--sync-key", "k",
                                 "--sync-peer", "2,198.51.100.2", "--sync-min-age", "0", "--sync-refresh", "10s",
                                 "--sync-rate", "5000"}));
    REQUIRE(more.ok());
    CHECK(more->config.sync.listen_port == 9000);
    CHECK(more->config.sync.min_age_ms == 0);
    CHECK(more->config.sync.refresh_ms == 10'000);
    CHECK(more->config.sync.rate == 5000);

    auto minus = [&](const std::string& option) {
        Args a = sync;
        auto it = std::find(a.begin(), a.end(), option);
        a.erase(it, it + 2);
        return with(a);
    };
    check_rejected({
        {"a peer without an id", with({"--sync-peer", "198.51.100.2"}), {"expected ID,ADDR"}},
        {"peers without --sync-id", with({"--sync-peer", "2,198.51.100.2"}), {"need --sync-id"}},
        {"no key", minus("--sync-key"), {"--sync-key FILE"}},
        {"no listen address", minus("--sync-listen"), {"--sync-listen ADDR"}},
        {"no peer", minus("--sync-peer"), {"at least one --sync-peer"}},
        {"a peer with our id", with({"--sync-id", "2", "--sync-listen", "198.51.100.1", "--sync-key", "k",
                                     "--sync-peer", "2,198.51.100.2"}),
         {"this instance's own --sync-id"}},
        {"the same peer twice", with({"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key", "k",
                                      "--sync-peer", "2,198.51.100.2", "--sync-peer", "2,198.51.100.3"}),
         {"a second peer with that id"}},
        {"a peer owning our SNAT address", with({"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key", "k",
                                                  "--sync-peer", "2,198.51.100.2,snat=203.0.113.201"}),
         {"203.0.113.201 is already an address of this instance"}},
        {"an unknown peer field", with({"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key", "k",
                                        "--sync-peer", "2,198.51.100.2,weight=3"}),
         {"unknown field 'weight=3'"}},
        {"a refresh too slow for the timeouts", with({"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key",
                                                       "k", "--sync-peer", "2,198.51.100.2", "--sync-refresh", "20s"}),
         {"--sync-refresh", "at most half"}},
        {"a bare number", with({"--sync-id", "1", "--sync-listen", "198.51.100.1", "--sync-key", "k", "--sync-peer",
                                "2,198.51.100.2", "--sync-min-age", "300"}),
         {"a whole number and a unit"}},
        {"fullnat without a client gateway",
         {"--vip", "f,203.0.113.30:80/tcp,fullnat", "--backend", "f,198.51.100.11:80", "--neighbor",
          "198.51.100.11,02:00:00:00:00:11", "--snat", "203.0.113.201", "--sync-id", "1", "--sync-listen",
          "198.51.100.1", "--sync-key", "k", "--sync-peer", "2,198.51.100.2"},
         {"needs an IPv4 --client-gateway"}},
    });
}

TEST_CASE("replication without --sync-refresh takes half the shorter of the established and UDP timeouts", "[options]") {
    const Args base = {"--vip", "web,203.0.113.10:80/tcp,fullnat", "--backend", "web,198.51.100.11:8080",
                       "--neighbor", "198.51.100.11,02:00:00:00:00:11", "--snat", "203.0.113.100",
                       "--client-gateway", "192.0.2.254", "--neighbor", "192.0.2.254,02:00:00:00:00:fe",
                       "--sync-id", "1", "--sync-listen", "127.0.0.1", "--sync-peer", "2,127.0.0.2",
                       "--sync-key", "/nonexistent/sync.key"};
    auto defaults = parse_args(base);
    INFO((defaults ? std::string() : defaults.error()));
    REQUIRE(defaults);
    CHECK(defaults->config.sync.refresh_ms == 15'000);  // the default UDP timeout is 30 s
    // The in-code default obeys the rule with the default timeouts too.
    CHECK(validate(defaults->config).ok());

    Args shorter = base;
    shorter.insert(shorter.end(), {"--timeout-udp", "8"});
    auto s = parse_args(shorter);
    REQUIRE(s);
    CHECK(s->config.sync.refresh_ms == 4'000);

    Args longer = base;
    longer.insert(longer.end(), {"--timeout-udp", "600", "--timeout-tcp-established", "900"});
    auto l = parse_args(longer);
    REQUIRE(l);
    CHECK(l->config.sync.refresh_ms == 60'000);  // at most 60 s

    // Given, it is held to the rule.
    Args given = base;
    given.insert(given.end(), {"--sync-refresh", "20s"});
    auto g = parse_args(given);
    REQUIRE_FALSE(g);
    CHECK_THAT(g.error(), Contains("--sync-refresh"));
}
