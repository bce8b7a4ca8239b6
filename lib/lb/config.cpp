// Names of the configuration's enums (what --help, the parser, `sluicectl list` and the logs
// print), the VIP name rule and a VIP's Maglev table size (table=auto resolved).
#include "lib/lb/config.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/lb/maglev.hpp"

namespace sluice::lb {

uint32_t maglev_table_size(const VipConf& v) noexcept {
    return v.table_size != 0 ? v.table_size : Maglev::auto_size(v.backends.size());
}

const char* to_string(Mode m) {
    switch (m) {
        case Mode::dsr: return "dsr";
        case Mode::nat: return "nat";
        case Mode::fullnat: return "fullnat";
        case Mode::tunnel: return "tunnel";
    }
    return "unknown";
}

const char* to_string(Encap e) {
    switch (e) {
        case Encap::ipip: return "ipip";
        case Encap::gue: return "gue";
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

const net::IpAddr& next_hop(const ProcessConfig& c, const VipConf& v, const BackendConf& b) noexcept {
    if (v.mode == Mode::tunnel)
        for (const auto& g : c.tunnel_gateways)
            if (g.family == b.addr.family) return g;
    return b.addr;
}

bool valid_vip_name(std::string_view n) noexcept {
    if (n.empty() || n.size() > kMaxVipNameLen) return false;
    return std::all_of(n.begin(), n.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
               ch == '_' || ch == '.';
    });
}

Status check_vip_name(std::string_view n) {
    if (valid_vip_name(n)) return {};
    return make_error(fmt::format("bad VIP name {} (expected 1..{} letters, digits, '-', '_', '.')", quote(n),
                                  kMaxVipNameLen));
}

}  // namespace sluice::lb
