#include "lib/control/control_plane.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "lib/config/options.hpp"
#include "lib/net/wire.hpp"

namespace sluice::control {

namespace {

// "4m31s", "2h0m5s", "12s", "0.250s".
std::string format_duration(uint32_t ms) {
    const uint32_t s = ms / 1000;
    if (s == 0) return fmt::format("{:.3f}s", ms / 1000.0);
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
    return fmt::format("{}h{}m{}s", s / 3600, s / 60 % 60, s % 60);
}

std::string backend_label(const std::string& vip, const net::IpAddr& addr, uint16_t port) {
    return fmt::format("{}/{}", vip, net::to_string(addr, port));
}

uint16_t port_of(const lb::VipConf& v, const lb::BackendConf& b) { return b.port ? b.port : v.port; }

// Restart-only settings a reload must not change (they size tables and name ports, or flow
// records index into them: SNAT addresses, timeouts). The comparison is of the whole
// ProcessConfig; the list only names what changed for the message.
Status same_process_settings(const lb::Config& a, const lb::Config& b) {
    if (a.process() == b.process()) return {};
    std::vector<std::string> changed;
    if (a.snat_addrs != b.snat_addrs) changed.push_back("--snat");
    if (a.self_addrs != b.self_addrs) changed.push_back("--self");
    const auto& ta = a.timeouts;
    const auto& tb = b.timeouts;
    if (ta != tb) changed.push_back("--timeout-*");
    if (a.flow_capacity != b.flow_capacity) changed.push_back("--flow-capacity");
    if (a.persist_capacity != b.persist_capacity) changed.push_back("--persist-capacity");
    if (a.snat_port_min != b.snat_port_min || a.snat_port_max != b.snat_port_max) changed.push_back("--snat-ports");
    if (a.client_port != b.client_port || a.backend_port != b.backend_port) changed.push_back("--client-port/--backend-port");
    if (a.client_vlan != b.client_vlan || a.backend_vlan != b.backend_vlan)
        changed.push_back("--client-vlan/--backend-vlan");
    if (a.burst != b.burst || a.rxd != b.rxd || a.txd != b.txd || a.total_num_mbufs != b.total_num_mbufs)
        changed.push_back("--burst/--rxd/--txd/--total-num-mbufs");
    if (a.mbcache != b.mbcache) changed.push_back("--mbcache");
    if (a.control_socket != b.control_socket || a.control_group != b.control_group)
        changed.push_back("--control-socket/--control-group");
    if (a.kernel_if != b.kernel_if) changed.push_back("--kernel-if");
    if (a.self_prefixes != b.self_prefixes) changed.push_back("--self prefix lengths");
    if (a.new_flow_rate != b.new_flow_rate) changed.push_back("--new-flow-rate");
    if (a.flow_log_one_in != b.flow_log_one_in || a.flow_log_rate != b.flow_log_rate)
        changed.push_back("--flow-log/--flow-log-rate");
    if (a.stats_period_s != b.stats_period_s || a.stats_json != b.stats_json)
        changed.push_back("--stats-period/--stats-json");
    if (a.tunnel_sources != b.tunnel_sources || a.tunnel_gateways != b.tunnel_gateways || a.tunnel_mtu != b.tunnel_mtu)
        changed.push_back("--tunnel-source/--tunnel-gateway/--tunnel-mtu");
    if (a.announce != b.announce || a.client_gateways != b.client_gateways || a.drain_time_s != b.drain_time_s)
        changed.push_back("--announce/--client-gateway/--drain-time");
    if (a.idle_sleep_us != b.idle_sleep_us) changed.push_back("--idle-sleep");
    if (a.metrics_listen != b.metrics_listen) changed.push_back("--metrics-listen");
    if (a.host_probes != b.host_probes) changed.push_back("--host-probes");
    std::string list;
    for (const auto& c : changed) list += (list.empty() ? "" : ", ") + c;
    if (list.empty()) return make_error("restart-only settings changed; restart Sluice to apply them");
    return make_error(fmt::format("restart-only settings changed ({}); restart Sluice to apply them", list));
}

// One line saying what a reload changes: VIPs and backends added, removed or changed.
std::string describe_changes(const lb::Config& a, const lb::Config& b) {
    std::map<std::string, const lb::VipConf*> before, after;
    for (const auto& v : a.vips) before.emplace(v.name, &v);
    for (const auto& v : b.vips) after.emplace(v.name, &v);
    size_t vips_added = 0, vips_removed = 0, vips_changed = 0, be_added = 0, be_removed = 0, be_changed = 0;
    size_t resized = 0;  // Maglev tables of another size: nearly all their entries move
    for (const auto& [name, v] : after) {
        const auto it = before.find(name);
        if (it == before.end()) {
            ++vips_added;
            be_added += v->backends.size();
            continue;
        }
        const lb::VipConf& o = *it->second;
        if (o.addr != v->addr || o.port != v->port || o.proto != v->proto || o.mode != v->mode ||
            o.table_size != v->table_size || o.on_down != v->on_down || !(o.check == v->check) ||
            o.passive_failures != v->passive_failures || o.announce_min != v->announce_min ||
            o.persist_ms != v->persist_ms || o.persist_mask != v->persist_mask)
            ++vips_changed;
        // table=auto follows the backend count, so this can change without table= changing.
        if (lb::maglev_table_size(o) != lb::maglev_table_size(*v)) ++resized;
        auto key = [&](const lb::VipConf& vc, const lb::BackendConf& bc) {
            return std::pair{bc.addr, bc.port ? bc.port : vc.port};
        };
        std::map<std::pair<net::IpAddr, uint16_t>, const lb::BackendConf*> old_b;
        for (const auto& bc : o.backends) old_b.emplace(key(o, bc), &bc);
        for (const auto& bc : v->backends) {
            const auto ob = old_b.find(key(*v, bc));
            if (ob == old_b.end()) {
                ++be_added;
                continue;
            }
            if (ob->second->weight != bc.weight || ob->second->state != bc.state) ++be_changed;
            old_b.erase(ob);
        }
        be_removed += old_b.size();
    }
    for (const auto& [name, v] : before)
        if (!after.count(name)) {
            ++vips_removed;
            be_removed += v->backends.size();
        }
    std::string out;
    auto add = [&](size_t n, const char* what) {
        if (n) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, what);
    };
    add(vips_added, "VIPs added");
    add(vips_removed, "VIPs removed");
    add(vips_changed, "VIPs changed");
    add(be_added, "backends added");
    add(be_removed, "backends removed");
    add(be_changed, "backends reweighted or set");
    add(resized, "Maglev tables resized");
    return out.empty() ? "no change to VIPs or backends" : out;
}

}  // namespace

