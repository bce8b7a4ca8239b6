// Tests for lib/control/ctl_protocol and ctl_server: the request grammar (every accepted form
// and the exact complaint for each malformed one), the canonical round trip, response framing,
// and a real CtlServer on a socket in a temporary directory. Server tests drive poll() from
// the test itself with an injected clock, so deadlines expire without sleeping; one test
// serves from a thread as the control core would. Every wait is bounded.
#include "lib/control/ctl_protocol.hpp"
#include "lib/control/ctl_server.hpp"

#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace sluice::control;
using sluice::Expected;
using sluice::lb::BackendState;
using sluice::lb::Proto;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

sluice::net::IpAddr ip(const char* text) {
    auto a = sluice::net::parse_ip(text);
    REQUIRE(a);
    return *a;
}

std::string echo(const Expected<Command>& c, const sluice::control::Peer& = {}) {
    return c ? ok_response(format_command(*c)) : error_response(c.error());
}

// ---------------------------------------------------------------------------------------------
// Grammar

TEST_CASE("ctl: every command form parses to its fields and canonical line", "[ctl]") {
    struct Row {
        const char* line;
        const char* canonical;
    };
    const Row rows[] = {
        {"list", "list"},
        {"  stats  ", "stats"},
        {"reload\n", "reload"},
        {"clear-counters\r\n", "clear-counters"},
        {"help", "help"},
        {"add-backend web 192.0.2.1", "add-backend web 192.0.2.1"},
        {"add-backend web 192.0.2.1:8080 weight=5", "add-backend web 192.0.2.1:8080 weight=5"},
        {"add-backend web [2001:db8::1]:80 weight=0", "add-backend web [2001:db8::1]:80 weight=0"},
        {"add-backend web 2001:db8::1", "add-backend web 2001:db8::1"},
        {"add-backend web [2001:db8::1]", "add-backend web 2001:db8::1"},
        {"add-backend web 192.0.2.1 weight=007", "add-backend web 192.0.2.1 weight=7"},
        {"add-backend web 192.0.2.1 mac=02:AA:00:00:00:01 weight=2", "add-backend web 192.0.2.1 weight=2 mac=02:aa:00:00:00:01"},
        {"set-neighbor 192.0.2.1 02:00:00:00:00:01", "set-neighbor 192.0.2.1 02:00:00:00:00:01"},
        {"set-neighbor 2001:db8::1 02:00:00:00:00:01", "set-neighbor [2001:db8::1] 02:00:00:00:00:01"},
        {"remove-backend web 192.0.2.1:80", "remove-backend web 192.0.2.1:80"},
        {"set-weight web 192.0.2.1 65535", "set-weight web 192.0.2.1 65535"},
        {"set-weight web.v2_a-1 192.0.2.1 0", "set-weight web.v2_a-1 192.0.2.1 0"},
        {"drain web\t192.0.2.1", "drain web 192.0.2.1"},
        {"set-state web 192.0.2.1:80 disabled", "set-state web 192.0.2.1:80 disabled"},
        {"set-state web 192.0.2.1 draining", "set-state web 192.0.2.1 draining"},
        {"explain tcp 198.51.100.7:40000 203.0.113.10:80", "explain tcp 198.51.100.7:40000 203.0.113.10:80"},
        {"explain udp [2001:db8::7]:5353 [2001:db8::10]:53", "explain udp [2001:db8::7]:5353 [2001:db8::10]:53"},
        {"explain udp 198.51.100.7:0 203.0.113.10:53", "explain udp 198.51.100.7:0 203.0.113.10:53"},
    };
    for (const auto& r : rows) {
        INFO("line: " << r.line);
        auto c = parse_command(r.line);
        REQUIRE(c);
        CHECK(format_command(*c) == r.canonical);
    }

    auto c = parse_command("add-backend web [2001:db8::1]:80 weight=9");
    REQUIRE(c);
    CHECK(c->op == Op::add_backend);
    CHECK(c->vip == "web");
    CHECK(c->addr == ip("2001:db8::1"));
    CHECK(c->port == 80);
    CHECK(c->weight == 9u);

    c = parse_command("add-backend web 192.0.2.1");
    REQUIRE(c);
    CHECK(c->port == 0);
    CHECK(!c->weight);

    c = parse_command("set-weight web 192.0.2.1:8080 0");
    REQUIRE(c);
    CHECK(c->op == Op::set_weight);
    CHECK(c->addr == ip("192.0.2.1"));
    CHECK(c->port == 8080);
    CHECK(c->weight == 0u);

    c = parse_command("set-state web 192.0.2.1 down");
    REQUIRE(c);
    CHECK(c->op == Op::set_state);
    CHECK(c->state == BackendState::down);

    c = parse_command("explain udp [2001:db8::7]:5353 [2001:db8::10]:53");
    REQUIRE(c);
    CHECK(c->op == Op::explain);
    CHECK(c->proto == Proto::udp);
    CHECK(c->src_addr == ip("2001:db8::7"));
    CHECK(c->src_port == 5353);
    CHECK(c->dst_addr == ip("2001:db8::10"));
    CHECK(c->dst_port == 53);

    CHECK(std::string(to_string(Op::clear_counters)) == "clear-counters");
    CHECK(std::string(to_string(Op::remove_backend)) == "remove-backend");
}

