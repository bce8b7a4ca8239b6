// The semantic rules of a configuration: see rules.hpp.
#include "lib/config/rules.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <sys/un.h>

#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/lb/limits.hpp"
#include "lib/lb/maglev.hpp"

namespace sluice::config::detail {

using lb::BackendConf;
using lb::Config;
using lb::VipConf;
using net::IpAddr;

std::string describe(const RawOpt& o) {
    std::string s = o.where.empty() ? std::string() : o.where + ": ";
    return s + fmt::format("--{} '{}'", clip(o.name), clip(o.value));
}

Error fail(const std::string& label, std::string_view what) {
    return make_error(fmt::format("{}: {}", label, what));
}

namespace {

constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path);  // with its terminating NUL

bool unspecified(const IpAddr& a) {
    return std::all_of(a.bytes.begin(), a.bytes.end(), [](uint8_t b) { return b == 0; });
}

const char* not_unicast(const IpAddr& a) {
    auto all_zero = std::all_of(a.bytes.begin(), a.bytes.end(), [](uint8_t b) { return b == 0; });
    if (all_zero) return "the unspecified address";
    if (a.is_v4()) {
        if (a.bytes[0] >= 224 && a.bytes[0] <= 239) return "multicast";
        if (a.bytes[0] == 255 && a.bytes[1] == 255 && a.bytes[2] == 255 && a.bytes[3] == 255) return "broadcast";
        return nullptr;
    }
    return a.bytes[0] == 0xff ? "multicast" : nullptr;
}

// Addresses no packet on the wire can carry: loopback, "this network" 0/8, the reserved
// 240/4, IPv4-mapped IPv6. (A backend on loopback is let through: tests probe local servers.)
const char* not_routable(const IpAddr& a, bool loopback_ok = false) {
    if (a.is_v4()) {
        if (a.bytes[0] == 127 && !loopback_ok) return "loopback";
        if (a.bytes[0] == 0) return "in 0.0.0.0/8 (this network)";
        if (a.bytes[0] >= 240) return "reserved (240.0.0.0/4)";
        return nullptr;
    }
    static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kLoopback, 16) == 0 && !loopback_ok) return "loopback";
    if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) return "IPv4-mapped (give the IPv4 address itself)";
    return nullptr;
}

const char* family_name(net::Family f) { return f == net::Family::v4 ? "IPv4" : "IPv6"; }

std::string bracketed(const IpAddr& a) { return a.is_v4() ? net::to_string(a) : fmt::format("[{}]", net::to_string(a)); }

// Canonical renderings, for messages about a Config that was not parsed from text.
std::string render_vip(const VipConf& v) {
    std::string s = fmt::format("{},{}/{},{}", v.name, net::to_string(v.addr, v.port), lb::to_string(v.proto),
                                lb::to_string(v.mode));
    if (v.table_size != VipConf{}.table_size) s += fmt::format(",table={}", v.table_size);
    return s;
}

std::string render_backend(const VipConf& v, const BackendConf& b) {
    std::string s = v.name + "," + (b.port ? net::to_string(b.addr, b.port) : bracketed(b.addr));
    if (b.weight != BackendConf{}.weight) s += fmt::format(",weight={}", b.weight);
    return s;
}

class Validator {
public:
    Validator(const Config& c, const Origins* o) : c_(c), o_(o) {}

