// Micro-benchmarks of state replication (lib/sync): what replicating a flow costs the control
// core, per entry and per datagram, on both ends.
//   BM_Encode/<kind>       Encoder::add of 4096 entries, flush, take: validate, pack, seal.
//   BM_Receive/<kind>      Receiver::feed of full datagrams: verify, decrypt, decode, validate,
//                          replay window, delivery (a fresh Receiver per pass over the pool,
//                          outside the timing, since the window refuses a second pass).
//   BM_Seal, BM_Open       the AEAD alone on one full datagram (1400 bytes): the crypto share.
//   BM_DecodeOpened/<kind> decoding alone (no crypto, no window): the parsing share.
//   BM_HmacSha512_256      crypto_auth over the same bytes: the alternative docs/sync-protocol.md
//                          weighs XChaCha20-Poly1305 against.
// Kinds: 0 IPv4 session, 1 IPv6 session, 2 IPv4 session removal, 3 IPv4 persistence entry,
// 4 a replicated IPv4 flow's life: its session added, then removed (entries alternate).
// items_per_second counts entries (Encode, Receive, DecodeOpened) or datagrams (Seal, Open,
// HMAC); the counters give entries per datagram and wire bytes per entry, header and tag
// shared out. docs/sync-protocol.md turns these into CPU shares at 10,000 and 100,000 flows/s.
#include <benchmark/benchmark.h>

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <vector>

#include "lib/sync/codec.hpp"
#include "lib/sync/encoder.hpp"
#include "lib/sync/receiver.hpp"

namespace {

using namespace sluice;
using namespace sluice::sync;

constexpr uint64_t kT0 = 1'700'000'000'000;
constexpr uint64_t kEpoch = kT0 << 20 | 1;
constexpr uint32_t kBatch = 4096;

Key bench_key() {
    std::array<uint8_t, Key::kBytes> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 13 + 5);
    return Key(b);
}

net::IpAddr v4(uint32_t x) {
    const uint8_t b[4] = {static_cast<uint8_t>(x >> 24), static_cast<uint8_t>(x >> 16), static_cast<uint8_t>(x >> 8),
                          static_cast<uint8_t>(x)};
    return net::IpAddr::v4(b);
}
net::IpAddr v6(uint32_t x) {
    uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8};
    b[12] = static_cast<uint8_t>(x >> 24);
    b[13] = static_cast<uint8_t>(x >> 16);
    b[14] = static_cast<uint8_t>(x >> 8);
    b[15] = static_cast<uint8_t>(x);
    return net::IpAddr::v6(b);
}

Entry make_entry(int kind, uint32_t i) {
    const bool six = kind == 1;
    Session s;
    s.key.proto = lb::Proto::tcp;
    s.key.client = six ? v6(0x0A000000u + i) : v4(0x0A000000u + i);
    s.key.client_port = static_cast<uint16_t>(1024 + i % 60000);
    s.key.vip = six ? v6(0xCB007128u) : v4(0xCB007128u);
    s.key.vip_port = 443;
    s.backend = six ? v6(0xC6336429u + i % 16) : v4(0xC6336429u + i % 16);
    s.backend_port = 8443;
    s.snat = six ? v6(0xC00002C8u) : v4(0xC00002C8u);
    s.snat_port = static_cast<uint16_t>(1024 + i % 64000);
    s.state = lb::FlowState::tcp_established;
    s.replied = true;
    s.idle_ms = i % 5000;
    switch (kind) {
        case 2: return SessionRemove{s.key};
        case 4:  // odd entries remove the session the entry before added
            if (i % 2 == 0) return make_entry(0, i);
            return SessionRemove{std::get<Session>(make_entry(0, i - 1)).key};
        case 3: {
            Persist p;
            p.key.vip = s.key.vip;
            p.key.vip_port = 443;
            p.key.net = v4((0x0A000000u + i) & 0xFFFFFF00u);
            p.key.prefix_len = 24;
            p.backend = s.backend;
            p.left_ms = 300'000;
            p.pinned_age_ms = i % 1000;
            return p;
        }
        default: return s;
    }
}

Encoder make_encoder(uint32_t id = 1) {
    auto e = Encoder::create(bench_key(), {id, kEpoch}, {.mtu_bytes = kDefaultMtuBytes, .retain = 1024});
    if (!e) std::abort();
    return std::move(*e);
}

Receiver make_receiver() {
    ReceiverConfig cfg;
    cfg.self = 2;
    cfg.self_epoch = kEpoch + 1;
    cfg.peers = {1};
    auto r = Receiver::create(bench_key(), cfg);
    if (!r) std::abort();
    return std::move(*r);
}

