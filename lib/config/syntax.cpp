// The value syntax of the options: see syntax.hpp.
#include "lib/config/syntax.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/common/decimal.hpp"
#include "lib/net/endpoint.hpp"

namespace sluice::config::detail {

using lb::BackendConf;
using lb::VipConf;
using net::IpAddr;

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

Expected<uint64_t> parse_number(std::string_view s, uint64_t lo, uint64_t hi, std::string_view what) {
    uint64_t v = 0;
    switch (parse_decimal(s, lo, hi, v)) {
        case DecimalError::none: break;
        case DecimalError::not_a_number:
            return make_error(fmt::format("bad {} '{}' (expected a decimal number)", clip(what), clip(s)));
        case DecimalError::out_of_range: return make_error(fmt::format("{} out of range ({}..{})", what, lo, hi));
    }
    return v;
}

Expected<IpAddr> parse_addr(std::string_view s) {
    std::string_view inner = s;
    bool bracketed = s.size() >= 2 && s.front() == '[' && s.back() == ']';
    if (bracketed) inner = s.substr(1, s.size() - 2);
    auto a = net::parse_ip(inner);
    if (!a || (bracketed && a->is_v4())) return make_error(fmt::format("bad address '{}'", clip(s)));
    return *a;
}

Expected<uint32_t> parse_duration_ms(std::string_view s, std::string_view what, uint32_t max_ms) {
    // A unit is required: a bare `inter=2` would be 2 ms to the parser and 2 s to its reader.
    const std::string_view text = s;
    uint64_t scale = 0;
    if (s.ends_with("ms")) { s.remove_suffix(2); scale = 1; }
    else if (s.ends_with("s")) { s.remove_suffix(1); scale = 1000; }
    else if (s.ends_with("m")) { s.remove_suffix(1); scale = 60'000; }
    else if (s.ends_with("h")) { s.remove_suffix(1); scale = 3'600'000; }
    const bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!scale || !digits)
        return make_error(fmt::format("bad {} '{}': a whole number and a unit, ms, s, m or h (500ms, 2s, 1m)", what,
                                      clip(text)));
    auto n = parse_number(s, 1, max_ms, what);
    if (!n) return Error{n.error()};
    if (*n * scale > max_ms) {
        const uint32_t hours = max_ms / 3'600'000;
        return make_error(hours == 1 ? fmt::format("{} above one hour ('{}')", what, clip(text))
                                     : fmt::format("{} above {} hours ('{}')", what, hours, clip(text)));
    }
    return static_cast<uint32_t>(*n * scale);
}

namespace {

// The names each field accepts, as lb::to_string() spells them.
constexpr lb::Proto kProtos[] = {lb::Proto::tcp, lb::Proto::udp};
constexpr lb::Mode kModes[] = {lb::Mode::dsr, lb::Mode::nat, lb::Mode::fullnat, lb::Mode::tunnel};
constexpr lb::Encap kEncaps[] = {lb::Encap::ipip, lb::Encap::gue};
constexpr lb::DownPolicy kDownPolicies[] = {lb::DownPolicy::reschedule, lb::DownPolicy::keep, lb::DownPolicy::drop};
constexpr lb::CheckConf::Kind kCheckKinds[] = {lb::CheckConf::Kind::none, lb::CheckConf::Kind::tcp,
                                               lb::CheckConf::Kind::http};
// A backend's state as configured: `down` is for health checks to say.
constexpr lb::BackendState kConfigStates[] = {lb::BackendState::up, lb::BackendState::draining,
                                              lb::BackendState::disabled};

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
    if (key == "table") {
        if (val == "auto") {
            v.table_size = 0;
            return {};
        }
        uint64_t n = 0;
        switch (parse_decimal(val, 1, lb::kMaxTableSize, n)) {
            case DecimalError::none: break;
            case DecimalError::not_a_number:
                return make_error(fmt::format("bad table '{}' (expected a prime or auto)", clip(val)));
            case DecimalError::out_of_range:
                return make_error(fmt::format("table out of range (1..{}, or auto)", lb::kMaxTableSize));
        }
        v.table_size = static_cast<uint32_t>(n);
        return {};
    }
    if (key == "on-down") {
        auto p = lb::from_string(val, kDownPolicies);
        if (!p) return make_error(fmt::format("bad on-down '{}' (reschedule, keep or drop)", clip(val)));
        v.on_down = *p;
        return {};
    }
    if (key == "encap") {
        auto e = lb::from_string(val, kEncaps);
        if (!e) return make_error(fmt::format("bad encap '{}' (ipip or gue)", clip(val)));
        v.encap = *e;
        return {};
    }
    if (key == "gue-port") {
        uint32_t port = 0;
        if (auto st = number(port, 1, 65535); !st) return st;
        v.gue_port = static_cast<uint16_t>(port);
        return {};
    }
    if (key == "check") {
        auto k = lb::from_string(val, kCheckKinds);
        if (!k) return make_error(fmt::format("bad check '{}' (none, tcp or http)", clip(val)));
        c.kind = *k;
        return {};
    }
    if (key == "persist") {
        auto d = parse_duration_ms(val, key, lb::kMaxPersistMs);
        if (!d) return make_error(d.error());
        v.persist_ms = *d;
        return {};
    }
    if (key == "persist-mask") {
        // /N (as the help writes it) or N: the client network's prefix length.
        const std::string_view len = val.starts_with('/') ? val.substr(1) : val;
        auto n = parse_number(len, 1, 128, key);
        if (!n) return make_error(fmt::format("bad persist-mask '{}' (expected /N: /1../32 for an IPv4 VIP, "
                                              "/1../128 for IPv6)",
                                              clip(val)));
        v.persist_mask = static_cast<uint8_t>(*n);
        return {};
    }
    if (key == "inter") return duration(c.inter_ms);
    if (key == "timeout") return duration(c.timeout_ms);
    if (key == "rise") return number(c.rise, 1, 100);
    if (key == "fall") return number(c.fall, 1, 100);
    if (key == "passive") return number(v.passive_failures, 0, 1'000'000);
    if (key == "announce-min") return number(v.announce_min, 1, lb::kMaxBackends);
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
                                  "passive, http-path, http-status, http-body, encap, gue-port, persist, "
                                  "persist-mask)",
                                  key, val));
}

}  // namespace

