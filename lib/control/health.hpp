// Active health checks of backends: the rise/fall state machine and the prober that feeds it.
//
// HealthTracker is HAProxy's rule, kept pure so it is tested without sockets: an up server goes
// down after `fall` consecutive failed checks, a down server comes up after `rise` consecutive
// successful ones, and each change of state is reported exactly once.
//
// Prober runs TCP-connect and HTTP/1.0 GET checks for many targets at once on non-blocking
// sockets multiplexed by one epoll fd, so a slow or blackholed backend only ever costs its own
// check: it never delays another target's probe or verdict. It uses plain Linux sockets, no
// DPDK: probes leave through the kernel stack like any other control-plane traffic.
//
// Time is injected: scheduling and timeouts use only the `now_ms` the caller passes to poll()
// (a monotonic millisecond clock). The one exception is the latency shown by status(), which is
// read from CLOCK_MONOTONIC in microseconds because now_ms is too coarse for it.
//
// Thread contract: a Prober (and a HealthTracker) belongs to the control core thread; no member
// function is safe to call concurrently with another. Nothing here throws except allocation
// failure, and poll() is noexcept: an out-of-memory control core is a crash, not a state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"
#include "lib/net/addr.hpp"

namespace sluice::control {

// A change of health state, with a one-line reason such as
// "tcp connect: Connection refused (3/3 failures)" or "http status 200 (2/2 successes)".
struct Transition {
    bool up = false;
    std::string reason;
};

class HealthTracker {
public:
    // rise and fall of 0 are treated as 1 (a single check decides).
    HealthTracker(uint32_t rise, uint32_t fall, bool initially_up = true) noexcept;

    // Feeds one check result. Returns the transition it caused, if any. A success resets the
    // failure streak and a failure resets the success streak, whatever the current state, so an
    // alternating ok/fail sequence never changes state while rise and fall are above 1.
    std::optional<Transition> record(bool ok, std::string_view detail);

    // Sets the state from outside the checks (operator action, passive failure detection) and
    // clears both streaks: a server forced down needs `rise` fresh successes to come back.
    void force(bool up) noexcept;
    // Down until the next success, which alone brings it up (rise applies afterwards): a server
    // added to a running service takes no traffic before one good check (HAProxy's rule).
    void await_first_check() noexcept {
        force(false);
        first_check_ = true;
    }

    bool up() const noexcept { return up_; }
    uint32_t consecutive_ok() const noexcept { return ok_streak_; }
    uint32_t consecutive_fail() const noexcept { return fail_streak_; }
    uint32_t rise() const noexcept { return rise_; }
    uint32_t fall() const noexcept { return fall_; }

private:
    uint32_t rise_;
    uint32_t fall_;
    bool up_;
    uint32_t ok_streak_ = 0;
    uint32_t fail_streak_ = 0;
    bool first_check_ = false;
};

// The verdict on one check.
struct ProbeResult {
    bool ok = false;
    std::string detail;  // "http status 200", "http status 503 (expected 200)", ...
};

// Judges a (possibly truncated) HTTP response: the status line must be exactly
// "HTTP/1.<digit> <3 digits>" followed by a space or CRLF and end with CRLF; the code must equal
// expected_status; if expected_body is not empty, the body (after the first CRLFCRLF) must
// contain it. `complete` says the peer closed the connection (as opposed to the read bound
// being reached), which is what distinguishes "closed before status line" from malformed input.
ProbeResult judge_http_response(std::string_view response, bool complete, int expected_status,
                                std::string_view expected_body);

// How a target's probes leave: from a fixed source port (closed with a reset, so the port is
// free for the next check) with a socket mark (policy routing). Tunnel VIPs' probes use both,
// so that the kernel side knows which backend a probe is for.
struct ProbeVia {
    uint16_t source_port = 0;  // 0: any
    uint32_t mark = 0;         // 0: none
};

class Prober {
public:
    // At most this much of an HTTP response is read; the check is judged on what was read.
    static constexpr size_t kMaxResponseBytes = lb::kMaxProbeResponse;