// Full datagrams of one kind of entry (the last, partial one dropped), numbered 1.. in order.
std::vector<Datagram> pool(int kind, size_t datagrams) {
    Encoder e = make_encoder();
    std::vector<Datagram> out;
    for (uint32_t i = 0; out.size() < datagrams + 1; ++i) {
        (void)e.add(make_entry(kind, i), kT0);
        e.take(out);
    }
    out.resize(datagrams);
    return out;
}

void BM_Encode(benchmark::State& state) {
    const int kind = static_cast<int>(state.range(0));
    std::vector<Entry> entries;
    for (uint32_t i = 0; i < kBatch; ++i) entries.push_back(make_entry(kind, i));
    Encoder e = make_encoder();
    std::vector<Datagram> out;
    uint64_t now = kT0;
    for (auto _ : state) {
        for (const Entry& x : entries) (void)e.add(x, now);
        e.flush(now);
        out.clear();
        e.take(out);
        benchmark::DoNotOptimize(out.data());
        ++now;
    }
    const auto& c = e.counters();
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
    state.counters["entries_per_datagram"] = static_cast<double>(c.entries_sent) / static_cast<double>(c.datagrams_sent);
    state.counters["bytes_per_entry"] = static_cast<double>(c.bytes_sent) / static_cast<double>(c.entries_sent);
}
BENCHMARK(BM_Encode)->DenseRange(0, 4);

void BM_Receive(benchmark::State& state) {
    const int kind = static_cast<int>(state.range(0));
    const std::vector<Datagram> dg = pool(kind, 1024);
    Receiver r = make_receiver();
    Delivery out;
    size_t i = 0;
    uint64_t entries = 0, datagrams = 0;
    for (auto _ : state) {
        if (i == dg.size()) {
            state.PauseTiming();
            r = make_receiver();
            i = 0;
            state.ResumeTiming();
        }
        if (r.feed(dg[i++], kT0, out)) state.SkipWithError("refused");
        entries += out.entries.size();
        ++datagrams;
    }
    state.SetItemsProcessed(static_cast<int64_t>(entries));
    state.counters["entries_per_datagram"] = static_cast<double>(entries) / static_cast<double>(datagrams);
    state.counters["datagrams_per_second"] = benchmark::Counter(static_cast<double>(datagrams), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Receive)->DenseRange(0, 4);

void BM_DecodeOpened(benchmark::State& state) {
    const int kind = static_cast<int>(state.range(0));
    std::vector<Datagram> dg = pool(kind, 64);
    const Key k = bench_key();
    for (Datagram& d : dg)
        if (!open(k, d.data(), d.size())) std::abort();
    Message m;
    size_t i = 0;
    uint64_t entries = 0;
    for (auto _ : state) {
        if (decode_opened(dg[i], m)) state.SkipWithError("refused");
        entries += m.entries.size();
        i = (i + 1) % dg.size();
    }
    state.SetItemsProcessed(static_cast<int64_t>(entries));
}
BENCHMARK(BM_DecodeOpened)->DenseRange(0, 4);

void BM_Seal(benchmark::State& state) {
    Datagram d = pool(0, 1)[0];
    const Key k = bench_key();
    for (auto _ : state) {
        seal(k, d.data());
        benchmark::DoNotOptimize(d.data());
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
    state.counters["datagram_bytes"] = static_cast<double>(d.size());
}
BENCHMARK(BM_Seal);

void BM_Open(benchmark::State& state) {
    const Datagram sealed = pool(0, 1)[0];
    Datagram d = sealed;
    const Key k = bench_key();
    for (auto _ : state) {
        // Opening decrypts in place: restore the ciphertext (a 1400-byte copy) each time.
        std::copy(sealed.begin(), sealed.end(), d.begin());
        if (!open(k, d.data(), d.size())) state.SkipWithError("bad tag");
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
}
BENCHMARK(BM_Open);

void BM_HmacSha512_256(benchmark::State& state) {
    if (sodium_init() < 0) std::abort();
    const Datagram d = pool(0, 1)[0];
    uint8_t key[crypto_auth_KEYBYTES];
    crypto_auth_keygen(key);
    uint8_t tag[crypto_auth_BYTES];
    for (auto _ : state) {
        crypto_auth(tag, d.data(), d.size() - kTagBytes, key);
        benchmark::DoNotOptimize(tag);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (d.size() - kTagBytes)));
}
BENCHMARK(BM_HmacSha512_256);

}  // namespace
