// A fluent packet builder for tests (Katran style):
//
//   Bytes f = Pkt().eth("02:00:00:00:00:01", "02:00:00:00:00:02").vlan(10)
//                 .ipv4("10.0.0.1", "203.0.113.10", 64).tcp(40000, 80, kSyn).payload(10).build();
//
// Lengths (IPv4 total length, IPv6 payload length, UDP length) and checksums (IPv4 header,
// TCP, UDP, ICMP, ICMPv6 with their pseudo-headers) are computed here with a deliberately
// naive RFC 1071 sum (ref_csum), independent of lib/net/checksum, so the builder is an oracle
// for the code under test and not a copy of it. Knobs corrupt single fields after the
// correct values are known (IHL, total length, version, fragment bits, TCP data offset, UDP
// length, checksums, truncation, Ethernet padding, IPv6 extension header chains).
// Everything is deterministic: the same calls always give the same bytes.
// Thread contract: a Pkt is a plain value; no shared state.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// RFC 1071 one's-complement sum over big-endian 16-bit words (odd tail padded with a zero
// byte), accumulated in 64 bits and folded at the end. Returns the folded sum, not complemented.
inline uint32_t ref_sum(const uint8_t* p, size_t n, uint64_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += static_cast<uint32_t>(p[i]) << 8 | p[i + 1];
    if (n & 1) acc += static_cast<uint32_t>(p[n - 1]) << 8;
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    return static_cast<uint32_t>(acc);
}
// The checksum value (host order) to store big-endian into a checksum field.
inline uint16_t ref_csum(const uint8_t* p, size_t n, uint64_t acc = 0) {
    return static_cast<uint16_t>(~ref_sum(p, n, acc) & 0xFFFF);
}

