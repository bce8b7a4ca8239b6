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

}  // namespace sluice::linux_nl
