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
    using How = lb::Dataplane::Explanation::How;
    // A flow wins (its owner holds it); else a persistence entry (the one with the most time
    // left: the workers' copies may lag a report); else Maglev, the same everywhere.
    lb::Dataplane::Explanation best = answers->front();
    for (const auto& a : *answers) {
        if (best.how == How::flow_hit) break;
        if (a.how == How::flow_hit ||
            (a.how == How::persist && (best.how != How::persist || a.persist_left_ms > best.persist_left_ms)))
            best = a;
    }
    return best;
}

size_t Workers::relay_persist(const std::function<void(const lb::PersistEntry&)>& also) {
    const std::vector<const lb::Dataplane*> dps = dataplanes();
    if (dps.size() < 2 && !also) return 0;
    std::vector<std::vector<lb::PersistEntry>> out(dps.size());
    size_t n = 0;
    lb::PersistEntry e{};
    for (size_t w = 0; w < dps.size(); ++w) {
        lb::PersistRing* ring = dps[w]->persist_reports();
        if (!ring) continue;
        while (ring->pop(e)) {
            ++n;
            if (also) also(e);
            for (size_t o = 0; o < dps.size(); ++o)
                if (o != w) out[o].push_back(e);
        }
    }
    for (size_t o = 0; o < out.size(); ++o)
        if (!out[o].empty()) send_persist(static_cast<uint16_t>(o), std::move(out[o]));
    return n;
}

}  // namespace sluice::control
