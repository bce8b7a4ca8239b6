// The value syntax of the options (internal to lib/config): numbers, addresses, durations, and
// the field grammar of --vip, --backend and --neighbor values. What a value means beyond its
// syntax (ranges that depend on other options, unique names, address kinds) is left to the
// rules (rules.hpp). Endpoints (ADDR[:PORT]) follow net::parse_endpoint, the grammar the
// control protocol uses too.
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"
#include "lib/net/addr.hpp"

namespace sluice::config::detail {

std::vector<std::string_view> split(std::string_view s, char sep);
// Without leading and trailing spaces, tabs, CRs and LFs.
std::string_view trim(std::string_view s);

// Strict unsigned decimal: digits only (no sign, spaces or 0x), within [lo, hi]. Errors:
// "bad WHAT 'TEXT' (expected a decimal number)", "WHAT out of range (LO..HI)".
Expected<uint64_t> parse_number(std::string_view s, uint64_t lo, uint64_t hi, std::string_view what);
// "192.0.2.1", "2001:db8::1" or "[2001:db8::1]".
Expected<net::IpAddr> parse_addr(std::string_view s);
// "500ms", "2s", "1m", "1h", or a plain number of milliseconds (HAProxy's default unit); 1 ms
// to max_ms (one hour unless said otherwise).
Expected<uint32_t> parse_duration_ms(std::string_view s, std::string_view what, uint32_t max_ms = 3'600'000);

// NAME,ADDR:PORT/PROTO,MODE[,KEY=VALUE...]
Expected<lb::VipConf> parse_vip(std::string_view text);
// VIP,ADDR[:PORT][,weight=N][,state=S]: the VIP's name and the backend.
Expected<std::pair<std::string, lb::BackendConf>> parse_backend(std::string_view text);
// ADDR,MAC
Expected<lb::NeighborConf> parse_neighbor(std::string_view text);
// ID,ADDR[:PORT][,snat=ADDR]...: a replication peer (--sync-peer).
Expected<lb::SyncPeerConf> parse_sync_peer(std::string_view text);

}  // namespace sluice::config::detail
