// Service: the configuration compiled into the form the data path reads.
//
// Built on the control plane from a validated Config: VIPs with their Maglev tables, backend
// entries with states and next-hop MACs, SNAT and own addresses, and a VIP lookup index keyed
// by (address, port, protocol). Backend entries are per (VIP, backend) pair so counters are per
// VIP and a backend may serve several VIPs.
//
// A Service is one snapshot of the service settings. Flow records and counters refer to VIPs
// and backends by index, so every snapshot built from a previous one keeps the indices of the
// VIPs (same name, address, port, protocol and mode) and backends (same VIP, address and port)
// it shares with it; new ones take fresh indices, and ones that left stay behind as `removed`
// entries (in no lookup index and no Maglev table) so records that still name them resolve to
// something harmless until the workers have flushed them. Indices are never reused, so a
// process accepts kMaxVipSlots VIPs and kMaxBackendSlots backend entries over its lifetime.
// Thread contract: immutable after build(); shared read-only by all workers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/common/hash_mix.hpp"
#include "lib/lb/config.hpp"
#include "lib/lb/limits.hpp"
#include "lib/lb/maglev.hpp"
#include "lib/net/addr.hpp"

namespace sluice::lb {

// Index space of VIPs and backend entries over a process's lifetime (see above): kMaxVipSlots
// and kMaxBackendSlots, in lib/lb/limits.hpp.
static_assert(kMaxBackendSlots <= Maglev::kMaxMembers);
static_assert(kMaxTableSize <= Maglev::kMaxSize);

struct BackendEntry {
    net::IpAddr addr;
    uint16_t port_raw = 0;  // network order
    uint16_t vip = 0;
    uint32_t weight = 0;    // configured weight (the Maglev weight is 0 unless state is up)
    BackendState state = BackendState::up;
    bool removed = false;   // left the configuration: takes no flows, its flows move
    bool has_mac = false;   // next hop known (static or resolved); packets wait for it
    // keeps_flows(its VIP's policy) && has_mac, fixed for the snapshot: what a packet of one
    // of its established flows checks before it is forwarded the short way.
    bool forwards = false;
    net::Mac mac;
    // The nat rewrite between this backend and its VIP as folded RFC 1624 sums (~old + new
    // over the changed words), fixed for the entry's lifetime so the data path does not sum
    // them per packet. to_backend: destination VIP -> backend (client packets); to_vip: source
    // backend -> VIP (replies). ip: the IPv4 header's (address, and TTL minus one); l4: the
    // transport checksum's (address in the pseudo header, and port).
    uint16_t ip_sum_to_backend = 0, l4_sum_to_backend = 0, ip_sum_to_vip = 0, l4_sum_to_vip = 0;
    // May this backend keep forwarding the flows it already has, under the VIP's policy?
    bool keeps_flows(DownPolicy p) const noexcept {
        if (removed) return false;
        return state == BackendState::up || state == BackendState::draining || p == DownPolicy::keep;
    }
    // May a persistence entry keep sending its client here? Up or draining (weight 0 or state
    // draining: a drained backend keeps its persistent clients until their entries expire, as
    // it keeps its flows), in the configuration, and reachable. Down, disabled or removed
    // releases them: their next new connection is decided again.
    bool keeps_clients() const noexcept {
        return !removed && has_mac && (state == BackendState::up || state == BackendState::draining);
    }
};

struct VipEntry {
    std::string name;
    net::IpAddr addr;
    uint16_t port_raw = 0;
    Proto proto = Proto::tcp;
    Mode mode = Mode::nat;
    Encap encap = Encap::ipip;  // tunnel
    uint16_t gue_port_raw = 0;  // tunnel with encap=gue, network order
    DownPolicy on_down = DownPolicy::reschedule;
    // Persistence (persist=, persist-mask=): 0 = off; the client network's prefix length
    // (32 or 128 for the whole address).
    uint32_t persist_ms = 0;
    uint8_t persist_len = 0;
    bool removed = false;            // left the configuration (kept so indices stay stable)
    std::vector<uint16_t> backends;  // backend entry indices, in the order Maglev was built with
    Maglev maglev;
};

class Service {
public:
    static constexpr uint16_t kNoVip = 0xFFFF;
    static constexpr uint16_t kNoBackendEntry = 0xFFFF;

