#include "lib/lb/flow_log.hpp"

#include <fmt/format.h>

#include "lib/lb/service.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

const char* to_string(FlowEvent::Why w) noexcept {
    switch (w) {
        case FlowEvent::Why::maglev_pick: return "maglev pick";
        case FlowEvent::Why::rescheduled: return "rescheduled: its backend went down or left";
        case FlowEvent::Why::expired: return "idle timeout";
        case FlowEvent::Why::evicted: return "evicted: flow table full";
        case FlowEvent::Why::flushed: return "flushed: backend removed";
        case FlowEvent::Why::moved: return "moved: backend down or removed";
        case FlowEvent::Why::idle: return "idle timeout";
    }
    return "?";
}

std::string format_flow_event(const FlowEvent& e, const Service& s) {
    const net::IpAddr client =
        e.family == net::Family::v4 ? net::IpAddr::v4(e.client) : net::IpAddr::v6(e.client);
    std::string vip = "?", backend = "?";
    const char* proto = "?";
    if (e.vip < s.vips().size()) {
        const VipEntry& v = s.vips()[e.vip];
        vip = fmt::format("{} {}", v.name, net::to_string(v.addr, net::port_from_raw(v.port_raw)));
        proto = to_string(v.proto);
    }
    if (e.backend < s.backends().size()) {
        const BackendEntry& b = s.backends()[e.backend];
        backend = net::to_string(b.addr, net::port_from_raw(b.port_raw));
    }
    const std::string head = fmt::format("{} {} -> {} backend {}", proto, net::to_string(client, net::port_from_raw(e.client_port_raw)),
                                         vip, backend);
    if (e.kind == FlowEvent::Kind::open) return fmt::format("flow open {} ({})", head, to_string(e.why));
    return fmt::format("flow close {} packets {} bytes {} duration {:.3f} s ({})", head, e.packets, e.bytes,
                       e.duration_ms / 1000.0, to_string(e.why));
}

}  // namespace sluice::lb