Expected<VipConf> parse_vip(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() < 3) return make_error("expected NAME,ADDR:PORT/PROTO,MODE[,KEY=VALUE...]");
    VipConf v;
    v.name = std::string(f[0]);

    auto slash = f[1].rfind('/');
    if (slash == std::string_view::npos)
        return make_error(fmt::format("'{}' lacks /PROTO (e.g. 203.0.113.10:80/tcp)", clip(f[1])));
    auto proto = f[1].substr(slash + 1);
    auto p = lb::from_string(proto, kProtos);
    if (!p) return make_error(fmt::format("bad protocol '{}' (tcp or udp)", clip(proto)));
    v.proto = *p;
    auto ep = net::parse_endpoint(f[1].substr(0, slash));
    if (!ep) return Error{ep.error()};
    if (!ep->port) return make_error(fmt::format("'{}' lacks a port (ADDR:PORT/PROTO)", clip(f[1])));
    v.addr = ep->addr;
    v.port = *ep->port;

    auto mode = lb::from_string(f[2], kModes);
    if (!mode) return make_error(fmt::format("bad mode '{}' (dsr, nat, fullnat or tunnel)", clip(f[2])));
    v.mode = *mode;

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
    if (v.mode != lb::Mode::tunnel)
        for (auto key : {"encap", "gue-port"})
            if (given.count(key)) return make_error(fmt::format("{} is for tunnel VIPs only", key));
    if (given.count("gue-port") && v.encap != lb::Encap::gue) return make_error("gue-port needs encap=gue");
    if (given.count("persist-mask") && !given.count("persist"))
        return make_error("persist-mask needs persist=DURATION (e.g. persist=5m,persist-mask=/24)");
    return v;
}

Expected<std::pair<std::string, BackendConf>> parse_backend(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() < 2) return make_error("expected VIP,ADDR[:PORT][,weight=N]");
    if (f[0].empty()) return make_error("missing VIP name");
    auto ep = net::parse_endpoint(f[1]);
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
            auto w = parse_number(val, 0, lb::kMaxWeight, "weight");
            if (!w) return Error{w.error()};
            b.weight = static_cast<uint32_t>(*w);
        } else if (auto st = lb::from_string(val, kConfigStates)) {
            b.state = *st;
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

Expected<lb::SyncPeerConf> parse_sync_peer(std::string_view text) {
    auto f = split(text, ',');
    if (f.size() < 2) return make_error("expected ID,ADDR[:PORT][,snat=ADDR]...");
    lb::SyncPeerConf p;
    auto id = parse_number(f[0], 1, 0xFFFFFFFFull, "instance id");
    if (!id) return Error{id.error()};
    p.id = static_cast<uint32_t>(*id);
    auto ep = net::parse_endpoint(f[1], {"sync address", false, 1});
    if (!ep) return Error{ep.error()};
    p.addr = ep->addr;
    p.port = ep->port ? *ep->port : lb::kDefaultSyncPort;
    for (size_t i = 2; i < f.size(); ++i) {
        const auto eq = f[i].find('=');
        if (eq == std::string_view::npos || f[i].substr(0, eq) != "snat")
            return make_error(fmt::format("unknown field '{}' (expected snat=ADDR)", clip(f[i])));
        auto a = parse_addr(f[i].substr(eq + 1));
        if (!a) return Error{a.error()};
        p.snat.push_back(*a);
    }
    return p;
}

}  // namespace sluice::config::detail
