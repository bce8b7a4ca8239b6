#include "lib/control/health.hpp"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "lib/common/hash_mix.hpp"
#include "lib/net/endpoint.hpp"

namespace sluice::control {

namespace {

using Clock = std::chrono::steady_clock;

// Thread-safe (unlike strerror), and the control core may share its process with other threads.
std::string errno_text(int err) {
    const char* text = strerrordesc_np(err);
    return text ? std::string(text) : fmt::format("error {}", err);
}

// Keeps a detail on one line whatever bytes the configuration put in the expected body.
std::string printable(std::string_view s) {
    std::string o;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\')
            o += fmt::format("\\x{:02x}", u);
        else
            o += c;
    }
    return o;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Offset of a target's first check within its interval: the fractional part of id times the
// golden ratio (a Weyl sequence), so any number of consecutive ids land evenly spread.
uint64_t first_check_offset_ms(uint32_t id, uint32_t inter_ms) {
    const uint32_t frac = id * kGoldenRatio32;
    return (static_cast<uint64_t>(frac) * inter_ms) >> 32;
}

enum class Phase : uint8_t { connecting, sending, reading };

}  // namespace

HealthTracker::HealthTracker(uint32_t rise, uint32_t fall, bool initially_up) noexcept
    : rise_(std::max(rise, 1u)), fall_(std::max(fall, 1u)), up_(initially_up) {}

std::optional<Transition> HealthTracker::record(bool ok, std::string_view detail) {
    constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
    if (ok) {
        fail_streak_ = 0;
        if (ok_streak_ < kMax) ++ok_streak_;
        if (!up_ && first_check_) {
            first_check_ = false;
            up_ = true;
            return Transition{true, fmt::format("{} (first check of a new backend)", detail)};
        }
        if (!up_ && ok_streak_ >= rise_) {
            up_ = true;
            return Transition{true, fmt::format("{} ({}/{} successes)", detail, ok_streak_, rise_)};
        }
    } else {
        ok_streak_ = 0;
        if (fail_streak_ < kMax) ++fail_streak_;
        if (up_ && fail_streak_ >= fall_) {
            up_ = false;
            return Transition{false, fmt::format("{} ({}/{} failures)", detail, fail_streak_, fall_)};
        }
    }
    return std::nullopt;
}

void HealthTracker::force(bool up) noexcept {
    first_check_ = false;
    up_ = up;
    ok_streak_ = 0;
    fail_streak_ = 0;
}

ProbeResult judge_http_response(std::string_view response, bool complete, int expected_status,
                                std::string_view expected_body) {
    // "HTTP/1.x NNN" then SP (before a reason phrase) or CR (none: tolerated, RFC 9112 §4 wants
    // the SP but some servers omit it). Checked on whatever prefix has arrived.
    static constexpr std::string_view kVersion = "HTTP/1.";
    const size_t checked = std::min<size_t>(response.size(), 13);
    for (size_t i = 0; i < checked; ++i) {
        const char c = response[i];
        const bool good = i < 7    ? c == kVersion[i]
                          : i == 7 ? is_digit(c)
                          : i == 8 ? c == ' '
                          : i < 12 ? is_digit(c)
                                   : c == ' ' || c == '\r';
        if (!good) return {false, "http: malformed status line"};
    }
    // The line must end: at EOF it never will; at the read bound it is absurdly long.
    const size_t eol = response.find("\r\n");
    if (eol == std::string_view::npos)
        return {false, complete ? "http: connection closed before status line" : "http: malformed status line"};

    const int status = (response[9] - '0') * 100 + (response[10] - '0') * 10 + (response[11] - '0');
    if (status != expected_status)
        return {false, fmt::format("http status {} (expected {})", status, expected_status)};
    if (!expected_body.empty()) {
        const size_t head_end = response.find("\r\n\r\n");
        const std::string_view body =
            head_end == std::string_view::npos ? std::string_view{} : response.substr(head_end + 4);
        if (body.find(expected_body) == std::string_view::npos)
            return {false, fmt::format("http: body lacks \"{}\"", printable(expected_body))};
    }
    return {true, fmt::format("http status {}", status)};
}

struct Prober::Target {
    Target(uint32_t id_, const net::IpAddr& addr_, uint16_t port_, const lb::CheckConf& conf_,
           std::string label_, bool initially_up, ProbeVia via_)
        : id(id_), addr(addr_), port(port_), conf(conf_), via(via_), label(std::move(label_)),
          tracker(conf_.rise, conf_.fall, initially_up) {
        conf.inter_ms = std::max(conf.inter_ms, 1u);  // the offset and schedule divide by it
        if (conf.kind == lb::CheckConf::Kind::http)
            request = fmt::format(
                "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n",
                conf.http_path, net::to_string(addr, port));
    }

