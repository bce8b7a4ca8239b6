// The optional flow log: one event when a sampled flow opens and one when it closes.
//
// Workers only sample (every N-th new flow a worker creates: the same flows on every run of the
// same traffic; lib/lb/flow_sampler.hpp), count the sampled flows' packets and bytes, and push fixed-size events into an SPSC
// ring. The control core pops them, formats and rate-limits the lines: no formatting, I/O or
// allocation on a worker's fast path, and a full ring only loses log lines (counted).
// Thread contract: FlowLogRing has one producer (a worker) and one consumer (the control core).
#pragma once

#include <cstdint>
#include <string>

#include "lib/common/spsc_ring.hpp"
#include "lib/net/addr.hpp"

namespace sluice::lb {

class Service;

struct FlowEvent {
    enum class Kind : uint8_t { open, close };
    // How the flow got its backend (open), or why it ended (close).
    enum class Why : uint8_t { maglev_pick, rescheduled, expired, evicted, flushed, moved, idle };
    Kind kind = Kind::open;
    Why why = Why::maglev_pick;
    net::Family family = net::Family::v4;
    uint8_t client[16] = {};
    uint16_t client_port_raw = 0;
    uint16_t vip = 0;
    uint16_t backend = 0;
    uint32_t duration_ms = 0;  // close: first to last packet
    uint64_t packets = 0;      // close: both directions
    uint64_t bytes = 0;
};

using FlowLogRing = SpscRing<FlowEvent>;

const char* to_string(FlowEvent::Why w) noexcept;
// "flow open tcp 192.0.2.10:40001 -> web 203.0.113.10:80 backend 198.51.100.12:8080 (maglev pick)"
std::string format_flow_event(const FlowEvent& e, const Service& s);

}  // namespace sluice::lb