TEST_CASE("ctl: malformed requests are rejected naming the bad token", "[ctl]") {
    struct Row {
        std::string line;
        std::vector<std::string> says;
    };
    const std::vector<Row> rows = {
        {"", {"empty request", "try 'help'"}},
        {"   \t ", {"empty request"}},
        {"\n", {"empty request"}},
        {"lst", {"unknown command 'lst'", "expected one of: list, stats, add-backend, remove-backend, set-weight, "
                                          "drain, set-state, reload, clear-counters, explain, persist, set-neighbor, "
                                          "withdraw, announce, help"}},
        {"add-backend web 192.0.2.1 mac=02:00:00:00:00", {"bad MAC '02:00:00:00:00'"}},
        {"add-backend web 192.0.2.1 mac=01:00:5e:00:00:01", {"zero or multicast"}},
        {"add-backend web 192.0.2.1 weight=1 weight=2", {"unexpected argument 'weight=2'"}},
        {"set-neighbor 192.0.2.1", {"set-neighbor: missing MAC"}},
        {"set-neighbor 192.0.2.1:80 02:00:00:00:00:01", {"a neighbor is an address"}},
        {"set-neighbor 192.0.2.1 00:00:00:00:00:00", {"zero or multicast"}},
        {"persist", {"persist: missing VIP", "usage: persist VIP"}},
        {"persist web extra", {"persist: unexpected argument 'extra'"}},
        {"persist 'web'", {"bad VIP name"}},
        {"LIST", {"unknown command 'LIST'"}},
        {"list extra", {"list: unexpected argument 'extra'", "usage: list)"}},
        {"help me", {"help: unexpected argument 'me'"}},
        {"add-backend", {"add-backend: missing VIP", "usage: add-backend VIP ADDR[:PORT] [weight=N]"}},
        {"add-backend web", {"add-backend: missing ADDR[:PORT]"}},
        {"add-backend web 192.0.2.1 weight=70000", {"add-backend: weight '70000' out of range (0..65535)"}},
        {"add-backend web 192.0.2.1 weight=x", {"add-backend: bad weight 'x'", "decimal number 0..65535"}},
        {"add-backend web 192.0.2.1 weight=", {"bad weight ''"}},
        {"add-backend web 192.0.2.1 weight=1 weight=2", {"unexpected argument 'weight=2'"}},
        {"add-backend web 192.0.2.1 foo", {"add-backend: unexpected argument 'foo'", "[weight=N]"}},
        {"add-backend web 192.0.2.300", {"add-backend: bad backend address '192.0.2.300'", "expected ADDR[:PORT]"}},
        {"add-backend web 192.0.2.1:0", {"backend address '192.0.2.1:0'", "port 0 out of range (1..65535)"}},
        {"add-backend web 192.0.2.1:70000", {"port 70000 out of range (1..65535)"}},
        {"add-backend web 192.0.2.1:http", {"port 'http' is not a decimal number"}},
        {"add-backend web 192.0.2.1:", {"port '' is not a decimal number"}},
        {"add-backend web [2001:db8::1", {"'[2001:db8::1'", "no ']'"}},
        {"add-backend web [2001:db8::1]80", {"expected ':PORT' after ']'"}},
        {"add-backend web [192.0.2.1]:80", {"brackets are for IPv6"}},
        {"add-backend web 2001:db8::zz", {"'2001:db8::zz' is not an IPv6 address"}},
        {"add-backend web!x 192.0.2.1", {"add-backend: bad VIP name 'web!x'", "letters, digits"}},
        {"add-backend " + std::string(64, 'v') + " 192.0.2.1", {"bad VIP name"}},
        {"remove-backend web", {"remove-backend: missing ADDR[:PORT]"}},
        {"set-weight web 192.0.2.1", {"set-weight: missing weight N", "usage: set-weight VIP ADDR[:PORT] N"}},
        {"set-weight web 192.0.2.1 65536", {"set-weight: weight '65536' out of range (0..65535)"}},
        {"set-weight web 192.0.2.1 99999999999999999999999", {"out of range (0..65535)"}},
        {"set-weight web 192.0.2.1 -1", {"set-weight: bad weight '-1'"}},
        {"set-weight web 192.0.2.1 1 2", {"set-weight: unexpected argument '2'"}},
        {"set-state web 192.0.2.1 Up", {"set-state: bad state 'Up' (expected up, down, draining or disabled)"}},
        {"set-state web 192.0.2.1", {"set-state: missing state up|down|draining|disabled"}},
        {"drain web 192.0.2.1 now", {"drain: unexpected argument 'now'"}},
        {"explain", {"explain: missing protocol tcp|udp"}},
        {"explain icmp 1.2.3.4:1 5.6.7.8:2", {"explain: bad protocol 'icmp' (expected tcp or udp)"}},
        {"explain tcp 198.51.100.7 203.0.113.10:80", {"explain: source '198.51.100.7' lacks a port"}},
        {"explain tcp 198.51.100.7:1 2001:db8::1", {"destination '2001:db8::1' lacks a port", "[2001:db8::1]:80"}},
        {"explain tcp 198.51.100.7:1", {"explain: missing DST_ADDR:DPORT"}},
        {"explain tcp 198.51.100.7:1 [2001:db8::1]:80", {"different address families"}},
        {"explain tcp 198.51.100.7:1 203.0.113.10:80 x", {"explain: unexpected argument 'x'"}},
        {"explain tcp 198.51.100.7:1 bad:80", {"explain: bad destination 'bad:80'"}},
        {"list\x01", {"bad character 0x01 at byte 4"}},
        {std::string("li\0st", 5), {"bad character 0x00 at byte 2"}},
        {"list\nstats", {"more than one line"}},
        {std::string(5000, 'a'), {"request line too long (5001 bytes, at most 4096"}},
        {"list" + std::string(4092, ' ') + "\n", {"request line too long (4097 bytes"}},
        {"x" + std::string(200, 'y'), {"unknown command 'xyyy", "...' (201 bytes)"}},
    };
    for (const auto& r : rows) {
        INFO("line: " << r.line.substr(0, 100));
        auto c = parse_command(r.line);
        REQUIRE_FALSE(c);
        for (const auto& s : r.says) CHECK_THAT(c.error(), Contains(s));
        CHECK(c.error().find('\n') == std::string::npos);  // one line: it becomes "error: ..."
    }
    // The limit is exact: 4096 bytes with the newline pass.
    CHECK(parse_command("list" + std::string(4091, ' ') + "\n"));
    CHECK(parse_command("list" + std::string(4091, ' ')));
}

