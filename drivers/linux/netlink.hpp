// Minimal rtnetlink client: puts addresses on the kernel side's interfaces (the exception
// path's TAP devices), as `ip addr add ADDR/LEN dev IF` would.
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

// Creates 802.1Q interface `name` for VLAN `vid` on `parent` and brings it up, as
// `ip link add link PARENT name NAME type vlan id VID; ip link set NAME up` would. An
// interface of that name already there is replaced.
Status add_vlan(const std::string& parent, const std::string& name, uint16_t vid);

}  // namespace sluice::linux_nl
