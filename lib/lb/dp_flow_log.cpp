// The flow log's side of the data path: a sampled flow's identity, and its open, packets and
// close handed to the FlowSampler (only called while the log is enabled).
#include <cstring>

#include "lib/lb/dataplane_internal.hpp"

namespace sluice::lb {

// The flow's identity as the log reports it (open and close share it).
template <size_t A>
FlowEvent Dataplane::flow_event(uint32_t id, FlowEvent::Kind kind, FlowEvent::Why why) const noexcept {
    const FlowRecord<A>& r = table<A>().record(id);
    FlowEvent e;
    e.kind = kind;
    e.why = why;
    e.family = dp::Ip<A>::kFamily;
    std::memcpy(e.client, r.client_addr, A);
    e.client_port_raw = r.client_port_raw;
    e.vip = r.vip;
    e.backend = r.backend;
    return e;
}

template <size_t A>
void Dataplane::log_open(uint32_t id, FlowEvent::Why why, uint32_t len, uint32_t now_ms) noexcept {
    flow_log_.open(sampled_key<A>(id), len, now_ms, [&] { return flow_event<A>(id, FlowEvent::Kind::open, why); });
}

template <size_t A>
void Dataplane::log_packet(uint32_t id, uint32_t len, uint32_t now_ms) noexcept {
    flow_log_.packet(sampled_key<A>(id), len, now_ms);
}

template <size_t A>
void Dataplane::log_close(uint32_t id, FlowEvent::Why why) noexcept {
    flow_log_.close(sampled_key<A>(id), [&] { return flow_event<A>(id, FlowEvent::Kind::close, why); });
}

template void Dataplane::log_open<4>(uint32_t, FlowEvent::Why, uint32_t, uint32_t) noexcept;
template void Dataplane::log_open<16>(uint32_t, FlowEvent::Why, uint32_t, uint32_t) noexcept;
template void Dataplane::log_packet<4>(uint32_t, uint32_t, uint32_t) noexcept;
template void Dataplane::log_packet<16>(uint32_t, uint32_t, uint32_t) noexcept;
template void Dataplane::log_close<4>(uint32_t, FlowEvent::Why) noexcept;
template void Dataplane::log_close<16>(uint32_t, FlowEvent::Why) noexcept;

}  // namespace sluice::lb
