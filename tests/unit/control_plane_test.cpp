// ControlPlane: snapshot building and publishing, command handling, health transitions and
// passive detection, without DPDK (the hooks are plain functions here).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "lib/config/options.hpp"
#include "lib/control/control_plane.hpp"

using namespace sluice;
using namespace sluice::control;
using Catch::Matchers::Contains;

namespace {

uint64_t now_ms() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

lb::Config parse(std::vector<std::string> args) {
    auto p = config::parse_args(args);
    REQUIRE(p.ok());
    return p->config;
}

// A TCP port on 127.0.0.1 that refuses connections (bound, not listening) or accepts them.
struct LocalPort {
    int fd = -1;
    uint16_t port = 0;
    explicit LocalPort(bool listening) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        if (listening) REQUIRE(::listen(fd, 64) == 0);
    }
    ~LocalPort() { ::close(fd); }
};

// The workers as the control plane sees them: publishes and flushes are recorded, the
// counters are what a test sets.
struct Harness : Workers {
    std::vector<std::shared_ptr<const lb::Service>> published;
    int flushes = 0;
    std::vector<std::string> logs;
    lb::WorkerCounters totals;
    lb::Config reread_config;
    bool reread_fails = false;

    void publish(std::shared_ptr<const lb::Service> s) override { published.push_back(std::move(s)); }
    void run_on_all(Task t) override { flushes += t == Task::flush_removed; }
    std::optional<std::vector<lb::Dataplane::Explanation>> ask_all(const FlowQuery&) override { return std::nullopt; }
    std::optional<std::vector<std::vector<lb::PersistEntry>>> persist_entries(uint16_t, size_t) override {
        return std::nullopt;
    }
    void send_persist(uint16_t, std::vector<lb::PersistEntry>) override {}
    void send_sessions(uint16_t, std::vector<lb::SessionReport>) override {}
    std::optional<SessionWalk> walk_sessions(uint16_t, bool, uint32_t, uint32_t, bool, size_t) override {
        return std::nullopt;
    }
    std::optional<std::vector<lb::PersistEntry>> walk_persist(uint16_t, size_t) override { return std::nullopt; }
    uint32_t clock_ms() const override { return 0; }
    void for_each(const std::function<void(const lb::Dataplane&)>&) const override {}
    lb::WorkerCounters counters() const override { return totals; }

    Hooks hooks() {
        Hooks h;
        h.log = [this](const std::string& l) { logs.push_back(l); };
        h.reread = [this]() -> Expected<lb::Config> {
            if (reread_fails) return make_error("sluice.conf:1: --vip 'broken': expected NAME");
            return reread_config;
        };
        return h;
    }
};

const std::vector<std::string> kBase = {
    "--vip", "web,203.0.113.10:80/tcp,nat", "--backend", "web,198.51.100.11:8080", "--backend",
    "web,198.51.100.12:8080", "--backend", "web,198.51.100.13:8080", "--neighbor", "198.51.100.11,02:00:00:00:00:11",
    "--neighbor", "198.51.100.12,02:00:00:00:00:12", "--neighbor", "198.51.100.13,02:00:00:00:00:13",
    "--neighbor", "198.51.100.14,02:00:00:00:00:14"};

ControlPlane make(Harness& h, lb::Config c) {
    auto prober = Prober::create();
    REQUIRE(prober.ok());
    return ControlPlane(std::move(c), h, h.hooks(), std::move(*prober));
}

Command cmd(const std::string& line) {
    auto c = parse_command(line);
    REQUIRE(c.ok());
    return *c;
}

}  // namespace

