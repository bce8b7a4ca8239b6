// sync_seeds: writes sync_fuzz's seed corpus, valid conversations built with the real Encoder.
//
//     sync_seeds OUT_DIR
//
// Each seed is one input in the layout of tests/fuzz/sync_fuzz_input.hpp: every message type
// and entry kind, sealed (as sent) and as plaintext for the target to seal (so mutations land
// past the tag); a stream delivered out of order with a gap, a heartbeat, acks, a gap given up
// and a late arrival; a peer's restart and a replay of its earlier life; a bulk resync out of
// order; an unknown peer, ourselves, a wrong key. Files are named by a hash of their contents,
// so reruns do not duplicate them.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/net/wire.hpp"
#include "lib/sync/codec.hpp"
#include "lib/sync/encoder.hpp"
#include "tests/fuzz/sync_fuzz_input.hpp"

namespace {

using namespace sluice;
using namespace sluice::sync;
using namespace sluice::sync::fuzz;

struct Record {
    uint8_t ctl = 0;
    uint8_t adv = 0;
    std::vector<uint8_t> bytes;
};

int written = 0;

void write(const std::string& dir, const std::vector<Record>& records) {
    std::vector<uint8_t> in;
    for (const Record& r : records) {
        in.push_back(r.ctl);
        in.push_back(r.adv);
        in.push_back(static_cast<uint8_t>(r.bytes.size() >> 8));
        in.push_back(static_cast<uint8_t>(r.bytes.size()));
        in.insert(in.end(), r.bytes.begin(), r.bytes.end());
    }
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (uint8_t b : in) h = (h ^ b) * 1099511628211ull;
    char name[32];
    std::snprintf(name, sizeof name, "sync-%016llx", static_cast<unsigned long long>(h));
    const std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(in.data(), 1, in.size(), f) != in.size() || std::fclose(f) != 0) {
        std::perror(path.c_str());
        std::exit(1);
    }
    ++written;
}

net::IpAddr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    const uint8_t x[4] = {a, b, c, d};
    return net::IpAddr::v4(x);
}
net::IpAddr ip6(uint16_t last) {
    uint8_t x[16] = {0x20, 0x01, 0x0d, 0xb8};
    x[14] = static_cast<uint8_t>(last >> 8);
    x[15] = static_cast<uint8_t>(last);
    return net::IpAddr::v6(x);
}

Session session(uint32_t i, bool v6) {
    Session s;
    s.key.proto = i % 2 ? lb::Proto::udp : lb::Proto::tcp;
    s.key.client = v6 ? ip6(static_cast<uint16_t>(0x1000 + i)) : ip4(198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i));
    s.key.client_port = static_cast<uint16_t>(40000 + i);
    s.key.vip = v6 ? ip6(0x40) : ip4(203, 0, 113, 40);
    s.key.vip_port = s.key.proto == lb::Proto::udp ? 53 : 80;
    s.backend = v6 ? ip6(0x41) : ip4(198, 51, 100, 41);
    s.backend_port = 8080;
    s.snat = v6 ? ip6(0x5001) : ip4(192, 0, 2, 200);
    s.snat_port = static_cast<uint16_t>(1024 + i);
    s.state = s.key.proto == lb::Proto::udp ? lb::FlowState::udp : lb::FlowState::tcp_half_closed;
    s.replied = true;
    s.fin_client = s.key.proto == lb::Proto::tcp;
    s.idle_ms = 1000 * i;
    return s;
}

Persist persist(bool v6) {
    Persist p;
    p.key.vip = v6 ? ip6(0x10) : ip4(203, 0, 113, 10);
    p.key.vip_port = 443;
    p.key.net = v6 ? ip6(0) : ip4(198, 18, 0, 0);
    p.key.prefix_len = v6 ? 64 : 16;
    p.backend = v6 ? ip6(0x12) : ip4(198, 51, 100, 12);
    p.left_ms = 30'000;
    p.pinned_age_ms = 500;
    return p;
}

std::vector<Entry> every_entry() {
    return {session(1, false),          session(2, true),         SessionRemove{session(1, false).key},
            SessionRemove{session(2, true).key}, persist(false), persist(true),
            PersistRemove{persist(false).key},   PersistRemove{persist(true).key}};
}

Encoder encoder(uint32_t id, uint64_t epoch, uint32_t mtu = kDefaultMtuBytes, const Key& k = key()) {
    auto e = Encoder::create(k, {id, epoch}, {.mtu_bytes = mtu});
    if (!e) {
        std::fprintf(stderr, "sync_seeds: %s\n", e.error().c_str());
        std::exit(1);
    }
    return std::move(*e);
}

std::vector<Datagram> stream(Encoder& e, const std::vector<Entry>& entries, uint64_t now) {
    for (const Entry& x : entries) (void)e.add(x, now);
    e.flush(now);
    std::vector<Datagram> out;
    e.take(out);
    return out;
}