    // A target changed state; `reason` is the Transition's.
    struct Event {
        uint32_t id = 0;
        std::string label;
        bool up = false;
        std::string reason;
    };

    struct TargetStatus {
        uint32_t id = 0;
        std::string label;
        bool up = false;
        std::string last_detail;         // empty until the first check completes
        uint32_t consecutive_ok = 0;
        uint32_t consecutive_fail = 0;
        uint64_t last_latency_us = 0;    // start of connect() to the verdict of the last check
    };

    // Errors: the epoll_create1() failure (descriptor or memory limits).
    static Expected<Prober> create();

    Prober(Prober&& other) noexcept;
    Prober& operator=(Prober&& other) noexcept;
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;
    ~Prober();  // closes the epoll fd and every in-flight probe socket

    // Starts checking addr:port as `conf` says. The first check runs within one inter_ms of the
    // next poll(), at an offset derived from the id so that targets added together do not all
    // probe in the same millisecond. A target whose kind is `none` is tracked but never probed:
    // only force() changes its state. Returns an id that stays valid until remove(); ids are
    // never reused. IPv6 link-local targets are not supported (IpAddr carries no scope).
    // `via` routes a target's probes (see ProbeVia).
    // The target's backend is new to a running service: down until one good check.
    void await_first_check(uint32_t id) noexcept;
    uint32_t add(const net::IpAddr& addr, uint16_t port, const lb::CheckConf& conf, std::string label,
                 bool initially_up = true, ProbeVia via = {});
    // Stops checking; closes its in-flight socket. Unknown ids are ignored.
    void remove(uint32_t id) noexcept;
    // Health state of a target; false for an unknown id.
    bool up(uint32_t id) const noexcept;
    // See HealthTracker::force(). Reports no event (the caller made the change). Unknown ids are
    // ignored; an in-flight check still completes and counts toward the new streak.
    void force(uint32_t id, bool up) noexcept;

    // Binds probes of addr's family to addr (port 0) before connecting, e.g. to leave from an
    // address the backends' firewalls allow. A bind failure fails the check ("bind <addr>: ...").
    void set_source(const net::IpAddr& addr);
    void clear_source(net::Family family) noexcept;

    // One turn of the prober: collects results that have already arrived, fails in-flight checks
    // whose timeout expired by now_ms, starts the checks that are due, then waits for socket
    // readiness for at most max_wait_ms (0: do not wait), never past the next due time or
    // timeout, and collects what arrived. Appends the resulting state changes to `out`.
    // Call it again soon after it returns: a timeout is noticed on the first call at or after it.
    void poll(uint64_t now_ms, int max_wait_ms, std::vector<Event>& out) noexcept;

    // The epoll fd, readable when some check has progress to collect: for callers that wait in
    // their own poll loop and call poll(now, 0, out) when it is readable or a timer is due.
    int fd() const noexcept { return epfd_; }
    // The earliest due time or timeout among targets (nullopt: nothing scheduled). Targets added
    // since the last poll() are not scheduled yet: call poll() after add().
    std::optional<uint64_t> next_timer_ms() const noexcept;

    // One entry per target, in id order.
    std::vector<TargetStatus> status() const;

private:
    struct Target;

    explicit Prober(int epfd) noexcept;
    void start(Target& t, uint64_t now_ms, std::vector<Event>& out) noexcept;
    void advance(Target& t, std::vector<Event>& out) noexcept;
    void send_request(Target& t, std::vector<Event>& out) noexcept;
    void read_response(Target& t, std::vector<Event>& out) noexcept;
    void finish(Target& t, bool ok, std::string detail, std::vector<Event>& out) noexcept;
    void harvest(int timeout_ms, std::vector<Event>& out) noexcept;
    void close_all() noexcept;

    int epfd_ = -1;
    uint32_t next_id_ = 1;
    std::map<uint32_t, std::unique_ptr<Target>> targets_;  // ordered: status() lists by id
    std::optional<net::IpAddr> source_v4_;
    std::optional<net::IpAddr> source_v6_;
};

}  // namespace sluice::control
