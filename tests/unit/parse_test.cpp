// Tests for lib/net/parse: one table row per packet shape (description, packet built with the
// fluent builder, expected status, expected offsets/ports/flags when the parse succeeds),
// covering every ParseStatus; then truncation of valid packets at every byte and random
// mutations, which must never crash nor report ok for headers that are not all there.
// Pure C++: no EAL.
#include "lib/net/parse.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lib/net/wire.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::net;
using sluice::test::Bytes;
using sluice::test::Pkt;
using sluice::test::kAck;
using sluice::test::kFin;
using sluice::test::kPsh;
using sluice::test::kSyn;

constexpr const char* kC4 = "10.0.0.1";
constexpr const char* kV4 = "203.0.113.10";
constexpr const char* kC6 = "2001:db8::1";
constexpr const char* kV6 = "2001:db8::10";

struct Want {
    L3 l3;
    bool vlan;
    uint8_t proto;
    uint8_t flags;
    uint16_t l3_off, l4_off, l4_len, ip_end;
    uint16_t sport, dport;  // host order
};

struct Row {
    const char* what;
    Bytes pkt;
    ParseStatus status;
    std::optional<Want> want;  // checked when status is ok
};

uint16_t host(uint16_t raw) {
    uint8_t b[2];
    std::memcpy(b, &raw, 2);
    return static_cast<uint16_t>(b[0] << 8 | b[1]);
}

Pkt tcp4() { return Pkt().ipv4(kC4, kV4).tcp(40000, 80, kSyn); }
Pkt tcp6() { return Pkt().ipv6(kC6, kV6).tcp(40000, 80, kSyn); }

// Six destination-options headers after a hop-by-hop one: seven in all.
Pkt ext_chain(int n) {
    Pkt p = Pkt().ipv6(kC6, kV6);
    for (int i = 0; i < n; ++i) p.ext(i == 0 ? kIpProtoHopOpts : kIpProtoDstOpts);
    return p;
}

