// Which fullnat SNAT ports each worker can use.
//
// A fullnat flow lives on the worker its client's packets reach, and takes a SNAT port whose
// reply (backend -> SNAT address:port) the NIC's RSS sends to that same worker. So each worker
// owns, per SNAT address and backend, only the ports whose reply tuple hashes to it: about
// 1/N of the range with N workers, but with a small --snat-ports range possibly none, and then
// every flow that worker gets toward that backend is refused (snat_exhausted) while ports are
// free. Toeplitz is linear, so the hash splits into a part of the backend and address and a
// part of the port: a histogram of the ports' low hash bits, made once per address, gives
// every backend's shares in 128 steps.
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"
#include "lib/net/toeplitz.hpp"

namespace sluice::lb {

struct SnatShare {
    net::IpAddr addr;                    // the SNAT address
    std::vector<uint32_t> fewest;        // per worker: its ports toward the backend it owns fewest of
    std::vector<std::string> fewest_to;  // per worker: that backend ("addr:port")
    uint32_t ports = 0;                  // the range's size
};

// One entry per SNAT address that some fullnat VIP's backend of its family uses (none without
// fullnat VIPs). Workers receive replies by `reta` over Toeplitz with the default RSS key.
std::vector<SnatShare> snat_shares(const Config& c, uint16_t nb_workers, const net::Reta& reta);

// One line per address, e.g. "SNAT 198.51.100.100: 65512 ports; per worker at least 32701, 32755".
std::string describe(const SnatShare& s);

// An error naming the worker, address and backend when a worker owns no port toward a backend
// (its fullnat flows there could never be made), with the remedy.
Status check_snat_shares(const Config& c, uint16_t nb_workers, const net::Reta& reta);

}  // namespace sluice::lb
