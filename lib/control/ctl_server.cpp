// CtlServer implementation: socket setup with stale-file recovery, and the one-pass poll loop.
//
// Stale sockets: a Sluice that crashed leaves its socket file behind and bind() then fails
// with EADDRINUSE. We probe the file with a non-blocking connect(): ECONNREFUSED means nobody
// listens and the file may go; success or EAGAIN (backlog full) means a live server, which we
// must not steal the path from. The probe and the unlink are not atomic; two Sluices started
// in the same instant on one path are not a case we defend against.
//
// Thread contract: one thread (the control core); see ctl_server.hpp.
#include "lib/control/ctl_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <utility>

#include <fmt/format.h>

namespace sluice::control {
namespace {

constexpr int kListenBacklog = 16;
constexpr int kMaxAcceptsPerPoll = 32;  // so a connection flood cannot hold the caller

std::string errno_text(int err) { return std::strerror(err); }

class Fd {
public:
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// Is something accepting connections on the socket file `addr`? 1 yes, 0 no (stale),
// -1 error (errno set).
int probe_listener(const sockaddr_un& addr) noexcept {
    Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (probe.get() < 0) return -1;
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return 1;
    if (errno == EAGAIN || errno == EINPROGRESS) return 1;  // alive, its backlog is full
    if (errno == ECONNREFUSED || errno == ENOENT) return 0;
    return -1;
}

// Best effort, for clients we give up on: one non-blocking send, no retry.
void send_once(int fd, const std::string& text) noexcept {
    [[maybe_unused]] auto n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Expected<CtlServer> CtlServer::open(const std::string& path, CtlServerOptions options) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty()) return make_error("control socket path is empty");
    if (path.find('\0') != std::string::npos) return make_error("control socket path contains a NUL byte");
    if (path.size() >= sizeof addr.sun_path)
        return make_error(fmt::format("control socket path '{}' is too long ({} bytes, at most {})", path,
                                      path.size(), sizeof addr.sun_path - 1));
    std::memcpy(addr.sun_path, path.data(), path.size());

