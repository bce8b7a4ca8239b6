// Bounds-checked packet parser: Ethernet (+ one 802.1Q tag), ARP, IPv4 (any IHL), IPv6
// (skipping hop-by-hop, routing and destination-options headers), TCP, UDP, ICMP/ICMPv6.
//
// It only reads: it records offsets and the few fields the classifier needs, and rejects
// anything whose lengths do not add up, with a specific reason. No allocation, no
// exceptions; every read is checked against the frame length first.
// Thread contract: pure function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::net {

enum class ParseStatus : uint8_t {
    ok,
    runt,                 // shorter than an Ethernet header
    bad_vlan,             // truncated 802.1Q tag or stacked tags
    unknown_ethertype,
    truncated_arp,
    truncated_l3,         // IP header does not fit in the frame
    bad_ip_version,
    bad_ihl,              // IHL < 5 or beyond the frame
    bad_ip_length,        // total length / payload length lies about the frame
    bad_ip_checksum,
    fragment,
    bad_ext_header,       // IPv6 extension header chain truncated, too long or unsupported
    truncated_l4,
    bad_l4_length,        // TCP data offset / UDP length inconsistent
};
const char* to_string(ParseStatus s) noexcept;

enum class L3 : uint8_t { none, arp, ipv4, ipv6 };

struct ParsedPacket {
    L3 l3 = L3::none;
    bool vlan = false;
    uint8_t l4_proto = 0;     // IP protocol / IPv6 next header of the transport layer
    uint8_t tcp_flags = 0;
    uint16_t l3_off = 0;      // start of ARP/IP header
    uint16_t l4_off = 0;      // start of the transport header
    uint16_t l4_len = 0;      // transport header + payload, as the IP header states
    uint16_t ip_end = 0;      // end of the IP packet (frames may carry padding after it)
    uint16_t sport_raw = 0;   // ports as they lie in memory (network order); 0 for non TCP/UDP
    uint16_t dport_raw = 0;
};

// Parses frame[0, len). On ok, `out` describes the packet; otherwise the packet must be dropped
// under the returned reason. IPv4 header checksums are verified (RFC 1812 §5.2.2).
ParseStatus parse_packet(const uint8_t* frame, uint32_t len, ParsedPacket& out) noexcept;

}  // namespace sluice::net
