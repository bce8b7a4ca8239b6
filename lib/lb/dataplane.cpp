// The per-packet path: a burst parsed and classified, client packets forwarded, replies
// translated back. The rest of the Dataplane is defined in dp_*.cpp (see dataplane.hpp).
#include "lib/lb/dataplane.hpp"

#include <algorithm>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

namespace {

// Every parse failure is dropped under the reason of the same name (a failure without one
// does not compile).
Drop drop_of(ParseStatus s) noexcept {
    switch (s) {
#define SLUICE_X(name) \
    case ParseStatus::name: return Drop::name;
        SLUICE_PARSE_FAILURES(SLUICE_X)
#undef SLUICE_X
        case ParseStatus::ok: break;
    }
    return Drop::runt;
}

// Does the client's ACK acknowledge the backend's SYN-ACK (sequence number + 1)? Only the low
// 16 bits are kept: a blind spoofer who never saw the SYN-ACK guesses right once in 65,536.
// (A client whose handshake ACK was lost and whose backend spoke first acknowledges more; its
// flow stays half-open until the next packet after it is evicted or times out, which picks it
// up again unconfirmed and promotes it on the backend's answer.)
inline bool acks_handshake(const uint8_t* tcp, uint16_t synack_ack16) noexcept {
    return static_cast<uint16_t>(load_be32(tcp + TcpOff::ack)) == synack_ack16;
}

// An IPv6 UDP datagram without a checksum (0): RFC 8200 §8.1 makes receivers drop it.
template <size_t A>
[[gnu::always_inline]] inline bool udp6_without_checksum(const uint8_t* frame, const ParsedPacket& pp) noexcept {
    return A == 16 && pp.l4_proto == kIpProtoUdp && load_raw16(frame + pp.l4_off + UdpOff::csum) == 0;
}

}  // namespace

DataPathSettings data_path_settings(const ProcessConfig& config) {
    DataPathSettings s{config.timeouts, config.snat_port_min, config.snat_port_max, config.new_flow_rate};
    if (config.tunnel_mtu) s.tunnel_mtu = config.tunnel_mtu;
    s.persist_capacity = config.persist_capacity;
    s.sync = config.sync.id != 0;
    return s;
}

Status configure_worker_env(const ProcessConfig& config, uint16_t nb_ports, WorkerEnv& env) {
    const int client = config.client_port >= 0 ? config.client_port : 0;
    const int backend = config.backend_port >= 0 ? config.backend_port : (nb_ports > 1 ? 1 : client);
    if (client >= nb_ports || backend >= nb_ports)
        return make_error(fmt::format("--client-port {} / --backend-port {}: only {} ports exist", client, backend,
                                      nb_ports));
    env.client_port = static_cast<uint16_t>(client);
    env.backend_port = static_cast<uint16_t>(backend);
    env.client_vlan = config.client_vlan;
    env.backend_vlan = config.backend_vlan;
    env.settings = data_path_settings(config);
    return {};
}

// Up to this many flows (a few MiB of records and index) the table's lines mostly stay cached
// between packets of a flow, and prefetching records costs more than it saves.
constexpr uint32_t kPrefetchFlows = 16384;

// Datagrams in flight in fragments, per worker and family: fragments of one datagram arrive
// within milliseconds, so this covers far more than a worker's share of a busy link.
constexpr uint32_t kFragCapacity = 8192;

// Persistence reports a worker can leave for the control core between two of its turns (about
// a millisecond): 2 per new connection of a persistent VIP (its pin or refresh, and its end).
constexpr uint32_t kPersistReports = 8192;

// Session reports a worker can leave for the control core between two of its turns: up to two
// per fullnat session (its confirmation and its end) and one per later state change.
constexpr uint32_t kSessionReports = 16384;

