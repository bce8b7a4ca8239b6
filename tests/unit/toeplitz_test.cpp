// Tests for lib/net/toeplitz: the Microsoft RSS verification suite ("Verifying the RSS Hash
// Calculation": IPv4 and IPv6, with and without ports, default 40-byte key) against both the
// table implementation and the bit-serial reference; table == reference on random keys and
// inputs; linearity over XOR (which pick_snat relies on); the round-robin redirection table.
// Pure C++: no EAL.
#include "lib/net/toeplitz.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::net;

uint16_t raw_port(uint16_t p) {
    const uint8_t b[2] = {static_cast<uint8_t>(p >> 8), static_cast<uint8_t>(p)};
    uint16_t r;
    std::memcpy(&r, b, 2);
    return r;
}

struct Vector {
    const char* src;
    uint16_t sport;
    const char* dst;
    uint16_t dport;
    uint32_t addrs_only;
    uint32_t with_ports;
};

// The verification table (destination/source columns reordered as the hash input is laid out:
// source address, destination address, source port, destination port).
const Vector kV4[] = {
    {"66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178},
    {"199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea},
    {"24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a},
    {"38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f},
    {"153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2},
};
const Vector kV6[] = {
    {"3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5, 0x40207d3d},
    {"3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461c, 0xdde51bbf},
    {"3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61e985, 0x02d1feef},
};

template <size_t N>
std::vector<uint8_t> input(const std::array<uint8_t, N>& s, const std::array<uint8_t, N>& d, uint16_t sp, uint16_t dp,
                           bool ports) {
    std::vector<uint8_t> in(s.begin(), s.end());
    in.insert(in.end(), d.begin(), d.end());
    if (ports) {
        in.push_back(static_cast<uint8_t>(sp >> 8));
        in.push_back(static_cast<uint8_t>(sp));
        in.push_back(static_cast<uint8_t>(dp >> 8));
        in.push_back(static_cast<uint8_t>(dp));
    }
    return in;
}

template <size_t N>
void check_vector(const Toeplitz& t, const Vector& v, std::array<uint8_t, N> s, std::array<uint8_t, N> d) {
    INFO(v.src << ":" << v.sport << " -> " << v.dst << ":" << v.dport);
    const auto k = kDefaultRssKey.data();
    const auto a = input(s, d, v.sport, v.dport, false);
    const auto p = input(s, d, v.sport, v.dport, true);
    CHECK(toeplitz_ref(k, kRssKeyLen, a.data(), a.size()) == v.addrs_only);
    CHECK(toeplitz_ref(k, kRssKeyLen, p.data(), p.size()) == v.with_ports);
    CHECK(t.hash(a.data(), a.size()) == v.addrs_only);
    CHECK(t.hash(p.data(), p.size()) == v.with_ports);
    CHECK(t.hash_addrs(s.data(), d.data(), N) == v.addrs_only);
    CHECK(t.hash_tuple(s.data(), d.data(), N, raw_port(v.sport), raw_port(v.dport)) == v.with_ports);
}

}  // namespace

TEST_CASE("toeplitz: the default key is the Microsoft verification key", "[toeplitz]") {
    CHECK(kDefaultRssKey[0] == 0x6d);
    CHECK(kDefaultRssKey[1] == 0x5a);
    CHECK(kDefaultRssKey[38] == 0x01);
    CHECK(kDefaultRssKey[39] == 0xfa);
}

TEST_CASE("toeplitz: Microsoft RSS verification suite, IPv4", "[toeplitz]") {
    const Toeplitz t;
    for (const auto& v : kV4) check_vector(t, v, sluice::test::ip4(v.src), sluice::test::ip4(v.dst));
}

TEST_CASE("toeplitz: Microsoft RSS verification suite, IPv6", "[toeplitz]") {
    const Toeplitz t;
    for (const auto& v : kV6) check_vector(t, v, sluice::test::ip6(v.src), sluice::test::ip6(v.dst));
}

TEST_CASE("toeplitz: table equals the reference for random keys, inputs and positions", "[toeplitz]") {
    std::mt19937 rng(2024);
    for (int k = 0; k < 20; ++k) {
        std::array<uint8_t, kRssKeyLen> key;
        for (auto& b : key) b = static_cast<uint8_t>(rng());
        const Toeplitz t(key);
        for (size_t len = 0; len <= Toeplitz::kMaxInput; ++len) {
            uint8_t in[Toeplitz::kMaxInput];
            for (auto& b : in) b = static_cast<uint8_t>(rng());
            INFO("key " << k << " len " << len);
            REQUIRE(t.hash(in, len) == toeplitz_ref(key.data(), key.size(), in, len));
            // hash_at(pos, x) is the hash of x placed at pos in an otherwise zero input.
            const size_t pos = rng() % (Toeplitz::kMaxInput - len + 1);
            uint8_t padded[Toeplitz::kMaxInput] = {};
            std::memcpy(padded + pos, in, len);
            REQUIRE(t.hash_at(pos, in, len) == toeplitz_ref(key.data(), key.size(), padded, pos + len));
        }
    }
    // Input bit i is multiplied by key bits i..i+31. A 40-byte key covers 36 bytes of input
    // exactly: key bit 319 is never used, key bit 318 is the low bit of the last input bit's window.
    std::array<uint8_t, kRssKeyLen> last{};
    last[kRssKeyLen - 1] = 0x01;  // key bit 319
    uint8_t all[Toeplitz::kMaxInput];
    std::memset(all, 0xFF, sizeof all);
    CHECK(Toeplitz(last).hash(all, sizeof all) == 0);
    CHECK(toeplitz_ref(last.data(), last.size(), all, sizeof all) == 0);
    last[kRssKeyLen - 1] = 0x02;  // key bit 318
    uint8_t in[Toeplitz::kMaxInput] = {};
    in[Toeplitz::kMaxInput - 1] = 0x01;  // input bit 287
    CHECK(Toeplitz(last).hash(in, sizeof in) == 1);
    CHECK(toeplitz_ref(last.data(), last.size(), in, sizeof in) == 1);
    std::array<uint8_t, kRssKeyLen> first{};
    first[0] = 0x80;  // key bit 0
    const Toeplitz tf(first);
    std::memset(in, 0, sizeof in);
    in[0] = 0x80;  // input bit 0: window = key bits 0..31 = 0x80000000
    CHECK(tf.hash(in, 1) == 0x80000000u);
    CHECK(toeplitz_ref(first.data(), first.size(), in, 1) == 0x80000000u);
}

TEST_CASE("toeplitz: linear over XOR", "[toeplitz]") {
    std::mt19937 rng(99);
    const Toeplitz t;
    const auto k = kDefaultRssKey.data();
    uint8_t zero[Toeplitz::kMaxInput] = {};
    CHECK(t.hash(zero, sizeof zero) == 0);
    for (int i = 0; i < 2000; ++i) {
        uint8_t a[Toeplitz::kMaxInput], b[Toeplitz::kMaxInput], x[Toeplitz::kMaxInput];
        for (size_t j = 0; j < sizeof a; ++j) {
            a[j] = static_cast<uint8_t>(rng());
            b[j] = static_cast<uint8_t>(rng());
            x[j] = a[j] ^ b[j];
        }
        const size_t len = 1 + rng() % Toeplitz::kMaxInput;
        REQUIRE(t.hash(x, len) == (t.hash(a, len) ^ t.hash(b, len)));
        REQUIRE(toeplitz_ref(k, kRssKeyLen, x, len) ==
                (toeplitz_ref(k, kRssKeyLen, a, len) ^ toeplitz_ref(k, kRssKeyLen, b, len)));
        // Fields hash independently: a tuple's hash is the XOR of its fields at their offsets.
        REQUIRE(t.hash(a, 12) == (t.hash_at(0, a, 4) ^ t.hash_at(4, a + 4, 4) ^ t.hash_at(8, a + 8, 4)));
    }
}

TEST_CASE("reta: round robin over the queues", "[toeplitz]") {
    const Reta r4 = Reta::round_robin(4);
    for (uint32_t i = 0; i < Reta::kSize; ++i) REQUIRE(r4.entries[i] == i % 4);
    CHECK(r4.queue(0) == 0);
    CHECK(r4.queue(5) == 1);
    CHECK(r4.queue(127) == 3);
    CHECK(r4.queue(128) == 0);  // hash modulo the table size
    CHECK(r4.queue(0x51ccc178) == (0x51ccc178u % 128) % 4);
    CHECK(r4.queue(0xFFFFFFFFu) == 3);

    const Reta r3 = Reta::round_robin(3);
    CHECK(r3.queue(127) == 127 % 3);
    CHECK(r3.queue(128 + 5) == 2);
    std::array<int, 3> count{};
    for (uint32_t h = 0; h < Reta::kSize; ++h) ++count[r3.queue(h)];
    CHECK(count[0] == 43);
    CHECK(count[1] == 43);
    CHECK(count[2] == 42);

    const Reta r1 = Reta::round_robin(1);
    const Reta r0 = Reta::round_robin(0);  // no queues: everything on queue 0, never a division by 0
    for (uint32_t h : {0u, 1u, 77u, 0xFFFFFFFFu}) {
        CHECK(r1.queue(h) == 0);
        CHECK(r0.queue(h) == 0);
    }
}
