#include "lib/control/metrics_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "lib/net/endpoint.hpp"

namespace sluice::control {

namespace {

std::string http_answer(const char* status, const char* type, const std::string& body, bool head) {
    std::string out = fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                  status, type, body.size());
    if (!head) out += body;
    return out;
}

}  // namespace

std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char ch : v) {
        if (ch == '\\') out += "\\\\";
        else if (ch == '"') out += "\\\"";
        else if (ch == '\n') out += "\\n";
        else out += ch;
    }
    return out;
}

Expected<MetricsServer> MetricsServer::open(const net::IpAddr& addr, uint16_t port) {
    const bool v4 = addr.is_v4();
    const int fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(fmt::format("metrics socket: {}", std::strerror(errno)));
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = net::to_sockaddr(addr, port, ss);
    if (!v4) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0) {
        const int err = errno;
        ::close(fd);
        return make_error(fmt::format("--metrics-listen {}: {}", net::to_string(addr, port), std::strerror(err)));
    }
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    const uint16_t bound = ntohs(v4 ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return MetricsServer(fd, bound);
}

MetricsServer::MetricsServer(MetricsServer&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), port_(o.port_), clients_(std::move(o.clients_)) {
    o.clients_.clear();
}

MetricsServer::~MetricsServer() {
    for (auto& c : clients_) ::close(c.fd);
    if (fd_ >= 0) ::close(fd_);
}

void MetricsServer::accept_new(uint64_t now_ms) {
    for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return;  // EAGAIN, or an error that the next turn retries
        if (clients_.size() >= kMaxClients) {
            ::close(c);  // busy: the scraper retries at its next interval
            continue;
        }
        clients_.push_back(Client{c, now_ms + kDeadlineMs, {}, {}, 0, false});
    }
}

bool MetricsServer::serve(Client& c, const std::function<std::string()>& metrics) {
    if (!c.answered) {
        char buf[2048];
        for (;;) {
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
            if (n == 0) return false;  // closed before a whole request
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return false;
            }
            c.in.append(buf, static_cast<size_t>(n));
            if (c.in.size() > kMaxRequestBytes) {
                c.out = http_answer("431 Request Header Fields Too Large", "text/plain", "request too large\n", false);
                c.answered = true;
                break;
            }
        }
        if (!c.answered) {
            if (c.in.find("\r\n\r\n") == std::string::npos && c.in.find("\n\n") == std::string::npos) return true;
            const size_t eol = c.in.find_first_of("\r\n");
            const std::string_view line(c.in.data(), eol);
            const size_t sp1 = line.find(' ');
            const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
            const std::string_view method = line.substr(0, sp1);
            std::string_view path = sp1 == std::string_view::npos ? std::string_view() : line.substr(sp1 + 1, sp2 - sp1 - 1);
            if (const size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
            const bool head = method == "HEAD";
            if (method != "GET" && !head)
                c.out = http_answer("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
            else if (path == "/metrics")
                c.out = http_answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics(), head);
            else if (path == "/")
                c.out = http_answer("200 OK", "text/plain", "Sluice: metrics at /metrics\n", head);
            else
                c.out = http_answer("404 Not Found", "text/plain", "not found; metrics at /metrics\n", head);
            c.answered = true;
        }
    }
    while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
        c.sent += static_cast<size_t>(n);
    }
    return false;  // all sent: close
}

void MetricsServer::poll(uint64_t now_ms, const std::function<std::string()>& metrics) {
    accept_new(now_ms);
    for (size_t i = 0; i < clients_.size();) {
        Client& c = clients_[i];
        if (now_ms > c.deadline || !serve(c, metrics)) {
            ::close(c.fd);
            clients_[i] = std::move(clients_.back());
            clients_.pop_back();
        } else {
            ++i;
        }
    }
}

}  // namespace sluice::control
