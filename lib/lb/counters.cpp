#include "lib/lb/counters.hpp"

namespace sluice::lb {

const char* to_string(Drop d) noexcept {
    switch (d) {
#define SLUICE_X(name) \
    case Drop::name: return #name;
        SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
        case Drop::count_: break;
    }
    return "?";
}

void WorkerCounters::add(const WorkerCounters& o) {
#define SLUICE_X(name) name += o.name;
    SLUICE_WORKER_SCALARS(SLUICE_X)
#undef SLUICE_X
    for (size_t i = 0; i < kDropReasons; ++i) drops[i] += o.drops[i];
    auto sum = [](std::vector<TrafficCounters>& a, const std::vector<TrafficCounters>& b) {
        if (a.size() < b.size()) a.resize(b.size());
        for (size_t i = 0; i < b.size(); ++i) {
            a[i].packets += b[i].packets;
            a[i].bytes += b[i].bytes;
            a[i].new_flows += b[i].new_flows;
            a[i].handshake_failures += b[i].handshake_failures;
            a[i].active_flows += b[i].active_flows;
            a[i].inactive_flows += b[i].inactive_flows;
        }
    };
    sum(vips, o.vips);
    sum(backends, o.backends);
}

void WorkerCounters::clear() noexcept {
    // Field by field, in place: a reader may be walking the vectors, which must not move.
#define SLUICE_X(name) name = 0;
    SLUICE_WORKER_SCALARS(SLUICE_X)
#undef SLUICE_X
    drops.fill(0);
    // handshake_failures stay: passive detection works on their increase, and a clear that
    // each worker applies at its own moment must not look like (or hide) one.
    // Nor do the flow gauges: they count what the tables hold.
    for (auto& c : vips) c = TrafficCounters{0, 0, 0, c.handshake_failures, c.active_flows, c.inactive_flows};
    for (auto& c : backends) c = TrafficCounters{0, 0, 0, c.handshake_failures, c.active_flows, c.inactive_flows};
}

}  // namespace sluice::lb