ControlPlane::ControlPlane(lb::Config config, Workers& workers, Hooks hooks, Prober prober)
    : config_(std::move(config)), workers_(workers), hooks_(std::move(hooks)), prober_(std::move(prober)) {}

void ControlPlane::log(const std::string& line) const {
    if (hooks_.log) hooks_.log(line);
}

lb::BackendState ControlPlane::effective(const lb::VipConf& v, const lb::BackendConf& b) const {
    if (b.state == lb::BackendState::disabled) return lb::BackendState::disabled;
    if (b.state == lb::BackendState::down) return lb::BackendState::down;
    auto it = health_.find(Key{v.name, b.addr, port_of(v, b)});
    if (it != health_.end() && !it->second.up) return lb::BackendState::down;
    if (b.state == lb::BackendState::draining || b.weight == 0) return lb::BackendState::draining;
    return lb::BackendState::up;
}

Status ControlPlane::start(uint64_t now_ms) {
    last_passive_ms_ = now_ms;
    auto st = apply(config_, nullptr);
    started_ = true;
    return st;
}

// The one path every change takes: build from the current snapshot, publish, flush departed
// backends, then (re)arm the probes of the new backend set.
Status ControlPlane::apply(lb::Config next, const char* why) {
    // Out of memory while building the snapshot: nothing was published, the running one stays.
    try {
        return apply_or_throw(std::move(next), why);
    } catch (const std::bad_alloc&) {
        return make_error("out of memory building the new snapshot; the running configuration stays");
    }
}

Status ControlPlane::apply_or_throw(lb::Config next, const char* why) {
    if (auto st = config::validate(next); !st) return st;
    if (hooks_.admit)
        if (auto st = hooks_.admit(next); !st) return st;
    lb::Config build_input = next;
    for (auto& v : build_input.vips)
        for (auto& b : v.backends) {
            b.state = effective(v, b);
            // New to a running service with checks: down until its first good check (sync_probes).
            if (started_ && v.check.kind != lb::CheckConf::Kind::none && b.state == lb::BackendState::up &&
                !health_.count(Key{v.name, b.addr, port_of(v, b)}))
                b.state = lb::BackendState::down;
        }
    for (const auto& [addr, mac] : learnt_) {
        const bool is_static = std::any_of(next.neighbors.begin(), next.neighbors.end(),
                                           [&](const lb::NeighborConf& n) { return n.addr == addr; });
        if (!is_static) build_input.neighbors.push_back({addr, mac});
    }
    auto built = lb::Service::build(build_input, service_.get(), next.kernel_if.empty());
    if (!built) return make_error(built.error());
    auto fresh = std::make_shared<const lb::Service>(std::move(*built));
    bool departed = false;
    if (service_)
        for (size_t i = 0; i < fresh->backends().size(); ++i)
            departed |= fresh->backends()[i].removed && i < service_->backends().size() && !service_->backends()[i].removed;
    config_ = std::move(next);
    service_ = fresh;
    workers_.publish(service_);
    if (departed) workers_.run_on_all(Workers::Task::flush_removed);
    sync_probes();
    if (why) log(why);
    return {};
}

uint64_t ControlPlane::handshake_failures(const std::string& vip, const net::IpAddr& addr, uint16_t port,
                                          const lb::WorkerCounters& total) const {
    const int vi = service_->find_vip_by_name(vip);
    const int bi = vi >= 0 ? service_->find_backend(static_cast<uint16_t>(vi), addr, port) : -1;
    if (bi < 0 || static_cast<size_t>(bi) >= total.backends.size()) return 0;
    return total.backends[static_cast<size_t>(bi)].handshake_failures;
}