    std::string dir = parent_dir(path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return make_error(fmt::format("control socket directory '{}' is not usable: {} (create it, or choose "
                                      "another socket path)",
                                      dir, errno_text(errno)));
    if (!S_ISDIR(st.st_mode))
        return make_error(fmt::format("control socket directory '{}' is not a directory", dir));

    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(fmt::format("control socket: socket(): {}", errno_text(errno)));

    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EADDRINUSE)
            return make_error(fmt::format("control socket '{}': bind(): {}", path, errno_text(errno)));
        if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
            return make_error(fmt::format("control socket path '{}' exists and is not a socket (remove it, or "
                                          "choose another socket path)",
                                          path));
        int live = probe_listener(addr);
        if (live < 0)
            return make_error(fmt::format("control socket '{}' exists and cannot be probed: {}", path,
                                          errno_text(errno)));
        if (live > 0)
            return make_error(fmt::format("control socket '{}' is in use: another process is listening on it "
                                          "(is another sluice running? choose another socket path)",
                                          path));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            return make_error(fmt::format("control socket '{}': cannot remove the stale socket file: {}", path,
                                          errno_text(errno)));
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
            return make_error(fmt::format("control socket '{}': bind(): {}", path, errno_text(errno)));
    }
    // From here on the file is ours: remove it on any failure. Permissions are set before
    // listen() so no client can connect while the mode is still the umask's.
    auto fail = [&](const char* what) {
        int err = errno;
        ::unlink(path.c_str());
        return make_error(fmt::format("control socket '{}': {}: {}", path, what, errno_text(err)));
    };
    if (::chmod(path.c_str(), 0666) != 0) return fail("chmod()");
    if (::lstat(path.c_str(), &st) != 0) return fail("lstat()");
    if (::listen(fd.get(), kListenBacklog) != 0) return fail("listen()");
    return CtlServer(fd.release(), path, st.st_dev, st.st_ino, std::move(options));
}

CtlServer::CtlServer(int fd, std::string path, dev_t dev, ino_t ino, CtlServerOptions options) noexcept
    : listen_fd_(fd), path_(std::move(path)), dev_(dev), ino_(ino), options_(std::move(options)) {}

CtlServer::CtlServer(CtlServer&& other) noexcept
    : listen_fd_(std::exchange(other.listen_fd_, -1)),
      path_(std::move(other.path_)),
      dev_(other.dev_),
      ino_(other.ino_),
      options_(std::move(other.options_)),
      clients_(std::move(other.clients_)) {
    other.clients_.clear();
}

CtlServer& CtlServer::operator=(CtlServer&& other) noexcept {
    if (this != &other) {
        release();
        listen_fd_ = std::exchange(other.listen_fd_, -1);
        path_ = std::move(other.path_);
        dev_ = other.dev_;
        ino_ = other.ino_;
        options_ = std::move(other.options_);
        clients_ = std::move(other.clients_);
        other.clients_.clear();
    }
    return *this;
}

CtlServer::~CtlServer() { release(); }

void CtlServer::release() noexcept {
    for (auto& c : clients_) close_client(c);
    clients_.clear();
    if (listen_fd_ < 0) return;
    ::close(listen_fd_);
    listen_fd_ = -1;
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
}

uint64_t CtlServer::now_ms() const noexcept {
    if (options_.now_ms) return options_.now_ms();
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

void CtlServer::poll(int max_wait_ms, const Handler& handler) noexcept {
    if (listen_fd_ < 0) return;
    try {
        uint64_t now = now_ms();
        int wait_ms = std::max(max_wait_ms, 0);
        std::vector<pollfd> pfds;
        pfds.reserve(clients_.size() + 1);
        pfds.push_back({listen_fd_, POLLIN, 0});
        for (const auto& c : clients_) {
            uint64_t left = c.deadline_ms > now ? c.deadline_ms - now : 0;
            wait_ms = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(wait_ms), left));
            pfds.push_back({c.fd, static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
        }
        int n = ::poll(pfds.data(), pfds.size(), wait_ms);
        if (n < 0 && errno != EINTR) return;
        now = now_ms();

        // pfds[i + 1] belongs to clients_[i]: accept_pending() only appends to clients_.
        size_t polled = pfds.size() - 1;
        for (size_t i = 0; i < polled && n > 0; ++i) {
            short ev = pfds[i + 1].revents;
            if (!ev) continue;
            auto& c = clients_[i];
            if (c.responding)
                write_response(c);
            else
                read_request(c, handler, now);
        }
        if (n > 0 && (pfds[0].revents & POLLIN)) accept_pending(handler, now);

        for (auto& c : clients_) {
            if (c.fd < 0 || c.deadline_ms > now) continue;
            if (!c.responding)
                send_once(c.fd, error_response(fmt::format("no complete request line within {} ms",
                                                           options_.request_timeout_ms)));
            close_client(c);
        }
        std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
    } catch (...) {
        // Only allocation can throw here; drop the clients rather than the control core.
        for (auto& c : clients_) close_client(c);
        clients_.clear();
    }
}

void CtlServer::accept_pending(const Handler& handler, uint64_t now) noexcept {
    for (int i = 0; i < kMaxAcceptsPerPoll; ++i) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;  // EAGAIN: none left; EMFILE and friends: retried on the next poll
        }
        const Peer peer = identify(fd);
        try {
            if (const std::string why = over_limit(peer); !why.empty()) {
                send_once(fd, error_response(why));
                ::close(fd);
                continue;
            }
            clients_.push_back(Client{fd, peer, false, now + options_.request_timeout_ms, {}, {}, 0});
        } catch (...) {
            ::close(fd);
            return;
        }
        // The request often arrives with the connection: serve it in this pass.
        read_request(clients_.back(), handler, now);
    }
}

