// The outer headers of a tunnel VIP's packets, written in front of an inner IP packet: by the
// data path for clients' packets (dp_tunnel.cpp) and by the kernel side for the health probes
// that go through the tunnel, so both look the same to a backend.
//
// Outer IPv4: DSCP and ECN copied from the inner packet (RFC 6040's normal mode), ID 0 and DF
// (RFC 6864: outer packets are never fragmented), TTL 64, protocol 4 (IPv4 inside), 41 (IPv6
// inside) or 17 (GUE). Outer IPv6: the same traffic class, the flow label from `entropy`, hop
// limit 64. GUE (RFC 8086 variant 1): UDP, then the inner packet; source port 49152..65535
// from `entropy`, no checksum over IPv4, the full one over IPv6 (RFC 6936).
// Thread contract: pure functions.
#pragma once

#include <cstdint>

#include "lib/net/addr.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

struct TunnelHeader {
    const net::Mac& dst_mac;   // the next hop's
    const net::Mac& src_mac;   // the sending port's
    const net::IpAddr& src;    // the tunnel source of the outer family
    const net::IpAddr& dst;    // the backend (its family is the outer family)
    bool gue;
    uint16_t gue_port_raw;     // network order
};

// Bytes of outer headers after the Ethernet header.
constexpr uint32_t tunnel_overhead(bool outer_v4, bool gue) noexcept {
    return (outer_v4 ? net::kIpv4MinHdrLen : net::kIpv6HdrLen) + (gue ? net::kUdpHdrLen : 0);
}

// Writes the Ethernet header and the outer headers into the kEthHdrLen + tunnel_overhead()
// bytes before `inner` (an IP packet of inner_len bytes, IPv4 if inner_v4, the bytes after it
// untouched) and returns where the frame now starts.
uint8_t* write_tunnel_headers(uint8_t* inner, uint32_t inner_len, bool inner_v4, uint32_t entropy,
                              const TunnelHeader& h) noexcept;

}  // namespace sluice::lb