// Keeps the health of backends that stay; probes follow each VIP's current check settings.
void ControlPlane::sync_probes() {
    std::map<Key, Health> next;
    std::optional<lb::WorkerCounters> total;  // read once, only if a backend is new
    for (const auto& v : config_.vips)
        for (const auto& b : v.backends) {
            const uint16_t port = port_of(v, b);
            Key k{v.name, b.addr, port};
            auto it = health_.find(k);
            const bool fresh = it == health_.end();
            Health h = fresh ? Health{} : it->second;
            if (!fresh) health_.erase(it);
            if (fresh) {
                // Passive detection counts from now: an index reused by a backend added back
                // carries the old entry's history.
                if (!total) total = workers_.counters();
                h.passive_seen = handshake_failures(v.name, b.addr, port, *total);
            }
            // Through the tunnel where it can be: a port of its own, kept while it stays.
            const bool tunnel = tunnel_mark_ && v.mode == lb::Mode::tunnel && v.check.kind != lb::CheckConf::Kind::none;
            if (h.probe && (!(h.check == v.check) || tunnel != (h.tunnel_port != 0))) {  // settings changed by a reload
                prober_.remove(h.probe);
                h.probe = 0;
            }
            if (!tunnel && h.tunnel_port) {
                tunnel_ports_.erase(h.tunnel_port);
                h.tunnel_port = 0;
            }
            if (tunnel && !h.tunnel_port) {
                for (uint16_t p = kTunnelProbePortFirst; p < kTunnelProbePortFirst + kTunnelProbePorts; ++p)
                    if (tunnel_ports_.emplace(p, k).second) {
                        h.tunnel_port = p;
                        break;
                    }
                if (!h.tunnel_port)
                    log(fmt::format("{}: no tunnel probe port left ({} in use): probing the backend's own address",
                                    backend_label(v.name, b.addr, port), kTunnelProbePorts));
            }
            if (v.check.kind == lb::CheckConf::Kind::none && !h.up && h.reason.rfind("passive", 0) != 0) {
                // No active check any more: nothing could bring it back.
                h.up = true;
                h.reason = "active check removed";
            }
            // A backend added to a running service (sluicectl, a reload) takes no new flows
            // before one good check; those of the first configuration start up, as HAProxy's do.
            const bool await_check = fresh && started_ && v.check.kind != lb::CheckConf::Kind::none;
            if (await_check) {
                h.up = false;
                h.reason = "new backend: no new flows before its first good check";
            }
            if (h.probe == 0 && v.check.kind != lb::CheckConf::Kind::none) {
                h.probe = h.tunnel_port ? prober_.add(v.addr, v.port, v.check, backend_label(v.name, b.addr, port), h.up,
                                                      {h.tunnel_port, tunnel_mark_})
                                        : prober_.add(b.addr, port, v.check, backend_label(v.name, b.addr, port), h.up);
                if (await_check) prober_.await_first_check(h.probe);
            }
            h.check = v.check;
            next.emplace(std::move(k), std::move(h));
        }
    for (const auto& [k, h] : health_) {  // backends that left
        if (h.probe) prober_.remove(h.probe);
        if (h.tunnel_port) tunnel_ports_.erase(h.tunnel_port);
    }
    health_ = std::move(next);
    ++tunnel_generation_;
}

void ControlPlane::enable_tunnel_probes(uint32_t mark) {
    tunnel_mark_ = mark;
    sync_probes();
}

std::optional<ControlPlane::TunnelProbe> ControlPlane::tunnel_probe(const net::IpAddr& vip, uint16_t vport,
                                                                    uint16_t sport) const {
    const auto it = tunnel_ports_.find(sport);
    if (it == tunnel_ports_.end()) return std::nullopt;
    const auto& [name, addr, port] = it->second;
    const int vi = service_->find_vip_by_name(name);
    if (vi < 0) return std::nullopt;
    const lb::VipEntry& v = service_->vips()[static_cast<size_t>(vi)];
    if (v.addr != vip || v.port_raw != net::port_to_raw(vport) || v.mode != lb::Mode::tunnel) return std::nullopt;
    const int bi = service_->find_backend(static_cast<uint16_t>(vi), addr, port);
    if (bi < 0) return std::nullopt;
    return TunnelProbe{static_cast<uint16_t>(vi), static_cast<uint16_t>(bi)};
}

std::vector<net::IpAddr> ControlPlane::tunnel_probe_vips() const {
    std::vector<net::IpAddr> out;
    for (const auto& [p, k] : tunnel_ports_)
        for (const auto& v : config_.vips)
            if (v.name == std::get<0>(k) && std::find(out.begin(), out.end(), v.addr) == out.end()) out.push_back(v.addr);
    return out;
}

void ControlPlane::poll(uint64_t now_ms, int max_wait_ms) {
    events_.clear();
    prober_.poll(now_ms, max_wait_ms, events_);
    bool changed = false;
    for (const auto& e : events_)
        for (auto& [k, h] : health_)
            if (h.probe == e.id && h.up != e.up) {
                h.up = e.up;
                h.reason = e.reason;
                log(fmt::format("backend {} {}: {}", e.label, e.up ? "UP" : "DOWN", e.reason));
                changed = true;
            }
    passive_check(now_ms);
    if (changed)
        if (auto st = apply(config_, nullptr); !st) log(fmt::format("cannot apply health change: {}", st.error()));
    // Checks pass without events (an up backend stays up): look every 100 ms.
    if (hooks_.route && (changed || now_ms >= next_routes_ms_)) {
        next_routes_ms_ = now_ms + 100;
        update_routes();
    }
}

// ---- the tier: which VIP addresses this instance offers ---------------------------------------

void ControlPlane::set_forwarding(bool ok, const std::string& why) {
    if (ok == forwarding_ && (ok || why == not_forwarding_)) return;
    forwarding_ = ok;
    not_forwarding_ = ok ? std::string() : why;
    if (hooks_.route) update_routes();
}

void ControlPlane::withdraw_all(const std::string& why) {
    withdrawn_ = why.empty() ? std::string("withdrawn") : why;
    if (hooks_.route) update_routes();
}

void ControlPlane::hold(const std::string& why) {
    if (why == held_) return;
    held_ = why;
    if (hooks_.route) update_routes();
}