TEST_CASE("ctl: format and parse round-trip", "[ctl]") {
    std::vector<Command> cmds;
    for (Op op : {Op::list, Op::stats, Op::reload, Op::clear_counters, Op::help}) {
        Command c;
        c.op = op;
        cmds.push_back(c);
    }
    Command pc;
    pc.op = Op::persist;
    pc.vip = "web-6.a_b";
    cmds.push_back(pc);
    Command c;
    c.op = Op::add_backend;
    c.vip = "web";
    c.addr = ip("2001:db8::1");
    c.port = 443;
    c.weight = 65535;
    cmds.push_back(c);
    c.port = 0;  // bare IPv6
    c.weight.reset();
    cmds.push_back(c);
    c.op = Op::remove_backend;
    c.addr = ip("192.0.2.9");
    cmds.push_back(c);
    c.op = Op::drain;
    c.port = 1;
    cmds.push_back(c);
    c.op = Op::set_weight;
    c.weight = 0;
    cmds.push_back(c);
    for (auto st : {BackendState::up, BackendState::down, BackendState::draining, BackendState::disabled}) {
        Command s;
        s.op = Op::set_state;
        s.vip = "db-1";
        s.addr = ip("198.51.100.2");
        s.port = 5432;
        s.state = st;
        cmds.push_back(s);
    }
    for (auto proto : {Proto::tcp, Proto::udp}) {
        Command e;
        e.op = Op::explain;
        e.proto = proto;
        e.src_addr = ip("2001:db8::7");
        e.src_port = 0;
        e.dst_addr = ip("2001:db8::10");
        e.dst_port = 65535;
        cmds.push_back(e);
    }
    for (const auto& cmd : cmds) {
        auto line = format_command(cmd);
        INFO("line: " << line);
        auto back = parse_command(line);
        REQUIRE(back);
        CHECK(*back == cmd);
        CHECK(format_command(*back) == line);
    }
}

