// Fragments: a first fragment is balanced like any packet and its outcome remembered (the
// FragTable); the later ones, which carry no ports, repeat it.
#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

template <size_t A>
FragTable<A>& Dataplane::frags() noexcept {
    if constexpr (A == 4) return *frags4_; else return *frags6_;
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
    // A tunnel VIP's fragments travel wrapped, each on its own, to the first one's backend,
    // unchanged inside (no TTL to check: the backend routes them).
    if (o->vip != Service::kNoVip && o->backend != Service::kNoBackendEntry &&
        service_->vips()[o->vip].mode == Mode::tunnel) {
        ++counters_.frag_forwarded;
        ++counters_.vips[o->vip].packets;
        counters_.vips[o->vip].bytes += p.len;
        ++counters_.backends[o->backend].packets;
        counters_.backends[o->backend].bytes += p.len;
        return emit_tunnel<A>(p, pp, service_->vips()[o->vip], service_->backends()[o->backend]);
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
    if (o->vip != Service::kNoVip) {
        ++counters_.vips[o->vip].packets;
        counters_.vips[o->vip].bytes += p.len;
    }
    if (o->backend != Service::kNoBackendEntry) {
        ++counters_.backends[o->backend].packets;
        counters_.backends[o->backend].bytes += p.len;
    }
    tx_side(p, retag_needed(pp.vlan, o->vlan), o->out, o->vlan);
}

template typename FragTable<4>::Key Dataplane::frag_key<4>(const uint8_t*, const ParsedPacket&) noexcept;
template typename FragTable<16>::Key Dataplane::frag_key<16>(const uint8_t*, const ParsedPacket&) noexcept;
template void Dataplane::remember_fragment<4>(const PacketRef&, const ParsedPacket&, const Lookup&, const uint8_t*,
                                              const uint8_t*, const FragTable<4>::Key&, uint8_t, uint32_t) noexcept;
template void Dataplane::remember_fragment<16>(const PacketRef&, const ParsedPacket&, const Lookup&, const uint8_t*,
                                               const uint8_t*, const FragTable<16>::Key&, uint8_t, uint32_t) noexcept;
template void Dataplane::later_fragment<4>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;
template void Dataplane::later_fragment<16>(PacketRef&, const ParsedPacket&, uint32_t) noexcept;

}  // namespace sluice::lb
