// libFuzzer target for the state-replication receiver (lib/sync): datagrams from outsiders
// and from peers that hold the key but send anything.
//
// Each input is a conversation (tests/fuzz/sync_fuzz_input.hpp has the layout) fed to a fresh
// Receiver, so a crash reproduces from its file alone. Records sealed by the target reach past
// the tag into header and body decoding: lengths, counts, entry layouts, values, windows,
// epochs, resyncs. Unsealed records exercise what an outsider reaches (length, magic, version,
// tag) and, with sealed seeds, the same paths again.
//
// Oracles besides the sanitizers (a violation aborts with a message):
//   - every datagram fed is either accepted or refused under exactly one reason (the counters
//     add up), and a refusal hands out no entries and no actions;
//   - what was accepted is canonical: every entry passes validate(), and re-encoding the
//     decoded entries (with the chunk's fixed fields, or the ack) gives the received body
//     byte for byte, so no two encodings of one state are accepted;
//   - the accepted datagram names the peer it came from;
//   - per peer, cumulative <= highest and at most a window's worth is missing;
//   - every ack make_ack() builds is accepted by the Encoder and decodes back to itself.
// With SLUICE_FUZZ_STATS set, the receivers' counters, summed, are printed at exit: which
// paths ran.
// Thread contract: libFuzzer calls LLVMFuzzerTestOneInput from one thread.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lib/net/wire.hpp"
#include "lib/sync/codec.hpp"
#include "lib/sync/encoder.hpp"
#include "lib/sync/receiver.hpp"
#include "tests/fuzz/sync_fuzz_input.hpp"

