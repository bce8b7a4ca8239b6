// The control core's brain: the desired configuration, backend health, and the snapshots the
// workers run on. No DPDK: it reaches the workers through the Workers interface (rings and
// RCU in the binary, direct calls in the replay harness and tests) and the process through Hooks.
//
// Every change — a health transition, passive failure detection, a neighbour learnt, a
// sluicectl command, a reload (SIGHUP or `sluicectl reload`) — goes through one path: update
// the desired state, build a new Service from the current one (so indices stay stable and only
// changed Maglev tables are rebuilt), publish it, and tell the workers to flush the flows of
// backends that left. An invalid change is rejected with a message and changes nothing.
//
// A backend's effective state combines what the operator set (config or sluicectl: up,
// draining, disabled, or down from a monitoring agent) with its health (active checks, and
// passive detection, which only active checks undo): disabled wins, then down, then draining
// (or weight 0), else up.
//
// Thread contract: one ControlPlane, used only by the control core thread. Hooks are called
// from that thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/control/ctl_protocol.hpp"
#include "lib/control/ctl_server.hpp"
#include "lib/control/health.hpp"
#include "lib/control/workers.hpp"
#include "lib/lb/config.hpp"
#include "lib/lb/counters.hpp"
#include "lib/lb/dataplane.hpp"
#include "lib/lb/service.hpp"

namespace sluice::control {

// What the control plane needs from the process around it, besides its workers.
struct Hooks {
    // One line for the operator's log (state changes, reloads).
    std::function<void(const std::string&)> log;
    // Re-reads the configuration for a reload (the binary re-parses its arguments and file).
    std::function<Expected<lb::Config>()> reread;
    // Rules that depend on the running process (how its workers share SNAT ports): a change
    // they refuse is not applied.
    std::function<Status(const lb::Config&)> admit;
    // The tier (--announce): offers (on) or withdraws (off) a VIP address to the routers; the
    // process puts it on or takes it off the kernel side, where the routing daemon sees it.
    std::function<Status(const net::IpAddr&, bool on)> route;
    // Lines `stats` appends (replication's state); none when unset.
    std::function<std::string()> more_stats;
    // Around every reload (SIGHUP or sluicectl): before it starts, and with its outcome.
    std::function<void()> reload_started;
    std::function<void(const Status&)> reload_done;
};

class ControlPlane {
public:
    // `workers` outlives the control plane; it may have no workers yet when start() publishes
    // the first snapshot (they start on it).
    ControlPlane(lb::Config config, Workers& workers, Hooks hooks, Prober prober);

    // Builds and publishes the first snapshot and starts the health checks.
    Status start(uint64_t now_ms);
    // Runs the health checks and passive detection; waits at most max_wait_ms for probes.
    void poll(uint64_t now_ms, int max_wait_ms);
    // The control socket's entry point: one command, one response (ctl_protocol framing).
    // Changes need a privileged peer and are logged with who asked; a change whose request id
    // was answered before gets that answer again and is not applied twice.
    std::string handle(const Expected<Command>& cmd, const Peer& peer = Peer{0, 0, 0, true});
    // Re-reads and applies the configuration; on error the running one stays.
    Status reload();
    // The tier (--announce, Hooks::route): the VIP addresses this instance offers its routers.
    // A VIP can be offered while the workers forward and it has at least one backend up with
    // its MAC known and, if checked, a passed check behind its state; an address is offered
    // while any VIP on it can be. Every change is logged once with its reason; `list` shows it.
    // The process reports whether every worker is polling (a stalled one withdraws all).
    void set_forwarding(bool ok, const std::string& why);
    // Withdraws every address whatever the VIPs' state (sluicectl withdraw, a stop with
    // --drain-time) until announce_all(); the reason is logged and listed.
    void withdraw_all(const std::string& why);
    void announce_all();
    // Holds every address back while `why` is not empty (replication resynchronising from the
    // tier before this instance takes traffic); empty releases the hold.
    void hold(const std::string& why);
    // A binding seen on the wire; rebuilds if a backend's next hop changed.
    void learn_neighbor(const net::IpAddr& addr, const net::Mac& mac);
    // Backend addresses with no static and no learnt MAC (to resolve), and all dynamic ones.
    std::vector<net::IpAddr> unresolved() const;
    std::vector<net::IpAddr> dynamic_neighbors() const;

    // Tunnel VIPs' probes go through the tunnel, to the VIP, as a client's packets do: the
    // kernel side wraps them for their backend (drivers/dpdk/kernel_side.hpp). Each backend of
    // a tunnel VIP gets a source port of its own, and the probes carry `mark` for policy
    // routing. Off (0) until called: their probes go to the backend's own address.
    void enable_tunnel_probes(uint32_t mark);
    struct TunnelProbe {
        uint16_t vip;      // index in service()
        uint16_t backend;  // index in service()
    };
    // The backend a tunnel probe from source port `sport` to vip:vport is for.
    std::optional<TunnelProbe> tunnel_probe(const net::IpAddr& vip, uint16_t vport, uint16_t sport) const;
    // The VIP addresses tunnel probes go to; the generation changes when the set may have.
    std::vector<net::IpAddr> tunnel_probe_vips() const;
    uint64_t tunnel_probe_generation() const noexcept { return tunnel_generation_; }
    static constexpr uint16_t kTunnelProbePortFirst = 28000;
    static constexpr uint16_t kTunnelProbePorts = 4000;

