// Replication on the data path: a worker reports its fullnat sessions to the control core,
// which sends them to the tier's peers, and installs the sessions the peers report
// (lib/control/sync_agent.hpp drives both; docs/sync-protocol.md has the rules).
//
// What a worker reports: a session once it is confirmed (established: the backend answered and
// the client acknowledged it; or a UDP flow the backend answered), each later state change, and
// its end. Half-open and unconfirmed flows stay local: a spoofed SYN or ACK flood must not cost
// the tier's links anything. Sessions installed from peers are marked learnt and never reported
// again; a flow this worker made itself wins over a peer's report of the same tuple.
#include <algorithm>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

using namespace sluice::net;
using namespace dp;

template <size_t A>
SessionReport Dataplane::session_report(uint32_t id, uint32_t now_ms) const noexcept {
    const FlowRecord<A>& r = table<A>().record(id);
    SessionReport s;
    s.addr_len = static_cast<uint8_t>(A);
    s.proto = static_cast<uint8_t>(service_->vips()[r.vip].proto);
    s.state = r.state;
    s.replied = r.replied;
    s.fin_client = r.fin_client;
    s.fin_backend = r.fin_backend;
    s.snat_idx = r.snat_idx;
    s.client_port_raw = r.client_port_raw;
    s.snat_port_raw = r.snat_port_raw;
    s.vip = r.vip;
    s.backend = r.backend;
    const auto idle = static_cast<int32_t>(now_ms - r.last_ms);
    s.idle_ms = idle > 0 ? static_cast<uint32_t>(idle) : 0;
    std::memcpy(s.client, r.client_addr, A);
    return s;
}

template <size_t A>
void Dataplane::session_changed(uint32_t id, uint32_t now_ms) noexcept {
    FlowRecord<A>& r = table<A>().record(id);
    if (r.learnt || service_->vips()[r.vip].mode != Mode::fullnat) return;
    if (!r.synced && r.state != FlowState::tcp_established && r.state != FlowState::udp) return;
    if (!session_reports_->push(session_report<A>(id, now_ms))) [[unlikely]] {
        ++counters_.sync_reports_lost;
        return;
    }
    r.synced = 1;
}

template <size_t A>
void Dataplane::session_ended(uint32_t id) noexcept {
    if (!session_reports_) return;
    SessionReport s = session_report<A>(id, table<A>().record(id).last_ms);
    s.kind = SessionReport::Kind::down;
    if (!session_reports_->push(s)) [[unlikely]] ++counters_.sync_reports_lost;
}

