// The control core's half of the flow log: drains the workers' event rings, formats each
// event against the current snapshot and writes at most `lines_per_s` lines per second
// (token bucket, one second of burst); the rest are counted and reported once per second.
// Thread contract: control core only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lib/lb/flow_log.hpp"
#include "lib/lb/service.hpp"

namespace sluice::control {

class FlowLogWriter {
public:
    FlowLogWriter(uint32_t lines_per_s, std::function<void(const std::string&)> sink);
    void add_ring(lb::FlowLogRing* ring) { rings_.push_back(ring); }
    // Pops every pending event; returns how many were read.
    size_t drain(uint64_t now_ms, const lb::Service& s);
    uint64_t written() const noexcept { return written_; }
    uint64_t suppressed() const noexcept { return suppressed_total_; }

private:
    uint32_t rate_;
    std::function<void(const std::string&)> sink_;
    std::vector<lb::FlowLogRing*> rings_;
    double tokens_;
    uint64_t last_ms_ = 0;
    uint64_t written_ = 0;
    uint64_t suppressed_ = 0;        // since the last report
    uint64_t suppressed_total_ = 0;
    uint64_t last_report_ms_ = 0;
};

}  // namespace sluice::control
