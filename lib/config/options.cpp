// Option parsing: Boost.Program_options tokenizes both sources, this file gives the values
// their meaning.
//
// Boost splits `--name value` / `--name=value` and `name = value` lines and rejects unknown
// names; we deliberately do not use its variables_map, because its merge rules (first store
// wins, composing lists in store order) are not ours: options are applied in order, file first,
// then the command line, lists appending and scalars overriding. Every applied option keeps its
// origin (the text the operator wrote, and `file:line`), which the rules quote in errors.
//
// Here: the option table (names, --help), tokenizing, building a Config from the options in
// order, and the --check-config summary. The value syntax is in syntax.cpp, the semantic rules
// in rules.cpp.
// Thread contract: no global state; every function is reentrant.
#include "lib/config/options.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/config/rules.hpp"
#include "lib/config/syntax.hpp"
#include "lib/lb/limits.hpp"
#include "lib/net/endpoint.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

namespace sluice::config {
namespace detail {
namespace {

namespace po = boost::program_options;
using lb::BackendConf;
using lb::Config;

enum class Kind { flag, scalar, list };

struct OptSpec {
    const char* name;
    const char* arg;    // placeholder shown by --help; nullptr for flags
    Kind kind;
    bool cli_only;      // not accepted in a config file
    const char* group;  // --help section
    const char* help;   // '\n' starts a new --help line
};

constexpr OptSpec kOptions[] = {
    {"help", nullptr, Kind::flag, true, "General", "print this help and exit (also -h)"},
    {"version", nullptr, Kind::flag, true, "General", "print the version and exit"},
    {"config", "FILE", Kind::scalar, true, "General",
     "read options from FILE first (`name = value` lines);\n"
     "command-line values add to lists and override scalars"},
    {"check-config", nullptr, Kind::flag, true, "General",
     "validate the configuration, print a summary and exit\n(needs no EAL or hugepages)"},
    {"doctor", nullptr, Kind::flag, true, "General",
     "start EAL, check hosts, ports and configuration against each\n"
     "other, print the findings and exit: 0 unless one is fatal\n"
     "(same as `sluice doctor [EAL options] -- [options]`)"},

    {"vip", "NAME,ADDR:PORT/PROTO,MODE[,KEY=VALUE...]", Kind::list, false, "Services (repeatable)",
     "a virtual service; PROTO tcp|udp, MODE dsr|nat|fullnat|tunnel;\n"
     "IPv6 in brackets: web6,[2001:db8::10]:443/tcp,fullnat;\n"
     "table=PRIME|auto  Maglev table size, <= 2097169; auto\n"
     "  (default): >= 2048 entries per backend in steps of two,\n"
     "  65537 up to 32 backends, 2097169 (4 MiB) from 513\n"
     "on-down=reschedule|keep|drop  flows of a down backend\n"
     "  (default reschedule: they move on their next packet)\n"
     "check=none|tcp|http  active health check (default none)\n"
     "inter=DUR rise=N fall=N timeout=DUR  HAProxy's meaning;\n"
     "  defaults 2s, 2, 3, timeout = inter; DUR: 500ms, 2s, 1m\n"
     "http-path=/PATH http-status=CODE http-body=TEXT  for\n"
     "  check=http (defaults /, 200, any body)\n"
     "passive=N  mark a backend down after N failed TCP\n"
     "  handshakes per inter (judged every second, scaled;\n"
     "  default 0: off); only active checks bring it back\n"
     "encap=ipip|gue gue-port=N  tunnel: IP in IP (default), or\n"
     "  GUE in UDP to port N (default 6080)\n"
     "announce-min=N  with --announce, offer the VIP only while\n"
     "  N backends are up (default 1)\n"
     "persist=DUR  sticky clients (ipvsadm -p): a client's new\n"
     "  connections go to the backend it was pinned to while\n"
     "  its entry lives (DUR after its last new connection or\n"
     "  flow end; 1s..24h, e.g. 5m, 2h); a backend down or\n"
     "  removed releases its clients, a draining one keeps them\n"
     "persist-mask=/N  pin the client's /N network instead of\n"
     "  its address (ipvsadm -M; /1../32 IPv4, /1../128 IPv6)"},
    {"backend", "VIP,ADDR[:PORT][,weight=N][,state=S]", Kind::list, false, "Services (repeatable)",
     "a backend of VIP; PORT defaults to the VIP's port (and\n"
     "must equal it in dsr); weight 0..65535, default 1,\n"
     "0 = drained (keeps its flows, takes no new ones);\n"
     "state up|draining|disabled (default up)"},
    {"snat", "ADDR", Kind::list, false, "Services (repeatable)",
     "a source address for fullnat (one per family in use)"},
    {"self", "ADDR[/LEN]", Kind::list, false, "Services (repeatable)",
     "an address of Sluice itself (e.g. nat backends' gateway);\n"
     "with --kernel-if it goes on the kernel side as ADDR/LEN"},
    {"tunnel-source", "ADDR", Kind::list, false, "Services (repeatable)",
     "the outer source address of tunnel VIPs' packets\n"
     "(one per family of the backends in use; restart-only)"},
    {"tunnel-gateway", "ADDR", Kind::list, false, "Services (repeatable)",
     "the router toward tunnel backends off the link (one per\n"
     "family; its MAC from --neighbor or ARP/ND; restart-only);\n"
     "without one, tunnel backends are on-link"},
    {"client-gateway", "ADDR", Kind::list, false, "Services (repeatable)",
     "the router toward clients (one per family; its MAC from\n"
     "--neighbor or ARP/ND; restart-only): nat answers of flows\n"
     "this instance never saw (another instance of a tier started\n"
     "them) go to it"},
    {"neighbor", "ADDR,MAC", Kind::list, false, "Services (repeatable)",
     "static next-hop MAC for ADDR; every backend needs one\n"
     "unless --kernel-if resolves them"},

    {"timeout-tcp-syn", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "half-open TCP flows (default 5)"},
    {"timeout-tcp-established", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "established TCP flows (default 300)"},
    {"timeout-tcp-closing", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "TCP flows after FIN from both sides, or RST (default 10)"},
    {"timeout-tcp-half-closed", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "TCP flows after FIN from one side only (default 120)"},
    {"timeout-udp", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "UDP flows the backend has answered (default 30)"},
    {"timeout-unconfirmed", "SECONDS", Kind::scalar, false, "Flow timeouts (1..86400 s)",
     "flows picked up from a packet that starts no connection\n"
     "(TCP without SYN, a new UDP flow) until the backend\n"
     "answers; in dsr, where answers bypass Sluice, always (default 5)"},

    {"flow-capacity", "N", Kind::scalar, false, "Process settings (restart-only)",
     "flows per worker and family, 1024..67108864 (default 2^20)"},
    {"persist-capacity", "N", Kind::scalar, false, "Process settings (restart-only)",
     "persistence entries per worker (persist=), 1024..16777216\n"
     "(default 65536; 32 bytes each)"},
    {"snat-ports", "MIN-MAX", Kind::scalar, false, "Process settings (restart-only)",
     "fullnat source ports within 1024..65535 (default 1024-65535)"},
    {"client-port", "N", Kind::scalar, false, "Process settings (restart-only)",
     "DPDK port facing clients, 0..31 (default 0)"},
    {"backend-port", "N", Kind::scalar, false, "Process settings (restart-only)",
     "DPDK port facing backends, 0..31\n(default: the client port if one port, else 1)"},
    {"client-vlan", "ID", Kind::scalar, false, "Process settings (restart-only)",
     "802.1Q VLAN of the client side, 1..4094 (default: untagged);\n"
     "frames on other VLANs are dropped as foreign_vlan"},
    {"backend-vlan", "ID", Kind::scalar, false, "Process settings (restart-only)",
     "802.1Q VLAN of the backend side, 1..4094 (default: untagged);\n"
     "the kernel side (--kernel-if) sees it untagged"},
    {"allow-no-vips", "yes|no", Kind::scalar, false, "Service",
     "run (or reload) with no VIP at all (default no: an empty\n"
     "or comment-only file is refused, not applied as 'forward nothing')"},
    {"burst", "N", Kind::scalar, false, "Process settings (restart-only)", "RX/TX burst size, 1..512 (default 32)"},
    {"rxd", "N", Kind::scalar, false, "Process settings (restart-only)",
     "RX descriptors per queue, 64..16384 (default 1024)"},
    {"txd", "N", Kind::scalar, false, "Process settings (restart-only)",
     "TX descriptors per queue, 64..16384 (default 1024)"},
    {"total-num-mbufs", "N", Kind::scalar, false, "Process settings (restart-only)",
     "mbufs in the pool (default 0: sized from ports and workers)"},
    {"mbcache", "N", Kind::scalar, false, "Process settings (restart-only)",
     "per-lcore mbuf cache, 0..512 (default 256)"},
    {"stats-period", "SECONDS", Kind::scalar, false, "Process settings (restart-only)",
     "print counters every SECONDS, 0..86400 (default 0: never)"},
    {"stats-json", "FILE", Kind::scalar, false, "Process settings (restart-only)",
     "write the counters as JSON to FILE on exit"},
    {"new-flow-rate", "N", Kind::scalar, false, "Process settings (restart-only)",
     "at most N new flows per second per worker enter the flow\n"
     "table, 0..100000000 (default 0: no limit); dsr and nat\n"
     "forward the rest without state, fullnat drops them as\n"
     "new_flow_limit; established flows are never limited"},
    {"flow-log", "N", Kind::scalar, false, "Process settings (restart-only)",
     "log 1 new flow in N at open and close (tuple, VIP, backend,\n"
     "decision, packets, bytes, why it closed); 0 = off (default)"},
    {"flow-log-rate", "LINES", Kind::scalar, false, "Process settings (restart-only)",
     "at most LINES flow-log lines per second, 1..100000\n"
     "(default 100; the rest are counted as suppressed)"},
    {"control-socket", "PATH", Kind::scalar, false, "Process settings (restart-only)",
     "Unix socket for sluicectl (default /run/sluice/sluice.sock;\n"
     "'none' = no control socket)"},
    {"control-group", "GROUP", Kind::scalar, false, "Process settings (restart-only)",
     "members of GROUP may change things through the control\n"
     "socket, as root and Sluice's own user may; every other\n"
     "local user may only read (list, stats, explain)"},
    {"tunnel-mtu", "BYTES", Kind::scalar, false, "Process settings (restart-only)",
     "largest encapsulated packet, 1280..9000 (default 0: the\n"
     "backend port's MTU); a client packet that no longer fits\n"
     "is answered with ICMP fragmentation-needed / too-big"},
    {"host-probes", "yes|no", Kind::scalar, false, "Process settings (restart-only)",
     "allow health checks without --kernel-if: their probes then\n"
     "leave through the host's own network and can find a backend\n"
     "UP that the data ports cannot reach (default no: refused)"},
    {"metrics-listen", "ADDR:PORT", Kind::scalar, false, "Process settings (restart-only)",
     "serve Prometheus metrics at http://ADDR:PORT/metrics\n"
     "(IPv6 in brackets; default: off)"},
    {"announce", "yes|no", Kind::scalar, false, "Process settings (restart-only)",
     "a tier behind ECMP routers: each VIP's address goes on the\n"
     "kernel side's client TAP while the VIP has a backend up\n"
     "and the workers forward, for a routing daemon (BIRD's\n"
     "protocol direct) to announce; needs --kernel-if (default no)"},
    {"drain-time", "SECONDS", Kind::scalar, false, "Process settings (restart-only)",
     "on SIGTERM, withdraw every VIP (--announce) and forward\n"
     "this long before exiting, 0..3600 (default 0)"},
    {"idle-sleep", "MICROSECONDS", Kind::scalar, false, "Process settings (restart-only)",
     "a worker whose polls find nothing sleeps up to this long,\n"
     "0..10000 (default 0: poll without pause; a host that\n"
     "shares its cores with other work wants ~100-500)"},
    {"sync-id", "N", Kind::scalar, false, "Replication between instances (restart-only)",
     "this instance's id in the tier, 1..4294967295: replicates\n"
     "fullnat sessions and persistence entries with the\n"
     "--sync-peer instances (docs/sync-protocol.md; default off)"},
    {"sync-listen", "ADDR[:PORT]", Kind::scalar, false, "Replication between instances (restart-only)",
     "the kernel address replication uses (default port 7447)"},
    {"sync-peer", "ID,ADDR[:PORT][,snat=ADDR]...", Kind::list, false, "Replication between instances (restart-only)",
     "another instance: its id, its --sync-listen, and the SNAT\n"
     "addresses it owns (held here too, to translate its\n"
     "sessions' answers once the routers send them here)"},
    {"sync-key", "FILE", Kind::scalar, false, "Replication between instances (restart-only)",
     "the tier's shared key: 32 raw bytes or 64 hex digits,\n"
     "readable by no other user (openssl rand -hex 32)"},
    {"sync-min-age", "DURATION", Kind::scalar, false, "Replication between instances (restart-only)",
     "a session is sent once it has lived this long; shorter\n"
     "ones never leave the instance (default 500ms; 0: at once)"},
    {"sync-rate", "N", Kind::scalar, false, "Replication between instances (restart-only)",
     "entries sent per second at most; over it adds wait and\n"
     "are counted (default 200000)"},
    {"sync-refresh", "DURATION", Kind::scalar, false, "Replication between instances (restart-only)",
     "live sessions are sent again this often, at most half the\n"
     "established and UDP timeouts (default: half the shorter\n"
     "of them, at most 60s; 15s with the default timeouts)"},
    {"kernel-if", "NAME", Kind::scalar, false, "Process settings (restart-only)",
     "exception path: a TAP interface NAME<port> per data port\n"
     "for Sluice's kernel side (its --self addresses go on the\n"
     "backend port's); enables health probes through the data\n"
     "ports and ARP/ND resolution of backends without --neighbor"},
};

const OptSpec* find_spec(std::string_view name) {
    for (const auto& s : kOptions)
        if (name == s.name) return &s;
    return nullptr;
}

// ---- building a Config from option occurrences ---------------------------------------------

class Builder {
public:
    // Options of one source (the file, then the command line) follow this call; a scalar may
    // appear once per source, a later source overrides it.
    void begin_source() { seen_.clear(); }

