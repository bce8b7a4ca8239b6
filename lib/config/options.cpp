// Option parsing: Boost.Program_options tokenizes both sources, this file gives the values
// their meaning.
//
// Boost splits `--name value` / `--name=value` and `name = value` lines and rejects unknown
// names; we deliberately do not use its variables_map, because its merge rules (first store
// wins, composing lists in store order) are not ours: options are applied in order, file first,
// then the command line, lists appending and scalars overriding. Every applied option keeps its
// origin (the text the operator wrote, and `file:line`), which validate() quotes in errors.
// Thread contract: no global state; every function is reentrant.
#include "lib/config/options.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <sys/un.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/lb/service.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

namespace sluice::lb {

const char* to_string(Mode m) {
    switch (m) {
        case Mode::dsr: return "dsr";
        case Mode::nat: return "nat";
        case Mode::fullnat: return "fullnat";
    }
    return "unknown";
}

const char* to_string(Proto p) {
    switch (p) {
        case Proto::tcp: return "tcp";
        case Proto::udp: return "udp";
    }
    return "unknown";
}

const char* to_string(BackendState s) {
    switch (s) {
        case BackendState::up: return "up";
        case BackendState::down: return "down";
        case BackendState::draining: return "draining";
        case BackendState::disabled: return "disabled";
    }
    return "unknown";
}

const char* to_string(DownPolicy p) {
    switch (p) {
        case DownPolicy::reschedule: return "reschedule";
        case DownPolicy::keep: return "keep";
        case DownPolicy::drop: return "drop";
    }
    return "unknown";
}

const char* to_string(CheckConf::Kind k) {
    switch (k) {
        case CheckConf::Kind::none: return "none";
        case CheckConf::Kind::tcp: return "tcp";
        case CheckConf::Kind::http: return "http";
    }
    return "unknown";
}

}  // namespace sluice::lb

namespace sluice::config {
namespace {

namespace po = boost::program_options;
using lb::BackendConf;
using lb::Config;
using lb::VipConf;
using net::IpAddr;

// Maglev wants the table size M prime and M >> backends (NSDI'16 §3.4); 655373 is the first
// prime above ten times the default 65537, which bounds a table at 2.5 MB of 32-bit entries.
constexpr uint64_t kMaxTableSize = 655373;
constexpr size_t kMaxBackends = 65535;  // backend indices are 16-bit in the data path
constexpr size_t kMaxVipNameLen = 63;
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path);  // with its terminating NUL
constexpr size_t kMaxHttpPath = 2048;
constexpr uint64_t kMaxWeight = 65535;
constexpr int kMaxPortId = 31;
constexpr uint16_t kMaxVlan = 4094;  // 802.1Q: 0 and 4095 are reserved
constexpr uint64_t kMinSnatPort = 1024;  // below are well-known ports the kernel side may use

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
     "a virtual service; PROTO tcp|udp, MODE dsr|nat|fullnat;\n"
     "IPv6 in brackets: web6,[2001:db8::10]:443/tcp,fullnat;\n"
     "table=PRIME  Maglev table size, <= 655373 (default 65537)\n"
     "on-down=reschedule|keep|drop  flows of a down backend\n"
     "  (default reschedule: they move on their next packet)\n"
     "check=none|tcp|http  active health check (default none)\n"
     "inter=DUR rise=N fall=N timeout=DUR  HAProxy's meaning;\n"
     "  defaults 2s, 2, 3, timeout = inter; DUR: 500ms, 2s, 1m\n"
     "http-path=/PATH http-status=CODE http-body=TEXT  for\n"
     "  check=http (defaults /, 200, any body)\n"
     "passive=N  mark a backend down after N failed TCP\n"
     "  handshakes per inter (judged every second, scaled;\n"
     "  default 0: off); only active checks bring it back"},
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

