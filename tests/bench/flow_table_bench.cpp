// Micro-benchmarks of the per-worker flow state: FlowTable lookups (a burst of 32 keys
// prefetched, then looked up, as Dataplane::process does), insertion into a full table (each
// insert evicts), and Dataplane::process over bursts of 32 established-flow packets.
// Sizes 1K (cache resident) and 1M (DRAM bound). Fixtures are built once per size and shared by
// the benchmark's repeated runs. items_per_second counts lookups, inserts or packets.
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lib/lb/dataplane.hpp"
#include "lib/lb/flow_table.hpp"
#include "lib/lb/service.hpp"
#include "lib/net/wire.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {
// The keyed hash the data path uses, with a fixed key (the key does not change its cost).
const sluice::lb::KeyedHash kHash([] {
    sluice::lb::HashKey k;
    for (int i = 0; i < 8; ++i) k.w[i] = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);
    return k;
}());

using sluice::lb::FlowState;
using sluice::lb::FlowTable;
using FT = FlowTable<4>;
constexpr uint32_t kBurst = 32;

uint64_t key_hash(uint32_t addr, uint16_t port) { return kHash(uint64_t{addr} | uint64_t{port} << 32); }
uint64_t rev_hash(uint32_t addr, uint16_t port) { return kHash(uint64_t{addr} | uint64_t{port} << 32, 1); }

// Key i: a distinct client address and a port; stored in the record like Dataplane does.
uint32_t addr_of(uint32_t i) { return 0x0A000000u + i; }
uint16_t port_of(uint32_t i) { return static_cast<uint16_t>(1024 + (i * 7919u) % 60000); }

struct TableFixture {
    explicit TableFixture(uint32_t n) : ft(n, sluice::lb::Timeouts{}) {
        auto on_drop = [](uint32_t) {};
        for (uint32_t i = 0; i < n; ++i) {
            const uint32_t a = addr_of(i);
            const uint16_t p = port_of(i);
            const uint32_t id = ft.insert(key_hash(a, p), rev_hash(a, p), true, FlowState::tcp_syn, 0, on_drop);
            if (id == FT::kNone) continue;
            std::memcpy(ft.record(id).client_addr, &a, 4);
            ft.record(id).client_port_raw = p;
        }
        std::mt19937 rng(1);
        order.resize(1u << 16);
        for (auto& o : order) o = rng() % n;
    }
    FT ft;
    std::vector<uint32_t> order;  // random key indices to look up
};

// One fixture per (size, user): the eviction benchmark churns its table, the lookup one must not.
TableFixture& table_fixture(uint32_t n, int user) {
    static std::map<std::pair<uint32_t, int>, std::unique_ptr<TableFixture>> fixtures;
    auto& f = fixtures[{n, user}];
    if (!f) f = std::make_unique<TableFixture>(n);
    return *f;
}

void BM_flow_find_hit_burst32(benchmark::State& state) {
    TableFixture& f = table_fixture(static_cast<uint32_t>(state.range(0)), 0);
    if (f.ft.size() != static_cast<uint32_t>(state.range(0))) {
        state.SkipWithError("fixture not full");
        return;
    }
    size_t cursor = 0;
    uint64_t found = 0;
    for (auto _ : state) {
        uint64_t h[kBurst];
        uint32_t idx[kBurst];
        for (uint32_t i = 0; i < kBurst; ++i) {
            idx[i] = f.order[(cursor + i) & (f.order.size() - 1)];
            h[i] = key_hash(addr_of(idx[i]), port_of(idx[i]));
            f.ft.prefetch(h[i]);
        }
        for (uint32_t i = 0; i < kBurst; ++i) {
            const uint32_t a = addr_of(idx[i]);
            const uint16_t p = port_of(idx[i]);
            const uint32_t ref = f.ft.find(h[i], [&](uint32_t r) {
                const auto& rec = f.ft.record(FT::ref_id(r));
                return FT::ref_dir(r) == 0 && rec.client_port_raw == p && std::memcmp(rec.client_addr, &a, 4) == 0;
            });
            found += ref != FT::kNone;
        }
        cursor += kBurst;
    }
    if (found != static_cast<uint64_t>(state.iterations()) * kBurst) state.SkipWithError("a lookup missed");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_flow_find_hit_burst32)->Arg(1000)->Arg(1000000);

