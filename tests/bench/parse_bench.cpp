// Micro-benchmarks of lib/net/parse: the per-packet classification cost on the data path.
// Frames come from the test packet builder; items_per_second is packets parsed per second.
#include <benchmark/benchmark.h>

#include <vector>

#include "lib/net/parse.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {

using sluice::net::ParsedPacket;
using sluice::net::ParseStatus;
using sluice::test::Pkt;

void parse_loop(benchmark::State& state, const sluice::test::Bytes& frame) {
    ParsedPacket pp;
    if (sluice::net::parse_packet(frame.data(), static_cast<uint32_t>(frame.size()), pp) != ParseStatus::ok) {
        state.SkipWithError("frame does not parse");
        return;
    }
    for (auto _ : state) {
        const uint8_t* p = frame.data();
        benchmark::DoNotOptimize(p);  // the compiler may not assume it knows the bytes
        const ParseStatus s = sluice::net::parse_packet(p, static_cast<uint32_t>(frame.size()), pp);
        benchmark::DoNotOptimize(s);
        benchmark::DoNotOptimize(pp);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frame.size()));
}

// 14 + 20 + 20 + 10 bytes of payload = 64 bytes.
void BM_parse_tcp4_64B(benchmark::State& state) {
    parse_loop(state, Pkt().ipv4("10.0.0.1", "203.0.113.10").tcp(40000, 80, sluice::test::kAck).payload(10).build());
}
BENCHMARK(BM_parse_tcp4_64B);

void BM_parse_tcp6_hopopts(benchmark::State& state) {
    parse_loop(state, Pkt().ipv6("2001:db8::1", "2001:db8::10").ext(0).tcp(40000, 80, sluice::test::kAck).build());
}
BENCHMARK(BM_parse_tcp6_hopopts);

}  // namespace