// The plain numeric options: name, field, bounds in the unit the operator writes, and the
// factor to the stored unit. One table for the parser and validate().
template <typename C, typename F>
void for_each_number(C& c, F&& f) {
    f("timeout-tcp-syn", c.timeouts.tcp_syn_ms, 1, 86400, 1000);
    f("timeout-tcp-established", c.timeouts.tcp_established_ms, 1, 86400, 1000);
    f("timeout-tcp-closing", c.timeouts.tcp_closing_ms, 1, 86400, 1000);
    f("timeout-tcp-half-closed", c.timeouts.tcp_half_closed_ms, 1, 86400, 1000);
    f("timeout-udp", c.timeouts.udp_ms, 1, 86400, 1000);
    f("timeout-unconfirmed", c.timeouts.unconfirmed_ms, 1, 86400, 1000);
    f("flow-capacity", c.flow_capacity, 1024, 67108864, 1);
    f("burst", c.burst, 1, 512, 1);
    f("rxd", c.rxd, 64, 16384, 1);
    f("txd", c.txd, 64, 16384, 1);
    f("total-num-mbufs", c.total_num_mbufs, 0, UINT32_MAX, 1);
    f("mbcache", c.mbcache, 0, 512, 1);  // RTE_MEMPOOL_CACHE_MAX_SIZE
    f("stats-period", c.stats_period_s, 0, 86400, 1);
    f("new-flow-rate", c.new_flow_rate, 0, 100'000'000, 1);
    f("flow-log", c.flow_log_one_in, 0, 1'000'000, 1);
    f("flow-log-rate", c.flow_log_rate, 1, 100'000, 1);
}

// One option occurrence, as written.
struct RawOpt {
    std::string name;
    std::string value;
    std::string where;  // "file:line" for a config-file value, empty for the command line
};

std::string describe(const RawOpt& o) {
    std::string s = o.where.empty() ? std::string() : o.where + ": ";
    return s + fmt::format("--{} '{}'", clip(o.name), clip(o.value));
}

Error fail(const std::string& label, std::string_view what) {
    return make_error(fmt::format("{}: {}", label, what));
}

// Where each element of a parsed Config came from, parallel to its vectors.
struct Origins {
    std::vector<RawOpt> vips;
    std::vector<std::vector<RawOpt>> backends;  // [vip][backend]
    std::vector<RawOpt> snat;
    std::vector<RawOpt> self;
    std::vector<RawOpt> neighbors;
    std::map<std::string, RawOpt, std::less<>> scalars;
};

// ---- value syntax --------------------------------------------------------------------------

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        auto pos = s.find(sep);
        out.push_back(s.substr(0, pos));
        if (pos == std::string_view::npos) return out;
        s.remove_prefix(pos + 1);
    }
}

std::string_view trim(std::string_view s) {
    constexpr std::string_view kSpace = " \t\r\n";
    auto b = s.find_first_not_of(kSpace);
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

// Strict unsigned decimal: digits only (no sign, spaces or 0x), within [lo, hi].
Expected<uint64_t> parse_number(std::string_view s, uint64_t lo, uint64_t hi, std::string_view what) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return make_error(fmt::format("bad {} '{}' (expected a decimal number)", clip(what), clip(s)));
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range || v < lo || v > hi || end != s.data() + s.size())
        return make_error(fmt::format("{} out of range ({}..{})", what, lo, hi));
    return v;
}

// "192.0.2.1", "2001:db8::1" or "[2001:db8::1]".
Expected<IpAddr> parse_addr(std::string_view s) {
    std::string_view inner = s;
    bool bracketed = s.size() >= 2 && s.front() == '[' && s.back() == ']';
    if (bracketed) inner = s.substr(1, s.size() - 2);
    auto a = net::parse_ip(inner);
    if (!a || (bracketed && a->is_v4())) return make_error(fmt::format("bad address '{}'", clip(s)));
    return *a;
}

struct Endpoint {
    IpAddr addr;
    std::optional<uint16_t> port;
};

// "ADDR[:PORT]" with IPv6 in brackets: "192.0.2.1:80", "[2001:db8::1]:80", "[2001:db8::1]".
Expected<Endpoint> parse_endpoint(std::string_view s) {
    std::string_view host, port_text;
    bool has_port = false;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos) return make_error(fmt::format("bad address '{}': no ']'", clip(s)));
        host = s.substr(1, close - 1);
        auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return make_error(fmt::format("bad address '{}'", clip(s)));
            port_text = rest.substr(1);
            has_port = true;
        }
        auto a = net::parse_ip(host);
        if (!a || a->is_v4()) return make_error(fmt::format("bad IPv6 address '{}'", clip(host)));
    } else {
        auto colon = s.find(':');
        if (colon != std::string_view::npos && s.find(':', colon + 1) != std::string_view::npos)
            return make_error(
                fmt::format("bad address '{}': an IPv6 address takes brackets, e.g. [2001:db8::1]:80", clip(s)));
        host = s.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = s.substr(colon + 1);
            has_port = true;
        }
    }
    auto a = net::parse_ip(host);
    if (!a) return make_error(fmt::format("bad address '{}'", clip(host)));
    Endpoint ep{*a, std::nullopt};
    if (has_port) {
        auto p = parse_number(port_text, 0, 65535, "port");
        if (!p) return Error{p.error()};
        ep.port = static_cast<uint16_t>(*p);
    }
    return ep;
}

