// The pre-flight checker behind `sluice doctor` and Sluice's start-up checks.
//
// It judges plain facts (what the host and its ports offer, what the configuration asks for)
// and returns findings, each with a severity and, for every problem, one sentence that tells
// the operator how to fix it. Facts are gathered elsewhere (drivers/dpdk/port_facts from the
// EAL and sysfs), so every rule here can be tested against invented hardware without DPDK.
//
// Severities: fatal means the configuration cannot be served (start-up stops), warn means it
// runs but slower or worse than it could, info is worth knowing, ok confirms a check passed.
// Thread contract: pure functions over values; no global state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/lb/config.hpp"

namespace sluice::lb {
struct Config;
}

namespace sluice::doctor {

enum class Severity : uint8_t { ok, info, warn, fatal };
const char* to_string(Severity s);

struct HugepagePool {
    uint64_t size_kb = 0;  // page size: 2048, 1048576
    uint64_t total = 0;    // pages reserved on the node
    uint64_t free = 0;     // pages not in use by anyone
};

struct NumaNode {
    int id = 0;
    std::vector<HugepagePool> hugepages;
    std::vector<unsigned> cpus;    // CPUs of the node (lcore ids when EAL maps lcores 1:1)
    uint64_t eal_free_bytes = 0;   // memory this process's EAL already holds on the node, unused
    uint64_t eal_total_bytes = 0;  // all memory this process's EAL holds on the node
};

struct Lcore {
    unsigned id = 0;
    int socket = -1;  // -1: unknown
};

struct HostFacts {
    std::vector<NumaNode> nodes;    // empty: the kernel reported no NUMA or hugepage layout
    bool hugetlbfs_mounted = false;
    bool no_huge = false;           // EAL runs with --no-huge: memory is anonymous, -m sized
    uint64_t base_page_bytes = 4096;  // the kernel's page, what --no-huge memory is made of
    // false: EAL did not start, so what only EAL can tell (the memory it holds, the pool's
    // node) is unknown and the checks that need it are skipped, not failed.
    bool eal_started = true;
    Lcore main_lcore;
    std::vector<Lcore> worker_lcores;  // empty: the main lcore runs the only worker
    uint64_t mem_available_bytes = 0;  // MemAvailable; 0: unknown
};

// The hash inputs a port's RSS offers (rte_eth_dev_info.flow_type_rss_offloads, as flags).
struct RssHashes {
    bool ipv4 = false, ipv4_tcp = false, ipv4_udp = false;
    bool ipv6 = false, ipv6_tcp = false, ipv6_udp = false;
    bool any() const noexcept { return ipv4 || ipv4_tcp || ipv4_udp || ipv6 || ipv6_tcp || ipv6_udp; }
};

struct Checksums {
    bool ipv4 = false, tcp = false, udp = false;
    bool all() const noexcept { return ipv4 && tcp && udp; }
    bool any() const noexcept { return ipv4 || tcp || udp; }
};

// rte_eth_desc_lim: max 0 means the driver gave no limits.
struct DescLimits {
    uint16_t min = 0, max = 0, align = 1;
};

enum class Link : uint8_t { unknown, down, up };

struct PortFacts {
    uint16_t id = 0;
    std::string name;     // ethdev name: 0000:3b:00.0, net_null0
    std::string driver;   // net_ixgbe, net_null
    bool vdev = false;    // a virtual device (no NIC behind it)
    int socket = -1;      // NUMA node; -1: unknown
    Link link = Link::unknown;
    bool started = false;  // many NICs bring their link up only once started
    uint32_t speed_mbps = 0;
    uint16_t max_rx_queues = 0, max_tx_queues = 0;
    RssHashes rss;
    uint16_t rss_key_size = 0;  // bytes
    uint16_t reta_size = 0;
    Checksums rx_csum, tx_csum;
    uint32_t max_rx_pktlen = 0;
    uint16_t max_mtu = 0;
    DescLimits rx_desc, tx_desc;
};

// What the configuration asks of the hardware.
struct Requested {
    uint16_t workers = 1;
    uint32_t rxd = 1024, txd = 1024, burst = 32, mbcache = lb::kDefaultMbcache;
    uint32_t total_num_mbufs = 0;  // as given; 0: sized by mbufs_needed()
    uint32_t flow_capacity = 1u << 20;
    int client_port = -1, backend_port = -1;  // as configured; -1: the default
    bool kernel_side = false;                 // --kernel-if
    bool dsr = false, nat = false, tunnel = false;  // some VIP uses the mode
    // fullnat VIPs by family and protocol: their replies must reach the owning worker by RSS.
    bool fullnat_v4_tcp = false, fullnat_v4_udp = false, fullnat_v6_tcp = false, fullnat_v6_udp = false;
    int pool_socket = -1;                   // NUMA node of the mbuf pool; -1: any
    uint32_t mbuf_bytes = 2368;             // one mbuf in the pool, headers included
    bool flow_tables_in_hugepages = false;  // false: ordinary memory (MemAvailable)
    uint16_t max_ports = 4;
    uint16_t rss_key_size = 40;             // the key Sluice programs and predicts with (a prefix of longer keys)
    uint16_t reta_multiple = 128;           // redirection tables Sluice can program (net::Reta::kSize)
    // The SNAT addresses and port range and the fullnat VIPs (only those fields are set): how
    // many SNAT ports each worker owns (lib/lb/snat_ports.hpp).
    lb::Config fullnat;
};

struct Facts {
    HostFacts host;
    std::vector<PortFacts> ports;  // every port EAL found, by id
    Requested req;
};

struct Finding {
    Severity severity = Severity::ok;
    std::string subject;  // "host", "port 0", "config"
    std::string what;     // what was found
    std::string fix;      // one sentence; empty for ok and for info that needs no action
};

struct Report {
    std::vector<Finding> findings;
    Severity worst() const noexcept;
    size_t count(Severity s) const noexcept;
};

// Runs every check. Never throws on odd facts (zero queues, no nodes, unknown sockets).
// Without EAL (host.eal_started false) only the host is judged, and not its memory.
Report check(const Facts& facts);

// Only the link rule, for ports already started (links are judged again after start-up,
// because many NICs raise them only once started).
Report check_links(const std::vector<PortFacts>& ports);

// One line per finding, severity and subject aligned, its fix on the next line, and a verdict.
std::string render(const Report& report);

// 1 when anything is fatal, 0 otherwise (warnings do not fail `sluice doctor`).
int exit_code(const Report& report) noexcept;

// Mbufs Sluice's pool needs: every RX and TX ring full plus bursts in flight, the redirect
// rings, the kernel side, and what the per-lcore caches can hold (at least 16384).
uint32_t mbufs_needed(uint16_t ports, uint16_t workers, uint32_t rxd, uint32_t txd, uint32_t burst, uint32_t mbcache,
                      bool kernel_side) noexcept;

// Bytes of one worker's flow tables (IPv4 and IPv6) at `capacity` flows each.
uint64_t flow_table_bytes(uint32_t capacity) noexcept;

// Fills the mode, port-role and process-setting parts of Requested from a configuration.
void fill_requested(const lb::Config& config, Requested& req);

// "0-4", "0,2,4-6": an EAL -l argument.
std::string lcore_list(const std::vector<unsigned>& lcores);

}  // namespace sluice::doctor
