// EAL start-up helpers: split `sluice [EAL options] -- [options]` and bring the EAL up.
//
// Thread contract: call from the main thread before any other DPDK call.
#pragma once

#include <string>
#include <vector>

#include "lib/common/expected.hpp"

namespace sluice::dpdk {

struct SplitArgs {
    std::vector<std::string> eal;   // program name first, then EAL options
    std::vector<std::string> app;   // options after `--`
};

// Everything before the first `--` belongs to the EAL, everything after it to Sluice. Without
// `--`, every argument is Sluice's, so `sluice --help` needs no EAL options.
SplitArgs split_args(int argc, char** argv);

// `sluice doctor [EAL options] [-- options]`: false unless argv[1] is `doctor`. The word is
// dropped and --doctor joins Sluice's options; without `--` every argument is EAL's, since the
// report needs no VIPs.
bool split_doctor_args(int argc, char** argv, SplitArgs& out);

// rte_eal_init() with the given arguments; the error names rte_errno's text.
Status init_eal(const std::vector<std::string>& eal_args);

// rte_eal_cleanup(), then (in a primary process) the removal of the EAL's runtime directory
// (/var/run/dpdk/PREFIX): DPDK leaves its config and fbarray files there, a few MB per
// --file-prefix, which runs with a fresh prefix each (tests, the replay harness) pile up.
void cleanup_eal() noexcept;

}  // namespace sluice::dpdk