// A full table: every insert evicts the flow nearest its expiry, then indexes the new one.
// (Nothing expires: established flows live 300 s; the pass only keeps the wheels' cursors
// current, as the worker loop does.)
void BM_flow_insert_evict_full(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    TableFixture& f = table_fixture(n, 1);
    auto on_drop = [](uint32_t) {};
    static uint32_t next = 0;  // keys beyond the initial fill; unique across runs
    static uint32_t now = 1;   // the table's clock only moves forward, across runs too
    const uint64_t evictions_before = f.ft.stats().evictions;
    for (auto _ : state) {
        const uint32_t i = n + next++;
        const uint32_t a = addr_of(i);
        const uint16_t p = port_of(i);
        // The clock advances 1 ms per 64 inserts, with the expiry pass a worker runs every loop.
        if ((next & 63) == 0) f.ft.expire(++now, 16, on_drop);
        const uint32_t id = f.ft.insert(key_hash(a, p), rev_hash(a, p), true, FlowState::tcp_syn, now, on_drop);
        if (id != FT::kNone) {
            std::memcpy(f.ft.record(id).client_addr, &a, 4);
            f.ft.record(id).client_port_raw = p;
        }
    }
    if (f.ft.stats().evictions - evictions_before != static_cast<uint64_t>(state.iterations())) state.SkipWithError("insert did not evict");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_flow_insert_evict_full)->Arg(1000)->Arg(1000000);

// --- Dataplane --------------------------------------------------------------------------------

struct DataplaneFixture {
    explicit DataplaneFixture(uint32_t n) {
        using namespace sluice;
        lb::Config c;
        lb::VipConf v;
        v.name = "web";
        v.addr = *net::parse_ip("203.0.113.10");
        v.port = 80;
        v.mode = lb::Mode::nat;
        for (int b = 1; b <= 4; ++b) {
            const auto addr = *net::parse_ip("198.51.100." + std::to_string(b));
            v.backends.push_back({addr, 8080, 1});
            c.neighbors.push_back({addr, *net::parse_mac("02:00:00:00:00:1" + std::to_string(b))});
        }
        c.vips.push_back(v);
        auto s = lb::Service::build(c);
        if (!s) throw std::runtime_error(s.error());
        lb::WorkerEnv e;
        e.port_macs = {*net::parse_mac("02:00:00:00:00:a0"), *net::parse_mac("02:00:00:00:00:b0")};
        e.backend_port = 1;
        dp = std::make_unique<lb::Dataplane>(std::make_shared<const lb::Service>(std::move(*s)), e, n + n / 4 + 64);

        // Flow i: client 10.(i) : port_of(i). Establish every flow with a SYN then an ACK.
        const auto syn = test::Pkt().eth("02:00:00:00:00:c1", "02:00:00:00:00:a0").ipv4("10.0.0.0", "203.0.113.10")
                             .tcp(1, 80, test::kSyn).payload(10).build();
        const auto ack = test::Pkt().eth("02:00:00:00:00:c1", "02:00:00:00:00:a0").ipv4("10.0.0.0", "203.0.113.10")
                             .tcp(1, 80, test::kAck).payload(10).build();
        auto make = [](const test::Bytes& tmpl, uint32_t i) {
            test::Bytes f = tmpl;
            net::store_be32(f.data() + 26, addr_of(i));
            net::store_be16(f.data() + 34, port_of(i));
            f[24] = f[25] = 0;  // the parser checks the IPv4 header checksum (TCP's is not checked)
            const uint16_t c = test::ref_csum(f.data() + 14, 20);
            f[24] = static_cast<uint8_t>(c >> 8);
            f[25] = static_cast<uint8_t>(c);
            return f;
        };
        // The backend's SYN-ACK (the flow is established only when the client acknowledges it):
        // from the backend the SYN went to, to the client.
        const auto synack = test::Pkt().eth("02:00:00:00:00:11", "02:00:00:00:00:b0").ipv4("198.51.100.1", "10.0.0.0")
                                .tcp(8080, 1, test::kSyn | test::kAck).build();
        std::vector<uint32_t> backend(n);
        for (int step = 0; step < 3; ++step) {
            for (uint32_t i = 0; i < n; i += kBurst) {
                const uint32_t m = std::min(kBurst, n - i);
                for (uint32_t j = 0; j < m; ++j) {
                    test::Bytes f = make(step == 0 ? syn : ack, i + j);
                    if (step == 1) {  // the SYN-ACK: swap to the reply's direction
                        f = synack;
                        net::store_be32(f.data() + 26, backend[i + j]);
                        net::store_be32(f.data() + 30, addr_of(i + j));
                        net::store_be16(f.data() + 36, port_of(i + j));
                        f[24] = f[25] = 0;
                        const uint16_t c = test::ref_csum(f.data() + 14, 20);
                        f[24] = static_cast<uint8_t>(c >> 8);
                        f[25] = static_cast<uint8_t>(c);
                    }
                    copy_in(j, f.data(), static_cast<uint32_t>(f.size()));
                    refs[j].in_port = step == 1 ? 1 : 0;
                }
                dp->process(refs, m, kNow);
                if (step == 0)
                    for (uint32_t j = 0; j < m; ++j) backend[i + j] = net::load_be32(bufs[j] + 30);
            }
        }
        if (dp->flows4().size() != n) throw std::runtime_error("flows not established");
        std::mt19937 rng(3);
        pool.resize(1u << 16);
        for (auto& p : pool) p = make(ack, rng() % n);
    }