    uint32_t id;
    net::IpAddr addr;
    uint16_t port;
    lb::CheckConf conf;
    ProbeVia via;
    std::string label;
    std::string request;  // built once: the same bytes every check
    HealthTracker tracker;

    bool scheduled = false;  // next_due_ms is set from the first poll() after add()
    uint64_t next_due_ms = 0;

    // The check in flight, if fd >= 0.
    int fd = -1;
    Phase phase = Phase::connecting;
    uint64_t deadline_ms = 0;
    Clock::time_point started;
    size_t sent_bytes = 0;
    std::string response;

    std::string last_detail;
    uint64_t last_latency_us = 0;

    void close_socket() noexcept {
        if (fd >= 0 && via.source_port) {
            // A reset instead of FIN: no TIME_WAIT holds the fixed port from the next check.
            const linger l{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        if (fd >= 0) ::close(fd);  // also leaves the epoll set: the fd is never duplicated
        fd = -1;
    }
};

Expected<Prober> Prober::create() {
    const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) return make_error("epoll_create1: " + errno_text(errno));
    return Prober(epfd);
}

Prober::Prober(int epfd) noexcept : epfd_(epfd) {}

Prober::Prober(Prober&& other) noexcept
    : epfd_(std::exchange(other.epfd_, -1)),
      next_id_(other.next_id_),
      targets_(std::move(other.targets_)),
      source_v4_(other.source_v4_),
      source_v6_(other.source_v6_) {}

Prober& Prober::operator=(Prober&& other) noexcept {
    if (this != &other) {
        close_all();
        epfd_ = std::exchange(other.epfd_, -1);
        next_id_ = other.next_id_;
        targets_ = std::move(other.targets_);
        other.targets_.clear();  // a moved-from map is only "valid": make it empty
        source_v4_ = other.source_v4_;
        source_v6_ = other.source_v6_;
    }
    return *this;
}

Prober::~Prober() { close_all(); }

void Prober::close_all() noexcept {
    for (auto& [id, t] : targets_) t->close_socket();
    if (epfd_ >= 0) ::close(epfd_);
    epfd_ = -1;
}

uint32_t Prober::add(const net::IpAddr& addr, uint16_t port, const lb::CheckConf& conf, std::string label,
                     bool initially_up, ProbeVia via) {
    const uint32_t id = next_id_++;
    targets_.emplace(id, std::make_unique<Target>(id, addr, port, conf, std::move(label), initially_up, via));
    return id;
}

void Prober::await_first_check(uint32_t id) noexcept {
    if (auto it = targets_.find(id); it != targets_.end()) it->second->tracker.await_first_check();
}

void Prober::remove(uint32_t id) noexcept {
    const auto it = targets_.find(id);
    if (it == targets_.end()) return;
    it->second->close_socket();
    targets_.erase(it);
}

bool Prober::up(uint32_t id) const noexcept {
    const auto it = targets_.find(id);
    return it != targets_.end() && it->second->tracker.up();
}

void Prober::force(uint32_t id, bool up) noexcept {
    const auto it = targets_.find(id);
    if (it != targets_.end()) it->second->tracker.force(up);
}

void Prober::set_source(const net::IpAddr& addr) { (addr.is_v4() ? source_v4_ : source_v6_) = addr; }

void Prober::clear_source(net::Family family) noexcept {
    (family == net::Family::v4 ? source_v4_ : source_v6_).reset();
}

std::optional<uint64_t> Prober::next_timer_ms() const noexcept {
    std::optional<uint64_t> next;
    for (const auto& [id, t] : targets_) {
        if (t->fd < 0 && !t->scheduled) continue;
        const uint64_t at = t->fd >= 0 ? t->deadline_ms : t->next_due_ms;
        if (!next || at < *next) next = at;
    }
    return next;
}

std::vector<Prober::TargetStatus> Prober::status() const {
    std::vector<TargetStatus> v;
    v.reserve(targets_.size());
    for (const auto& [id, t] : targets_)
        v.push_back(TargetStatus{id, t->label, t->tracker.up(), t->last_detail, t->tracker.consecutive_ok(),
                                 t->tracker.consecutive_fail(), t->last_latency_us});
    return v;
}

void Prober::poll(uint64_t now_ms, int max_wait_ms, std::vector<Event>& out) noexcept {
    // Results that arrived while the caller was busy elsewhere count before their timeouts do.
    harvest(0, out);

    for (auto& [id, tp] : targets_) {
        Target& t = *tp;
        if (t.fd < 0 || now_ms < t.deadline_ms) continue;
        const uint32_t timeout_ms = t.conf.effective_timeout_ms();
        finish(t, false,
               t.phase == Phase::connecting ? fmt::format("tcp connect: timeout after {} ms", timeout_ms)
                                            : fmt::format("http: timeout after {} ms", timeout_ms),
               out);
    }

    // One check at a time per target: a check still in flight when the next is due (timeout
    // longer than inter) delays that next one instead of overlapping it.
    for (auto& [id, tp] : targets_) {
        Target& t = *tp;
        if (t.conf.kind == lb::CheckConf::Kind::none || t.fd >= 0) continue;
        if (!t.scheduled) {
            t.scheduled = true;
            t.next_due_ms = now_ms + first_check_offset_ms(t.id, t.conf.inter_ms);
        }
        if (now_ms >= t.next_due_ms) start(t, now_ms, out);
    }

    uint64_t wait_ms = static_cast<uint64_t>(std::max(max_wait_ms, 0));
    if (const auto next = next_timer_ms()) wait_ms = std::min(wait_ms, *next > now_ms ? *next - now_ms : 0);
    if (wait_ms > 0) harvest(static_cast<int>(wait_ms), out);
}

void Prober::harvest(int timeout_ms, std::vector<Event>& out) noexcept {
    constexpr int kBatch = 64;
    epoll_event events[kBatch];
    for (;;) {
        const int n = ::epoll_wait(epfd_, events, kBatch, timeout_ms);
        // EINTR: a signal for the caller; the next poll() collects. Other errors mean no usable
        // epoll fd (a moved-from Prober): nothing to collect either.
        if (n <= 0) return;
        // An event names its target by id. Ids are never reused, and sockets are opened only
        // outside harvest(), so an event cannot reach another check than the one it is for.
        for (int i = 0; i < n; ++i) {
            const auto it = targets_.find(static_cast<uint32_t>(events[i].data.u64));
            if (it != targets_.end() && it->second->fd >= 0) advance(*it->second, out);
        }
        if (n < kBatch) return;
        timeout_ms = 0;
    }
}

void Prober::start(Target& t, uint64_t now_ms, std::vector<Event>& out) noexcept {
    t.next_due_ms = now_ms + t.conf.inter_ms;
    t.deadline_ms = now_ms + t.conf.effective_timeout_ms();
    t.started = Clock::now();
    t.phase = Phase::connecting;
    t.sent_bytes = 0;
    t.response.clear();

    t.fd = ::socket(t.addr.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (t.fd < 0) {
        const int err = errno;
        return finish(t, false, "socket: " + errno_text(err), out);
    }
    sockaddr_storage ss;
    if (t.via.mark && ::setsockopt(t.fd, SOL_SOCKET, SO_MARK, &t.via.mark, sizeof t.via.mark) != 0) {
        const int err = errno;
        return finish(t, false, "mark: " + errno_text(err), out);
    }
    if (t.via.source_port) {
        const int one = 1;
        ::setsockopt(t.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        const auto& source = t.addr.is_v4() ? source_v4_ : source_v6_;
        const socklen_t len = net::to_sockaddr(source ? *source : net::IpAddr{t.addr.family, {}}, t.via.source_port, ss);
        if (::bind(t.fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
            const int err = errno;
            return finish(t, false, fmt::format("bind port {}: {}", t.via.source_port, errno_text(err)), out);
        }
    } else if (const auto& source = t.addr.is_v4() ? source_v4_ : source_v6_) {
        // Without this, bind() picks the source port before the destination is known and every
        // check holds a port of its own; with it, connect() picks one per destination as usual.
        // Best effort: without it (kernels before 4.2) checks still work, with more ports used.
        const int one = 1;
        ::setsockopt(t.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        const socklen_t len = net::to_sockaddr(*source, 0, ss);
        if (::bind(t.fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
            const int err = errno;
            return finish(t, false, fmt::format("bind {}: {}", net::to_string(*source), errno_text(err)), out);
        }
    }
    const socklen_t len = net::to_sockaddr(t.addr, t.port, ss);
    if (::connect(t.fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
        const int err = errno;
        return finish(t, false, "tcp connect: " + errno_text(err), out);
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;  // writable: the connection attempt ended, either way
    ev.data.u64 = t.id;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, t.fd, &ev) != 0) {
        const int err = errno;
        return finish(t, false, "epoll_ctl: " + errno_text(err), out);
    }
}

void Prober::advance(Target& t, std::vector<Event>& out) noexcept {
    switch (t.phase) {
        case Phase::connecting: {
            // SO_ERROR, not the event bits, says how the connection attempt ended.
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(t.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            if (err != 0) return finish(t, false, "tcp connect: " + errno_text(err), out);
            // A plain close (FIN), not SO_LINGER 0 (RST): backends and middleboxes count resets
            // as errors and some log each one. The price is a TIME_WAIT socket on this side per
            // check, at most 60 s / inter_ms of them per target, well within the port range
            // because the kernel shares ephemeral ports across destinations.
            if (t.conf.kind == lb::CheckConf::Kind::tcp) return finish(t, true, "tcp connect: ok", out);
            t.phase = Phase::sending;
            return send_request(t, out);
        }
        case Phase::sending: return send_request(t, out);
        case Phase::reading: return read_response(t, out);
    }
}

void Prober::send_request(Target& t, std::vector<Event>& out) noexcept {
    while (t.sent_bytes < t.request.size()) {
        const ssize_t n =
            ::send(t.fd, t.request.data() + t.sent_bytes, t.request.size() - t.sent_bytes, MSG_NOSIGNAL);
        if (n >= 0) {
            t.sent_bytes += static_cast<size_t>(n);
            continue;
        }
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;  // still registered for EPOLLOUT
        return finish(t, false, "http send: " + errno_text(err), out);
    }
    t.phase = Phase::reading;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = t.id;
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, t.fd, &ev) != 0) {
        const int err = errno;
        return finish(t, false, "epoll_ctl: " + errno_text(err), out);
    }
}

void Prober::read_response(Target& t, std::vector<Event>& out) noexcept {
    char buf[4096];
    bool eof = false;
    while (!eof && t.response.size() < kMaxResponseBytes) {
        const ssize_t n = ::recv(t.fd, buf, std::min(kMaxResponseBytes - t.response.size(), sizeof buf), 0);
        if (n > 0) {
            t.response.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            eof = true;
            continue;
        }
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        return finish(t, false, "http read: " + errno_text(err), out);
    }
    // EOF, or the bound reached: judge what was read. Closing with unread bytes pending makes
    // the kernel send a reset, which only a response over kMaxResponseBytes can cause.
    auto result = judge_http_response(t.response, eof, t.conf.http_status, t.conf.http_body);
    finish(t, result.ok, std::move(result.detail), out);
}

void Prober::finish(Target& t, bool ok, std::string detail, std::vector<Event>& out) noexcept {
    t.close_socket();
    std::string().swap(t.response);  // idle targets keep no buffer
    t.last_latency_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t.started).count());
    if (auto change = t.tracker.record(ok, detail))
        out.push_back(Event{t.id, t.label, change->up, std::move(change->reason)});
    t.last_detail = std::move(detail);
}

}  // namespace sluice::control