template <size_t A>
void Dataplane::learn_session(const SessionReport& s, uint32_t now_ms) noexcept {
    const auto& vips = service_->vips();
    const auto& backends = service_->backends();
    if (s.vip >= vips.size() || vips[s.vip].removed || vips[s.vip].mode != Mode::fullnat) {
        ++counters_.sync_install_refused;
        return;
    }
    FlowTable<A>& ft = table<A>();
    const uint64_t hf = fwd_hash<A>(hash_, s.vip, s.client, s.client_port_raw);
    uint32_t id = FlowTable<A>::kNone;
    if (const uint32_t ref = find_forward<A>(s.vip, s.client, s.client_port_raw, hf); ref != FlowTable<A>::kNone) {
        id = FlowTable<A>::ref_id(ref);
        if (ft.is_stale(id, now_ms)) {
            remove_flow<A>(id, FlowEvent::Why::idle);
            id = FlowTable<A>::kNone;
        }
    }
    if (s.kind == SessionReport::Kind::down) {
        if (id != FlowTable<A>::kNone && ft.record(id).learnt) {
            remove_flow<A>(id, FlowEvent::Why::expired);
            ++counters_.sync_removed;
        }
        return;
    }
    const auto& snats = service_->snat(Ip<A>::kFamily);
    if (s.backend >= backends.size() || backends[s.backend].vip != s.vip || backends[s.backend].removed ||
        s.snat_idx >= snats.size() || s.state == FlowState::free ||
        static_cast<int>(s.state) > kTimeoutClasses) {
        ++counters_.sync_install_refused;
        return;
    }
    // Already idle past its timeout where it was made: nothing to keep.
    if (s.idle_ms >= ft.timeout_ms(s.state)) return;
    const uint32_t last_ms = now_ms - s.idle_ms;
    if (id != FlowTable<A>::kNone) {
        FlowRecord<A>& r = ft.record(id);
        if (!r.learnt) {
            ++counters_.sync_conflicts;
            return;
        }
        if (r.backend == s.backend && r.snat_idx == s.snat_idx && r.snat_port_raw == s.snat_port_raw) {
            set_flow_state<A>(id, s.state, now_ms);
            r.replied = s.replied;
            r.fin_client = s.fin_client;
            r.fin_backend = s.fin_backend;
            if (static_cast<int32_t>(last_ms - r.last_ms) > 0) r.last_ms = last_ms;
            ++counters_.sync_updated;
            return;
        }
        remove_flow<A>(id, FlowEvent::Why::expired);  // another translation: the report wins
    }
    const BackendEntry& be = backends[s.backend];
    const uint64_t hr =
        rev_hash<A>(hash_, be.addr.bytes.data(), snats[s.snat_idx].bytes.data(), be.port_raw, s.snat_port_raw, s.proto);
    auto on_drop = [this](uint32_t vid) {
        if (flow_log_.enabled()) [[unlikely]] log_close<A>(vid, FlowEvent::Why::evicted);
        flow_gone<A>(vid);
    };
    id = ft.insert(hf, hr, true, s.state, now_ms, on_drop);
    if (id == FlowTable<A>::kNone) {
        ++counters_.sync_install_refused;
        return;
    }
    FlowRecord<A>& r = ft.record(id);
    std::memcpy(r.client_addr, s.client, A);
    r.client_port_raw = s.client_port_raw;
    r.snat_port_raw = s.snat_port_raw;
    r.snat_idx = s.snat_idx & 0x7F;
    r.replied = s.replied;
    r.vip = s.vip;
    r.backend = s.backend;
    r.fin_client = s.fin_client;
    r.fin_backend = s.fin_backend;
    r.learnt = 1;
    r.last_ms = last_ms;
    // Its client is behind the client side's router (the rules demand --client-gateway).
    if (const Mac* gw = service_->client_gateway(Ip<A>::kFamily)) std::memcpy(r.client_mac, gw->bytes.data(), 6);
    else std::memset(r.client_mac, 0, 6);
    TrafficCounters& c = counters_.backends[s.backend];
    ++(s.state == FlowState::tcp_established ? c.active_flows : c.inactive_flows);
    ++counters_.sync_installed;
}

void Dataplane::learn_sessions(const SessionReport* s, size_t n, uint32_t now_ms) noexcept {
    for (size_t i = 0; i < n; ++i) {
        if (s[i].addr_len == 4) learn_session<4>(s[i], now_ms);
        else if (s[i].addr_len == 16) learn_session<16>(s[i], now_ms);
        else ++counters_.sync_install_refused;
    }
}

uint32_t Dataplane::walk_sessions(bool v6, uint32_t cursor, uint32_t budget, bool learnt, uint32_t now_ms,
                                  std::vector<SessionReport>& out) const noexcept {
    auto walk = [&]<size_t A>(const FlowTable<A>& ft) {
        const uint32_t end = static_cast<uint32_t>(std::min<uint64_t>(ft.capacity(), uint64_t{cursor} + budget));
        for (; cursor < end && out.size() < out.capacity(); ++cursor) {
            const FlowRecord<A>& r = ft.record(cursor);
            if (r.state == FlowState::free || !(r.synced || (learnt && r.learnt)) || ft.is_stale(cursor, now_ms))
                continue;
            out.push_back(session_report<A>(cursor, now_ms));
        }
        return cursor;
    };
    return v6 ? walk.template operator()<16>(*flows6_) : walk.template operator()<4>(*flows4_);
}

void Dataplane::walk_persist(uint32_t now_ms, std::vector<PersistEntry>& out) const noexcept {
    persist_->for_each_live(now_ms, [&](const PersistEntry& e) {
        if (out.size() < out.capacity()) out.push_back(e);
    });
}

template SessionReport Dataplane::session_report<4>(uint32_t, uint32_t) const noexcept;
template SessionReport Dataplane::session_report<16>(uint32_t, uint32_t) const noexcept;
template void Dataplane::session_changed<4>(uint32_t, uint32_t) noexcept;
template void Dataplane::session_changed<16>(uint32_t, uint32_t) noexcept;
template void Dataplane::session_ended<4>(uint32_t) noexcept;
template void Dataplane::session_ended<16>(uint32_t) noexcept;

}  // namespace sluice::lb
