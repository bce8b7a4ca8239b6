// The DPDK side of a worker: mbufs in, the data path over them, mbufs out.
//
// handle() is the single entry point for received packets, shared by the sluice binary's
// poll loop and the replay harness, so both run exactly the same packet code. It leaves
// packets to transmit in per-port TX staging arrays and packets owned by another worker in
// per-worker redirect staging arrays, and packets for the kernel side in a control staging
// array; the caller flushes them (rte_eth_tx_burst / rte_ring, or
// pcap files in the harness). Dropped packets are freed here.
// Thread contract: one Worker per lcore; only that lcore calls its methods, except the
// read-only counters() used for statistics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "lib/lb/dataplane.hpp"

namespace sluice::dpdk {

constexpr uint16_t kMaxPorts = 4;

struct Staging {
    static constexpr uint16_t kCap = lb::Dataplane::kMaxBurst * 4;
    rte_mbuf* pkts[kCap];
    uint16_t n = 0;
};

class Worker {
public:
    Worker(std::shared_ptr<const lb::Service> service, const lb::WorkerEnv& env, uint32_t flow_capacity,
           uint16_t nb_ports);

    // Runs the data path over n packets (any count; processed in bursts of kMaxBurst).
    // Each packet's input port is mbuf->port. Packets that do not fit the staging arrays are
    // dropped and counted: a caller that hands over more than room() packets flushes first.
    void handle(rte_mbuf** pkts, uint16_t n, bool redirected, uint32_t now_ms) noexcept;
    // How many packets the fullest staging array can still take.
    uint16_t room() const noexcept {
        uint16_t n = static_cast<uint16_t>(Staging::kCap - control_.n);
        for (const Staging& s : tx_) n = std::min<uint16_t>(n, static_cast<uint16_t>(Staging::kCap - s.n));
        for (const Staging& s : redirect_) n = std::min<uint16_t>(n, static_cast<uint16_t>(Staging::kCap - s.n));
        return n;
    }
    void expire(uint32_t now_ms, uint32_t budget) noexcept { dp_.expire(now_ms, budget); }

    Staging& tx(uint16_t port) noexcept { return tx_[port]; }
    Staging& redirect(uint16_t worker) noexcept { return redirect_[worker]; }
    Staging& control() noexcept { return control_; }
    uint16_t nb_ports() const noexcept { return nb_ports_; }
    uint16_t nb_workers() const noexcept { return static_cast<uint16_t>(redirect_.size()); }

    lb::Dataplane& dataplane() noexcept { return dp_; }
    const lb::Dataplane& dataplane() const noexcept { return dp_; }
    // Counts packets a TX queue or a redirect ring refused (the caller frees them).
    void count_drop(lb::Drop d, uint32_t n = 1) noexcept { dp_.counters().drops[static_cast<size_t>(d)] += n; }

private:
    lb::Dataplane dp_;
    uint16_t nb_ports_;
    std::vector<Staging> tx_;
    std::vector<Staging> redirect_;
    Staging control_;
};

}  // namespace sluice::dpdk