// "500ms", "2s", "1m", or a plain number of milliseconds (HAProxy's default unit).
Expected<uint32_t> parse_duration_ms(std::string_view s, std::string_view what) {
    uint64_t scale = 1;
    if (s.ends_with("ms")) s.remove_suffix(2);
    else if (s.ends_with("s")) { s.remove_suffix(1); scale = 1000; }
    else if (s.ends_with("m")) { s.remove_suffix(1); scale = 60'000; }
    auto n = parse_number(s, 1, 3'600'000, what);
    if (!n) return Error{n.error()};
    if (*n * scale > 3'600'000) return make_error(fmt::format("{} above one hour", what));
    return static_cast<uint32_t>(*n * scale);
}

Status apply_vip_field(VipConf& v, std::string_view key, std::string_view val) {
    auto& c = v.check;
    auto number = [&](uint32_t& field, uint64_t lo, uint64_t hi) -> Status {
        auto n = parse_number(val, lo, hi, key);
        if (!n) return make_error(n.error());
        field = static_cast<uint32_t>(*n);
        return {};
    };
    auto duration = [&](uint32_t& field) -> Status {
        auto d = parse_duration_ms(val, key);
        if (!d) return make_error(d.error());
        field = *d;
        return {};
    };
    if (key == "table") return number(v.table_size, 1, kMaxTableSize);
    if (key == "on-down") {
        if (val == "reschedule") v.on_down = lb::DownPolicy::reschedule;
        else if (val == "keep") v.on_down = lb::DownPolicy::keep;
        else if (val == "drop") v.on_down = lb::DownPolicy::drop;
        else return make_error(fmt::format("bad on-down '{}' (reschedule, keep or drop)", clip(val)));
        return {};
    }
    if (key == "check") {
        if (val == "none") c.kind = lb::CheckConf::Kind::none;
        else if (val == "tcp") c.kind = lb::CheckConf::Kind::tcp;
        else if (val == "http") c.kind = lb::CheckConf::Kind::http;
        else return make_error(fmt::format("bad check '{}' (none, tcp or http)", clip(val)));
        return {};
    }
    if (key == "inter") return duration(c.inter_ms);
    if (key == "timeout") return duration(c.timeout_ms);
    if (key == "rise") return number(c.rise, 1, 100);
    if (key == "fall") return number(c.fall, 1, 100);
    if (key == "passive") return number(v.passive_failures, 0, 1'000'000);
    if (key == "http-status") {
        uint32_t code = 0;
        if (auto st = number(code, 100, 599); !st) return st;
        c.http_status = static_cast<int>(code);
        return {};
    }
    if (key == "http-path" || key == "http-body") {
        // Sent in a request line or matched as is: printable ASCII, no spaces.
        if (val.empty() || !std::all_of(val.begin(), val.end(), [](char ch) { return ch > 32 && ch < 127; }))
            return make_error(fmt::format("bad {} '{}' (printable characters, no spaces or commas)", clip(key), clip(val)));
        if (key == "http-path" && val.front() != '/')
            return make_error(fmt::format("bad http-path '{}' (starts with /)", clip(val)));
        (key == "http-path" ? c.http_path : c.http_body) = std::string(val);
        return {};
    }
    return make_error(fmt::format("unknown field '{}={}' (table, on-down, check, inter, timeout, rise, fall, "
                                  "passive, http-path, http-status, http-body)",
                                  key, val));
}

Expected<VipConf> parse_vip(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() < 3) return make_error("expected NAME,ADDR:PORT/PROTO,MODE[,KEY=VALUE...]");
    VipConf v;
    v.name = std::string(f[0]);

    auto slash = f[1].rfind('/');
    if (slash == std::string_view::npos)
        return make_error(fmt::format("'{}' lacks /PROTO (e.g. 203.0.113.10:80/tcp)", clip(f[1])));
    auto proto = f[1].substr(slash + 1);
    if (proto == "tcp")
        v.proto = lb::Proto::tcp;
    else if (proto == "udp")
        v.proto = lb::Proto::udp;
    else
        return make_error(fmt::format("bad protocol '{}' (tcp or udp)", clip(proto)));
    auto ep = parse_endpoint(f[1].substr(0, slash));
    if (!ep) return Error{ep.error()};
    if (!ep->port) return make_error(fmt::format("'{}' lacks a port (ADDR:PORT/PROTO)", clip(f[1])));
    v.addr = ep->addr;
    v.port = *ep->port;

    if (f[2] == "dsr")
        v.mode = lb::Mode::dsr;
    else if (f[2] == "nat")
        v.mode = lb::Mode::nat;
    else if (f[2] == "fullnat")
        v.mode = lb::Mode::fullnat;
    else
        return make_error(fmt::format("bad mode '{}' (dsr, nat or fullnat)", clip(f[2])));

    std::set<std::string_view> given;
    for (size_t i = 3; i < f.size(); ++i) {
        auto eq = f[i].find('=');
        if (eq == std::string_view::npos) return make_error(fmt::format("'{}': expected KEY=VALUE", clip(f[i])));
        auto key = f[i].substr(0, eq), val = f[i].substr(eq + 1);
        if (!given.insert(key).second) return make_error(fmt::format("{} given twice", key));
        if (auto st = apply_vip_field(v, key, val); !st) return Error{st.error()};
    }
    if (v.check.kind != lb::CheckConf::Kind::http)
        for (auto key : {"http-path", "http-status", "http-body"})
            if (given.count(key)) return make_error(fmt::format("{} needs check=http", key));
    return v;
}

