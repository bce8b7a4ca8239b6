#include "lib/lb/dataplane.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "lib/net/checksum.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

using namespace sluice::net;

namespace {

Drop drop_of(ParseStatus s) noexcept {
    switch (s) {
        case ParseStatus::runt: return Drop::runt;
        case ParseStatus::bad_vlan: return Drop::bad_vlan;
        case ParseStatus::unknown_ethertype: return Drop::unknown_ethertype;
        case ParseStatus::truncated_arp: return Drop::truncated_arp;
        case ParseStatus::truncated_l3: return Drop::truncated_l3;
        case ParseStatus::bad_ip_version: return Drop::bad_ip_version;
        case ParseStatus::bad_ihl: return Drop::bad_ihl;
        case ParseStatus::source_route: return Drop::source_route;
        case ParseStatus::bad_ip_length: return Drop::bad_ip_length;
        case ParseStatus::bad_ip_checksum: return Drop::bad_ip_checksum;
        case ParseStatus::bad_fragment: return Drop::bad_fragment;
        case ParseStatus::bad_ext_header: return Drop::bad_ext_header;
        case ParseStatus::truncated_l4: return Drop::truncated_l4;
        case ParseStatus::bad_l4_length: return Drop::bad_l4_length;
        case ParseStatus::ok: break;
    }
    return Drop::runt;
}

// Is an ICMP message of `len` bytes zero everywhere but its checksum field?
bool icmp_zero_but_checksum(const uint8_t* icmp, uint32_t len) noexcept {
    for (uint32_t i = 0; i < len; ++i)
        if (icmp[i] != 0 && i != IcmpOff::csum && i != IcmpOff::csum + 1u) return false;
    return true;
}

// Address-size specific layout of the IP header.
template <size_t A>
struct Ip;
template <>
struct Ip<4> {
    static constexpr Family kFamily = Family::v4;
    static constexpr size_t kSrc = Ipv4Off::src, kDst = Ipv4Off::dst, kTtl = Ipv4Off::ttl;
};
template <>
struct Ip<16> {
    static constexpr Family kFamily = Family::v6;
    static constexpr size_t kSrc = Ipv6Off::src, kDst = Ipv6Off::dst, kTtl = Ipv6Off::hop_limit;
};

inline uint64_t load64(const uint8_t* p) noexcept {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
}

// Key hashes. The forward key is (VIP, client address, client port); the reverse key is the
// reply's own tuple, so replies need no classification before the lookup.
// Both keyed (flow_hash.hpp). The IPv4 forward key is one word, the IPv4 reverse key two words,
// so the two never meet; IPv6 keys are three words, the reverse key's two
// addresses folded into them with a bijection on one side (a reply from b to a must not hash
// like one from a to b).
template <size_t A>
[[gnu::always_inline]] inline FlowKey fwd_key(uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    if constexpr (A == 4) {
        return FlowKey{{load_raw32(client) | uint64_t{cport_raw} << 32 | uint64_t{vip} << 48, 0, 0}, 1};
    } else {
        return FlowKey{{load64(client), load64(client + 8), uint64_t{cport_raw} | uint64_t{vip} << 16}, 3};
    }
}
template <size_t A>
[[gnu::always_inline]] inline FlowKey rev_key(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                                              uint16_t dport_raw, uint8_t proto) noexcept {
    const uint64_t ports = uint64_t{sport_raw} | uint64_t{dport_raw} << 16 | uint64_t{proto} << 32 | uint64_t{1} << 40;
    if constexpr (A == 4) {
        return FlowKey{{load_raw32(src) | uint64_t{load_raw32(dst)} << 32, ports, 0}, 2};
    } else {
        return FlowKey{{load64(src) ^ flow_mix(load64(dst)), load64(src + 8) ^ flow_mix(load64(dst + 8)), ports}, 3};
    }
}
template <size_t A>
uint64_t fwd_hash(const KeyedHash& h, uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    return fwd_key<A>(vip, client, cport_raw).hash(h);
}
template <size_t A>
uint64_t rev_hash(const KeyedHash& h, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw,
                  uint8_t proto) noexcept {
    return rev_key<A>(src, dst, sport_raw, dport_raw, proto).hash(h);
}

// TCP flag combinations a stateful firewall accepts (Linux conntrack's tcp_valid_flags; PSH,
// ECE and CWR do not matter). Everything else (NULL, XMAS, SYN+FIN, SYN+RST, FIN without ACK,
// ...) is a scan or an attack, never part of a connection.
constexpr uint64_t kValidTcpFlags = [] {
    uint64_t m = 0;
    const unsigned valid[] = {kTcpSyn, kTcpSyn | kTcpUrg, kTcpSyn | kTcpAck, kTcpRst, kTcpRst | kTcpAck,
                              kTcpFin | kTcpAck, kTcpFin | kTcpAck | kTcpUrg, kTcpAck, kTcpAck | kTcpUrg};
    for (unsigned f : valid)
        m |= uint64_t{1} << f;
    return m;
}();
constexpr bool tcp_flags_valid(uint8_t flags) noexcept {
    return (kValidTcpFlags >> (flags & (kTcpFin | kTcpSyn | kTcpRst | kTcpAck | kTcpUrg))) & 1u;
}
static_assert(tcp_flags_valid(kTcpAck) && tcp_flags_valid(kTcpSyn) && !tcp_flags_valid(0) &&
              !tcp_flags_valid(kTcpSyn | kTcpFin) && !tcp_flags_valid(kTcpFin) && tcp_flags_valid(kTcpAck | kTcpPsh));

// Does the client's ACK acknowledge the backend's SYN-ACK (sequence number + 1)? Only the low
// 16 bits are kept: a blind spoofer who never saw the SYN-ACK guesses right once in 65,536.
// (A client whose handshake ACK was lost and whose backend spoke first acknowledges more; its
// flow stays half-open until the next packet after it is evicted or times out, which picks it
// up again unconfirmed and promotes it on the backend's answer.)
inline bool acks_handshake(const uint8_t* tcp, uint16_t synack_ack16) noexcept {
    return static_cast<uint16_t>(__builtin_bswap32(load_raw32(tcp + TcpOff::ack))) == synack_ack16;
}

// An IPv6 UDP datagram without a checksum (0): RFC 8200 §8.1 makes receivers drop it.
template <size_t A>
[[gnu::always_inline]] inline bool udp6_without_checksum(const uint8_t* frame, const ParsedPacket& pp) noexcept {
    return A == 16 && pp.l4_proto == kIpProtoUdp && load_raw16(frame + pp.l4_off + UdpOff::csum) == 0;
}

// Adds "address changes from `field` to `to`" to a checksum delta, then writes the new address.
template <size_t A>
[[gnu::always_inline]] inline void move_addr(uint8_t* field, const uint8_t* to, CsumDelta& delta) noexcept {
    for (size_t i = 0; i < A; i += 4) delta.change32(load_raw32(field + i), load_raw32(to + i));
    std::memcpy(field, to, A);
}
[[gnu::always_inline]] inline void move_port(uint8_t* field, uint16_t to_raw, CsumDelta& delta) noexcept {
    delta.change16(load_raw16(field), to_raw);
    std::memcpy(field, &to_raw, 2);
}

// The nat/fullnat rewrite of one packet. One side (destination for client packets, source for
// replies) moves between a VIP and a backend, whose checksum sums the BackendEntry holds
// folded (fixed_*; the IPv4 one includes the TTL decrement); the other side may move too
// (fullnat: SNAT or client address and port, var_*), summed here. TTL / hop limit minus one;
// each checksum is patched with one add and one fold (RFC 1624). The caller checked TTL > 1
// and that the fixed side holds the entry's old address and port.
template <size_t A>
[[gnu::always_inline]] inline void nat_rewrite(uint8_t* frame, const ParsedPacket& pp, bool fixed_is_dst,
                                               const uint8_t* fixed_addr, uint16_t fixed_port_raw,
                                               uint16_t fixed_ip_sum, uint16_t fixed_l4_sum,
                                               const uint8_t* var_addr = nullptr, uint16_t var_port_raw = 0) noexcept {
    uint8_t* ip = frame + pp.l3_off;
    uint8_t* l4 = frame + pp.l4_off;
    uint16_t ip_sum = fixed_ip_sum, l4_sum = fixed_l4_sum;
    if (var_addr) {
        CsumDelta addrs, port;
        move_addr<A>(ip + (fixed_is_dst ? Ip<A>::kSrc : Ip<A>::kDst), var_addr, addrs);
        move_port(l4 + (fixed_is_dst ? TcpOff::sport : TcpOff::dport), var_port_raw, port);
        ip_sum = csum_fold64(addrs.sum + ip_sum);
        l4_sum = csum_fold64(addrs.sum + port.sum + l4_sum);
    }
    std::memcpy(ip + (fixed_is_dst ? Ip<A>::kDst : Ip<A>::kSrc), fixed_addr, A);
    std::memcpy(l4 + (fixed_is_dst ? TcpOff::dport : TcpOff::sport), &fixed_port_raw, 2);
    if constexpr (A == 4) {
        --ip[Ipv4Off::ttl];
        const uint16_t c = csum_apply16(load_raw16(ip + Ipv4Off::csum), ip_sum);
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else {
        --ip[Ipv6Off::hop_limit];
    }
    const bool udp = pp.l4_proto == kIpProtoUdp;
    uint8_t* l4c = l4 + (udp ? UdpOff::csum : TcpOff::csum);
    const uint16_t old_c = load_raw16(l4c);
    if (A == 4 && udp && old_c == 0) return;  // IPv4 UDP checksum 0 = none: keep it that way
    uint16_t c = csum_apply16(old_c, l4_sum);
    if (udp && c == 0) c = 0xFFFF;  // RFC 768: a computed 0 is sent as all ones
    std::memcpy(l4c, &c, 2);
}

void set_macs(uint8_t* frame, const Mac& dst, const Mac& src) noexcept {
    std::memcpy(frame + EthOff::dst, dst.bytes.data(), 6);
    std::memcpy(frame + EthOff::src, src.bytes.data(), 6);
}


}  // namespace

Status assign_port_roles(const Config& config, uint16_t nb_ports, WorkerEnv& env) {
    const int client = config.client_port >= 0 ? config.client_port : 0;
    const int backend = config.backend_port >= 0 ? config.backend_port : (nb_ports > 1 ? 1 : client);
    if (client >= nb_ports || backend >= nb_ports)
        return make_error(fmt::format("--client-port {} / --backend-port {}: only {} ports exist", client, backend,
                                      nb_ports));
    env.client_port = static_cast<uint16_t>(client);
    env.backend_port = static_cast<uint16_t>(backend);
    env.client_vlan = config.client_vlan;
    env.backend_vlan = config.backend_vlan;
    return {};
}

template <size_t A>
FlowTable<A>& Dataplane::table() noexcept {
    if constexpr (A == 4) return *flows4_; else return *flows6_;
}

template <size_t A>
FragTable<A>& Dataplane::frags() noexcept {
    if constexpr (A == 4) return *frags4_; else return *frags6_;
}

// Up to this many flows (a few MiB of records and index) the table's lines mostly stay cached
// between packets of a flow, and prefetching records costs more than it saves.
constexpr uint32_t kPrefetchFlows = 16384;

// Datagrams in flight in fragments, per worker and family: fragments of one datagram arrive
// within milliseconds, so this covers far more than a worker's share of a busy link.
constexpr uint32_t kFragCapacity = 8192;

Dataplane::Dataplane(std::shared_ptr<const Service> service, const WorkerEnv& env, uint32_t flow_capacity)
    : initial_(std::move(service)),
      service_(initial_.get()),
      env_(env),
      hash_(env.hash_key),
      client_macs4_(std::make_unique<ClientMac<4>[]>(kClientMacs)),
      client_macs6_(std::make_unique<ClientMac<16>[]>(kClientMacs)),
      flows4_(std::make_unique<FlowTable<4>>(flow_capacity, service_->config().timeouts)),
      flows6_(std::make_unique<FlowTable<16>>(flow_capacity, service_->config().timeouts)),
      frags4_(std::make_unique<FragTable<4>>(kFragCapacity, hash_)),
      frags6_(std::make_unique<FragTable<16>>(kFragCapacity, hash_)) {
    counters_.vips.reserve(kMaxVipSlots);
    counters_.backends.reserve(kMaxBackendSlots);
    set_service(service_);
    snat_cursor_[0] = snat_cursor_[1] = service_->config().snat_port_min;
    new_flow_rate_ = service_->config().new_flow_rate;
    // Ten milliseconds of burst (at least 64 flows): a flood cannot save up a second's worth.
    new_flow_burst_ = std::max<uint64_t>(64, new_flow_rate_ / 100) * 1000;
    new_flow_tokens_ = new_flow_burst_;
    if (new_flow_rate_) syn_retries_ = std::make_unique<SynRetry[]>(kSynRetrySlots);
    for (size_t i = 0; i < env_.port_macs.size() && i < kPortSlots; ++i) {
        uint8_t b[8] = {};
        std::memcpy(b, env_.port_macs[i].bytes.data(), 6);
        ports_[i].mac = load64(b);
    }
    // A port serves its side's VLAN; the one port of a one-arm set-up serves both.
    // Port ids beyond kPortSlots cannot be configured (--client-port/--backend-port <= 31).
    PortIdentity& client = ports_[env_.client_port & (kPortSlots - 1)];
    PortIdentity& backend = ports_[env_.backend_port & (kPortSlots - 1)];
    client.vlan[0] = client.vlan[1] = client.kernel_vlan = env_.client_vlan;
    backend.vlan[1] = backend.kernel_vlan = env_.backend_vlan;
    if (&backend != &client) backend.vlan[0] = env_.backend_vlan;
    for (auto& port : ports_) port.untagged = port.vlan[0] == 0 || port.vlan[1] == 0;
}

Drop Dataplane::not_addressed_here_slow(const PacketRef& p) const noexcept {
    if (p.len < kEthHdrLen) return Drop::count_;  // the parser's: runt
    const PortIdentity& me = ports_[p.in_port & (kPortSlots - 1)];
    const uint8_t* f = p.data;
    // A frame too short for its tag is the parser's (bad_vlan).
    const uint16_t vid = vlan_id_of(f, p.len);
    if (vid != me.vlan[0] && vid != me.vlan[1]) [[unlikely]]
        return Drop::foreign_vlan;
    uint8_t dst[8] = {};
    std::memcpy(dst, f + EthOff::dst, 6);
    if (load64(dst) == me.mac) return Drop::count_;
    return (f[EthOff::dst] & 1) ? Drop::count_ : Drop::foreign_mac;  // broadcast/multicast: judged once parsed
}

bool Dataplane::on_kernel_vlan(const PacketRef& p) const noexcept {
    return vlan_id_of(p.data, p.len) == ports_[p.in_port & (kPortSlots - 1)].kernel_vlan;
}

Drop Dataplane::judge_frame(const PacketRef& p, ParsedPacket& pp, ParseStatus& st) const noexcept {
    Drop why = not_addressed_here_slow(p);
    if (why != Drop::count_) {
        st = ParseStatus::ok;
        return why;
    }
    st = parse_packet_general(p.data, p.len, pp, p.ip_csum_good);
    if ((p.data[EthOff::dst] & 1) && st == ParseStatus::ok && !finds_neighbours(p, pp)) {
        st = ParseStatus::ok;
        return Drop::foreign_mac;
    }
    return Drop::count_;
}

bool Dataplane::finds_neighbours(const PacketRef& p, const ParsedPacket& pp) const noexcept {
    if (pp.l3 == L3::arp) return true;
    if (pp.l3 != L3::ipv6 || pp.l4_proto != kIpProtoIcmpv6 || pp.frag != Frag::none || pp.l4_len < kIcmpHdrLen)
        return false;
    const uint8_t type = p.data[pp.l4_off + IcmpOff::type];
    return type == kIcmp6NeighborSolicit || type == kIcmp6NeighborAdvert;
}

bool Dataplane::retag(PacketRef& p, uint16_t vid) noexcept {
    uint8_t* f = p.data;
    const bool tagged = has_vlan_tag(f, p.len);
    if (tagged && vid != 0) {
        const uint16_t tci = static_cast<uint16_t>((load_be16(f + kEthHdrLen) & 0xF000) | vid);
        store_be16(f + kEthHdrLen, tci);
    } else if (tagged) {
        std::memmove(f + EthOff::type, f + EthOff::type + kVlanHdrLen, p.len - EthOff::type - kVlanHdrLen);
        p.len -= kVlanHdrLen;
    } else if (vid != 0) {
        if (p.len + kVlanHdrLen > p.cap) return false;
        p.len = static_cast<uint32_t>(insert_vlan_tag(f, p.len, vid));
    }
    return true;
}

bool Dataplane::admit_new_flow(uint32_t now_ms) noexcept {
    const uint32_t elapsed = now_ms - new_flow_last_ms_;  // wrapping clock
    if (elapsed) {
        new_flow_last_ms_ = now_ms;
        new_flow_tokens_ = std::min(new_flow_burst_, new_flow_tokens_ + uint64_t{elapsed} * new_flow_rate_);
    }
    if (new_flow_tokens_ < 1000) return false;
    new_flow_tokens_ -= 1000;
    return true;
}

bool Dataplane::syn_retry_admitted(uint64_t hf, uint32_t now_ms) noexcept {
    SynRetry& e = syn_retries_[(hf >> 32) % kSynRetrySlots];
    const uint32_t tag = static_cast<uint32_t>(hf) | 1u;  // 0 marks an empty slot
    const uint32_t age = now_ms - e.first_ms;
    if (e.tag == tag && age >= kSynRetryMinMs && age <= kSynRetryMaxMs) {
        e.tag = 0;
        ++counters_.syn_retry_admitted;
        return true;
    }
    if (e.tag != tag || age > kSynRetryMaxMs) e = SynRetry{tag, now_ms};
    return false;
}

void Dataplane::set_service(const Service* s) {
    service_ = s;
    // Within the reserved capacity: no reallocation, so readers of the counters stay safe.
    if (counters_.vips.size() < s->vips().size()) counters_.vips.resize(s->vips().size());
    if (counters_.backends.size() < s->backends().size()) counters_.backends.resize(s->backends().size());
}

void Dataplane::flush_removed() noexcept {
    // (Re)start from the top: newly removed backends' flows may sit where a running sweep has
    // already been; a second pass costs the earlier ones nothing.
    flushing_ = true;
    flush_cursor_[0] = flush_cursor_[1] = 0;
}

template <size_t A>
void Dataplane::sweep(uint32_t budget) noexcept {
    FlowTable<A>& ft = table<A>();
    uint32_t& cur = flush_cursor_[A == 4 ? 0 : 1];
    for (uint32_t end = std::min(ft.capacity(), cur + budget); cur < end; ++cur) {
        const FlowRecord<A>& r = ft.record(cur);
        if (r.state != FlowState::free && service_->backends()[r.backend].removed)
            remove_flow<A>(cur, FlowEvent::Why::flushed);
    }
}

uint16_t Dataplane::nat_owner(const uint8_t* client_addr, size_t addr_len, uint16_t client_port_raw) const noexcept {
    if (env_.nb_workers <= 1) return env_.worker_id;
    uint8_t port[2];
    std::memcpy(port, &client_port_raw, 2);
    return env_.reta.queue(toeplitz_.hash_at(0, client_addr, addr_len) ^ toeplitz_.hash_at(addr_len, port, 2));
}

template <size_t A>
void Dataplane::flow_hashes(uint32_t id, uint64_t& h_fwd, uint64_t& h_rev, bool& has_rev) const noexcept {
    const FlowRecord<A>& r = const_cast<Dataplane*>(this)->table<A>().record(id);
    const VipEntry& v = service_->vips()[r.vip];
    const BackendEntry& b = service_->backends()[r.backend];
    h_fwd = fwd_hash<A>(hash_, r.vip, r.client_addr, r.client_port_raw);
    has_rev = v.mode != Mode::dsr;
    const auto proto = static_cast<uint8_t>(v.proto);
    if (v.mode == Mode::nat) {
        h_rev = rev_hash<A>(hash_, b.addr.bytes.data(), r.client_addr, b.port_raw, r.client_port_raw, proto);
    } else if (v.mode == Mode::fullnat) {
        const IpAddr& s = service_->snat(Ip<A>::kFamily)[r.snat_idx];
        h_rev = rev_hash<A>(hash_, b.addr.bytes.data(), s.bytes.data(), b.port_raw, r.snat_port_raw, proto);
    }
}

template <size_t A>
void Dataplane::remove_flow(uint32_t id, FlowEvent::Why why) noexcept {
    if (flow_log_) [[unlikely]] log_close<A>(id, why);
    uint64_t hf = 0, hr = 0;
    bool has_rev = false;
    flow_hashes<A>(id, hf, hr, has_rev);
    table<A>().remove(id, hf, hr, has_rev, why == FlowEvent::Why::idle);
}

void Dataplane::enable_flow_log(uint32_t one_in, FlowLogRing* ring) {
    flow_log_one_in_ = one_in;
    flow_log_countdown_ = 0;
    flow_log_ = one_in && ring ? ring : nullptr;
    sampled_.assign(flow_log_ ? 8192 : 0, Sampled{});
}

// Linear probing with backward-shift deletion: no tombstones, so lookups stay short.
Dataplane::Sampled* Dataplane::sampled_find(uint32_t key) noexcept {
    const size_t mask = sampled_.size() - 1;
    for (size_t i = (key * 0x9E3779B1u) & mask, n = 0; n < sampled_.size(); i = (i + 1) & mask, ++n) {
        if (sampled_[i].key == key) return &sampled_[i];
        if (sampled_[i].key == UINT32_MAX) return nullptr;
    }
    return nullptr;
}

void Dataplane::sampled_erase(Sampled* e) noexcept {
    const size_t mask = sampled_.size() - 1;
    size_t hole = static_cast<size_t>(e - sampled_.data());
    for (size_t i = (hole + 1) & mask; sampled_[i].key != UINT32_MAX; i = (i + 1) & mask) {
        const size_t home = (sampled_[i].key * 0x9E3779B1u) & mask;
        // Move i into the hole unless its home lies cyclically in (hole, i].
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            sampled_[hole] = sampled_[i];
            hole = i;
        }
    }
    sampled_[hole] = Sampled{};
}

