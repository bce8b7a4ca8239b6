#include "lib/lb/service.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include "lib/lb/flow_table.hpp"
#include "lib/net/checksum.hpp"
#include "lib/net/wire.hpp"

namespace sluice::lb {

namespace {

// The IPv4 TTL, the first byte in memory of its 16-bit header word, minus one: as an RFC 1624
// sum (~m + m') the same for every TTL > 1 (memory-order words, as everywhere).
constexpr uint64_t kTtlDecrementSum = std::endian::native == std::endian::little ? 0xFFFE : 0xFEFF;


// A backend's identity for Maglev: independent of configuration order and of the VIP.
uint64_t backend_id(const net::IpAddr& a, uint16_t port) {
    const uint64_t lo = net::load_raw64(a.bytes.data()), hi = net::load_raw64(a.bytes.data() + 8);
    return flow_mix(lo ^ flow_mix(hi ^ (static_cast<uint64_t>(port) << 8 | static_cast<uint8_t>(a.family))));
}
}  // namespace

uint64_t Service::slot_hash(uint64_t lo, uint64_t hi, uint32_t meta, uint16_t port) noexcept {
    return flow_mix(lo * kGoldenRatio64 ^ flow_mix(hi ^ (static_cast<uint64_t>(meta) << 16 | port)));
}

uint64_t maglev_flow_hash(net::Family f, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                          uint16_t dport_raw, uint8_t proto) noexcept {
    const uint64_t ports = static_cast<uint64_t>(sport_raw) | static_cast<uint64_t>(dport_raw) << 16 |
                           static_cast<uint64_t>(proto) << 32;
    if (f == net::Family::v4) {  // the same function with the upper address words known to be zero
        const uint32_t s4 = net::load_raw32(src), d4 = net::load_raw32(dst);
        return flow_mix(flow_mix(s4 ^ 0x5851F42D4C957F2DULL) ^ flow_mix(d4) ^ flow_mix(ports));
    }
    const uint64_t slo = net::load_raw64(src), shi = net::load_raw64(src + 8);
    const uint64_t dlo = net::load_raw64(dst), dhi = net::load_raw64(dst + 8);
    return flow_mix(flow_mix(slo ^ 0x5851F42D4C957F2DULL) ^ flow_mix(shi + dlo) ^ flow_mix(dhi ^ ports));
}

uint64_t persist_hash(net::Family f, const uint8_t* client_net, const uint8_t* vip, uint16_t vport_raw, uint8_t proto,
                      uint8_t prefix_len) noexcept {
    // maglev_flow_hash's mixing, with the client port's place taken by a marker and the prefix
    // length: a client network never hashes like a flow.
    const uint64_t meta = static_cast<uint64_t>(vport_raw) << 16 | static_cast<uint64_t>(proto) << 32 |
                          static_cast<uint64_t>(prefix_len) << 40 | uint64_t{0x50} << 48;
    if (f == net::Family::v4) {
        const uint32_t s4 = net::load_raw32(client_net), d4 = net::load_raw32(vip);
        return flow_mix(flow_mix(s4 ^ 0x5851F42D4C957F2DULL) ^ flow_mix(d4) ^ flow_mix(meta));
    }
    const uint64_t slo = net::load_raw64(client_net), shi = net::load_raw64(client_net + 8);
    const uint64_t dlo = net::load_raw64(vip), dhi = net::load_raw64(vip + 8);
    return flow_mix(flow_mix(slo ^ 0x5851F42D4C957F2DULL) ^ flow_mix(shi + dlo) ^ flow_mix(dhi ^ meta));
}

void mask_address(net::Family f, const uint8_t* addr, uint8_t prefix_len, uint8_t* out) noexcept {
    const unsigned len = f == net::Family::v4 ? 4 : 16;
    std::memset(out, 0, 16);
    for (unsigned i = 0; i < len && i * 8 < prefix_len; ++i) {
        const unsigned bits = prefix_len - i * 8;
        out[i] = static_cast<uint8_t>(bits >= 8 ? addr[i] : addr[i] & (0xFF00u >> bits));
    }
}

namespace {
bool same_service(const VipEntry& v, const VipConf& c) {
    return !v.removed && v.name == c.name && v.addr == c.addr && v.port_raw == net::port_to_raw(c.port) && v.proto == c.proto &&
           v.mode == c.mode;
}
}  // namespace

int Service::find_vip_by_name(std::string_view name) const noexcept {
    for (size_t i = 0; i < vips_.size(); ++i)
        if (!vips_[i].removed && vips_[i].name == name) return static_cast<int>(i);
    return -1;
}

int Service::find_backend(uint16_t vip, const net::IpAddr& addr, uint16_t port) const noexcept {
    if (vip >= vips_.size()) return -1;
    for (uint16_t b : vips_[vip].backends)
        if (backends_[b].addr == addr && backends_[b].port_raw == net::port_to_raw(port)) return b;
    return -1;
}

Expected<Service> Service::build(const Config& config, const Service* previous, bool require_neighbors) {
    Service s;
    for (const auto& a : config.snat_addrs) (a.is_v4() ? s.snat4_ : s.snat6_).push_back(a);
    s.snat_own_[0] = s.snat4_.size();
    s.snat_own_[1] = s.snat6_.size();
    // The tier's other SNAT addresses follow (never picked here: their sessions come from their
    // owners through replication).
    for (const auto& p : config.sync.peers)
        for (const auto& a : p.snat) {
            (a.is_v4() ? s.snat4_ : s.snat6_).push_back(a);
            s.own_.add(a);
        }
    for (const auto& a : config.self_addrs) {
        s.self_.add(a);
        s.own_.add(a);
    }
    for (const auto& a : config.snat_addrs) s.own_.add(a);
    for (const auto& a : config.tunnel_sources) {
        (a.is_v4() ? s.tunnel_src4_ : s.tunnel_src6_) = a;
        s.own_.add(a);
    }

    size_t slots = 16;
    while (slots < config.vips.size() * 2) slots *= 2;
    s.index_.assign(slots, Slot{});
    s.index4_.assign(slots, Slot4{});

    // Start from the previous snapshot's entries, all marked removed; what the config still
    // has is revived in place below, the rest stays a tombstone.
    if (previous) {
        s.vips_ = previous->vips_;
        s.backends_ = previous->backends_;
        for (auto& v : s.vips_) v.removed = true;
        for (auto& b : s.backends_) b.removed = true;
    }
    // Indexed once: a snapshot of thousands of VIPs must not compare every pair.
    std::unordered_map<net::IpAddr, net::Mac> neighbors;
    for (const auto& n : config.neighbors) neighbors.emplace(n.addr, n.mac);
    const auto mac_of = [&](const net::IpAddr& a, net::Mac& mac) {
        const auto it = neighbors.find(a);
        if (it == neighbors.end()) return false;
        mac = it->second;
        return true;
    };
    for (const auto& g : config.client_gateways) {
        const size_t i = g.is_v4() ? 0 : 1;
        s.has_client_gateway_[i] = mac_of(g, s.client_gateway_mac_[i]);
    }
    std::unordered_map<std::string_view, size_t> live_before;  // previous's live VIPs by name
    if (previous)
        for (size_t i = 0; i < previous->vips_.size(); ++i)
            if (!previous->vips_[i].removed) live_before.emplace(previous->vips_[i].name, i);

    for (const auto& vc : config.vips) {
        int found = -1;
        if (const auto it = live_before.find(vc.name);
            it != live_before.end() && same_service(previous->vips_[it->second], vc))
            found = static_cast<int>(it->second);
        if (found < 0) {
            if (s.vips_.size() >= kMaxVipSlots)
                return make_error(fmt::format("VIP {}: {} VIPs were created since start, the most one process holds; "
                                              "restart Sluice to compact",
                                              vc.name, kMaxVipSlots));
            found = static_cast<int>(s.vips_.size());
            s.vips_.emplace_back();
        }
        const auto vip_idx = static_cast<uint16_t>(found);
        VipEntry& v = s.vips_[vip_idx];
        const Maglev* reusable = previous && vip_idx < previous->vips_.size() && !previous->vips_[vip_idx].removed
                                     ? &previous->vips_[vip_idx].maglev
                                     : nullptr;
        std::vector<MaglevMember> old_members;
        if (reusable)
            for (uint16_t b : previous->vips_[vip_idx].backends) {
                const BackendEntry& be = previous->backends_[b];
                if (be.removed) continue;
                old_members.push_back({backend_id(be.addr, net::port_from_raw(be.port_raw)), be.state == BackendState::up && be.has_mac ? be.weight : 0});
            }
        v.name = vc.name;
        v.addr = vc.addr;
        v.port_raw = net::port_to_raw(vc.port);
        v.proto = vc.proto;
        v.mode = vc.mode;
        v.encap = vc.encap;
        v.gue_port_raw = net::port_to_raw(vc.gue_port);
        v.on_down = vc.on_down;
        v.persist_ms = vc.persist_ms;
        v.persist_len = vc.persist_mask ? vc.persist_mask : static_cast<uint8_t>(vc.addr.is_v4() ? 32 : 128);
        v.removed = false;
        // Backends of this VIP that left the config stay listed (as removed) after the current
        // ones, so a flow on them can still be resolved; Maglev never picks them.
        std::vector<uint16_t> gone;
        for (uint16_t b : v.backends) gone.push_back(b);
        v.backends.clear();
        std::vector<MaglevMember> members;
        for (const auto& bc : vc.backends) {
            const uint16_t port = bc.port ? bc.port : vc.port;
            int bi = -1;
            for (uint16_t b : gone)
                if (s.backends_[b].addr == bc.addr && s.backends_[b].port_raw == net::port_to_raw(port)) bi = b;
            if (bi < 0) {
                if (s.backends_.size() >= kMaxBackendSlots)
                    return make_error(fmt::format("backend {} of VIP {}: {} backend entries were created since start, "
                                                  "the most one process holds; restart Sluice to compact",
                                                  net::to_string(bc.addr, port), vc.name, kMaxBackendSlots));
                bi = static_cast<int>(s.backends_.size());
                s.backends_.emplace_back();
            }
            std::erase(gone, static_cast<uint16_t>(bi));
            BackendEntry& b = s.backends_[static_cast<size_t>(bi)];
            b.addr = bc.addr;
            b.port_raw = net::port_to_raw(port);
            b.vip = vip_idx;
            {
                const size_t alen = v.addr.is_v4() ? 4 : 16;
                net::CsumDelta to_b, to_v, pb, pv;
                to_b.change_bytes(v.addr.bytes.data(), b.addr.bytes.data(), alen);
                to_v.change_bytes(b.addr.bytes.data(), v.addr.bytes.data(), alen);
                pb.change16(v.port_raw, b.port_raw);
                pv.change16(b.port_raw, v.port_raw);
                b.ip_sum_to_backend = net::csum_fold64(to_b.sum + kTtlDecrementSum);
                b.ip_sum_to_vip = net::csum_fold64(to_v.sum + kTtlDecrementSum);
                b.l4_sum_to_backend = net::csum_fold64(to_b.sum + pb.sum);
                b.l4_sum_to_vip = net::csum_fold64(to_v.sum + pv.sum);
            }
            b.weight = bc.weight;
            b.state = bc.state;
            b.removed = false;
            const net::IpAddr& hop = next_hop(config, vc, bc);
            b.has_mac = mac_of(hop, b.mac);
            if (!b.has_mac && require_neighbors)
                return make_error(hop == bc.addr ? fmt::format("backend {} of VIP {} has no --neighbor entry",
                                                               net::to_string(bc.addr, port), vc.name)
                                                 : fmt::format("the tunnel gateway {} of VIP {} has no --neighbor entry",
                                                               net::to_string(hop), vc.name));
            v.backends.push_back(static_cast<uint16_t>(bi));
            // Only backends that are up and reachable take new flows.
            members.push_back({backend_id(bc.addr, port), b.state == BackendState::up && b.has_mac ? bc.weight : 0});
        }
        std::vector<MaglevMember> sorted_new = members, sorted_old = old_members;
        const auto by_id = [](const MaglevMember& a, const MaglevMember& b) { return a.id < b.id; };
        std::sort(sorted_new.begin(), sorted_new.end(), by_id);
        std::sort(sorted_old.begin(), sorted_old.end(), by_id);
        const uint32_t table_size = maglev_table_size(vc);
        const bool same = reusable && reusable->size() == table_size && sorted_new.size() == sorted_old.size() &&
                          std::equal(sorted_new.begin(), sorted_new.end(), sorted_old.begin(),
                                     [](const MaglevMember& a, const MaglevMember& b) {
                                         return a.id == b.id && a.weight == b.weight;
                                     }) &&
                          std::equal(members.begin(), members.end(), old_members.begin(), old_members.end(),
                                     [](const MaglevMember& a, const MaglevMember& b) { return a.id == b.id; });
        if (same) {
            v.maglev = *reusable;
        } else {
            auto m = Maglev::build(members, table_size);
            if (!m) return make_error(fmt::format("VIP {}: {}", vc.name, m.error()));
            v.maglev = std::move(*m);
        }
        for (uint16_t b : gone) v.backends.push_back(b);

        if (vc.addr.is_v4()) {
            const uint64_t key = v4_key(vc.addr.v4_be(), v.port_raw, static_cast<uint8_t>(vc.proto));
            size_t i = v4_slot(key) & (slots - 1);
            for (; s.index4_[i].key != 0; i = (i + 1) & (slots - 1))
                if (s.index4_[i].key == key) return make_error(fmt::format("VIP {} duplicates another VIP", vc.name));
            s.index4_[i] = Slot4{key, vip_idx};
        } else {
            const uint64_t lo = net::load_raw64(vc.addr.bytes.data()), hi = net::load_raw64(vc.addr.bytes.data() + 8);
            const uint32_t meta =
                static_cast<uint32_t>(vc.addr.family) | static_cast<uint32_t>(vc.proto) << 8 | 1u << 31;
            size_t i = slot_hash(lo, hi, meta, v.port_raw) & (slots - 1);
            for (; s.index_[i].meta != 0; i = (i + 1) & (slots - 1)) {
                const Slot& o = s.index_[i];
                if (o.key_lo == lo && o.key_hi == hi && o.meta == meta && o.port_raw == v.port_raw)
                    return make_error(fmt::format("VIP {} duplicates another VIP", vc.name));
            }
            s.index_[i] = Slot{lo, hi, meta, v.port_raw, vip_idx};
        }
        s.own_.add(vc.addr);
        s.vip_addrs_.add(vc.addr);
    }
    s.own_.seal();
    s.self_.seal();
    s.vip_addrs_.seal();
    for (auto& b : s.backends_) b.forwards = b.keeps_flows(s.vips_[b.vip].on_down) && b.has_mac;
    // Live nat backends by (address, port, protocol); one serving several nat VIPs is
    // ambiguous and left out: a reply of no flow could belong to any of them.
    for (size_t i = 0; i < s.backends_.size(); ++i) {
        const BackendEntry& b = s.backends_[i];
        const VipEntry& v = s.vips_[b.vip];
        if (b.removed || v.removed || v.mode != Mode::nat) continue;
        s.nat_backends_.push_back(NatBackend{b.addr, b.port_raw, static_cast<uint8_t>(v.proto), static_cast<uint16_t>(i)});
    }
    auto key_less = [](const NatBackend& a, const NatBackend& b) {
        return std::tie(a.addr.family, a.addr.bytes, a.port_raw, a.proto) <
               std::tie(b.addr.family, b.addr.bytes, b.port_raw, b.proto);
    };
    std::sort(s.nat_backends_.begin(), s.nat_backends_.end(), key_less);
    for (size_t i = 0; i + 1 < s.nat_backends_.size(); ++i)
        if (!key_less(s.nat_backends_[i], s.nat_backends_[i + 1]))
            s.nat_backends_[i].entry = s.nat_backends_[i + 1].entry = kNoBackendEntry;
    return s;
}

uint16_t Service::nat_backend(net::Family f, const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept {
    NatBackend k;
    k.addr.family = f;
    std::memcpy(k.addr.bytes.data(), addr, f == net::Family::v4 ? 4 : 16);
    k.port_raw = port_raw;
    k.proto = proto;
    const auto it = std::lower_bound(nat_backends_.begin(), nat_backends_.end(), k,
                                     [](const NatBackend& a, const NatBackend& b) {
                                         return std::tie(a.addr.family, a.addr.bytes, a.port_raw, a.proto) <
                                                std::tie(b.addr.family, b.addr.bytes, b.port_raw, b.proto);
                                     });
    if (it == nat_backends_.end() || it->addr != k.addr || it->port_raw != port_raw || it->proto != proto)
        return kNoBackendEntry;
    return it->entry;
}

uint16_t Service::find_vip6(const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept {
    const uint64_t lo = net::load_raw64(addr), hi = net::load_raw64(addr + 8);
    const uint32_t meta = static_cast<uint32_t>(net::Family::v6) | static_cast<uint32_t>(proto) << 8 | 1u << 31;
    const size_t mask = index_.size() - 1;
    for (size_t i = slot_hash(lo, hi, meta, port_raw) & mask;; i = (i + 1) & mask) {
        const Slot& s = index_[i];
        if (s.meta == 0) return kNoVip;
        if (s.key_lo == lo && s.key_hi == hi && s.meta == meta && s.port_raw == port_raw) return s.vip;
    }
}

void Service::AddrSet::add(const net::IpAddr& a) {
    filter |= uint64_t{1} << filter_bit(a.family, a.bytes.data());
    if (a.is_v4()) {
        v4.push_back(net::load_raw32(a.bytes.data()));
    } else {
        std::array<uint8_t, 16> b;
        std::memcpy(b.data(), a.bytes.data(), 16);
        v6.push_back(b);
    }
}

void Service::AddrSet::seal() {
    std::sort(v4.begin(), v4.end());
    v4.erase(std::unique(v4.begin(), v4.end()), v4.end());
    std::sort(v6.begin(), v6.end());
    v6.erase(std::unique(v6.begin(), v6.end()), v6.end());
}

bool Service::AddrSet::contains_slow(net::Family f, const uint8_t* addr) const noexcept {
    if (f == net::Family::v4) {
        return std::binary_search(v4.begin(), v4.end(), net::load_raw32(addr));
    }
    std::array<uint8_t, 16> b;
    std::memcpy(b.data(), addr, 16);
    return std::binary_search(v6.begin(), v6.end(), b);
}

bool Service::owns_address(net::Family f, const uint8_t* addr) const noexcept { return own_.contains(f, addr); }

bool Service::is_self_address(net::Family f, const uint8_t* addr) const noexcept { return self_.contains(f, addr); }

bool Service::is_vip_address(net::Family f, const uint8_t* addr) const noexcept { return vip_addrs_.contains(f, addr); }

}  // namespace sluice::lb
