// The limits of what Sluice can be asked to do, in one place: the option grammar, validate(),
// the service build and the control protocol all check against these, so they cannot drift.
// Most follow from the width of a field in the data path, said beside each.
// Thread contract: constants.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::lb {

// Index space of VIPs and backend entries over a process's lifetime (lib/lb/service.hpp):
// flow records and counters name them by index, and indices are never reused.
constexpr size_t kMaxVipSlots = 4096;
constexpr size_t kMaxBackendSlots = 65535;  // 16-bit indices; 0xFFFF is Maglev's "none"
// Backends in one configuration, all VIPs together: each needs a backend entry.
constexpr size_t kMaxBackends = kMaxBackendSlots;
// A VIP's name (--vip NAME,...; what sluicectl names it by): letters, digits, '-', '_', '.'.
constexpr size_t kMaxVipNameLen = 63;
// A backend's weight (--backend ...,weight=N; sluicectl set-weight).
constexpr uint32_t kMaxWeight = 65535;
// A VIP's Maglev table size (table=PRIME): the largest size table=auto picks (the first prime
// above 2^21, 4 MiB of 16-bit entries; Maglev itself accepts up to Maglev::kMaxSize, a typo
// guard).
constexpr uint32_t kMaxTableSize = 2097169;
// SNAT addresses per family: flow records hold a 7-bit index into them (FlowRecord::snat_idx).
constexpr size_t kMaxSnatAddrs = 127;
// The lowest fullnat source port: below are well-known ports the kernel side may use.
constexpr uint16_t kMinSnatPort = 1024;
// DPDK port ids (--client-port, --backend-port).
constexpr int kMaxPortId = 31;
// 802.1Q VLAN ids (--client-vlan, --backend-vlan): 0 and 4095 are reserved.
constexpr uint16_t kMaxVlan = 4094;
// An HTTP probe reads at most this much of an answer (status line, headers and body).
constexpr size_t kMaxProbeResponse = 16 * 1024;
// An HTTP check's path (http-path=): HTTP servers refuse longer request lines.
constexpr size_t kMaxHttpPath = 2048;

// Persistence (persist=DURATION): one second to a day; entries per worker (--persist-capacity).
constexpr uint32_t kMinPersistMs = 1'000;
constexpr uint32_t kMaxPersistMs = 86'400'000;

// Tunnel VIPs: the GUE port backends listen on when none is given (IANA's port for GUE), and
// the range of --tunnel-mtu (IPv6's minimum link MTU to a jumbo frame).
constexpr uint16_t kDefaultGuePort = 6080;
constexpr uint32_t kMinTunnelMtu = 1280;
constexpr uint32_t kMaxTunnelMtu = 9000;

}  // namespace sluice::lb
