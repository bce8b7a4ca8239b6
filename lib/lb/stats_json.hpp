// Counters as JSON: totals, per worker, per VIP, per backend, drops by reason, flow tables.
//
// Thread contract: reads counters that their workers may still be updating; call it after
// the workers stopped (exit) or accept slightly stale numbers.
#pragma once

#include <string>
#include <vector>

#include "lib/lb/dataplane.hpp"

namespace sluice::lb {

std::string stats_to_json(const std::vector<const Dataplane*>& workers);

// The one-line testpmd-style summary of the totals ("rx 10 tx 8 drop 2 ...").
std::string stats_summary(const std::vector<const Dataplane*>& workers);

}  // namespace sluice::lb