std::vector<Row> rows() {
    using S = ParseStatus;
    return {
        // --- accepted shapes ----------------------------------------------------------------
        {"tcp/ipv4", tcp4().payload(10).build(), S::ok, Want{L3::ipv4, false, 6, kSyn, 14, 34, 30, 64, 40000, 80}},
        {"tcp/ipv4 with TCP options (data offset 8)", tcp4().tcp_options(3).build(), S::ok,
         Want{L3::ipv4, false, 6, kSyn, 14, 34, 32, 66, 40000, 80}},
        {"tcp/ipv4 in an 802.1Q tag", Pkt().vlan(100).ipv4(kC4, kV4).tcp(1, 2, kAck | kPsh).payload(3).build(), S::ok,
         Want{L3::ipv4, true, 6, kAck | kPsh, 18, 38, 23, 61, 1, 2}},
        {"ipv4 IHL 6", tcp4().ip_options(1).build(), S::ok, Want{L3::ipv4, false, 6, kSyn, 14, 38, 20, 58, 40000, 80}},
        {"ipv4 IHL 15 (maximum options)", tcp4().ip_options(10).build(), S::ok,
         Want{L3::ipv4, false, 6, kSyn, 14, 74, 20, 94, 40000, 80}},
        {"ipv4 DF is not a fragment", tcp4().df().build(), S::ok, Want{L3::ipv4, false, 6, kSyn, 14, 34, 20, 54, 40000, 80}},
        {"udp/ipv4", Pkt().ipv4(kC4, kV4).udp(5353, 53).payload(12).build(), S::ok,
         Want{L3::ipv4, false, 17, 0, 14, 34, 20, 54, 5353, 53}},
        {"icmp echo/ipv4", Pkt().ipv4(kC4, kV4).icmp(kIcmpEchoRequest).payload(4).build(), S::ok,
         Want{L3::ipv4, false, 1, 0, 14, 34, 12, 46, 0, 0}},
        {"gre/ipv4 (other protocols are left to the classifier)", Pkt().ipv4(kC4, kV4).l4_proto(47).payload(4).build(),
         S::ok, Want{L3::ipv4, false, 47, 0, 14, 34, 4, 38, 0, 0}},
        {"tcp/ipv4 SYN padded to 60 bytes", tcp4().pad_to(60).build(), S::ok,
         Want{L3::ipv4, false, 6, kSyn, 14, 34, 20, 54, 40000, 80}},
        {"udp/ipv4 padded to 60 bytes: UDP length matches the IP packet, not the frame",
         Pkt().ipv4(kC4, kV4).udp(1000, 53).payload(2).pad_to(60).build(), S::ok,
         Want{L3::ipv4, false, 17, 0, 14, 34, 10, 44, 1000, 53}},
        {"tcp/ipv6", tcp6().payload(10).build(), S::ok, Want{L3::ipv6, false, 6, kSyn, 14, 54, 30, 84, 40000, 80}},
        {"tcp/ipv6 in an 802.1Q tag", Pkt().vlan(7).ipv6(kC6, kV6).tcp(9, 10, kFin | kAck).build(), S::ok,
         Want{L3::ipv6, true, 6, kFin | kAck, 18, 58, 20, 78, 9, 10}},
        {"udp/ipv6 padded", Pkt().ipv6(kC6, kV6).udp(7, 8).pad_to(128).build(), S::ok,
         Want{L3::ipv6, false, 17, 0, 14, 54, 8, 62, 7, 8}},
        {"ipv6 hop-by-hop + tcp", tcp6().ext(kIpProtoHopOpts).build(), S::ok,
         Want{L3::ipv6, false, 6, kSyn, 14, 62, 20, 82, 40000, 80}},
        {"ipv6 hop-by-hop(16) + routing(8) + dst-opts(24) + udp",
         Pkt().ipv6(kC6, kV6).ext(kIpProtoHopOpts, 1).ext(kIpProtoRouting).ext(kIpProtoDstOpts, 2).udp(1, 2).build(),
         S::ok, Want{L3::ipv6, false, 17, 0, 14, 102, 8, 110, 1, 2}},
        {"ipv6 seven extension headers", ext_chain(7).tcp(1, 2, kSyn).build(), S::ok,
         Want{L3::ipv6, false, 6, kSyn, 14, 110, 20, 130, 1, 2}},
        {"icmpv6 neighbour solicitation", Pkt().ipv6(kC6, "ff02::1:ff00:10", 255).nd_solicit(kV6).build(), S::ok,
         Want{L3::ipv6, false, 58, 0, 14, 54, 24, 78, 0, 0}},
        {"arp request", Pkt().arp_request("02:00:00:00:00:01", kC4, kV4).build(), S::ok,
         Want{L3::arp, false, 0, 0, 14, 0, 0, 0, 0, 0}},
        {"arp request in an 802.1Q tag, padded", Pkt().vlan(5).arp_request("02:00:00:00:00:01", kC4, kV4).pad_to(64).build(),
         S::ok, Want{L3::arp, true, 0, 0, 18, 0, 0, 0, 0, 0}},

        // --- runt / vlan / ethertype / arp ---------------------------------------------------
        {"empty frame", Bytes{}, S::runt, {}},
        {"13 bytes", tcp4().truncate(13).build(), S::runt, {}},
        {"802.1Q tag cut short", Pkt().vlan(1).ipv4(kC4, kV4).tcp(1, 2).truncate(17).build(), S::bad_vlan, {}},
        {"stacked 802.1Q tags", Pkt().vlan(1).vlan(2).ipv4(kC4, kV4).tcp(1, 2).build(), S::bad_vlan, {}},
        {"802.1Q then 802.1ad tag", Pkt().vlan(1).vlan(2, 0x88A8).ipv4(kC4, kV4).tcp(1, 2).build(), S::bad_vlan, {}},
        {"unknown ethertype", Pkt().ethertype(0x88B5).payload(50).build(), S::unknown_ethertype, {}},
        {"outer 802.1ad tag is not parsed", Pkt().vlan(1, 0x88A8).ipv4(kC4, kV4).tcp(1, 2).build(),
         S::unknown_ethertype, {}},
        {"arp cut at 27 bytes of ARP", Pkt().arp_request("02:00:00:00:00:01", kC4, kV4).truncate(41).build(),
         S::truncated_arp, {}},

        // --- IPv4 header -----------------------------------------------------------------------
        {"ipv4 header cut at 19 bytes", tcp4().truncate(33).build(), S::truncated_l3, {}},
        {"ipv6 header cut at 39 bytes", tcp6().truncate(53).build(), S::truncated_l3, {}},
        {"ipv4 ethertype, version 6", tcp4().ip_version(6).build(), S::bad_ip_version, {}},
        {"ipv6 ethertype, version 4", tcp6().ip_version(4).build(), S::bad_ip_version, {}},
        {"IHL 4", tcp4().ihl(4).build(), S::bad_ihl, {}},
        {"IHL 0", tcp4().ihl(0).build(), S::bad_ihl, {}},
        {"IHL 15 beyond a 20-byte frame tail", Pkt().ipv4(kC4, kV4).l4_proto(253).payload(10).ihl(15).build(), S::bad_ihl,
         {}},
        {"total length beyond the frame", tcp4().total_len(41).build(), S::bad_ip_length, {}},
        {"total length below IHL", tcp4().total_len(19).build(), S::bad_ip_length, {}},
        {"total length below IHL 6", tcp4().ip_options(1).total_len(20).build(), S::bad_ip_length, {}},
        {"ipv6 payload length beyond the frame", tcp6().payload_len(21).build(), S::bad_ip_length, {}},
        {"bad header checksum", tcp4().ip_csum(0xdead).build(), S::bad_ip_checksum, {}},
        {"checksum checked over the options too", tcp4().ip_options(2).ip_csum(0).build(), S::bad_ip_checksum, {}},
        {"ipv4 loose source route", [] {
             Bytes b = tcp4().ip_options(2).build();
             const uint8_t lsrr[8] = {0x83, 7, 4, 192, 0, 2, 200, 0};  // LSRR via 192.0.2.200, then EOL
             std::memcpy(&b[14 + 20], lsrr, 8);
             b[14 + 10] = b[14 + 11] = 0;
             const uint16_t c = sluice::test::ref_csum(&b[14], 28);
             b[14 + 10] = static_cast<uint8_t>(c >> 8);
             b[14 + 11] = static_cast<uint8_t>(c);
             return b;
         }(), S::source_route, {}},

        // --- fragments ---------------------------------------------------------------------------
        {"ipv4 first fragment (MF)", tcp4().frag(true, 0).build(), S::ok,
         Want{L3::ipv4, false, 6, kSyn, 14, 34, 20, 54, 40000, 80}},
        {"ipv4 last fragment (offset 185): payload only", Pkt().ipv4(kC4, kV4).udp(1, 2).frag(false, 185).build(), S::ok,
         Want{L3::ipv4, false, 17, 0, 14, 34, 8, 42, 0, 0}},
        {"ipv4 TCP fragment at offset 1 (RFC 1858 overlap)", tcp4().df().frag(true, 1).build(), S::bad_fragment, {}},
        {"ipv4 first fragment with 12 bytes of TCP (RFC 1858 tiny)", tcp4().frag(true, 0).total_len(32).build(),
         S::bad_fragment, {}},
        {"ipv4 first UDP fragment whose UDP length fits in it", Pkt().ipv4(kC4, kV4).udp(1, 2).payload(8).frag(true, 0).build(),
         S::bad_l4_length, {}},
        {"ipv6 first fragment", tcp6().ext(kIpProtoFragment).frag(true, 0).build(), S::ok,
         Want{L3::ipv6, false, 6, kSyn, 14, 62, 20, 82, 40000, 80}},
        {"ipv6 atomic fragment after hop-by-hop is a plain packet",
         tcp6().ext(kIpProtoHopOpts).ext(kIpProtoFragment).build(), S::ok,
         Want{L3::ipv6, false, 6, kSyn, 14, 70, 20, 90, 40000, 80}},

        // --- IPv6 extension headers ------------------------------------------------------------
        {"eight extension headers", ext_chain(8).tcp(1, 2, kSyn).build(), S::bad_ext_header, {}},
        {"hop-by-hop not first", tcp6().ext(kIpProtoDstOpts).ext(kIpProtoHopOpts).build(), S::bad_ext_header, {}},
        {"extension header cut by the payload length", tcp6().ext(kIpProtoHopOpts).payload_len(4).build(),
         S::bad_ext_header, {}},
        {"extension header longer than the payload", tcp6().ext(kIpProtoDstOpts, 3).payload_len(16).build(),
         S::bad_ext_header, {}},
        {"ipv6 AH", tcp6().ext(kIpProtoAh).build(), S::bad_ext_header, {}},
        {"ipv6 ESP", Pkt().ipv6(kC6, kV6).l4_proto(kIpProtoEsp).payload(40).build(), S::bad_ext_header, {}},
        {"ipv6 no next header", Pkt().ipv6(kC6, kV6).l4_proto(kIpProtoNone).build(), S::bad_ext_header, {}},
        {"ipv6 routing header with segments left", [] {
             Bytes b = tcp6().ext(kIpProtoRouting).build();
             b[14 + 40 + 3] = 1;  // not the final destination: its checksum covers another address
             return b;
         }(), S::bad_ext_header, {}},

        // --- transport ---------------------------------------------------------------------------
        {"tcp/ipv4 with 10 bytes of TCP", tcp4().total_len(30).build(), S::truncated_l4, {}},
        {"tcp/ipv6 with 19 bytes of TCP", tcp6().payload_len(19).build(), S::truncated_l4, {}},
        {"tcp/ipv6, jumbo-style payload length 0", tcp6().payload_len(0).build(), S::truncated_l4, {}},
        {"udp/ipv4 with 7 bytes of UDP", Pkt().ipv4(kC4, kV4).udp(1, 2).total_len(27).build(), S::truncated_l4, {}},
        {"icmp/ipv4 with 4 bytes", Pkt().ipv4(kC4, kV4).icmp(8).total_len(24).build(), S::truncated_l4, {}},
        {"icmpv6 with 7 bytes", Pkt().ipv6(kC6, kV6).icmpv6(128).payload_len(7).build(), S::truncated_l4, {}},
        {"TCP data offset 4", tcp4().tcp_doff(4).build(), S::bad_l4_length, {}},
        {"TCP data offset 6 past the end of a bare header", tcp4().tcp_doff(6).build(), S::bad_l4_length, {}},
        {"TCP data offset 15 past the end (IPv6)", tcp6().payload(39).tcp_doff(15).build(), S::bad_l4_length, {}},
        {"UDP length larger than the IP payload", Pkt().ipv4(kC4, kV4).udp(1, 2).payload(10).udp_len(19).build(),
         S::bad_l4_length, {}},
        {"UDP length smaller than the IP payload", Pkt().ipv4(kC4, kV4).udp(1, 2).payload(10).udp_len(8).build(),
         S::bad_l4_length, {}},
        {"UDP length 7", Pkt().ipv6(kC6, kV6).udp(1, 2).payload(10).udp_len(7).build(), S::bad_l4_length, {}},
        {"UDP length counting the Ethernet padding", Pkt().ipv4(kC4, kV4).udp(1, 2).udp_len(26).pad_to(60).build(),
         S::bad_l4_length, {}},
    };
}

}  // namespace

