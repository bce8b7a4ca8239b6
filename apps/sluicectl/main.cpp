// sluicectl: the operator's client for a running Sluice's control socket.
//
//   sluicectl [-s|--socket PATH] COMMAND [ARGS...]
//
// The command and its arguments are joined into one request line and checked with the same
// parser the server uses, so a usage error is reported without a server. The request is sent
// in canonical form; the response body goes to stdout, an error to stderr. Every socket call
// runs against one overall deadline, so sluicectl never hangs on a stuck server.
// Exit status: 0 ok, 1 the server answered with an error, 2 usage or connection error.
// Thread contract: single-threaded.
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "lib/common/expected.hpp"
#include "lib/control/ctl_protocol.hpp"

namespace {

using sluice::Expected;
using sluice::make_error;
namespace ctl = sluice::control;

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

constexpr const char* kDefaultSocket = "/run/sluice/sluice.sock";
constexpr int kTimeoutMs = 5000;
constexpr size_t kMaxResponseBytes = 64u << 20;  // far above any list; guards a runaway peer

constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;
constexpr int kExitUsage = 2;

std::string usage() {
    return fmt::format(
        "Usage: sluicectl [-s|--socket PATH] COMMAND [ARGS...]\n"
        "Send one command to a running Sluice over its control socket.\n\n"
        "Options:\n"
        "  -s, --socket PATH  control socket (default: $SLUICE_SOCKET, else {})\n"
        "  -h, --help         this text\n"
        "  -V, --version      print the version and exit\n\n"
        "Commands:\n"
        "{}\n"
        "VIP is the name given with --vip; ADDR[:PORT] is 192.0.2.1, 192.0.2.1:8080,\n"
        "[2001:db8::1]:8080 or 2001:db8::1 (an omitted port means the VIP's port).\n\n"
        "Exit status: 0 ok, 1 the command failed, 2 usage or connection error.\n",
        kDefaultSocket, ctl::help_text());
}

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

// Sends `line` and reads until the server closes. Errors say what failed; the caller adds
// the socket path. `connect_errno` is set when the connection itself failed.
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

// 16 hex digits from the kernel's random source (a clock fallback keeps them distinct enough).
std::string random_id() {
    uint64_t x = 0;
    if (::getrandom(&x, sizeof x, 0) != static_cast<ssize_t>(sizeof x))
        x = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^ (uint64_t(::getpid()) << 40);
    return fmt::format("{:016x}", x);
}

int run(int argc, char** argv) {
    std::string socket_path;
    if (const char* env = std::getenv("SLUICE_SOCKET"); env && *env) socket_path = env;
    bool socket_given = false;

    int i = 1;
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(usage().c_str(), stdout);
            return kExitOk;
        }
        if (a == "-V" || a == "--version") {
            std::fputs("sluicectl " SLUICE_VERSION "\n", stdout);
            return kExitOk;
        }
        if (a == "--") {
            ++i;
            break;
        }
        if (a == "-s" || a == "--socket") {
            if (i + 1 >= argc) {
                fmt::print(stderr, "sluicectl: {} needs a PATH\nTry 'sluicectl --help'.\n", a);
                return kExitUsage;
            }
            socket_path = argv[++i];
            socket_given = true;
            continue;
        }
        if (a.starts_with("--socket=")) {
            socket_path = std::string(a.substr(9));
            socket_given = true;
            continue;
        }
        if (a.size() > 1 && a.front() == '-') {
            fmt::print(stderr, "sluicectl: unknown option '{}'\nTry 'sluicectl --help'.\n", a);
            return kExitUsage;
        }
        break;
    }
    if (i >= argc) {
        fmt::print(stderr, "sluicectl: no command given\n\n{}", usage());
        return kExitUsage;
    }
    if (socket_given && socket_path.empty()) {
        std::fputs("sluicectl: --socket needs a non-empty PATH\n", stderr);
        return kExitUsage;
    }
    if (socket_path.empty()) socket_path = kDefaultSocket;

    std::string line;
    for (int k = i; k < argc; ++k) {
        if (k > i) line += ' ';
        line += argv[k];
    }
    auto cmd = ctl::parse_command(line);
    if (!cmd) {
        fmt::print(stderr, "sluicectl: {}\nTry 'sluicectl --help'.\n", cmd.error());
        return kExitUsage;
    }

    // A change carries an id, so that repeating it after a lost answer cannot apply it twice.
    if (ctl::changes_state(cmd->op) && cmd->request_id.empty()) cmd->request_id = random_id();
    int connect_errno = 0;
    bool sent = false;
    const std::string request = ctl::format_command(*cmd);
    auto raw = send_request(socket_path, request, connect_errno, sent);
    if (!raw) {
        const char* hint = "";
        if (connect_errno == EACCES || connect_errno == EPERM)
            hint = " (can this user reach the socket's directory?)";
        else if (connect_errno != 0)
            hint = " (is sluice running? pass --socket PATH or set SLUICE_SOCKET)";
        fmt::print(stderr, "sluicectl: {}: {}{}\n", socket_path, raw.error(), hint);
        if (sent && ctl::changes_state(cmd->op))
            fmt::print(stderr,
                       "sluicectl: the change may have been applied anyway. To learn its outcome without applying it "
                       "twice, repeat it with its id:\n  sluicectl {}\n",
                       request);
        return kExitUsage;
    }
    auto response = ctl::parse_response(*raw);
    if (!response) {
        fmt::print(stderr, "sluicectl: {}: bad response: {}\n", socket_path, response.error());
        return kExitUsage;
    }
    if (!response->ok) {
        fmt::print(stderr, "sluicectl: {}\n", response->message);
        std::fputs(response->body.c_str(), stderr);
        return kExitServerError;
    }
    std::fputs(response->body.c_str(), stdout);
    return std::fflush(stdout) == 0 ? kExitOk : kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluicectl: %s\n", e.what());
        return kExitUsage;
    }
}
