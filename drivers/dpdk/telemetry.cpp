#include "drivers/dpdk/telemetry.hpp"

#include <mutex>

#include <rte_telemetry.h>

namespace sluice::dpdk {

namespace {

std::mutex g_mutex;
const control::Workers* g_workers = nullptr;  // nullptr: the commands answer empty
bool g_registered = false;

int stats(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (!g_workers) return 0;
    const lb::WorkerCounters t = g_workers->counters();
    t.for_each_scalar([d](const char* k, uint64_t v) { rte_tel_data_add_dict_u64(d, k, v); });
    rte_tel_data_add_dict_u64(d, "drops", t.total_drops());
    return 0;
}

int drops(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (!g_workers) return 0;
    const lb::WorkerCounters t = g_workers->counters();
    for (size_t i = 0; i < lb::kDropReasons; ++i) rte_tel_data_add_dict_u64(d, lb::to_string(static_cast<lb::Drop>(i)), t.drops[i]);
    return 0;
}

}  // namespace

Telemetry::Telemetry(const control::Workers& workers) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_workers = &workers;
    if (g_registered) return;
    g_registered = true;
    rte_telemetry_register_cmd("/sluice/stats", stats, "Sluice totals. Takes no parameters");
    rte_telemetry_register_cmd("/sluice/drops", drops, "Sluice drops by reason. Takes no parameters");
}

Telemetry::~Telemetry() {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_workers = nullptr;
}

}  // namespace sluice::dpdk