void ControlPlane::announce_all() {
    withdrawn_.clear();
    if (hooks_.route) update_routes();
}

std::pair<bool, std::string> ControlPlane::offerable(const lb::VipConf& v, const std::map<uint32_t, bool>& checked) const {
    if (!withdrawn_.empty()) return {false, withdrawn_};
    if (!forwarding_) return {false, not_forwarding_};
    if (!held_.empty()) return {false, held_};
    const int vi = service_ ? service_->find_vip_by_name(v.name) : -1;
    size_t up = 0, unchecked = 0, unresolved = 0;
    for (const auto& b : v.backends) {
        if (effective(v, b) != lb::BackendState::up) continue;
        const uint16_t port = port_of(v, b);
        const int bi = vi >= 0 ? service_->find_backend(static_cast<uint16_t>(vi), b.addr, port) : -1;
        if (bi < 0 || !service_->backends()[static_cast<size_t>(bi)].has_mac) {
            ++unresolved;
            continue;
        }
        const auto h = health_.find(Key{v.name, b.addr, port});
        if (h != health_.end() && h->second.probe) {
            const auto c = checked.find(h->second.probe);
            if (c == checked.end() || !c->second) {
                ++unchecked;
                continue;
            }
        }
        ++up;
    }
    if (up >= v.announce_min) return {true, fmt::format("{}: {} of {} backends up", v.name, up, v.backends.size())};
    std::string why = up ? fmt::format("{}: {} of {} backends up, announce-min={}", v.name, up, v.backends.size(),
                                       v.announce_min)
                         : fmt::format("{}: no backend up ({} configured", v.name, v.backends.size());
    if (up) return {false, why};
    if (unchecked) why += fmt::format(", {} awaiting a first check", unchecked);
    if (unresolved) why += fmt::format(", {} without a MAC", unresolved);
    return {false, why + ")"};
}

void ControlPlane::update_routes() {
    std::map<uint32_t, bool> checked;  // probe id -> a passed check stands behind its state
    for (const auto& st : prober_.status()) checked[st.id] = st.up && !st.last_detail.empty();
    offered_.clear();
    std::map<net::IpAddr, std::pair<bool, std::string>> want;
    for (const auto& v : config_.vips) {
        auto o = offerable(v, checked);
        auto& w = want[v.addr];
        // The first VIP that can be offered gives the reason; else the first that cannot.
        if (w.second.empty() || (o.first && !w.first)) w = o;
        offered_[v.name] = std::move(o);
    }
    // fullnat's SNAT addresses, this instance's and (replication) its peers': the backends'
    // answers reach the tier through them. The routing daemon announces a peer's with a worse
    // preference (docs/tier.md), so they come here only once the owner is gone. Not withdrawn
    // with the VIPs: the sessions of a draining instance still answer through it.
    std::vector<net::IpAddr> snat = config_.snat_addrs;
    for (const auto& p : config_.sync.peers) snat.insert(snat.end(), p.snat.begin(), p.snat.end());
    for (const auto& a : snat) {
        auto& w = want[a];
        if (!w.second.empty()) continue;  // also a VIP address: the rules refuse it
        w = !forwarding_ ? std::make_pair(false, not_forwarding_)
            : !held_.empty() ? std::make_pair(false, held_)
                             : std::make_pair(true, std::string("a SNAT address of the tier"));
    }
    for (auto& [addr, r] : routes_)
        if (!want.count(addr) && r.on) want[addr] = {false, "no VIP on this address any more"};
    for (const auto& [addr, w] : want) {
        Route& r = routes_[addr];
        if (r.on == w.first && !r.failing) {
            r.reason = w.second;
            continue;
        }
        if (auto st = hooks_.route(addr, w.first); !st) {
            if (!r.failing)
                log(fmt::format("cannot {} {}: {} (retrying)", w.first ? "announce" : "withdraw",
                                net::to_string(addr), st.error()));
            r.failing = true;
            continue;
        }
        if (r.on != w.first || r.failing)
            log(fmt::format("{} {}: {}", w.first ? "announce" : "withdraw", net::to_string(addr), w.second));
        r = Route{w.first, w.second, false};
    }
    std::erase_if(routes_, [&](const auto& r) { return !r.second.on && !want.count(r.first); });
}

// Passive detection: per VIP, handshake failures counted by the workers over one check
// interval; at the threshold the backend is marked down and only active checks bring it back.
void ControlPlane::passive_check(uint64_t now_ms) {
    // Runs every second whether or not a VIP uses it, so the baseline is always current (a
    // reload that turns it on must not see a backend's whole history as one interval). Each
    // VIP's threshold applies per its own inter: scaled from the one-second window.
    const uint32_t period = 1000;
    if (now_ms - last_passive_ms_ < period) return;
    last_passive_ms_ = now_ms;
    const lb::WorkerCounters total = workers_.counters();
    bool changed = false;
    for (const auto& v : config_.vips)
        for (const auto& b : v.backends) {
            const uint16_t port = port_of(v, b);
            auto it = health_.find(Key{v.name, b.addr, port});
            if (it == health_.end()) continue;
            Health& h = it->second;
            const uint64_t seen = handshake_failures(v.name, b.addr, port, total);
            const uint64_t delta = seen >= h.passive_seen ? seen - h.passive_seen : 0;
            h.passive_seen = seen;
            // Threshold per inter, checked over the last second.
            const uint64_t limit = std::max<uint64_t>(1, uint64_t{v.passive_failures} * period / std::max(1u, v.check.inter_ms));
            if (!v.passive_failures || !h.up || delta < limit) continue;
            h.up = false;
            h.reason = fmt::format("passive: {} failed TCP handshakes in {} ms (threshold {} per {} ms)", delta, period,
                                   v.passive_failures, v.check.inter_ms);
            if (h.probe) prober_.force(h.probe, false);
            log(fmt::format("backend {} DOWN: {}", backend_label(v.name, b.addr, port), h.reason));
            changed = true;
        }
    if (changed)
        if (auto st = apply(config_, nullptr); !st) log(fmt::format("cannot apply passive change: {}", st.error()));
}

