#include "lib/control/flow_log_writer.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::control {

FlowLogWriter::FlowLogWriter(uint32_t lines_per_s, std::function<void(const std::string&)> sink)
    : rate_(lines_per_s ? lines_per_s : 1), sink_(std::move(sink)), tokens_(rate_) {}

size_t FlowLogWriter::drain(uint64_t now_ms, const lb::Service& s) {
    if (now_ms > last_ms_) {
        tokens_ = std::min<double>(rate_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0);
        last_ms_ = now_ms;
    }
    size_t n = 0;
    lb::FlowEvent e;
    for (auto* r : rings_)
        while (r->pop(e)) {
            ++n;
            if (tokens_ < 1.0) {
                ++suppressed_;
                ++suppressed_total_;
                continue;
            }
            tokens_ -= 1.0;
            ++written_;
            sink_(lb::format_flow_event(e, s));
        }
    if (suppressed_ && now_ms - last_report_ms_ >= 1000) {
        sink_(fmt::format("flow log: {} lines suppressed (over {} per second)", suppressed_, rate_));
        suppressed_ = 0;
        last_report_ms_ = now_ms;
    }
    return n;
}

}  // namespace sluice::control
