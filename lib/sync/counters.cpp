#include "lib/sync/counters.hpp"

#include <algorithm>

namespace sluice::sync {

const char* to_string(Refusal r) noexcept {
    switch (r) {
#define SLUICE_X(name) \
    case Refusal::name: return #name;
        SLUICE_SYNC_REFUSALS(SLUICE_X)
#undef SLUICE_X
        case Refusal::count_: break;
    }
    return "?";
}

void SyncCounters::add(const SyncCounters& o) noexcept {
    const uint64_t max = std::max(lag_ms_max, o.lag_ms_max);
#define SLUICE_X(name) name += o.name;
    SLUICE_SYNC_SCALARS(SLUICE_X)
#undef SLUICE_X
    lag_ms_max = max;
    for (size_t i = 0; i < kRefusals; ++i) refused[i] += o.refused[i];
}

}  // namespace sluice::sync