// The flow's identity as the log reports it (open and close share it).
template <size_t A>
FlowEvent Dataplane::flow_event(uint32_t id, FlowEvent::Kind kind, FlowEvent::Why why) const noexcept {
    const FlowRecord<A>& r = const_cast<Dataplane*>(this)->table<A>().record(id);
    FlowEvent e;
    e.kind = kind;
    e.why = why;
    e.family = Ip<A>::kFamily;
    std::memcpy(e.client, r.client_addr, A);
    e.client_port_raw = r.client_port_raw;
    e.vip = r.vip;
    e.backend = r.backend;
    return e;
}

template <size_t A>
void Dataplane::log_open(uint32_t id, FlowEvent::Why why, uint32_t len, uint32_t now_ms) noexcept {
    const uint32_t key = sampled_key<A>(id);
    const size_t mask = sampled_.size() - 1;
    size_t i = (key * 0x9E3779B1u) & mask, n = 0;
    for (; sampled_[i].key != UINT32_MAX && n < sampled_.size() / 2; i = (i + 1) & mask, ++n) {}
    if (sampled_[i].key != UINT32_MAX) {  // half full: sample no more until some close
        ++flow_log_lost_;
        return;
    }
    sampled_[i] = Sampled{key, now_ms, now_ms, 1, len};
    if (!flow_log_->push(flow_event<A>(id, FlowEvent::Kind::open, why))) ++flow_log_lost_;
}

