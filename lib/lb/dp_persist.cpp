// Persistence (sticky clients) on the data path: which backend a persistent VIP's new
// connection takes, the entry it pins, its refresh when the connection ends, and the entries
// other workers report (persist_table.hpp has the table and its trade-offs).
//
// Several workers: RSS spreads one client's connections over workers, each with its own table.
// A worker reports every entry it makes, re-pins or extends; the control core hands the reports
// to the others (lib/control/workers.hpp relay_persist), which install them between bursts.
// Until a report arrives, a worker without the entry decides by Maglev over the client's
// network, which gives the pinned backend unless the backend set changed in between (the
// window is the control core's turn, about a millisecond); if two workers then pin different
// backends, the later decision wins everywhere (PersistTable::learn).
#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

template <size_t A>
uint16_t Dataplane::persist_choose(const VipEntry& vip, uint16_t vip_idx, const uint8_t* client, uint32_t now_ms,
                                   bool& pin) noexcept {
    const PersistKey key = persist_key<A>(client, vip_idx, vip.persist_len);
    const auto& backends = service_->backends();
    if (PersistEntry* e = persist_->find(key, now_ms)) {
        // An entry reported by a worker on a newer snapshot may name a backend this one has
        // not seen yet: ignored like one that no longer keeps clients.
        if (e->backend < backends.size() && backends[e->backend].vip == vip_idx &&
            backends[e->backend].keeps_clients()) {
            ++counters_.persist_hits;
            persist_extend(*e, now_ms + vip.persist_ms);
            return e->backend;
        }
    }
    const uint16_t pick = vip.maglev.lookup(persist_hash(Ip<A>::kFamily, key.net, vip.addr.bytes.data(), vip.port_raw,
                                                         static_cast<uint8_t>(vip.proto), vip.persist_len));
    if (pick == Maglev::kNoBackend) return Service::kNoBackendEntry;
    pin = true;
    return vip.backends[pick];
}

template <size_t A>
void Dataplane::persist_pin(const VipEntry& vip, uint16_t vip_idx, const uint8_t* client, uint16_t backend,
                            uint32_t now_ms) noexcept {
    const PersistKey key = persist_key<A>(client, vip_idx, vip.persist_len);
    const uint32_t persist_ms = vip.persist_ms;
    switch (persist_->put(key, backend, now_ms + persist_ms, now_ms)) {
        case PersistTable::Put::refused: ++counters_.persist_refused; return;
        case PersistTable::Put::evicted: ++counters_.persist_evictions; break;
        default: break;
    }
    ++counters_.persist_pins;
    persist_report(PersistEntry{key, backend, 0, now_ms + persist_ms, now_ms});
}

void Dataplane::persist_extend(PersistEntry& e, uint32_t expiry_ms) noexcept {
    if (static_cast<int32_t>(expiry_ms - e.expiry_ms) <= 0) return;
    e.expiry_ms = expiry_ms;
    persist_report(e);
}

template <size_t A>
void Dataplane::persist_flow_ended(uint32_t id) noexcept {
    const FlowRecord<A>& r = table<A>().record(id);
    const VipEntry& vip = service_->vips()[r.vip];
    if (!vip.persist_ms) return;
    // Judged at the flow's last packet: the entry it was pinned under may be past its time now
    // only if the flow outlived it, and then it is extended from that packet all the same.
    PersistEntry* e = persist_->find(persist_key<A>(r.client_addr, r.vip, vip.persist_len), r.last_ms);
    if (e && e->backend == r.backend) persist_extend(*e, r.last_ms + vip.persist_ms);
}

void Dataplane::learn_persist(const PersistEntry* entries, size_t n, uint32_t now_ms) noexcept {
    for (size_t i = 0; i < n; ++i) {
        const PersistEntry& e = entries[i];
        switch (persist_->learn(e.key, e.backend, e.expiry_ms, e.pinned_ms, now_ms)) {
            case PersistTable::Put::refused: ++counters_.persist_refused; break;
            case PersistTable::Put::evicted: ++counters_.persist_evictions; [[fallthrough]];
            case PersistTable::Put::inserted:
            case PersistTable::Put::updated: ++counters_.persist_learnt; break;
            case PersistTable::Put::kept: break;
        }
    }
}

size_t Dataplane::list_persist(uint16_t vip, uint32_t now_ms, std::vector<PersistEntry>& out) const noexcept {
    size_t n = 0;
    persist_->for_each_live(now_ms, [&](const PersistEntry& e) {
        if (e.key.vip != vip) return;
        ++n;
        if (out.size() == out.capacity()) return;
        out.push_back(e);
        out.back().expiry_ms = PersistTable::left_ms(e, now_ms);
    });
    return n;
}

template uint16_t Dataplane::persist_choose<4>(const VipEntry&, uint16_t, const uint8_t*, uint32_t, bool&) noexcept;
template uint16_t Dataplane::persist_choose<16>(const VipEntry&, uint16_t, const uint8_t*, uint32_t, bool&) noexcept;
template void Dataplane::persist_pin<4>(const VipEntry&, uint16_t, const uint8_t*, uint16_t, uint32_t) noexcept;
template void Dataplane::persist_pin<16>(const VipEntry&, uint16_t, const uint8_t*, uint16_t, uint32_t) noexcept;
template void Dataplane::persist_flow_ended<4>(uint32_t) noexcept;
template void Dataplane::persist_flow_ended<16>(uint32_t) noexcept;

}  // namespace sluice::lb
