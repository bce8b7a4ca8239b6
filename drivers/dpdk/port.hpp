// Port set-up: queues, descriptors, RSS and the port's identity.
//
// Every worker owns RX/TX queue i of every port. With more than one queue, RSS is enabled with
// exactly the key and redirection table Sluice's software Toeplitz assumes (net::Reta), since
// fullnat SNAT ports and nat ownership are chosen by predicting the NIC's queue; a port that
// cannot take them is refused rather than left to steer replies elsewhere. vdevs used in the
// lab (pcap, af_packet, ring) have single queues, which trivially keep a flow on one worker.
// RX IPv4 checksum validation is enabled where offered (the worker trusts the mbuf flags);
// transmit checksums stay in software: Sluice patches them incrementally (RFC 1624), which
// costs less than preparing a TX offload (that too needs the pseudo-header sum).
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
    bool rss = false;          // RSS on, with Sluice's key and redirection table
    bool rx_ip_csum = false;   // the port validates IPv4 header checksums (RX offload)
};

// Configures and starts the port. Errors name the port and the DPDK call that failed.
Expected<PortInfo> setup_port(uint16_t port_id, const PortParams& params);

}  // namespace sluice::dpdk