    // Builds a snapshot of config. With `previous`, indices of the VIPs and backends both share
    // are kept, and the Maglev table of a VIP whose members and weights did not change is
    // reused instead of rebuilt. Errors: index space exhausted, a backend with no next hop
    // while `require_neighbors`, Maglev errors.
    static Expected<Service> build(const Config& config, const Service* previous = nullptr,
                                   bool require_neighbors = true);
    // Index of the backend entry (vip, addr, port) or -1; of the VIP named `name` or -1.
    int find_backend(uint16_t vip, const net::IpAddr& addr, uint16_t port) const noexcept;
    int find_vip_by_name(std::string_view name) const noexcept;

    // VIP index for a packet's (destination address, destination port, protocol), or kNoVip.
    // addr points at 4 or 16 bytes in network order.
    uint16_t find_vip(net::Family f, const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept {
        if (f == net::Family::v4) {
            // IPv4, the hot case: the whole key is one word, one multiply finds its slot.
            return find_vip4(v4_key(net::load_raw32(addr), port_raw, proto));
        }
        return find_vip6(addr, port_raw, proto);
    }
    // The IPv4 lookup in two steps, for callers that remember the last key they looked up
    // (packets of a burst mostly go to few VIPs).
    static uint64_t v4_key(uint32_t addr_raw, uint16_t port_raw, uint8_t proto) noexcept {
        return uint64_t{addr_raw} | uint64_t{port_raw} << 32 | uint64_t{proto} << 48 | uint64_t{1} << 56;
    }
    uint16_t find_vip4(uint64_t key) const noexcept {
        const size_t mask = index4_.size() - 1;
        for (size_t i = v4_slot(key) & mask;; i = (i + 1) & mask) {
            const Slot4& s = index4_[i];
            if (s.key == key) return s.vip;
            if (s.key == 0) return kNoVip;
        }
    }
    // True if the address is one Sluice answers ARP/ND for (VIPs, SNAT, self addresses).
    bool owns_address(net::Family f, const uint8_t* addr) const noexcept;
    // True if the address is one of Sluice's own (--self): traffic for its kernel side.
    bool is_self_address(net::Family f, const uint8_t* addr) const noexcept;
    // The backend entry of the one live nat VIP whose backend is (address, port, protocol):
    // where a nat reply that matches no flow belongs. kNoBackendEntry if none or several.
    uint16_t nat_backend(net::Family f, const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept;
    // True if the address is a VIP address (any port/protocol).
    bool is_vip_address(net::Family f, const uint8_t* addr) const noexcept;

    const std::vector<VipEntry>& vips() const noexcept { return vips_; }
    const std::vector<BackendEntry>& backends() const noexcept { return backends_; }
    // The SNAT addresses of a family: this instance's (the first snat_own(f)), then those its
    // replication peers own (--sync-peer snat=), which only their replicated sessions use.
    const std::vector<net::IpAddr>& snat(net::Family f) const noexcept { return f == net::Family::v4 ? snat4_ : snat6_; }
    size_t snat_own(net::Family f) const noexcept { return snat_own_[f == net::Family::v4 ? 0 : 1]; }
    // The MAC of the client side's router of family f (--client-gateway), or null if there is
    // none or it is not resolved yet: where nat answers of flows this instance never saw go.
    const net::Mac* client_gateway(net::Family f) const noexcept {
        const size_t i = f == net::Family::v4 ? 0 : 1;
        return has_client_gateway_[i] ? &client_gateway_mac_[i] : nullptr;
    }
    // The outer source of tunnel packets of family f (the rules require it where it is used).
    const net::IpAddr& tunnel_source(net::Family f) const noexcept {
        return f == net::Family::v4 ? tunnel_src4_ : tunnel_src6_;
    }

private:
    struct Slot4 {
        uint64_t key = 0;  // v4_key(); 0 = empty
        uint16_t vip = kNoVip;
    };
    static size_t v4_slot(uint64_t key) noexcept { return static_cast<size_t>((key * kGoldenRatio64) >> 40); }
    uint16_t find_vip6(const uint8_t* addr, uint16_t port_raw, uint8_t proto) const noexcept;

    struct Slot {
        uint64_t key_lo = 0, key_hi = 0;  // address bytes
        uint32_t meta = 0;                // family | proto << 8 | used << 31
        uint16_t port_raw = 0;
        uint16_t vip = kNoVip;
    };
    static uint64_t slot_hash(uint64_t lo, uint64_t hi, uint32_t meta, uint16_t port) noexcept;

    std::vector<VipEntry> vips_;
    std::vector<BackendEntry> backends_;
    // Sets of addresses, sorted for binary search: a snapshot may hold thousands of VIPs.
    struct AddrSet {
        std::vector<uint32_t> v4;                  // raw (network order) words
        std::vector<std::array<uint8_t, 16>> v6;
        // One bit per address (a few bits of its last byte): most addresses tested are not
        // in the set, and one AND says so without the search (every new flow asks).
        uint64_t filter = 0;
        void add(const net::IpAddr& a);
        void seal();  // sorts and removes duplicates; call before contains()
        static unsigned filter_bit(net::Family f, const uint8_t* addr) noexcept {
            return addr[f == net::Family::v4 ? 3 : 15] & 63;
        }
        bool contains(net::Family f, const uint8_t* addr) const noexcept {
            if (!((filter >> filter_bit(f, addr)) & 1)) return false;
            return contains_slow(f, addr);
        }
        bool contains_slow(net::Family f, const uint8_t* addr) const noexcept;
    };
    std::vector<net::IpAddr> snat4_, snat6_;
    size_t snat_own_[2] = {0, 0};
    net::IpAddr tunnel_src4_, tunnel_src6_;
    AddrSet own_;   // SNAT, self and VIP addresses
    AddrSet self_;
    AddrSet vip_addrs_;
    std::vector<Slot4> index4_;  // IPv4 VIPs: open addressing, power-of-two size, load <= 50%
    std::vector<Slot> index_;    // IPv6 VIPs: the same
    struct NatBackend {
        net::IpAddr addr;
        uint16_t port_raw = 0;
        uint8_t proto = 0;
        uint16_t entry = kNoBackendEntry;
    };
    std::vector<NatBackend> nat_backends_;  // sorted by (addr, port, proto)
    net::Mac client_gateway_mac_[2];        // [v4, v6]
    bool has_client_gateway_[2] = {false, false};
};

// The hash Maglev is indexed with: a fixed function of the flow's 5-tuple, so every instance
// and every worker picks the same backend for the same flow.
uint64_t maglev_flow_hash(net::Family f, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw,
                          uint16_t dport_raw, uint8_t proto) noexcept;

// The hash Maglev is indexed with for a persistent VIP's client that has no entry: a fixed
// function of the client's network (its address masked to prefix_len bits), the VIP's
// address, port and protocol, and the prefix length, never of the client's port. Unkeyed like
// maglev_flow_hash, so every worker and every instance of a tier gives a new client network the
// same backend without talking to each other.
uint64_t persist_hash(net::Family f, const uint8_t* client_net, const uint8_t* vip, uint16_t vport_raw, uint8_t proto,
                      uint8_t prefix_len) noexcept;
// addr (4 or 16 bytes) masked to its first prefix_len bits, into out (16 bytes, zero-filled
// past the address).
void mask_address(net::Family f, const uint8_t* addr, uint8_t prefix_len, uint8_t* out) noexcept;

}  // namespace sluice::lb