template <size_t A>
void Dataplane::log_packet(uint32_t id, uint32_t len, uint32_t now_ms) noexcept {
    if (Sampled* e = sampled_find(sampled_key<A>(id))) {
        ++e->packets;
        e->bytes += len;
        e->last_ms = now_ms;
    }
}

template <size_t A>
void Dataplane::log_close(uint32_t id, FlowEvent::Why why) noexcept {
    Sampled* s = sampled_find(sampled_key<A>(id));
    if (!s) return;
    FlowEvent e = flow_event<A>(id, FlowEvent::Kind::close, why);
    e.duration_ms = s->last_ms - s->start_ms;
    e.packets = s->packets;
    e.bytes = s->bytes;
    sampled_erase(s);
    if (!flow_log_->push(e)) ++flow_log_lost_;
}

template <size_t A>
uint32_t Dataplane::find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h) const noexcept {
    return find_forward<A>(vip, client, cport_raw, h, const_cast<Dataplane*>(this)->table<A>().bucket_of(h));
}

template <size_t A>
uint32_t Dataplane::find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h,
                                 uint32_t bucket) const noexcept {
    const FlowTable<A>& ft = const_cast<Dataplane*>(this)->table<A>();
    return ft.find(h, bucket, [&](uint32_t r) {
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(r));
        return FlowTable<A>::ref_dir(r) == 0 && rec.vip == vip && rec.client_port_raw == cport_raw &&
               std::memcmp(rec.client_addr, client, A) == 0;
    });
}

void Dataplane::process(PacketRef* pkts, uint32_t n, uint32_t now_ms) noexcept {
    // Scratch for the burst, left uninitialised: every entry used is written first (zeroing
    // kMaxBurst default-constructed entries per call showed up in the profile).
    alignas(ParsedPacket) unsigned char pp_mem[sizeof(ParsedPacket) * kMaxBurst];
    alignas(Lookup) unsigned char lk_mem[sizeof(Lookup) * kMaxBurst];
    auto* pp = reinterpret_cast<ParsedPacket*>(pp_mem);
    auto* lk = reinterpret_cast<Lookup*>(lk_mem);
    ParseStatus st[kMaxBurst];
    if (n > kMaxBurst) n = kMaxBurst;
    // Pass 1: parse and classify everything, and find the flow-table buckets the packets will
    // need; they are prefetched together right after, so the table's misses overlap instead
    // of stalling one by one. (lk.key.words == 0 marks packets that need no flow lookup.)
    // Counted per burst, not per packet (readers accept counters a burst behind).
    uint32_t redirected = 0, sent = 0;
    VipMemo memo;
    BurstTally tally;
    uint64_t refused = 0;  // frames not for this port, by bit; why in refused_why
    Drop refused_why[kMaxBurst];
    for (uint32_t i = 0; i < n; ++i) {
        PacketRef& p = pkts[i];
        redirected += p.redirected;
        if (i + 1 < n) __builtin_prefetch(pkts[i + 1].data);
        // Whose frame is it? The VLAN, then the destination MAC, decide before anything the
        // frame carries (a frame for another host is foreign_mac, whatever its contents);
        // broadcast and multicast once parsed (only ARP and ND are wanted).
        // The common frame (untagged IPv4 TCP/UDP to the port's MAC on a port that serves
        // untagged frames) is cleared by the fast parser, which checks the MAC as it goes.
        const PortIdentity& me = ports_[p.in_port & (kPortSlots - 1)];
        if (me.untagged && detail::parse_fast_ipv4(p.data, p.len, pp[i], p.ip_csum_good, me.mac)) [[likely]] {
            st[i] = ParseStatus::ok;
        } else if (const Drop why = judge_frame(p, pp[i], st[i]); why != Drop::count_) {
            refused |= uint64_t{1} << i;
            refused_why[i] = why;
            lk[i] = Lookup{};
            continue;
        }
        const bool flow = st[i] == ParseStatus::ok &&
                          (pp[i].l4_proto == kIpProtoTcp || pp[i].l4_proto == kIpProtoUdp) && pp[i].frag != Frag::later;
        // classify() fills in every field.
        if (flow && pp[i].l3 == L3::ipv4) classify<4>(p, pp[i], lk[i], memo);
        else if (flow && pp[i].l3 == L3::ipv6) classify<16>(p, pp[i], lk[i], memo);
        else lk[i] = Lookup{};
    }
    counters_.redirected_in += redirected;
    counters_.rx += n - redirected;
    // The buckets' prefetches back to back: each likely misses the TLB as well as the caches
    // (a big index spreads even a few flows over as many pages), and issued together their
    // page walks overlap rather than each holding up the parsing of the next packets.
    for (uint32_t i = 0; i < n; ++i) {
        if (lk[i].key.words == 0) continue;
        lk[i].hash = lk[i].key.hash(hash_);
        if (pp[i].l3 == L3::ipv4) {
            lk[i].bucket = flows4_->bucket_of(lk[i].hash);
            flows4_->prefetch_bucket(lk[i].bucket);
        } else {
            lk[i].bucket = flows6_->bucket_of(lk[i].hash);
            flows6_->prefetch_bucket(lk[i].bucket);
        }
    }
    // Pass 2: the buckets are (mostly) in cache now; prefetch the records they point at. Not
    // worth its bucket scans while the tables hold few enough flows to stay in the caches.
    if (flows4_->size() + flows6_->size() > kPrefetchFlows)
        for (uint32_t i = 0; i < n; ++i) {
            if (lk[i].key.words == 0) continue;
            if (pp[i].l3 == L3::ipv4) flows4_->prefetch_records(lk[i].hash, lk[i].bucket);
            else flows6_->prefetch_records(lk[i].hash, lk[i].bucket);
        }
    // Pass 3: decide and rewrite.
    for (uint32_t i = 0; i < n; ++i) {
        PacketRef& p = pkts[i];
        if (lk[i].to_vip) [[likely]] {
            if (pp[i].l3 == L3::ipv4) forward<4>(p, pp[i], lk[i].vip, lk[i].hash, lk[i].bucket, now_ms, tally);
            else forward<16>(p, pp[i], lk[i].vip, lk[i].hash, lk[i].bucket, now_ms, tally);
            sent += p.verdict == Verdict::tx;
            continue;
        }
        if (st[i] != ParseStatus::ok) {
            drop(p, drop_of(st[i]));
            continue;
        }
        if ((refused >> i) & 1) [[unlikely]] {
            drop(p, refused_why[i]);
            continue;
        }
        switch (pp[i].l3) {
            case L3::ipv4: handle_ip<4>(p, pp[i], lk[i], now_ms); break;
            case L3::ipv6: handle_ip<16>(p, pp[i], lk[i], now_ms); break;
            case L3::arp: handle_arp(p, pp[i]); break;
            case L3::none: drop(p, Drop::unknown_ethertype); break;
        }
        sent += p.verdict == Verdict::tx;
    }
    counters_.tx += sent;
    tally.flush(counters_);
}

template <size_t A>
void Dataplane::classify(const PacketRef& p, const ParsedPacket& pp, Lookup& lk, VipMemo& memo) noexcept {
    const uint8_t* ip = p.data + pp.l3_off;
    if constexpr (A == 4) {
        const uint64_t key = Service::v4_key(load_raw32(ip + Ip<A>::kDst), pp.dport_raw, pp.l4_proto);
        if (key != memo.key4) {
            memo.key4 = key;
            memo.vip4 = service_->find_vip4(key);
        }
        lk.vip = memo.vip4;
    } else {
        lk.vip = service_->find_vip(Ip<A>::kFamily, ip + Ip<A>::kDst, pp.dport_raw, pp.l4_proto);
    }
    lk.key = lk.vip != Service::kNoVip
                 ? fwd_key<A>(lk.vip, ip + Ip<A>::kSrc, pp.sport_raw)
                 : rev_key<A>(ip + Ip<A>::kSrc, ip + Ip<A>::kDst, pp.sport_raw, pp.dport_raw, pp.l4_proto);
    lk.to_vip = lk.vip != Service::kNoVip && pp.frag == Frag::none && !udp6_without_checksum<A>(p.data, pp);
}

