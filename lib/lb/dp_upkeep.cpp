// Between bursts: switching service snapshots, expiring idle flows, flushing the flows of
// removed backends, and answering explain() for sluicectl.
#include <algorithm>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

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
    // Persistence entries of removed backends go too: a client of one picks again.
    persist_flushing_ = true;
    persist_cursor_ = 0;
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
    uint64_t mh = 0;
    if (vip.persist_ms) {
        // As persist_choose() decides, without refreshing or pinning anything.
        e.persist_len = vip.persist_len;
        const PersistKey key = f == Family::v4 ? persist_key<4>(src, e.vip, vip.persist_len)
                                               : persist_key<16>(src, e.vip, vip.persist_len);
        if (const PersistEntry* pe = persist_->find(key, now_ms)) {
            const auto& backends = service_->backends();
            if (pe->backend < backends.size() && backends[pe->backend].vip == e.vip &&
                backends[pe->backend].keeps_clients()) {
                e.how = Explanation::How::persist;
                e.backend = pe->backend;
                e.persist_left_ms = PersistTable::left_ms(*pe, now_ms);
                return e;
            }
            e.released = true;
            e.released_from = pe->backend;
        }
        mh = persist_hash(f, key.net, dst, dport_raw, proto, vip.persist_len);
    } else {
        mh = maglev_flow_hash(f, src, dst, sport_raw, dport_raw, proto);
    }
    const uint16_t pick = vip.maglev.lookup(mh);
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
    if (persist_flushing_) {
        const auto& backends = service_->backends();
        // Four entries a bucket, 128 bytes: a few microseconds per turn at the default budget.
        persist_flushing_ = !persist_->sweep(persist_cursor_, budget * 4, [&](const PersistEntry& e) {
            return e.backend >= backends.size() || backends[e.backend].removed;
        });
    }
    flows4_->expire(now_ms, budget, [this](uint32_t id) {
        if (flow_log_.enabled()) [[unlikely]] log_close<4>(id, FlowEvent::Why::expired);
        persist_flow_ended<4>(id);
        flow_gone<4>(id);
    });
    flows6_->expire(now_ms, budget, [this](uint32_t id) {
        if (flow_log_.enabled()) [[unlikely]] log_close<16>(id, FlowEvent::Why::expired);
        persist_flow_ended<16>(id);
        flow_gone<16>(id);
    });
}

}  // namespace sluice::lb
