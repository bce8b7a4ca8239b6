// The control-socket client of sluicectl (see client.hpp).
// Thread contract: reentrant; no shared state.
#include "apps/sluicectl/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "lib/control/ctl_protocol.hpp"

namespace sluice::ctlclient {
namespace {

constexpr size_t kMaxResponseBytes = 64u << 20;  // far above any list; guards a runaway peer

class Socket {
public:
    Socket() : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {}
    ~Socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline. false on timeout or poll failure.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, ms_left(deadline));
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return false;
    }
}

}  // namespace

Expected<std::string> send_request(const std::string& path, const std::string& line, int& connect_errno, bool& sent) {
    auto deadline = Clock::now() + std::chrono::milliseconds(kTimeoutMs);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return make_error(fmt::format("bad socket path ({} bytes, 1..{} allowed)", path.size(),
                                      sizeof addr.sun_path - 1));
    std::memcpy(addr.sun_path, path.data(), path.size());

    Socket s;
    if (s.fd() < 0) return make_error(fmt::format("socket(): {}", std::strerror(errno)));
    // A Unix socket connects at once or fails; EAGAIN means the server's backlog is full.
    for (;;) {
        if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
        if (errno == EINTR) continue;
        if (errno == EAGAIN && ms_left(deadline) > 0) {
            ::usleep(10'000);
            continue;
        }
        connect_errno = errno;
        return make_error(fmt::format("cannot connect: {}", std::strerror(errno)));
    }

    std::string request = line + "\n";
    for (size_t done = 0; done < request.size();) {
        ssize_t w = ::send(s.fd(), request.data() + done, request.size() - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += static_cast<size_t>(w);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            if (!wait_for(s.fd(), POLLOUT, deadline))
                return make_error(fmt::format("timed out sending the request ({} ms)", kTimeoutMs));
        } else {
            return make_error(fmt::format("sending the request: {}", std::strerror(errno)));
        }
    }

    sent = true;  // from here on the server may act on it, answered or not
    std::string response;
    char buf[16384];
    for (;;) {
        ssize_t r = ::recv(s.fd(), buf, sizeof buf, 0);
        if (r > 0) {
            response.append(buf, static_cast<size_t>(r));
            if (response.size() > kMaxResponseBytes)
                return make_error(fmt::format("response larger than {} bytes", kMaxResponseBytes));
        } else if (r == 0) {
            return response;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            if (!wait_for(s.fd(), POLLIN, deadline))
                return make_error(fmt::format("no complete response within {} ms", kTimeoutMs));
        } else if (errno == ECONNRESET && !response.empty()) {
            return response;  // the server closed with our bytes unread; its answer is complete
        } else {
            return make_error(fmt::format("reading the response: {}", std::strerror(errno)));
        }
    }
}

const char* connect_hint(int connect_errno) {
    if (connect_errno == EACCES || connect_errno == EPERM) return " (can this user reach the socket's directory?)";
    if (connect_errno != 0) return " (is sluice running? pass --socket PATH or set SLUICE_SOCKET)";
    return "";
}

Answer query(const std::string& path, const std::string& line) {
    int connect_errno = 0;
    bool sent = false;
    auto raw = send_request(path, line, connect_errno, sent);
    if (!raw) return {kExitUsage, {}, fmt::format("{}: {}{}", path, raw.error(), connect_hint(connect_errno))};
    auto response = control::parse_response(*raw);
    if (!response) return {kExitUsage, {}, fmt::format("{}: bad response: {}", path, response.error())};
    if (!response->ok) {
        std::string message = response->message;
        if (!response->body.empty()) message += "\n" + response->body;
        while (message.ends_with('\n')) message.pop_back();
        return {kExitServerError, {}, std::move(message)};
    }
    return {kExitOk, std::move(response->body), {}};
}

}  // namespace sluice::ctlclient