namespace {
Error no_vip(const std::string& vip) { return make_error(fmt::format("unknown VIP '{}'", vip)); }
Error no_backend(const std::string& vip, const net::IpAddr& addr, uint16_t port) {
    return make_error(fmt::format("VIP '{}' has no backend {}", vip, port ? net::to_string(addr, port) : net::to_string(addr)));
}
}  // namespace

Expected<size_t> ControlPlane::vip_index(const std::string& vip) const {
    for (size_t i = 0; i < config_.vips.size(); ++i)
        if (config_.vips[i].name == vip) return i;
    return no_vip(vip);
}

// port 0 matches the backend of that address whatever its port.
Expected<ControlPlane::Where> ControlPlane::backend_index(const std::string& vip, const net::IpAddr& addr,
                                                          uint16_t port) const {
    auto vi = vip_index(vip);
    if (!vi) return Error{vi.error()};
    const lb::VipConf& v = config_.vips[*vi];
    for (size_t j = 0; j < v.backends.size(); ++j)
        if (v.backends[j].addr == addr && (port == 0 || port_of(v, v.backends[j]) == port)) return Where{*vi, j};
    return no_backend(vip, addr, port);
}

std::string ControlPlane::label_of(const Where& w) const {
    const lb::VipConf& v = config_.vips[w.vip];
    const lb::BackendConf& b = v.backends[w.backend];
    return backend_label(v.name, b.addr, port_of(v, b));
}

Status ControlPlane::set_state(const std::string& vip, const net::IpAddr& addr, uint16_t port, lb::BackendState s) {
    auto w = backend_index(vip, addr, port);
    if (!w) return Error{w.error()};
    const lb::VipConf& v = config_.vips[w->vip];
    const lb::BackendConf& b = v.backends[w->backend];
    // An operator (or monitoring agent) saying "up" overrides the health verdict too.
    if (s == lb::BackendState::up) {
        auto it = health_.find(Key{vip, b.addr, port_of(v, b)});
        if (it != health_.end() && !it->second.up) {
            it->second.up = true;
            it->second.reason = "set up by the operator";
            if (it->second.probe) prober_.force(it->second.probe, true);
        }
    }
    const std::string why = fmt::format("backend {} set {} by {}", label_of(*w), lb::to_string(s), operator_);
    lb::Config next = config_;
    next.vips[w->vip].backends[w->backend].state = s;
    return apply(std::move(next), why.c_str());
}

Status ControlPlane::set_weight(const std::string& vip, const net::IpAddr& addr, uint16_t port, uint32_t weight) {
    auto w = backend_index(vip, addr, port);
    if (!w) return Error{w.error()};
    const std::string why = fmt::format("backend {} weight {} by {}", label_of(*w), weight, operator_);
    lb::Config next = config_;
    next.vips[w->vip].backends[w->backend].weight = weight;
    return apply(std::move(next), why.c_str());
}

namespace {
// Sets addr's static neighbour entry in c (replacing one it has).
void put_neighbor(lb::Config& c, const net::IpAddr& addr, const net::Mac& mac) {
    for (auto& n : c.neighbors)
        if (n.addr == addr) {
            n.mac = mac;
            return;
        }
    c.neighbors.push_back({addr, mac});
}
}  // namespace

Status ControlPlane::add_backend(const std::string& vip, const net::IpAddr& addr, uint16_t port, uint32_t weight,
                                 std::optional<net::Mac> mac) {
    auto vi = vip_index(vip);
    if (!vi) return Error{vi.error()};
    const std::string why = fmt::format("backend {} added by {} (weight {}{})",
                                        backend_label(vip, addr, port ? port : config_.vips[*vi].port), operator_, weight,
                                        mac ? ", mac " + net::to_string(*mac) : std::string());
    lb::Config next = config_;
    next.vips[*vi].backends.push_back(lb::BackendConf{addr, port, weight, lb::BackendState::up});
    if (mac) put_neighbor(next, addr, *mac);
    return apply(std::move(next), why.c_str());
}

Status ControlPlane::set_neighbor(const net::IpAddr& addr, const net::Mac& mac) {
    const std::string why = fmt::format("neighbor {} set to {} by {}", net::to_string(addr), net::to_string(mac), operator_);
    lb::Config next = config_;
    put_neighbor(next, addr, mac);
    return apply(std::move(next), why.c_str());
}

Status ControlPlane::remove_backend(const std::string& vip, const net::IpAddr& addr, uint16_t port) {
    auto w = backend_index(vip, addr, port);
    if (!w) return Error{w.error()};
    if (config_.vips[w->vip].backends.size() == 1)
        return make_error(fmt::format("VIP '{}' would have no backend left; disable it instead", vip));
    const std::string why = fmt::format("backend {} removed by {}", label_of(*w), operator_);
    lb::Config next = config_;
    auto& list = next.vips[w->vip].backends;
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(w->backend));
    return apply(std::move(next), why.c_str());
}

Status ControlPlane::reload() {
    if (hooks_.reload_started) hooks_.reload_started();
    Status st = reload_config();
    if (hooks_.reload_done) hooks_.reload_done(st);
    return st;
}

