// The configuration model: what an operator asks Sluice to do.
//
// Split as in the design: process settings (ports, workers, table sizes: restart-only) and
// service settings (VIPs, backends, weights, neighbours: reloadable later). Parsing lives in
// lib/config; this header is the plain data both the parser and the data path agree on.
// Thread contract: plain values, built by the control plane, read-only once published.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/net/addr.hpp"

namespace sluice::lb {

enum class Mode : uint8_t { dsr, nat, fullnat };
enum class Proto : uint8_t { tcp = 6, udp = 17 };

const char* to_string(Mode m);
const char* to_string(Proto p);

struct BackendConf {
    net::IpAddr addr;
    uint16_t port = 0;       // 0 = same as the VIP's port (required 0 or equal in dsr)
    uint32_t weight = 1;     // 0 = drained: keeps existing flows, takes no new ones
};

struct VipConf {
    std::string name;
    net::IpAddr addr;
    uint16_t port = 0;
    Proto proto = Proto::tcp;
    Mode mode = Mode::nat;
    uint32_t table_size = 65537;  // Maglev lookup table size: a prime
    std::vector<BackendConf> backends;
};

struct NeighborConf {
    net::IpAddr addr;
    net::Mac mac;
};

struct Timeouts {
    uint32_t tcp_syn_ms = 5'000;
    uint32_t tcp_established_ms = 300'000;
    uint32_t tcp_closing_ms = 10'000;
    uint32_t udp_ms = 30'000;
};

struct Config {
    // Service settings.
    std::vector<VipConf> vips;
    std::vector<net::IpAddr> snat_addrs;  // fullnat source addresses owned by Sluice
    std::vector<net::IpAddr> self_addrs;  // Sluice's own addresses (nat backends' gateway)
    std::vector<NeighborConf> neighbors;  // static next-hop MACs for backends
    Timeouts timeouts;

    // Process settings.
    uint32_t flow_capacity = 1u << 20;    // flows per worker and per address family
    uint16_t snat_port_min = 1024;
    uint16_t snat_port_max = 65535;
    int client_port = -1;                  // DPDK port facing clients; -1 = port 0
    int backend_port = -1;                 // DPDK port facing backends; -1 = same as client (one-arm) or port 1
    uint32_t burst = 32;
    uint32_t rxd = 1024;
    uint32_t txd = 1024;
    uint32_t total_num_mbufs = 0;          // 0 = sized from ports, queues and workers
    uint32_t stats_period_s = 0;
    std::string stats_json;                // where to write the counters as JSON on exit
};

}  // namespace sluice::lb