TEST_CASE("ctl: response framing", "[ctl]") {
    CHECK(ok_response("") == "ok\n");
    CHECK(ok_response("a\nb") == "ok\na\nb\n");
    CHECK(ok_response("a\n") == "ok\na\n");
    CHECK(error_response("no such VIP 'x'") == "error: no such VIP 'x'\n");
    CHECK(error_response("first\nsecond") == "error: first\nsecond\n");
    CHECK(error_response("") == "error: unspecified error\n");

    auto r = parse_response(ok_response("line 1\nline 2\n"));
    REQUIRE(r);
    CHECK(r->ok);
    CHECK(r->message.empty());
    CHECK(r->body == "line 1\nline 2\n");

    r = parse_response(error_response("bad thing\ndetail"));
    REQUIRE(r);
    CHECK_FALSE(r->ok);
    CHECK(r->message == "bad thing");
    CHECK(r->body == "detail\n");

    r = parse_response("");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Contains("empty response"));
    r = parse_response("ok");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Contains("truncated response 'ok'"));
    r = parse_response("okay\n");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Contains("unexpected response line 'okay'"));

    auto help = help_text();
    for (const char* name : {"list", "stats", "add-backend VIP ADDR[:PORT] [weight=N]", "remove-backend",
                             "set-weight VIP ADDR[:PORT] N", "drain", "set-state", "reload", "clear-counters",
                             "explain tcp|udp SRC_ADDR:SPORT DST_ADDR:DPORT", "persist VIP", "help"})
        CHECK_THAT(help, Contains(name));
    // What stats answers: totals (there are no per-worker counters in it), and per worker only
    // the flow table's fill.
    CHECK_THAT(help, Contains("counters summed over the workers, each worker's flow-table fill, drops"));
}

// ---------------------------------------------------------------------------------------------
// Server

// A temporary directory removed with everything in it.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/sluice-ctl-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const char* name) const { return (path / name).string(); }
};

sockaddr_un unix_addr(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof a.sun_path);
    std::memcpy(a.sun_path, path.data(), path.size());
    return a;
}

// A non-blocking client socket the test pumps by hand between server polls.
struct Client {
    int fd = -1;
    std::string got;
    bool eof = false;