// An IP packet pass 1 did not mark to_vip. The common case inline: a TCP or UDP reply that
// is not a fragment. The rest is out of line.
template <size_t A>
inline void Dataplane::handle_ip(PacketRef& p, const ParsedPacket& pp, const Lookup& lk,
                                                        uint32_t now_ms) noexcept {
    const uint8_t proto = pp.l4_proto;
    if ((proto != kIpProtoTcp && proto != kIpProtoUdp) || pp.frag != Frag::none) [[unlikely]]
        return handle_other<A>(p, pp, lk, now_ms);
    if (udp6_without_checksum<A>(p.data, pp)) return drop(p, Drop::udp6_zero_checksum);
    reply<A>(p, pp, lk.hash, now_ms);
}

template <size_t A>
void Dataplane::handle_other(PacketRef& p, const ParsedPacket& pp, const Lookup& lk, uint32_t now_ms) noexcept {
    const uint8_t* ip = p.data + pp.l3_off;
    constexpr Family f = Ip<A>::kFamily;
    const uint8_t proto = pp.l4_proto;
    if (pp.frag != Frag::none) {
        // A later fragment is judged by its datagram alone: its "protocol" may be an IPv6
        // extension header the first fragment walked past, and only TCP/UDP first fragments
        // are ever remembered.
        if (pp.frag == Frag::later) return later_fragment<A>(p, pp, now_ms);
        if (proto != kIpProtoTcp && proto != kIpProtoUdp) return drop(p, Drop::fragment);
        // A first fragment is balanced like any packet, then its outcome is remembered.
        const typename FragTable<A>::Key k = frag_key<A>(ip, pp);
        const uint8_t ttl = ip[Ip<A>::kTtl];
        if (udp6_without_checksum<A>(p.data, pp)) return drop(p, Drop::udp6_zero_checksum);
        // The addresses before forward() or reply() rewrites them: remember_fragment() finds
        // the datagram's flow by them.
        uint8_t src[A], dst[A];
        std::memcpy(src, ip + Ip<A>::kSrc, A);
        std::memcpy(dst, ip + Ip<A>::kDst, A);
        if (lk.vip != Service::kNoVip) {
            BurstTally tally;
            forward<A>(p, pp, lk.vip, lk.hash, lk.bucket, now_ms, tally);
            tally.flush(counters_);
        }
        else reply<A>(p, pp, lk.hash, now_ms);
        return remember_fragment<A>(p, pp, lk, src, dst, k, ttl, now_ms);
    }
    if (A == 16 && proto == kIpProtoIcmpv6 && p.data[pp.l4_off + IcmpOff::type] == kIcmp6NeighborSolicit)
        return handle_nd(p, pp);
    if (A == 16 && proto == kIpProtoIcmpv6 && p.data[pp.l4_off + IcmpOff::type] == kIcmp6NeighborAdvert)
        return to_control(p);  // the answer to a solicitation of the kernel side (or unsolicited)
    if (proto == (A == 4 ? kIpProtoIcmp : kIpProtoIcmpv6) && pp.l4_len >= kIcmpHdrLen &&
        p.data[pp.l4_off + IcmpOff::type] == (A == 4 ? kIcmpEchoRequest : kIcmp6EchoRequest) &&
        p.data[pp.l4_off + IcmpOff::code] == 0 && service_->is_vip_address(f, ip + Ip<A>::kDst))
        return answer_echo<A>(p, pp);
    if (service_->is_self_address(f, ip + Ip<A>::kDst)) return to_control(p);  // ping, probes' ICMP
    if (proto == (A == 4 ? kIpProtoIcmp : kIpProtoIcmpv6)) {
        const uint8_t type = p.data[pp.l4_off + IcmpOff::type];
        const bool error = A == 4 ? type == kIcmpDestUnreach || type == kIcmpTimeExceeded || type == kIcmpParamProblem
                                  : type >= kIcmp6DestUnreach && type <= kIcmp6ParamProblem;
        if (error) return handle_icmp_error<A>(p, pp, now_ms);
    }
    if (proto == kIpProtoIcmp || proto == kIpProtoIcmpv6) return drop(p, Drop::icmp_unhandled);
    if (service_->is_vip_address(f, ip + Ip<A>::kDst)) return drop(p, Drop::unsupported_l4);
    drop(p, Drop::no_vip);
}

// A client packet to a VIP. Inline, the common case: a flow that exists, is live, keeps its
// backend and is mid-connection (or UDP): an ACK changes nothing in an established flow, nor
// in an unconfirmed one, which only the backend's answer promotes. Everything else goes to
// forward_general().
template <size_t A>
inline void Dataplane::forward(PacketRef& p, const ParsedPacket& pp, uint16_t vip_idx, uint64_t hf, uint32_t bucket,
                               uint32_t now_ms, BurstTally& tally) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const VipEntry& vip = service_->vips()[vip_idx];
    const uint8_t* client = ip + Ip<A>::kSrc;
    if (env_.nb_workers > 1 && (vip.mode == Mode::nat || pp.frag == Frag::first)) {
        // nat flows live with their client's worker. Other flows live where RSS puts their
        // packets, except that a NIC hashes fragments by address only: a first fragment goes
        // where its unfragmented siblings go.
        const uint16_t owner = vip.mode == Mode::nat
                                   ? nat_owner(client, A, pp.sport_raw)
                                   : rss_owner<A>(client, ip + Ip<A>::kDst, pp.sport_raw, pp.dport_raw);
        if (owner != env_.worker_id) return redirect(p, owner);
    }
    if (vip.mode != Mode::dsr && ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);

    FlowTable<A>& ft = table<A>();
    const uint32_t ref = find_forward<A>(vip_idx, client, pp.sport_raw, hf, bucket);
    if (ref == FlowTable<A>::kNone) [[unlikely]]
        return forward_general<A>(p, pp, vip_idx, hf, ref, now_ms);
    const uint32_t id = FlowTable<A>::ref_id(ref);
    FlowRecord<A>& rec = ft.record(id);
    const BackendEntry& be = service_->backends()[rec.backend];
    const bool steady = pp.l4_proto == kIpProtoUdp ||
                        ((pp.tcp_flags & (kTcpSyn | kTcpFin | kTcpRst | kTcpAck)) == kTcpAck &&
                         (rec.state == FlowState::tcp_established || rec.state == FlowState::unconfirmed));
    if (!steady || ft.is_stale(id, now_ms) || !be.forwards || flow_log_) [[unlikely]]
        return forward_general<A>(p, pp, vip_idx, hf, ref, now_ms);
    ft.touch(id, now_ms);
    tally.hit(vip_idx, p.len, counters_);
    emit_forward<A>(p, pp, vip, rec, be);
}

// Rewrite toward the flow's backend, count, and queue for the backend port.
template <size_t A>
inline void Dataplane::emit_forward(PacketRef& p, const ParsedPacket& pp, const VipEntry& vip,
                                    const FlowRecord<A>& rec, const BackendEntry& be) noexcept {
    // Counters before the rewrite: stores into the packet may alias anything, and would make
    // the compiler reload the counters' addresses. The VIP's (and forwarded) are the caller's.
    TrafficCounters& bc = counters_.backends[rec.backend];
    ++bc.packets;
    bc.bytes += p.len;
    const uint16_t out = env_.backend_port;
    const Mac& src_mac = env_.port_macs[out];
    const uint16_t vid = env_.backend_vlan;
    const bool retag_it = retag_needed(pp.vlan, vid);
    if (vip.mode == Mode::nat) {
        nat_rewrite<A>(p.data, pp, true, be.addr.bytes.data(), be.port_raw, be.ip_sum_to_backend,
                       be.l4_sum_to_backend);
    } else if (vip.mode == Mode::fullnat) {
        nat_rewrite<A>(p.data, pp, true, be.addr.bytes.data(), be.port_raw, be.ip_sum_to_backend,
                       be.l4_sum_to_backend, service_->snat(Ip<A>::kFamily)[rec.snat_idx].bytes.data(),
                       rec.snat_port_raw);
    }
    set_macs(p.data, be.mac, src_mac);
    tx_side(p, retag_it, out, vid);
}

