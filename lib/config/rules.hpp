// The semantic rules of a configuration (internal to lib/config; validate() in options.hpp is
// their public face): value ranges, address kinds, unique names and services, what each mode
// needs. The parser hands over where each value came from, so a message can quote the option
// as the operator wrote it; a Config built in code gets a canonical rendering instead.
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"

namespace sluice::config::detail {

// The plain numeric options: name, field, bounds in the unit the operator writes, and the
// factor to the stored unit. One table for the parser and validate().
template <typename C, typename F>
void for_each_number(C& c, F&& f) {
    f("timeout-tcp-syn", c.timeouts.tcp_syn_ms, 1, 86400, 1000);
    f("timeout-tcp-established", c.timeouts.tcp_established_ms, 1, 86400, 1000);
    f("timeout-tcp-closing", c.timeouts.tcp_closing_ms, 1, 86400, 1000);
    f("timeout-tcp-half-closed", c.timeouts.tcp_half_closed_ms, 1, 86400, 1000);
    f("timeout-udp", c.timeouts.udp_ms, 1, 86400, 1000);
    f("timeout-unconfirmed", c.timeouts.unconfirmed_ms, 1, 86400, 1000);
    f("flow-capacity", c.flow_capacity, 1024, 67108864, 1);
    f("persist-capacity", c.persist_capacity, 1024, 16777216, 1);
    f("burst", c.burst, 1, 512, 1);
    f("rxd", c.rxd, 64, 16384, 1);
    f("txd", c.txd, 64, 16384, 1);
    f("total-num-mbufs", c.total_num_mbufs, 0, UINT32_MAX, 1);
    f("mbcache", c.mbcache, 0, 512, 1);  // RTE_MEMPOOL_CACHE_MAX_SIZE
    f("stats-period", c.stats_period_s, 0, 86400, 1);
    f("new-flow-rate", c.new_flow_rate, 0, 100'000'000, 1);
    f("flow-log", c.flow_log_one_in, 0, 1'000'000, 1);
    f("flow-log-rate", c.flow_log_rate, 1, 100'000, 1);
    f("drain-time", c.drain_time_s, 0, 3600, 1);
    f("idle-sleep", c.idle_sleep_us, 0, 10'000, 1);
}

// One option occurrence, as written.
struct RawOpt {
    std::string name;
    std::string value;
    std::string where;  // "file:line" for a config-file value, empty for the command line
};

// "file:line: --name 'value'" (or without the place, for the command line), clipped.
std::string describe(const RawOpt& o);
// "LABEL: WHAT".
Error fail(const std::string& label, std::string_view what);

// Where each element of a parsed Config came from, parallel to its vectors.
struct Origins {
    std::vector<RawOpt> vips;
    std::vector<std::vector<RawOpt>> backends;  // [vip][backend]
    std::vector<RawOpt> snat;
    std::vector<RawOpt> self;
    std::vector<RawOpt> neighbors;
    std::vector<RawOpt> tunnel_sources;
    std::vector<RawOpt> tunnel_gateways;
    std::vector<RawOpt> client_gateways;
    std::vector<RawOpt> sync_peers;
    std::map<std::string, RawOpt, std::less<>> scalars;
};

// The first rule `c` breaks, if any; `origins` (may be null) says where its values came from.
Status check(const lb::Config& c, const Origins* origins);

}  // namespace sluice::config::detail