TEST_CASE("parse_packet: table of packet shapes", "[parse]") {
    std::set<ParseStatus> seen;
    for (const auto& r : rows()) {
        INFO(r.what << "\n" << sluice::test::hexdump(r.pkt));
        ParsedPacket pp;
        pp.l4_off = 0xBEEF;  // parse_packet must reset the output
        const ParseStatus st = parse_packet(r.pkt.data(), static_cast<uint32_t>(r.pkt.size()), pp);
        CHECK(std::string(to_string(st)) == to_string(r.status));
        seen.insert(st);
        if (st != ParseStatus::ok || !r.want) continue;
        const Want& w = *r.want;
        CHECK(pp.l3 == w.l3);
        CHECK(pp.vlan == w.vlan);
        CHECK(pp.l3_off == w.l3_off);
        if (w.l3 == L3::arp) continue;
        CHECK(int(pp.l4_proto) == int(w.proto));
        CHECK(int(pp.tcp_flags) == int(w.flags));
        CHECK(pp.l4_off == w.l4_off);
        CHECK(pp.l4_len == w.l4_len);
        CHECK(pp.ip_end == w.ip_end);
        CHECK(host(pp.sport_raw) == w.sport);
        CHECK(host(pp.dport_raw) == w.dport);
        CHECK(pp.ip_end <= r.pkt.size());
    }
    // Every status the parser can return appears in the table.
    CHECK(seen.size() == static_cast<size_t>(ParseStatus::bad_l4_length) + 1);
}