    Status apply(const RawOpt& o) {
        const OptSpec* spec = find_spec(o.name);
        if (spec == nullptr || spec->cli_only) return fail(describe(o), "not accepted here");
        if (spec->kind == Kind::scalar) {
            if (!seen_.insert(o.name).second) return fail(describe(o), "given more than once");
            origins_.scalars[o.name] = o;
        }
        if (o.name == "vip") {
            auto v = parse_vip(o.value);
            if (!v) return fail(describe(o), v.error());
            cfg_.vips.push_back(std::move(*v));
            origins_.vips.push_back(o);
            origins_.backends.emplace_back();
        } else if (o.name == "backend") {
            auto b = parse_backend(o.value);
            if (!b) return fail(describe(o), b.error());
            pending_.push_back({o, std::move(b->first), b->second});
        } else if (o.name == "snat" || o.name == "self") {
            std::string_view text = o.value;
            uint8_t prefix = 0;
            if (auto slash = text.find('/'); slash != std::string_view::npos && o.name == "self") {
                auto len = parse_number(text.substr(slash + 1), 1, 128, "prefix length");
                if (!len) return fail(describe(o), len.error());
                prefix = static_cast<uint8_t>(*len);
                text = text.substr(0, slash);
            }
            auto a = parse_addr(text);
            if (!a) return fail(describe(o), a.error());
            if (o.name == "self") {
                if (a->is_v4() && prefix > 32) return fail(describe(o), "prefix length out of range (1..32)");
                cfg_.self_prefixes.push_back(prefix ? prefix : (a->is_v4() ? 32 : 128));
            }
            (o.name == "snat" ? cfg_.snat_addrs : cfg_.self_addrs).push_back(*a);
            (o.name == "snat" ? origins_.snat : origins_.self).push_back(o);
        } else if (o.name == "client-gateway") {
            auto a = parse_addr(o.value);
            if (!a) return fail(describe(o), a.error());
            cfg_.client_gateways.push_back(*a);
            origins_.client_gateways.push_back(o);
        } else if (o.name == "metrics-listen") {
            auto ep = net::parse_endpoint(o.value, {"metrics address", false, 1});
            if (!ep) return fail(describe(o), ep.error());
            if (!ep->port) return fail(describe(o), "missing :PORT (e.g. 127.0.0.1:9470 or [::1]:9470)");
            cfg_.metrics_listen = std::make_pair(ep->addr, *ep->port);
        } else if (o.name == "announce" || o.name == "host-probes") {
            if (o.value != "yes" && o.value != "no") return fail(describe(o), "expected yes or no");
            (o.name == "announce" ? cfg_.announce : cfg_.host_probes) = o.value == "yes";
        } else if (o.name == "tunnel-source" || o.name == "tunnel-gateway") {
            auto a = parse_addr(o.value);
            if (!a) return fail(describe(o), a.error());
            (o.name == "tunnel-source" ? cfg_.tunnel_sources : cfg_.tunnel_gateways).push_back(*a);
            (o.name == "tunnel-source" ? origins_.tunnel_sources : origins_.tunnel_gateways).push_back(o);
        } else if (o.name == "tunnel-mtu") {
            auto m = parse_number(o.value, 0, lb::kMaxTunnelMtu, "MTU");
            if (!m) return fail(describe(o), m.error());
            if (*m && *m < lb::kMinTunnelMtu)
                return fail(describe(o), fmt::format("below {} (IPv6's minimum link MTU); 0 takes the port's",
                                                     lb::kMinTunnelMtu));
            cfg_.tunnel_mtu = static_cast<uint32_t>(*m);
        } else if (o.name == "neighbor") {
            auto n = parse_neighbor(o.value);
            if (!n) return fail(describe(o), n.error());
            cfg_.neighbors.push_back(*n);
            origins_.neighbors.push_back(o);
        } else if (o.name == "snat-ports") {
            auto dash = o.value.find('-');
            if (dash == std::string::npos) return fail(describe(o), "expected MIN-MAX");
            auto lo = parse_number(std::string_view(o.value).substr(0, dash), lb::kMinSnatPort, 65535, "port");
            if (!lo) return fail(describe(o), lo.error());
            auto hi = parse_number(std::string_view(o.value).substr(dash + 1), lb::kMinSnatPort, 65535, "port");
            if (!hi) return fail(describe(o), hi.error());
            if (*lo > *hi) return fail(describe(o), "MIN is above MAX");
            cfg_.snat_port_min = static_cast<uint16_t>(*lo);
            cfg_.snat_port_max = static_cast<uint16_t>(*hi);
        } else if (o.name == "client-port" || o.name == "backend-port") {
            auto p = parse_number(o.value, 0, lb::kMaxPortId, "port id");
            if (!p) return fail(describe(o), p.error());
            (o.name == "client-port" ? cfg_.client_port : cfg_.backend_port) = static_cast<int>(*p);
        } else if (o.name == "allow-no-vips") {
            if (o.value != "yes" && o.value != "no") return fail(describe(o), "expected yes or no");
            cfg_.allow_no_vips = o.value == "yes";
        } else if (o.name == "client-vlan" || o.name == "backend-vlan") {
            auto v = parse_number(o.value, 1, lb::kMaxVlan, "VLAN id");
            if (!v) return fail(describe(o), v.error());
            (o.name == "client-vlan" ? cfg_.client_vlan : cfg_.backend_vlan) = static_cast<uint16_t>(*v);
        } else if (o.name == "stats-json") {
            if (o.value.empty()) return fail(describe(o), "missing file name");
            cfg_.stats_json = o.value;
        } else if (o.name == "control-socket") {
            if (o.value.empty()) return fail(describe(o), "missing path ('none' for no socket)");
            cfg_.control_socket = o.value == "none" ? std::string() : o.value;
        } else if (o.name == "control-group") {
            if (o.value.empty() || o.value.size() > 32) return fail(describe(o), "expected a group name");
            cfg_.control_group = o.value;
        } else if (o.name == "sync-id") {
            auto v = parse_number(o.value, 1, 0xFFFFFFFFull, "instance id");
            if (!v) return fail(describe(o), v.error());
            cfg_.sync.id = static_cast<uint32_t>(*v);
        } else if (o.name == "sync-listen") {
            auto ep = net::parse_endpoint(o.value, {"sync address", false, 1});
            if (!ep) return fail(describe(o), ep.error());
            cfg_.sync.listen = ep->addr;
            cfg_.sync.listen_port = ep->port ? *ep->port : lb::kDefaultSyncPort;
        } else if (o.name == "sync-peer") {
            auto p = parse_sync_peer(o.value);
            if (!p) return fail(describe(o), p.error());
            cfg_.sync.peers.push_back(std::move(*p));
            origins_.sync_peers.push_back(o);
        } else if (o.name == "sync-key") {
            if (o.value.empty()) return fail(describe(o), "missing file name");
            cfg_.sync.key_file = o.value;
        } else if (o.name == "sync-min-age" || o.name == "sync-refresh") {
            if (o.name == "sync-min-age" && (o.value == "0" || o.value == "0ms" || o.value == "0s")) {
                cfg_.sync.min_age_ms = 0;
            } else {
                auto d = parse_duration_ms(o.value, o.name, o.name == "sync-min-age" ? 60'000 : 3'600'000);
                if (!d) return fail(describe(o), d.error());
                (o.name == "sync-min-age" ? cfg_.sync.min_age_ms : cfg_.sync.refresh_ms) = *d;
            }
        } else if (o.name == "sync-rate") {
            auto v = parse_number(o.value, 100, 10'000'000, "entries per second");
            if (!v) return fail(describe(o), v.error());
            cfg_.sync.rate = static_cast<uint32_t>(*v);
        } else if (o.name == "kernel-if") {
            // Linux interface names are at most 15 characters; the port number takes one or two.
            if (o.value.empty() || o.value.size() > 13 ||
                !std::all_of(o.value.begin(), o.value.end(), [](char ch) {
                    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                           ch == '-' || ch == '_';
                }))
                return fail(describe(o), "bad interface name (1..13 letters, digits, '-', '_')");
            cfg_.kernel_if = o.value;
        } else {
            Status st = fail(describe(o), "unhandled option");  // a kOptions entry without a case
            for_each_number(cfg_, [&](std::string_view name, uint32_t& field, uint64_t lo, uint64_t hi,
                                      uint64_t scale) {
                if (name != o.name) return;
                auto v = parse_number(o.value, lo, hi, "value");
                st = v ? Status{} : fail(describe(o), v.error());
                if (v) field = static_cast<uint32_t>(*v * scale);
            });
            return st;
        }
        return {};
    }

    void allow_no_vips() { cfg_.allow_no_vips = true; }

    // Attaches the backends to their VIPs (which may come later, or from the other source),
    // then validates.
    Expected<Config> finish() {
        std::unordered_map<std::string, size_t> by_name;
        for (size_t i = 0; i < cfg_.vips.size(); ++i) by_name.emplace(cfg_.vips[i].name, i);
        for (auto& p : pending_) {
            auto it = by_name.find(p.vip);
            if (it == by_name.end()) return fail(describe(p.opt), fmt::format("unknown VIP '{}'", clip(p.vip)));
            cfg_.vips[it->second].backends.push_back(p.conf);
            origins_.backends[it->second].push_back(std::move(p.opt));
        }
        pending_.clear();
        // Unset, the refresh period follows the timeouts the rule measures it against, so that
        // shortening --timeout-udp does not make an option nobody gave wrong.
        if (!origins_.scalars.count("sync-refresh"))
            cfg_.sync.refresh_ms =
                std::min<uint32_t>(60'000, std::min(cfg_.timeouts.tcp_established_ms, cfg_.timeouts.udp_ms) / 2);
        if (auto s = check(cfg_, &origins_); !s) return make_error(s.error());
        return std::move(cfg_);
    }

private:
    struct PendingBackend {
        RawOpt opt;
        std::string vip;
        BackendConf conf;
    };

    Config cfg_;
    Origins origins_;
    std::vector<PendingBackend> pending_;
    std::set<std::string, std::less<>> seen_;
};

// ---- tokenizing with Boost.Program_options -------------------------------------------------

po::options_description description() {
    po::options_description d;
    for (const auto& s : kOptions) {
        std::string name = s.name;
        if (name == "help") name += ",h";
        if (s.kind == Kind::flag)
            d.add_options()(name.c_str(), s.help);
        else
            d.add_options()(name.c_str(), po::value<std::string>(), s.help);  // lists: we merge ourselves
    }
    return d;
}

// EAL's options, which belong before `--`: given among Sluice's they are refused with where
// they go rather than as unknown (DPDK 22.11's EAL usage; Sluice itself takes only -h short).
constexpr std::string_view kEalOptions[] = {
    "-c", "-l", "--lcores", "-s", "-S", "--main-lcore", "-n", "-m", "-r", "-b", "--block", "-a", "--allow",
    "--vdev", "--iova-mode", "-d", "--proc-type", "--syslog", "--log-level", "--trace", "--trace-dir",
    "--trace-bufsz", "--trace-mode", "-v", "--in-memory", "--base-virtaddr", "--telemetry", "--no-telemetry",
    "--force-max-simd-bitwidth", "--huge-unlink", "--no-huge", "--no-pci", "--no-hpet", "--no-shconf",
    "--socket-mem", "--socket-limit", "--huge-dir", "--file-prefix", "--create-uio-dev", "--vfio-intr",
    "--vfio-vf-token", "--legacy-mem", "--single-file-segments", "--match-allocations", "--huge-worker-stack",
};

Expected<std::vector<RawOpt>> tokenize_args(const std::vector<std::string>& args) {
    for (const auto& a : args) {
        const std::string_view name = std::string_view(a).substr(0, a.find('='));
        if (std::find(std::begin(kEalOptions), std::end(kEalOptions), name) != std::end(kEalOptions))
            return make_error(fmt::format("'{}' is an EAL option: give it before `--` (sluice [EAL options] -- "
                                          "[options], e.g. sluice -l 0-2 {} -- --config FILE)",
                                          clip(a), clip(a)));
    }
    namespace style = po::command_line_style;
    // No abbreviations (`--vi` is not `--vip`) and no sticky short options.
    constexpr int kStyle = style::allow_long | style::long_allow_adjacent | style::long_allow_next |
                           style::allow_short | style::short_allow_next | style::allow_dash_for_short;
    po::parsed_options parsed(nullptr);
    try {
        parsed = po::command_line_parser(args).options(description()).style(kStyle).run();
    } catch (const std::exception& e) {
        return make_error(clip(e.what(), 300));
    }
    std::vector<RawOpt> out;
    for (const auto& o : parsed.options) {
        std::string value = o.value.empty() ? std::string() : o.value.front();
        if (o.string_key.empty()) return make_error(fmt::format("unexpected argument '{}'", clip(value)));
        // Boost takes the next argument as the value even when it is an option itself.
        if (o.original_tokens.size() > 1 && value.rfind("--", 0) == 0)
            return make_error(fmt::format("--{}: missing value (found option '{}')", o.string_key, clip(value)));
        out.push_back({o.string_key, std::move(value), {}});
    }
    return out;
}

// Boost reports neither line numbers nor which option a config-file error is about, so a
// first pass over the lines finds the syntax errors itself and records the line of each
// option (Boost yields options in line order: one per `name = value` line).
Expected<std::vector<RawOpt>> tokenize_file(std::string_view text, std::string_view source) {
    std::vector<int> lines;
    int lineno = 0;
    for (auto raw : split(text, '\n')) {
        ++lineno;
        auto line = trim(raw.substr(0, raw.find('#')));
        if (line.empty()) continue;
        auto where = fmt::format("{}:{}", source, lineno);
        if (line.front() == '[' && line.back() == ']')
            return make_error(fmt::format("{}: sections are not supported: '{}'", where, clip(line)));
        auto eq = line.find('=');
        if (eq == std::string_view::npos)
            return make_error(fmt::format("{}: expected `name = value`, got '{}'", where, clip(line)));
        auto name = trim(line.substr(0, eq));
        const OptSpec* spec = find_spec(name);
        if (spec == nullptr) return make_error(fmt::format("{}: unknown option '{}'", where, clip(name)));
        if (spec->cli_only)
            return make_error(fmt::format("{}: '{}' is accepted only on the command line", where, clip(name)));
        lines.push_back(lineno);
    }

    po::parsed_options parsed(nullptr);
    try {
        std::istringstream in{std::string(text)};
        parsed = po::parse_config_file(in, description());
    } catch (const std::exception& e) {
        return make_error(fmt::format("{}: {}", source, clip(e.what(), 300)));
    }
    bool lines_match = parsed.options.size() == lines.size();
    std::vector<RawOpt> out;
    for (size_t i = 0; i < parsed.options.size(); ++i) {
        const auto& o = parsed.options[i];
        auto where = lines_match ? fmt::format("{}:{}", source, lines[i]) : std::string(source);
        out.push_back({o.string_key, o.value.empty() ? std::string() : o.value.front(), std::move(where)});
    }
    return out;
}

Expected<std::string> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return make_error(fmt::format("--config '{}': cannot open: {}", clip(path), std::strerror(errno)));
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (err != 0) return make_error(fmt::format("--config '{}': cannot read: {}", clip(path), std::strerror(err)));
    return text;
}

std::string plural(size_t n, std::string_view one, std::string_view many) {
    return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string summary(const Config& c, const std::string& config_path) {
    size_t backends = 0, drained = 0, v4 = 0;
    uint64_t maglev_bytes = 0;  // auto sizes grow with the backends: say what they cost
    size_t modes[3] = {0, 0, 0};
    for (const auto& v : c.vips) {
        backends += v.backends.size();
        maglev_bytes += uint64_t{lb::maglev_table_size(v)} * sizeof(uint16_t);
        for (const auto& b : v.backends) drained += b.weight == 0;
        v4 += v.addr.is_v4();
        ++modes[static_cast<size_t>(v.mode)];
    }
    std::string mode_list;
    for (auto m : {lb::Mode::dsr, lb::Mode::nat, lb::Mode::fullnat}) {
        if (modes[static_cast<size_t>(m)] == 0) continue;
        mode_list += fmt::format("{}{} {}", mode_list.empty() ? "" : ", ", modes[static_cast<size_t>(m)],
                                 lb::to_string(m));
    }
    std::string vips = plural(c.vips.size(), "VIP", "VIPs");
    if (!c.vips.empty()) vips += fmt::format(" ({} IPv4, {} IPv6; {})", v4, c.vips.size() - v4, mode_list);
    return fmt::format(
        "configuration OK ({}): {}, {}{}, {} KiB of Maglev tables, {}, {}, {}; {} flows per worker and family, "
        "burst {}, {} RX and {} TX descriptors.\n",
        config_path.empty() ? "command line" : config_path, vips, plural(backends, "backend", "backends"),
        drained ? fmt::format(" ({} drained)", drained) : "", (maglev_bytes + 1023) / 1024,
        plural(c.snat_addrs.size(), "SNAT address", "SNAT addresses"),
        plural(c.self_addrs.size(), "self address", "self addresses"),
        plural(c.neighbors.size(), "neighbor", "neighbors"),
        c.flow_capacity, c.burst, c.rxd, c.txd) +
           (c.sync.id ? fmt::format("replication: instance {} on {}, {}; sessions sent after {} ms, at most {} entries/s, "
                                    "refreshed every {} ms.\n",
                                    c.sync.id, net::to_string(c.sync.listen, c.sync.listen_port),
                                    plural(c.sync.peers.size(), "peer", "peers"), c.sync.min_age_ms, c.sync.rate,
                                    c.sync.refresh_ms)
                      : std::string());
}

}  // namespace
}  // namespace detail

using namespace detail;

Expected<Parsed> parse_args(const std::vector<std::string>& args) {
    try {
        auto cli = tokenize_args(args);
        if (!cli) return Error{cli.error()};

        Parsed p;
        bool help = false, version = false, check = false, doctor = false, have_config = false;
        for (const auto& o : *cli) {
            if (o.name == "help") help = true;
            if (o.name == "version") version = true;
            if (o.name == "check-config") check = true;
            if (o.name == "doctor") doctor = true;
            if (o.name == "config") {
                if (have_config) return fail(describe(o), "given more than once");
                if (o.value.empty()) return fail(describe(o), "missing file name");
                have_config = true;
                p.config_path = o.value;
            }
        }
        if (help) {
            p.action = Action::help;
            p.text = usage();
            return p;
        }
        if (version) {
            p.action = Action::version;
            p.text = "sluice " SLUICE_VERSION "\n";
            return p;
        }

        Builder b;
        if (have_config) {
            auto text = read_file(p.config_path);
            if (!text) return Error{text.error()};
            auto file = tokenize_file(*text, p.config_path);
            if (!file) return Error{file.error()};
            b.begin_source();
            for (const auto& o : *file)
                if (auto s = b.apply(o); !s) return make_error(s.error());
        }
        b.begin_source();
        for (const auto& o : *cli) {
            if (find_spec(o.name)->cli_only) continue;
            if (auto s = b.apply(o); !s) return make_error(s.error());
        }
        if (doctor) b.allow_no_vips();  // the host is judged, VIPs or not
        auto cfg = b.finish();
        if (!cfg) return Error{cfg.error()};
        p.config = std::move(*cfg);
        if (doctor) p.action = Action::doctor;
        if (check) {
            p.action = Action::check_config;
            p.text = summary(p.config, p.config_path);
        }
        return p;
    } catch (const std::exception& e) {
        return make_error(fmt::format("cannot parse options: {}", e.what()));
    }
}

Expected<lb::Config> parse_config_text(std::string_view text, std::string_view source_name) {
    try {
        auto file = tokenize_file(text, source_name);
        if (!file) return Error{file.error()};
        Builder b;
        b.begin_source();
        for (const auto& o : *file)
            if (auto s = b.apply(o); !s) return make_error(s.error());
        return b.finish();
    } catch (const std::exception& e) {
        return make_error(fmt::format("{}: cannot parse: {}", source_name, e.what()));
    }
}

Status validate(const lb::Config& c) {
    try {
        return detail::check(c, nullptr);
    } catch (const std::exception& e) {
        return make_error(fmt::format("cannot validate: {}", e.what()));
    }
}

std::string usage() {
    constexpr size_t kColumn = 34;  // where descriptions start
    std::string out =
        "Usage: sluice [EAL options] -- [options]\n"
        "\n"
        "Sluice, an L4 load balancer on DPDK. Its options follow EAL's `--`. A --config file\n"
        "takes the same names as `name = value` lines: `#` starts a comment, list options\n"
        "repeat, and the command line adds to its lists and overrides its other values.\n"
        "\n"
        "EAL options go before `--` and are DPDK's own: -l CORES, -a PCI, --vdev DEVICE,\n"
        "--file-prefix NAME, --no-huge -m MB, --log-level=LEVEL (also per log type:\n"
        "--log-level=sluice.control:debug for the control core's log, sluice.flowlog for\n"
        "the flow log). Given after `--`, they are refused with this reminder.\n";
    std::string_view group;
    for (const auto& s : kOptions) {
        if (group != s.group) {
            group = s.group;
            out += fmt::format("\n{}:\n", group);
        }
        std::string left = fmt::format("  --{}{}{}", s.name, s.arg ? " " : "", s.arg ? s.arg : "");
        auto lines = split(s.help, '\n');
        if (left.size() + 2 <= kColumn)
            out += fmt::format("{:<{}}{}\n", left, kColumn, lines[0]);
        else
            out += fmt::format("{}\n{:<{}}{}\n", left, "", kColumn, lines[0]);
        for (size_t i = 1; i < lines.size(); ++i) out += fmt::format("{:<{}}{}\n", "", kColumn, lines[i]);
    }
    out +=
        "\n"
        "Example (one-arm nat; the backends' gateway is Sluice's --self address):\n"
        "  sluice -l 0-2 -a 0000:03:00.0 -- --vip web,203.0.113.10:80/tcp,nat --self 198.51.100.1 \\\n"
        "      --backend web,198.51.100.11:8080,weight=2 --neighbor 198.51.100.11,02:00:00:00:00:11\n"
        "The same as a --config file:\n"
        "  vip = web,203.0.113.10:80/tcp,nat\n"
        "  self = 198.51.100.1\n"
        "  backend = web,198.51.100.11:8080,weight=2   # twice the share of weight 1\n"
        "  neighbor = 198.51.100.11,02:00:00:00:00:11\n";
    return out;
}

}  // namespace sluice::config