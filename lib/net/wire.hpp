// Wire formats: size-asserted header structs and byte-order helpers.
//
// Every multi-byte field is kept in network byte order and accessed through load/store
// helpers, so the data path never does an unaligned typed access and never confuses orders.
// Thread contract: none needed (pure functions and PODs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::net {

inline uint16_t load_be16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t load_be32(const uint8_t* p) noexcept {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return __builtin_bswap32(x);
}
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}
// Raw 16/32-bit loads in memory order, for checksum arithmetic and comparisons.
inline uint16_t load_raw16(const uint8_t* p) noexcept {
    uint16_t x;
    std::memcpy(&x, p, 2);
    return x;
}
inline uint32_t load_raw32(const uint8_t* p) noexcept {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return x;
}
inline uint64_t load_raw64(const uint8_t* p) noexcept {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
}
// Six bytes (a MAC) in memory order, zero-extended: reads only the six.
inline uint64_t load_raw48(const uint8_t* p) noexcept {
    uint64_t x = 0;
    std::memcpy(&x, p, 6);
    return x;
}
// A port as it lies in memory (network order, "raw") from its host-order value, and back.
inline uint16_t port_to_raw(uint16_t port) noexcept {
    uint8_t b[2];
    store_be16(b, port);
    return load_raw16(b);
}
inline uint16_t port_from_raw(uint16_t raw) noexcept {
    uint8_t b[2];
    std::memcpy(b, &raw, 2);
    return load_be16(b);
}

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88A8;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;

constexpr uint8_t kIpProtoHopOpts = 0;
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint8_t kIpProtoRouting = 43;
constexpr uint8_t kIpProtoFragment = 44;
constexpr uint8_t kIpProtoEsp = 50;
constexpr uint8_t kIpProtoAh = 51;
constexpr uint8_t kIpProtoIcmpv6 = 58;
constexpr uint8_t kIpProtoNone = 59;
constexpr uint8_t kIpProtoDstOpts = 60;

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpUrg = 0x20;

constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kIcmpDestUnreach = 3;     // code 4: fragmentation needed (RFC 1191)
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpParamProblem = 12;
constexpr uint8_t kIcmp6DestUnreach = 1;
constexpr uint8_t kIcmp6PacketTooBig = 2;
constexpr uint8_t kIcmp6TimeExceeded = 3;
constexpr uint8_t kIcmp6ParamProblem = 4;
constexpr uint8_t kIcmp6EchoRequest = 128;
constexpr uint8_t kIcmp6EchoReply = 129;
constexpr uint8_t kIcmp6NeighborSolicit = 135;
constexpr uint8_t kIcmp6NeighborAdvert = 136;

constexpr size_t kEthHdrLen = 14;
constexpr size_t kVlanHdrLen = 4;
constexpr size_t kIpv4MinHdrLen = 20;
constexpr size_t kIpv6HdrLen = 40;
constexpr size_t kTcpMinHdrLen = 20;
constexpr size_t kUdpHdrLen = 8;
constexpr size_t kIcmpHdrLen = 8;
constexpr size_t kArpIpv4Len = 28;

// Field offsets inside each header (the structs below document the layout; offsets are what
// the code uses, so no packed-struct aliasing is ever needed).
struct EthOff { static constexpr size_t dst = 0, src = 6, type = 12; };
struct Ipv4Off {
    static constexpr size_t ver_ihl = 0, tos = 1, total_len = 2, id = 4, frag = 6, ttl = 8, proto = 9,
                            csum = 10, src = 12, dst = 16;
};
struct Ipv6Off { static constexpr size_t vtc = 0, payload_len = 4, next = 6, hop_limit = 7, src = 8, dst = 24; };
struct TcpOff { static constexpr size_t sport = 0, dport = 2, seq = 4, ack = 8, off = 12, flags = 13, csum = 16; };
struct UdpOff { static constexpr size_t sport = 0, dport = 2, len = 4, csum = 6; };
struct IcmpOff { static constexpr size_t type = 0, code = 1, csum = 2; };
struct ArpOff {
    static constexpr size_t htype = 0, ptype = 2, hlen = 4, plen = 5, op = 6, sha = 8, spa = 14, tha = 18, tpa = 24;
};

struct EthHdr { uint8_t dst[6]; uint8_t src[6]; uint8_t type[2]; };
struct Ipv4Hdr {
    uint8_t ver_ihl, tos; uint8_t total_len[2], id[2], frag[2]; uint8_t ttl, proto; uint8_t csum[2];
    uint8_t src[4], dst[4];
};
struct Ipv6Hdr { uint8_t vtc_flow[4]; uint8_t payload_len[2]; uint8_t next, hop_limit; uint8_t src[16], dst[16]; };
struct TcpHdr { uint8_t sport[2], dport[2], seq[4], ack[4]; uint8_t off, flags; uint8_t win[2], csum[2], urg[2]; };
struct UdpHdr { uint8_t sport[2], dport[2], len[2], csum[2]; };
static_assert(sizeof(EthHdr) == kEthHdrLen);
static_assert(sizeof(Ipv4Hdr) == kIpv4MinHdrLen);
static_assert(sizeof(Ipv6Hdr) == kIpv6HdrLen);
static_assert(sizeof(TcpHdr) == kTcpMinHdrLen);
static_assert(sizeof(UdpHdr) == kUdpHdrLen);
static_assert(offsetof(Ipv4Hdr, dst) == Ipv4Off::dst);
static_assert(offsetof(Ipv6Hdr, dst) == Ipv6Off::dst);
static_assert(offsetof(TcpHdr, csum) == TcpOff::csum);

// A frame's 802.1Q tag: present (and whole), and its VID (0 when untagged or priority-tagged).
inline bool has_vlan_tag(const uint8_t* f, size_t len) noexcept {
    return len >= kEthHdrLen + kVlanHdrLen && load_be16(f + EthOff::type) == kEtherTypeVlan;
}
inline uint16_t vlan_id_of(const uint8_t* f, size_t len) noexcept {
    return has_vlan_tag(f, len) ? load_be16(f + kEthHdrLen) & 0x0FFF : 0;
}
// Puts an 802.1Q tag for `vid` (PCP 0) after the MACs of an untagged frame of `len` bytes; the
// buffer must hold 4 more. Returns the new length.
inline size_t insert_vlan_tag(uint8_t* f, size_t len, uint16_t vid) noexcept {
    std::memmove(f + EthOff::type + kVlanHdrLen, f + EthOff::type, len - EthOff::type);
    store_be16(f + EthOff::type, kEtherTypeVlan);
    store_be16(f + kEthHdrLen, vid & 0x0FFF);
    return len + kVlanHdrLen;
}

}  // namespace sluice::net