TEST_CASE("parse_packet: fragments carry their identity; later ones no ports", "[parse]") {
    ParsedPacket pp;
    const Bytes first4 = tcp4().ip_id(0xBEEF).frag(true, 0).payload(16).build();
    REQUIRE(parse_packet(first4.data(), static_cast<uint32_t>(first4.size()), pp) == ParseStatus::ok);
    CHECK(pp.frag == Frag::first);
    CHECK(pp.frag_id == 0xBEEF);
    CHECK(host(pp.dport_raw) == 80);
    const Bytes later4 = tcp4().ip_id(0xBEEF).frag(false, 5).payload(16).build();
    REQUIRE(parse_packet(later4.data(), static_cast<uint32_t>(later4.size()), pp) == ParseStatus::ok);
    CHECK(pp.frag == Frag::later);
    CHECK(pp.frag_id == 0xBEEF);
    CHECK(pp.sport_raw == 0);
    CHECK(pp.dport_raw == 0);
    CHECK(pp.tcp_flags == 0);
    const Bytes later6 = Pkt().ipv6(kC6, kV6).udp(1, 2).ext(kIpProtoFragment).frag(false, 3).payload(8).build();
    REQUIRE(parse_packet(later6.data(), static_cast<uint32_t>(later6.size()), pp) == ParseStatus::ok);
    CHECK(pp.frag == Frag::later);
    CHECK(pp.frag_id == 0xC0FFEE01);
    CHECK(int(pp.l4_proto) == 17);
    CHECK(pp.l4_off == 14 + 40 + 8);
    const Bytes plain = tcp4().df().build();
    REQUIRE(parse_packet(plain.data(), static_cast<uint32_t>(plain.size()), pp) == ParseStatus::ok);
    CHECK(pp.frag == Frag::none);
    const Bytes two = tcp6().ext(kIpProtoFragment).ext(kIpProtoFragment).frag(true, 0).build();
    CHECK(parse_packet(two.data(), static_cast<uint32_t>(two.size()), pp) == ParseStatus::bad_ext_header);
}

