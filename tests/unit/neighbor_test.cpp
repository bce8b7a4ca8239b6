#include <cstring>

#include <catch2/catch.hpp>

#include "lib/net/checksum.hpp"
#include "lib/net/neighbor.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/wire.hpp"

using namespace sluice::net;

namespace {
IpAddr ip(const char* s) { return *parse_ip(s); }
const Mac kMine{{0x02, 0, 0, 0, 0, 0x01}};
const Mac kTheirs{{0x02, 0, 0, 0, 0xb1, 0x02}};
}  // namespace

TEST_CASE("an ARP request is a valid frame and its answer teaches the binding", "[neighbor]") {
    uint8_t f[kMaxRequestLen];
    const size_t n = build_arp_request(f, kMine, ip("198.51.100.1"), ip("198.51.100.12"));
    REQUIRE(n == 60);
    ParsedPacket pp;
    REQUIRE(parse_packet_general(f, static_cast<uint32_t>(n), pp) == ParseStatus::ok);
    CHECK(pp.l3 == L3::arp);
    // The request itself vouches for its sender.
    auto self = learn_neighbor(f, n);
    REQUIRE(self);
    CHECK(self->first == ip("198.51.100.1"));
    CHECK(self->second == kMine);

    // Turn it into the backend's reply.
    uint8_t* a = f + kEthHdrLen;
    store_be16(a + ArpOff::op, 2);
    std::memcpy(a + ArpOff::tha, a + ArpOff::sha, 6);
    std::memcpy(a + ArpOff::tpa, a + ArpOff::spa, 4);
    std::memcpy(a + ArpOff::sha, kTheirs.bytes.data(), 6);
    const auto t = ip("198.51.100.12");
    std::memcpy(a + ArpOff::spa, t.bytes.data(), 4);
    auto got = learn_neighbor(f, n);
    REQUIRE(got);
    CHECK(got->first == t);
    CHECK(got->second == kTheirs);

    SECTION("malformed or useless ARP teaches nothing") {
        CHECK_FALSE(learn_neighbor(f, 30));  // truncated
        uint8_t g[60];
        std::memcpy(g, f, 60);
        std::memset(g + kEthHdrLen + ArpOff::sha, 0xFF, 6);  // broadcast sender MAC
        CHECK_FALSE(learn_neighbor(g, 60));
        std::memcpy(g, f, 60);
        std::memset(g + kEthHdrLen + ArpOff::spa, 0, 4);  // probe
        CHECK_FALSE(learn_neighbor(g, 60));
        std::memcpy(g, f, 60);
        store_be16(g + kEthHdrLen + ArpOff::op, 3);
        CHECK_FALSE(learn_neighbor(g, 60));
    }
}

TEST_CASE("a neighbour solicitation is valid ICMPv6 and an advertisement teaches the binding", "[neighbor]") {
    uint8_t f[kMaxRequestLen];
    const auto target = ip("2001:db8:2::12");
    const size_t n = build_neighbor_solicit(f, kMine, ip("2001:db8:2::1"), target);
    REQUIRE(n == kEthHdrLen + kIpv6HdrLen + 32);
    ParsedPacket pp;
    REQUIRE(parse_packet_general(f, static_cast<uint32_t>(n), pp) == ParseStatus::ok);
    REQUIRE(pp.l4_proto == kIpProtoIcmpv6);
    const uint8_t* ipv6 = f + pp.l3_off;
    // Solicited-node group of ::12 and its MAC.
    CHECK(ipv6[Ipv6Off::dst] == 0xff);
    CHECK(ipv6[Ipv6Off::dst + 15] == 0x12);
    CHECK(f[0] == 0x33);
    CHECK(f[5] == 0x12);
    // The checksum over the pseudo header verifies.
    CHECK(csum_fold(csum_partial(f + pp.l4_off, 32, pseudo_sum_v6(ipv6 + Ipv6Off::src, ipv6 + Ipv6Off::dst,
                                                                    kIpProtoIcmpv6, 32))) == 0xFFFF);
    auto sender = learn_neighbor(f, n);
    REQUIRE(sender);
    CHECK(sender->first == ip("2001:db8:2::1"));

    // The advertisement: type 136, target link-layer address option.
    uint8_t* icmp = f + pp.l4_off;
    icmp[IcmpOff::type] = kIcmp6NeighborAdvert;
    icmp[24] = 2;
    std::memcpy(icmp + 26, kTheirs.bytes.data(), 6);
    auto got = learn_neighbor(f, n);
    REQUIRE(got);
    CHECK(got->first == target);
    CHECK(got->second == kTheirs);

    SECTION("bad hop limit, zero-length option, DAD: nothing learnt") {
        uint8_t g[kMaxRequestLen];
        std::memcpy(g, f, n);
        g[pp.l3_off + Ipv6Off::hop_limit] = 64;
        CHECK_FALSE(learn_neighbor(g, n));
        std::memcpy(g, f, n);
        g[pp.l4_off + 25] = 0;
        CHECK_FALSE(learn_neighbor(g, n));
        std::memcpy(g, f, n);
        g[pp.l4_off] = kIcmp6NeighborSolicit;
        std::memset(g + pp.l3_off + Ipv6Off::src, 0, 16);
        CHECK_FALSE(learn_neighbor(g, n));
    }
}
