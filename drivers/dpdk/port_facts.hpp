// Facts for the pre-flight checker (lib/doctor), read from sysfs, procfs and the EAL, and the
// two ways Sluice uses them: `sluice doctor` and the checks at every start.
//
// Thread contract: main thread only. gather_host_sysfs() needs no EAL; everything else runs
// after rte_eal_init() and before the ports are configured (it configures nothing itself).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/doctor/doctor.hpp"
#include "lib/lb/config.hpp"

namespace sluice::dpdk {

// NUMA nodes (CPUs, hugepages per size), whether a hugetlbfs is mounted, MemAvailable.
// `root` prefixes every path read ("" on a live system).
doctor::HostFacts gather_host_sysfs(const std::string& root = "");

// What one port offers, as rte_eth_dev_info_get and rte_eth_link_get_nowait report it.
doctor::PortFacts gather_port(uint16_t port_id);

// Everything: the host (lcores and EAL memory included), every port, the requested settings.
doctor::Facts gather(const lb::Config& config);

// Start-up checks: prints warnings and fatal findings to stderr; false when one is fatal.
bool preflight(const lb::Config& config);

// After the ports started: waits up to a second for their links, warns about those down.
void check_links_after_start(uint16_t nb_ports);

// `sluice doctor`: starts EAL, prints the full report, returns the exit code (0 or 1).
int run_doctor(const lb::Config& config, const std::vector<std::string>& eal_args);

}  // namespace sluice::dpdk