TEST_CASE("commands change the snapshot, keep indices, and reject bad input without change", "[control]") {
    Harness h;
    auto cp = make(h, parse(kBase));
    REQUIRE(cp.start(0).ok());
    REQUIRE(h.published.size() == 1);
    const auto first = h.published.back();
    const uint16_t vip = static_cast<uint16_t>(first->find_vip_by_name("web"));
    const int b2 = first->find_backend(vip, *net::parse_ip("198.51.100.12"), 8080);
    REQUIRE(b2 >= 0);

    SECTION("drain: weight 0 in Maglev, state draining, same index") {
        auto r = cp.handle(cmd("drain web 198.51.100.12:8080"));
        CHECK_THAT(r, Contains("ok"));
        const auto& s = *h.published.back();
        CHECK(s.find_backend(vip, *net::parse_ip("198.51.100.12"), 8080) == b2);
        CHECK(s.backends()[static_cast<size_t>(b2)].state == lb::BackendState::draining);
        // Maglev never picks it now.
        const auto& v = s.vips()[vip];
        for (uint64_t f = 0; f < 5000; ++f) CHECK(v.backends[v.maglev.lookup(f * 0x9E3779B97F4A7C15ULL)] != b2);
        CHECK_THAT(cp.list(), Contains("backend 198.51.100.12:8080 state=draining"));
    }
    SECTION("remove then add: the old entry becomes a tombstone and is flushed; new one gets a fresh index") {
        CHECK_THAT(cp.handle(cmd("remove-backend web 198.51.100.12:8080")), Contains("ok"));
        REQUIRE(h.flushes == 1);
        const auto& s = *h.published.back();
        CHECK(s.backends()[static_cast<size_t>(b2)].removed);
        CHECK_THAT(cp.handle(cmd("add-backend web 198.51.100.14:8080 weight=2")), Contains("ok"));
        const auto& t = *h.published.back();
        const int b4 = t.find_backend(vip, *net::parse_ip("198.51.100.14"), 8080);
        CHECK(b4 == 3);  // indices are never reused
        CHECK(t.backends()[3].weight == 2);
    }
    SECTION("unchanged VIPs reuse their Maglev table") {
        CHECK_THAT(cp.handle(cmd("set-state web 198.51.100.12:8080 up")), Contains("ok"));
        CHECK(h.published.back()->vips()[vip].maglev.lookup(12345) == first->vips()[vip].maglev.lookup(12345));
    }
    SECTION("bad control input: clear errors, nothing published") {
        const size_t before = h.published.size();
        CHECK_THAT(cp.handle(cmd("drain nope 198.51.100.12:8080")), Contains("error: unknown VIP 'nope'"));
        CHECK_THAT(cp.handle(cmd("set-weight web 198.51.100.99 3")), Contains("has no backend 198.51.100.99"));
        CHECK_THAT(cp.handle(parse_command("set-weight web 198.51.100.11 70000")), Contains("error"));
        CHECK_THAT(cp.handle(cmd("add-backend web 198.51.100.99:8080")), Contains("no --neighbor"));
        CHECK_THAT(cp.handle(cmd("add-backend web 198.51.100.11:8080")), Contains("duplicate backend"));
        CHECK(h.published.size() == before);
    }
    SECTION("changes need a privileged peer, are logged with who asked, and a retried id applies once") {
        const size_t before = h.published.size();
        const Peer monitor{4242, 65534, 65534, false};
        CHECK_THAT(cp.handle(cmd("set-weight web 198.51.100.11 3"), monitor), Contains("error: read-only: uid 65534"));
        CHECK_THAT(cp.handle(cmd("reload"), monitor), Contains("read-only"));
        CHECK_THAT(cp.handle(cmd("list"), monitor), Contains("ok"));
        CHECK(h.published.size() == before);
        const Peer op{77, 0, 0, true};
        const std::string first = cp.handle(cmd("set-weight web 198.51.100.11 3 id=retry-1"), op);
        CHECK_THAT(first, Contains("ok"));
        CHECK(h.published.size() == before + 1);
        CHECK_THAT(h.logs.back(), Contains("weight 3 by uid=0 pid=77"));
        // The same id again (a retry after a timeout): the first answer, nothing applied.
        CHECK(cp.handle(cmd("set-weight web 198.51.100.11 3 id=retry-1"), op) == first);
        CHECK(h.published.size() == before + 1);
        CHECK_THAT(h.logs.back(), Contains("not applied again"));
        // add-backend twice with one id: the second would fail as a duplicate; it gets "ok".
        const std::string added = cp.handle(cmd("add-backend web 198.51.100.12:9090 id=add-1"), op);
        CHECK(cp.handle(cmd("add-backend web 198.51.100.12:9090 id=add-1"), op) == added);
        CHECK_THAT(cp.handle(cmd("add-backend web 198.51.100.12:9090 id=add-2"), op), Contains("duplicate backend"));
    }
    SECTION("reload: broken file rejected and logged, good file applied") {
        h.reread_fails = true;
        const size_t before = h.published.size();
        CHECK_THAT(cp.handle(cmd("reload")), Contains("error: sluice.conf:1"));
        CHECK(h.published.size() == before);
        // One line, naming who asked (systemd's ExecReload is sluicectl reload).
        REQUIRE(!h.logs.empty());
        CHECK_THAT(h.logs.back(), Contains("reload rejected (asked by uid=0 pid=0)"));
        CHECK_THAT(h.logs.back(), Contains("sluice.conf:1"));
        if (h.logs.size() >= 2) CHECK_THAT(h.logs[h.logs.size() - 2], !Contains("reload"));
        h.reread_fails = false;
        auto c = parse(kBase);
        c.vips[0].backends.pop_back();
        h.reread_config = c;
        CHECK_THAT(cp.handle(cmd("reload")), Contains("ok"));
        CHECK(h.flushes == 1);
        CHECK_THAT(h.logs.back(), Contains("configuration reloaded by uid=0 pid=0: 1 backends removed"));
        auto bad = parse(kBase);
        bad.flow_capacity = 4096;
        h.reread_config = bad;
        CHECK_THAT(cp.handle(cmd("reload")), Contains("restart-only settings changed (--flow-capacity)"));
        auto cache = parse(kBase);
        cache.mbcache = 128;  // read by the mempool at start-up only: a reload must say so
        h.reread_config = cache;
        CHECK_THAT(cp.handle(cmd("reload")), Contains("restart-only settings changed (--mbcache)"));
    }
}