Status ControlPlane::reload_config() {
    const auto rejected = [&](const std::string& why) {
        log(fmt::format("reload rejected{}, the running configuration stays: {}",
                        operator_ == "the operator" ? std::string() : " (asked by " + operator_ + ")", why));
    };
    if (!hooks_.reread) return make_error("this instance has no configuration source to reload");
    Expected<lb::Config> next = make_error("");
    try {
        next = hooks_.reread();
    } catch (const std::bad_alloc&) {
        next = make_error("out of memory reading the configuration");
    }
    if (!next) {
        rejected(next.error());
        return make_error(next.error());
    }
    if (auto st = same_process_settings(config_, *next); !st) {
        rejected(st.error());
        return st;
    }
    // Health verdicts and passive counts of backends that stay are kept by sync_probes().
    const std::string why = fmt::format("configuration reloaded{}: {}",
                                        operator_ == "the operator" ? std::string() : " by " + operator_,
                                        describe_changes(config_, *next));
    if (auto st = apply(std::move(*next), why.c_str()); !st) {
        rejected(st.error());
        return st;
    }
    return {};
}

void ControlPlane::learn_neighbor(const net::IpAddr& addr, const net::Mac& mac) {
    bool wanted = std::find(config_.client_gateways.begin(), config_.client_gateways.end(), addr) !=
                  config_.client_gateways.end();
    for (const auto& v : config_.vips)
        for (const auto& b : v.backends) wanted |= lb::next_hop(config_, v, b) == addr;
    for (const auto& n : config_.neighbors) wanted &= n.addr != addr;  // static entries win
    if (!wanted) return;
    auto it = learnt_.find(addr);
    if (it != learnt_.end() && it->second == mac) return;
    log(fmt::format("neighbor {} is at {}{}", net::to_string(addr), net::to_string(mac),
                    it == learnt_.end() ? "" : fmt::format(" (was {})", net::to_string(it->second))));
    learnt_[addr] = mac;
    if (auto st = apply(config_, nullptr); !st) log(fmt::format("cannot apply neighbor change: {}", st.error()));
}

std::vector<net::IpAddr> ControlPlane::dynamic_neighbors() const {
    std::vector<net::IpAddr> out;
    const auto add = [&](const net::IpAddr& hop) {
        const bool is_static = std::any_of(config_.neighbors.begin(), config_.neighbors.end(),
                                           [&](const lb::NeighborConf& n) { return n.addr == hop; });
        if (!is_static && std::find(out.begin(), out.end(), hop) == out.end()) out.push_back(hop);
    };
    for (const auto& g : config_.client_gateways) add(g);
    for (const auto& v : config_.vips)
        for (const auto& b : v.backends) add(lb::next_hop(config_, v, b));
    return out;
}

std::vector<net::IpAddr> ControlPlane::unresolved() const {
    std::vector<net::IpAddr> out;
    for (const auto& a : dynamic_neighbors())
        if (!learnt_.count(a)) out.push_back(a);
    return out;
}

std::string ControlPlane::list() const {
    const lb::WorkerCounters total = workers_.counters();
    const auto probes = prober_.status();
    std::string o;
    for (const auto& v : config_.vips) {
        const int vi = service_->find_vip_by_name(v.name);
        const lb::TrafficCounters vc =
            vi >= 0 && static_cast<size_t>(vi) < total.vips.size() ? total.vips[static_cast<size_t>(vi)] : lb::TrafficCounters{};
        uint64_t active = 0, inactive = 0;  // the VIP's flows: its backends'
        if (vi >= 0)
            for (uint16_t bi : service_->vips()[static_cast<size_t>(vi)].backends)
                if (bi < total.backends.size()) {
                    active += total.backends[bi].active_flows;
                    inactive += total.backends[bi].inactive_flows;
                }
        o += fmt::format("vip {} {}/{} {} on-down={} check={} packets={} bytes={} new_flows={} active_flows={} "
                         "inactive_flows={}",
                         v.name, net::to_string(v.addr, v.port), lb::to_string(v.proto), lb::to_string(v.mode),
                         lb::to_string(v.on_down), lb::to_string(v.check.kind), vc.packets, vc.bytes, vc.new_flows,
                         active, inactive);
        if (vi >= 0) {
            const lb::Maglev& m = service_->vips()[static_cast<size_t>(vi)].maglev;
            o += fmt::format(" table={} digest={:016x}", m.size(), m.digest());
        }
        if (hooks_.route) {
            const auto r = routes_.find(v.addr);
            const auto off = offered_.find(v.name);
            o += fmt::format(" announced={} announce_reason=\"{}\"", r != routes_.end() && r->second.on ? "yes" : "no",
                             off != offered_.end() ? off->second.second : std::string("not evaluated yet"));
        }
        o += '\n';
        for (const auto& b : v.backends) {
            const uint16_t port = port_of(v, b);
            const int bi = vi >= 0 ? service_->find_backend(static_cast<uint16_t>(vi), b.addr, port) : -1;
            const lb::TrafficCounters bc = bi >= 0 && static_cast<size_t>(bi) < total.backends.size()
                                               ? total.backends[static_cast<size_t>(bi)]
                                               : lb::TrafficCounters{};
            auto it = health_.find(Key{v.name, b.addr, port});
            const bool healthy = it == health_.end() || it->second.up;
            const bool has_mac = bi >= 0 && service_->backends()[static_cast<size_t>(bi)].has_mac;
            std::string check;
            if (it != health_.end() && it->second.probe)
                for (const auto& st : probes)
                    if (st.id == it->second.probe && !st.last_detail.empty())
                        check = fmt::format(" last_check=\"{}\" ok_streak={} fail_streak={}", st.last_detail,
                                            st.consecutive_ok, st.consecutive_fail);
            o += fmt::format("  backend {} state={} admin={} health={} weight={} mac={} packets={} bytes={} "
                             "new_flows={} active_flows={} inactive_flows={} handshake_failures={}{}{}\n",
                             net::to_string(b.addr, port), lb::to_string(effective(v, b)), lb::to_string(b.state),
                             healthy ? "up" : "down", b.weight,
                             has_mac ? net::to_string(service_->backends()[static_cast<size_t>(bi)].mac) : "unresolved",
                             bc.packets, bc.bytes, bc.new_flows, bc.active_flows, bc.inactive_flows,
                             bc.handshake_failures,
                             check,
                             it != health_.end() && !it->second.reason.empty()
                                 ? fmt::format(" last_change=\"{}\"", it->second.reason)
                                 : "");
        }
    }
    return o;
}

