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

#include "lib/net/wire.hpp"

namespace sluice::net {

// Every way a frame can fail to parse. The one list: ParseStatus, its names, and the data
// path's drop reasons (each failure is dropped under the lb::Drop of the same name) all
// expand it, so a new failure cannot be left without a name or a drop counter.
#define SLUICE_PARSE_FAILURES(X)                                                                 \
    X(runt)               /* shorter than an Ethernet header */                                \
    X(bad_vlan)           /* truncated 802.1Q tag or stacked tags */                           \
    X(unknown_ethertype)                                                                       \
    X(truncated_arp)                                                                           \
    X(truncated_l3)       /* IP header does not fit in the frame */                            \
    X(bad_ip_version)                                                                          \
    X(bad_ihl)            /* IHL < 5 or beyond the frame */                                    \
    X(source_route)       /* IPv4 loose or strict source route option */                       \
    X(bad_ip_length)      /* total length / payload length lies about the frame */             \
    X(bad_ip_checksum)                                                                         \
    X(bad_fragment)       /* a first fragment too short for its transport header (RFC 1858), or \
                             an IPv4 fragment at offset 8 (overwrites a TCP header's flags) */ \
    X(bad_ext_header)     /* IPv6 extension header chain truncated, too long or unsupported */ \
    X(truncated_l4)                                                                            \
    X(bad_l4_length)      /* TCP data offset / UDP length inconsistent */

enum class ParseStatus : uint8_t {
    ok,
#define SLUICE_X(name) name,
    SLUICE_PARSE_FAILURES(SLUICE_X)
#undef SLUICE_X
};
const char* to_string(ParseStatus s) noexcept;

enum class L3 : uint8_t { none, arp, ipv4, ipv6 };

// Where a packet sits in a fragmented datagram. A first fragment carries the transport header
// (ports, flags), a later one only payload. RFC 6946 atomic fragments (offset 0, no more
// fragments) are plain packets.
enum class Frag : uint8_t { none, first, later };

struct ParsedPacket {
    L3 l3 = L3::none;
    bool vlan = false;        // an 802.1Q tag (VID 0: priority only)
    uint8_t l4_proto = 0;     // IP protocol / IPv6 next header of the transport layer
    uint8_t tcp_flags = 0;
    uint16_t l3_off = 0;      // start of ARP/IP header
    uint16_t l4_off = 0;      // start of the transport header
    uint16_t l4_len = 0;      // transport header + payload, as the IP header states
    uint16_t ip_end = 0;      // end of the IP packet (frames may carry padding after it)
    uint16_t sport_raw = 0;   // ports as they lie in memory (network order); 0 for non TCP/UDP
    uint16_t dport_raw = 0;   // (and for later fragments, which carry no transport header)
    Frag frag = Frag::none;
    uint16_t vlan_id = 0;     // the tag's VID; 0 untagged or priority-tagged
    uint32_t frag_id = 0;     // IPv4 identification or IPv6 fragment identification (fragments)
};
static_assert(sizeof(ParsedPacket) == 24);

// The general parser: every frame, every drop reason. Out of line.
ParseStatus parse_packet_general(const uint8_t* frame, uint32_t len, ParsedPacket& out,
                                 bool ip_csum_good = false) noexcept;

namespace detail {
// RFC 1812 §5.2.2: a 20-byte IPv4 header sums to 0xFFFF; summed as five 32-bit words.
// The one's complement sum of 16-bit words is congruent to their plain sum modulo 0xFFFF
// (2^16 = 1 mod 0xFFFF, so a 32-bit word counts as its two halves), and a correct header's
// sum is 0xFFFF: the plain sum is a non-zero multiple of 0xFFFF. One multiply instead of
// four folds.
[[gnu::always_inline]] inline bool ipv4_header_csum_ok20(const uint8_t* h) noexcept {
    const uint64_t s =
        uint64_t{load_raw32(h)} + load_raw32(h + 4) + load_raw32(h + 8) + load_raw32(h + 12) + load_raw32(h + 16);
    return s % 0xFFFF == 0 && s != 0;
}

// The overwhelmingly common frame: untagged IPv4 without options or fragmentation carrying
// TCP or UDP. Checked in a few loads and filled in one go, inline in the caller; anything else
// (or anything wrong) goes to the general parser, which also finds the precise drop reason.
// The frame's first eight bytes (a little-endian load), masked with dst_mask, must equal dst:
// a port's MAC is (0xFFFF'FFFF'FFFF, its six bytes as such a load); (0, 0) takes any
// destination and (0, 1) none, so a caller's per-port choice costs no branch of its own.
[[gnu::always_inline]] inline bool parse_fast_ipv4(const uint8_t* f, uint32_t len, ParsedPacket& out, bool ip_csum_good,
                                                  uint64_t dst_mask, uint64_t dst) noexcept {
    constexpr uint32_t l3 = kEthHdrLen, l4 = kEthHdrLen + kIpv4MinHdrLen;
    if (len < l4 + kUdpHdrLen || load_raw16(f + EthOff::type) != 0x0008 || f[l3] != 0x45) return false;
    if ((load_raw64(f) & dst_mask) != dst) return false;
    const uint32_t total = load_be16(f + l3 + Ipv4Off::total_len);
    if (total > len - l3 || total < kIpv4MinHdrLen + kUdpHdrLen) return false;
    if (load_raw16(f + l3 + Ipv4Off::frag) & 0xFF3F) return false;  // MF or offset (network order)
    const uint8_t proto = f[l3 + Ipv4Off::proto];
    const uint32_t l4_len = total - kIpv4MinHdrLen;
    uint8_t flags = 0;
    if (proto == kIpProtoTcp) {
        if (l4_len < kTcpMinHdrLen) return false;
        const uint32_t doff = (f[l4 + TcpOff::off] >> 4) * 4u;
        if (doff < kTcpMinHdrLen || doff > l4_len) return false;
        flags = f[l4 + TcpOff::flags];
    } else if (proto != kIpProtoUdp || load_be16(f + l4 + UdpOff::len) != l4_len) {
        return false;
    }
    // RFC 1812 §5.2.2: the 20-byte header summed as five 32-bit words (unless the NIC did).
    if (!ip_csum_good && !ipv4_header_csum_ok20(f + l3)) return false;
    out.l3 = L3::ipv4;
    out.vlan = false;
    out.l4_proto = proto;
    out.tcp_flags = flags;
    out.l3_off = l3;
    out.l4_off = l4;
    out.l4_len = static_cast<uint16_t>(l4_len);
    out.ip_end = static_cast<uint16_t>(l3 + total);
    out.sport_raw = load_raw16(f + l4);  // TCP and UDP ports share their place
    out.dport_raw = load_raw16(f + l4 + 2);
    out.frag = Frag::none;
    out.vlan_id = 0;
    out.frag_id = 0;
    return true;
}
}  // namespace detail

// Parses frame[0, len). On ok, `out` describes the packet; otherwise the packet must be dropped
// under the returned reason. IPv4 header checksums are verified (RFC 1812 §5.2.2).
// ip_csum_good: the NIC validated the IPv4 header checksum (RX offload), so it is not summed
// again; a NIC-reported bad checksum never gets here (the worker drops it).
inline ParseStatus parse_packet(const uint8_t* frame, uint32_t len, ParsedPacket& out,
                                bool ip_csum_good = false) noexcept {
    if (detail::parse_fast_ipv4(frame, len, out, ip_csum_good, 0, 0)) return ParseStatus::ok;
    return parse_packet_general(frame, len, out, ip_csum_good);
}

}  // namespace sluice::net
