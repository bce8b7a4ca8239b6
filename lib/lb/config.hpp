// The configuration model: what an operator asks Sluice to do.
//
// Two kinds of settings: process settings (ports, workers, table sizes: restart-only) and
// service settings (VIPs, backends, weights, neighbours: a reload applies them; README.md,
// "Operating it"). Parsing lives in lib/config; this header is the plain data both the parser
// and the data path agree on, with the names of its enums and the VIP name rule, which the
// option grammar and the control protocol share (lib/lb/limits.hpp holds the limits).
// Thread contract: plain values, built by the control plane, read-only once published.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/limits.hpp"
#include "lib/net/addr.hpp"

namespace sluice::lb {

enum class Mode : uint8_t { dsr, nat, fullnat, tunnel };
// How a tunnel VIP carries the client's packet to its backend: IP in IP (IPv4 or IPv6 inside
// an outer IPv4 or IPv6 header: protocol 4 or 41), or GUE (the same inside UDP, RFC 8086's
// variant 1, for backends whose NICs spread only UDP over their queues).
enum class Encap : uint8_t { ipip, gue };
// Backends answer clients themselves (the return path bypasses Sluice).
constexpr bool direct_return(Mode m) noexcept { return m == Mode::dsr || m == Mode::tunnel; }
enum class Proto : uint8_t { tcp = 6, udp = 17 };
// A backend's administrative/health state. up: takes new flows; draining: keeps its flows,
// takes no new ones (as weight 0); down: failed its health checks (flows follow the VIP's
// DownPolicy); disabled: taken out by the operator (as down).
enum class BackendState : uint8_t { up, down, draining, disabled };
// What happens to the established flows of a backend that is down or disabled.
enum class DownPolicy : uint8_t { reschedule, keep, drop };

const char* to_string(Mode m);
const char* to_string(Encap e);
const char* to_string(Proto p);
const char* to_string(BackendState s);
const char* to_string(DownPolicy p);

// The value whose to_string() is `name`, among `values`; nullopt if none. The option grammar
// and the control protocol read enum names with it, so each name is written once.
template <typename E, size_t N>
std::optional<E> from_string(std::string_view name, const E (&values)[N]) {
    for (E v : values)
        if (name == to_string(v)) return v;
    return std::nullopt;
}

// A VIP name: 1..kMaxVipNameLen letters, digits, '-', '_', '.'. The error says so and quotes
// the name: "bad VIP name 'my web' (expected 1..63 letters, digits, '-', '_', '.')".
bool valid_vip_name(std::string_view name) noexcept;
Status check_vip_name(std::string_view name);

// Active health check of every backend of a VIP, with HAProxy's meaning: one probe every
// inter_ms; a probe not finished after timeout_ms failed; `fall` consecutive failures take an
// up backend down, `rise` consecutive successes bring a down one back.
struct CheckConf {
    enum class Kind : uint8_t { none, tcp, http };
    Kind kind = Kind::none;
    uint32_t inter_ms = 2000;
    uint32_t timeout_ms = 0;      // 0: inter_ms
    uint32_t rise = 2;
    uint32_t fall = 3;
    std::string http_path = "/";
    int http_status = 200;        // expected status code
    std::string http_body;        // expected substring of the body; empty = any
    uint32_t effective_timeout_ms() const noexcept { return timeout_ms ? timeout_ms : inter_ms; }
    friend bool operator==(const CheckConf&, const CheckConf&) = default;
};
const char* to_string(CheckConf::Kind k);

struct BackendConf {
    net::IpAddr addr;
    uint16_t port = 0;       // 0 = same as the VIP's port (required 0 or equal in dsr and tunnel)
    uint32_t weight = 1;     // 0 = drained: keeps existing flows, takes no new ones
    BackendState state = BackendState::up;
};

struct VipConf {
    std::string name;
    net::IpAddr addr;
    uint16_t port = 0;
    Proto proto = Proto::tcp;
    Mode mode = Mode::nat;
    uint32_t table_size = 0;  // Maglev lookup table size: a prime, or 0 = auto (maglev_table_size)
    DownPolicy on_down = DownPolicy::reschedule;
    CheckConf check;
    uint32_t passive_failures = 0;  // failed handshakes per check interval that mark a backend down; 0 = off
    uint32_t announce_min = 1;      // --announce: backends that must be up for the VIP to be offered
    Encap encap = Encap::ipip;      // tunnel only
    uint16_t gue_port = kDefaultGuePort;  // tunnel with encap=gue: the backends' UDP port
    // Persistence (ipvsadm -p / -M): while a client network's entry lives (persist_ms after
    // its last new connection or flow end), its new connections go to the backend it is
    // pinned to. 0: off. persist_mask: the client network's prefix length; 0 = the whole
    // address (32 or 128).
    uint32_t persist_ms = 0;
    uint8_t persist_mask = 0;
    std::vector<BackendConf> backends;
};

// The Maglev table size of a VIP: table_size if the configuration gives one, else
// Maglev::auto_size() of its configured backends (whatever their state and weight, so that a
// health change never resizes a table: a new size re-maps nearly every flow).
uint32_t maglev_table_size(const VipConf& v) noexcept;

struct NeighborConf {
    net::IpAddr addr;
    net::Mac mac;
};

// Idle timeouts per flow state (lib/lb/flow_table.hpp says what each state means).
struct Timeouts {
    uint32_t tcp_syn_ms = 5'000;
    uint32_t tcp_established_ms = 300'000;
    uint32_t tcp_closing_ms = 10'000;
    uint32_t udp_ms = 30'000;
    uint32_t unconfirmed_ms = 5'000;
    // One side has sent FIN, the other still sends: conntrack keeps fin-wait 2 minutes.
    uint32_t tcp_half_closed_ms = 120'000;
    friend bool operator==(const Timeouts&, const Timeouts&) = default;
};

// Per-lcore mbuf cache of the pool, in mbufs (--mbcache).
constexpr uint32_t kDefaultMbcache = 256;

// The tier's state replication (--sync-*, docs/sync-protocol.md): a peer instance, where its
// control core listens, and the SNAT addresses it owns (this instance holds them too, to
// translate the backends' answers of its sessions once the routers send them here).
struct SyncPeerConf {
    uint32_t id = 0;
    net::IpAddr addr;
    uint16_t port = 0;
    std::vector<net::IpAddr> snat;
    friend bool operator==(const SyncPeerConf&, const SyncPeerConf&) = default;
};
inline constexpr uint16_t kDefaultSyncPort = 7447;
struct SyncConf {
    uint32_t id = 0;  // this instance in the tier; 0: replication off
    net::IpAddr listen;
    uint16_t listen_port = kDefaultSyncPort;
    std::vector<SyncPeerConf> peers;
    std::string key_file;
    uint32_t min_age_ms = 500;      // a session is sent once it has lived this long (0: at once)
    uint32_t rate = 200'000;        // entries per second at most (adds; removes go first)
    uint32_t refresh_ms = 15'000;   // live sessions are sent again this often (half the UDP timeout)
    uint32_t mtu = 1400;            // largest datagram (UDP payload)
    friend bool operator==(const SyncConf&, const SyncConf&) = default;
};

// Restart-only: what the process is built with (ports, queues, pools, table sizes, its own
// addresses, which flow records and the data path's address sets index into, and the flow
// timeouts). A reload that changes any of it is refused.
struct ProcessConfig {
    std::vector<net::IpAddr> snat_addrs;  // fullnat source addresses owned by Sluice
    std::vector<net::IpAddr> self_addrs;  // Sluice's own addresses (nat backends' gateway)
    std::vector<uint8_t> self_prefixes;   // their prefix lengths on the kernel side (parallel)
    Timeouts timeouts;
    uint32_t flow_capacity = 1u << 20;    // flows per worker and per address family
    uint32_t persist_capacity = 1u << 16; // persistence entries per worker (both families)
    uint16_t snat_port_min = 1024;
    uint16_t snat_port_max = 65535;
    int client_port = -1;                  // DPDK port facing clients; -1 = port 0
    int backend_port = -1;                 // DPDK port facing backends; -1 = same as client (one-arm) or port 1
    uint16_t client_vlan = 0;              // 802.1Q VLAN of the client side; 0 = untagged
    uint16_t backend_vlan = 0;             // 802.1Q VLAN of the backend side; 0 = untagged
    uint32_t burst = 32;
    uint32_t rxd = 1024;
    uint32_t txd = 1024;
    uint32_t total_num_mbufs = 0;          // 0 = sized from ports, queues and workers
    uint32_t mbcache = kDefaultMbcache;    // per-lcore cache of the mbuf pool, in mbufs
    uint32_t stats_period_s = 0;
    std::string stats_json;                // where to write the counters as JSON on exit
    uint32_t new_flow_rate = 0;            // new flows per second per worker; 0 = no limit
    uint32_t flow_log_one_in = 0;          // flow log: 1 new flow in N; 0 = off
    uint32_t flow_log_rate = 100;          // flow-log lines per second at most
    std::string control_socket = "/run/sluice/sluice.sock";  // empty = none
    std::string control_group;             // its members may change things (besides root); empty = none
    std::string kernel_if;                 // exception path TAP name prefix; empty = none
    // Tunnel VIPs: the outer source of each family (one each at most), the router that reaches
    // backends off the link (one per family at most; none: backends are on-link), and the
    // largest outer packet (0: the backend port's MTU).
    std::vector<net::IpAddr> tunnel_sources;
    std::vector<net::IpAddr> tunnel_gateways;
    uint32_t tunnel_mtu = 0;
    // The tier: each VIP's address goes on the kernel side's client TAP while the VIP can be
    // served (a routing daemon announces what is there); replies of flows another instance
    // started go to the client side's router (one per family at most); SIGTERM withdraws and
    // keeps forwarding this long before exiting.
    bool announce = false;
    std::vector<net::IpAddr> client_gateways;
    uint32_t drain_time_s = 0;
    // The Prometheus endpoint (--metrics-listen); none when unset.
    std::optional<std::pair<net::IpAddr, uint16_t>> metrics_listen;
    // Health probes without --kernel-if leave through the host's own network: allowed only
    // when the operator says the host reaches the backends as the data ports do.
    bool host_probes = false;
    // Workers sleep up to this long when a poll finds nothing (0: pure polling).
    uint32_t idle_sleep_us = 0;
    // State replication between the instances of a tier.
    SyncConf sync;
    friend bool operator==(const ProcessConfig&, const ProcessConfig&) = default;
};

// Reloadable: the service itself.
struct ServiceConfig {
    std::vector<VipConf> vips;
    std::vector<NeighborConf> neighbors;  // static next-hop MACs for backends
    bool allow_no_vips = false;           // an empty service is wanted, not a mistake
};

// Everything an operator asks for: the options and the configuration file make one.
struct Config : ServiceConfig, ProcessConfig {
    const ProcessConfig& process() const noexcept { return *this; }
    const ServiceConfig& service() const noexcept { return *this; }
};

// Where a backend's packets go first on the wire, whose MAC Sluice needs: the tunnel gateway
// of the backend's family for a tunnel VIP that has one, else the backend itself.
const net::IpAddr& next_hop(const ProcessConfig& c, const VipConf& v, const BackendConf& b) noexcept;

}  // namespace sluice::lb