TEST_CASE("active checks take a backend down and back, logged once with the reason", "[control]") {
    LocalPort alive(true), dead(false);
    Harness h;
    auto c = parse({"--vip", "web,203.0.113.10:80/tcp,nat,check=tcp,inter=50ms,fall=2,rise=2,timeout=100ms",
                    "--backend", fmt::format("web,127.0.0.1:{}", alive.port), "--backend",
                    fmt::format("web,127.0.0.1:{}", dead.port), "--neighbor", "127.0.0.1,02:00:00:00:00:01",
                    "--host-probes", "yes"});
    auto cp = make(h, c);
    const uint64_t t0 = now_ms();
    REQUIRE(cp.start(t0).ok());
    bool down = false;
    while (!down && now_ms() - t0 < 3000) {
        cp.poll(now_ms(), 10);
        down = cp.list().find(fmt::format("backend 127.0.0.1:{} state=down", dead.port)) != std::string::npos;
    }
    REQUIRE(down);
    const uint64_t took = now_ms() - t0;
    CHECK(took <= 2 * 50 + 100 + 50 + 200);  // fall x inter + timeout, plus the first-probe offset and slack
    const auto& s = *h.published.back();
    const int dead_idx = s.find_backend(0, *net::parse_ip("127.0.0.1"), dead.port);
    CHECK(s.backends()[static_cast<size_t>(dead_idx)].state == lb::BackendState::down);
    REQUIRE(h.logs.size() == 1);
    CHECK_THAT(h.logs[0], Contains("DOWN: tcp connect"));
    CHECK_THAT(h.logs[0], Contains("2/2 failures"));
    CHECK_THAT(cp.list(), Contains(fmt::format("backend 127.0.0.1:{} state=up", alive.port)));
}