    const std::shared_ptr<const lb::Service>& service() const noexcept { return service_; }
    const lb::Config& config() const noexcept { return config_; }
    Prober& prober() noexcept { return prober_; }

    // The operations behind the commands, one function each (also used by tests).
    Status set_state(const std::string& vip, const net::IpAddr& addr, uint16_t port, lb::BackendState s);
    Status set_weight(const std::string& vip, const net::IpAddr& addr, uint16_t port, uint32_t weight);
    // With a MAC, the backend's neighbour entry is set too (as set_neighbor does).
    Status add_backend(const std::string& vip, const net::IpAddr& addr, uint16_t port, uint32_t weight,
                       std::optional<net::Mac> mac = std::nullopt);
    // A next hop's MAC, as --neighbor gives it (a static entry: it wins over ARP/ND).
    Status set_neighbor(const net::IpAddr& addr, const net::Mac& mac);
    Status remove_backend(const std::string& vip, const net::IpAddr& addr, uint16_t port);
    std::string list() const;
    // The Prometheus text exposition of what list and stats show (lib/control/metrics.cpp).
    std::string metrics() const;
    std::string stats() const;
    Expected<std::string> explain(const Command& c) const;
    // sluicectl persist VIP: the VIP's client networks, their backend, time left and workers.
    Expected<std::string> persist_list(const std::string& vip) const;

private:
    // Health and bookkeeping of one configured backend, keyed by (VIP name, address, port).
    struct Health {
        uint32_t probe = 0;          // Prober id; 0 = not probed
        lb::CheckConf check;         // the settings the probe runs with
        bool up = true;              // health verdict (checks, passive detection)
        std::string reason;          // why it last changed
        uint64_t passive_seen = 0;   // handshake failures counted at the last passive check
        uint16_t tunnel_port = 0;    // probes through the tunnel, from this source port; 0: direct
    };
    using Key = std::tuple<std::string, net::IpAddr, uint16_t>;

    Status reload_config();
    Status apply(lb::Config next, const char* why);
    Status apply_or_throw(lb::Config next, const char* why);
    std::string answer(const Command& c);
    // Positions in config_ of a VIP and of one of its backends; errors name what is missing.
    struct Where {
        size_t vip;
        size_t backend;
    };
    Expected<size_t> vip_index(const std::string& vip) const;
    Expected<Where> backend_index(const std::string& vip, const net::IpAddr& addr, uint16_t port) const;
    std::string label_of(const Where& w) const;
    void sync_probes();
    uint64_t handshake_failures(const std::string& vip, const net::IpAddr& addr, uint16_t port,
                                const lb::WorkerCounters& total) const;
    void passive_check(uint64_t now_ms);
    lb::BackendState effective(const lb::VipConf& v, const lb::BackendConf& b) const;
    void log(const std::string& line) const;
    void update_routes();
    // Can VIP v be offered, and why (or why not)?
    std::pair<bool, std::string> offerable(const lb::VipConf& v, const std::map<uint32_t, bool>& checked) const;

    lb::Config config_;  // desired state (operator's view)
    Workers& workers_;
    Hooks hooks_;
    Prober prober_;
    std::shared_ptr<const lb::Service> service_;
    std::map<Key, Health> health_;
    std::map<net::IpAddr, net::Mac> learnt_;
    uint64_t last_passive_ms_ = 0;
    bool started_ = false;  // the first configuration is applied: backends added later are new
    // Answers to the last requests that carried an id, oldest first (retries get them again).
    static constexpr size_t kRememberedAnswers = 256;
    std::deque<std::pair<std::string, std::string>> answered_;
    std::string operator_ = "the operator";  // who asked for the change being made
    std::vector<Prober::Event> events_;
    uint32_t tunnel_mark_ = 0;
    uint64_t tunnel_generation_ = 0;
    std::map<uint16_t, Key> tunnel_ports_;  // source port -> backend, for tunnel probes
    // The tier: each VIP address's route as last applied, and the instance-wide conditions.
    struct Route {
        bool on = false;
        std::string reason;
        bool failing = false;  // the last change could not be applied (logged once; retried)
    };
    std::map<net::IpAddr, Route> routes_;
    std::map<std::string, std::pair<bool, std::string>> offered_;  // per VIP name, for list()
    bool forwarding_ = false;
    std::string not_forwarding_ = "the workers have not started";
    std::string withdrawn_;  // non-empty: every address withdrawn, for this reason
    std::string held_;       // non-empty: nothing offered yet, for this reason (hold())
    uint64_t next_routes_ms_ = 0;
};

}  // namespace sluice::control
