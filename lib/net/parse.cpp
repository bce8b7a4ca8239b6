#include "lib/net/parse.hpp"

#include "lib/net/checksum.hpp"
#include "lib/net/wire.hpp"

namespace sluice::net {

const char* to_string(ParseStatus s) noexcept {
    switch (s) {
        case ParseStatus::ok: return "ok";
#define SLUICE_X(name) \
    case ParseStatus::name: return #name;
        SLUICE_PARSE_FAILURES(SLUICE_X)
#undef SLUICE_X
    }
    return "?";
}

namespace {

// The common 20-byte header is summed as five 32-bit words; options take the generic path.
[[gnu::always_inline]] inline bool ipv4_header_csum_ok(const uint8_t* h, uint32_t ihl) noexcept {
    if (ihl != kIpv4MinHdrLen) return csum_fold(csum_partial(h, ihl)) == 0xFFFF;
    return detail::ipv4_header_csum_ok20(h);
}

// Parses the transport header at [off, end). `end` is where the IP packet ends. A first
// fragment (out.frag set by the caller) must hold the whole TCP header or the UDP header, and
// its UDP length counts the whole datagram, so it can only be longer than the fragment.
[[gnu::always_inline]] inline ParseStatus parse_l4(const uint8_t* f, uint32_t off, uint32_t end, uint8_t proto,
                                                  ParsedPacket& out) noexcept {
    out.l4_proto = proto;
    out.l4_off = static_cast<uint16_t>(off);
    out.l4_len = static_cast<uint16_t>(end - off);
    const uint32_t avail = end - off;
    const bool first = out.frag == Frag::first;
    if (out.frag == Frag::later) return ParseStatus::ok;  // payload only: the first one decides
    switch (proto) {
        case kIpProtoTcp: {
            if (avail < kTcpMinHdrLen) return first ? ParseStatus::bad_fragment : ParseStatus::truncated_l4;
            const uint32_t doff = (f[off + TcpOff::off] >> 4) * 4u;
            if (doff < kTcpMinHdrLen) return ParseStatus::bad_l4_length;
            if (doff > avail) return first ? ParseStatus::bad_fragment : ParseStatus::bad_l4_length;
            out.tcp_flags = f[off + TcpOff::flags];
            out.sport_raw = load_raw16(f + off + TcpOff::sport);
            out.dport_raw = load_raw16(f + off + TcpOff::dport);
            return ParseStatus::ok;
        }
        case kIpProtoUdp: {
            if (avail < kUdpHdrLen) return first ? ParseStatus::bad_fragment : ParseStatus::truncated_l4;
            const uint32_t ulen = load_be16(f + off + UdpOff::len);
            if (first ? ulen <= avail : ulen != avail) return ParseStatus::bad_l4_length;
            out.sport_raw = load_raw16(f + off + UdpOff::sport);
            out.dport_raw = load_raw16(f + off + UdpOff::dport);
            return ParseStatus::ok;
        }
        case kIpProtoIcmp:
        case kIpProtoIcmpv6:
            if (avail < kIcmpHdrLen) return ParseStatus::truncated_l4;
            return ParseStatus::ok;
        default:
            return ParseStatus::ok;  // other protocols: the classifier decides
    }
}

// LSRR or SSRR among the options (RFC 791 §3.1). The transport checksum of a source-routed
// packet covers its final destination, not the header's (RFC 1122 §4.2.3.1): rewriting the
// destination would corrupt it, and RFC 7126 §4.3-4.4 recommends dropping them anyway.
// A malformed option list ends the scan: the header checksum already vouches for it.
bool has_source_route(const uint8_t* opt, uint32_t n) noexcept {
    constexpr uint8_t kEol = 0, kNop = 1, kLsrr = 0x83, kSsrr = 0x89;
    for (uint32_t i = 0; i < n;) {
        const uint8_t type = opt[i];
        if (type == kEol) return false;
        if (type == kNop) {
            ++i;
            continue;
        }
        if (type == kLsrr || type == kSsrr) return true;
        if (i + 1 >= n || opt[i + 1] < 2) return false;
        i += opt[i + 1];
    }
    return false;
}

ParseStatus parse_ipv4(const uint8_t* f, uint32_t off, uint32_t len, ParsedPacket& out, bool csum_good) noexcept {
    if (len - off < kIpv4MinHdrLen) return ParseStatus::truncated_l3;
    const uint8_t vi = f[off + Ipv4Off::ver_ihl];
    if ((vi >> 4) != 4) return ParseStatus::bad_ip_version;
    const uint32_t ihl = (vi & 0x0F) * 4u;
    if (ihl < kIpv4MinHdrLen || ihl > len - off) return ParseStatus::bad_ihl;
    const uint32_t total = load_be16(f + off + Ipv4Off::total_len);
    if (total < ihl || total > len - off) return ParseStatus::bad_ip_length;
    if (!csum_good && !ipv4_header_csum_ok(f + off, ihl)) return ParseStatus::bad_ip_checksum;
    const uint16_t frag = load_be16(f + off + Ipv4Off::frag);
    if (ihl > kIpv4MinHdrLen && has_source_route(f + off + kIpv4MinHdrLen, ihl - kIpv4MinHdrLen))
        return ParseStatus::source_route;
    if (frag & 0x3FFF) {  // MF set or non-zero offset
        const uint16_t offset = frag & 0x1FFF;
        // RFC 1858 §4: offset 1 (8 bytes) can only serve to overwrite a TCP header's flags.
        if (offset == 1 && f[off + Ipv4Off::proto] == kIpProtoTcp) return ParseStatus::bad_fragment;
        out.frag = offset ? Frag::later : Frag::first;
        out.frag_id = load_be16(f + off + Ipv4Off::id);
    }
    out.l3 = L3::ipv4;
    out.l3_off = static_cast<uint16_t>(off);
    out.ip_end = static_cast<uint16_t>(off + total);
    return parse_l4(f, off + ihl, off + total, f[off + Ipv4Off::proto], out);
}

ParseStatus parse_ipv6(const uint8_t* f, uint32_t off, uint32_t len, ParsedPacket& out) noexcept {
    if (len - off < kIpv6HdrLen) return ParseStatus::truncated_l3;
    if ((f[off] >> 4) != 6) return ParseStatus::bad_ip_version;
    const uint32_t end = off + kIpv6HdrLen + load_be16(f + off + Ipv6Off::payload_len);
    if (end > len) return ParseStatus::bad_ip_length;
    out.l3 = L3::ipv6;
    out.l3_off = static_cast<uint16_t>(off);
    out.ip_end = static_cast<uint16_t>(end);
    uint8_t next = f[off + Ipv6Off::next];
    uint32_t pos = off + kIpv6HdrLen;
    // RFC 8200 §4.1 recommends at most a handful of extension headers; more is an attack.
    for (int i = 0; i < 8; ++i) {
        switch (next) {
            case kIpProtoHopOpts:
                if (i != 0) return ParseStatus::bad_ext_header;  // must come first
                [[fallthrough]];
            case kIpProtoRouting:
            case kIpProtoDstOpts: {
                if (end - pos < 8) return ParseStatus::bad_ext_header;
                // Segments left: the packet is not at its final destination yet, and its
                // transport checksum covers that one (RFC 8200 §8.1); Sluice is no router.
                if (next == kIpProtoRouting && f[pos + 3] != 0) return ParseStatus::bad_ext_header;
                const uint32_t hlen = (f[pos + 1] + 1u) * 8u;
                if (hlen > end - pos) return ParseStatus::bad_ext_header;
                next = f[pos];
                pos += hlen;
                continue;
            }
            case kIpProtoFragment: {
                if (end - pos < 8 || out.frag != Frag::none) return ParseStatus::bad_ext_header;
                const uint16_t om = load_be16(f + pos + 2);  // offset (13 bits), 2 reserved, M
                next = f[pos];
                pos += 8;
                if (om & 0xFFF9) {  // not atomic (RFC 6946): offset or M set
                    out.frag = (om >> 3) ? Frag::later : Frag::first;
                    out.frag_id = load_be32(f + pos - 4);
                    if (out.frag == Frag::later) return parse_l4(f, pos, end, next, out);
                }
                continue;
            }
            case kIpProtoAh:
            case kIpProtoEsp:
            case kIpProtoNone:
                return ParseStatus::bad_ext_header;
            default:
                return parse_l4(f, pos, end, next, out);
        }
    }
    return ParseStatus::bad_ext_header;
}

}  // namespace

ParseStatus parse_packet_general(const uint8_t* f, uint32_t len, ParsedPacket& out, bool ip_csum_good) noexcept {
    out = ParsedPacket{};
    if (len < kEthHdrLen) return ParseStatus::runt;
    uint32_t off = kEthHdrLen;
    uint16_t type = load_be16(f + EthOff::type);
    if (type == kEtherTypeVlan) {
        if (len < kEthHdrLen + kVlanHdrLen) return ParseStatus::bad_vlan;
        out.vlan = true;
        out.vlan_id = load_be16(f + kEthHdrLen) & 0x0FFF;
        type = load_be16(f + kEthHdrLen + 2);
        off += kVlanHdrLen;
        if (type == kEtherTypeVlan || type == kEtherTypeQinQ) return ParseStatus::bad_vlan;
    }
    switch (type) {
        case kEtherTypeIpv4: return parse_ipv4(f, off, len, out, ip_csum_good);
        case kEtherTypeIpv6: return parse_ipv6(f, off, len, out);
        case kEtherTypeArp:
            if (len - off < kArpIpv4Len) return ParseStatus::truncated_arp;
            out.l3 = L3::arp;
            out.l3_off = static_cast<uint16_t>(off);
            return ParseStatus::ok;
        default: return ParseStatus::unknown_ethertype;
    }
}

}  // namespace sluice::net