// Everything else about a client packet: a miss (Maglev decides, a flow is created), a flow
// idle past its timeout or whose backend went down or away, TCP state changes, passive health,
// the flow log. `ref` is what the lookup found (kNone on a miss).
template <size_t A>
void Dataplane::forward_general(PacketRef& p, const ParsedPacket& pp, uint16_t vip_idx, uint64_t hf, uint32_t ref,
                                uint32_t now_ms) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const VipEntry& vip = service_->vips()[vip_idx];
    const uint8_t* client = ip + Ip<A>::kSrc;
    const bool tcp = pp.l4_proto == kIpProtoTcp;
    FlowTable<A>& ft = table<A>();
    uint32_t id;
    const uint8_t flags = pp.tcp_flags;
    if (tcp && !tcp_flags_valid(flags)) [[unlikely]] return drop(p, Drop::bad_tcp_flags);
    bool moved = false;
    if (ref != FlowTable<A>::kNone) {
        const uint32_t hit = FlowTable<A>::ref_id(ref);
        if (ft.is_stale(hit, now_ms)) {
            remove_flow<A>(hit, FlowEvent::Why::idle);
            ref = FlowTable<A>::kNone;
        } else if (const BackendEntry& hb = service_->backends()[ft.record(hit).backend];
                   !hb.keeps_flows(vip.on_down)) [[unlikely]] {
            // Its backend is down or gone: the VIP's policy says drop, or decide again.
            if (vip.on_down == DownPolicy::drop && !hb.removed) return drop(p, Drop::backend_down);
            remove_flow<A>(hit, FlowEvent::Why::moved);
            ref = FlowTable<A>::kNone;
            moved = true;
            ++counters_.rescheduled;
        }
    }
    if (ref != FlowTable<A>::kNone) {
        id = FlowTable<A>::ref_id(ref);
        ++counters_.flow_hits;
        ft.touch(id, now_ms);
        if (flow_log_) [[unlikely]] log_packet<A>(id, p.len, now_ms);
        FlowRecord<A>& rec = ft.record(id);
        if (tcp) {
            // Passive health: the client sends its SYN again and the backend has not answered
            // (nat/fullnat see the SYN-ACK; in dsr nothing answers through Sluice, so any
            // retransmitted SYN counts, which is what a dead dsr backend looks like).
            // Judged once per flow: `replied` also marks a failure already counted.
            const bool syn = (flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
            if (syn && rec.state == FlowState::tcp_syn && !rec.replied) {
                ++counters_.backends[rec.backend].handshake_failures;
                rec.replied = 1;
            }
            if (flags & kTcpRst) {
                ft.set_state(id, FlowState::tcp_closing, now_ms);
            } else if (syn && (rec.state == FlowState::tcp_closing || rec.state == FlowState::tcp_half_closed)) {
                // A new connection on the same tuple: its handshake starts unanswered.
                ft.set_state(id, FlowState::tcp_syn, now_ms);
                rec.replied = rec.synack = 0;
                rec.fin_client = rec.fin_backend = 0;
            } else if (flags & kTcpFin) {
                // Half-close: the other direction may carry data for a long time yet. In dsr the
                // backend's FIN bypasses Sluice, so the client's ends the flow as before. Only a
                // confirmed connection half-closes: a FIN on a half-open or unconfirmed flow
                // keeps its short timeout (else a spoofed SYN and FIN would pin an entry).
                rec.fin_client = 1;
                if (rec.state == FlowState::tcp_established || rec.state == FlowState::tcp_half_closed)
                    ft.set_state(id, rec.fin_backend || vip.mode == Mode::dsr ? FlowState::tcp_closing
                                                                             : FlowState::tcp_half_closed, now_ms);
            } else if (!syn && rec.state == FlowState::tcp_syn) {
                // The handshake's last ACK. Evidence in nat/fullnat: it acknowledges the SYN-ACK
                // the backend sent; dsr never sees that, so the ACK is all there is.
                if (vip.mode == Mode::dsr || (rec.synack && acks_handshake(p.data + pp.l4_off, rec.synack_ack16)))
                    ft.set_state(id, FlowState::tcp_established, now_ms);
            }
        }
    } else {
        // Miss: Maglev decides, so a flow whose state was lost (eviction, restart, another
        // instance behind ECMP) gets the same backend while the backend set is unchanged.
        // Only a SYN opens a connection; other TCP is picked up unconfirmed (nat and fullnat
        // promote it when the backend answers), and packets that can neither open nor resume
        // one create nothing.
        const bool syn = tcp && (flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
        if (tcp && (flags & kTcpSyn) && !syn) return drop(p, Drop::tcp_no_flow);  // SYN-ACK from a client
        // From one of Sluice's own addresses: spoofed (a nat flow from a SNAT address:port
        // would take the reply tuple of a fullnat flow, and so its backend's answers).
        if (service_->owns_address(Ip<A>::kFamily, client)) [[unlikely]] return drop(p, Drop::own_source);
        const uint64_t mh = maglev_flow_hash(Ip<A>::kFamily, client, ip + Ip<A>::kDst, pp.sport_raw, pp.dport_raw,
                                             pp.l4_proto);
        if (tcp && !syn && !moved) ++counters_.non_syn_miss;
        const uint16_t pick = vip.maglev.lookup(mh);
        if (pick == Maglev::kNoBackend) return drop(p, Drop::no_backend);
        const uint16_t be_idx = vip.backends[pick];
        const BackendEntry& be = service_->backends()[be_idx];
        // An RST of a flow Sluice does not know: passed on where no state is needed.
        if (tcp && (flags & kTcpRst)) return forward_stateless<A>(p, pp, vip_idx, be_idx, Drop::tcp_no_flow);
        if (new_flow_rate_ && !admit_new_flow(now_ms)) [[unlikely]] {
            // fullnat cannot forward without state: a client that retransmits its SYN proves
            // it is there (a spoofed flood rarely repeats a tuple) and is admitted anyway.
            if (!(syn && vip.mode == Mode::fullnat && syn_retry_admitted(hf, now_ms)))
                return forward_stateless<A>(p, pp, vip_idx, be_idx, Drop::new_flow_limit);
        }
        ++counters_.maglev_picks;
        uint8_t snat_idx = 0;
        uint16_t snat_port = 0;
        uint64_t hr = 0;
        if (vip.mode == Mode::fullnat) {
            if (!pick_snat<A>(be, pp.l4_proto, now_ms, snat_idx, snat_port)) return drop(p, Drop::snat_exhausted);
            hr = rev_hash<A>(hash_, be.addr.bytes.data(), service_->snat(Ip<A>::kFamily)[snat_idx].bytes.data(),
                             be.port_raw, snat_port, pp.l4_proto);
        } else if (vip.mode == Mode::nat) {
            hr = rev_hash<A>(hash_, be.addr.bytes.data(), client, be.port_raw, pp.sport_raw, pp.l4_proto);
        }
        const FlowState state = syn ? FlowState::tcp_syn : FlowState::unconfirmed;
        // An unconfirmed flow is the first a full table gives up (a SYN flood evicts it before
        // the backend has answered): in nat its answer can still go back without the flow.
        if (!syn && vip.mode == Mode::nat) remember_client<A>(p, pp);
        auto rehash = [this](uint32_t vid, uint64_t& a, uint64_t& b, bool& r) {
            if (flow_log_) [[unlikely]] log_close<A>(vid, FlowEvent::Why::evicted);
            flow_hashes<A>(vid, a, b, r);
        };
        id = ft.insert(hf, hr, vip.mode != Mode::dsr, state, now_ms, rehash);
        if (id == FlowTable<A>::kNone) return forward_stateless<A>(p, pp, vip_idx, be_idx, Drop::flow_table_full);
        FlowRecord<A>& rec = ft.record(id);
        std::memcpy(rec.client_addr, client, A);
        rec.client_port_raw = pp.sport_raw;
        rec.snat_port_raw = snat_port;
        rec.snat_idx = snat_idx & 0x7F;
        rec.replied = 0;
        rec.vip = vip_idx;
        rec.backend = be_idx;
        std::memcpy(rec.client_mac, p.data + EthOff::src, 6);
        if (tcp && (flags & kTcpFin)) {
            rec.fin_client = 1;  // the FIN of a connection whose state was lost
            if (vip.mode == Mode::dsr) ft.set_state(id, FlowState::tcp_closing, now_ms);
        }
        ++counters_.vips[vip_idx].new_flows;
        ++counters_.backends[be_idx].new_flows;
        if (flow_log_ && ++flow_log_countdown_ >= flow_log_one_in_) [[unlikely]] {
            flow_log_countdown_ = 0;
            log_open<A>(id, moved ? FlowEvent::Why::rescheduled : FlowEvent::Why::maglev_pick, p.len, now_ms);
        }
    }

    const FlowRecord<A>& rec = ft.record(id);
    const BackendEntry& be = service_->backends()[rec.backend];
    if (!be.has_mac) [[unlikely]] return drop(p, Drop::no_neighbor);
    ++counters_.forwarded;
    TrafficCounters& vc = counters_.vips[vip_idx];
    ++vc.packets;
    vc.bytes += p.len;
    emit_forward<A>(p, pp, vip, rec, be);
}

template <size_t A>
void Dataplane::forward_stateless(PacketRef& p, const ParsedPacket& pp, uint16_t vip_idx, uint16_t be_idx,
                                  Drop reason) noexcept {
    const VipEntry& vip = service_->vips()[vip_idx];
    if (vip.mode == Mode::fullnat) return drop(p, reason);
    const BackendEntry& be = service_->backends()[be_idx];
    if (!be.has_mac) [[unlikely]] return drop(p, Drop::no_neighbor);
    ++counters_.forwarded;
    ++counters_.stateless_forwarded;
    TrafficCounters& vc = counters_.vips[vip_idx];
    ++vc.packets;
    vc.bytes += p.len;
    TrafficCounters& bc = counters_.backends[be_idx];
    ++bc.packets;
    bc.bytes += p.len;
    if (vip.mode == Mode::nat) {
        remember_client<A>(p, pp);  // so the backend's answer can go back
        nat_rewrite<A>(p.data, pp, true, be.addr.bytes.data(), be.port_raw, be.ip_sum_to_backend, be.l4_sum_to_backend);
    }
    set_macs(p.data, be.mac, env_.port_macs[env_.backend_port]);
    tx_side(p, retag_needed(pp.vlan, env_.backend_vlan), env_.backend_port, env_.backend_vlan);
}

template <size_t A>
void Dataplane::remember_client(const PacketRef& p, const ParsedPacket& pp) noexcept {
    const uint8_t* client = p.data + pp.l3_off + Ip<A>::kSrc;
    ClientMac<A>& cm = client_mac_slot<A>(client, pp.sport_raw);
    std::memcpy(cm.addr, client, A);
    cm.port_raw = pp.sport_raw;
    std::memcpy(cm.mac, p.data + EthOff::src, 6);
    cm.used = true;
}

template <size_t A>
Dataplane::ClientMac<A>& Dataplane::client_mac_slot(const uint8_t* addr, uint16_t port_raw) noexcept {
    uint64_t h;
    if constexpr (A == 4) h = hash_(load_raw32(addr) | uint64_t{port_raw} << 32 | uint64_t{1} << 63);
    else h = hash_(load64(addr), load64(addr + 8), uint64_t{port_raw} | uint64_t{1} << 63);
    ClientMac<A>* macs;
    if constexpr (A == 4) macs = client_macs4_.get(); else macs = client_macs6_.get();
    return macs[(h >> 32) % kClientMacs];
}

template <size_t A>
void Dataplane::reply_stateless(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const uint8_t* src = ip + Ip<A>::kSrc;
    const uint8_t* dst = ip + Ip<A>::kDst;
    const uint16_t be_idx = service_->nat_backend(Ip<A>::kFamily, src, pp.sport_raw, pp.l4_proto);
    if (be_idx == Service::kNoBackendEntry) return drop(p, Drop::no_flow);
    const ClientMac<A>& cm = client_mac_slot<A>(dst, pp.dport_raw);
    if (!cm.used || cm.port_raw != pp.dport_raw || std::memcmp(cm.addr, dst, A) != 0) return drop(p, Drop::no_flow);
    if (pp.l4_proto == kIpProtoTcp && !tcp_flags_valid(pp.tcp_flags)) return drop(p, Drop::bad_tcp_flags);
    if (ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
    const BackendEntry& be = service_->backends()[be_idx];
    const VipEntry& vip = service_->vips()[be.vip];
    nat_rewrite<A>(p.data, pp, false, vip.addr.bytes.data(), vip.port_raw, be.ip_sum_to_vip, be.l4_sum_to_vip);
    Mac client_mac;
    std::memcpy(client_mac.bytes.data(), cm.mac, 6);
    set_macs(p.data, client_mac, env_.port_macs[env_.client_port]);
    ++counters_.replies;
    ++counters_.stateless_replies;
    TrafficCounters& bc = counters_.backends[be_idx];
    ++bc.packets;
    bc.bytes += p.len;
    tx_side(p, retag_needed(pp.vlan, env_.client_vlan), env_.client_port, env_.client_vlan);
}

template <size_t A>
void Dataplane::reply(PacketRef& p, const ParsedPacket& pp, uint64_t hr, uint32_t now_ms) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const uint8_t* src = ip + Ip<A>::kSrc;
    const uint8_t* dst = ip + Ip<A>::kDst;
    FlowTable<A>& ft = table<A>();
    uint32_t ref = find_reply<A>(src, dst, pp.sport_raw, pp.dport_raw, pp.l4_proto, hr);
    if (ref != FlowTable<A>::kNone && ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) {
        remove_flow<A>(FlowTable<A>::ref_id(ref), FlowEvent::Why::idle);
        ref = FlowTable<A>::kNone;
    }
    if (ref == FlowTable<A>::kNone) {
        // A nat reply is owned by the worker of its client (the destination); fullnat replies
        // reach their owner through RSS, so a miss there is final, except for a first fragment,
        // which RSS hashed by its addresses only.
        const bool ours = service_->owns_address(Ip<A>::kFamily, dst);
        if (env_.nb_workers > 1 && !ours) {
            const uint16_t owner = nat_owner(dst, A, pp.dport_raw);
            if (owner != env_.worker_id) return redirect(p, owner);
        } else if (env_.nb_workers > 1 && pp.frag == Frag::first) {
            const uint16_t owner = rss_owner<A>(src, dst, pp.sport_raw, pp.dport_raw);
            if (owner != env_.worker_id) return redirect(p, owner);
        }
        if (service_->is_vip_address(Ip<A>::kFamily, dst)) return drop(p, Drop::no_vip);
        if (service_->is_self_address(Ip<A>::kFamily, dst)) return to_control(p);  // e.g. a probe's answer
        if (!ours && pp.frag == Frag::none) return reply_stateless<A>(p, pp);
        return drop(p, Drop::no_flow);
    }
    const uint32_t id = FlowTable<A>::ref_id(ref);
    FlowRecord<A>& rec = ft.record(id);
    if (pp.l4_proto == kIpProtoTcp) {
        const uint8_t flags = pp.tcp_flags;
        if (!tcp_flags_valid(flags)) [[unlikely]] return drop(p, Drop::bad_tcp_flags);
        if (ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
        // Passive health: an RST before the handshake completed is a refused connection.
        if ((flags & kTcpRst) && rec.state == FlowState::tcp_syn && !rec.replied)
            ++counters_.backends[rec.backend].handshake_failures;
        if (flags & kTcpRst) {
            ft.set_state(id, FlowState::tcp_closing, now_ms);
        } else {
            // Any other answer to a flow picked up mid-connection: the backend knows it.
            if (rec.state == FlowState::unconfirmed) ft.set_state(id, FlowState::tcp_established, now_ms);
            if ((flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
                // The client's ACK will have to acknowledge this to establish the flow.
                rec.replied = 1;
                rec.synack = 1;
                rec.synack_ack16 =
                    static_cast<uint16_t>(__builtin_bswap32(load_raw32(p.data + pp.l4_off + TcpOff::seq)) + 1);
            } else if (flags & kTcpFin) {
                // As on the client side, only a confirmed connection half-closes.
                rec.fin_backend = 1;
                if (rec.state == FlowState::tcp_established || rec.state == FlowState::tcp_half_closed)
                    ft.set_state(id, rec.fin_client ? FlowState::tcp_closing : FlowState::tcp_half_closed, now_ms);
            }
        }
    } else {
        if (ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
        if (rec.state == FlowState::unconfirmed) ft.set_state(id, FlowState::udp, now_ms);  // answered
    }
    ft.touch(id, now_ms);
    if (flow_log_) [[unlikely]] log_packet<A>(id, p.len, now_ms);
    const VipEntry& vip = service_->vips()[rec.vip];
    const BackendEntry& be = service_->backends()[rec.backend];
    const uint16_t out = env_.client_port, vid = env_.client_vlan;
    const bool retag_it = retag_needed(pp.vlan, vid);
    nat_rewrite<A>(p.data, pp, false, vip.addr.bytes.data(), vip.port_raw, be.ip_sum_to_vip, be.l4_sum_to_vip,
                   vip.mode == Mode::fullnat ? rec.client_addr : nullptr, rec.client_port_raw);
    Mac client_mac;
    std::memcpy(client_mac.bytes.data(), rec.client_mac, 6);
    set_macs(p.data, client_mac, env_.port_macs[env_.client_port]);
    ++counters_.replies;
    auto& bc = counters_.backends[rec.backend];
    ++bc.packets;
    bc.bytes += p.len;
    tx_side(p, retag_it, out, vid);
}

template <size_t A>
bool Dataplane::pick_snat(const BackendEntry& b, uint8_t proto, uint32_t now_ms, uint8_t& idx,
                          uint16_t& port_raw) noexcept {
    const auto& addrs = service_->snat(Ip<A>::kFamily);
    if (addrs.empty()) return false;
    const int fam = A == 4 ? 0 : 1;
    const uint32_t lo = service_->config().snat_port_min, hi = service_->config().snat_port_max;
    const uint32_t range = hi - lo + 1;
    FlowTable<A>& ft = table<A>();
    // Search bound: enough to find a port on this worker's queue with overwhelming probability
    // while the range is not nearly exhausted, and never an unbounded stall.
    const uint32_t budget = 256u * env_.nb_workers;
    for (size_t a = 0; a < addrs.size(); ++a) {
        const uint8_t ai = static_cast<uint8_t>((snat_addr_cursor_[fam] + a) % addrs.size());
        const uint8_t* saddr = addrs[ai].bytes.data();
        // Toeplitz is linear: hash the reply's fixed fields once, then add each candidate port.
        uint8_t bport[2];
        std::memcpy(bport, &b.port_raw, 2);
        const uint32_t base = toeplitz_.hash_addrs(b.addr.bytes.data(), saddr, A) ^ toeplitz_.hash_at(2 * A, bport, 2);
        uint32_t cand = snat_cursor_[fam];
        for (uint32_t tries = 0; tries < budget && tries < range; ++tries, cand = cand >= hi ? lo : cand + 1) {
            const uint8_t pb[2] = {static_cast<uint8_t>(cand >> 8), static_cast<uint8_t>(cand)};
            if (env_.nb_workers > 1 && env_.reta.queue(base ^ toeplitz_.hash_at(2 * A + 2, pb, 2)) != env_.worker_id)
                continue;
            uint16_t craw;
            std::memcpy(&craw, pb, 2);
            const uint64_t hr = rev_hash<A>(hash_, b.addr.bytes.data(), saddr, b.port_raw, craw, proto);
            const uint32_t used = ft.find(hr, [&](uint32_t r) {
                const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(r));
                return FlowTable<A>::ref_dir(r) == 1 && rec.snat_port_raw == craw && rec.snat_idx == ai &&
                       static_cast<uint8_t>(service_->vips()[rec.vip].proto) == proto &&
                       service_->backends()[rec.backend].port_raw == b.port_raw &&
                       service_->backends()[rec.backend].addr == b.addr;
            });
            if (used != FlowTable<A>::kNone) {
                // A flow idle past its timeout no longer holds its port, even if the expiry
                // pass has not reached it yet.
                if (!ft.is_stale(FlowTable<A>::ref_id(used), now_ms)) continue;
                remove_flow<A>(FlowTable<A>::ref_id(used), FlowEvent::Why::idle);
            }
            idx = ai;
            port_raw = craw;
            snat_cursor_[fam] = cand >= hi ? lo : cand + 1;
            return true;
        }
        snat_addr_cursor_[fam] = static_cast<uint8_t>((ai + 1) % addrs.size());
    }
    return false;
}

template <size_t A>
uint32_t Dataplane::find_reply(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw,
                               uint8_t proto, uint64_t h) const noexcept {
    const FlowTable<A>& ft = const_cast<Dataplane*>(this)->table<A>();
    return ft.find(h, [&](uint32_t r) {
        if (FlowTable<A>::ref_dir(r) != 1) return false;
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(r));
        const BackendEntry& b = service_->backends()[rec.backend];
        const VipEntry& v = service_->vips()[rec.vip];
        if (b.port_raw != sport_raw || static_cast<uint8_t>(v.proto) != proto ||
            std::memcmp(b.addr.bytes.data(), src, A) != 0)
            return false;
        if (v.mode == Mode::nat) return rec.client_port_raw == dport_raw && std::memcmp(rec.client_addr, dst, A) == 0;
        return rec.snat_port_raw == dport_raw &&
               std::memcmp(service_->snat(Ip<A>::kFamily)[rec.snat_idx].bytes.data(), dst, A) == 0;
    });
}

template <size_t A>
uint16_t Dataplane::rss_owner(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                              uint16_t dport_raw) const noexcept {
    if (env_.nb_workers <= 1) return env_.worker_id;
    return env_.reta.queue(toeplitz_.hash_tuple(src, dst, A, sport_raw, dport_raw));
}

template <size_t A>
typename FragTable<A>::Key Dataplane::frag_key(const uint8_t* ip, const ParsedPacket& pp) noexcept {
    typename FragTable<A>::Key k;
    std::memcpy(k.src, ip + Ip<A>::kSrc, A);
    std::memcpy(k.dst, ip + Ip<A>::kDst, A);
    k.id = pp.frag_id;
    k.proto = A == 4 ? pp.l4_proto : 0;
    return k;
}

template <size_t A>
void Dataplane::remember_fragment(const PacketRef& p, const ParsedPacket& pp, const Lookup& lk, const uint8_t* src,
                                  const uint8_t* dst, const typename FragTable<A>::Key& k, uint8_t ttl_before,
                                  uint32_t now_ms) noexcept {
    typename FragTable<A>::Outcome o;
    if (p.verdict == Verdict::redirect) {
        o.redirect = true;
        o.out = p.out;
    } else if (p.verdict == Verdict::tx) {
        // The outcome as it shows in the rewritten frame: whatever forward() or reply() did
        // (which may have added or removed a VLAN tag: the IP header is found again).
        const uint8_t* ip = p.data + kEthHdrLen + (has_vlan_tag(p.data, p.len) ? kVlanHdrLen : 0);
        o.out = p.out;
        o.vlan = vlan_id_of(p.data, p.len);
        o.ttl_dec = ip[Ip<A>::kTtl] != ttl_before;
        std::memcpy(o.src, ip + Ip<A>::kSrc, A);
        std::memcpy(o.dst, ip + Ip<A>::kDst, A);
        std::memcpy(o.macs, p.data, 12);
        // The flow it went by (there is one: it was just forwarded or translated).
        if (lk.vip != Service::kNoVip) {
            if (const uint32_t ref = find_forward<A>(lk.vip, src, pp.sport_raw, lk.hash, lk.bucket);
                ref != FlowTable<A>::kNone) {
                o.vip = lk.vip;
                o.backend = table<A>().record(FlowTable<A>::ref_id(ref)).backend;
            }
        } else if (const uint32_t ref = find_reply<A>(src, dst, pp.sport_raw, pp.dport_raw, pp.l4_proto, lk.hash);
                   ref != FlowTable<A>::kNone) {
            o.backend = table<A>().record(FlowTable<A>::ref_id(ref)).backend;
        }
    } else {
        return;  // dropped: so will its later fragments be, as `fragment`
    }
    if (frags<A>().insert(k, o, now_ms)) ++counters_.frag_evictions;
    ++counters_.frag_tracked;
}

template <size_t A>
void Dataplane::later_fragment(PacketRef& p, const ParsedPacket& pp, uint32_t now_ms) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    const typename FragTable<A>::Outcome* o = frags<A>().find(frag_key<A>(ip, pp), now_ms);
    if (!o) return drop(p, Drop::fragment);
    if (o->redirect) {
        // Handed over to this worker, yet this worker sent a datagram of the same identity
        // elsewhere: two datagrams share source, destination and identification (the sender
        // reused its IP ID within the table's 5 s). This one's first fragment is not known
        // here; bouncing it back would only loop.
        if (p.redirected) return drop(p, Drop::fragment);
        return redirect(p, o->out);
    }
    if (o->ttl_dec && ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
    // No transport header here: only the IP header changes (its checksum with it, for IPv4).
    CsumDelta d;
    move_addr<A>(ip + Ip<A>::kSrc, o->src, d);
    move_addr<A>(ip + Ip<A>::kDst, o->dst, d);
    if constexpr (A == 4) {
        if (o->ttl_dec) {
            const uint16_t old_w = load_raw16(ip + Ipv4Off::ttl);
            --ip[Ipv4Off::ttl];
            d.change16(old_w, load_raw16(ip + Ipv4Off::ttl));
        }
        const uint16_t c = d.apply(load_raw16(ip + Ipv4Off::csum));
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else if (o->ttl_dec) {
        --ip[Ipv6Off::hop_limit];
    }
    std::memcpy(p.data, o->macs, 12);
    ++counters_.frag_forwarded;
    // Indices of an older snapshot stay valid: the counter arrays only grow.
    if (o->vip != 0xFFFF) {
        ++counters_.vips[o->vip].packets;
        counters_.vips[o->vip].bytes += p.len;
    }
    if (o->backend != 0xFFFF) {
        ++counters_.backends[o->backend].packets;
        counters_.backends[o->backend].bytes += p.len;
    }
    tx_side(p, retag_needed(pp.vlan, o->vlan), o->out, o->vlan);
}

// An ICMP error quotes the IP header and at least 8 bytes of the packet that caused it (RFC
// 792, RFC 4443 §2.4): enough for its ports, so for its flow. Two kinds concern a flow:
//  - about a packet Sluice sent a client (quoted source: a VIP; e.g. a router on the way to
//    the client needs fragmentation): it goes to the flow's backend, translated the way the
//    backend's packets were, backwards, so the backend's stack recognises its own packet;
//  - about a packet Sluice sent a backend (quoted destination: the backend): it goes to the
//    client, translated so the client recognises its packet to the VIP, from the VIP.
// Every changed word of the quote is also patched into the inner IPv4 and transport checksums
// (when quoted) and into the ICMP checksum, which covers the quote (and for ICMPv6 the outer
// addresses); the outer header as for any routed packet. dsr flows: the client's side only,
// forwarded unchanged to the backend, which owns the VIP too.
template <size_t A>
void Dataplane::handle_icmp_error(PacketRef& p, const ParsedPacket& pp, uint32_t now_ms) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    uint8_t* icmp = p.data + pp.l4_off;
    uint8_t* q = icmp + kIcmpHdrLen;
    const uint32_t qlen = pp.ip_end - pp.l4_off - kIcmpHdrLen;  // parse checked >= 0
    uint32_t qhl = kIpv6HdrLen;
    uint8_t qproto = 0;
    if constexpr (A == 4) {
        if (qlen < kIpv4MinHdrLen || (q[0] >> 4) != 4) return drop(p, Drop::icmp_bad_quote);
        qhl = (q[0] & 0x0F) * 4u;
        if (qhl < kIpv4MinHdrLen || qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
        if (load_be16(q + Ipv4Off::frag) & 0x1FFF) return drop(p, Drop::icmp_no_flow);  // a later fragment: no ports
        qproto = q[Ipv4Off::proto];
    } else {
        if (qlen < kIpv6HdrLen + 8 || (q[0] >> 4) != 6) return drop(p, Drop::icmp_bad_quote);
        // The quoted packet's extension headers, walked as the outer ones are (RFC 8200 §4):
        // options and a routing header with no segments left are passed over, and so is a
        // first fragment's header; a later fragment quotes no ports.
        qproto = q[Ipv6Off::next];
        for (int i = 0; i < 8; ++i) {
            if (qproto == kIpProtoHopOpts || qproto == kIpProtoDstOpts || qproto == kIpProtoRouting) {
                if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
                if (qproto == kIpProtoRouting && q[qhl + 3] != 0) return drop(p, Drop::icmp_no_flow);
                qproto = q[qhl];
                qhl += (q[qhl + 1] + 1u) * 8u;
            } else if (qproto == kIpProtoFragment) {
                if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
                if (load_be16(q + qhl + 2) & 0xFFF8) return drop(p, Drop::icmp_no_flow);
                qproto = q[qhl];
                qhl += 8;
            } else {
                break;
            }
        }
        if (qlen < qhl + 8) return drop(p, Drop::icmp_bad_quote);
    }
    if (qproto != kIpProtoTcp && qproto != kIpProtoUdp) return drop(p, Drop::icmp_no_flow);
    uint8_t* qsrc = q + Ip<A>::kSrc;
    uint8_t* qdst = q + Ip<A>::kDst;
    uint8_t* ql4 = q + qhl;
    const uint16_t qsport = load_raw16(ql4), qdport = load_raw16(ql4 + 2);
    constexpr Family f = Ip<A>::kFamily;
    FlowTable<A>& ft = table<A>();

    // Which flow, and where it goes: the new outer and quoted addresses (nullptr: unchanged).
    const uint8_t *out_src = nullptr, *out_dst = nullptr, *in_src = nullptr, *in_dst = nullptr;
    uint16_t in_sport = 0, in_dport = 0;
    const Mac* dst_mac;
    Mac client_mac;
    uint16_t out_port, out_vlan;
    bool routed;
    const uint16_t vip_idx = service_->find_vip(f, qsrc, qsport, qproto);
    if (vip_idx != Service::kNoVip && std::memcmp(ip + Ip<A>::kDst, qsrc, A) == 0) {
        // About the client side: the quoted packet went VIP -> client.
        const VipEntry& vip = service_->vips()[vip_idx];
        const uint32_t ref = find_forward<A>(vip_idx, qdst, qdport, fwd_hash<A>(hash_, vip_idx, qdst, qdport));
        if (ref == FlowTable<A>::kNone || ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) {
            if (env_.nb_workers > 1) {
                const uint16_t owner = vip.mode == Mode::nat ? nat_owner(qdst, A, qdport)
                                                             : rss_owner<A>(qdst, qsrc, qdport, qsport);
                if (owner != env_.worker_id) return redirect(p, owner);
            }
            return drop(p, Drop::icmp_no_flow);
        }
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(ref));
        const BackendEntry& be = service_->backends()[rec.backend];
        if (!be.has_mac) return drop(p, Drop::no_neighbor);
        dst_mac = &be.mac;
        out_port = env_.backend_port;
        out_vlan = env_.backend_vlan;
        routed = vip.mode != Mode::dsr;
        if (routed) {
            out_dst = in_src = be.addr.bytes.data();
            in_sport = be.port_raw;
        }
        if (vip.mode == Mode::fullnat) {
            out_src = in_dst = service_->snat(f)[rec.snat_idx].bytes.data();
            in_dport = rec.snat_port_raw;
        }
    } else {
        // About the backend side: the quoted packet went client (nat) or SNAT (fullnat) ->
        // backend, and the error is addressed to that source.
        if (std::memcmp(ip + Ip<A>::kDst, qsrc, A) != 0) return drop(p, Drop::icmp_no_flow);
        const uint32_t ref = find_reply<A>(qdst, qsrc, qdport, qsport, qproto, rev_hash<A>(hash_, qdst, qsrc, qdport, qsport, qproto));
        if (ref == FlowTable<A>::kNone || ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) {
            if (env_.nb_workers > 1) {
                const uint16_t owner = !service_->owns_address(f, qsrc) ? nat_owner(qsrc, A, qsport)
                                                                       : rss_owner<A>(qdst, qsrc, qdport, qsport);
                if (owner != env_.worker_id) return redirect(p, owner);
            }
            return drop(p, Drop::icmp_no_flow);
        }
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(ref));
        const VipEntry& vip = service_->vips()[rec.vip];
        std::memcpy(client_mac.bytes.data(), rec.client_mac, 6);
        dst_mac = &client_mac;
        out_port = env_.client_port;
        out_vlan = env_.client_vlan;
        routed = true;
        out_src = in_dst = vip.addr.bytes.data();
        in_dport = vip.port_raw;
        if (vip.mode == Mode::fullnat) {
            out_dst = in_src = rec.client_addr;
            in_sport = rec.client_port_raw;
        }
    }
    if (routed && ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);

    CsumDelta icmp_d, in_addrs, in_ports, out_addrs;
    if (in_src) {
        move_addr<A>(qsrc, in_src, in_addrs);
        move_port(ql4, in_sport, in_ports);
    }
    if (in_dst) {
        move_addr<A>(qdst, in_dst, in_addrs);
        move_port(ql4 + 2, in_dport, in_ports);
    }
    icmp_d += in_addrs;
    icmp_d += in_ports;
    if constexpr (A == 4) {  // the quoted header's own checksum
        const uint16_t old_c = load_raw16(q + Ipv4Off::csum);
        const uint16_t c = in_addrs.apply(old_c);
        std::memcpy(q + Ipv4Off::csum, &c, 2);
        icmp_d.change16(old_c, c);
    }
    // The quoted transport checksum, when the quote reaches it (UDP's always does; TCP's needs
    // 18 bytes). It cannot be verified against a truncated payload, only kept consistent.
    const uint32_t csum_off = qproto == kIpProtoUdp ? UdpOff::csum : TcpOff::csum;
    if (qhl + csum_off + 2 <= qlen) {
        const uint16_t old_c = load_raw16(ql4 + csum_off);
        if (!(A == 4 && qproto == kIpProtoUdp && old_c == 0)) {
            CsumDelta d = in_addrs;
            d += in_ports;
            uint16_t c = d.apply(old_c);
            if (qproto == kIpProtoUdp && c == 0) c = 0xFFFF;
            std::memcpy(ql4 + csum_off, &c, 2);
            icmp_d.change16(old_c, c);
        }
    }
    if (out_src) move_addr<A>(ip + Ip<A>::kSrc, out_src, out_addrs);
    if (out_dst) move_addr<A>(ip + Ip<A>::kDst, out_dst, out_addrs);
    if constexpr (A == 4) {
        if (routed) {
            const uint16_t old_w = load_raw16(ip + Ipv4Off::ttl);
            --ip[Ipv4Off::ttl];
            out_addrs.change16(old_w, load_raw16(ip + Ipv4Off::ttl));
        }
        const uint16_t c = out_addrs.apply(load_raw16(ip + Ipv4Off::csum));
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else {
        if (routed) --ip[Ipv6Off::hop_limit];
        icmp_d += out_addrs;  // ICMPv6 sums the pseudo header (RFC 4443 §2.3); hop limit is not in it
    }
    const uint16_t c = icmp_d.apply(load_raw16(icmp + IcmpOff::csum));
    std::memcpy(icmp + IcmpOff::csum, &c, 2);
    set_macs(p.data, *dst_mac, env_.port_macs[out_port]);
    ++counters_.icmp_forwarded;
    tx_side(p, retag_needed(pp.vlan, out_vlan), out_port, out_vlan);
}

// A VIP answers ping itself, in place: addresses swapped, a fresh TTL, type echo reply, and
// both checksums patched for exactly what changed (the IPv6 pseudo header sums the same
// addresses in the other order), so a corrupted request gets an equally corrupted answer.
template <size_t A>
void Dataplane::answer_echo(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* ip = p.data + pp.l3_off;
    uint8_t* icmp = p.data + pp.l4_off;
    uint8_t tmp[A];
    std::memcpy(tmp, ip + Ip<A>::kSrc, A);
    std::memcpy(ip + Ip<A>::kSrc, ip + Ip<A>::kDst, A);
    std::memcpy(ip + Ip<A>::kDst, tmp, A);
    if constexpr (A == 4) {
        const uint16_t old_w = load_raw16(ip + Ipv4Off::ttl);
        ip[Ipv4Off::ttl] = 64;
        const uint16_t c = csum_update16(load_raw16(ip + Ipv4Off::csum), old_w, load_raw16(ip + Ipv4Off::ttl));
        std::memcpy(ip + Ipv4Off::csum, &c, 2);
    } else {
        ip[Ipv6Off::hop_limit] = 64;
    }
    const uint16_t old_type = load_raw16(icmp + IcmpOff::type);
    icmp[IcmpOff::type] = A == 4 ? kIcmpEchoReply : kIcmp6EchoReply;
    uint16_t c = csum_update16(load_raw16(icmp + IcmpOff::csum), old_type, load_raw16(icmp + IcmpOff::type));
    // RFC 1624 eqn. 3 never yields 0xFFFF: when an ICMPv4 reply is zero in every other byte
    // (echo reply, identifier, sequence and payload all zero) the sum is +0 and the only valid
    // checksum is 0xFFFF, where the update gives 0x0000. The pseudo header keeps ICMPv6 from
    // ever summing to zero.
    if (A == 4 && c == 0 && icmp_zero_but_checksum(icmp, pp.ip_end - pp.l4_off)) c = 0xFFFF;
    std::memcpy(icmp + IcmpOff::csum, &c, 2);
    uint8_t mac[6];
    std::memcpy(mac, p.data + EthOff::src, 6);
    set_macs(p.data, Mac{{mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]}}, env_.port_macs[p.in_port]);
    ++counters_.echo_replies;
    tx(p, p.in_port);
}

void Dataplane::handle_arp(PacketRef& p, const ParsedPacket& pp) noexcept {
    uint8_t* a = p.data + pp.l3_off;
    if (load_be16(a + ArpOff::htype) != 1 || load_be16(a + ArpOff::ptype) != kEtherTypeIpv4 || a[ArpOff::hlen] != 6 ||
        a[ArpOff::plen] != 4)
        return drop(p, Drop::arp_ignored);
    // Answers to the kernel side's requests and gratuitous ARP, in either form (a reply, or a
    // request for the sender's own address, as a host that takes over an address or changes
    // its MAC sends), teach it and the control core the neighbours' MACs.
    // A request that claims one of Sluice's own addresses is answered, which defends it.
    const uint16_t op = load_be16(a + ArpOff::op);
    const bool ours = op == 1 && service_->owns_address(Family::v4, a + ArpOff::tpa);
    const bool gratuitous = op == 1 && !ours && std::memcmp(a + ArpOff::spa, a + ArpOff::tpa, 4) == 0;
    if ((op == 2 || gratuitous) && env_.exception_path) return to_control(p);
    if (!ours) return drop(p, Drop::arp_ignored);
    const Mac& mine = env_.port_macs[p.in_port];
    uint8_t target[4];
    std::memcpy(target, a + ArpOff::tpa, 4);
    store_be16(a + ArpOff::op, 2);
    std::memcpy(a + ArpOff::tha, a + ArpOff::sha, 6);
    std::memcpy(a + ArpOff::tpa, a + ArpOff::spa, 4);
    std::memcpy(a + ArpOff::sha, mine.bytes.data(), 6);
    std::memcpy(a + ArpOff::spa, target, 4);
    std::memcpy(p.data + EthOff::dst, a + ArpOff::tha, 6);
    std::memcpy(p.data + EthOff::src, mine.bytes.data(), 6);
    ++counters_.arp_replies;
    tx(p, p.in_port);
}

void Dataplane::handle_nd(PacketRef& p, const ParsedPacket& pp) noexcept {
    // RFC 4861 §7.1.1: hop limit 255, code 0, at least 24 bytes; §7.2.4: answer with an
    // advertisement (Solicited, Override) carrying our link-layer address. A solicitation from
    // the unspecified address is another node's duplicate address detection: the answer goes
    // to all-nodes with Solicited clear, which defends the address.
    uint8_t* ip = p.data + pp.l3_off;
    const uint8_t* icmp = p.data + pp.l4_off;
    static constexpr uint8_t kUnspecified[16] = {};
    static constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr uint8_t kAllNodesMac[6] = {0x33, 0x33, 0, 0, 0, 1};
    if (ip[Ipv6Off::hop_limit] != 255 || icmp[IcmpOff::code] != 0 || pp.l4_len < 24 ||
        !service_->owns_address(Family::v6, icmp + 8))
        return drop(p, Drop::nd_ignored);
    const bool dad = std::memcmp(ip + Ipv6Off::src, kUnspecified, 16) == 0;
    const uint32_t new_len = pp.l3_off + kIpv6HdrLen + 32;
    if (new_len > p.cap) return drop(p, Drop::nd_ignored);
    uint8_t target[16], asker[16];
    std::memcpy(target, icmp + 8, 16);
    std::memcpy(asker, dad ? kAllNodes : ip + Ipv6Off::src, 16);
    const Mac& mine = env_.port_macs[p.in_port];

    std::memcpy(p.data + EthOff::dst, dad ? kAllNodesMac : p.data + EthOff::src, 6);
    std::memcpy(p.data + EthOff::src, mine.bytes.data(), 6);
    store_be32(ip + Ipv6Off::vtc, 0x60000000u);  // version 6; our own traffic class and flow label
    store_be16(ip + Ipv6Off::payload_len, 32);
    ip[Ipv6Off::next] = kIpProtoIcmpv6;
    ip[Ipv6Off::hop_limit] = 255;
    std::memcpy(ip + Ipv6Off::src, target, 16);
    std::memcpy(ip + Ipv6Off::dst, asker, 16);
    uint8_t* na = ip + kIpv6HdrLen;
    std::memset(na, 0, 32);
    na[IcmpOff::type] = kIcmp6NeighborAdvert;
    na[4] = dad ? 0x20 : 0x60;  // Override, and Solicited unless answering DAD
    std::memcpy(na + 8, target, 16);
    na[24] = 2;  // Target Link-Layer Address option, 1 x 8 bytes
    na[25] = 1;
    std::memcpy(na + 26, mine.bytes.data(), 6);
    const uint16_t c = static_cast<uint16_t>(
        ~csum_fold(csum_partial(na, 32, pseudo_sum_v6(ip + Ipv6Off::src, ip + Ipv6Off::dst, kIpProtoIcmpv6, 32))));
    std::memcpy(na + IcmpOff::csum, &c, 2);
    p.len = new_len;
    ++counters_.nd_replies;
    tx(p, p.in_port);
}

Dataplane::Explanation Dataplane::explain(Family f, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                                          uint16_t dport_raw, uint8_t proto, uint32_t now_ms) const noexcept {
    Explanation e;
    e.vip = service_->find_vip(f, dst, dport_raw, proto);
    if (e.vip == Service::kNoVip) return e;
    const VipEntry& vip = service_->vips()[e.vip];
    const auto hit = [&]<size_t A>(const FlowTable<A>& ft) {
        const uint32_t ref = find_forward<A>(e.vip, src, sport_raw, fwd_hash<A>(hash_, e.vip, src, sport_raw));
        if (ref == FlowTable<A>::kNone || ft.is_stale(FlowTable<A>::ref_id(ref), now_ms)) return false;
        e.how = Explanation::How::flow_hit;
        e.backend = ft.record(FlowTable<A>::ref_id(ref)).backend;
        e.would_reschedule = !service_->backends()[e.backend].keeps_flows(vip.on_down);
        e.no_neighbor = !service_->backends()[e.backend].has_mac;
        return true;
    };
    if (f == Family::v4 ? hit.template operator()<4>(*flows4_) : hit.template operator()<16>(*flows6_)) return e;
    const uint16_t pick = vip.maglev.lookup(maglev_flow_hash(f, src, dst, sport_raw, dport_raw, proto));
    if (pick == Maglev::kNoBackend) {
        e.how = Explanation::How::no_backend;
        return e;
    }
    e.how = Explanation::How::maglev;
    e.backend = vip.backends[pick];
    return e;
}

void Dataplane::expire(uint32_t now_ms, uint32_t budget) noexcept {
    if (flushing_) {
        sweep<4>(budget);
        sweep<16>(budget);
        if (flush_cursor_[0] >= flows4_->capacity() && flush_cursor_[1] >= flows6_->capacity()) flushing_ = false;
    }
    flows4_->expire(now_ms, budget, [this](uint32_t id, uint64_t& a, uint64_t& b, bool& r) {
        if (flow_log_) [[unlikely]] log_close<4>(id, FlowEvent::Why::expired);
        flow_hashes<4>(id, a, b, r);
    });
    flows6_->expire(now_ms, budget, [this](uint32_t id, uint64_t& a, uint64_t& b, bool& r) {
        if (flow_log_) [[unlikely]] log_close<16>(id, FlowEvent::Why::expired);
        flow_hashes<16>(id, a, b, r);
    });
}

}  // namespace sluice::lb
