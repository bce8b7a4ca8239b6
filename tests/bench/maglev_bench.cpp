// Benchmarks for lib/lb/maglev: table build (control plane) and lookup (data path).
//
// Build targets: <= 2 ms for 1000 members at 65537 slots. Both build() and build_reference()
// are measured: they produce the same table, and the difference is what the event-simulated
// tail saves. Lookup is one multiply-shift and one load from a 128 KiB table (L2-resident).
// Member ids come from a fixed splitmix64 sequence so runs are comparable.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "lib/lb/maglev.hpp"

namespace {

using sluice::lb::Maglev;
using sluice::lb::MaglevMember;

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E37'79B9'7F4A'7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
}

std::vector<MaglevMember> make_members(size_t n, bool weighted) {
    uint64_t state = 42;
    std::vector<MaglevMember> members(n);
    for (size_t i = 0; i < n; ++i) {
        members[i].id = splitmix64(state);
        members[i].weight = weighted ? static_cast<uint32_t>(1 + i % 4) : 1;
    }
    return members;
}

void BM_MaglevBuild(benchmark::State& state) {
    const auto members = make_members(static_cast<size_t>(state.range(0)), state.range(1) != 0);
    for (auto _ : state) {
        auto m = Maglev::build(members, Maglev::kDefaultSize);
        if (!m) state.SkipWithError(m.error().c_str());
        benchmark::DoNotOptimize(m);
    }
}
BENCHMARK(BM_MaglevBuild)
    ->ArgNames({"members", "weighted"})
    ->Args({10, 0})
    ->Args({100, 0})
    ->Args({1000, 0})
    ->Args({10, 1})
    ->Args({100, 1})
    ->Args({1000, 1})
    ->Unit(benchmark::kMicrosecond);

void BM_MaglevBuildReference(benchmark::State& state) {
    const auto members = make_members(static_cast<size_t>(state.range(0)), false);
    for (auto _ : state) {
        auto m = Maglev::build_reference(members, Maglev::kDefaultSize);
        benchmark::DoNotOptimize(m);
    }
}
BENCHMARK(BM_MaglevBuildReference)
    ->ArgName("members")
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMicrosecond);

// Tables sized for many members (see maglev.hpp): what they cost to build for 1000 members
// (2097169 is what auto_size() gives them).
void BM_MaglevBuildLargeTable(benchmark::State& state) {
    const auto members = make_members(1000, false);
    const auto size = static_cast<uint32_t>(state.range(0));
    for (auto _ : state) {
        auto m = Maglev::build(members, size);
        if (!m) state.SkipWithError(m.error().c_str());
        benchmark::DoNotOptimize(m);
    }
}
BENCHMARK(BM_MaglevBuildLargeTable)->ArgName("size")->Arg(655373)->Arg(2097169)->Unit(benchmark::kMillisecond);

// Lookups of distinct flow hashes: the table load is the cost that matters.
void BM_MaglevLookup(benchmark::State& state) {
    const auto members = make_members(static_cast<size_t>(state.range(0)), false);
    const Maglev m = *Maglev::build(members, Maglev::kDefaultSize);
    uint64_t rng = 7;
    std::vector<uint64_t> hashes(4096);
    for (uint64_t& h : hashes) h = splitmix64(rng);
    size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(m.lookup(hashes[i]));
        i = (i + 1) & (hashes.size() - 1);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MaglevLookup)->ArgName("members")->Arg(10)->Arg(1000);

}  // namespace