TEST_CASE("passive detection marks a backend down; the operator can bring it back", "[control]") {
    Harness h;
    auto args = kBase;
    args[1] = "web,203.0.113.10:80/tcp,nat,passive=5,inter=1s";
    auto cp = make(h, parse(args));
    REQUIRE(cp.start(0).ok());
    const auto& s0 = *h.published.back();
    const int b1 = s0.find_backend(0, *net::parse_ip("198.51.100.11"), 8080);
    h.totals.backends.resize(s0.backends().size());
    h.totals.backends[static_cast<size_t>(b1)].handshake_failures = 4;
    cp.poll(1000, 0);
    CHECK_THAT(cp.list(), Contains("backend 198.51.100.11:8080 state=up"));
    h.totals.backends[static_cast<size_t>(b1)].handshake_failures = 10;  // 6 more in one interval
    cp.poll(2000, 0);
    CHECK_THAT(cp.list(), Contains("backend 198.51.100.11:8080 state=down"));
    CHECK_THAT(h.logs.back(), Contains("passive: 6 failed TCP handshakes"));
    CHECK(h.published.back()->backends()[static_cast<size_t>(b1)].state == lb::BackendState::down);
    CHECK_THAT(cp.handle(cmd("set-state web 198.51.100.11:8080 up")), Contains("ok"));
    CHECK_THAT(cp.list(), Contains("backend 198.51.100.11:8080 state=up"));
}

TEST_CASE("a reload that changes a VIP's check settings re-arms its probes", "[control]") {
    LocalPort dead(false);
    Harness h;
    auto make_cfg = [&](const char* check) {
        return parse({"--vip", fmt::format("web,203.0.113.10:80/tcp,nat,{}", check), "--backend",
                      fmt::format("web,127.0.0.1:{}", dead.port), "--neighbor", "127.0.0.1,02:00:00:00:00:01",
                    "--host-probes", "yes"});
    };
    auto cp = make(h, make_cfg("check=tcp,inter=50ms,fall=1,rise=1,timeout=50ms"));
    const uint64_t t0 = now_ms();
    REQUIRE(cp.start(t0).ok());
    const std::string be = fmt::format("backend 127.0.0.1:{}", dead.port);
    while (cp.list().find(be + " state=down") == std::string::npos && now_ms() - t0 < 3000) cp.poll(now_ms(), 10);
    REQUIRE_THAT(cp.list(), Contains(be + " state=down"));
    // No active check any more: nothing could bring it back, so it is up again.
    h.reread_config = make_cfg("check=none");
    REQUIRE(cp.reload().ok());
    CHECK_THAT(cp.list(), Contains(be + " state=up"));
    CHECK(cp.prober().status().empty());
    // A new check kind gets a new probe with the new settings.
    h.reread_config = make_cfg("check=http,inter=50ms,fall=1,rise=1,timeout=50ms");
    REQUIRE(cp.reload().ok());
    REQUIRE(cp.prober().status().size() == 1);
    const uint64_t t1 = now_ms();
    while (cp.list().find(be + " state=down") == std::string::npos && now_ms() - t1 < 3000) cp.poll(now_ms(), 10);
    CHECK_THAT(cp.list(), Contains("last_check=\"tcp connect: Connection refused\""));
}