Expected<std::pair<std::string, BackendConf>> parse_backend(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() < 2) return make_error("expected VIP,ADDR[:PORT][,weight=N]");
    if (f[0].empty()) return make_error("missing VIP name");
    auto ep = parse_endpoint(f[1]);
    if (!ep) return Error{ep.error()};
    BackendConf b;
    b.addr = ep->addr;
    b.port = ep->port.value_or(0);
    std::set<std::string_view> given;
    for (size_t i = 2; i < f.size(); ++i) {
        auto eq = f[i].find('=');
        auto key = f[i].substr(0, eq);
        auto val = eq == std::string_view::npos ? std::string_view() : f[i].substr(eq + 1);
        if (eq == std::string_view::npos || (key != "weight" && key != "state"))
            return make_error(fmt::format("unknown field '{}' (expected weight=N or state=S)", clip(f[i])));
        if (!given.insert(key).second) return make_error(fmt::format("{} given twice", key));
        if (key == "weight") {
            auto w = parse_number(val, 0, kMaxWeight, "weight");
            if (!w) return Error{w.error()};
            b.weight = static_cast<uint32_t>(*w);
        } else if (val == "up") {
            b.state = lb::BackendState::up;
        } else if (val == "draining") {
            b.state = lb::BackendState::draining;
        } else if (val == "disabled") {
            b.state = lb::BackendState::disabled;
        } else {
            return make_error(fmt::format("bad state '{}' (up, draining or disabled)", clip(val)));
        }
    }
    return std::pair{std::string(f[0]), b};
}

Expected<lb::NeighborConf> parse_neighbor(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() != 2) return make_error("expected ADDR,MAC");
    auto a = parse_addr(f[0]);
    if (!a) return Error{a.error()};
    auto mac = net::parse_mac(f[1]);
    if (!mac) return make_error(fmt::format("bad MAC '{}' (expected 02:00:00:00:00:01)", clip(f[1])));
    return lb::NeighborConf{*a, *mac};
}

// ---- semantic checks -----------------------------------------------------------------------

const char* not_unicast(const IpAddr& a) {
    auto all_zero = std::all_of(a.bytes.begin(), a.bytes.end(), [](uint8_t b) { return b == 0; });
    if (all_zero) return "the unspecified address";
    if (a.is_v4()) {
        if (a.bytes[0] >= 224 && a.bytes[0] <= 239) return "multicast";
        if (a.bytes[0] == 255 && a.bytes[1] == 255 && a.bytes[2] == 255 && a.bytes[3] == 255) return "broadcast";
        return nullptr;
    }
    return a.bytes[0] == 0xff ? "multicast" : nullptr;
}

