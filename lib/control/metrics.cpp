// ControlPlane::metrics(): what `sluicectl list` and `stats` show, in Prometheus's text
// exposition format (version 0.0.4). Names follow Prometheus's conventions: a `sluice_`
// prefix, `_total` on counters, base units; every VIP and backend series carries the same
// labels, so a tier's instances (told apart by Prometheus's own `instance` label) aggregate.
#include <fmt/format.h>

#include "lib/control/control_plane.hpp"
#include "lib/control/metrics_server.hpp"

namespace sluice::control {

namespace {

class Exposition {
public:
    // Starts a metric family: HELP and TYPE once, before its samples.
    void family(const char* name, const char* type, const char* help) {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(const char* name, const std::string& labels, uint64_t v) {
        out_ += labels.empty() ? fmt::format("{} {}\n", name, v) : fmt::format("{}{{{}}} {}\n", name, labels, v);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace

std::string ControlPlane::metrics() const {
    const lb::WorkerCounters total = workers_.counters();
    Exposition e;
    struct VipRow {
        std::string labels;
        lb::TrafficCounters c;
        uint64_t up = 0;
        int announced = -1;  // -1: not announcing
    };
    struct BackendRow {
        std::string labels;
        lb::TrafficCounters c;
        lb::BackendState state;
        uint32_t weight;
    };
    std::vector<VipRow> vips;
    std::vector<BackendRow> backends;
    for (const auto& v : config_.vips) {
        const int vi = service_->find_vip_by_name(v.name);
        VipRow r;
        r.labels = fmt::format("vip=\"{}\",address=\"{}\",proto=\"{}\",mode=\"{}\"", escape_label(v.name),
                               net::to_string(v.addr, v.port), lb::to_string(v.proto), lb::to_string(v.mode));
        if (vi >= 0 && static_cast<size_t>(vi) < total.vips.size()) r.c = total.vips[static_cast<size_t>(vi)];
        if (hooks_.route) {
            const auto it = routes_.find(v.addr);
            r.announced = it != routes_.end() && it->second.on;
        }
        for (const auto& b : v.backends) {
            const uint16_t port = b.port ? b.port : v.port;
            const int bi = vi >= 0 ? service_->find_backend(static_cast<uint16_t>(vi), b.addr, port) : -1;
            BackendRow br;
            br.labels = fmt::format("vip=\"{}\",backend=\"{}\"", escape_label(v.name), net::to_string(b.addr, port));
            if (bi >= 0 && static_cast<size_t>(bi) < total.backends.size()) br.c = total.backends[static_cast<size_t>(bi)];
            br.state = effective(v, b);
            br.weight = b.weight;
            r.up += br.state == lb::BackendState::up;
            backends.push_back(std::move(br));
        }
        vips.push_back(std::move(r));
    }

    e.family("sluice_vip_packets_total", "counter", "Client packets sent to the VIP's backends.");
    for (const auto& r : vips) e.sample("sluice_vip_packets_total", r.labels, r.c.packets);
    e.family("sluice_vip_bytes_total", "counter", "Bytes of the client packets sent to the VIP's backends.");
    for (const auto& r : vips) e.sample("sluice_vip_bytes_total", r.labels, r.c.bytes);
    e.family("sluice_vip_new_flows_total", "counter", "Flows the VIP's clients opened (Maglev picks).");
    for (const auto& r : vips) e.sample("sluice_vip_new_flows_total", r.labels, r.c.new_flows);
    e.family("sluice_vip_backends_up", "gauge", "Backends of the VIP that take new flows.");
    for (const auto& r : vips) e.sample("sluice_vip_backends_up", r.labels, r.up);
    if (hooks_.route) {
        e.family("sluice_vip_announced", "gauge", "1 while this instance offers the VIP's address to its routers.");
        for (const auto& r : vips) e.sample("sluice_vip_announced", r.labels, static_cast<uint64_t>(r.announced));
    }

    e.family("sluice_backend_packets_total", "counter",
             "Packets sent on the backend's behalf: its clients' packets and its replies.");
    for (const auto& r : backends) e.sample("sluice_backend_packets_total", r.labels, r.c.packets);
    e.family("sluice_backend_bytes_total", "counter", "Bytes of the packets sent on the backend's behalf.");
    for (const auto& r : backends) e.sample("sluice_backend_bytes_total", r.labels, r.c.bytes);
    e.family("sluice_backend_new_flows_total", "counter", "Flows given to the backend.");
    for (const auto& r : backends) e.sample("sluice_backend_new_flows_total", r.labels, r.c.new_flows);
    e.family("sluice_backend_active_flows", "gauge", "The backend's established TCP flows (ipvsadm's ActiveConn).");
    for (const auto& r : backends) e.sample("sluice_backend_active_flows", r.labels, r.c.active_flows);
    e.family("sluice_backend_inactive_flows", "gauge",
             "The backend's other flows: half-open, closing, unconfirmed, UDP (ipvsadm's InActConn).");
    for (const auto& r : backends) e.sample("sluice_backend_inactive_flows", r.labels, r.c.inactive_flows);
    e.family("sluice_backend_handshake_failures_total", "counter",
             "TCP handshakes that failed on the backend (SYN retransmitted unanswered, or RST).");
    for (const auto& r : backends) e.sample("sluice_backend_handshake_failures_total", r.labels, r.c.handshake_failures);
    e.family("sluice_backend_up", "gauge", "1 if the backend takes new flows (health and operator state).");
    for (const auto& r : backends) e.sample("sluice_backend_up", r.labels, r.state == lb::BackendState::up);
    e.family("sluice_backend_state", "gauge", "The backend's effective state: 1 for the state it is in.");
    for (const auto& r : backends)
        for (auto s : {lb::BackendState::up, lb::BackendState::draining, lb::BackendState::down, lb::BackendState::disabled})
            e.sample("sluice_backend_state", fmt::format("{},state=\"{}\"", r.labels, lb::to_string(s)), r.state == s);
    e.family("sluice_backend_weight", "gauge", "The backend's configured weight.");
    for (const auto& r : backends) e.sample("sluice_backend_weight", r.labels, r.weight);

    e.family("sluice_drops_total", "counter", "Packets dropped, by reason.");
    for (size_t i = 0; i < lb::kDropReasons; ++i)
        e.sample("sluice_drops_total", fmt::format("reason=\"{}\"", lb::to_string(static_cast<lb::Drop>(i))),
                 total.drops[i]);
    total.for_each_scalar([&](const char* name, uint64_t v) {
        const std::string metric = fmt::format("sluice_{}_total", name);
        e.family(metric.c_str(), "counter", fmt::format("The workers' {} counter (sluicectl stats).", name).c_str());
        e.sample(metric.c_str(), "", v);
    });

    struct Table {
        uint16_t worker;
        const char* family;
        uint32_t size, capacity;
    };
    std::vector<Table> tables;
    uint16_t w = 0;
    workers_.for_each([&](const lb::Dataplane& dp) {
        tables.push_back({w, "ipv4", dp.flows4().size(), dp.flows4().capacity()});
        tables.push_back({w, "ipv6", dp.flows6().size(), dp.flows6().capacity()});
        ++w;
    });
    e.family("sluice_flow_table_entries", "gauge", "Flows held, per worker and address family.");
    for (const auto& t : tables) e.sample("sluice_flow_table_entries", fmt::format("worker=\"{}\",family=\"{}\"", t.worker, t.family), t.size);
    e.family("sluice_flow_table_capacity", "gauge", "Flows a worker's table can hold, per address family.");
    for (const auto& t : tables)
        e.sample("sluice_flow_table_capacity", fmt::format("worker=\"{}\",family=\"{}\"", t.worker, t.family), t.capacity);
    return e.take();
}

}  // namespace sluice::control
