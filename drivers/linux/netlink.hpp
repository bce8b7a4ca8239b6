// Minimal rtnetlink client for the kernel side's interfaces (the exception path's TAP
// devices): addresses, and the routes, neighbours and rule that send marked sockets (health
// probes of tunnel VIPs) out a TAP, as `ip addr|route|neigh|rule add` would.
// Thread contract: plain blocking calls for the control core; each opens its own socket.
#pragma once

#include <cstdint>
#include <string>

#include "lib/common/expected.hpp"
#include "lib/net/addr.hpp"

namespace sluice::linux_nl {

// Adds addr/prefix_len to interface `ifname` (IPv6 without duplicate address detection: the
// data path defends Sluice's addresses itself). An address already present is not an error.
Status add_address(const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len);
// Removes it again; an address already gone is not an error.
Status delete_address(const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len);

// `ip route replace DST dev IF scope link table TABLE` (DST a host route).
Status add_route(const std::string& ifname, const net::IpAddr& dst, uint32_t table);
// `ip neigh replace ADDR lladdr MAC dev IF nud permanent`.
Status add_neighbor(const std::string& ifname, const net::IpAddr& addr, const net::Mac& mac);
// `ip [-6] rule add fwmark MARK table TABLE priority PRIO`; an existing one is not an error.
Status add_mark_rule(net::Family family, uint32_t mark, uint32_t table, uint32_t priority);
// Removes that rule again (at exit); a missing one is not an error.
Status delete_mark_rule(net::Family family, uint32_t mark, uint32_t table, uint32_t priority);

}  // namespace sluice::linux_nl
