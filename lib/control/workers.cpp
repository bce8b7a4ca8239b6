#include "lib/control/workers.hpp"

#include <arpa/inet.h>

namespace sluice::control {

lb::Dataplane::Explanation ask(const lb::Dataplane& dp, const FlowQuery& q, uint32_t now_ms) noexcept {
    return dp.explain(q.src.family, q.src.bytes.data(), q.dst.bytes.data(), htons(q.sport), htons(q.dport),
                      static_cast<uint8_t>(q.proto), now_ms);
}

void perform(Workers::Task t, lb::Dataplane& dp) noexcept {
    switch (t) {
        case Workers::Task::flush_removed: dp.flush_removed(); break;
        case Workers::Task::clear_counters: dp.counters().clear(); break;
    }
}

lb::WorkerCounters Workers::counters() const {
    lb::WorkerCounters total;
    for_each([&](const lb::Dataplane& dp) { total.add(dp.counters()); });
    return total;
}

std::vector<const lb::Dataplane*> Workers::dataplanes() const {
    std::vector<const lb::Dataplane*> v;
    for_each([&](const lb::Dataplane& dp) { v.push_back(&dp); });
    return v;
}

std::optional<lb::Dataplane::Explanation> Workers::explain(const FlowQuery& q) {
    auto answers = ask_all(q);
    if (!answers || answers->empty()) return std::nullopt;
    lb::Dataplane::Explanation best = answers->front();
    for (const auto& a : *answers)
        if (a.how == lb::Dataplane::Explanation::How::flow_hit) best = a;
    return best;
}

}  // namespace sluice::control