    explicit Client(const std::string& path) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        auto a = unix_addr(path);
        REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    }
    ~Client() { close(); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void send(const std::string& s) {
        REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
    }
    void close() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    // Reads what is there; true once the server has closed.
    bool pump() {
        char buf[4096];
        while (!eof) {
            ssize_t r = ::recv(fd, buf, sizeof buf, 0);
            if (r > 0)
                got.append(buf, static_cast<size_t>(r));
            else if (r == 0 || errno == ECONNRESET)
                eof = true;
            else if (errno != EINTR)
                break;
        }
        return eof;
    }
};

// Polls the server until `done` holds; at most 300 rounds of 10 ms.
template <typename Done>
bool serve_until(CtlServer& server, const CtlServer::Handler& handler, Done done) {
    for (int i = 0; i < 300; ++i) {
        server.poll(10, handler);
        if (done()) return true;
    }
    return false;
}

bool serve_one(CtlServer& server, Client& peer, const CtlServer::Handler& handler = echo) {
    return serve_until(server, handler, [&] { return peer.pump(); });
}

// A blocking client as sluicectl is: one request, read until the server closes, 5 s at most.
// No REQUIRE inside: it runs while the server thread does.
std::string blocking_request(const std::string& path, const std::string& line) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket failed";
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
    std::string got;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 &&
        ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
        char buf[4096];
        for (;;) {
            ssize_t r = ::recv(fd, buf, sizeof buf, 0);
            if (r <= 0) break;
            got.append(buf, static_cast<size_t>(r));
        }
    }
    ::close(fd);
    return got;
}

TEST_CASE("ctl: server answers a client and cleans up its socket file", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    {
        auto server = CtlServer::open(path);
        REQUIRE(server);
        CHECK(server->fd() >= 0);
        CHECK(server->path() == path);
        struct stat st {};
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) == 0666);  // anyone may read; roles come from the peer

        int calls = 0;
        CtlServer::Handler handler = [&](const Expected<Command>& c, const sluice::control::Peer&) {
            ++calls;
            return echo(c, {});
        };
        Client peer(path);
        peer.send("set-weight web 192.0.2.1:80 7\n");
        REQUIRE(serve_one(*server, peer, handler));
        CHECK(peer.got == "ok\nset-weight web 192.0.2.1:80 7\n");
        CHECK(calls == 1);
        CHECK(server->client_count() == 0);

        // Malformed requests reach the handler as errors.
        Client bad(path);
        bad.send("set-weight web 192.0.2.1 x\n");
        REQUIRE(serve_one(*server, bad, handler));
        CHECK_THAT(bad.got, StartsWith("error: set-weight: bad weight 'x'"));
        CHECK(calls == 2);

        // A last line ended by end-of-stream instead of '\n' still counts.
        Client eof_line(path);
        eof_line.send("stats");
        REQUIRE(::shutdown(eof_line.fd, SHUT_WR) == 0);
        REQUIRE(serve_one(*server, eof_line, handler));
        CHECK(eof_line.got == "ok\nstats\n");

        // A connection that sends nothing and leaves is closed without calling the handler.
        {
            Client gone(path);
            gone.close();
        }
        serve_until(*server, handler, [&] { return server->client_count() == 0; });
        server->poll(0, handler);
        CHECK(server->client_count() == 0);
        CHECK(calls == 3);

        // Moving the server keeps it serving; the moved-from object owns nothing.
        CtlServer moved = std::move(*server);
        CHECK(server->fd() == -1);
        Client after(path);
        after.send("help\n");
        REQUIRE(serve_one(moved, after, handler));
        CHECK(after.got == "ok\nhelp\n");
    }
    CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("ctl: a silent client does not hold up others and is timed out", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    uint64_t now = 1'000'000;
    CtlServerOptions opts;
    opts.now_ms = [&] { return now; };
    auto server = CtlServer::open(path, opts);
    REQUIRE(server);

    Client silent(path);
    Client partial(path);
    partial.send("li");
    Client busy(path);
    busy.send("list\n");
    REQUIRE(serve_one(*server, busy));
    CHECK(busy.got == "ok\nlist\n");
    CHECK_FALSE(silent.pump());
    CHECK_FALSE(partial.pump());
    CHECK(server->client_count() == 2);

    now += 999;
    server->poll(0, echo);
    CHECK(server->client_count() == 2);
    now += 1;
    server->poll(0, echo);
    CHECK(server->client_count() == 0);
    REQUIRE(silent.pump());
    CHECK(silent.got == "error: no complete request line within 1000 ms\n");
    REQUIRE(partial.pump());
    CHECK(partial.got == "error: no complete request line within 1000 ms\n");
}