TEST_CASE("parse_packet: every status has a name", "[parse]") {
    std::set<std::string> names;
    for (int s = 0; s <= static_cast<int>(ParseStatus::bad_l4_length); ++s) {
        const std::string n = to_string(static_cast<ParseStatus>(s));
        CHECK(n != "?");
        names.insert(n);
    }
    CHECK(names.size() == static_cast<size_t>(ParseStatus::bad_l4_length) + 1);
}

TEST_CASE("parse_packet: truncation at every byte of valid packets", "[parse]") {
    struct Shape {
        const char* what;
        Bytes full;
        uint32_t l3_off, l3_min, ihl;  // where the IP header starts, its fixed size, its IHL size
    };
    const std::vector<Shape> shapes = {
        {"tcp/ipv4", tcp4().payload(10).build(), 14, 20, 20},
        {"tcp/ipv4 IHL 7, TCP options", tcp4().ip_options(2).tcp_options(3).payload(5).build(), 14, 20, 28},
        {"tcp/ipv4 in a VLAN", Pkt().vlan(3).ipv4(kC4, kV4).tcp(1, 2, kAck).payload(7).build(), 18, 20, 20},
        {"tcp/ipv6", tcp6().payload(10).build(), 14, 40, 40},
        {"tcp/ipv6 with hop-by-hop and dst-opts", tcp6().ext(kIpProtoHopOpts).ext(kIpProtoDstOpts, 1).payload(3).build(),
         14, 40, 40},
        {"udp/ipv6 in a VLAN", Pkt().vlan(3).ipv6(kC6, kV6).udp(1, 2).payload(4).build(), 18, 40, 40},
    };
    for (const auto& s : shapes) {
        ParsedPacket pp;
        REQUIRE(parse_packet(s.full.data(), static_cast<uint32_t>(s.full.size()), pp) == ParseStatus::ok);
        for (uint32_t cut = 0; cut < s.full.size(); ++cut) {
            // An exact-size heap copy, so a sanitizer build would catch any read past the end.
            const std::vector<uint8_t> frame(s.full.begin(), s.full.begin() + cut);
            INFO(s.what << " cut at " << cut);
            const ParseStatus st = parse_packet(frame.data(), cut, pp);
            REQUIRE(st != ParseStatus::ok);
            ParseStatus want;
            if (cut < 14) want = ParseStatus::runt;
            else if (s.l3_off == 18 && cut < 18) want = ParseStatus::bad_vlan;
            else if (cut < s.l3_off + s.l3_min) want = ParseStatus::truncated_l3;
            else if (cut < s.l3_off + s.ihl) want = ParseStatus::bad_ihl;  // options cut
            else want = ParseStatus::bad_ip_length;  // the IP length field says more than is there
            CHECK(std::string(to_string(st)) == to_string(want));
        }
    }
}

