// The wire format's encoding and strict decoding (docs/sync-protocol.md has the layouts).
//
// Every entry layout is fixed by its kind and family: [kind][family] then the fields, ports
// and times big endian, addresses last (4 or 16 bytes each). The decoder computes the size from
// the two leading bytes, checks it against what is left, loads, and runs validate().
// Thread contract: reentrant; no shared state.
#include "lib/sync/codec.hpp"

#include <cstring>

#include <sodium.h>

#include "lib/net/wire.hpp"

namespace sluice::sync {
namespace {

using net::load_be16;
using net::load_be32;
using net::store_be16;
using net::store_be32;

static_assert(kTagBytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(Key::kBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24);

enum class Kind : uint8_t { session = 1, session_remove = 2, persist = 3, persist_remove = 4 };

// Session flags byte.
constexpr uint8_t kReplied = 0x01, kFinClient = 0x02, kFinBackend = 0x04;

// Fixed bytes before the addresses, and how many addresses, per kind.
constexpr size_t kFixed[5] = {0, 17, 7, 16, 6};
constexpr size_t kAddrs[5] = {0, 4, 2, 3, 2};
constexpr size_t kMinEntryBytes = 14;  // an IPv4 persistence removal

uint64_t load_be64(const uint8_t* p) noexcept { return uint64_t{load_be32(p)} << 32 | load_be32(p + 4); }
void store_be64(uint8_t* p, uint64_t v) noexcept {
    store_be32(p, static_cast<uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<uint32_t>(v));
}

size_t width(net::Family f) noexcept { return f == net::Family::v4 ? 4 : 16; }
size_t layout_bytes(Kind k, net::Family f) noexcept {
    const auto i = static_cast<size_t>(k);
    return kFixed[i] + kAddrs[i] * width(f);
}

uint8_t* put_addr(uint8_t* p, const net::IpAddr& a) noexcept {
    std::memcpy(p, a.bytes.data(), a.size());
    return p + a.size();
}
net::IpAddr get_addr(const uint8_t*& p, net::Family f) noexcept {
    net::IpAddr a = f == net::Family::v4 ? net::IpAddr::v4(p) : net::IpAddr::v6(p);
    p += width(f);
    return a;
}

// The wire's session states: the numbers lb::FlowState has today, written out so that a change
// of that enum cannot silently change the protocol.
uint8_t state_code(lb::FlowState s) noexcept {
    switch (s) {
        case lb::FlowState::tcp_syn: return 1;
        case lb::FlowState::tcp_established: return 2;
        case lb::FlowState::tcp_closing: return 3;
        case lb::FlowState::udp: return 4;
        case lb::FlowState::unconfirmed: return 5;
        case lb::FlowState::tcp_half_closed: return 6;
        case lb::FlowState::free: break;
    }
    return 0;
}
std::optional<lb::FlowState> state_of(uint8_t code) noexcept {
    switch (code) {
        case 1: return lb::FlowState::tcp_syn;
        case 2: return lb::FlowState::tcp_established;
        case 3: return lb::FlowState::tcp_closing;
        case 4: return lb::FlowState::udp;
        case 5: return lb::FlowState::unconfirmed;
        case 6: return lb::FlowState::tcp_half_closed;
        default: return std::nullopt;
    }
}

bool tcp_state(lb::FlowState s) noexcept {
    return s == lb::FlowState::tcp_syn || s == lb::FlowState::tcp_established || s == lb::FlowState::tcp_closing ||
           s == lb::FlowState::tcp_half_closed || s == lb::FlowState::unconfirmed;
}
bool udp_state(lb::FlowState s) noexcept { return s == lb::FlowState::udp || s == lb::FlowState::unconfirmed; }

// An IpAddr as the wire can carry it: a known family, IPv4 with nothing past its 4 bytes.
bool clean(const net::IpAddr& a) noexcept {
    if (a.family == net::Family::v6) return true;
    if (a.family != net::Family::v4) return false;
    for (size_t i = 4; i < 16; ++i)
        if (a.bytes[i]) return false;
    return true;
}
bool zero(const net::IpAddr& a) noexcept {
    for (uint8_t b : a.bytes)
        if (b) return false;
    return true;
}
bool masked(const net::IpAddr& a, unsigned prefix) noexcept {
    for (unsigned bit = prefix; bit < 8 * a.size(); ++bit)
        if (a.bytes[bit / 8] & (0x80u >> (bit % 8))) return false;
    return true;
}
bool known_proto(lb::Proto p) noexcept { return p == lb::Proto::tcp || p == lb::Proto::udp; }

const char* check_session_key(const SessionKey& k) noexcept {
    if (!clean(k.client) || !clean(k.vip)) return "unknown address family";
    if (k.client.family != k.vip.family) return "client and VIP of different address families";
    if (zero(k.client)) return "client address unspecified";
    if (zero(k.vip)) return "VIP address unspecified";
    if (!known_proto(k.proto)) return "protocol neither tcp nor udp";
    return nullptr;
}

const char* check_persist_key(const PersistKey& k) noexcept {
    if (!clean(k.vip) || !clean(k.net)) return "unknown address family";
    if (k.vip.family != k.net.family) return "VIP and client network of different address families";
    if (zero(k.vip)) return "VIP address unspecified";
    if (!known_proto(k.proto)) return "protocol neither tcp nor udp";
    if (k.prefix_len < 1 || k.prefix_len > 8 * k.vip.size()) return "prefix length out of range";
    if (!masked(k.net, k.prefix_len)) return "client network has bits set past its prefix length";
    return nullptr;
}

struct Validator {
    const char* operator()(const Session& s) const noexcept {
        if (const char* why = check_session_key(s.key)) return why;
        if (!clean(s.backend) || !clean(s.snat)) return "unknown address family";
        if (s.backend.family != s.key.vip.family || s.snat.family != s.key.vip.family)
            return "backend or SNAT address of another family than the VIP";
        if (zero(s.backend)) return "backend address unspecified";
        if (zero(s.snat)) return "SNAT address unspecified";
        if (s.backend_port == 0) return "backend port 0";
        if (s.snat_port < lb::kMinSnatPort) return "SNAT port below 1024";
        if (s.key.proto == lb::Proto::tcp ? !tcp_state(s.state) : !udp_state(s.state))
            return "no such state for the protocol";
        if (s.key.proto == lb::Proto::udp && (s.fin_client || s.fin_backend)) return "FIN flags on a UDP session";
        if (s.idle_ms > kMaxIdleMs) return "idle time over a day";
        return nullptr;
    }
    const char* operator()(const SessionRemove& s) const noexcept { return check_session_key(s.key); }
    const char* operator()(const Persist& p) const noexcept {
        if (const char* why = check_persist_key(p.key)) return why;
        if (!clean(p.backend)) return "unknown address family";
        if (p.backend.family != p.key.vip.family) return "backend of another family than the VIP";
        if (zero(p.backend)) return "backend address unspecified";
        if (p.left_ms < 1 || p.left_ms > lb::kMaxPersistMs) return "time left out of range";
        if (p.pinned_age_ms > kMaxPinnedAgeMs) return "pinned age out of range";
        return nullptr;
    }
    const char* operator()(const PersistRemove& p) const noexcept { return check_persist_key(p.key); }
};

net::Family family_of(const Entry& e) noexcept {
    return std::visit(
        [](const auto& x) {
            if constexpr (requires { x.key.client; })
                return x.key.client.family;
            else
                return x.key.vip.family;
        },
        e);
}

}  // namespace

const char* validate(const Entry& e) noexcept { return std::visit(Validator{}, e); }

const char* to_string(MsgType t) noexcept {
    switch (t) {
        case MsgType::entries: return "entries";
        case MsgType::ack: return "ack";
        case MsgType::heartbeat: return "heartbeat";
        case MsgType::resync_request: return "resync_request";
        case MsgType::bulk_chunk: return "bulk_chunk";
    }
    return "?";
}

size_t entry_bytes(const Entry& e) noexcept {
    return layout_bytes(static_cast<Kind>(e.index() + 1), family_of(e));
}

uint8_t* put_entry(uint8_t* p, const Entry& e) noexcept {
    p[0] = static_cast<uint8_t>(e.index() + 1);
    p[1] = static_cast<uint8_t>(family_of(e));
    if (const auto* s = std::get_if<Session>(&e)) {
        p[2] = static_cast<uint8_t>(s->key.proto);
        p[3] = state_code(s->state);
        p[4] = static_cast<uint8_t>((s->replied ? kReplied : 0) | (s->fin_client ? kFinClient : 0) |
                                    (s->fin_backend ? kFinBackend : 0));
        store_be16(p + 5, s->key.client_port);
        store_be16(p + 7, s->key.vip_port);
        store_be16(p + 9, s->backend_port);
        store_be16(p + 11, s->snat_port);
        store_be32(p + 13, s->idle_ms);
        p += 17;
        p = put_addr(p, s->key.client);
        p = put_addr(p, s->key.vip);
        p = put_addr(p, s->backend);
        return put_addr(p, s->snat);
    }
    if (const auto* s = std::get_if<SessionRemove>(&e)) {
        p[2] = static_cast<uint8_t>(s->key.proto);
        store_be16(p + 3, s->key.client_port);
        store_be16(p + 5, s->key.vip_port);
        p += 7;
        p = put_addr(p, s->key.client);
        return put_addr(p, s->key.vip);
    }
    if (const auto* x = std::get_if<Persist>(&e)) {
        p[2] = static_cast<uint8_t>(x->key.proto);
        p[3] = x->key.prefix_len;
        store_be16(p + 4, x->key.vip_port);
        store_be16(p + 6, x->backend_port);
        store_be32(p + 8, x->left_ms);
        store_be32(p + 12, x->pinned_age_ms);
        p += 16;
        p = put_addr(p, x->key.vip);
        p = put_addr(p, x->key.net);
        return put_addr(p, x->backend);
    }
    const auto& x = std::get<PersistRemove>(e);
    p[2] = static_cast<uint8_t>(x.key.proto);
    p[3] = x.key.prefix_len;
    store_be16(p + 4, x.key.vip_port);
    p += 6;
    p = put_addr(p, x.key.vip);
    return put_addr(p, x.key.net);
}

std::optional<Refusal> get_entry(const uint8_t*& p, const uint8_t* end, Entry& out) {
    if (end - p < 2) return Refusal::malformed;
    if (p[0] < 1 || p[0] > 4) return Refusal::malformed;
    if (p[1] != 4 && p[1] != 6) return Refusal::malformed;
    const auto kind = static_cast<Kind>(p[0]);
    const auto fam = static_cast<net::Family>(p[1]);
    const size_t n = layout_bytes(kind, fam);
    if (static_cast<size_t>(end - p) < n) return Refusal::malformed;
    const uint8_t* q = p;
    const auto proto = static_cast<lb::Proto>(q[2]);
    switch (kind) {
        case Kind::session: {
            Session s;
            s.key.proto = proto;
            const auto st = state_of(q[3]);
            if (!st) return Refusal::bad_value;
            s.state = *st;
            if (q[4] & ~(kReplied | kFinClient | kFinBackend)) return Refusal::malformed;
            s.replied = q[4] & kReplied;
            s.fin_client = q[4] & kFinClient;
            s.fin_backend = q[4] & kFinBackend;
            s.key.client_port = load_be16(q + 5);
            s.key.vip_port = load_be16(q + 7);
            s.backend_port = load_be16(q + 9);
            s.snat_port = load_be16(q + 11);
            s.idle_ms = load_be32(q + 13);
            q += 17;
            s.key.client = get_addr(q, fam);
            s.key.vip = get_addr(q, fam);
            s.backend = get_addr(q, fam);
            s.snat = get_addr(q, fam);
            out = s;
            break;
        }
        case Kind::session_remove: {
            SessionRemove s;
            s.key.proto = proto;
            s.key.client_port = load_be16(q + 3);
            s.key.vip_port = load_be16(q + 5);
            q += 7;
            s.key.client = get_addr(q, fam);
            s.key.vip = get_addr(q, fam);
            out = s;
            break;
        }
        case Kind::persist: {
            Persist x;
            x.key.proto = proto;
            x.key.prefix_len = q[3];
            x.key.vip_port = load_be16(q + 4);
            x.backend_port = load_be16(q + 6);
            x.left_ms = load_be32(q + 8);
            x.pinned_age_ms = load_be32(q + 12);
            q += 16;
            x.key.vip = get_addr(q, fam);
            x.key.net = get_addr(q, fam);
            x.backend = get_addr(q, fam);
            out = x;
            break;
        }
        case Kind::persist_remove: {
            PersistRemove x;
            x.key.proto = proto;
            x.key.prefix_len = q[3];
            x.key.vip_port = load_be16(q + 4);
            q += 6;
            x.key.vip = get_addr(q, fam);
            x.key.net = get_addr(q, fam);
            out = x;
            break;
        }
    }
    if (validate(out)) return Refusal::bad_value;
    p += n;
    return std::nullopt;
}

void put_header(uint8_t* p, const Header& h) noexcept {
    std::memcpy(p, kMagic, 4);
    p[4] = kVersion;
    p[5] = static_cast<uint8_t>(h.type);
    p[6] = h.flags;
    p[7] = 0;
    store_be32(p + 8, h.sender);
    store_be16(p + 12, h.count);
    store_be16(p + 14, h.body_len);
    store_be64(p + 16, h.epoch);
    store_be64(p + 24, h.seq);
    store_be64(p + 32, h.sent_ms);
}

Header get_header(const uint8_t* p) noexcept {
    Header h;
    h.type = static_cast<MsgType>(p[5]);
    h.flags = p[6];
    h.sender = load_be32(p + 8);
    h.count = load_be16(p + 12);
    h.body_len = load_be16(p + 14);
    h.epoch = load_be64(p + 16);
    h.seq = load_be64(p + 24);
    h.sent_ms = load_be64(p + 32);
    return h;
}

void put_ack_body(uint8_t* p, const Ack& a) noexcept {
    store_be32(p, a.target);
    store_be64(p + 4, a.target_epoch);
    store_be64(p + 12, a.cumulative);
    store_be64(p + 20, a.highest);
    store_be64(p + 28, a.echo_sent_ms);
    p += kAckFixedBytes;
    for (const SeqRange& r : a.missing) {
        store_be64(p, r.first);
        store_be64(p + 8, r.last);
        p += kAckRangeBytes;
    }
}

void put_chunk_info(uint8_t* p, const ChunkInfo& c) noexcept {
    store_be32(p, c.target);
    store_be64(p + 4, c.target_epoch);
    store_be32(p + 12, c.resync_id);
    store_be32(p + 16, c.index);
    store_be64(p + 20, c.snapshot_seq);
}

namespace {
// (sender, epoch, sequence, type): unique per datagram under one key, as long as an epoch is
// never reused by one instance id (docs/sync-protocol.md, "Authentication").
void nonce_of(const uint8_t* header, uint8_t (&n)[24]) noexcept {
    std::memcpy(n, header + 8, 4);
    std::memcpy(n + 4, header + 16, 16);
    n[20] = header[5];
    n[21] = n[22] = n[23] = 0;
}
}  // namespace

void seal(const Key& key, uint8_t* buf) noexcept { seal_body(key, buf, load_be16(buf + 14)); }

void seal_body(const Key& key, uint8_t* buf, size_t body_len) noexcept {
    uint8_t nonce[24];
    nonce_of(buf, nonce);
    uint8_t* body = buf + kHeaderBytes;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(body, body + body_len, nullptr, body, body_len, buf,
                                                        kHeaderBytes, nullptr, nonce, key.data());
}

bool open(const Key& key, uint8_t* buf, size_t len) noexcept {
    uint8_t nonce[24];
    nonce_of(buf, nonce);
    uint8_t* body = buf + kHeaderBytes;
    const size_t body_len = len - kOverheadBytes;
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(body, nullptr, body, body_len, buf + len - kTagBytes,
                                                               buf, kHeaderBytes, nonce, key.data()) == 0;
}

std::optional<Refusal> check_frame(std::span<const uint8_t> d) noexcept {
    if (d.size() < kOverheadBytes) return Refusal::too_short;
    if (d.size() > kMaxDatagramBytes) return Refusal::too_long;
    if (std::memcmp(d.data(), kMagic, 4) != 0) return Refusal::bad_magic;
    if (d[4] != kVersion) return Refusal::bad_version;
    return std::nullopt;
}

std::optional<Refusal> decode_opened(std::span<const uint8_t> d, Message& out) {
    out.clear();
    const uint8_t* p = d.data();
    Header& h = out.header;
    h = get_header(p);
    if (p[5] < 1 || p[5] > 5) return Refusal::bad_type;
    if (p[7] != 0) return Refusal::malformed;
    if (h.flags & ~(h.type == MsgType::bulk_chunk ? kFlagDone : 0)) return Refusal::malformed;
    if (h.body_len != d.size() - kOverheadBytes) return Refusal::malformed;
    if (h.sender == 0 || h.epoch == 0 || h.seq == 0) return Refusal::bad_value;
    const uint8_t* body = p + kHeaderBytes;
    const uint8_t* end = body + h.body_len;

    auto entries = [&](const uint8_t* q) -> std::optional<Refusal> {
        // Checked before reserving: a count the body cannot hold must not size an allocation.
        if (h.count > static_cast<size_t>(end - q) / kMinEntryBytes) return Refusal::malformed;
        out.entries.reserve(h.count);
        for (uint16_t i = 0; i < h.count; ++i) {
            Entry& e = out.entries.emplace_back();
            if (auto r = get_entry(q, end, e)) return r;
        }
        if (q != end) return Refusal::malformed;
        return std::nullopt;
    };

    switch (h.type) {
        case MsgType::entries:
            if (h.count == 0) return Refusal::malformed;
            return entries(body);
        case MsgType::ack: {
            if (h.count > kMaxAckRanges || h.body_len != kAckFixedBytes + kAckRangeBytes * h.count)
                return Refusal::malformed;
            Ack& a = out.ack;
            a.target = load_be32(body);
            a.target_epoch = load_be64(body + 4);
            a.cumulative = load_be64(body + 12);
            a.highest = load_be64(body + 20);
            a.echo_sent_ms = load_be64(body + 28);
            if (a.target == 0 || a.target_epoch == 0 || a.cumulative > a.highest) return Refusal::bad_value;
            uint64_t floor = a.cumulative;  // each range starts past the previous one, with a gap
            const uint8_t* q = body + kAckFixedBytes;
            for (uint16_t i = 0; i < h.count; ++i, q += kAckRangeBytes) {
                const SeqRange r{load_be64(q), load_be64(q + 8)};
                if (r.first <= floor || r.first > r.last || r.last > a.highest) return Refusal::bad_value;
                if (i > 0 && r.first == floor + 1) return Refusal::bad_value;  // adjacent: one range
                floor = r.last;
                a.missing.push_back(r);
            }
            return std::nullopt;
        }
        case MsgType::heartbeat:
            if (h.count != 0 || h.body_len != kHeartbeatBytes) return Refusal::malformed;
            out.heartbeat.highest = load_be64(body);
            return std::nullopt;
        case MsgType::resync_request:
            if (h.count != 0 || h.body_len != kResyncRequestBytes) return Refusal::malformed;
            out.resync.target = load_be32(body);
            out.resync.resync_id = load_be32(body + 4);
            if (out.resync.target == 0 || out.resync.resync_id == 0) return Refusal::bad_value;
            return std::nullopt;
        case MsgType::bulk_chunk: {
            if (h.body_len < kChunkFixedBytes) return Refusal::malformed;
            if (h.count == 0 && !(h.flags & kFlagDone)) return Refusal::malformed;  // only a last chunk may be empty
            ChunkInfo& c = out.chunk;
            c.target = load_be32(body);
            c.target_epoch = load_be64(body + 4);
            c.resync_id = load_be32(body + 12);
            c.index = load_be32(body + 16);
            c.snapshot_seq = load_be64(body + 20);
            if (c.target == 0 || c.target_epoch == 0 || c.resync_id == 0 || c.index >= kMaxBulkChunks)
                return Refusal::bad_value;
            return entries(body + kChunkFixedBytes);
        }
    }
    return Refusal::bad_type;
}

}  // namespace sluice::sync