    Status run() {
        if (auto s = check_numbers(); !s) return s;
        if (auto s = check_addrs("snat", c_.snat_addrs, o_ ? &o_->snat : nullptr); !s) return s;
        for (auto fam : {net::Family::v4, net::Family::v6})
            if (std::count_if(c_.snat_addrs.begin(), c_.snat_addrs.end(),
                              [&](const IpAddr& a) { return a.family == fam; }) > static_cast<ptrdiff_t>(lb::kMaxSnatAddrs))
                return make_error(fmt::format("--snat: more than {} {} addresses", lb::kMaxSnatAddrs,
                                              family_name(fam)));
        if (auto s = check_addrs("self", c_.self_addrs, o_ ? &o_->self : nullptr); !s) return s;
        // The kernel side's ephemeral ports (probes) would collide with fullnat's SNAT ports.
        for (size_t i = 0; i < c_.self_addrs.size(); ++i)
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), c_.self_addrs[i]) != c_.snat_addrs.end())
                return fail(o_ ? describe(o_->self[i]) : fmt::format("--self '{}'", net::to_string(c_.self_addrs[i])),
                            "also a --snat address; give Sluice's own address and its SNAT addresses apart");
        if (auto s = check_neighbors(); !s) return s;
        if (auto s = check_tunnel_and_gateway_addrs(); !s) return s;
        if (c_.vips.empty() && !c_.allow_no_vips)
            return make_error("no VIP configured: Sluice would forward nothing (an empty or comment-only file?); "
                              "give a --vip, or --allow-no-vips yes to run without one");
        if (c_.vips.size() > lb::kMaxVipSlots)
            return make_error(fmt::format("--vip: {} VIPs, at most {} are supported", c_.vips.size(), lb::kMaxVipSlots));
        if (auto s = check_own_addresses(); !s) return s;
        if (auto s = check_tier(); !s) return s;
        if (auto s = check_sync(); !s) return s;
        if (c_.control_socket.size() >= kMaxSocketPath)
            return fail(scalar("control-socket", c_.control_socket),
                        fmt::format("the path is {} bytes; a Unix socket path holds at most {}", c_.control_socket.size(),
                                    kMaxSocketPath - 1));
        // One RX ring of one queue must fit in the pool, whatever the ports and workers.
        if (c_.total_num_mbufs && c_.total_num_mbufs < c_.rxd + c_.txd)
            return fail(scalar("total-num-mbufs", std::to_string(c_.total_num_mbufs)),
                        fmt::format("cannot fill even one RX and one TX ring ({} + {} descriptors); leave it out to "
                                    "have it sized, or see `sluice doctor`",
                                    c_.rxd, c_.txd));
        if (auto s = check_vips(); !s) return s;
        // Checked last: a VIP's own mistakes are the more useful message.
        if (c_.kernel_if.empty() && !c_.host_probes)
            for (size_t i = 0; i < c_.vips.size(); ++i)
                if (c_.vips[i].check.kind != lb::CheckConf::Kind::none)
                    return fail(vip(i), "check= without --kernel-if: the probes would leave through the host's own "
                                        "network and could find a backend UP that the data ports cannot reach; give "
                                        "--kernel-if (probes through the data ports), or --host-probes yes if the host "
                                        "reaches the backends as the data ports do");
        return {};
    }