TEST_CASE("ctl: server served from a thread answers while another client stays silent", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    CtlServerOptions opts;
    opts.request_timeout_ms = 4000;
    auto server = CtlServer::open(path, opts);
    REQUIRE(server);

    Client silent(path);  // connected, never sends; the server must not wait for it
    std::string got, got2;
    std::chrono::steady_clock::duration took{};
    {
        std::atomic<bool> stop{false};
        std::thread control_core([&] {
            while (!stop.load()) server->poll(20, echo);
        });
        auto start = std::chrono::steady_clock::now();
        got = blocking_request(path, "drain web 2001:db8::5\n");
        took = std::chrono::steady_clock::now() - start;
        got2 = blocking_request(path, "reload\n");
        stop = true;
        control_core.join();
    }

    CHECK(got == "ok\ndrain web 2001:db8::5\n");
    CHECK(got2 == "ok\nreload\n");
    CHECK(took < std::chrono::milliseconds(2000));  // well before the silent client's deadline
    CHECK_FALSE(silent.pump());
}

TEST_CASE("ctl: over-long request line is answered with an error", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    auto server = CtlServer::open(path);
    REQUIRE(server);
    int calls = 0;
    CtlServer::Handler handler = [&](const Expected<Command>& c, const sluice::control::Peer&) {
        ++calls;
        return echo(c, {});
    };

    Client peer(path);
    peer.send(std::string(5000, 'a'));  // no newline within the limit
    REQUIRE(serve_one(*server, peer, handler));
    CHECK(peer.got == "error: request line too long (no newline within 4096 bytes)\n");
    CHECK(calls == 1);

    // Exactly at the limit is fine.
    Client edge(path);
    edge.send("list" + std::string(4091, ' ') + "\n");
    REQUIRE(serve_one(*server, edge, handler));
    CHECK(edge.got == "ok\nlist\n");
}

TEST_CASE("ctl: clients beyond the limit are refused; handler exceptions are answered", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    CtlServerOptions opts;
    opts.max_per_process = 2;
    auto server = CtlServer::open(path, opts);
    REQUIRE(server);

    Client a(path), b(path), c(path);
    REQUIRE(serve_one(*server, c));
    CHECK_THAT(c.got, Contains("too many control connections from process"));
    CHECK(server->client_count() == 2);
    CHECK_FALSE(a.pump());

    CtlServer::Handler thrower = [](const Expected<Command>&, const sluice::control::Peer&) -> std::string { throw std::runtime_error("boom"); };
    a.send("list\n");
    REQUIRE(serve_one(*server, a, thrower));
    CHECK(a.got == "error: internal error: boom\n");
}

