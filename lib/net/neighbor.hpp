// Neighbour resolution on the wire: the requests the control core sends for backends and
// gateways that have no static MAC, and the answers it learns from.
//
// build_arp_request() / build_neighbor_solicit() write a complete Ethernet frame into a
// caller buffer (at least kMaxRequestLen bytes) and return its length. learn_neighbor() reads a
// frame handed to the control core (ARP request or reply, ICMPv6 neighbour advertisement or
// solicitation with a link-layer option) and returns the (address, MAC) binding its sender
// vouches for. Frames are bounds-checked; anything malformed yields nothing.
// Thread contract: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "lib/net/addr.hpp"

namespace sluice::net {

constexpr size_t kMaxRequestLen = 90;  // Ethernet + 802.1Q tag (insert_vlan_tag) + IPv6 + NS with a source link-layer option

// ARP "who has target? tell sender" (sender may be 0.0.0.0: an RFC 5227 probe).
size_t build_arp_request(uint8_t* out, const Mac& src_mac, const IpAddr& sender, const IpAddr& target) noexcept;
// Neighbour solicitation for target, to its solicited-node multicast group, from `sender`
// (an address of Sluice's kernel side) with a source link-layer address option.
size_t build_neighbor_solicit(uint8_t* out, const Mac& src_mac, const IpAddr& sender, const IpAddr& target) noexcept;

std::optional<std::pair<IpAddr, Mac>> learn_neighbor(const uint8_t* frame, size_t len) noexcept;

}  // namespace sluice::net