    // Copies a frame into reusable buffer j and resets its PacketRef.
    void copy_in(uint32_t j, const uint8_t* data, uint32_t len) {
        std::memcpy(bufs[j], data, len);
        refs[j] = sluice::lb::PacketRef{};
        refs[j].data = bufs[j];
        refs[j].len = len;
        refs[j].cap = sizeof bufs[j];
    }

    static constexpr uint32_t kNow = 1000;
    std::unique_ptr<sluice::lb::Dataplane> dp;
    std::vector<sluice::test::Bytes> pool;  // established-flow ACKs in random flow order
    alignas(64) uint8_t bufs[kBurst][256];
    sluice::lb::PacketRef refs[kBurst];
};

DataplaneFixture& dataplane_fixture(uint32_t n) {
    static std::map<uint32_t, std::unique_ptr<DataplaneFixture>> fixtures;
    auto& f = fixtures[n];
    if (!f) f = std::make_unique<DataplaneFixture>(n);
    return *f;
}

void BM_dataplane_established_burst32(benchmark::State& state) {
    DataplaneFixture& f = dataplane_fixture(static_cast<uint32_t>(state.range(0)));
    size_t cursor = 0;
    const uint64_t hits_before = f.dp->counters().flow_hits;
    for (auto _ : state) {
        for (uint32_t j = 0; j < kBurst; ++j) {
            const auto& p = f.pool[(cursor + j) & (f.pool.size() - 1)];
            f.copy_in(j, p.data(), static_cast<uint32_t>(p.size()));
        }
        f.dp->process(f.refs, kBurst, DataplaneFixture::kNow);
        cursor += kBurst;
    }
    if (f.dp->counters().flow_hits - hits_before != static_cast<uint64_t>(state.iterations()) * kBurst)
        state.SkipWithError("not every packet hit an established flow");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_dataplane_established_burst32)->Arg(1000)->Arg(1000000);

}  // namespace

namespace {

// New flows only: distinct SYNs into a full 64K-flow table, so every packet is a Maglev pick,
// an eviction and an insert (scripts/bench's syn-1m scenario without the NIC).
void BM_dataplane_new_flows_burst32(benchmark::State& state) {
    using namespace sluice;
    static std::unique_ptr<DataplaneFixture> f;
    if (!f) f = std::make_unique<DataplaneFixture>(1000);
    static std::unique_ptr<lb::Dataplane> dp;
    static std::vector<test::Bytes> syns;
    if (!dp) {
        lb::WorkerEnv e;
        e.port_macs = {*net::parse_mac("02:00:00:00:00:a0"), *net::parse_mac("02:00:00:00:00:b0")};
        e.backend_port = 1;
        dp = std::make_unique<lb::Dataplane>(std::shared_ptr<const lb::Service>(&f->dp->service(), [](const lb::Service*) {}),
                                             e, 65536);
        syns.resize(1u << 18);
        for (uint32_t i = 0; i < syns.size(); ++i) {
            test::Bytes s = test::Pkt().eth("02:00:00:00:00:c1", "02:00:00:00:00:a0").ipv4("10.0.0.0", "203.0.113.10")
                                .tcp(1, 80, test::kSyn).build();
            net::store_be32(s.data() + 26, 0x0A000000u + i / 16);
            net::store_be16(s.data() + 34, static_cast<uint16_t>(1024 + i % 16));
            s[24] = s[25] = 0;
            const uint16_t c = test::ref_csum(s.data() + 14, 20);
            s[24] = static_cast<uint8_t>(c >> 8);
            s[25] = static_cast<uint8_t>(c);
            syns[i] = std::move(s);
        }
    }
    static size_t cursor = 0;  // across calls: a SYN seen before would hit its flow
    // Fill the table first: every measured SYN evicts.
    for (; cursor < 65536; cursor += kBurst) {
        for (uint32_t j = 0; j < kBurst; ++j) f->copy_in(j, syns[cursor + j].data(), static_cast<uint32_t>(syns[cursor + j].size()));
        dp->process(f->refs, kBurst, DataplaneFixture::kNow);
    }
    const uint64_t picks_before = dp->counters().maglev_picks;
    for (auto _ : state) {
        for (uint32_t j = 0; j < kBurst; ++j) {
            const auto& p = syns[(cursor + j) & (syns.size() - 1)];
            f->copy_in(j, p.data(), static_cast<uint32_t>(p.size()));
        }
        dp->process(f->refs, kBurst, DataplaneFixture::kNow);
        cursor += kBurst;
    }
    if (dp->counters().maglev_picks - picks_before != static_cast<uint64_t>(state.iterations()) * kBurst)
        state.SkipWithError("not every SYN made a new flow");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_dataplane_new_flows_burst32);

}  // namespace