TEST_CASE("parse_packet: random mutations never crash and ok results stay inside the frame", "[parse]") {
    std::mt19937 rng(7);
    const std::vector<Bytes> seeds = {
        tcp4().payload(10).build(),
        tcp6().ext(kIpProtoHopOpts).payload(10).build(),
        Pkt().vlan(9).ipv4(kC4, kV4).ip_options(1).udp(1, 2).payload(3).pad_to(64).build(),
        Pkt().ipv6(kC6, "ff02::1:ff00:10", 255).nd_solicit(kV6, "02:00:00:00:00:01").build(),
        Pkt().arp_request("02:00:00:00:00:01", kC4, kV4).build(),
    };
    size_t oks = 0;
    for (int iter = 0; iter < 100'000; ++iter) {
        Bytes f = seeds[rng() % seeds.size()];
        const int flips = 1 + static_cast<int>(rng() % 4);
        // Mutate the header area (the first 80 bytes), where the parser looks.
        for (int i = 0; i < flips; ++i) f[rng() % std::min<size_t>(f.size(), 80)] = static_cast<uint8_t>(rng());
        if (rng() % 4 == 0) f.resize(rng() % (f.size() + 1));
        const std::vector<uint8_t> frame(f);
        ParsedPacket pp;
        const ParseStatus st = parse_packet(frame.data(), static_cast<uint32_t>(frame.size()), pp);
        if (st != ParseStatus::ok) continue;
        ++oks;
        INFO("iteration " << iter << "\n" << sluice::test::hexdump(frame));
        if (pp.l3 == L3::arp) {
            REQUIRE(pp.l3_off + kArpIpv4Len <= frame.size());
            continue;
        }
        REQUIRE((pp.l3 == L3::ipv4 || pp.l3 == L3::ipv6));
        REQUIRE(pp.ip_end <= frame.size());
        REQUIRE(pp.l4_off <= pp.ip_end);
        REQUIRE(pp.l4_off + pp.l4_len == pp.ip_end);
        if (pp.l4_proto == kIpProtoTcp) {
            REQUIRE(pp.l4_len >= kTcpMinHdrLen);
            REQUIRE((frame[pp.l4_off + TcpOff::off] >> 4) * 4u <= pp.l4_len);
        }
        if (pp.l4_proto == kIpProtoUdp) REQUIRE(pp.l4_len >= kUdpHdrLen);
        if (pp.l4_proto == kIpProtoIcmp || pp.l4_proto == kIpProtoIcmpv6) REQUIRE(pp.l4_len >= kIcmpHdrLen);
    }
    CHECK(oks > 1000);  // the mutations leave plenty of valid packets to check
}

TEST_CASE("parse: the 20-byte header check agrees with an RFC 1071 sum", "[parse]") {
    // The fast check reduces the header's plain sum modulo 0xFFFF; the reference folds
    // carries word by word. Random headers, half of them given their correct checksum, and
    // both encodings of a zero checksum (0x0000 and 0xFFFF), all-zero and all-ones headers.
    std::mt19937 rng(7);
    int valid = 0;
    for (int iter = 0; iter < 200000; ++iter) {
        uint8_t h[20];
        for (auto& b : h) b = static_cast<uint8_t>(rng());
        if (iter % 7 == 0) std::memset(h, iter % 14 == 0 ? 0x00 : 0xFF, sizeof h);
        if (iter % 2 == 0) {
            h[10] = h[11] = 0;
            const uint16_t c = sluice::test::ref_csum(h, sizeof h);
            h[10] = static_cast<uint8_t>(c >> 8);
            h[11] = static_cast<uint8_t>(c);
        }
        if (iter % 4 == 2 && h[10] == 0 && h[11] == 0) h[10] = h[11] = 0xFF;  // -0 for +0
        const bool ok = sluice::test::ref_csum(h, sizeof h) == 0;
        INFO("iteration " << iter);
        REQUIRE(detail::ipv4_header_csum_ok20(h) == ok);
        valid += ok;
    }
    CHECK(valid > 90000);
}