// Addresses no packet on the wire can carry: loopback, "this network" 0/8, the reserved
// 240/4, IPv4-mapped IPv6. (A backend on loopback is let through: tests probe local servers.)
const char* not_routable(const IpAddr& a, bool loopback_ok = false) {
    if (a.is_v4()) {
        if (a.bytes[0] == 127 && !loopback_ok) return "loopback";
        if (a.bytes[0] == 0) return "in 0.0.0.0/8 (this network)";
        if (a.bytes[0] >= 240) return "reserved (240.0.0.0/4)";
        return nullptr;
    }
    static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kLoopback, 16) == 0 && !loopback_ok) return "loopback";
    if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) return "IPv4-mapped (give the IPv4 address itself)";
    return nullptr;
}

bool is_prime(uint64_t n) {
    if (n < 2) return false;
    for (uint64_t d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

bool valid_vip_name(std::string_view n) {
    if (n.empty() || n.size() > kMaxVipNameLen) return false;
    return std::all_of(n.begin(), n.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
               ch == '_' || ch == '.';
    });
}

const char* family_name(net::Family f) { return f == net::Family::v4 ? "IPv4" : "IPv6"; }

std::string bracketed(const IpAddr& a) { return a.is_v4() ? net::to_string(a) : "[" + net::to_string(a) + "]"; }

// Canonical renderings, for messages about a Config that was not parsed from text.
std::string render_vip(const VipConf& v) {
    std::string s = fmt::format("{},{}/{},{}", v.name, net::to_string(v.addr, v.port), lb::to_string(v.proto),
                                lb::to_string(v.mode));
    if (v.table_size != VipConf{}.table_size) s += fmt::format(",table={}", v.table_size);
    return s;
}

std::string render_backend(const VipConf& v, const BackendConf& b) {
    std::string s = v.name + "," + (b.port ? net::to_string(b.addr, b.port) : bracketed(b.addr));
    if (b.weight != BackendConf{}.weight) s += fmt::format(",weight={}", b.weight);
    return s;
}

class Validator {
public:
    Validator(const Config& c, const Origins* o) : c_(c), o_(o) {}

    Status run() {
        if (auto s = check_numbers(); !s) return s;
        if (auto s = check_addrs("snat", c_.snat_addrs, o_ ? &o_->snat : nullptr); !s) return s;
        // Flow records hold a 7-bit index into each family's SNAT addresses.
        for (auto fam : {net::Family::v4, net::Family::v6})
            if (std::count_if(c_.snat_addrs.begin(), c_.snat_addrs.end(),
                              [&](const IpAddr& a) { return a.family == fam; }) > 127)
                return make_error(fmt::format("--snat: more than 127 {} addresses", family_name(fam)));
        if (auto s = check_addrs("self", c_.self_addrs, o_ ? &o_->self : nullptr); !s) return s;
        // The kernel side's ephemeral ports (probes) would collide with fullnat's SNAT ports.
        for (size_t i = 0; i < c_.self_addrs.size(); ++i)
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), c_.self_addrs[i]) != c_.snat_addrs.end())
                return fail(o_ ? describe(o_->self[i]) : fmt::format("--self '{}'", net::to_string(c_.self_addrs[i])),
                            "also a --snat address; give Sluice's own address and its SNAT addresses apart");
        if (auto s = check_neighbors(); !s) return s;
        if (c_.vips.empty() && !c_.allow_no_vips)
            return make_error("no VIP configured: Sluice would forward nothing (an empty or comment-only file?); "
                              "give a --vip, or --allow-no-vips yes to run without one");
        if (c_.vips.size() > lb::kMaxVipSlots)
            return make_error(fmt::format("--vip: {} VIPs, at most {} are supported", c_.vips.size(), lb::kMaxVipSlots));
        if (auto s = check_own_addresses(); !s) return s;
        if (c_.control_socket.size() >= kMaxSocketPath)
            return fail(scalar("control-socket", c_.control_socket),
                        fmt::format("the path is {} bytes; a Unix socket path holds at most {}", c_.control_socket.size(),
                                    kMaxSocketPath - 1));
        // One RX ring of one queue must fit in the pool, whatever the ports and workers.
        if (c_.total_num_mbufs && c_.total_num_mbufs < c_.rxd + c_.txd)
            return fail(scalar("total-num-mbufs", std::to_string(c_.total_num_mbufs)),
                        fmt::format("cannot fill even one RX and one TX ring ({} + {} descriptors); leave it out to "
                                    "have it sized, or see `sluice doctor`",
                                    c_.rxd, c_.txd));
        return check_vips();
    }