std::string ControlPlane::stats() const {
    const lb::WorkerCounters t = workers_.counters();
    std::string o;
    t.for_each_scalar([&](const char* name, uint64_t v) { o += fmt::format("{}={} ", name, v); });
    o += fmt::format("drops={}\n", t.total_drops());
    uint16_t w = 0;
    workers_.for_each([&](const lb::Dataplane& dp) {
        o += fmt::format("flows worker={} ipv4={}/{} ipv6={}/{}\n", w++, dp.flows4().size(), dp.flows4().capacity(),
                         dp.flows6().size(), dp.flows6().capacity());
    });
    for (size_t i = 0; i < lb::kDropReasons; ++i)
        if (t.drops[i]) o += fmt::format("drop {}={}\n", lb::to_string(static_cast<lb::Drop>(i)), t.drops[i]);
    if (hooks_.more_stats) o += hooks_.more_stats();
    return o;
}

Expected<std::string> ControlPlane::explain(const Command& c) const {
    auto e = workers_.explain(FlowQuery{c.proto, c.src_addr, c.src_port, c.dst_addr, c.dst_port});
    if (!e) return make_error("the workers did not answer in time; try again");
    using How = lb::Dataplane::Explanation::How;
    if (e->how == How::no_vip)
        return make_error(fmt::format("no VIP is {}/{}", net::to_string(c.dst_addr, c.dst_port), lb::to_string(c.proto)));
    const lb::VipEntry& vip = service_->vips()[e->vip];
    if (e->how == How::no_backend) return fmt::format("vip {}: no backend is up: the packet would be dropped\n", vip.name);
    const lb::BackendEntry& b = service_->backends()[e->backend];
    const std::string be = net::to_string(b.addr, net::port_from_raw(b.port_raw));
    if (e->no_neighbor)
        return fmt::format("vip {}: flow-table hit on backend {}, whose MAC is not known yet: dropped as no_neighbor\n",
                           vip.name, be);
    if (e->how == How::persist || (e->how == How::maglev && e->persist_len)) {
        uint8_t net_bytes[16];
        lb::mask_address(c.src_addr.family, c.src_addr.bytes.data(), e->persist_len, net_bytes);
        const net::IpAddr client_net = c.src_addr.is_v4() ? net::IpAddr::v4(net_bytes) : net::IpAddr::v6(net_bytes);
        const std::string client = fmt::format("{}/{}", net::to_string(client_net), e->persist_len);
        if (e->how == How::persist)
            return fmt::format("vip {}: backend {} (persistence: client {} pinned to {}, {} left)\n", vip.name, be,
                               client, be, format_duration(e->persist_left_ms));
        std::string why = "no entry yet, or it expired";
        if (e->released) {
            const lb::BackendEntry& old = service_->backends()[e->released_from];
            why = fmt::format("its entry names {}, which is {}: released", 
                              net::to_string(old.addr, net::port_from_raw(old.port_raw)),
                              old.removed ? "removed" : !old.has_mac ? "unresolved" : lb::to_string(old.state));
        }
        return fmt::format("vip {}: backend {} (persistence: Maglev pick for client {}: {}; the new flow pins it)\n",
                           vip.name, be, client, why);
    }
    if (e->how == How::maglev)
        return fmt::format("vip {}: backend {} (Maglev pick: no flow yet, or its state was lost)\n", vip.name, be);
    if (e->would_reschedule) {
        if (vip.on_down == lb::DownPolicy::drop && !b.removed)
            return fmt::format("vip {}: flow-table hit on backend {}, which is {}: on-down=drop drops it\n", vip.name,
                               be, lb::to_string(b.state));
        return fmt::format("vip {}: flow-table hit on backend {}, which is {}: rescheduled by Maglev on its next "
                           "packet\n",
                           vip.name, be, b.removed ? "removed" : lb::to_string(b.state));
    }
    return fmt::format("vip {}: backend {} (flow-table hit)\n", vip.name, be);
}

