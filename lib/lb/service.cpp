#include "lib/lb/service.hpp"

#include <cstring>

#include <fmt/format.h>

#include "lib/lb/flow_table.hpp"

namespace sluice::lb {

namespace {
void split(const uint8_t* addr, size_t n, uint64_t& lo, uint64_t& hi) {
    uint8_t b[16] = {};
    std::memcpy(b, addr, n);
    std::memcpy(&lo, b, 8);
    std::memcpy(&hi, b + 8, 8);
}
uint16_t to_raw(uint16_t port) { return static_cast<uint16_t>(port >> 8 | port << 8); }

// A backend's identity for Maglev: independent of configuration order and of the VIP.
uint64_t backend_id(const net::IpAddr& a, uint16_t port) {
    uint64_t lo, hi;
    split(a.bytes.data(), 16, lo, hi);
    return flow_mix(lo ^ flow_mix(hi ^ (static_cast<uint64_t>(port) << 8 | static_cast<uint8_t>(a.family))));
}
}  // namespace

uint64_t Service::slot_hash(uint64_t lo, uint64_t hi, uint32_t meta, uint16_t port) noexcept {
    return flow_mix(lo * 0x9E3779B97F4A7C15ULL ^ flow_mix(hi ^ (static_cast<uint64_t>(meta) << 16 | port)));
}

uint64_t maglev_flow_hash(net::Family f, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                          uint16_t dport_raw, uint8_t proto) noexcept {
    const uint64_t ports = static_cast<uint64_t>(sport_raw) | static_cast<uint64_t>(dport_raw) << 16 |
                           static_cast<uint64_t>(proto) << 32;
    if (f == net::Family::v4) {  // the same function with the upper address words known to be zero
        uint32_t s4, d4;
        std::memcpy(&s4, src, 4);
        std::memcpy(&d4, dst, 4);
        return flow_mix(flow_mix(s4 ^ 0x5851F42D4C957F2DULL) ^ flow_mix(d4) ^ flow_mix(ports));
    }
    uint64_t slo, shi, dlo, dhi;
    split(src, 16, slo, shi);
    split(dst, 16, dlo, dhi);
    return flow_mix(flow_mix(slo ^ 0x5851F42D4C957F2DULL) ^ flow_mix(shi + dlo) ^ flow_mix(dhi ^ ports));
}

Expected<Service> Service::build(const Config& config) {
    Service s;
    s.config_ = config;
    for (const auto& a : config.snat_addrs) (a.is_v4() ? s.snat4_ : s.snat6_).push_back(a);
    s.own_ = config.snat_addrs;
    s.own_.insert(s.own_.end(), config.self_addrs.begin(), config.self_addrs.end());

    size_t slots = 16;
    while (slots < config.vips.size() * 2) slots *= 2;
    s.index_.assign(slots, Slot{});
    s.index4_.assign(slots, Slot4{});

    for (const auto& vc : config.vips) {
        if (s.vips_.size() >= kNoVip) return make_error("too many VIPs");
        const auto vip_idx = static_cast<uint16_t>(s.vips_.size());
        VipEntry v;
        v.name = vc.name;
        v.addr = vc.addr;
        v.port_raw = to_raw(vc.port);
        v.proto = vc.proto;
        v.mode = vc.mode;
        std::vector<MaglevMember> members;
        for (const auto& bc : vc.backends) {
            BackendEntry b;
            b.addr = bc.addr;
            const uint16_t port = bc.port ? bc.port : vc.port;
            b.port_raw = to_raw(port);
            b.vip = vip_idx;
            b.weight = bc.weight;
            bool found = false;
            for (const auto& n : config.neighbors)
                if (n.addr == bc.addr) {
                    b.mac = n.mac;
                    found = true;
                }
            if (!found)
                return make_error(fmt::format("backend {} of VIP {} has no --neighbor entry",
                                              net::to_string(bc.addr, port), vc.name));
            if (s.backends_.size() >= 0xFFFF) return make_error("too many backends");
            v.backends.push_back(static_cast<uint16_t>(s.backends_.size()));
            members.push_back({backend_id(bc.addr, port), bc.weight});
            s.backends_.push_back(b);
        }
        auto m = Maglev::build(members, vc.table_size);
        if (!m) return make_error(fmt::format("VIP {}: {}", vc.name, m.error()));
        v.maglev = std::move(*m);

        if (vc.addr.is_v4()) {
            const uint64_t key = v4_key(vc.addr.v4_be(), v.port_raw, static_cast<uint8_t>(vc.proto));
            size_t i = v4_slot(key) & (slots - 1);
            for (; s.index4_[i].key != 0; i = (i + 1) & (slots - 1))
                if (s.index4_[i].key == key) return make_error(fmt::format("VIP {} duplicates another VIP", vc.name));
            s.index4_[i] = Slot4{key, vip_idx};
        } else {
            uint64_t lo, hi;
            split(vc.addr.bytes.data(), 16, lo, hi);
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
        s.own_.push_back(vc.addr);
        s.vips_.push_back(std::move(v));
    }
    return s;
}

uint16_t Service::find_vip6(const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept {
    uint64_t lo, hi;
    split(addr, 16, lo, hi);
    const uint32_t meta = static_cast<uint32_t>(net::Family::v6) | static_cast<uint32_t>(proto) << 8 | 1u << 31;
    const size_t mask = index_.size() - 1;
    for (size_t i = slot_hash(lo, hi, meta, port_raw) & mask;; i = (i + 1) & mask) {
        const Slot& s = index_[i];
        if (s.meta == 0) return kNoVip;
        if (s.key_lo == lo && s.key_hi == hi && s.meta == meta && s.port_raw == port_raw) return s.vip;
    }
}

bool Service::owns_address(net::Family f, const uint8_t* addr) const noexcept {
    const size_t n = f == net::Family::v4 ? 4 : 16;
    for (const auto& a : own_)
        if (a.family == f && std::memcmp(a.bytes.data(), addr, n) == 0) return true;
    return false;
}

bool Service::is_vip_address(net::Family f, const uint8_t* addr) const noexcept {
    const size_t n = f == net::Family::v4 ? 4 : 16;
    for (const auto& v : vips_)
        if (v.addr.family == f && std::memcmp(v.addr.bytes.data(), addr, n) == 0) return true;
    return false;
}

}  // namespace sluice::lb
