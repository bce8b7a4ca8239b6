// Health checks: the rise/fall state machine and the response judge as pure functions, then the
// prober against real servers on loopback (127.0.0.1 and ::1, ephemeral ports, nothing else).
// Prober tests run on the real monotonic clock, bound every wait by a deadline and measure how
// fast a state change is detected against fall * inter + timeout.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "lib/control/health.hpp"

using sluice::control::HealthTracker;
using sluice::control::judge_http_response;
using sluice::control::Prober;
using sluice::lb::CheckConf;
using sluice::net::Family;
using sluice::net::IpAddr;

namespace {

// ---- HealthTracker --------------------------------------------------------------------------

TEST_CASE("tracker: an up server goes down after fall consecutive failures, once", "[health]") {
    HealthTracker h(2, 3);
    REQUIRE(h.up());
    CHECK_FALSE(h.record(false, "tcp connect: Connection refused"));
    CHECK_FALSE(h.record(false, "tcp connect: Connection refused"));
    CHECK(h.consecutive_fail() == 2);
    const auto t = h.record(false, "tcp connect: Connection refused");
    REQUIRE(t);
    CHECK_FALSE(t->up);
    CHECK(t->reason == "tcp connect: Connection refused (3/3 failures)");
    CHECK_FALSE(h.up());
    CHECK_FALSE(h.record(false, "tcp connect: Connection refused"));  // reported exactly once
    CHECK(h.consecutive_fail() == 4);
}

TEST_CASE("tracker: a down server comes up after rise consecutive successes, once", "[health]") {
    HealthTracker h(2, 3, false);
    REQUIRE_FALSE(h.up());
    CHECK_FALSE(h.record(true, "http status 200"));
    const auto t = h.record(true, "http status 200");
    REQUIRE(t);
    CHECK(t->up);
    CHECK(t->reason == "http status 200 (2/2 successes)");
    CHECK(h.up());
    CHECK_FALSE(h.record(true, "http status 200"));
    CHECK(h.consecutive_ok() == 3);
    CHECK(h.consecutive_fail() == 0);
}

TEST_CASE("tracker: a success resets the failure streak and a failure the success streak", "[health]") {
    HealthTracker h(2, 3);
    for (bool ok : {false, false, true, false, false}) CHECK_FALSE(h.record(ok, "x"));
    CHECK(h.up());
    CHECK(h.consecutive_fail() == 2);
    REQUIRE(h.record(false, "x"));  // third in a row
    CHECK_FALSE(h.up());

    for (bool ok : {true, false, true}) CHECK_FALSE(h.record(ok, "y"));
    CHECK_FALSE(h.up());
    CHECK(h.consecutive_ok() == 1);
    REQUIRE(h.record(true, "y"));
    CHECK(h.up());
}

TEST_CASE("tracker: alternating results never change state with rise 2 and fall 3", "[health]") {
    const bool initially_up = GENERATE(true, false);
    HealthTracker h(2, 3, initially_up);
    for (int i = 0; i < 200; ++i) CHECK_FALSE(h.record(i % 2 == 0, "flap"));
    CHECK(h.up() == initially_up);
}

TEST_CASE("tracker: force sets the state and clears both streaks", "[health]") {
    HealthTracker h(2, 3);
    CHECK_FALSE(h.record(true, "ok"));
    h.force(false);  // passive detection: only active checks bring it back
    CHECK_FALSE(h.up());
    CHECK(h.consecutive_ok() == 0);
    CHECK_FALSE(h.record(false, "x"));  // already down: no transition
    CHECK_FALSE(h.record(true, "ok"));
    const auto t = h.record(true, "ok");
    REQUIRE(t);
    CHECK(t->reason == "ok (2/2 successes)");

    CHECK_FALSE(h.record(false, "x"));
    CHECK_FALSE(h.record(false, "x"));
    h.force(true);  // the two failures no longer count
    CHECK(h.consecutive_fail() == 0);
    CHECK_FALSE(h.record(false, "x"));
    CHECK_FALSE(h.record(false, "x"));
    CHECK(h.up());
    CHECK(h.record(false, "x"));
}

TEST_CASE("tracker: rise and fall of 0 act as 1", "[health]") {
    HealthTracker h(0, 0);
    CHECK(h.rise() == 1);
    CHECK(h.fall() == 1);
    const auto down = h.record(false, "x");
    REQUIRE(down);
    CHECK(down->reason == "x (1/1 failures)");
    REQUIRE(h.record(true, "y"));
}

// ---- judge_http_response --------------------------------------------------------------------

TEST_CASE("http judge: status line parsed strictly, status and body compared", "[health]") {
    struct Row {
        const char* what;
        std::string response;
        bool complete;
        int status;
        const char* body;
        bool ok;
        const char* detail;
    };
    const std::vector<Row> rows = {
        {"200 with body", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, 200, "ok", true, "http status 200"},
        {"HTTP/1.0, no body wanted", "HTTP/1.0 200 OK\r\n\r\n", true, 200, "", true, "http status 200"},
        {"no reason phrase", "HTTP/1.1 204\r\n\r\n", true, 204, "", true, "http status 204"},
        {"other expected status", "HTTP/1.1 302 Found\r\n\r\n", true, 302, "", true, "http status 302"},
        {"wrong status", "HTTP/1.1 503 Service Unavailable\r\n\r\n", true, 200, "", false,
         "http status 503 (expected 200)"},
        {"body lacks needle", "HTTP/1.1 200 OK\r\n\r\nfine", true, 200, "ok", false, "http: body lacks \"ok\""},
        {"needle only in a header", "HTTP/1.1 200 OK\r\nX-State: ok\r\n\r\n", true, 200, "ok", false,
         "http: body lacks \"ok\""},
        {"needle escaped on one line", "HTTP/1.1 200 OK\r\n\r\n", true, 200, "a\"\n", false,
         "http: body lacks \"a\\x22\\x0a\""},
        {"garbage", "SSH-2.0-OpenSSH_9.2\r\n", true, 200, "", false, "http: malformed status line"},
        {"HTTP/2 version", "HTTP/2 200\r\n\r\n", true, 200, "", false, "http: malformed status line"},
        {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", true, 200, "", false, "http: malformed status line"},
        {"lowercase", "http/1.1 200 OK\r\n\r\n", true, 200, "", false, "http: malformed status line"},
        {"bad prefix before EOF", "HTTX", true, 200, "", false, "http: malformed status line"},
        {"nothing before EOF", "", true, 200, "", false, "http: connection closed before status line"},
        {"partial line before EOF", "HTTP/1.1 20", true, 200, "", false,
         "http: connection closed before status line"},
        {"unterminated line before EOF", "HTTP/1.1 200 OK", true, 200, "", false,
         "http: connection closed before status line"},
        {"no line end within the bound", "HTTP/1.1 200 " + std::string(Prober::kMaxResponseBytes, 'x'), false,
         200, "", false, "http: malformed status line"},
        {"bound reached after the needle", "HTTP/1.1 200 OK\r\n\r\nok" + std::string(100, 'x'), false, 200, "ok",
         true, "http status 200"},
    };
    for (const auto& r : rows) {
        INFO(r.what);
        const auto got = judge_http_response(r.response, r.complete, r.status, r.body);
        CHECK(got.ok == r.ok);
        CHECK(got.detail == r.detail);
    }
}

// ---- Loopback servers -----------------------------------------------------------------------

uint64_t now_ms() {
    using namespace std::chrono;
    return static_cast<uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

IpAddr loopback(Family f) {
    IpAddr a;
    a.family = f;
    if (f == Family::v4) {
        const uint8_t v4[4] = {127, 0, 0, 1};
        return IpAddr::v4(v4);
    }
    a.bytes[15] = 1;
    return a;
}

const char* family_name(Family f) { return f == Family::v4 ? "IPv4" : "IPv6"; }

struct UniqueFd {
    int fd = -1;
    explicit UniqueFd(int f = -1) : fd(f) {}
    UniqueFd(UniqueFd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() {
        if (fd >= 0) ::close(fd);
    }
};

socklen_t loopback_sockaddr(Family f, uint16_t port, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (f == Family::v4) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(sockaddr_in);
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr = in6addr_loopback;
    return sizeof(sockaddr_in6);
}

// A TCP socket bound to an ephemeral loopback port; listening if backlog >= 0. A bound socket
// that does not listen is a closed port that stays closed: connections to it are refused, and
// the kernel will not hand its port to another socket (which could even connect to itself).
UniqueFd bound_socket(Family f, int backlog, uint16_t& port) {
    UniqueFd s(::socket(f == Family::v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(s.fd >= 0);
    sockaddr_storage ss;
    REQUIRE(::bind(s.fd, reinterpret_cast<sockaddr*>(&ss), loopback_sockaddr(f, 0, ss)) == 0);
    socklen_t len = sizeof ss;
    REQUIRE(::getsockname(s.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    port = ntohs(f == Family::v4 ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    if (backlog >= 0) REQUIRE(::listen(s.fd, backlog) == 0);
    return s;
}

// A server thread on loopback. accept_close: accepts and closes (a TCP service). reply: reads
// the request head, writes `reply`, closes. hang: accepts and never answers nor closes.
class TestServer {
public:
    enum class Mode { accept_close, reply, hang };

    TestServer(Family f, Mode mode, std::string reply = {})
        : family_(f), mode_(mode), reply_(std::move(reply)), listener_(bound_socket(f, 64, port_)),
          stop_(::eventfd(0, EFD_CLOEXEC)) {
        REQUIRE(stop_.fd >= 0);
        thread_ = std::thread([this] { run(); });
    }
    ~TestServer() {
        const uint64_t one = 1;
        // Without the wake-up the thread never ends and join() would hang the whole run.
        if (::write(stop_.fd, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) std::terminate();
        thread_.join();
        for (int fd : held_) ::close(fd);
    }

    uint16_t port() const { return port_; }
    IpAddr addr() const { return loopback(family_); }
    int accepted() const { return accepted_.load(); }
    std::string last_request() const {
        std::lock_guard<std::mutex> lock(mu_);
        return last_request_;
    }
    std::string last_peer() const {
        std::lock_guard<std::mutex> lock(mu_);
        return last_peer_;
    }

private:
    // Waits until fd is readable; false once the server is told to stop.
    bool wait_readable(int fd) const {
        pollfd p[2] = {{fd, POLLIN, 0}, {stop_.fd, POLLIN, 0}};
        int n;
        while ((n = ::poll(p, 2, -1)) < 0 && errno == EINTR) {
        }
        return n > 0 && p[1].revents == 0;
    }

    void run() {
        while (wait_readable(listener_.fd)) {
            sockaddr_storage peer;
            socklen_t len = sizeof peer;
            const int c = ::accept4(listener_.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
            if (c < 0) continue;
            char text[INET6_ADDRSTRLEN] = {};
            if (peer.ss_family == AF_INET)
                ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, text, sizeof text);
            else
                ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, text, sizeof text);
            {
                std::lock_guard<std::mutex> lock(mu_);
                last_peer_ = text;
            }
            ++accepted_;
            if (mode_ == Mode::hang) {
                held_.push_back(c);
                continue;
            }
            if (mode_ == Mode::reply) serve(c);
            ::close(c);
        }
    }

    void serve(int c) {
        std::string request;
        char buf[1024];
        while (request.find("\r\n\r\n") == std::string::npos && wait_readable(c)) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) return;
            request.append(buf, static_cast<size_t>(n));
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            last_request_ = request;
        }
        for (size_t sent = 0; sent < reply_.size();) {
            const ssize_t n = ::send(c, reply_.data() + sent, reply_.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<size_t>(n);
        }
    }

    Family family_;
    Mode mode_;
    std::string reply_;
    uint16_t port_ = 0;
    UniqueFd listener_;
    UniqueFd stop_;
    std::thread thread_;
    std::vector<int> held_;  // hang mode; touched by the server thread until join
    std::atomic<int> accepted_{0};
    mutable std::mutex mu_;
    std::string last_request_;
    std::string last_peer_;
};

// A listener whose accept queue is full, so the kernel drops every new SYN: connect() to it
// neither succeeds nor fails, like a blackholed backend. Backlog 0 queues one connection.
class Blackhole {
public:
    explicit Blackhole(Family f) : listener_(bound_socket(f, 0, port_)) {
        filler_.fd = ::socket(f == Family::v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(filler_.fd >= 0);
        sockaddr_storage ss;
        REQUIRE(::connect(filler_.fd, reinterpret_cast<sockaddr*>(&ss), loopback_sockaddr(f, port_, ss)) == 0);
        pollfd p{listener_.fd, POLLIN, 0};  // readable: the filler sits in the accept queue
        REQUIRE(::poll(&p, 1, 2000) == 1);
    }
    uint16_t port() const { return port_; }

private:
    uint16_t port_ = 0;
    UniqueFd listener_;
    UniqueFd filler_;
};

CheckConf check(CheckConf::Kind kind, uint32_t inter_ms, uint32_t timeout_ms, uint32_t rise = 2, uint32_t fall = 3) {
    CheckConf c;
    c.kind = kind;
    c.inter_ms = inter_ms;
    c.timeout_ms = timeout_ms;
    c.rise = rise;
    c.fall = fall;
    return c;
}

Prober make_prober() {
    auto p = Prober::create();
    REQUIRE(p.ok());
    return std::move(p).value();
}

// Polls on the real clock until target `id` changes state or `limit_ms` passes.
std::optional<Prober::Event> wait_event(Prober& p, uint32_t id, uint64_t limit_ms) {
    const uint64_t deadline = now_ms() + limit_ms;
    std::vector<Prober::Event> events;
    for (uint64_t now = now_ms(); now < deadline; now = now_ms()) {
        events.clear();
        p.poll(now, 10, events);
        for (auto& e : events)
            if (e.id == id) return e;
    }
    return std::nullopt;
}

const Prober::TargetStatus& status_of(const std::vector<Prober::TargetStatus>& all, uint32_t id) {
    for (const auto& s : all)
        if (s.id == id) return s;
    FAIL("no status for target " << id);
    return all.front();
}

constexpr uint64_t kSlackMs = 250;  // scheduling noise on a shared two-core machine

// ---- Prober ---------------------------------------------------------------------------------

TEST_CASE("prober: a TCP listener comes up after rise successes", "[health]") {
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(family_name(f));
    TestServer server(f, TestServer::Mode::accept_close);
    Prober p = make_prober();
    const auto conf = check(CheckConf::Kind::tcp, 100, 100);
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(server.addr(), server.port(), conf, "web-1", false);
    CHECK_FALSE(p.up(id));

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK(e->up);
    CHECK(e->label == "web-1");
    CHECK(e->reason == "tcp connect: ok (2/2 successes)");
    CHECK(p.up(id));
    CHECK(elapsed <= conf.rise * conf.inter_ms + kSlackMs);

    const auto st = status_of(p.status(), id);
    CHECK(st.up);
    CHECK(st.last_detail == "tcp connect: ok");
    CHECK(st.consecutive_ok == 2);
    CHECK(st.consecutive_fail == 0);
    CHECK(st.last_latency_us > 0);
    CHECK(st.last_latency_us < 1'000'000);
}

TEST_CASE("prober: a closed port goes down after fall refused connections, not sooner", "[health]") {
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(family_name(f));
    uint16_t port = 0;
    const UniqueFd closed = bound_socket(f, -1, port);
    Prober p = make_prober();
    const auto conf = check(CheckConf::Kind::tcp, 100, 100);
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(loopback(f), port, conf, "db-1");
    REQUIRE(p.up(id));

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK_FALSE(e->up);
    CHECK(e->reason == "tcp connect: Connection refused (3/3 failures)");
    CHECK_FALSE(p.up(id));
    // Three checks one interval apart, the first within one interval of the start.
    CHECK(elapsed >= (conf.fall - 1) * conf.inter_ms);
    CHECK(elapsed <= conf.fall * conf.inter_ms + conf.effective_timeout_ms() + kSlackMs);
}

TEST_CASE("prober: HTTP 200 with the expected body comes up; the request is HTTP/1.0 with Host", "[health]") {
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(family_name(f));
    TestServer server(f, TestServer::Mode::reply,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nstatus ok");
    Prober p = make_prober();
    auto conf = check(CheckConf::Kind::http, 100, 100);
    conf.http_path = "/healthz";
    conf.http_body = "ok";
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(server.addr(), server.port(), conf, "api-1", false);

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK(e->up);
    CHECK(e->reason == "http status 200 (2/2 successes)");
    CHECK(elapsed <= conf.rise * conf.inter_ms + kSlackMs);
    const std::string host = f == Family::v4 ? "127.0.0.1:" + std::to_string(server.port())
                                             : "[::1]:" + std::to_string(server.port());
    CHECK(server.last_request() == "GET /healthz HTTP/1.0\r\nHost: " + host +
                                       "\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n");
}

TEST_CASE("prober: HTTP failures go down with the reason of the last check", "[health]") {
    struct Row {
        const char* what;
        std::string reply;
        std::string body;
        const char* reason;
    };
    const auto row = GENERATE(values<Row>({
        {"503", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "",
         "http status 503 (expected 200) (3/3 failures)"},
        {"garbage", "SSH-2.0-OpenSSH_9.2\r\n", "", "http: malformed status line (3/3 failures)"},
        {"wrong body", "HTTP/1.0 200 OK\r\n\r\nstarting", "ready", "http: body lacks \"ready\" (3/3 failures)"},
        {"closed at once", "", "", "http: connection closed before status line (3/3 failures)"},
    }));
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(row.what << " over " << family_name(f));
    TestServer server(f, TestServer::Mode::reply, row.reply);
    Prober p = make_prober();
    auto conf = check(CheckConf::Kind::http, 100, 100);
    conf.http_body = row.body;
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(server.addr(), server.port(), conf, "api-1");

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK_FALSE(e->up);
    CHECK(e->reason == row.reason);
    CHECK(elapsed >= (conf.fall - 1) * conf.inter_ms);
    CHECK(elapsed <= conf.fall * conf.inter_ms + conf.effective_timeout_ms() + kSlackMs);
}

TEST_CASE("prober: a server that accepts and never answers times out", "[health]") {
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(family_name(f));
    TestServer server(f, TestServer::Mode::hang);
    Prober p = make_prober();
    const auto conf = check(CheckConf::Kind::http, 100, 80, 2, 2);
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(server.addr(), server.port(), conf, "api-1");

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK_FALSE(e->up);
    CHECK(e->reason == "http: timeout after 80 ms (2/2 failures)");
    CHECK(elapsed >= conf.inter_ms + conf.effective_timeout_ms());  // second check started one interval in
    CHECK(elapsed <= conf.fall * conf.inter_ms + conf.effective_timeout_ms() + kSlackMs);
}

TEST_CASE("prober: a blackholed connect times out", "[health]") {
    const Family f = GENERATE(Family::v4, Family::v6);
    INFO(family_name(f));
    Blackhole hole(f);
    Prober p = make_prober();
    const auto conf = check(CheckConf::Kind::tcp, 100, 60, 2, 2);
    const uint64_t t0 = now_ms();
    const uint32_t id = p.add(loopback(f), hole.port(), conf, "db-1");

    const auto e = wait_event(p, id, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK_FALSE(e->up);
    CHECK(e->reason == "tcp connect: timeout after 60 ms (2/2 failures)");
    CHECK(elapsed <= conf.fall * conf.inter_ms + conf.effective_timeout_ms() + kSlackMs);
}

TEST_CASE("prober: hanging and blackholed targets do not delay another target's detection", "[health]") {
    TestServer hang(Family::v4, TestServer::Mode::hang);
    Blackhole hole(Family::v6);
    uint16_t closed_port = 0;
    const UniqueFd closed = bound_socket(Family::v4, -1, closed_port);

    Prober p = make_prober();
    // The slow checks take 1.5 s each; the fast target must be judged long before either ends.
    const auto slow = [](CheckConf::Kind kind) { return check(kind, 100, 1500); };
    const uint32_t slow_http = p.add(hang.addr(), hang.port(), slow(CheckConf::Kind::http), "slow-http");
    const uint32_t slow_tcp = p.add(loopback(Family::v6), hole.port(), slow(CheckConf::Kind::tcp), "slow-tcp");
    const auto conf = check(CheckConf::Kind::tcp, 100, 100);
    const uint64_t t0 = now_ms();
    const uint32_t fast = p.add(loopback(Family::v4), closed_port, conf, "fast");

    const auto e = wait_event(p, fast, 2000);
    const uint64_t elapsed = now_ms() - t0;
    REQUIRE(e);
    CHECK_FALSE(e->up);
    CHECK(elapsed <= conf.fall * conf.inter_ms + conf.effective_timeout_ms() + kSlackMs);
    const auto all = p.status();
    CHECK(status_of(all, slow_http).last_detail.empty());  // their first checks are still in flight
    CHECK(status_of(all, slow_tcp).last_detail.empty());
    CHECK(hang.accepted() == 1);
}

TEST_CASE("prober: first checks of many targets are spread over the interval", "[health]") {
    uint16_t port = 0;
    const UniqueFd closed = bound_socket(Family::v4, -1, port);
    Prober p = make_prober();
    const auto conf = check(CheckConf::Kind::tcp, 1000, 1000);
    std::vector<uint32_t> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(p.add(loopback(Family::v4), port, conf, std::to_string(i)));

    // Injected time, one millisecond per turn: a check's result is seen a turn or so after it
    // starts, so the distinct first-result times show how spread the first checks are.
    const uint64_t t0 = 1'000'000;
    std::vector<Prober::Event> events;
    std::set<uint64_t> first_seen;
    std::vector<bool> seen(ids.size(), false);
    for (uint64_t t = t0; t < t0 + conf.inter_ms + 50; ++t) {
        p.poll(t, 0, events);
        const auto all = p.status();
        for (size_t i = 0; i < ids.size(); ++i) {
            if (seen[i] || status_of(all, ids[i]).last_detail.empty()) continue;
            seen[i] = true;
            first_seen.insert(t);
        }
    }
    CHECK(std::count(seen.begin(), seen.end(), true) == 10);
    CHECK(first_seen.size() >= 8);
    CHECK(events.empty());  // fall is 3: one failure each changes nothing
}

TEST_CASE("prober: force() overrides the state until checks change it again", "[health]") {
    TestServer server(Family::v4, TestServer::Mode::accept_close);
    Prober p = make_prober();
    const uint32_t id = p.add(server.addr(), server.port(), check(CheckConf::Kind::tcp, 50, 50), "web-1");
    p.force(id, false);  // passive detection saw it fail
    CHECK_FALSE(p.up(id));
    const auto e = wait_event(p, id, 2000);  // only active checks bring it back
    REQUIRE(e);
    CHECK(e->up);
    CHECK(p.up(id));

    p.force(12345, false);  // unknown ids are ignored
    CHECK_FALSE(p.up(12345));
}

TEST_CASE("prober: a target with check kind none is never probed", "[health]") {
    Prober p = make_prober();
    const uint32_t id = p.add(loopback(Family::v4), 1, CheckConf{}, "static", true);
    std::vector<Prober::Event> events;
    p.poll(now_ms(), 0, events);
    CHECK_FALSE(p.next_timer_ms());
    CHECK(p.up(id));
    p.force(id, false);
    CHECK_FALSE(p.up(id));
}

TEST_CASE("prober: checks leave from the configured source address", "[health]") {
    // An HTTP server: the check ends only after the server has accepted and seen the peer.
    TestServer server(Family::v4, TestServer::Mode::reply, "HTTP/1.0 200 OK\r\n\r\n");
    Prober p = make_prober();
    const uint8_t src[4] = {127, 0, 0, 2};
    p.set_source(IpAddr::v4(src));
    const auto conf = check(CheckConf::Kind::http, 50, 50, 1, 1);
    const uint32_t id = p.add(server.addr(), server.port(), conf, "web-1", false);
    REQUIRE(wait_event(p, id, 2000));
    CHECK(server.last_peer() == "127.0.0.2");

    p.clear_source(Family::v4);
    const uint32_t id2 = p.add(server.addr(), server.port(), conf, "web-2", false);
    p.remove(id);
    REQUIRE(wait_event(p, id2, 2000));
    CHECK(server.last_peer() == "127.0.0.1");
}

size_t open_fds() {
    size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d);
    while (::readdir(d)) ++n;
    ::closedir(d);
    return n;
}

TEST_CASE("prober: remove() and destruction close in-flight sockets", "[health]") {
    Blackhole hole(Family::v4);
    const auto conf = check(CheckConf::Kind::tcp, 100, 5000);
    const uint64_t t0 = 1'000'000;  // injected time: the checks stay in flight
    std::vector<Prober::Event> events;
    const size_t base = open_fds();
    {
        Prober p = make_prober();
        CHECK(open_fds() == base + 1);  // the epoll fd
        const uint32_t a = p.add(loopback(Family::v4), hole.port(), conf, "a");
        const uint32_t b = p.add(loopback(Family::v4), hole.port(), conf, "b");
        p.poll(t0, 0, events);
        p.poll(t0 + conf.inter_ms, 0, events);  // both first checks are due by now
        CHECK(open_fds() == base + 3);
        p.remove(a);
        CHECK(open_fds() == base + 2);
        CHECK_FALSE(p.up(a));
        CHECK(p.up(b));
    }
    CHECK(open_fds() == base);
    CHECK(events.empty());
}

}  // namespace
