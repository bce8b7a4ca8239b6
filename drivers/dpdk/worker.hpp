// The DPDK side of a worker: mbufs in, the data path over them, mbufs out.
//
// handle() is the single entry point for received packets, shared by the sluice binary's
// poll loop and the replay harness, so both run exactly the same packet code. It leaves
// packets to transmit in per-port TX staging arrays and packets owned by another worker in
// per-worker redirect staging arrays, and packets for the kernel side in a control staging
// array; the caller flushes them (rte_eth_tx_burst / rte_ring, or
// pcap files in the harness) and reports back through tx_done()/handed_over(), so that this
// class alone keeps a worker's rx/tx counts true. Dropped packets are freed here.
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
#include "lib/lb/flow_log.hpp"

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
    // Flow-table entries examined per poll-loop turn by the background expiry: small enough
    // to cost the loop little, large enough to keep up with any table at one turn per few µs.
    static constexpr uint32_t kExpireBudget = 64;
    void expire(uint32_t now_ms) noexcept { dp_.expire(now_ms, kExpireBudget); }

    // Samples 1 new flow in one_in into the flow log; returns the worker's event ring for the
    // control core to drain (owned by the worker).
    lb::FlowLogRing* enable_flow_log(uint32_t one_in);

    // The caller sent the first `sent` packets of tx(port): the rest are dropped as tx_full,
    // freed and taken back out of the tx count the data path made. Empties the array.
    void tx_done(uint16_t port, uint16_t sent) noexcept;
    // The caller took the first `taken` packets of a redirect() or control() array: the rest
    // are dropped under `full`, freed. Empties the array.
    void handed_over(Staging& st, unsigned taken, lb::Drop full) noexcept;
    // Stages a frame to send as it is on its mbuf->port (the kernel side's and the control
    // core's frames); counted as tx, or dropped as tx_full when the array is full.
    void stage_unchanged(rte_mbuf* m) noexcept;

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
    std::unique_ptr<lb::FlowLogRing> flow_log_;
};

}  // namespace sluice::dpdk