private:
    std::string scalar(std::string_view name, const std::string& canonical) const {
        if (o_)
            if (auto it = o_->scalars.find(name); it != o_->scalars.end()) return describe(it->second);
        return fmt::format("--{} '{}'", name, canonical);
    }
    std::string vip(size_t i) const {
        return o_ ? describe(o_->vips[i]) : fmt::format("--vip '{}'", render_vip(c_.vips[i]));
    }
    std::string backend(size_t i, size_t j) const {
        const auto& v = c_.vips[i];
        return o_ ? describe(o_->backends[i][j]) : fmt::format("--backend '{}'", render_backend(v, v.backends[j]));
    }

    Status check_numbers() const {
        Status st;
        for_each_number(c_, [&](std::string_view name, const uint32_t& field, uint64_t lo, uint64_t hi,
                                uint64_t scale) {
            if (!st || (field >= lo && field <= hi * scale)) return;
            auto shown = field % scale == 0 ? fmt::format("{}", field / scale) : fmt::format("{} ms", field);
            st = fail(scalar(name, shown), fmt::format("value out of range ({}..{})", lo, hi));
        });
        if (!st) return st;
        const std::pair<const char*, int> ports[] = {{"client-port", c_.client_port},
                                                      {"backend-port", c_.backend_port}};
        for (auto [name, port] : ports)
            if (port < -1 || port > lb::kMaxPortId)  // -1: chosen at start-up
                return fail(scalar(name, std::to_string(port)),
                            fmt::format("port id out of range (0..{})", lb::kMaxPortId));
        const std::pair<const char*, uint16_t> vlans[] = {{"client-vlan", c_.client_vlan},
                                                           {"backend-vlan", c_.backend_vlan}};
        for (auto [name, vlan] : vlans)
            if (vlan > lb::kMaxVlan)  // 0: untagged
                return fail(scalar(name, std::to_string(vlan)), fmt::format("VLAN id out of range (1..{})", lb::kMaxVlan));
        if (c_.snat_port_min < lb::kMinSnatPort || c_.snat_port_min > c_.snat_port_max)
            return fail(scalar("snat-ports", fmt::format("{}-{}", c_.snat_port_min, c_.snat_port_max)),
                        fmt::format("need {} <= MIN <= MAX <= 65535", lb::kMinSnatPort));
        return {};
    }

    Status check_addrs(const char* option, const std::vector<IpAddr>& addrs, const std::vector<RawOpt>* origins) const {
        std::unordered_set<IpAddr> seen;
        for (size_t i = 0; i < addrs.size(); ++i) {
            auto label = origins ? describe((*origins)[i]) : fmt::format("--{} '{}'", option, net::to_string(addrs[i]));
            if (auto why = not_unicast(addrs[i])) return fail(label, fmt::format("address is {}, not unicast", why));
            if (!seen.insert(addrs[i]).second) return fail(label, "duplicate address");
        }
        return {};
    }

    Status check_neighbors() {
        for (size_t i = 0; i < c_.neighbors.size(); ++i) {
            const auto& n = c_.neighbors[i];
            auto label = o_ ? describe(o_->neighbors[i])
                            : fmt::format("--neighbor '{},{}'", net::to_string(n.addr), net::to_string(n.mac));
            if (auto why = not_unicast(n.addr)) return fail(label, fmt::format("address is {}, not unicast", why));
            if (n.mac == net::Mac{}) return fail(label, "MAC is zero");
            if (n.mac.bytes[0] & 0x01) return fail(label, "MAC is multicast/broadcast");
            if (!neighbors_.insert(n.addr).second) return fail(label, "duplicate neighbor address");
        }
        return {};
    }

    // At most one tunnel source and one gateway of each kind per family; a gateway needs its MAC.
    Status check_tunnel_and_gateway_addrs() const {
        struct List {
            const char* option;
            const std::vector<IpAddr>* addrs;
            const std::vector<RawOpt>* origins;
        };
        const List lists[] = {{"tunnel-source", &c_.tunnel_sources, o_ ? &o_->tunnel_sources : nullptr},
                              {"tunnel-gateway", &c_.tunnel_gateways, o_ ? &o_->tunnel_gateways : nullptr},
                              {"client-gateway", &c_.client_gateways, o_ ? &o_->client_gateways : nullptr}};
        for (auto [option, addrs, origins] : lists) {
            const bool gateway = addrs != &c_.tunnel_sources;
            if (auto s = check_addrs(option, *addrs, origins); !s) return s;
            bool family[2] = {false, false};
            for (size_t i = 0; i < addrs->size(); ++i) {
                const IpAddr& a = (*addrs)[i];
                auto label = origins ? describe((*origins)[i]) : fmt::format("--{} '{}'", option, net::to_string(a));
                if (std::exchange(family[a.is_v4() ? 0 : 1], true))
                    return fail(label, fmt::format("a second {} address: one per family", family_name(a.family)));
                if (auto why = not_routable(a, gateway))
                    return fail(label, fmt::format("address {} is {}", net::to_string(a), why));
                if (gateway && !neighbors_.count(a) && c_.kernel_if.empty())
                    return fail(label, fmt::format("no --neighbor for the gateway {} (give one, or --kernel-if to "
                                                   "resolve it with ARP/ND)",
                                                   net::to_string(a)));
            }
        }
        return {};
    }

    const IpAddr* tunnel_gateway(net::Family f) const {
        for (const auto& g : c_.tunnel_gateways)
            if (g.family == f) return &g;
        return nullptr;
    }
    bool has_tunnel_source(net::Family f) const {
        return std::any_of(c_.tunnel_sources.begin(), c_.tunnel_sources.end(),
                           [f](const IpAddr& a) { return a.family == f; });
    }

    // A tier (--announce): the routes live on the kernel side, and a backend's answer may reach
    // an instance that never saw its flow, which maps it back to its VIP by the backend's
    // address, port and protocol alone: in nat those must name one VIP.
    Status check_tier() const {
        if (!c_.announce) return {};
        if (c_.kernel_if.empty())
            return fail(scalar("announce", "yes"), "needs --kernel-if: the announced addresses live on its TAP");
        std::map<std::tuple<IpAddr, uint16_t, lb::Proto>, size_t> owner;
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& v = c_.vips[i];
            if (v.mode != lb::Mode::nat) continue;
            for (const auto& b : v.backends) {
                const uint16_t port = b.port ? b.port : v.port;
                const auto [it, fresh] = owner.emplace(std::make_tuple(b.addr, port, v.proto), i);
                if (!fresh && it->second != i)
                    return fail(vip(i), fmt::format("backend {} also serves the nat VIP {}: with --announce its "
                                                    "answers may reach an instance that never saw the flow, which "
                                                    "could not tell the VIPs apart; give each VIP its own backend port",
                                                    net::to_string(b.addr, port), c_.vips[it->second].name));
            }
        }
        return {};
    }

    // Replication (--sync-*): complete, consistent, and the peers' SNAT addresses apart from
    // this instance's own addresses.
    Status check_sync() const {
        const auto& y = c_.sync;
        const bool any = !y.peers.empty() || !y.key_file.empty() || !unspecified(y.listen);
        if (!y.id) {
            if (any) return make_error("--sync-peer, --sync-key and --sync-listen need --sync-id (this instance's id)");
            return {};
        }
        const std::string id = scalar("sync-id", std::to_string(y.id));
        if (y.key_file.empty()) return fail(id, "needs --sync-key FILE (the tier's shared key)");
        if (unspecified(y.listen)) return fail(id, "needs --sync-listen ADDR[:PORT] (a kernel address of this host)");
        if (y.peers.empty()) return fail(id, "needs at least one --sync-peer");
        std::set<uint32_t> ids{y.id};
        std::set<IpAddr> own(c_.snat_addrs.begin(), c_.snat_addrs.end());
        for (const auto& a : c_.self_addrs) own.insert(a);
        for (const auto& v : c_.vips) own.insert(v.addr);
        size_t snat_count[2] = {0, 0};
        for (const auto& a : c_.snat_addrs) ++snat_count[a.is_v4() ? 0 : 1];
        for (size_t i = 0; i < y.peers.size(); ++i) {
            const auto& p = y.peers[i];
            const std::string label = o_ && i < o_->sync_peers.size() ? describe(o_->sync_peers[i])
                                                                      : fmt::format("--sync-peer {}", p.id);
            if (!ids.insert(p.id).second)
                return fail(label, p.id == y.id ? "the peer has this instance's own --sync-id"
                                                : "a second peer with that id");
            if (p.addr.family != y.listen.family)
                return fail(label, "the peer's address is of another family than --sync-listen");
            for (const auto& a : p.snat) {
                if (!own.insert(a).second)
                    return fail(label, fmt::format("{} is already an address of this instance or of another peer: "
                                                   "each instance owns its SNAT addresses",
                                                   net::to_string(a)));
                if (auto why = not_unicast(a)) return fail(label, fmt::format("{} is {}", net::to_string(a), why));
                if (++snat_count[a.is_v4() ? 0 : 1] > lb::kMaxSnatAddrs)
                    return fail(label, fmt::format("more than {} SNAT addresses of one family in the tier",
                                                   lb::kMaxSnatAddrs));
            }
        }
        const uint32_t longest = std::min(c_.timeouts.tcp_established_ms, c_.timeouts.udp_ms);
        if (y.refresh_ms && y.refresh_ms * 2 > longest)
            return fail(scalar("sync-refresh", std::to_string(y.refresh_ms) + "ms"),
                        fmt::format("must be at most half the shorter of the established and UDP timeouts ({} ms): "
                                    "a peer's copy of a live session would expire between two refreshes",
                                    longest));
        // A session another instance started answers its client through the client side's
        // router: the only next hop this instance knows for it.
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& v = c_.vips[i];
            if (v.mode != lb::Mode::fullnat) continue;
            if (std::none_of(c_.client_gateways.begin(), c_.client_gateways.end(),
                             [&](const IpAddr& g) { return g.family == v.addr.family; }))
                return fail(vip(i), fmt::format("with --sync-id, a fullnat VIP needs an {} --client-gateway: the "
                                                "sessions another instance started answer their clients through it",
                                                family_name(v.addr.family)));
        }
        return {};
    }

    // Sluice's own addresses (SNAT, self) and the VIPs must be told apart: a reply to a SNAT
    // address that is also a VIP would be balanced again, and the kernel side owns self.
    Status check_own_addresses() const {
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& a = c_.vips[i].addr;
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), a) != c_.snat_addrs.end())
                return fail(vip(i), fmt::format("the VIP address {} is also a SNAT address (--snat): replies to "
                                                "fullnat flows would be taken for new client traffic; give them apart",
                                                net::to_string(a)));
            if (std::find(c_.self_addrs.begin(), c_.self_addrs.end(), a) != c_.self_addrs.end())
                return fail(vip(i), fmt::format("the VIP address {} is also a --self address (Sluice's kernel side): "
                                                "give them apart",
                                                net::to_string(a)));
        }
        return {};
    }

    Status check_vips() {
        for (const auto& v : c_.vips) vip_addrs_.insert(v.addr);
        size_t total = 0;
        for (const auto& v : c_.vips) total += v.backends.size();
        if (total > lb::kMaxBackends)
            return make_error(fmt::format("--backend: {} backends, at most {} are supported", total, lb::kMaxBackends));

        bool snat_family[2] = {false, false};
        for (const auto& a : c_.snat_addrs) snat_family[a.is_v4() ? 0 : 1] = true;

        std::unordered_map<std::string, size_t> names;
        std::map<std::tuple<IpAddr, uint16_t, lb::Proto>, size_t> services;
        for (size_t i = 0; i < c_.vips.size(); ++i) {
            const auto& v = c_.vips[i];
            if (auto st = lb::check_vip_name(v.name); !st) return fail(vip(i), st.error());
            if (auto [it, fresh] = names.emplace(v.name, i); !fresh)
                return fail(vip(i), fmt::format("duplicate VIP name '{}'", clip(v.name)));
            if (auto why = not_unicast(v.addr))
                return fail(vip(i), fmt::format("address {} is {}, not unicast", net::to_string(v.addr), why));
            if (v.port == 0) return fail(vip(i), "port 0 is not allowed for a VIP");
            // 0 is auto (lb::maglev_table_size); a configured size must be a prime Maglev takes.
            if (v.table_size > lb::kMaxTableSize)
                return fail(vip(i), fmt::format("table size out of range (1..{})", lb::kMaxTableSize));
            if (v.table_size != 0 && !lb::is_prime(v.table_size))
                return fail(vip(i), fmt::format("table size {} is not prime", v.table_size));
            if (auto [it, fresh] = services.emplace(std::tuple{v.addr, v.port, v.proto}, i); !fresh)
                return fail(vip(i),
                            fmt::format("same address, port and protocol as VIP '{}'", c_.vips[it->second].name));
            if (v.backends.empty()) return fail(vip(i), fmt::format("VIP '{}' has no --backend", clip(v.name)));
            if (auto why = not_routable(v.addr))
                return fail(vip(i), fmt::format("address {} is {}: no client can reach it through Sluice",
                                                net::to_string(v.addr), why));
            // auto sizes are at least 65537 > kMaxBackends: only a configured size can be too small.
            if (v.table_size != 0 && v.table_size < v.backends.size())
                return fail(vip(i), fmt::format("table={} is smaller than its {} backends: some would never be picked "
                                                "(Maglev wants a prime of at least 100 x the backends; the default, "
                                                "auto, gives at least 2048 x)",
                                                v.table_size, v.backends.size()));
            if (v.check.http_body.size() > lb::kMaxProbeResponse)
                return fail(vip(i), fmt::format("http-body is {} bytes; a probe reads at most {} of the answer, so "
                                                "the check could never pass",
                                                v.check.http_body.size(), lb::kMaxProbeResponse));
            if (v.check.http_path.size() > lb::kMaxHttpPath)
                return fail(vip(i), fmt::format("http-path is {} bytes; at most {} (HTTP servers refuse longer request "
                                                "lines)",
                                                v.check.http_path.size(), lb::kMaxHttpPath));
            if (v.persist_ms && (v.persist_ms < lb::kMinPersistMs || v.persist_ms > lb::kMaxPersistMs))
                return fail(vip(i), fmt::format("persist={} ms out of range (1s..24h, e.g. persist=5m, persist=90s, "
                                                "persist=2h)",
                                                v.persist_ms));
            if (const unsigned width = v.addr.is_v4() ? 32 : 128; v.persist_mask > width)
                return fail(vip(i), fmt::format("persist-mask=/{} is beyond an {} address (/1../{}; default the "
                                                "whole address)",
                                                v.persist_mask, family_name(v.addr.family), width));
            if (v.persist_mask && !v.persist_ms)
                return fail(vip(i), "persist-mask needs persist=DURATION (e.g. persist=5m,persist-mask=/24)");
            if (v.mode == lb::Mode::fullnat && !snat_family[v.addr.is_v4() ? 0 : 1])
                return fail(vip(i), fmt::format("fullnat needs a --snat address of the VIP's family ({})",
                                                family_name(v.addr.family)));
            if (auto s = check_backends(i); !s) return s;
        }
        return {};
    }

    Status check_backends(size_t i) const {
        const auto& v = c_.vips[i];
        std::set<std::pair<IpAddr, uint16_t>> seen;
        for (size_t j = 0; j < v.backends.size(); ++j) {
            const auto& b = v.backends[j];
            // A tunnel carries either family in either (4in6 reaches IPv6-only backend networks).
            if (b.addr.family != v.addr.family && v.mode != lb::Mode::tunnel)
                return fail(backend(i, j), fmt::format("{} backend for {} VIP '{}'", family_name(b.addr.family),
                                                       family_name(v.addr.family), v.name));
            if (v.mode == lb::Mode::tunnel && !has_tunnel_source(b.addr.family))
                return fail(backend(i, j), fmt::format("a tunnel to {} needs a --tunnel-source of its family ({})",
                                                       net::to_string(b.addr), family_name(b.addr.family)));
            if (auto why = not_unicast(b.addr))
                return fail(backend(i, j), fmt::format("address {} is {}, not unicast", net::to_string(b.addr), why));
            if (auto why = not_routable(b.addr, true))
                return fail(backend(i, j), fmt::format("address {} is {}: Sluice cannot send to it", net::to_string(b.addr), why));
            if (vip_addrs_.count(b.addr))
                return fail(backend(i, j), fmt::format("backend {} is a VIP address: its packets would come back to "
                                                       "Sluice and loop",
                                                       net::to_string(b.addr)));
            if (std::find(c_.snat_addrs.begin(), c_.snat_addrs.end(), b.addr) != c_.snat_addrs.end())
                return fail(backend(i, j), fmt::format("backend {} is one of Sluice's SNAT addresses (--snat)", net::to_string(b.addr)));
            if (std::find(c_.self_addrs.begin(), c_.self_addrs.end(), b.addr) != c_.self_addrs.end())
                return fail(backend(i, j), fmt::format("backend {} is one of Sluice's --self addresses", net::to_string(b.addr)));
            if (b.weight > lb::kMaxWeight)
                return fail(backend(i, j), fmt::format("weight out of range (0..{})", lb::kMaxWeight));
            // DSR and tunnels leave the packet's destination (VIP:port) untouched, so the
            // backend cannot listen on another port.
            if (lb::direct_return(v.mode) && b.port != 0 && b.port != v.port)
                return fail(backend(i, j), fmt::format("{} backend port must be the VIP port {} (or be omitted)",
                                                       lb::to_string(v.mode), v.port));
            uint16_t port = b.port ? b.port : v.port;
            if (!seen.emplace(b.addr, port).second)
                return fail(backend(i, j), fmt::format("duplicate backend {} in VIP '{}'",
                                                       net::to_string(b.addr, port), v.name));
            // Through a gateway, the gateway's MAC is the one needed (checked with it).
            const bool via_gateway = v.mode == lb::Mode::tunnel && tunnel_gateway(b.addr.family);
            if (!via_gateway && !neighbors_.count(b.addr) && c_.kernel_if.empty())
                return fail(backend(i, j),
                            fmt::format("no --neighbor for {} (give one, or --kernel-if to resolve it with ARP/ND)",
                                        net::to_string(b.addr)));
        }
        return {};
    }

    const Config& c_;
    const Origins* o_;
    std::unordered_set<IpAddr> neighbors_;
    std::unordered_set<IpAddr> vip_addrs_;
};

}  // namespace

Status check(const Config& c, const Origins* origins) { return Validator(c, origins).run(); }

}  // namespace sluice::config::detail
