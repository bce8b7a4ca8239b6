// Counters: every packet Sluice does not forward is counted under a named reason.
//
// Each worker owns one WorkerCounters block (cache-line aligned, written only by its worker);
// readers (stats printing, JSON export) sum the blocks and accept slightly stale values.
// Thread contract: single writer (the owning worker); readers tolerate torn-free 64-bit reads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::lb {

#define SLUICE_DROP_REASONS(X)                                                              \
    X(runt)               /* frame shorter than an Ethernet header */                       \
    X(bad_vlan)           /* truncated or stacked 802.1Q tags */                            \
    X(foreign_vlan)       /* on a VLAN the arrival port does not serve (--client-vlan, --backend-vlan) */ \
    X(foreign_mac)        /* to another host's MAC, or broadcast/multicast other than ARP and ND */ \
    X(unknown_ethertype)                                                                    \
    X(truncated_arp)                                                                        \
    X(truncated_l3)                                                                         \
    X(bad_ip_version)                                                                       \
    X(bad_ihl)                                                                              \
    X(source_route)       /* IPv4 LSRR/SSRR: its checksum covers another destination */     \
    X(bad_ip_length)                                                                        \
    X(bad_ip_checksum)                                                                      \
    X(bad_fragment)       /* tiny first fragment or overlapping offset (RFC 1858) */      \
    X(fragment)           /* later fragment whose first one was not seen here (or not TCP/UDP) */ \
    X(bad_ext_header)                                                                       \
    X(truncated_l4)                                                                         \
    X(bad_l4_length)                                                                        \
    X(multi_segment)      /* chained mbufs are not handled by the data path */             \
    X(udp6_zero_checksum) /* RFC 8200 §8.1: IPv6 UDP must carry a checksum */              \
    X(ttl_expired)                                                                          \
    X(no_vip)             /* to a VIP's address on a port/protocol no VIP serves; not TCP/UDP/ICMP elsewhere */ \
    X(unsupported_l4)     /* to a VIP address with a protocol Sluice does not balance */  \
    X(icmp_unhandled)     /* ICMP/ICMPv6 Sluice neither answers nor translates */         \
    X(icmp_bad_quote)     /* ICMP error quoting a truncated or malformed header */        \
    X(icmp_no_flow)       /* ICMP error quoting a packet of no flow Sluice knows */      \
    X(no_backend)         /* no backend of the VIP is up with weight > 0 */                 \
    X(backend_down)       /* flow of a down backend, VIP policy on-down=drop */            \
    X(no_neighbor)        /* the backend's MAC is not known (yet) */                        \
    X(flow_table_full)    /* fullnat: the table is full of flows it must keep (dsr, nat: forwarded without state) */ \
    X(new_flow_limit)     /* fullnat over --new-flow-rate (dsr, nat: forwarded without state) */ \
    X(bad_tcp_flags)      /* a flag combination no connection uses (NULL, XMAS, SYN+FIN, ...) */ \
    X(tcp_no_flow)        /* TCP that can neither open nor resume a flow: a client's SYN-ACK, fullnat RST */ \
    X(own_source)         /* a client packet from one of Sluice's own addresses (VIP, SNAT, self): spoofed */ \
    X(snat_exhausted)     /* no free SNAT port whose reply lands on this worker */         \
    X(no_flow)            /* TCP/UDP to no VIP (taken for a reply) that matches no flow */ \
    X(redirect_loop)      /* a redirected packet that this worker does not own either */  \
    X(redirect_full)      /* the ring to the owning worker was full */                     \
    X(control_full)       /* the ring to the control core (kernel side) was full */         \
    X(for_self)           /* for Sluice's own addresses, and no exception path is set up */ \
    X(arp_ignored)        /* ARP that is not a request for one of Sluice's addresses */   \
    X(nd_ignored)         /* neighbour discovery not for Sluice's addresses, or invalid */ \
    X(vlan_no_room)       /* a VLAN tag to add and no room left in the buffer */            \
    X(tx_full)            /* the port's TX queue did not take the packet */                 \
    X(tunnel_too_big)     /* tunnel: IPv4 without DF too large once encapsulated (not fragmented) */ \
    X(no_headroom)        /* tunnel: no room before the packet for the outer header */      \
    X(bad_output)         /* sent to a port or worker that does not exist: a defect, never expected */

enum class Drop : uint8_t {
#define SLUICE_X(name) name,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
    count_
};
constexpr size_t kDropReasons = static_cast<size_t>(Drop::count_);
const char* to_string(Drop d) noexcept;

struct TrafficCounters {
    // Sent on its behalf: for a VIP, its clients' packets to the backends; for a backend,
    // those and its replies to the clients. Later fragments count with their datagram.
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t new_flows = 0;
    // TCP handshakes that failed on this backend: a SYN retransmitted before any answer, or
    // an RST answering the SYN. The control core's passive health check reads it.
    uint64_t handshake_failures = 0;
    // Gauges, backends only (a VIP's are the sum of its backends'): flows held now, as
    // ipvsadm's ActiveConn (established TCP) and InActConn (every other state: half-open,
    // closing, unconfirmed, UDP). Kept by clear-counters.
    uint64_t active_flows = 0;
    uint64_t inactive_flows = 0;
};

