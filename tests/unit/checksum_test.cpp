// Tests for lib/net/checksum: the full sum against the builder's naive RFC 1071 reference
// (every length, every alignment), known vectors, the pseudo-header sums, and RFC 1624
// incremental updates fuzzed against full recomputation, including the one's-complement
// corner cases where the checksum field is 0x0000 and where a word flips between 0x0000 and
// 0xFFFF. Pure C++: no EAL.
#include "lib/net/checksum.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::net;
using sluice::test::Bytes;
using sluice::test::ref_csum;
using sluice::test::ref_sum;

// A checksum as the library returns it (raw memory order) converted to the host-order value
// the reference returns: the bytes it would store into a header.
uint16_t as_value(uint16_t raw) {
    uint8_t b[2];
    std::memcpy(b, &raw, 2);
    return static_cast<uint16_t>(b[0] << 8 | b[1]);
}
uint16_t raw_of(uint16_t value) {
    const uint8_t b[2] = {static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)};
    uint16_t raw;
    std::memcpy(&raw, b, 2);
    return raw;
}
uint16_t field(const Bytes& b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }
void set_field(Bytes& b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}

}  // namespace

TEST_CASE("csum: RFC 1071 §3 example and a real IPv4 header", "[checksum]") {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (one's complement).
    const uint8_t rfc[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    CHECK(ref_sum(rfc, sizeof rfc) == 0xddf2);
    CHECK(as_value(csum_fold(csum_partial(rfc, sizeof rfc))) == 0xddf2);
    CHECK(as_value(csum(rfc, sizeof rfc)) == 0x220d);

    // 192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb861 (a textbook header).
    Bytes h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
               0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    CHECK(as_value(csum(h.data(), h.size())) == 0xb861);
    set_field(h, 10, 0xb861);
    CHECK(csum_fold(csum_partial(h.data(), h.size())) == 0xFFFF);
    CHECK(csum(h.data(), h.size()) == 0);
}

TEST_CASE("csum: degenerate inputs", "[checksum]") {
    const uint8_t zeros[64] = {};
    CHECK(csum_partial(zeros, 0) == 0);
    CHECK(csum_partial(zeros, 0, 0x1234) == 0x1234);
    CHECK(csum(zeros, 64) == 0xFFFF);  // all-zero data: the only way to get 0xFFFF
    const uint8_t ones[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    CHECK(csum_fold(csum_partial(ones, 6)) == 0xFFFF);
    CHECK(csum(ones, 6) == 0x0000);
    const uint8_t odd[1] = {0xAB};
    CHECK(as_value(csum(odd, 1)) == static_cast<uint16_t>(~0xAB00));
}

TEST_CASE("csum: matches the reference for every length 0..300 at every alignment", "[checksum]") {
    std::mt19937 rng(1071);
    std::vector<uint8_t> buf(300 + 8);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    for (size_t align = 0; align < 8; ++align) {
        for (size_t len = 0; len <= 300; ++len) {
            const uint8_t* p = buf.data() + align;
            INFO("align " << align << " len " << len);
            REQUIRE(as_value(csum(p, len)) == ref_csum(p, len));
            // Split sums chain: csum_partial(b, csum_partial(a)) == sum(a ++ b) for even splits.
            const size_t cut = (len / 2) & ~size_t{1};
            REQUIRE(csum_fold(csum_partial(p + cut, len - cut, csum_partial(p, cut))) ==
                    csum_fold(csum_partial(p, len)));
        }
    }
}

TEST_CASE("csum: random large buffers with 0xFF-heavy content (carry stress)", "[checksum]") {
    std::mt19937 rng(42);
    for (int iter = 0; iter < 200; ++iter) {
        const size_t len = rng() % 9000;
        Bytes b(len);
        for (auto& x : b) x = (rng() % 4) ? 0xFF : static_cast<uint8_t>(rng());
        INFO("len " << len);
        REQUIRE(as_value(csum(b.data(), len)) == ref_csum(b.data(), len));
        // A running sum carried in: the same as summing the seed's two words with the data.
        const uint32_t seed = rng() & 0x00FFFFFF;
        REQUIRE(csum_fold(csum_partial(b.data(), len, seed)) ==
                csum_fold(csum_partial(b.data(), len) + (seed & 0xFFFF) + (seed >> 16)));
    }
}

TEST_CASE("pseudo-header sums give the TCP/UDP checksums the builder computes", "[checksum]") {
    using sluice::test::Pkt;
    struct Row {
        const char* what;
        Bytes frame;
        size_t l3, l4;
        bool v6;
    };
    const std::vector<Row> rows = {
        {"tcp/ipv4", Pkt().ipv4("10.0.0.1", "203.0.113.10").tcp(40000, 80, sluice::test::kAck).payload(33).build(),
         14, 34, false},
        {"udp/ipv4", Pkt().ipv4("10.0.0.1", "203.0.113.10").udp(5353, 53).payload(17).build(), 14, 34, false},
        {"tcp/ipv6", Pkt().ipv6("2001:db8::1", "2001:db8::10").tcp(40000, 80).payload(5).build(), 14, 54, true},
        {"udp/ipv6", Pkt().ipv6("2001:db8::1", "2001:db8::10").udp(1, 2).payload(100).build(), 14, 54, true},
    };
    for (const auto& r : rows) {
        INFO(r.what);
        const uint8_t* ip = r.frame.data() + r.l3;
        const uint8_t proto = r.v6 ? ip[6] : ip[9];
        const size_t l4_len = r.frame.size() - r.l4;
        const uint32_t ps = r.v6 ? pseudo_sum_v6(ip + 8, ip + 24, proto, static_cast<uint32_t>(l4_len))
                                 : pseudo_sum_v4(ip + 12, ip + 16, proto, static_cast<uint16_t>(l4_len));
        // The frame carries the builder's checksum: the sum over pseudo-header + segment is -0.
        CHECK(csum_fold(csum_partial(r.frame.data() + r.l4, l4_len, ps)) == 0xFFFF);
        // And the library computes the same field value from scratch.
        Bytes seg(r.frame.begin() + static_cast<long>(r.l4), r.frame.end());
        const size_t at = proto == 6 ? 16 : 6;
        const uint16_t want = field(seg, at);
        set_field(seg, at, 0);
        CHECK(as_value(static_cast<uint16_t>(~csum_fold(csum_partial(seg.data(), seg.size(), ps)))) == want);
    }
}

TEST_CASE("RFC 1624 updates: hand-picked corner cases", "[checksum]") {
    // Data: a fixed non-zero word (as an IPv4 header's version word) so the data is never all
    // zero, a word w that changes, and the checksum. Each case: starting w, new w.
    struct Case {
        uint16_t other, from, to;
    };
    const Case cases[] = {
        {0x4500, 0xBAFF, 0x0000},  // sum becomes 0x4500
        {0x0001, 0xFFFE, 0x0000},  // checksum field 0x0000 before (sum 0xFFFF)
        {0x0001, 0x0000, 0xFFFE},  // checksum field becomes 0x0000 (sum becomes 0xFFFF)
        {0x1234, 0x0000, 0xFFFF},  // +0 -> -0: same one's-complement value
        {0x1234, 0xFFFF, 0x0000},  // -0 -> +0
        {0xFFFF, 0xFFFF, 0xFFFF},  // no change at the top of the range
        {0x8000, 0x8000, 0x7FFF},
        {0x0001, 0x1234, 0x1234},  // no change
    };
    for (const auto& c : cases) {
        INFO(std::hex << "other " << c.other << " from " << c.from << " to " << c.to);
        Bytes b = {static_cast<uint8_t>(c.other >> 8), static_cast<uint8_t>(c.other), static_cast<uint8_t>(c.from >> 8),
                   static_cast<uint8_t>(c.from), 0, 0};
        set_field(b, 4, ref_csum(b.data(), b.size()));
        const uint16_t hc = raw_of(field(b, 4));
        set_field(b, 2, c.to);
        set_field(b, 4, 0);
        const uint16_t want = ref_csum(b.data(), b.size());
        CHECK(as_value(csum_update16(hc, raw_of(c.from), raw_of(c.to))) == want);
    }
}

TEST_CASE("RFC 1624 updates: fuzz 16/32/128-bit changes against full recomputation", "[checksum]") {
    std::mt19937_64 rng(1624);
    // A 60-byte "header": word 0 is fixed non-zero, the checksum lives at byte 10 (as in IPv4),
    // a 16-byte "address" at 20..35. Values are biased towards 0x0000/0xFFFF words.
    auto word = [&]() -> uint16_t {
        switch (rng() % 6) {
            case 0: return 0x0000;
            case 1: return 0xFFFF;
            case 2: return static_cast<uint16_t>(0xFFFF - rng() % 3);
            default: return static_cast<uint16_t>(rng());
        }
    };
    Bytes b(60);
    for (size_t i = 2; i < b.size(); i += 2) set_field(b, i, word());
    set_field(b, 0, 0x4500);
    set_field(b, 10, 0);
    set_field(b, 10, ref_csum(b.data(), b.size()));
    size_t zero_fields = 0, ffff_words = 0;
    for (int iter = 0; iter < 200'000; ++iter) {
        uint16_t hc = raw_of(field(b, 10));
        const int kind = static_cast<int>(rng() % 4);
        if (kind == 0 || kind == 3) {  // one 16-bit word anywhere but the fixed word and the checksum
            size_t at;
            do at = 2 * (rng() % 30); while (at == 0 || at == 10);
            uint16_t nw = word();
            if (kind == 3) {  // the value that makes the new checksum field exactly 0x0000
                Bytes z = b;
                set_field(z, 10, 0);
                set_field(z, at, 0);
                nw = static_cast<uint16_t>(~ref_sum(z.data(), z.size()));
            }
            hc = csum_update16(hc, raw_of(field(b, at)), raw_of(nw));
            set_field(b, at, nw);
            ffff_words += nw == 0xFFFF;
        } else if (kind == 1) {  // a 32-bit field (like an IPv4 address) at an even offset
            size_t at;
            do at = 2 * (rng() % 29); while (at == 0 || at == 10 || at + 2 == 10);
            uint32_t old_raw, new_raw;
            std::memcpy(&old_raw, b.data() + at, 4);
            const uint16_t hi = word(), lo = word();
            set_field(b, at, hi);
            set_field(b, at + 2, lo);
            std::memcpy(&new_raw, b.data() + at, 4);
            hc = csum_update32(hc, old_raw, new_raw);
        } else {  // a 128-bit address
            uint8_t old_addr[16], new_addr[16];
            std::memcpy(old_addr, b.data() + 20, 16);
            for (size_t i = 0; i < 16; i += 2) {
                const uint16_t w = word();
                new_addr[i] = static_cast<uint8_t>(w >> 8);
                new_addr[i + 1] = static_cast<uint8_t>(w);
            }
            hc = csum_update128(hc, old_addr, new_addr);
            std::memcpy(b.data() + 20, new_addr, 16);
        }
        Bytes z = b;
        set_field(z, 10, 0);
        const uint16_t want = ref_csum(z.data(), z.size());
        if (as_value(hc) != want) {
            INFO("iteration " << iter << " kind " << kind << "\n" << sluice::test::hexdump(b));
            REQUIRE(as_value(hc) == want);
        }
        set_field(b, 10, as_value(hc));
        zero_fields += want == 0;
        // The updated header still verifies as a whole.
        REQUIRE(csum_fold(csum_partial(b.data(), b.size())) == 0xFFFF);
    }
    // The fuzz did reach the corner cases it is meant to cover.
    CHECK(zero_fields > 0);
    CHECK(ffff_words > 1000);
}
