#include "drivers/dpdk/telemetry.hpp"

#include <mutex>
#include <string>

#include <rte_telemetry.h>

#include "lib/net/endpoint.hpp"

namespace sluice::dpdk {

namespace {

std::mutex g_mutex;
const control::Workers* g_workers = nullptr;  // nullptr: the commands answer empty
std::shared_ptr<const lb::Service> g_service;  // names for the flow commands
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

// A u64 array to hand to a dict (which takes ownership). nullptr when DPDK has no memory.
rte_tel_data* u64_array() {
    rte_tel_data* a = rte_tel_data_alloc();
    if (a) rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
    return a;
}

rte_tel_data* string_array() {
    rte_tel_data* a = rte_tel_data_alloc();
    if (a) rte_tel_data_start_array(a, RTE_TEL_STRING_VAL);
    return a;
}

void add(rte_tel_data* d, const char* name, rte_tel_data* array) {
    if (array && rte_tel_data_add_dict_container(d, name, array, 0) != 0) rte_tel_data_free(array);
}

// A VIP's flows: the sum of its backends' (ControlPlane::list() counts them the same way).
void vip_flows(const lb::VipEntry& v, const lb::WorkerCounters& t, uint64_t& active, uint64_t& inactive) {
    active = inactive = 0;
    for (uint16_t bi : v.backends)
        if (bi < t.backends.size()) {
            active += t.backends[bi].active_flows;
            inactive += t.backends[bi].inactive_flows;
        }
}

int flows(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (!g_workers) return 0;
    rte_tel_data *v4 = u64_array(), *v4cap = u64_array(), *v6 = u64_array(), *v6cap = u64_array();
    g_workers->for_each([&](const lb::Dataplane& dp) {
        if (v4) rte_tel_data_add_array_u64(v4, dp.flows4().size());
        if (v4cap) rte_tel_data_add_array_u64(v4cap, dp.flows4().capacity());
        if (v6) rte_tel_data_add_array_u64(v6, dp.flows6().size());
        if (v6cap) rte_tel_data_add_array_u64(v6cap, dp.flows6().capacity());
    });
    add(d, "worker_ipv4_flows", v4);
    add(d, "worker_ipv4_capacity", v4cap);
    add(d, "worker_ipv6_flows", v6);
    add(d, "worker_ipv6_capacity", v6cap);
    if (!g_service) return 0;
    const lb::WorkerCounters t = g_workers->counters();
    rte_tel_data *names = string_array(), *active = u64_array(), *inactive = u64_array();
    // DPDK's arrays hold RTE_TEL_MAX_ARRAY_ENTRIES values: beyond that many VIPs they list the
    // first ones, and vip_count says how many there are (/sluice/vip,NAME has any of them).
    uint64_t count = 0;
    for (const auto& v : g_service->vips()) {
        if (v.removed) continue;
        if (count++ >= RTE_TEL_MAX_ARRAY_ENTRIES) continue;
        uint64_t a = 0, i = 0;
        vip_flows(v, t, a, i);
        if (names) rte_tel_data_add_array_string(names, v.name.c_str());
        if (active) rte_tel_data_add_array_u64(active, a);
        if (inactive) rte_tel_data_add_array_u64(inactive, i);
    }
    add(d, "vips", names);
    add(d, "vip_active_flows", active);
    add(d, "vip_inactive_flows", inactive);
    rte_tel_data_add_dict_u64(d, "vip_count", count);
    return 0;
}

int vip(const char*, const char* params, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (!g_workers || !g_service) return 0;
    const std::string name = params ? params : "";
    const int vi = name.empty() ? -1 : g_service->find_vip_by_name(name);
    if (vi < 0) {
        rte_tel_data_add_dict_string(d, "error", name.empty() ? "give a VIP name: /sluice/vip,NAME" : "no such VIP");
        return 0;
    }
    const lb::VipEntry& v = g_service->vips()[static_cast<size_t>(vi)];
    const lb::WorkerCounters t = g_workers->counters();
    uint64_t a = 0, i = 0;
    vip_flows(v, t, a, i);
    rte_tel_data_add_dict_string(d, "name", v.name.c_str());
    rte_tel_data_add_dict_u64(d, "active_flows", a);
    rte_tel_data_add_dict_u64(d, "inactive_flows", i);
    rte_tel_data *addrs = string_array(), *active = u64_array(), *inactive = u64_array();
    for (uint16_t bi : v.backends) {
        if (bi >= g_service->backends().size()) continue;
        const lb::BackendEntry& b = g_service->backends()[bi];
        const lb::TrafficCounters c = bi < t.backends.size() ? t.backends[bi] : lb::TrafficCounters{};
        if (addrs) rte_tel_data_add_array_string(addrs, net::to_string(b.addr, net::port_from_raw(b.port_raw)).c_str());
        if (active) rte_tel_data_add_array_u64(active, c.active_flows);
        if (inactive) rte_tel_data_add_array_u64(inactive, c.inactive_flows);
    }
    add(d, "backends", addrs);
    add(d, "backend_active_flows", active);
    add(d, "backend_inactive_flows", inactive);
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
    rte_telemetry_register_cmd("/sluice/flows", flows,
                               "Sluice flows held: per worker table fill, per VIP active and inactive. Takes no "
                               "parameters");
    rte_telemetry_register_cmd("/sluice/vip", vip,
                               "A Sluice VIP's active and inactive flows, per backend. Parameters: VIP name");
}

Telemetry::~Telemetry() {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_workers = nullptr;
    g_service.reset();
}

void Telemetry::set_service(const std::shared_ptr<const lb::Service>& service) {
    if (service.get() == held_) return;  // the common case: no lock on the control core's turn
    std::lock_guard<std::mutex> lock(g_mutex);
    g_service = service;
    held_ = service.get();
}

}  // namespace sluice::dpdk