Peer CtlServer::identify(int fd) const noexcept {
    Peer p;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        p.pid = 0;
        p.uid = static_cast<uid_t>(-1);  // unknown: unprivileged
        p.gid = static_cast<gid_t>(-1);
        return p;
    }
    p.pid = cred.pid;
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.privileged = cred.uid == 0 || cred.uid == ::geteuid();
    if (!p.privileged && options_.control_gid >= 0) {
        const auto want = static_cast<gid_t>(options_.control_gid);
        p.privileged = cred.gid == want;
        gid_t groups[256];
        socklen_t glen = sizeof groups;
        if (!p.privileged && ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
            for (size_t i = 0; i < glen / sizeof(gid_t); ++i) p.privileged |= groups[i] == want;
    }
    return p;
}

std::string CtlServer::over_limit(const Peer& p) const {
    size_t same_process = 0, same_user = 0, unprivileged = 0;
    for (const auto& c : clients_) {
        if (c.fd < 0) continue;
        same_process += c.peer.pid == p.pid;
        same_user += c.peer.uid == p.uid;
        unprivileged += !c.peer.privileged;
    }
    if (same_process >= options_.max_per_process)
        return fmt::format("too many control connections from process {} (at most {} at once); try again", p.pid,
                           options_.max_per_process);
    if (p.privileged) {
        if (clients_.size() >= size_t{options_.max_clients} + options_.privileged_slots)
            return fmt::format("too many control clients (at most {} at once); try again",
                               options_.max_clients + options_.privileged_slots);
        return {};
    }
    if (same_user >= options_.max_per_user)
        return fmt::format("too many control connections from uid {} (at most {} at once); try again", p.uid,
                           options_.max_per_user);
    if (unprivileged >= options_.max_clients)
        return fmt::format("too many control clients (at most {} at once); try again", options_.max_clients);
    return {};
}

void CtlServer::read_request(Client& c, const Handler& handler, uint64_t now) noexcept {
    try {
        char buf[kMaxLineBytes];
        for (;;) {
            size_t room = kMaxLineBytes - c.in.size();  // > 0: a full buffer is answered below
            ssize_t r = ::recv(c.fd, buf, room, 0);
            if (r > 0) {
                size_t old = c.in.size();
                c.in.append(buf, static_cast<size_t>(r));
                if (auto nl = c.in.find('\n', old); nl != std::string::npos) {
                    c.in.resize(nl + 1);  // one request per connection: later bytes are ignored
                    respond(c, parse_command(c.in), handler, now);
                    return;
                }
                if (c.in.size() >= kMaxLineBytes) {
                    respond(c,
                            make_error(fmt::format("request line too long (no newline within {} bytes)",
                                                   kMaxLineBytes)),
                            handler, now);
                    return;
                }
                continue;
            }
            if (r == 0) {
                // End of stream: a last line without '\n' still counts (`printf list | socat`);
                // a connection that sends nothing (a liveness probe) is closed silently.
                if (c.in.empty())
                    close_client(c);
                else
                    respond(c, parse_command(c.in), handler, now);
                return;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) close_client(c);
            return;
        }
    } catch (...) {
        close_client(c);
    }
}

void CtlServer::respond(Client& c, const Expected<Command>& request, const Handler& handler,
                        uint64_t now) noexcept {
    try {
        std::string out;
        try {
            out = handler(request, c.peer);
        } catch (const std::exception& e) {
            out = error_response(fmt::format("internal error: {}", e.what()));
        } catch (...) {
            out = error_response("internal error");
        }
        c.in = std::string();
        c.out = std::move(out);
        c.out_done = 0;
        c.responding = true;
        c.deadline_ms = now + options_.response_timeout_ms;
        write_response(c);
    } catch (...) {
        close_client(c);
    }
}

void CtlServer::write_response(Client& c) noexcept {
    while (c.out_done < c.out.size()) {
        ssize_t w = ::send(c.fd, c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c.out_done += static_cast<size_t>(w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for POLLOUT
        break;  // peer gone
    }
    close_client(c);
}

void CtlServer::close_client(Client& c) noexcept {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
}

}  // namespace sluice::control
