// MetricsServer: the HTTP end of the Prometheus endpoint (--metrics-listen ADDR:PORT).
//
// Served by the control core, like the control socket, so the workers' hot path is never
// touched and a scrape sees the same state sluicectl does. It speaks just enough HTTP/1.x
// for scrapers and curl: `GET /metrics` (or HEAD) is answered with the text exposition
// format and the connection closed; `/` names the path; anything else gets 404 or 405. Every
// socket is non-blocking and poll() never waits: each client has a deadline for its request
// and for taking the answer, connections are capped, and a request head is at most 8 KiB.
//
// No DPDK, no threads, no exceptions out of any member function but allocation.
// Thread contract: a MetricsServer belongs to one thread (the control core); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/net/addr.hpp"

namespace sluice::control {

class MetricsServer {
public:
    static constexpr size_t kMaxClients = 16;
    static constexpr size_t kMaxRequestBytes = 8192;
    static constexpr uint64_t kDeadlineMs = 2000;  // from accept to the last byte of the answer

    // Listens on addr:port (port 0: any free one; port() tells which).
    static Expected<MetricsServer> open(const net::IpAddr& addr, uint16_t port);
    MetricsServer(MetricsServer&& other) noexcept;
    MetricsServer& operator=(MetricsServer&&) = delete;
    MetricsServer(const MetricsServer&) = delete;
    ~MetricsServer();

    uint16_t port() const noexcept { return port_; }
    // One turn: accepts, reads requests, writes answers, closes what is done or late.
    // `metrics` makes the body of a GET /metrics (called once per such request).
    void poll(uint64_t now_ms, const std::function<std::string()>& metrics);

private:
    struct Client {
        int fd = -1;
        uint64_t deadline = 0;
        std::string in;
        std::string out;
        size_t sent = 0;
        bool answered = false;
    };
    MetricsServer(int fd, uint16_t port) : fd_(fd), port_(port) {}
    void accept_new(uint64_t now_ms);
    bool serve(Client& c, const std::function<std::string()>& metrics);  // false: close it

    int fd_ = -1;
    uint16_t port_ = 0;
    std::vector<Client> clients_;
};

// Prometheus text format: a label value with \, " and newlines escaped.
std::string escape_label(std::string_view v);

}  // namespace sluice::control
