#include "drivers/dpdk/direct_workers.hpp"

namespace sluice::dpdk {

void DirectWorkers::build(uint16_t count, lb::WorkerEnv env, uint32_t flow_capacity, uint16_t nb_ports) {
    for (uint16_t w = 0; w < count; ++w) {
        env.worker_id = w;
        workers_.push_back(std::make_unique<Worker>(snapshots_.back(), env, flow_capacity, nb_ports));
    }
}

void DirectWorkers::enable_flow_log(uint32_t one_in, control::FlowLogWriter& writer) {
    for (auto& w : workers_) writer.add_ring(w->enable_flow_log(one_in));
}

void DirectWorkers::publish(std::shared_ptr<const lb::Service> s) {
    for (auto& w : workers_) w->dataplane().set_service(s.get());
    snapshots_.push_back(std::move(s));
}

void DirectWorkers::run_on_all(Task t) {
    for (auto& w : workers_) control::perform(t, w->dataplane());
}

std::optional<std::vector<lb::Dataplane::Explanation>> DirectWorkers::ask_all(const control::FlowQuery& q) {
    std::vector<lb::Dataplane::Explanation> answers;
    for (auto& w : workers_) answers.push_back(control::ask(w->dataplane(), q, clock_ms_));
    return answers;
}

std::optional<std::vector<std::vector<lb::PersistEntry>>> DirectWorkers::persist_entries(uint16_t vip,
                                                                                          size_t max_per_worker) {
    std::vector<std::vector<lb::PersistEntry>> out(workers_.size());
    for (size_t w = 0; w < workers_.size(); ++w) {
        out[w].reserve(max_per_worker);
        workers_[w]->dataplane().list_persist(vip, clock_ms_, out[w]);
    }
    return out;
}

void DirectWorkers::send_persist(uint16_t w, std::vector<lb::PersistEntry> entries) {
    if (w < workers_.size()) workers_[w]->dataplane().learn_persist(entries.data(), entries.size(), clock_ms_);
}

void DirectWorkers::send_sessions(uint16_t w, std::vector<lb::SessionReport> sessions) {
    if (w < workers_.size()) workers_[w]->dataplane().learn_sessions(sessions.data(), sessions.size(), clock_ms_);
}

std::optional<control::Workers::SessionWalk> DirectWorkers::walk_sessions(uint16_t w, bool v6, uint32_t cursor,
                                                                          uint32_t budget, bool learnt, size_t max) {
    if (w >= workers_.size()) return std::nullopt;
    SessionWalk out;
    out.sessions.reserve(max);
    out.next = workers_[w]->dataplane().walk_sessions(v6, cursor, budget, learnt, clock_ms_, out.sessions);
    return out;
}

std::optional<std::vector<lb::PersistEntry>> DirectWorkers::walk_persist(uint16_t w, size_t max) {
    if (w >= workers_.size()) return std::nullopt;
    std::vector<lb::PersistEntry> out;
    out.reserve(max);
    workers_[w]->dataplane().walk_persist(clock_ms_, out);
    return out;
}

void DirectWorkers::for_each(const std::function<void(const lb::Dataplane&)>& f) const {
    for (const auto& w : workers_) f(w->dataplane());
}

}  // namespace sluice::dpdk