TEST_CASE("the tier: a VIP address is offered while a backend is up and the workers forward", "[control]") {
    LocalPort alive(true), dead(false);
    Harness h;
    auto c = parse({"--vip", "web,203.0.113.10:80/tcp,nat,check=tcp,inter=50ms,fall=1,rise=1,timeout=100ms",
                    "--backend", fmt::format("web,127.0.0.1:{}", alive.port), "--vip", "web6,[2001:db8:3::10]:80/tcp,dsr",
                    "--backend", "web6,[2001:db8:2::11]", "--neighbor", "127.0.0.1,02:00:00:00:00:01",
                    "--vip", "udp6,[2001:db8:3::10]:53/udp,dsr", "--backend", "udp6,[2001:db8:2::12]",
                    "--neighbor", "2001:db8:2::12,02:00:00:00:00:12", "--kernel-if", "sl"});
    std::vector<std::pair<std::string, bool>> calls;
    Hooks hooks = h.hooks();
    hooks.route = [&](const net::IpAddr& a, bool on) {
        calls.emplace_back(net::to_string(a), on);
        return Status{};
    };
    auto prober = Prober::create();
    REQUIRE(prober.ok());
    ControlPlane cp(c, h, std::move(hooks), std::move(*prober));
    const uint64_t t0 = now_ms();
    REQUIRE(cp.start(t0).ok());
    // Nothing before the workers forward.
    cp.poll(t0, 0);
    CHECK(calls.empty());
    CHECK_THAT(cp.list(), Contains("announced=no announce_reason=\"the workers have not started\""));
    cp.set_forwarding(true, "");
    // The IPv6 address: web6's backend has no MAC, but udp6 on the same address can serve.
    REQUIRE(calls.size() == 1);
    CHECK(calls[0] == std::make_pair(std::string("2001:db8:3::10"), true));
    CHECK_THAT(cp.list(), Contains("web6: no backend up (1 configured, 1 without a MAC)"));
    // The IPv4 one once its only backend passed a check, not before.
    while (calls.size() < 2 && now_ms() - t0 < 2000) cp.poll(now_ms(), 10);
    REQUIRE(calls.size() == 2);
    CHECK(calls[1] == std::make_pair(std::string("203.0.113.10"), true));
    CHECK_THAT(h.logs.back(), Contains("announce 203.0.113.10: web: 1 of 1 backends up"));
    // A stalled worker withdraws everything, once.
    cp.set_forwarding(false, "worker 0 has not polled for 1000 ms");
    cp.set_forwarding(false, "worker 0 has not polled for 1000 ms");
    REQUIRE(calls.size() == 4);
    CHECK_FALSE(calls[2].second);
    CHECK_FALSE(calls[3].second);
    CHECK_THAT(h.logs.back(), Contains("withdraw"));
    CHECK_THAT(h.logs.back(), Contains("worker 0 has not polled for 1000 ms"));
    cp.set_forwarding(true, "");
    REQUIRE(calls.size() == 6);
    // The operator withdraws the instance and brings it back.
    CHECK_THAT(cp.handle(cmd("withdraw")), Contains("ok"));
    REQUIRE(calls.size() == 8);
    CHECK_THAT(cp.list(), Contains("announced=no announce_reason=\"withdrawn by uid=0"));
    cp.poll(now_ms(), 0);
    CHECK(calls.size() == 8);
    CHECK_THAT(cp.handle(cmd("announce")), Contains("ok"));
    REQUIRE(calls.size() == 10);
    // The backend's death withdraws its VIP's address only.
    CHECK_THAT(cp.handle(cmd(fmt::format("set-state web 127.0.0.1:{} down", alive.port))), Contains("ok"));
    cp.poll(now_ms() + 200, 0);
    REQUIRE(calls.size() == 11);
    CHECK(calls[10] == std::make_pair(std::string("203.0.113.10"), false));
    CHECK_THAT(h.logs.back(), Contains("withdraw 203.0.113.10: web: no backend up (1 configured)"));
}

TEST_CASE("the tier: without --announce the commands say so", "[control]") {
    Harness h;
    auto cp = make(h, parse(kBase));
    REQUIRE(cp.start(0).ok());
    CHECK_THAT(cp.handle(cmd("withdraw")), Contains("announcing is off"));
    CHECK(cp.list().find("announced=") == std::string::npos);
}

