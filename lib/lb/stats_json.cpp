#include "lib/lb/stats_json.hpp"

#include <fmt/format.h>

#include "lib/net/wire.hpp"

namespace sluice::lb {

namespace {

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
            o += fmt::format("\\u{:04x}", c);
            continue;
        }
        o += c;
    }
    return o;
}

void worker_fields(std::string& o, const WorkerCounters& c) {
    c.for_each_scalar([&](const char* name, uint64_t v) { o += fmt::format("\"{}\":{},", name, v); });
    o += fmt::format("\"dropped\":{},\"drops\":{{", c.total_drops());
    bool first = true;
    for (size_t i = 0; i < kDropReasons; ++i) {
        if (!c.drops[i]) continue;
        o += fmt::format("{}\"{}\":{}", first ? "" : ",", to_string(static_cast<Drop>(i)), c.drops[i]);
        first = false;
    }
    o += "}";
}

template <class T>
void table_fields(std::string& o, const char* name, const T& t) {
    const auto& s = t.stats();
    o += fmt::format(
        "\"{}\":{{\"size\":{},\"capacity\":{},\"memory_bytes\":{},\"inserts\":{},\"insert_failures\":{},"
        "\"evictions\":{},\"expiries\":{},\"removals\":{},\"refusals\":{}}}",
        name, t.size(), t.capacity(), t.memory_bytes(), s.inserts, s.insert_failures, s.evictions, s.expiries,
        s.removals, s.refusals);
}

WorkerCounters total_of(const std::vector<const Dataplane*>& workers) {
    WorkerCounters t;
    for (const auto* w : workers) t.add(w->counters());
    return t;
}

}  // namespace

std::string stats_to_json(const std::vector<const Dataplane*>& workers) {
    std::string o = "{";
    const WorkerCounters total = total_of(workers);
    o += "\"total\":{";
    worker_fields(o, total);
    o += "},\"workers\":[";
    for (size_t w = 0; w < workers.size(); ++w) {
        o += w ? ",{" : "{";
        worker_fields(o, workers[w]->counters());
        o += ",";
        table_fields(o, "flows_v4", workers[w]->flows4());
        o += ",";
        table_fields(o, "flows_v6", workers[w]->flows6());
        o += "}";
    }
    o += "]";
    if (!workers.empty()) {
        const Service& svc = workers[0]->service();
        o += ",\"vips\":[";
        for (size_t i = 0; i < svc.vips().size(); ++i) {
            const auto& v = svc.vips()[i];
            const auto& c = total.vips[i];
            o += fmt::format("{}{{\"name\":\"{}\",\"mode\":\"{}\",\"packets\":{},\"bytes\":{},\"new_flows\":{}}}",
                             i ? "," : "", json_escape(v.name), to_string(v.mode), c.packets, c.bytes, c.new_flows);
        }
        o += "],\"backends\":[";
        for (size_t i = 0; i < svc.backends().size(); ++i) {
            const auto& b = svc.backends()[i];
            const auto& c = total.backends[i];
            const uint16_t port = net::port_from_raw(b.port_raw);
            o += fmt::format(
                "{}{{\"vip\":\"{}\",\"backend\":\"{}\",\"weight\":{},\"packets\":{},\"bytes\":{},\"new_flows\":{}}}",
                i ? "," : "", json_escape(svc.vips()[b.vip].name), net::to_string(b.addr, port), b.weight, c.packets,
                c.bytes, c.new_flows);
        }
        o += "]";
    }
    o += "}\n";
    return o;
}

std::string stats_summary(const std::vector<const Dataplane*>& workers) {
    const WorkerCounters t = total_of(workers);
    std::string o = fmt::format("rx {} tx {} forwarded {} replies {} dropped {} maglev-picks {} non-syn-miss {}", t.rx,
                                t.tx, t.forwarded, t.replies, t.total_drops(), t.maglev_picks, t.non_syn_miss);
    for (size_t i = 0; i < kDropReasons; ++i)
        if (t.drops[i]) o += fmt::format(" {}={}", to_string(static_cast<Drop>(i)), t.drops[i]);
    return o;
}

}  // namespace sluice::lb
