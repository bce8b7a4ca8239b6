// CtlServer: the Unix-socket end of the control protocol (lib/control/ctl_protocol.hpp).
//
// The control core thread also runs health probes and pumps packets, so the server never
// blocks it for long: every socket is non-blocking, poll() waits at most the time it is
// given, and each client has a deadline to send its request line and another to take the
// response. A client that sends nothing, too much or reads too slowly is answered with an
// error (best effort) and closed; it costs at most one fd and a few KiB until its deadline.
// The trade-off: one request per connection, answered in one pass of the caller's loop, so a
// handler that takes long delays the loop by that much (handlers are expected to be quick).
//
// Who may do what: every local user may connect (mode 0666) and read (list, stats, explain);
// changes need a privileged peer, known by its credentials (SO_PEERCRED): root, the server's
// own user, or a member of the control group. Connections are capped per process and, for
// unprivileged peers, per user and in total; privileged peers have slots of their own, so a
// flood from monitoring scripts or any other user cannot lock the operator out.
//
// No DPDK, no threads, no exceptions out of any member function.
// Thread contract: a CtlServer belongs to one thread (the control core); not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/control/ctl_protocol.hpp"

namespace sluice::control {

// The process at the other end of a connection.
struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    bool privileged = false;  // may change things
};

struct CtlServerOptions {
    uint32_t request_timeout_ms = 1000;   // from accept to a complete request line
    uint32_t response_timeout_ms = 1000;  // from the handler's answer to its last byte written
    uint32_t max_clients = 16;            // unprivileged connections at once, all users together
    uint32_t privileged_slots = 16;       // more connections only privileged peers may use
    uint32_t max_per_process = 4;         // connections of one process at once
    uint32_t max_per_user = 8;            // connections of one unprivileged user at once
    // Members of this group (primary or supplementary) are privileged; -1: none.
    int64_t control_gid = -1;
    // Monotonic milliseconds; empty: std::chrono::steady_clock. Injected so tests can expire
    // deadlines without sleeping. Must not throw.
    std::function<uint64_t()> now_ms;
};

class CtlServer {
public:
    // Gets a parsed request (or the parse error, including "request line too long") and
    // returns the complete response, built with ok_response()/error_response(). Exceptions it
    // throws are caught and answered as "error: internal error: ...".
    using Handler = std::function<std::string(const Expected<Command>&, const Peer&)>;

    // Listen on `path`: an AF_UNIX SOCK_STREAM socket, non-blocking and close-on-exec, mode
    // 0666 (roles come from the peer's credentials). Errors: path empty or too long for sockaddr_un; parent directory missing or not a
    // directory; `path` exists and is not a socket; another process is listening on `path`
    // (a socket file nobody listens on is stale and is replaced); any socket/bind/listen
    // failure (with strerror).
    static Expected<CtlServer> open(const std::string& path, CtlServerOptions options = {});

    CtlServer(CtlServer&& other) noexcept;
    CtlServer& operator=(CtlServer&& other) noexcept;
    CtlServer(const CtlServer&) = delete;
    CtlServer& operator=(const CtlServer&) = delete;
    // Closes every client and the listening socket, and removes the socket file if it is still
    // the one this server created.
    ~CtlServer();

    // The listening socket, for a caller that multiplexes it with other fds. Clients in
    // progress are not visible through it: keep calling poll() while client_count() > 0.
    int fd() const noexcept { return listen_fd_; }
    const std::string& path() const noexcept { return path_; }
    // Connections accepted and not yet closed.
    size_t client_count() const noexcept { return clients_.size(); }

    // Waits up to max_wait_ms (0: not at all; less when a client deadline comes sooner) for
    // activity, then without blocking: accepts pending clients, reads request lines, calls
    // `handler` once per complete line, writes responses, closes finished and overdue clients.
    // Returns after that single pass.
    void poll(int max_wait_ms, const Handler& handler) noexcept;

private:
    struct Client {
        int fd = -1;
        Peer peer;
        bool responding = false;  // request handled; `out` is being written
        uint64_t deadline_ms = 0;
        std::string in;
        std::string out;
        size_t out_done = 0;
    };

    CtlServer(int fd, std::string path, dev_t dev, ino_t ino, CtlServerOptions options) noexcept;
    uint64_t now_ms() const noexcept;
    void accept_pending(const Handler& handler, uint64_t now) noexcept;
    Peer identify(int fd) const noexcept;
    // Why a new connection from `p` is refused (empty: it is not).
    std::string over_limit(const Peer& p) const;
    void read_request(Client& c, const Handler& handler, uint64_t now) noexcept;
    void respond(Client& c, const Expected<Command>& request, const Handler& handler, uint64_t now) noexcept;
    void write_response(Client& c) noexcept;
    void close_client(Client& c) noexcept;
    void release() noexcept;

    int listen_fd_ = -1;
    std::string path_;
    dev_t dev_ = 0;  // identity of the socket file we bound, so we never unlink a successor's
    ino_t ino_ = 0;
    CtlServerOptions options_;
    std::vector<Client> clients_;
};

}  // namespace sluice::control