TEST_CASE("the tier: announce-min holds a VIP back until enough backends are up", "[control]") {
    Harness h;
    auto args = kBase;
    args[1] = "web,203.0.113.10:80/tcp,nat,announce-min=3";
    std::vector<bool> calls;
    Hooks hooks = h.hooks();
    hooks.route = [&](const net::IpAddr&, bool on) {
        calls.push_back(on);
        return Status{};
    };
    auto prober = Prober::create();
    REQUIRE(prober.ok());
    ControlPlane cp(parse(args), h, std::move(hooks), std::move(*prober));
    REQUIRE(cp.start(0).ok());
    cp.set_forwarding(true, "");
    REQUIRE(calls == std::vector<bool>{true});
    CHECK_THAT(cp.handle(cmd("set-state web 198.51.100.11:8080 down")), Contains("ok"));
    cp.poll(1000, 0);
    REQUIRE(calls == std::vector<bool>{true, false});
    CHECK_THAT(h.logs.back(), Contains("web: 2 of 3 backends up, announce-min=3"));
}

TEST_CASE("a backend added to a running VIP with checks takes no flows before its first good check", "[control]") {
    LocalPort first(true), added(true);
    Harness h;
    auto c = parse({"--vip", "web,203.0.113.10:80/tcp,nat,check=tcp,inter=50ms,fall=2,rise=3,timeout=100ms", "--backend",
                    fmt::format("web,127.0.0.1:{}", first.port), "--neighbor", "127.0.0.1,02:00:00:00:00:01",
                    "--host-probes", "yes"});
    auto cp = make(h, c);
    const uint64_t t0 = now_ms();
    REQUIRE(cp.start(t0).ok());
    // The first configuration's backends start up.
    CHECK_THAT(cp.list(), Contains(fmt::format("backend 127.0.0.1:{} state=up", first.port)));
    CHECK_THAT(cp.handle(cmd(fmt::format("add-backend web 127.0.0.1:{}", added.port))), Contains("ok"));
    const auto& s = *h.published.back();
    const int bi = s.find_backend(0, *net::parse_ip("127.0.0.1"), added.port);
    REQUIRE(bi >= 0);
    CHECK(s.backends()[static_cast<size_t>(bi)].state == lb::BackendState::down);  // in the very first snapshot
    CHECK_THAT(cp.list(), Contains("new backend: no new flows before its first good check"));
    // One good check brings it up, not rise=3.
    bool up = false;
    while (!up && now_ms() - t0 < 3000) {
        cp.poll(now_ms(), 10);
        up = cp.list().find(fmt::format("backend 127.0.0.1:{} state=up", added.port)) != std::string::npos;
    }
    REQUIRE(up);
    CHECK_THAT(h.logs.back(), Contains("first check of a new backend"));
}

TEST_CASE("add-backend with a MAC, and set-neighbor, give next hops their MAC at run time", "[control]") {
    Harness h;
    auto cp = make(h, parse({"--vip", "web,203.0.113.10:80/tcp,nat", "--backend", "web,198.51.100.11:8080",
                             "--kernel-if", "sl"}));
    REQUIRE(cp.start(0).ok());
    CHECK_THAT(cp.handle(cmd("add-backend web 198.51.100.12:8080 mac=02:00:00:00:00:12")), Contains("ok"));
    const auto mac_of = [&](const char* addr) -> std::string {
        const auto& s = *h.published.back();
        const int bi = s.find_backend(0, *net::parse_ip(addr), 8080);
        REQUIRE(bi >= 0);
        const auto& b = s.backends()[static_cast<size_t>(bi)];
        return b.has_mac ? net::to_string(b.mac) : "none";
    };
    CHECK(mac_of("198.51.100.12") == "02:00:00:00:00:12");
    CHECK(mac_of("198.51.100.11") == "none");
    CHECK_THAT(cp.handle(cmd("set-neighbor 198.51.100.11 02:00:00:00:00:11")), Contains("ok"));
    CHECK(mac_of("198.51.100.11") == "02:00:00:00:00:11");
    CHECK_THAT(h.logs.back(), Contains("neighbor 198.51.100.11 set to 02:00:00:00:00:11"));
    CHECK_THAT(cp.handle(cmd("set-neighbor 198.51.100.11 02:00:00:00:00:99")), Contains("ok"));
    CHECK(mac_of("198.51.100.11") == "02:00:00:00:00:99");
}