TEST_CASE("ctl: peers are known by their credentials; other users cannot lock out root", "[ctl]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to connect as another user");
        return;
    }
    TempDir dir;
    auto path = dir.file("ctl.sock");
    CtlServerOptions opts;
    opts.max_clients = 4;       // unprivileged, all users
    opts.max_per_user = 3;
    opts.max_per_process = 8;
    opts.privileged_slots = 2;
    auto server = CtlServer::open(path, opts);
    REQUIRE(server);
    std::filesystem::permissions(std::filesystem::path(path).parent_path(), std::filesystem::perms(0755));
    // Processes of two unprivileged users hold 3 + 3 connections open without a word.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    std::vector<pid_t> kids;
    for (int k = 0; k < 2; ++k) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const uid_t id = static_cast<uid_t>(65534 - k);  // two users
            if (::setgid(id) != 0 || ::setuid(id) != 0) ::_exit(2);
            for (int i = 0; i < 3; ++i) {
                const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                auto a = unix_addr(path);
                if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) ::_exit(3);
            }
            [[maybe_unused]] auto w = ::write(ready[1], "x", 1);
            ::pause();
            ::_exit(0);
        }
        kids.push_back(pid);
    }
    ::close(ready[1]);  // a child that fails ends the read instead of hanging it
    char buf[2];
    const bool both = ::read(ready[0], buf, 1) == 1 && ::read(ready[0], buf, 1) == 1;
    if (!both)
        for (pid_t k : kids) ::kill(k, SIGKILL);
    REQUIRE(both);
    for (int i = 0; i < 20; ++i) server->poll(5, echo);
    // One user got 3 (its cap), the other 1 more until the unprivileged total (4) was reached.
    CHECK(server->client_count() == 4);
    // Root still gets in, and is told apart.
    std::optional<sluice::control::Peer> seen;
    CtlServer::Handler who = [&](const Expected<Command>& c, const sluice::control::Peer& p) {
        seen = p;
        return echo(c);
    };
    Client op(path);
    op.send("stats\n");
    REQUIRE(serve_one(*server, op, who));
    CHECK(op.got == "ok\nstats\n");
    REQUIRE(seen);
    CHECK(seen->privileged);
    CHECK(seen->uid == 0);
    CHECK(seen->pid == ::getpid());
    for (pid_t k : kids) {
        ::kill(k, SIGKILL);
        ::waitpid(k, nullptr, 0);
    }
    ::close(ready[0]);
}

TEST_CASE("ctl: a stale socket file is replaced, a live one is refused", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");

    // Stale: bound and closed without unlinking, as a crashed process leaves it.
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        auto a = unix_addr(path);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 1) == 0);
        ::close(fd);
    }
    REQUIRE(std::filesystem::exists(path));
    auto first = CtlServer::open(path);
    REQUIRE(first);
    {
        Client peer(path);
        peer.send("list\n");
        REQUIRE(serve_one(*first, peer));
        CHECK(peer.got == "ok\nlist\n");
    }

    // Live: a second server must not take the path away.
    auto second = CtlServer::open(path);
    REQUIRE_FALSE(second);
    CHECK_THAT(second.error(), Contains(path));
    CHECK_THAT(second.error(), Contains("another process is listening"));
    REQUIRE(std::filesystem::exists(path));
    {
        Client peer(path);  // the first one still serves (and shrugs off the probe connection)
        peer.send("stats\n");
        REQUIRE(serve_one(*first, peer));
        CHECK(peer.got == "ok\nstats\n");
    }
}

TEST_CASE("ctl: open refuses bad paths", "[ctl]") {
    TempDir dir;

    auto missing = CtlServer::open(dir.file("nope/ctl.sock"));
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error(), Contains(dir.file("nope")));
    CHECK_THAT(missing.error(), Contains("No such file or directory"));

    auto regular = dir.file("file");
    std::ofstream(regular) << "keep me\n";
    auto not_socket = CtlServer::open(regular);
    REQUIRE_FALSE(not_socket);
    CHECK_THAT(not_socket.error(), Contains("exists and is not a socket"));
    CHECK(std::filesystem::file_size(regular) == 8);

    auto under_file = CtlServer::open(regular + "/ctl.sock");
    REQUIRE_FALSE(under_file);
    CHECK_THAT(under_file.error(), Contains("is not a directory"));

    auto too_long = CtlServer::open(dir.file(std::string(200, 'x').c_str()));
    REQUIRE_FALSE(too_long);
    CHECK_THAT(too_long.error(), Contains("too long"));

    auto empty = CtlServer::open("");
    REQUIRE_FALSE(empty);
    CHECK_THAT(empty.error(), Contains("empty"));
}

TEST_CASE("ctl: the destructor leaves a successor's file alone", "[ctl]") {
    TempDir dir;
    auto path = dir.file("ctl.sock");
    {
        auto server = CtlServer::open(path);
        REQUIRE(server);
        REQUIRE(::unlink(path.c_str()) == 0);
        std::ofstream(path) << "successor\n";
    }
    CHECK(std::filesystem::exists(path));
}

}  // namespace
