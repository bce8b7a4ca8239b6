// The data path's internals, shared by its source files (dataplane.cpp and dp_*.cpp): the IP
// header's layout by address size, the flow keys and their hashes, the address, port and
// checksum rewrites, and the Dataplane member templates that more than one of them uses
// (defined here so each stays inlinable where the per-packet path calls it).
// Only the data path's own files include it.
#pragma once

#include <cstring>

#include "lib/lb/dataplane.hpp"
#include "lib/net/checksum.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

namespace dp {

using namespace sluice::net;

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

// Key hashes. The forward key is (VIP, client address, client port); the reverse key is the
// reply's own tuple, so replies need no classification before the lookup.
// Both keyed (flow_hash.hpp). The IPv4 forward key is one word, the IPv4 reverse key two words,
// so the two never meet; IPv6 keys are three words, the reverse key's two
// addresses folded into them with a bijection on one side (a reply from b to a must not hash
// like one from a to b).
// The IPv4 forward key's one word.
[[gnu::always_inline]] inline uint64_t fwd_word4(uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    return load_raw32(client) | uint64_t{cport_raw} << 32 | uint64_t{vip} << 48;
}
template <size_t A>
[[gnu::always_inline]] inline FlowKey fwd_key(uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    if constexpr (A == 4) {
        return FlowKey{{fwd_word4(vip, client, cport_raw), 0, 0}, 1};
    } else {
        return FlowKey{{load_raw64(client), load_raw64(client + 8), uint64_t{cport_raw} | uint64_t{vip} << 16}, 3};
    }
}
// fwd_key() into k, writing only the words it uses (a burst's keys are written per packet; the
// hash reads `words` words).
template <size_t A>
[[gnu::always_inline]] inline void set_fwd_key(FlowKey& k, uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    if constexpr (A == 4) {
        k.w[0] = fwd_word4(vip, client, cport_raw);
        k.words = 1;
    } else {
        k = fwd_key<A>(vip, client, cport_raw);
    }
}
template <size_t A>
[[gnu::always_inline]] inline FlowKey rev_key(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                                              uint16_t dport_raw, uint8_t proto) noexcept {
    const uint64_t ports = uint64_t{sport_raw} | uint64_t{dport_raw} << 16 | uint64_t{proto} << 32 | uint64_t{1} << 40;
    if constexpr (A == 4) {
        return FlowKey{{load_raw32(src) | uint64_t{load_raw32(dst)} << 32, ports, 0}, 2};
    } else {
        return FlowKey{{load_raw64(src) ^ flow_mix(load_raw64(dst)), load_raw64(src + 8) ^ flow_mix(load_raw64(dst + 8)), ports}, 3};
    }
}
template <size_t A>
uint64_t fwd_hash(const KeyedHash& h, uint16_t vip, const uint8_t* client, uint16_t cport_raw) noexcept {
    return fwd_key<A>(vip, client, cport_raw).hash(h);
}
// A persistent VIP's client network as the persistence table keys it.
template <size_t A>
PersistKey persist_key(const uint8_t* client, uint16_t vip_idx, uint8_t prefix_len) noexcept {
    PersistKey k{};
    mask_address(Ip<A>::kFamily, client, prefix_len, k.net);
    k.vip = vip_idx;
    k.family = A == 4 ? 4 : 6;
    k.mask_len = prefix_len;
    return k;
}
template <size_t A>
uint64_t rev_hash(const KeyedHash& h, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw,
                  uint8_t proto) noexcept {
    return rev_key<A>(src, dst, sport_raw, dport_raw, proto).hash(h);
}


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

inline void set_macs(uint8_t* frame, const Mac& dst, const Mac& src) noexcept {
    std::memcpy(frame + EthOff::dst, dst.bytes.data(), 6);
    std::memcpy(frame + EthOff::src, src.bytes.data(), 6);
}

}  // namespace dp

template <size_t A>
FlowTable<A>& Dataplane::table() noexcept {
    if constexpr (A == 4) return *flows4_; else return *flows6_;
}

template <size_t A>
const FlowTable<A>& Dataplane::table() const noexcept {
    if constexpr (A == 4) return *flows4_; else return *flows6_;
}

template <size_t A>
uint32_t Dataplane::find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h) const noexcept {
    return find_forward<A>(vip, client, cport_raw, h, table<A>().bucket_of(h));
}

template <size_t A>
uint32_t Dataplane::find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h,
                                 uint32_t bucket) const noexcept {
    const FlowTable<A>& ft = table<A>();
    return ft.find(h, bucket, [&](uint32_t r) {
        const FlowRecord<A>& rec = ft.record(FlowTable<A>::ref_id(r));
        return FlowTable<A>::ref_dir(r) == 0 && rec.vip == vip && rec.client_port_raw == cport_raw &&
               std::memcmp(rec.client_addr, client, A) == 0;
    });
}

template <size_t A>
uint32_t Dataplane::find_reply(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw,
                               uint8_t proto, uint64_t h) const noexcept {
    const FlowTable<A>& ft = table<A>();
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
               std::memcmp(service_->snat(dp::Ip<A>::kFamily)[rec.snat_idx].bytes.data(), dst, A) == 0;
    });
}

template <size_t A>
uint16_t Dataplane::rss_owner(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                              uint16_t dport_raw) const noexcept {
    if (env_.nb_workers <= 1) return env_.worker_id;
    return env_.reta.queue(toeplitz_.hash_tuple(src, dst, A, sport_raw, dport_raw));
}

template <size_t A>
inline void Dataplane::set_flow_state(uint32_t id, FlowState s, uint32_t now_ms) noexcept {
    FlowTable<A>& ft = table<A>();
    const FlowRecord<A>& r = ft.record(id);
    const bool was = r.state == FlowState::tcp_established, is = s == FlowState::tcp_established;
    if (was != is) {
        TrafficCounters& c = counters_.backends[r.backend];
        --(was ? c.active_flows : c.inactive_flows);
        ++(is ? c.active_flows : c.inactive_flows);
    }
    ft.set_state(id, s, now_ms);
    if (session_reports_) [[unlikely]] session_changed<A>(id, now_ms);
}

template <size_t A>
inline void Dataplane::flow_gone(uint32_t id) noexcept {
    const FlowRecord<A>& r = table<A>().record(id);
    TrafficCounters& c = counters_.backends[r.backend];
    --(r.state == FlowState::tcp_established ? c.active_flows : c.inactive_flows);
    if (r.synced) [[unlikely]] session_ended<A>(id);
}

template <size_t A>
void Dataplane::remove_flow(uint32_t id, FlowEvent::Why why) noexcept {
    if (flow_log_.enabled()) [[unlikely]] log_close<A>(id, why);
    flow_gone<A>(id);
    if (why == FlowEvent::Why::idle) persist_flow_ended<A>(id);
    table<A>().remove(id, why == FlowEvent::Why::idle);
}

}  // namespace sluice::lb