private:
    std::string scalar(std::string_view name, const std::string& canonical) const {
        if (o_)
            if (auto it = o_->scalars.find(name); it != o_->scalars.end()) return describe(it->second);
        return fmt::format("--{} '{}'", name, canonical);
    }
    std::string vip(size_t i) const {
        return o_ ? describe(o_->vips[i]) : fmt::format("--vip '{}'", render_vip(c_.vips[i]));
    }
    std::string backend(size_t i, size_t j) const {
        const auto& v = c_.vips[i];
        return o_ ? describe(o_->backends[i][j]) : fmt::format("--backend '{}'", render_backend(v, v.backends[j]));
    }

    Status check_numbers() const {
        Status st;
        for_each_number(c_, [&](std::string_view name, const uint32_t& field, uint64_t lo, uint64_t hi,
                                uint64_t scale) {
            if (!st || (field >= lo && field <= hi * scale)) return;
            auto shown = field % scale == 0 ? fmt::format("{}", field / scale) : fmt::format("{} ms", field);
            st = fail(scalar(name, shown), fmt::format("value out of range ({}..{})", lo, hi));
        });
        if (!st) return st;
        const std::pair<const char*, int> ports[] = {{"client-port", c_.client_port},
                                                      {"backend-port", c_.backend_port}};
        for (auto [name, port] : ports)
            if (port < -1 || port > kMaxPortId)  // -1: chosen at start-up
                return fail(scalar(name, std::to_string(port)),
                            fmt::format("port id out of range (0..{})", kMaxPortId));
        const std::pair<const char*, uint16_t> vlans[] = {{"client-vlan", c_.client_vlan},
                                                           {"backend-vlan", c_.backend_vlan}};
        for (auto [name, vlan] : vlans)
            if (vlan > kMaxVlan)  // 0: untagged
                return fail(scalar(name, std::to_string(vlan)), fmt::format("VLAN id out of range (1..{})", kMaxVlan));
        if (c_.snat_port_min < kMinSnatPort || c_.snat_port_min > c_.snat_port_max)
            return fail(scalar("snat-ports", fmt::format("{}-{}", c_.snat_port_min, c_.snat_port_max)),
                        fmt::format("need {} <= MIN <= MAX <= 65535", kMinSnatPort));
        return {};
    }

    Status check_addrs(const char* option, const std::vector<IpAddr>& addrs, const std::vector<RawOpt>* origins) const {
        std::unordered_set<IpAddr> seen;
        for (size_t i = 0; i < addrs.size(); ++i) {
            auto label = origins ? describe((*origins)[i]) : fmt::format("--{} '{}'", option, net::to_string(addrs[i]));
            if (auto why = not_unicast(addrs[i])) return fail(label, fmt::format("address is {}, not unicast", why));
            if (!seen.insert(addrs[i]).second) return fail(label, "duplicate address");
        }
        return {};
    }

    Status check_neighbors() {
        for (size_t i = 0; i < c_.neighbors.size(); ++i) {
            const auto& n = c_.neighbors[i];
            auto label = o_ ? describe(o_->neighbors[i])
                            : fmt::format("--neighbor '{},{}'", net::to_string(n.addr), net::to_string(n.mac));
            if (auto why = not_unicast(n.addr)) return fail(label, fmt::format("address is {}, not unicast", why));
            if (n.mac == net::Mac{}) return fail(label, "MAC is zero");
            if (n.mac.bytes[0] & 0x01) return fail(label, "MAC is multicast/broadcast");
            if (!neighbors_.insert(n.addr).second) return fail(label, "duplicate neighbor address");
        }
        return {};
    }

    // Sluice's own addresses (SNAT, self) and the VIPs must be told apart: a reply to a SNAT
    // address that is also a VIP would be balanced again, and the kernel side owns self.
    Status check_own_addresses() const {
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& a = c_.vips[i].addr;
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), a) != c_.snat_addrs.end())
                return fail(vip(i), fmt::format("the VIP address {} is also a SNAT address (--snat): replies to "
                                                "fullnat flows would be taken for new client traffic; give them apart",
                                                net::to_string(a)));
            if (std::find(c_.self_addrs.begin(), c_.self_addrs.end(), a) != c_.self_addrs.end())
                return fail(vip(i), fmt::format("the VIP address {} is also a --self address (Sluice's kernel side): "
                                                "give them apart",
                                                net::to_string(a)));
        }
        return {};
    }

    Status check_vips() {
        for (const auto& v : c_.vips) vip_addrs_.insert(v.addr);
        size_t total = 0;
        for (const auto& v : c_.vips) total += v.backends.size();
        if (total > kMaxBackends)
            return make_error(fmt::format("--backend: {} backends, at most {} are supported", total, kMaxBackends));

        bool snat_family[2] = {false, false};
        for (const auto& a : c_.snat_addrs) snat_family[a.is_v4() ? 0 : 1] = true;

        std::unordered_map<std::string, size_t> names;
        std::map<std::tuple<IpAddr, uint16_t, lb::Proto>, size_t> services;
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& v = c_.vips[i];
            if (!valid_vip_name(v.name))
                return fail(vip(i), fmt::format("bad VIP name '{}' (1..{} letters, digits, '-', '_', '.')", clip(v.name),
                                                kMaxVipNameLen));
            if (auto [it, fresh] = names.emplace(v.name, i); !fresh)
                return fail(vip(i), fmt::format("duplicate VIP name '{}'", clip(v.name)));
            if (auto why = not_unicast(v.addr))
                return fail(vip(i), fmt::format("address {} is {}, not unicast", net::to_string(v.addr), why));
            if (v.port == 0) return fail(vip(i), "port 0 is not allowed for a VIP");
            if (v.table_size < 1 || v.table_size > kMaxTableSize)
                return fail(vip(i), fmt::format("table size out of range (1..{})", kMaxTableSize));
            if (!is_prime(v.table_size)) return fail(vip(i), fmt::format("table size {} is not prime", v.table_size));
            if (auto [it, fresh] = services.emplace(std::tuple{v.addr, v.port, v.proto}, i); !fresh)
                return fail(vip(i),
                            fmt::format("same address, port and protocol as VIP '{}'", c_.vips[it->second].name));
            if (v.backends.empty()) return fail(vip(i), fmt::format("VIP '{}' has no --backend", clip(v.name)));
            if (auto why = not_routable(v.addr))
                return fail(vip(i), fmt::format("address {} is {}: no client can reach it through Sluice",
                                                net::to_string(v.addr), why));
            if (v.table_size < v.backends.size())
                return fail(vip(i), fmt::format("table={} is smaller than its {} backends: some would never be picked "
                                                "(Maglev wants a prime of at least 100 x the backends; the default is "
                                                "65537)",
                                                v.table_size, v.backends.size()));
            if (v.check.http_body.size() > lb::kMaxProbeResponse)
                return fail(vip(i), fmt::format("http-body is {} bytes; a probe reads at most {} of the answer, so "
                                                "the check could never pass",
                                                v.check.http_body.size(), lb::kMaxProbeResponse));
            if (v.check.http_path.size() > kMaxHttpPath)
                return fail(vip(i), fmt::format("http-path is {} bytes; at most {} (HTTP servers refuse longer request "
                                                "lines)",
                                                v.check.http_path.size(), kMaxHttpPath));
            if (v.mode == lb::Mode::fullnat && !snat_family[v.addr.is_v4() ? 0 : 1])
                return fail(vip(i), fmt::format("fullnat needs a --snat address of the VIP's family ({})",
                                                family_name(v.addr.family)));
            if (auto s = check_backends(i); !s) return s;
        }
        return {};
    }

    Status check_backends(size_t i) const {
        const auto& v = c_.vips[i];
        std::set<std::pair<IpAddr, uint16_t>> seen;
        for (size_t j = 0; j < v.backends.size(); ++j) {
            const auto& b = v.backends[j];
            if (b.addr.family != v.addr.family)
                return fail(backend(i, j), fmt::format("{} backend for {} VIP '{}'", family_name(b.addr.family),
                                                       family_name(v.addr.family), v.name));
            if (auto why = not_unicast(b.addr))
                return fail(backend(i, j), fmt::format("address {} is {}, not unicast", net::to_string(b.addr), why));
            if (auto why = not_routable(b.addr, true))
                return fail(backend(i, j), fmt::format("address {} is {}: Sluice cannot send to it", net::to_string(b.addr), why));
            if (vip_addrs_.count(b.addr))
                return fail(backend(i, j), fmt::format("backend {} is a VIP address: its packets would come back to "
                                                       "Sluice and loop",
                                                       net::to_string(b.addr)));
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), b.addr) != c_.snat_addrs.end())
                return fail(backend(i, j), fmt::format("backend {} is one of Sluice's SNAT addresses (--snat)", net::to_string(b.addr)));
            if (std::find(c_.self_addrs.begin(), c_.self_addrs.end(), b.addr) != c_.self_addrs.end())
                return fail(backend(i, j), fmt::format("backend {} is one of Sluice's --self addresses", net::to_string(b.addr)));
            if (b.weight > kMaxWeight)
                return fail(backend(i, j), fmt::format("weight out of range (0..{})", kMaxWeight));
            // DSR leaves the packet's destination (VIP:port) untouched, so the backend cannot
            // listen on another port.
            if (v.mode == lb::Mode::dsr && b.port != 0 && b.port != v.port)
                return fail(backend(i, j),
                            fmt::format("dsr backend port must be the VIP port {} (or be omitted)", v.port));
            uint16_t port = b.port ? b.port : v.port;
            if (!seen.emplace(b.addr, port).second)
                return fail(backend(i, j), fmt::format("duplicate backend {} in VIP '{}'",
                                                       net::to_string(b.addr, port), v.name));
            if (!neighbors_.count(b.addr) && c_.kernel_if.empty())
                return fail(backend(i, j),
                            fmt::format("no --neighbor for {} (give one, or --kernel-if to resolve it with ARP/ND)",
                                        net::to_string(b.addr)));
        }
        return {};
    }

    const Config& c_;
    const Origins* o_;
    std::unordered_set<IpAddr> neighbors_;
    std::unordered_set<IpAddr> vip_addrs_;
};

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
        } else if (o.name == "neighbor") {
            auto n = parse_neighbor(o.value);
            if (!n) return fail(describe(o), n.error());
            cfg_.neighbors.push_back(*n);
            origins_.neighbors.push_back(o);
        } else if (o.name == "snat-ports") {
            auto dash = o.value.find('-');
            if (dash == std::string::npos) return fail(describe(o), "expected MIN-MAX");
            auto lo = parse_number(std::string_view(o.value).substr(0, dash), kMinSnatPort, 65535, "port");
            if (!lo) return fail(describe(o), lo.error());
            auto hi = parse_number(std::string_view(o.value).substr(dash + 1), kMinSnatPort, 65535, "port");
            if (!hi) return fail(describe(o), hi.error());
            if (*lo > *hi) return fail(describe(o), "MIN is above MAX");
            cfg_.snat_port_min = static_cast<uint16_t>(*lo);
            cfg_.snat_port_max = static_cast<uint16_t>(*hi);
        } else if (o.name == "client-port" || o.name == "backend-port") {
            auto p = parse_number(o.value, 0, kMaxPortId, "port id");
            if (!p) return fail(describe(o), p.error());
            (o.name == "client-port" ? cfg_.client_port : cfg_.backend_port) = static_cast<int>(*p);
        } else if (o.name == "allow-no-vips") {
            if (o.value != "yes" && o.value != "no") return fail(describe(o), "expected yes or no");
            cfg_.allow_no_vips = o.value == "yes";
        } else if (o.name == "client-vlan" || o.name == "backend-vlan") {
            auto v = parse_number(o.value, 1, kMaxVlan, "VLAN id");
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
        if (auto s = Validator(cfg_, &origins_).run(); !s) return make_error(s.error());
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

Expected<std::vector<RawOpt>> tokenize_args(const std::vector<std::string>& args) {
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
    size_t modes[3] = {0, 0, 0};
    for (const auto& v : c.vips) {
        backends += v.backends.size();
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
        "configuration OK ({}): {}, {}{}, {}, {}, {}; {} flows per worker and family, burst {}, "
        "{} RX and {} TX descriptors.\n",
        config_path.empty() ? "command line" : config_path, vips, plural(backends, "backend", "backends"),
        drained ? fmt::format(" ({} drained)", drained) : "",
        plural(c.snat_addrs.size(), "SNAT address", "SNAT addresses"),
        plural(c.self_addrs.size(), "self address", "self addresses"),
        plural(c.neighbors.size(), "neighbor", "neighbors"),
        c.flow_capacity, c.burst, c.rxd, c.txd);
}

}  // namespace

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
        return Validator(c, nullptr).run();
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
        "repeat, and the command line adds to its lists and overrides its other values.\n";
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