// The same conversation twice: as sealed datagrams, and as plaintext for the target to seal.
void both(const std::string& dir, const std::vector<Record>& sealed) {
    write(dir, sealed);
    std::vector<Record> p = sealed;
    for (Record& r : p) {
        if (r.bytes.size() < kOverheadBytes) continue;
        std::vector<uint8_t> x = r.bytes;
        if (!open(key(), x.data(), x.size())) continue;  // a wrong-key record stays as it is
        x.resize(x.size() - kTagBytes);
        r.bytes = x;
        r.ctl |= kSeal;
    }
    write(dir, p);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: sync_seeds OUT_DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    const uint32_t a_id = kPeers[0], c_id = kPeers[1];

    // Every entry kind in one datagram; each type of message alone.
    {
        Encoder a = encoder(a_id, kPeerEpoch);
        both(dir, {{0, 0, stream(a, every_entry(), kT0)[0]}});
        both(dir, {{0, 5, a.heartbeat(kT0)}});
        Ack ack{.target = kSelf, .target_epoch = kSelfEpoch, .cumulative = 3, .highest = 20, .echo_sent_ms = kT0 - 4,
                .missing = {{5, 6}, {9, 9}, {12, 20}}};
        both(dir, {{0, 1, *a.ack(ack, kT0)}});
        both(dir, {{0, 1, *a.resync_request(kSelf, 99, kT0)}});
    }
    // A stream of 12, delivered 1 2 5 3 (4 lost: given up, then late) ... with a heartbeat
    // announcing the tail, acks along the way.
    {
        Encoder a = encoder(a_id, kPeerEpoch);
        std::vector<Datagram> d;
        for (uint32_t i = 0; i < 12; ++i) d.push_back(stream(a, {session(i, i % 3 == 0)}, kT0 + i)[0]);
        const Datagram hb = a.heartbeat(kT0 + 12);
        both(dir, {{0, 1, d[0]},
                   {0, 1, d[1]},
                   {kAcks, 1, d[4]},
                   {0, 1, d[2]},
                   {kAcks, 2, hb},
                   {kAcks | kSeconds, 2, d[6]},
                   {0, 1, d[3]},
                   {kAcks, 1, d[11]},
                   {0, 1, d[1]}});
    }
    // Two peers, one restarting: its earlier life replayed afterwards.
    {
        Encoder a1 = encoder(a_id, kPeerEpoch);
        Encoder a2 = encoder(a_id, kPeerEpoch + (10'000ull << 20));
        Encoder c = encoder(c_id, kPeerEpoch + 3);
        const auto old1 = stream(a1, {persist(false)}, kT0)[0];
        const auto old2 = stream(a1, {persist(true)}, kT0)[0];
        both(dir, {{0, 0, old1},
                   {0, 1, stream(c, {session(7, false)}, kT0)[0]},
                   {kAcks, 10, stream(a2, {PersistRemove{persist(false).key}}, kT0 + 10)[0]},
                   {0, 1, old2},
                   {kSeconds, 61, old2}});
    }
    // A bulk resync in three chunks or more, last chunk first (the receiver's first resync id
    // is 1; kResync on the first record starts it).
    {
        Encoder a = encoder(a_id, kPeerEpoch, 512);
        BulkWriter w = a.bulk(kSelf, kSelfEpoch, 1);
        for (uint32_t i = 0; i < 40; ++i) (void)w.add(i % 4 ? Entry(session(i, i % 2)) : Entry(persist(i % 8 == 0)), kT0);
        w.finish(kT0);
        std::vector<Datagram> chunks;
        w.take(chunks);
        std::vector<Record> r;
        for (size_t i = chunks.size(); i-- > 0;) r.push_back({0, 1, chunks[i]});
        r[0].ctl = kResync;
        both(dir, r);
        BulkWriter e = a.bulk(kSelf, kSelfEpoch, 1);
        e.finish(kT0);
        std::vector<Datagram> empty;
        e.take(empty);
        both(dir, {{kResync, 0, empty[0]}, {kAcks | kSeconds, 6, empty[0]}});
    }
    // A jumbo datagram; an unknown peer; ourselves; a wrong key.
    {
        Encoder a = encoder(a_id, kPeerEpoch, kMaxDatagramBytes);
        std::vector<Entry> many;
        for (uint32_t i = 0; i < 100; ++i) many.push_back(session(i, true));
        both(dir, {{0, 0, stream(a, many, kT0)[0]}});
        Encoder x = encoder(4, kPeerEpoch);
        Encoder self = encoder(kSelf, kPeerEpoch);
        std::array<uint8_t, Key::kBytes> kb{};
        kb.fill(7);
        Encoder wrong = encoder(a_id, kPeerEpoch, kDefaultMtuBytes, Key(kb));
        both(dir, {{0, 0, stream(x, {session(1, false)}, kT0)[0]},
                   {0, 0, stream(self, {session(1, false)}, kT0)[0]},
                   {0, 0, stream(wrong, {session(1, false)}, kT0)[0]}});
    }
    std::printf("sync_seeds: %d seeds in %s\n", written, dir.c_str());
    return 0;
}