Expected<std::string> ControlPlane::persist_list(const std::string& vip_name) const {
    const int vi = service_->find_vip_by_name(vip_name);
    if (vi < 0) return make_error(fmt::format("no VIP named '{}'", vip_name));
    const lb::VipEntry& vip = service_->vips()[static_cast<size_t>(vi)];
    if (!vip.persist_ms) return make_error(fmt::format("VIP '{}' has no persistence (persist=DURATION)", vip_name));
    constexpr size_t kMaxListed = 65536;
    auto per_worker = workers_.persist_entries(static_cast<uint16_t>(vi), kMaxListed);
    if (!per_worker) return make_error("the workers did not answer in time; try again");
    // One line per (client network, backend): the workers that hold it and the most time left
    // (their copies may lag a report by a control-core turn).
    struct Line {
        uint32_t left_ms = 0;
        std::vector<size_t> workers;
    };
    std::map<std::tuple<uint8_t, std::array<uint8_t, 16>, uint8_t, uint16_t>, Line> lines;
    for (size_t w = 0; w < per_worker->size(); ++w) {
        for (const auto& e : (*per_worker)[w]) {  // expiry_ms: the time left (list_persist)
            std::array<uint8_t, 16> net_bytes;
            std::memcpy(net_bytes.data(), e.key.net, 16);
            Line& l = lines[{e.key.family, net_bytes, e.key.mask_len, e.backend}];
            l.workers.push_back(w);
            l.left_ms = std::max(l.left_ms, e.expiry_ms);
        }
    }
    std::string o = fmt::format("vip {} persist={} persist-mask=/{}: {} client network{}\n", vip.name,
                                format_duration(vip.persist_ms), vip.persist_len, lines.size(),
                                lines.size() == 1 ? "" : "s");
    for (const auto& [k, l] : lines) {
        const auto& [family, net_bytes, len, backend] = k;
        const net::IpAddr client = family == 4 ? net::IpAddr::v4(net_bytes.data()) : net::IpAddr::v6(net_bytes.data());
        std::string be = "?";
        if (backend < service_->backends().size()) {
            const lb::BackendEntry& b = service_->backends()[backend];
            be = net::to_string(b.addr, net::port_from_raw(b.port_raw));
            if (!b.keeps_clients()) be += b.removed ? " (removed: released)" : " (not up: released)";
        }
        std::string ws;
        for (size_t w : l.workers) ws += fmt::format("{}{}", ws.empty() ? "" : ",", w);
        o += fmt::format("  client {}/{} backend {} left={} workers={}\n", net::to_string(client), len, be,
                         format_duration(l.left_ms), ws);
    }
    return o;
}

std::string ControlPlane::handle(const Expected<Command>& cmd, const Peer& peer) {
    if (!cmd) return error_response(cmd.error());
    const Command& c = *cmd;
    if (!changes_state(c.op)) return answer(c);
    if (!peer.privileged)
        return error_response(fmt::format("read-only: uid {} may list, stats, explain, persist and help; changes need root, "
                                          "Sluice's own user or its control group (--control-group)",
                                          peer.uid));
    const std::string request = format_command(c);
    if (!c.request_id.empty())
        for (const auto& [id, first] : answered_)
            if (id == c.request_id) {
                log(fmt::format("control: repeated request from uid={} pid={}: {} (answered as the first time, not "
                                "applied again)",
                                peer.uid, peer.pid, request));
                return first;
            }
    // What the change logs names who asked; a refused change is logged here with its reason.
    operator_ = fmt::format("uid={} pid={}", peer.uid, peer.pid);
    std::string out = answer(c);
    operator_ = "the operator";
    // A refused reload has logged its one line already, naming who asked.
    if (!out.starts_with("ok") && c.op != Op::reload)
        log(fmt::format("control: uid={} pid={}: {}: {}", peer.uid, peer.pid, request, out.substr(0, out.find('\n'))));
    if (!c.request_id.empty()) {
        if (answered_.size() >= kRememberedAnswers) answered_.pop_front();
        answered_.emplace_back(c.request_id, out);
    }
    return out;
}

std::string ControlPlane::answer(const Command& c) {
    auto done = [](const Status& st, std::string_view ok_text) {
        return st ? ok_response(ok_text) : error_response(st.error());
    };
    switch (c.op) {
        case Op::help: return ok_response(help_text());
        case Op::list: return ok_response(list());
        case Op::stats: return ok_response(stats());
        case Op::add_backend:
            return done(add_backend(c.vip, c.addr, c.port, c.weight.value_or(1), c.mac), "backend added");
        case Op::set_neighbor: return done(set_neighbor(c.addr, *c.mac), "neighbor set");
        case Op::remove_backend: return done(remove_backend(c.vip, c.addr, c.port), "backend removed");
        case Op::set_weight: return done(set_weight(c.vip, c.addr, c.port, c.weight.value_or(1)), "weight set");
        case Op::drain:
            return done(set_state(c.vip, c.addr, c.port, lb::BackendState::draining), "draining: existing flows stay, no new ones");
        case Op::set_state: return done(set_state(c.vip, c.addr, c.port, c.state), "state set");
        case Op::reload: return done(reload(), "configuration reloaded");
        case Op::clear_counters:
            workers_.run_on_all(Workers::Task::clear_counters);  // handshake failures are kept
            return ok_response("counters cleared");
        case Op::withdraw:
        case Op::announce:
            if (!hooks_.route) return error_response("announcing is off (start Sluice with --announce yes)");
            if (c.op == Op::withdraw) {
                withdraw_all(fmt::format("withdrawn by {}", operator_));
                return ok_response("every VIP withdrawn; forwarding goes on");
            }
            announce_all();
            return ok_response("the VIPs that can be served are announced");
        case Op::explain: {
            auto e = explain(c);
            return e ? ok_response(*e) : error_response(e.error());
        }
        case Op::persist: {
            auto l = persist_list(c.vip);
            return l ? ok_response(*l) : error_response(l.error());
        }
    }
    return error_response("unhandled command");
}

}  // namespace sluice::control