// The scalar members of WorkerCounters, in declaration order (checked below).
#define SLUICE_WORKER_SCALARS(X)                                                                       \
    X(rx) X(tx) X(forwarded) X(replies) X(arp_replies) X(nd_replies) X(echo_replies) X(redirected_out) \
    X(redirected_in) X(non_syn_miss) X(maglev_picks) X(flow_hits) X(rescheduled) X(to_control)         \
    X(icmp_forwarded) X(frag_tracked) X(frag_forwarded) X(frag_evictions) X(stateless_forwarded)          \
    X(stateless_replies) X(syn_retry_admitted) X(tunneled) X(tunnel_too_big_sent) X(persist_hits)             \
    X(persist_pins) X(persist_learnt) X(persist_evictions) X(persist_refused) X(persist_lost)            \
    X(sync_reports_lost) X(sync_installed) X(sync_updated) X(sync_removed) X(sync_conflicts)             \
    X(sync_install_refused)

struct alignas(64) WorkerCounters {
    uint64_t rx = 0;
    uint64_t tx = 0;
    uint64_t forwarded = 0;       // client -> backend
    uint64_t replies = 0;         // backend -> client (nat/fullnat)
    uint64_t arp_replies = 0;
    uint64_t nd_replies = 0;
    uint64_t echo_replies = 0;    // ICMP/ICMPv6 echo requests to a VIP answered
    uint64_t redirected_out = 0;  // handed to the owning worker
    uint64_t redirected_in = 0;
    uint64_t non_syn_miss = 0;    // TCP non-SYN forward packet with no flow: state was lost
    uint64_t maglev_picks = 0;
    uint64_t flow_hits = 0;
    uint64_t rescheduled = 0;     // flows moved off a backend that went down or was removed
    uint64_t to_control = 0;      // exception path: handed to the control core (kernel)
    uint64_t icmp_forwarded = 0;  // ICMP errors about a flow, translated to its backend or client
    uint64_t frag_tracked = 0;    // first fragments whose outcome later fragments will follow
    uint64_t frag_forwarded = 0;  // later fragments that followed their first one
    uint64_t frag_evictions = 0;  // tracked datagrams forgotten early (fragment table full)
    // dsr/nat client packets forwarded by Maglev with no flow entry: the table was full of
    // flows it must keep, the packet was over --new-flow-rate, or an RST of no flow.
    uint64_t stateless_forwarded = 0;
    uint64_t stateless_replies = 0;  // nat replies of no flow, rewritten back to their VIP
    uint64_t syn_retry_admitted = 0;  // fullnat SYNs over --new-flow-rate admitted as retransmissions
    uint64_t tunneled = 0;            // packets sent encapsulated to tunnel backends
    uint64_t tunnel_too_big_sent = 0; // ICMP fragmentation-needed / too-big sent for tunnel VIPs
    // Persistence (persist=): new connections a live entry decided; entries this worker made
    // or re-pinned (Maglev's pick for a client network without a usable entry); entries other
    // workers made, installed here; live entries evicted for a newcomer of their bucket;
    // entries refused (every entry of the bucket outlives the newcomer); and reports to the
    // other workers lost to a full ring.
    uint64_t persist_hits = 0;
    uint64_t persist_pins = 0;
    uint64_t persist_learnt = 0;
    uint64_t persist_evictions = 0;
    uint64_t persist_refused = 0;
    uint64_t persist_lost = 0;
    // Replication (--sync-id): session reports lost to a full ring; peers' sessions installed,
    // updated and removed here; peers' sessions ignored because this worker holds its own flow
    // of that tuple; and installs refused (the table full of flows it must keep, or a VIP,
    // backend or SNAT address this snapshot does not have).
    uint64_t sync_reports_lost = 0;
    uint64_t sync_installed = 0;
    uint64_t sync_updated = 0;
    uint64_t sync_removed = 0;
    uint64_t sync_conflicts = 0;
    uint64_t sync_install_refused = 0;
    std::array<uint64_t, kDropReasons> drops{};
    // Indexed like the service's VIPs and backend entries; capacity reserved for the whole
    // index space up front, so growing them never moves them under a reader.
    std::vector<TrafficCounters> vips;
    std::vector<TrafficCounters> backends;

    void drop(Drop d) noexcept { ++drops[static_cast<size_t>(d)]; }
    // Calls f(name, value) for every scalar counter above, in declaration order: the one list
    // that totals, clearing and every output (JSON, the control socket, telemetry) share.
    template <class F>
    void for_each_scalar(F&& f) const {
#define SLUICE_X(name) f(#name, name);
        SLUICE_WORKER_SCALARS(SLUICE_X)
#undef SLUICE_X
    }
    uint64_t total_drops() const noexcept {
        uint64_t s = 0;
        for (auto v : drops) s += v;
        return s;
    }
    // Adds another worker's counters into this one (for totals).
    void add(const WorkerCounters& o);
    // Zeroes every counter but the handshake failures (monotonic for passive detection),
    // keeping the per-VIP and per-backend sizes.
    void clear() noexcept;
};
// Every scalar counter is in SLUICE_WORKER_SCALARS: they are the uint64_t members before drops.
#define SLUICE_X(name) +1
static_assert(offsetof(WorkerCounters, drops) == sizeof(uint64_t) * (0 SLUICE_WORKER_SCALARS(SLUICE_X)));
#undef SLUICE_X

}  // namespace sluice::lb