namespace {

using namespace sluice;
using namespace sluice::sync;
using namespace sluice::sync::fuzz;

[[noreturn]] void fail(const char* what, size_t record) {
    std::fprintf(stderr, "sync_fuzz: invariant violated: %s (record %zu)\n", what, record);
    std::abort();
}
#define FUZZ_CHECK(cond, i) \
    do {                    \
        if (!(cond)) fail(#cond, i); \
    } while (0)

struct World {
    Key k = key();
    Encoder enc = *Encoder::create(k, {kSelf, kSelfEpoch});
    SyncCounters totals;
    World() {
        if (std::getenv("SLUICE_FUZZ_STATS")) std::atexit([] { instance().print(); });
    }
    static World& instance() {
        static World w;
        return w;
    }
    // One line: the nonzero counters, refusals last (scripts/fuzz echoes it).
    void print() const {
        std::fprintf(stderr, "sync_fuzz:");
        totals.for_each([](const char* n, uint64_t v) {
            if (v) std::fprintf(stderr, " %s=%llu", n, static_cast<unsigned long long>(v));
        });
        std::fprintf(stderr, "\n");
    }
};

// The body an accepted datagram must have had, rebuilt from what the receiver decoded.
std::vector<uint8_t> rebuild(const Message& m, const std::vector<Entry>& entries) {
    std::vector<uint8_t> b;
    size_t fixed = 0;
    switch (m.header.type) {
        case MsgType::ack:
            b.resize(kAckFixedBytes + kAckRangeBytes * m.ack.missing.size());
            put_ack_body(b.data(), m.ack);
            return b;
        case MsgType::bulk_chunk: fixed = kChunkFixedBytes; break;
        case MsgType::entries: break;
        case MsgType::heartbeat:
        case MsgType::resync_request: return {};  // fixed fields, checked exactly by the decoder
    }
    size_t n = fixed;
    for (const Entry& e : entries) n += entry_bytes(e);
    b.resize(n);
    if (fixed) put_chunk_info(b.data(), m.chunk);
    uint8_t* p = b.data() + fixed;
    for (const Entry& e : entries) p = put_entry(p, e);
    return b;
}

void check_accepted(const Key& k, const std::vector<uint8_t>& d, const Delivery& out, size_t i) {
    std::vector<uint8_t> plain = d;
    FUZZ_CHECK(open(k, plain.data(), plain.size()), i);
    Message m;
    FUZZ_CHECK(!decode_opened(plain, m), i);
    FUZZ_CHECK(out.peer == m.header.sender, i);
    FUZZ_CHECK(out.seq == m.header.seq, i);
    for (const Entry& e : out.entries) FUZZ_CHECK(validate(e) == nullptr, i);
    if (m.header.type == MsgType::heartbeat || m.header.type == MsgType::resync_request) {
        FUZZ_CHECK(out.entries.empty(), i);
        return;
    }
    const std::vector<uint8_t> body = rebuild(m, out.entries);
    FUZZ_CHECK(body.size() == m.header.body_len, i);
    FUZZ_CHECK(std::memcmp(body.data(), plain.data() + kHeaderBytes, body.size()) == 0, i);
}

void check_acks(World& w, Receiver& rx, uint64_t now, size_t i) {
    std::vector<Action> acts;
    rx.poll(now, acts);
    for (uint32_t peer : kPeers) {
        auto a = rx.make_ack(peer, now);
        if (!a) continue;
        auto d = w.enc.ack(*a, now);
        FUZZ_CHECK(d.ok(), i);
        std::vector<uint8_t> plain = *d;
        FUZZ_CHECK(open(w.k, plain.data(), plain.size()), i);
        Message m;
        FUZZ_CHECK(!decode_opened(plain, m), i);
        FUZZ_CHECK(m.ack == *a, i);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = World::instance();
    ReceiverConfig cfg;
    cfg.self = kSelf;
    cfg.self_epoch = kSelfEpoch;
    cfg.peers.assign(std::begin(kPeers), std::end(kPeers));
    auto made = Receiver::create(w.k, cfg);
    if (!made) fail("Receiver::create", 0);
    Receiver& rx = *made;
    Delivery out;
    std::vector<uint8_t> d;
    uint64_t now = kT0;

    size_t off = 0;
    for (size_t i = 0; i < kMaxRecords && off + kRecordHeader <= size; ++i) {
        const uint8_t ctl = data[off], adv = data[off + 1];
        const size_t len = net::load_be16(data + off + 2);
        const uint8_t* bytes = data + off + kRecordHeader;
        if (off + kRecordHeader + len > size) break;
        off += kRecordHeader + len;
        now += uint64_t{adv} * (ctl & kSeconds ? 1000 : 1);

        uint32_t resync_id = 0;
        if ((ctl & kResync) && len >= 12) resync_id = rx.start_resync(net::load_be32(bytes + 8), now);
        d.assign(bytes, bytes + len);
        if ((ctl & kSeal) && len >= kHeaderBytes && len + kTagBytes <= kMaxDatagramBytes) {
            const size_t body_len = len - kHeaderBytes;
            if (!(ctl & kKeepMagic)) {
                std::memcpy(d.data(), kMagic, 4);
                d[4] = kVersion;
            }
            if (!(ctl & kKeepLength)) net::store_be16(d.data() + 14, static_cast<uint16_t>(body_len));
            if (resync_id && d[5] == static_cast<uint8_t>(MsgType::bulk_chunk) && body_len >= 16)
                net::store_be32(d.data() + kHeaderBytes + 12, resync_id);
            d.resize(len + kTagBytes);
            seal_body(w.k, d.data(), body_len);
        }

        const SyncCounters before = rx.counters();
        const auto r = rx.feed(d, now, out);
        const SyncCounters& c = rx.counters();
        FUZZ_CHECK(c.datagrams_received == before.datagrams_received + 1, i);
        FUZZ_CHECK(c.accepted + c.refused_total() == c.datagrams_received, i);
        if (r) {
            FUZZ_CHECK(c.refused[static_cast<size_t>(*r)] == before.refused[static_cast<size_t>(*r)] + 1, i);
            FUZZ_CHECK(out.entries.empty() && out.actions.empty() && out.peer == 0, i);
        } else {
            check_accepted(w.k, d, out, i);
        }
        if (ctl & kAcks) check_acks(w, rx, now, i);
        for (const PeerStatus& s : rx.status()) {
            FUZZ_CHECK(s.cumulative <= s.highest, i);
            FUZZ_CHECK(s.missing <= ReplayWindow::kSize, i);
        }
    }
    w.totals.add(rx.counters());
    return 0;
}
