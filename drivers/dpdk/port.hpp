// Port set-up: queues, descriptors, RSS and the port's identity.
//
// Every worker owns RX/TX queue i of every port. RSS is enabled with Sluice's key when a port
// has more than one queue and offers it; vdevs used in the lab (pcap, af_packet, ring) have
// single queues, which trivially keep a flow on one worker.
// Thread contract: control plane only, before the workers start.
#pragma once

#include <cstdint>
#include <string>

#include <rte_mempool.h>

#include "lib/common/expected.hpp"
#include "lib/net/addr.hpp"

namespace sluice::dpdk {

struct PortParams {
    uint16_t nb_queues = 1;
    uint16_t rxd = 1024;
    uint16_t txd = 1024;
    rte_mempool* pool = nullptr;
};

struct PortInfo {
    uint16_t port_id = 0;
    net::Mac mac;
    std::string name;
    std::string driver;
    bool rss = false;
};

// Configures and starts the port. Errors name the port and the DPDK call that failed.
Expected<PortInfo> setup_port(uint16_t port_id, const PortParams& params);

}  // namespace sluice::dpdk