inline std::array<uint8_t, 4> ip4(std::string_view text) {
    std::array<uint8_t, 4> a{};
    if (inet_pton(AF_INET, std::string(text).c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv4 address: " + std::string(text));
    return a;
}
inline std::array<uint8_t, 16> ip6(std::string_view text) {
    std::array<uint8_t, 16> a{};
    if (inet_pton(AF_INET6, std::string(text).c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv6 address: " + std::string(text));
    return a;
}
inline std::array<uint8_t, 6> mac(std::string_view text) {
    std::array<uint8_t, 6> m{};
    unsigned v[6];
    if (text.size() != 17 ||
        std::sscanf(std::string(text).c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        throw std::invalid_argument("bad MAC: " + std::string(text));
    for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
    return m;
}

// "45 00 00 28 ..." with a line break every 16 bytes: readable failure messages.
inline std::string hexdump(const Bytes& b) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < b.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        s += buf;
        s += (i % 16 == 15) ? '\n' : ' ';
    }
    return s;
}

class Pkt {
public:
    // --- Layers -----------------------------------------------------------------------------
    Pkt& eth(std::string_view src, std::string_view dst) {
        eth_src_ = mac(src);
        eth_dst_ = mac(dst);
        return *this;
    }
    // Overrides the (innermost) ethertype.
    Pkt& ethertype(uint16_t t) {
        ethertype_ = t;
        return *this;
    }
    // An 802.1Q tag; call twice for stacked tags.
    Pkt& vlan(uint16_t id, uint16_t tpid = 0x8100) {
        vlans_.push_back({tpid, id});
        return *this;
    }
    Pkt& ipv4(std::string_view src, std::string_view dst, uint8_t ttl = 64) {
        l3_ = L3::v4;
        auto s = ip4(src), d = ip4(dst);
        src_.assign(s.begin(), s.end());
        dst_.assign(d.begin(), d.end());
        ttl_ = ttl;
        return *this;
    }
    Pkt& ipv6(std::string_view src, std::string_view dst, uint8_t hop_limit = 64) {
        l3_ = L3::v6;
        auto s = ip6(src), d = ip6(dst);
        src_.assign(s.begin(), s.end());
        dst_.assign(d.begin(), d.end());
        ttl_ = hop_limit;
        return *this;
    }
    Pkt& tcp(uint16_t sport, uint16_t dport, uint8_t flags = kSyn) {
        l4_ = L4::tcp;
        proto_ = 6;
        sport_ = sport;
        dport_ = dport;
        tcp_flags_ = flags;
        return *this;
    }
    Pkt& udp(uint16_t sport, uint16_t dport) {
        l4_ = L4::udp;
        proto_ = 17;
        sport_ = sport;
        dport_ = dport;
        return *this;
    }
    // ICMP (v4): type, code, checksum, then 4 bytes of identifier/sequence, then the payload.
    Pkt& icmp(uint8_t type, uint8_t code = 0) {
        l4_ = L4::icmp;
        proto_ = 1;
        icmp_type_ = type;
        icmp_code_ = code;
        return *this;
    }
    // The 4 bytes after the checksum (and any more) in place of the default identifier/sequence.
    Pkt& icmp_rest(Bytes rest) {
        icmp_body_ = std::move(rest);
        return *this;
    }
    // ICMPv6 with the same 8-byte layout (checksum includes the pseudo-header).
    Pkt& icmpv6(uint8_t type, uint8_t code = 0) {
        l4_ = L4::icmpv6;
        proto_ = 58;
        icmp_type_ = type;
        icmp_code_ = code;
        return *this;
    }
    // Neighbour solicitation (RFC 4861 §4.3), with a source link-layer option if sll is given.
    Pkt& nd_solicit(std::string_view target, std::optional<std::string_view> sll = std::nullopt) {
        icmpv6(135, 0);
        auto t = ip6(target);
        Bytes body(4, 0);  // reserved
        body.insert(body.end(), t.begin(), t.end());
        if (sll) {
            auto m = mac(*sll);
            body.push_back(1);
            body.push_back(1);
            body.insert(body.end(), m.begin(), m.end());
        }
        icmp_body_ = body;
        return *this;
    }
    // Neighbour advertisement (RFC 4861 §4.4): flags byte (R 0x80, S 0x40, O 0x20), target,
    // target link-layer option.
    Pkt& nd_advert(std::string_view target, std::string_view tll, uint8_t flags) {
        icmpv6(136, 0);
        auto t = ip6(target);
        auto m = mac(tll);
        Bytes body = {flags, 0, 0, 0};
        body.insert(body.end(), t.begin(), t.end());
        body.push_back(2);
        body.push_back(1);
        body.insert(body.end(), m.begin(), m.end());
        icmp_body_ = body;
        return *this;
    }
    // Any other transport protocol: the payload follows the IP header as is.
    Pkt& l4_proto(uint8_t proto) {
        l4_ = L4::raw;
        proto_ = proto;
        return *this;
    }
    // ARP for IPv4 over Ethernet (RFC 826).
    Pkt& arp(uint16_t op, std::string_view sha, std::string_view spa, std::string_view tha, std::string_view tpa) {
        l3_ = L3::arp;
        arp_.clear();
        const uint8_t hdr[8] = {0, 1, 0x08, 0x00, 6, 4, static_cast<uint8_t>(op >> 8), static_cast<uint8_t>(op)};
        arp_.insert(arp_.end(), hdr, hdr + 8);
        auto a = mac(sha);
        arp_.insert(arp_.end(), a.begin(), a.end());
        auto b = ip4(spa);
        arp_.insert(arp_.end(), b.begin(), b.end());
        auto c = mac(tha);
        arp_.insert(arp_.end(), c.begin(), c.end());
        auto d = ip4(tpa);
        arp_.insert(arp_.end(), d.begin(), d.end());
        return *this;
    }
    Pkt& arp_request(std::string_view sha, std::string_view spa, std::string_view tpa) {
        return arp(1, sha, spa, "00:00:00:00:00:00", tpa);
    }
    // n payload bytes with a fixed pattern (i * 7 + 1).
    Pkt& payload(size_t n) {
        payload_.resize(n);
        for (size_t i = 0; i < n; ++i) payload_[i] = static_cast<uint8_t>(i * 7 + 1);
        return *this;
    }
    Pkt& payload(const Bytes& b) {
        payload_ = b;
        return *this;
    }

    // --- Field values and corruption knobs ---------------------------------------------------
    Pkt& ip_options(size_t words) {  // IHL = 5 + words, options are NOPs
        ip_opt_words_ = words;
        return *this;
    }
    Pkt& ihl(uint8_t v) {  // lie in the IHL field only (header bytes unchanged)
        ihl_field_ = v;
        return *this;
    }
    Pkt& ip_version(uint8_t v) {
        version_ = v;
        return *this;
    }
    Pkt& total_len(uint16_t v) {  // IPv4 total length field
        total_len_ = v;
        return *this;
    }
    Pkt& payload_len(uint16_t v) {  // IPv6 payload length field
        total_len_ = v;
        return *this;
    }
    Pkt& ip_csum(uint16_t v) {  // forced IPv4 header checksum
        ip_csum_ = v;
        return *this;
    }
    Pkt& ip_id(uint16_t v) {
        ip_id_ = v;
        return *this;
    }
    Pkt& df() {
        df_ = true;
        return *this;
    }
    // IPv4 fragment fields (offset in 8-byte units); for IPv6 the values of a fragment ext header.
    Pkt& frag(bool more_fragments, uint16_t offset_units) {
        mf_ = more_fragments;
        frag_off_ = offset_units;
        return *this;
    }
    // Appends an IPv6 extension header to the chain: hop-by-hop (0), routing (43), fragment (44),
    // destination options (60), AH (51), ... `len_units` is the Hdr Ext Len field (8-byte units
    // beyond the first 8); the fragment header is always 8 bytes.
    Pkt& ext(uint8_t type, uint8_t len_units = 0) {
        exts_.push_back({type, len_units});
        return *this;
    }
    Pkt& tcp_options(size_t words) {  // data offset = 5 + words, options are NOPs
        tcp_opt_words_ = words;
        return *this;
    }
    Pkt& tcp_doff(uint8_t words) {  // lie in the data offset field only
        tcp_doff_ = words;
        return *this;
    }
    Pkt& seq(uint32_t v) {
        seq_ = v;
        return *this;
    }
    Pkt& ack(uint32_t v) {
        ack_ = v;
        return *this;
    }
    Pkt& udp_len(uint16_t v) {  // lie in the UDP length field
        udp_len_ = v;
        return *this;
    }
    Pkt& l4_csum(uint16_t v) {  // forced transport checksum (e.g. UDP 0 = "no checksum")
        l4_csum_ = v;
        return *this;
    }
    Pkt& pad_to(size_t n) {  // Ethernet padding after the IP packet (zeros)
        pad_to_ = n;
        return *this;
    }
    Pkt& truncate(size_t n) {
        truncate_ = n;
        return *this;
    }

    Bytes build() const {
        // Transport.
        Bytes l4;
        switch (l4_) {
            case L4::none: break;
            case L4::tcp: {
                const size_t hl = 20 + 4 * tcp_opt_words_;
                l4.assign(hl, 0);
                put16(l4, 0, sport_);
                put16(l4, 2, dport_);
                put32(l4, 4, seq_);
                put32(l4, 8, ack_);
                l4[12] = static_cast<uint8_t>((tcp_doff_ ? *tcp_doff_ : hl / 4) << 4);
                l4[13] = tcp_flags_;
                put16(l4, 14, 0xFFFF);  // window
                for (size_t i = 20; i < hl; ++i) l4[i] = 1;  // NOP options
                break;
            }
            case L4::udp:
                l4.assign(8, 0);
                put16(l4, 0, sport_);
                put16(l4, 2, dport_);
                break;
            case L4::icmp:
            case L4::icmpv6:
                l4.assign(4, 0);
                l4[0] = icmp_type_;
                l4[1] = icmp_code_;
                if (icmp_body_) {
                    l4.insert(l4.end(), icmp_body_->begin(), icmp_body_->end());
                } else {
                    const uint8_t idseq[4] = {0x12, 0x34, 0x00, 0x01};
                    l4.insert(l4.end(), idseq, idseq + 4);
                }
                break;
            case L4::raw: break;
        }
        l4.insert(l4.end(), payload_.begin(), payload_.end());
        if (l4_ == L4::udp) put16(l4, 4, udp_len_ ? *udp_len_ : static_cast<uint16_t>(l4.size()));
        if (l3_ != L3::arp) fill_l4_csum(l4);

        // Network layer.
        Bytes l3;
        uint16_t type = 0x88B5;  // IEEE local experimental: what a frame without L3 carries
        if (l3_ == L3::v4) {
            type = 0x0800;
            const size_t hl = 20 + 4 * ip_opt_words_;
            l3.assign(hl, 0);
            l3[0] = static_cast<uint8_t>(version_.value_or(4) << 4 | (ihl_field_ ? *ihl_field_ : hl / 4));
            put16(l3, 2, total_len_ ? *total_len_ : static_cast<uint16_t>(hl + l4.size()));
            put16(l3, 4, ip_id_);
            put16(l3, 6, static_cast<uint16_t>((df_ ? 0x4000 : 0) | (mf_ ? 0x2000 : 0) | (frag_off_ & 0x1FFF)));
            l3[8] = ttl_;
            l3[9] = proto_;
            std::copy(src_.begin(), src_.end(), l3.begin() + 12);
            std::copy(dst_.begin(), dst_.end(), l3.begin() + 16);
            for (size_t i = 20; i < hl; ++i) l3[i] = 1;  // NOP options
            put16(l3, 10, ip_csum_ ? *ip_csum_ : ref_csum(l3.data(), hl));
        } else if (l3_ == L3::v6) {
            type = 0x86DD;
            Bytes ext;
            for (size_t i = 0; i < exts_.size(); ++i) {
                const uint8_t next = i + 1 < exts_.size() ? exts_[i + 1].type : proto_;
                const size_t n = exts_[i].type == 44 ? 8 : 8 * (exts_[i].len_units + 1u);
                Bytes h(n, 0);
                h[0] = next;
                if (exts_[i].type == 44) {
                    put16(h, 2, static_cast<uint16_t>(frag_off_ << 3 | (mf_ ? 1 : 0)));
                    put32(h, 4, 0xC0FFEE01);
                } else {
                    h[1] = exts_[i].len_units;  // options area: Pad1 zeros; routing: type 0, 0 left
                }
                ext.insert(ext.end(), h.begin(), h.end());
            }
            l3.assign(40, 0);
            put32(l3, 0, static_cast<uint32_t>(version_.value_or(6)) << 28);
            put16(l3, 4, total_len_ ? *total_len_ : static_cast<uint16_t>(ext.size() + l4.size()));
            l3[6] = exts_.empty() ? proto_ : exts_[0].type;
            l3[7] = ttl_;
            std::copy(src_.begin(), src_.end(), l3.begin() + 8);
            std::copy(dst_.begin(), dst_.end(), l3.begin() + 24);
            l3.insert(l3.end(), ext.begin(), ext.end());
        } else if (l3_ == L3::arp) {
            type = 0x0806;
            l3 = arp_;
        }

        Bytes f(12);
        std::copy(eth_dst_.begin(), eth_dst_.end(), f.begin());
        std::copy(eth_src_.begin(), eth_src_.end(), f.begin() + 6);
        for (const auto& v : vlans_) {
            f.push_back(static_cast<uint8_t>(v.tpid >> 8));
            f.push_back(static_cast<uint8_t>(v.tpid));
            f.push_back(static_cast<uint8_t>(v.id >> 8));
            f.push_back(static_cast<uint8_t>(v.id));
        }
        type = ethertype_.value_or(type);
        f.push_back(static_cast<uint8_t>(type >> 8));
        f.push_back(static_cast<uint8_t>(type));
        f.insert(f.end(), l3.begin(), l3.end());
        if (l3_ != L3::arp) f.insert(f.end(), l4.begin(), l4.end());
        if (pad_to_ && f.size() < *pad_to_) f.resize(*pad_to_, 0);
        if (truncate_ && f.size() > *truncate_) f.resize(*truncate_);
        return f;
    }

private:
    enum class L3 { none, v4, v6, arp };
    enum class L4 { none, tcp, udp, icmp, icmpv6, raw };
    struct Tag { uint16_t tpid, id; };
    struct Ext { uint8_t type, len_units; };

    static void put16(Bytes& b, size_t off, uint16_t v) {
        b[off] = static_cast<uint8_t>(v >> 8);
        b[off + 1] = static_cast<uint8_t>(v);
    }
    static void put32(Bytes& b, size_t off, uint32_t v) {
        put16(b, off, static_cast<uint16_t>(v >> 16));
        put16(b, off + 2, static_cast<uint16_t>(v));
    }

    // Pseudo-header sum (RFC 793 §3.1 / RFC 8200 §8.1) for the transport checksum.
    uint32_t pseudo_sum(size_t l4_len) const {
        Bytes ph;
        ph.insert(ph.end(), src_.begin(), src_.end());
        ph.insert(ph.end(), dst_.begin(), dst_.end());
        if (l3_ == L3::v4) {
            const uint8_t t[4] = {0, proto_, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
            ph.insert(ph.end(), t, t + 4);
        } else {
            const uint8_t t[8] = {static_cast<uint8_t>(l4_len >> 24), static_cast<uint8_t>(l4_len >> 16),
                                  static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len), 0, 0, 0, proto_};
            ph.insert(ph.end(), t, t + 8);
        }
        return ref_sum(ph.data(), ph.size());
    }

    void fill_l4_csum(Bytes& l4) const {
        size_t at;
        switch (l4_) {
            case L4::tcp: at = 16; break;
            case L4::udp: at = 6; break;
            case L4::icmp:
            case L4::icmpv6: at = 2; break;
            default: return;
        }
        if (l4.size() < at + 2) return;
        uint16_t c;
        if (l4_csum_) {
            c = *l4_csum_;
        } else if (l4_ == L4::icmp) {
            c = ref_csum(l4.data(), l4.size());
        } else {
            c = ref_csum(l4.data(), l4.size(), pseudo_sum(l4.size()));
            if (l4_ == L4::udp && c == 0) c = 0xFFFF;  // RFC 768: 0 means "no checksum"
        }
        put16(l4, at, c);
    }

    std::array<uint8_t, 6> eth_src_ = {2, 0, 0, 0, 0, 1};
    std::array<uint8_t, 6> eth_dst_ = {2, 0, 0, 0, 0, 2};
    std::optional<uint16_t> ethertype_;
    std::vector<Tag> vlans_;
    L3 l3_ = L3::none;
    L4 l4_ = L4::none;
    Bytes src_, dst_, arp_, payload_;
    std::optional<Bytes> icmp_body_;
    std::vector<Ext> exts_;
    uint8_t ttl_ = 64, proto_ = 0, tcp_flags_ = 0, icmp_type_ = 0, icmp_code_ = 0;
    uint16_t sport_ = 0, dport_ = 0, ip_id_ = 0x1c46, frag_off_ = 0;
    uint32_t seq_ = 0x11223344, ack_ = 0x11223345;  // by default an ACK acknowledges a SYN-ACK
    bool df_ = false, mf_ = false;
    size_t ip_opt_words_ = 0, tcp_opt_words_ = 0;
    std::optional<uint8_t> ihl_field_, version_, tcp_doff_;
    std::optional<uint16_t> total_len_, ip_csum_, udp_len_, l4_csum_;
    std::optional<size_t> pad_to_, truncate_;
};

// Independent check of a frame's checksums: the IPv4 header checksum and the TCP, UDP, ICMP or
// ICMPv6 checksum (with the pseudo-header). Walks Ethernet, any 802.1Q tags, IPv4 (any IHL) or
// IPv6 (hop-by-hop, routing and destination options skipped). An IPv4 UDP checksum of 0
// ("none") counts as valid. Returns false on anything it cannot walk.
inline bool checksums_ok(const Bytes& f) {
    auto be16 = [&](size_t o) { return static_cast<uint16_t>(f[o] << 8 | f[o + 1]); };
    size_t off = 12;
    if (f.size() < 14) return false;
    uint16_t type = be16(off);
    while (type == 0x8100 || type == 0x88A8) {
        off += 4;
        if (f.size() < off + 2) return false;
        type = be16(off);
    }
    off += 2;
    size_t l4_off, l4_len;
    uint8_t proto;
    uint64_t pseudo = 0;
    if (type == 0x0800) {
        if (f.size() < off + 20) return false;
        const size_t hl = (f[off] & 0x0F) * 4u;
        const size_t total = be16(off + 2);
        if (hl < 20 || f.size() < off + total || total < hl) return false;
        if (ref_sum(f.data() + off, hl) != 0xFFFF) return false;
        proto = f[off + 9];
        l4_off = off + hl;
        l4_len = total - hl;
        pseudo = ref_sum(f.data() + off + 12, 8) + proto + l4_len;
    } else if (type == 0x86DD) {
        if (f.size() < off + 40) return false;
        const size_t end = off + 40 + be16(off + 4);
        if (f.size() < end) return false;
        proto = f[off + 6];
        size_t pos = off + 40;
        while (proto == 0 || proto == 43 || proto == 60) {
            if (pos + 8 > end) return false;
            proto = f[pos];
            pos += 8 * (f[pos + 1] + 1u);
        }
        if (pos > end) return false;
        l4_off = pos;
        l4_len = end - pos;
        pseudo = ref_sum(f.data() + off + 8, 32) + proto + l4_len;
    } else {
        return false;
    }
    switch (proto) {
        case 6:
            if (l4_len < 20) return false;
            return ref_sum(f.data() + l4_off, l4_len, pseudo) == 0xFFFF;
        case 17:
            if (l4_len < 8) return false;
            if (type == 0x0800 && be16(l4_off + 6) == 0) return true;
            return ref_sum(f.data() + l4_off, l4_len, pseudo) == 0xFFFF;
        case 1: return l4_len >= 8 && ref_sum(f.data() + l4_off, l4_len) == 0xFFFF;
        case 58: return l4_len >= 8 && ref_sum(f.data() + l4_off, l4_len, pseudo) == 0xFFFF;
        default: return true;
    }
}

}  // namespace sluice::test