Dataplane::Dataplane(std::shared_ptr<const Service> service, const WorkerEnv& env, uint32_t flow_capacity)
    : initial_(std::move(service)),
      service_(initial_.get()),
      env_(env),
      hash_(env.hash_key),
      client_macs4_(std::make_unique<ClientMac<4>[]>(kClientMacs)),
      client_macs6_(std::make_unique<ClientMac<16>[]>(kClientMacs)),
      flows4_(std::make_unique<FlowTable<4>>(flow_capacity, env.settings.timeouts)),
      flows6_(std::make_unique<FlowTable<16>>(flow_capacity, env.settings.timeouts)),
      frags4_(std::make_unique<FragTable<4>>(kFragCapacity, hash_)),
      frags6_(std::make_unique<FragTable<16>>(kFragCapacity, hash_)),
      persist_(std::make_unique<PersistTable>(env.settings.persist_capacity, env.hash_key)) {
    // With replication the control core also sends the entries to the tier's peers.
    if (env_.nb_workers > 1 || env_.settings.sync) persist_reports_ = std::make_unique<PersistRing>(kPersistReports);
    if (env_.settings.sync) session_reports_ = std::make_unique<SessionRing>(kSessionReports);
    counters_.vips.reserve(kMaxVipSlots);
    counters_.backends.reserve(kMaxBackendSlots);
    set_service(service_);
    snat_cursor_[0] = snat_cursor_[1] = env_.settings.snat_port_min;
    const uint64_t rate = env_.settings.new_flow_rate;
    // Ten milliseconds of burst (at least 64 flows): a flood cannot save up a second's worth.
    new_flows_ = TokenBucket(rate, std::max<uint64_t>(64, rate / 100));
    if (rate) syn_retries_ = std::make_unique<SynRetry[]>(kSynRetrySlots);
    for (size_t i = 0; i < env_.port_macs.size() && i < kPortSlots; ++i)
        ports_[i].mac = load_raw48(env_.port_macs[i].bytes.data());
    // A port serves its side's VLAN; the one port of a one-arm set-up serves both.
    // Port ids beyond kPortSlots cannot be configured (--client-port/--backend-port <= 31).
    PortIdentity& client = ports_[env_.client_port & (kPortSlots - 1)];
    PortIdentity& backend = ports_[env_.backend_port & (kPortSlots - 1)];
    client.vlan[0] = client.vlan[1] = client.kernel_vlan = env_.client_vlan;
    backend.vlan[1] = backend.kernel_vlan = env_.backend_vlan;
    if (&backend != &client) backend.vlan[0] = env_.backend_vlan;
    for (auto& port : ports_) {
        const bool untagged = port.vlan[0] == 0 || port.vlan[1] == 0;  // serves untagged frames
        port.fast_mask = untagged && port.mac ? 0xFFFF'FFFF'FFFFull : 0;
        port.fast_dst = untagged ? port.mac : 1;
    }
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

uint16_t Dataplane::nat_owner(const uint8_t* client_addr, size_t addr_len, uint16_t client_port_raw) const noexcept {
    if (env_.nb_workers <= 1) return env_.worker_id;
    uint8_t port[2];
    std::memcpy(port, &client_port_raw, 2);
    return env_.reta.queue(toeplitz_.hash_at(0, client_addr, addr_len) ^ toeplitz_.hash_at(addr_len, port, 2));
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
        if (detail::parse_fast_ipv4(p.data, p.len, pp[i], p.ip_csum_good, me.fast_mask, me.fast_dst)) [[likely]] {
            // Untagged IPv4 TCP or UDP, not a fragment: a flow packet (see `flow` below).
            st[i] = ParseStatus::ok;
            classify<4, true>(p, pp[i], lk[i], memo);
            continue;
        } else if (const Drop why = judge_frame(p, pp[i], st[i]); why != Drop::count_) {
            refused |= uint64_t{1} << i;
            refused_why[i] = why;
            lk[i] = Lookup{};
            continue;
        }
        const bool flow = st[i] == ParseStatus::ok &&
                          (pp[i].l4_proto == kIpProtoTcp || pp[i].l4_proto == kIpProtoUdp) && pp[i].frag != Frag::later;
        // classify() fills in every field (of the key, the words the hash reads).
        if (flow && pp[i].l3 == L3::ipv4) classify<4>(p, pp[i], lk[i], memo);
        else if (flow && pp[i].l3 == L3::ipv6) classify<16>(p, pp[i], lk[i], memo);
        else lk[i] = Lookup{};
    }
    counters_.redirected_in += redirected;
    counters_.rx += n - redirected;
    // The buckets' prefetches back to back: each likely misses the TLB as well as the caches
    // (a big index spreads even a few flows over as many pages), and issued together their
    // page walks overlap rather than each holding up the parsing of the next packets.
    // The hash's implementation chosen once per burst, not per key.
    if (hash_.impl() == KeyedHash::Impl::aes) [[likely]] hash_keys<KeyedHash::Impl::aes>(pp, lk, n);
    else hash_keys<KeyedHash::Impl::siphash>(pp, lk, n);
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

template <KeyedHash::Impl I>
inline void Dataplane::hash_keys(const ParsedPacket* pp, Lookup* lk, uint32_t n) noexcept {
    for (uint32_t i = 0; i < n; ++i) {
        if (lk[i].key.words == 0) continue;
        lk[i].hash = lk[i].key.hash<I>(hash_);
        if (pp[i].l3 == L3::ipv4) {
            lk[i].bucket = flows4_->bucket_of(lk[i].hash);
            flows4_->prefetch_bucket(lk[i].bucket);
        } else {
            lk[i].bucket = flows6_->bucket_of(lk[i].hash);
            flows6_->prefetch_bucket(lk[i].bucket);
        }
    }
}

template <size_t A, bool kPlain>
inline void Dataplane::classify(const PacketRef& p, const ParsedPacket& pp, Lookup& lk, VipMemo& memo) noexcept {
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
    if (lk.vip != Service::kNoVip) set_fwd_key<A>(lk.key, lk.vip, ip + Ip<A>::kSrc, pp.sport_raw);
    else lk.key = rev_key<A>(ip + Ip<A>::kSrc, ip + Ip<A>::kDst, pp.sport_raw, pp.dport_raw, pp.l4_proto);
    // kPlain: the fast parser's packet, never a fragment.
    lk.to_vip = lk.vip != Service::kNoVip && (kPlain || pp.frag == Frag::none) && !udp6_without_checksum<A>(p.data, pp);
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
    if (!direct_return(vip.mode) && ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);

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
    if (!steady || ft.is_stale(id, now_ms) || !be.forwards || flow_log_.enabled()) [[unlikely]]
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
    } else if (vip.mode == Mode::tunnel) [[unlikely]] {
        return emit_tunnel<A>(p, pp, vip, be);
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
        if (flow_log_.enabled()) [[unlikely]] log_packet<A>(id, p.len, now_ms);
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
                set_flow_state<A>(id, FlowState::tcp_closing, now_ms);
            } else if (syn && (rec.state == FlowState::tcp_closing || rec.state == FlowState::tcp_half_closed)) {
                // A new connection on the same tuple: its handshake starts unanswered.
                set_flow_state<A>(id, FlowState::tcp_syn, now_ms);
                rec.replied = rec.synack = 0;
                rec.fin_client = rec.fin_backend = 0;
            } else if (flags & kTcpFin) {
                // Half-close: the other direction may carry data for a long time yet. In dsr the
                // backend's FIN bypasses Sluice, so the client's ends the flow as before. Only a
                // confirmed connection half-closes: a FIN on a half-open or unconfirmed flow
                // keeps its short timeout (else a spoofed SYN and FIN would pin an entry).
                rec.fin_client = 1;
                if (rec.state == FlowState::tcp_established || rec.state == FlowState::tcp_half_closed)
                    set_flow_state<A>(id, rec.fin_backend || direct_return(vip.mode) ? FlowState::tcp_closing
                                                                                     : FlowState::tcp_half_closed,
                                      now_ms);
            } else if (!syn && rec.state == FlowState::tcp_syn) {
                // The handshake's last ACK. Evidence in nat/fullnat: it acknowledges the SYN-ACK
                // the backend sent; dsr never sees that, so the ACK is all there is.
                if (direct_return(vip.mode) || (rec.synack && acks_handshake(p.data + pp.l4_off, rec.synack_ack16)))
                    set_flow_state<A>(id, FlowState::tcp_established, now_ms);
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
        if (tcp && !syn && !moved) ++counters_.non_syn_miss;
        uint16_t be_idx;
        bool pin = false;
        if (vip.persist_ms) [[unlikely]] {
            // Sticky clients: the client network's entry, or Maglev by the network (the
            // stateless fallbacks below take the same backend; only a flow pins it).
            be_idx = persist_choose<A>(vip, vip_idx, client, now_ms, pin);
            if (be_idx == Service::kNoBackendEntry) return drop(p, Drop::no_backend);
        } else {
            const uint64_t mh = maglev_flow_hash(Ip<A>::kFamily, client, ip + Ip<A>::kDst, pp.sport_raw,
                                                 pp.dport_raw, pp.l4_proto);
            const uint16_t pick = vip.maglev.lookup(mh);
            if (pick == Maglev::kNoBackend) return drop(p, Drop::no_backend);
            be_idx = vip.backends[pick];
        }
        const BackendEntry& be = service_->backends()[be_idx];
        // An RST of a flow Sluice does not know: passed on where no state is needed.
        if (tcp && (flags & kTcpRst)) return forward_stateless<A>(p, pp, vip_idx, be_idx, Drop::tcp_no_flow);
        if (new_flows_.limited() && !new_flows_.take(now_ms)) [[unlikely]] {
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
        auto on_drop = [this](uint32_t vid) {
            if (flow_log_.enabled()) [[unlikely]] log_close<A>(vid, FlowEvent::Why::evicted);
            flow_gone<A>(vid);
        };
        id = ft.insert(hf, hr, !direct_return(vip.mode), state, now_ms, on_drop);
        if (id == FlowTable<A>::kNone) return forward_stateless<A>(p, pp, vip_idx, be_idx, Drop::flow_table_full);
        FlowRecord<A>& rec = ft.record(id);
        std::memcpy(rec.client_addr, client, A);
        rec.client_port_raw = pp.sport_raw;
        rec.snat_port_raw = snat_port;
        rec.snat_idx = snat_idx & 0x7F;
        rec.replied = 0;
        rec.vip = vip_idx;
        rec.backend = be_idx;
        ++counters_.backends[be_idx].inactive_flows;  // half-open or unconfirmed
        std::memcpy(rec.client_mac, p.data + EthOff::src, 6);
        if (tcp && (flags & kTcpFin)) {
            rec.fin_client = 1;  // the FIN of a connection whose state was lost
            if (direct_return(vip.mode)) set_flow_state<A>(id, FlowState::tcp_closing, now_ms);
        }
        if (pin) [[unlikely]] persist_pin<A>(vip, vip_idx, client, be_idx, now_ms);
        ++counters_.vips[vip_idx].new_flows;
        ++counters_.backends[be_idx].new_flows;
        if (flow_log_.enabled() && flow_log_.pick()) [[unlikely]] {
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
            set_flow_state<A>(id, FlowState::tcp_closing, now_ms);
        } else {
            // Any other answer to a flow picked up mid-connection: the backend knows it.
            if (rec.state == FlowState::unconfirmed) set_flow_state<A>(id, FlowState::tcp_established, now_ms);
            if ((flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
                // The client's ACK will have to acknowledge this to establish the flow.
                rec.replied = 1;
                rec.synack = 1;
                rec.synack_ack16 =
                    static_cast<uint16_t>(load_be32(p.data + pp.l4_off + TcpOff::seq) + 1);
            } else if (flags & kTcpFin) {
                // As on the client side, only a confirmed connection half-closes.
                rec.fin_backend = 1;
                if (rec.state == FlowState::tcp_established || rec.state == FlowState::tcp_half_closed)
                    set_flow_state<A>(id, rec.fin_client ? FlowState::tcp_closing : FlowState::tcp_half_closed, now_ms);
            }
        }
    } else {
        if (ip[Ip<A>::kTtl] <= 1) return drop(p, Drop::ttl_expired);
        if (rec.state == FlowState::unconfirmed) set_flow_state<A>(id, FlowState::udp, now_ms);  // answered
    }
    ft.touch(id, now_ms);
    if (flow_log_.enabled()) [[unlikely]] log_packet<A>(id, p.len, now_ms);
    const VipEntry& vip = service_->vips()[rec.vip];
    const BackendEntry& be = service_->backends()[rec.backend];
    const uint16_t out = env_.client_port, vid = env_.client_vlan;
    const bool retag_it = retag_needed(pp.vlan, vid);
    nat_rewrite<A>(p.data, pp, false, vip.addr.bytes.data(), vip.port_raw, be.ip_sum_to_vip, be.l4_sum_to_vip,
                   vip.mode == Mode::fullnat ? rec.client_addr : nullptr, rec.client_port_raw);
    Mac client_mac;
    std::memcpy(client_mac.bytes.data(), rec.client_mac, 6);
    // A peer's session (replication): its client is behind the client side's router, whose
    // MAC may have been learnt since the session was installed.
    if (rec.learnt) [[unlikely]]
        if (const Mac* gw = service_->client_gateway(Ip<A>::kFamily)) client_mac = *gw;
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
    const auto& all = service_->snat(Ip<A>::kFamily);
    const size_t own = service_->snat_own(Ip<A>::kFamily);
    if (own == 0) return false;
    const std::span<const IpAddr> addrs(all.data(), own);
    const int fam = A == 4 ? 0 : 1;
    const uint32_t lo = env_.settings.snat_port_min, hi = env_.settings.snat_port_max;
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
            const uint16_t craw = port_to_raw(static_cast<uint16_t>(cand));
            uint8_t pb[2];
            std::memcpy(pb, &craw, 2);
            if (env_.nb_workers > 1 && env_.reta.queue(base ^ toeplitz_.hash_at(2 * A + 2, pb, 2)) != env_.worker_id)
                continue;
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

}  // namespace sluice::lb
