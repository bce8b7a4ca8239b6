// The worker's packet logic: classify, look up or create the flow, rewrite, decide the port.
//
// Free of DPDK (glb-director style): it works on byte buffers described by PacketRef, so the
// same code runs under the sluice binary, the replay harness and the unit tests. The DPDK
// glue (drivers/dpdk/worker) only moves mbufs in and out.
// Per burst it parses every packet and prefetches the flow-table buckets before looking any
// up, so the table's cache misses overlap.
// Thread contract: one Dataplane per worker, used only by that worker. The Service it reads
// is immutable and shared; the worker switches to a newer one with set_service() between
// bursts (the caller keeps it alive until the worker has moved on: RCU in the binary).
// Defined by concern: dataplane.cpp (the burst: classify, forward, reply), dp_frame.cpp (whose
// frame, VLAN tags), dp_stateless.cpp (forwarding without a flow entry), dp_fragments.cpp,
// dp_icmp_error.cpp (ICMP errors about a flow), dp_local_reply.cpp (echo, ARP, ND),
// dp_flow_log.cpp (with FlowSampler) and dp_upkeep.cpp (between bursts: expiry, flushes,
// explain); what they share is in dataplane_internal.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/common/spsc_ring.hpp"
#include "lib/lb/counters.hpp"
#include "lib/lb/flow_hash.hpp"
#include "lib/lb/flow_log.hpp"
#include "lib/lb/flow_sampler.hpp"
#include "lib/lb/flow_table.hpp"
#include "lib/net/wire.hpp"
#include "lib/lb/frag_table.hpp"
#include "lib/lb/persist_table.hpp"
#include "lib/lb/service.hpp"
#include "lib/lb/token_bucket.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/toeplitz.hpp"

namespace sluice::lb {

// A flow-table key as words: one or two for IPv4, three for IPv6. Pass 1 of process() only
// gathers keys; the keyed hashes are computed in a loop of their own, where the AES rounds of
// consecutive packets overlap instead of each waiting behind the parsing of the next.
struct FlowKey {
    uint64_t w[3] = {};
    uint8_t words = 0;  // 0: no flow lookup
    uint64_t hash(const KeyedHash& h) const noexcept {
        return words == 1 ? h(w[0]) : words == 2 ? h(w[0], w[1]) : h(w[0], w[1], w[2]);
    }
    // hash() with h's implementation known (I == h.impl()).
    template <KeyedHash::Impl I>
    [[gnu::always_inline]] uint64_t hash(const KeyedHash& h) const noexcept {
        return words == 1 ? h.with<I>(w[0]) : words == 2 ? h.with<I>(w[0], w[1]) : h.with<I>(w[0], w[1], w[2]);
    }
};

// What the worker must do with a packet after process().
// control: for Sluice's own kernel side (the exception path): replies to its probes, ARP and
// ND answers, ICMP for its own addresses.
enum class Verdict : uint8_t { tx, drop, redirect, control };

struct PacketRef {
    uint8_t* data = nullptr;
    uint32_t len = 0;         // frame length; process() may change it (ND replies)
    uint16_t cap = 0;         // bytes writable from data (length + tailroom)
    uint16_t headroom = 0;    // bytes writable before data (a tunnel's outer header goes there)
    uint16_t in_port = 0;
    bool redirected = false;  // handed over by another worker: never redirect again
    bool ip_csum_good = false;  // the NIC validated the IPv4 header checksum
    // Results (packed after the inputs: 24 bytes per packet).
    Verdict verdict = Verdict::drop;
    Drop reason = Drop::runt;
    uint16_t out = 0;         // TX port, or the worker to redirect to
};
static_assert(sizeof(PacketRef) == 24);

// The restart-only settings the data path reads, and nothing else of the configuration.
struct DataPathSettings {
    Timeouts timeouts;
    uint16_t snat_port_min = 1024;
    uint16_t snat_port_max = 65535;
    uint32_t new_flow_rate = 0;  // new flows per second per worker; 0 = no limit
    uint32_t tunnel_mtu = 1500;  // largest encapsulated packet (IP header to payload's end)
    uint32_t persist_capacity = 1u << 16;  // persistence entries per worker
    bool sync = false;  // replication: report sessions and persistence entries to the control core
};

// A persistence decision one worker reports to the others (through the control core): the
// entry as it stands after the pin or refresh.
using PersistRing = SpscRing<PersistEntry>;

// Replication of fullnat sessions (the control core sends them to the tier's peers:
// lib/control/sync_agent.hpp). A worker reports a session when it is confirmed (established,
// or a UDP flow the backend answered) and its later state changes (`up`), and its end (`down`);
// the control core installs the sessions peers report the same way (Dataplane::learn_sessions).
// Indices are the worker's snapshot's (stable across snapshots of one lineage).
struct SessionReport {
    enum class Kind : uint8_t { up, down };
    Kind kind = Kind::up;
    uint8_t addr_len = 4;  // 4 or 16: the family
    uint8_t proto = 6;
    FlowState state = FlowState::tcp_established;
    bool replied = false;
    bool fin_client = false;
    bool fin_backend = false;
    uint8_t snat_idx = 0;  // in Service::snat(family)
    uint16_t client_port_raw = 0;
    uint16_t snat_port_raw = 0;
    uint16_t vip = 0;
    uint16_t backend = 0;
    uint32_t idle_ms = 0;  // since the session's last packet
    uint8_t client[16] = {};
};
using SessionRing = SpscRing<SessionReport>;
DataPathSettings data_path_settings(const ProcessConfig& config);

// Where a worker sits: its index, its peers, and the ports' identity; what it is set to do.
struct WorkerEnv {
    uint16_t worker_id = 0;
    uint16_t nb_workers = 1;
    uint16_t client_port = 0;
    uint16_t backend_port = 0;
    // 802.1Q VLAN of each side; 0 = untagged. The kernel side of a port (the exception path)
    // lives on its side's VLAN, untagged in the kernel; on a one-arm port, on the backend's.
    uint16_t client_vlan = 0;
    uint16_t backend_vlan = 0;
    std::vector<net::Mac> port_macs;  // indexed by port id
    net::Reta reta = net::Reta::round_robin(1);
    bool exception_path = false;  // a kernel side exists: Verdict::control is allowed
    // The secret key of the flow and fragment tables' hash (one per process: HashKey::random).
    HashKey hash_key;
    DataPathSettings settings;
};

// Fills env's settings and its client and backend port from the configuration, or from the
// defaults (client side port 0; backend side port 1 when there are two ports, else the client
// port: one-arm). The error names both options when either port does not exist.
Status configure_worker_env(const ProcessConfig& config, uint16_t nb_ports, WorkerEnv& env);

class Dataplane {
public:
    static constexpr uint32_t kMaxBurst = 64;

    Dataplane(std::shared_ptr<const Service> service, const WorkerEnv& env, uint32_t flow_capacity);

    // Processes up to kMaxBurst packets; sets each PacketRef's verdict. Counts everything.
    void process(PacketRef* pkts, uint32_t n, uint32_t now_ms) noexcept;
    // Frees flows idle past their timeout, examining at most `budget` entries; also advances a
    // pending flush by `budget` records.
    void expire(uint32_t now_ms, uint32_t budget) noexcept;

    // Switches to another snapshot of the same service (indices compatible: built from this
    // one's lineage by Service::build(config, previous)). Call between bursts.
    void set_service(const Service* s);
    // Forgets the flows of every backend the current snapshot marks removed: done
    // incrementally by expire(), a budget at a time, so a large table never stalls the worker.
    // Judged at sweep time, so a backend added back meanwhile keeps its new flows.
    void flush_removed() noexcept;
    // The flows' flush (the persistence entries of removed backends are swept alongside, at
    // their own pace: a lookup ignores them meanwhile).
    bool flush_pending() const noexcept { return flushing_; }

    // Where a flow of this tuple goes and why, without changing anything (sluicectl explain).
    struct Explanation {
        // persist: no flow, a live persistence entry of the client's network decides.
        enum class How : uint8_t { flow_hit, maglev, no_vip, no_backend, persist } how = How::no_vip;
        uint16_t vip = Service::kNoVip;
        uint16_t backend = 0;  // backend entry index (flow_hit, maglev, persist)
        bool would_reschedule = false;  // flow_hit on a backend that no longer keeps flows
        bool no_neighbor = false;       // flow_hit on a backend whose MAC is unknown (dropped)
        // A persistent VIP (maglev, persist): the client network's prefix length; persist: the
        // entry's time left; maglev: the pick was by the client network, and an entry exists
        // whose backend no longer keeps clients (released_from: its backend) or none does.
        uint8_t persist_len = 0;
        bool released = false;
        uint16_t released_from = 0;
        uint32_t persist_left_ms = 0;
    };
    // Samples 1 new flow in one_in (0: off) into the flow log; events go to `ring` (owned by
    // the caller, outliving the Dataplane). Lines lost to a full ring are counted.
    void enable_flow_log(uint32_t one_in, FlowLogRing* ring) { flow_log_.enable(one_in, ring); }
    uint64_t flow_log_lost() const noexcept { return flow_log_.lost(); }

    Explanation explain(net::Family f, const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw,
                        uint8_t proto, uint32_t now_ms) const noexcept;

    // Persistence between workers. The worker's reports of the entries it makes or refreshes
    // (only with several workers; the control core pops them: lib/control/workers.hpp), and
    // entries reported by the others, installed between bursts (worker's thread).
    PersistRing* persist_reports() const noexcept { return persist_reports_.get(); }
    void learn_persist(const PersistEntry* entries, size_t n, uint32_t now_ms) noexcept;
    // The live entries of VIP vip, appended to out up to its capacity (no allocation: the
    // caller reserves), each with expiry_ms holding its time left; returns how many there were
    // in all. Worker's thread, between bursts.
    size_t list_persist(uint16_t vip, uint32_t now_ms, std::vector<PersistEntry>& out) const noexcept;
    const PersistTable& persist_table() const noexcept { return *persist_; }

    // Replication (with DataPathSettings::sync; worker's thread unless said otherwise). The
    // worker's reports of its fullnat sessions (null without sync; the control core pops them).
    SessionRing* session_reports() const noexcept { return session_reports_.get(); }
    // Installs sessions peers reported (`up`: added, or updated if learnt before; a session
    // this worker made itself wins) and removes learnt ones (`down`). Counted.
    void learn_sessions(const SessionReport* s, size_t n, uint32_t now_ms) noexcept;
    // The live fullnat sessions among records [cursor, cursor + budget) of the family's table,
    // reported ones (mine) and, with `learnt`, installed ones too, appended to `out` up to its
    // capacity (the caller reserves). Returns the next cursor; past capacity() the walk is done.
    uint32_t walk_sessions(bool v6, uint32_t cursor, uint32_t budget, bool learnt, uint32_t now_ms,
                           std::vector<SessionReport>& out) const noexcept;
    // Every live persistence entry, up to out's capacity.
    void walk_persist(uint32_t now_ms, std::vector<PersistEntry>& out) const noexcept;

    WorkerCounters& counters() noexcept { return counters_; }
    const WorkerCounters& counters() const noexcept { return counters_; }
    const FlowTable<4>& flows4() const noexcept { return *flows4_; }
    const FlowTable<16>& flows6() const noexcept { return *flows6_; }
    const Service& service() const noexcept { return *service_; }

    // The worker that owns a nat flow: Toeplitz over the client's address and port, which both
    // directions carry (source on the way in, destination on the way back), so a reply that
    // RSS put on another worker's queue is handed to the owner. Including the port spreads the
    // many flows of one big client (a NAT gateway) over all workers.
    uint16_t nat_owner(const uint8_t* client_addr, size_t addr_len, uint16_t client_port_raw) const noexcept;
    // The worker whose queue the NIC's RSS gives this 4-tuple (len 4 or 16). Reads only what
    // is fixed at construction: any thread may ask.
    uint16_t rss_queue(const uint8_t* src, const uint8_t* dst, size_t len, uint16_t sport_raw,
                       uint16_t dport_raw) const noexcept {
        if (env_.nb_workers <= 1) return env_.worker_id;
        return env_.reta.queue(toeplitz_.hash_tuple(src, dst, len, sport_raw, dport_raw));
    }

private:
    // What pass 1 of process() learnt about a TCP/UDP packet: its VIP (or kNoVip for a
    // possible reply) and its flow-table key, hashed in a loop of its own after pass 1.
    struct Lookup {
        uint16_t vip = Service::kNoVip;
        // A client packet to a VIP that pass 3 sends straight to forward(): TCP or UDP, not a
        // fragment, nothing about it to drop before the flow lookup.
        bool to_vip = false;
        uint32_t bucket = 0;  // the hash's primary bucket in the flow table (prefetched)
        uint64_t hash = 0;    // the key's keyed hash (set after pass 1)
        FlowKey key;          // key.words == 0: no flow lookup needed
    };
    // The fast path's counts over a burst, kept in registers (the counters live in memory that
    // every store into a packet may alias): flow hits, which are also forwarded packets, and
    // the packets and bytes of the current run of packets to one VIP.
    struct BurstTally {
        uint32_t hits = 0;
        uint16_t vip = Service::kNoVip;
        uint32_t vip_packets = 0;
        uint64_t vip_bytes = 0;
        void hit(uint16_t v, uint32_t len, WorkerCounters& c) noexcept {
            if (v != vip) {
                flush_vip(c);
                vip = v;
            }
            ++hits;
            ++vip_packets;
            vip_bytes += len;
        }
        void flush_vip(WorkerCounters& c) noexcept {
            if (vip_packets == 0) return;
            c.vips[vip].packets += vip_packets;
            c.vips[vip].bytes += vip_bytes;
            vip_packets = 0;
            vip_bytes = 0;
        }
        void flush(WorkerCounters& c) noexcept {
            flush_vip(c);
            c.flow_hits += hits;
            c.forwarded += hits;
            hits = 0;
        }
    };
    // The last IPv4 VIP key a burst looked up and its answer (0: none yet).
    struct VipMemo {
        uint64_t key4 = 0;
        uint16_t vip4 = Service::kNoVip;
    };

    // Pass 2 of process(): the keys' hashes and their buckets' prefetches (I == hash_.impl()).
    template <KeyedHash::Impl I>
    [[gnu::always_inline]] inline void hash_keys(const net::ParsedPacket* pp, Lookup* lk, uint32_t n) noexcept;
    template <size_t A>
    FlowTable<A>& table() noexcept;
    template <size_t A>
    const FlowTable<A>& table() const noexcept;
    // kPlain: pp comes from the fast parser (IPv4 TCP or UDP, not a fragment).
    template <size_t A, bool kPlain = false>
    [[gnu::always_inline]] inline void classify(const PacketRef& p, const net::ParsedPacket& pp, Lookup& lk,
                                                VipMemo& memo) noexcept;
    // Inline into the burst loop: the common case must not pay a call per packet.
    template <size_t A>
    [[gnu::always_inline]] inline void handle_ip(PacketRef& p, const net::ParsedPacket& pp, const Lookup& lk,
                                                 uint32_t now_ms) noexcept;
    template <size_t A>
    [[gnu::noinline]] void handle_other(PacketRef& p, const net::ParsedPacket& pp, const Lookup& lk,
                                        uint32_t now_ms) noexcept;
    template <size_t A>
    [[gnu::always_inline]] inline void forward(PacketRef& p, const net::ParsedPacket& pp, uint16_t vip, uint64_t h_fwd,
                                               uint32_t bucket, uint32_t now_ms, BurstTally& tally) noexcept;
    template <size_t A>
    [[gnu::noinline]] void forward_general(PacketRef& p, const net::ParsedPacket& pp, uint16_t vip, uint64_t h_fwd,
                                           uint32_t ref, uint32_t now_ms) noexcept;
    template <size_t A>
    [[gnu::always_inline]] inline void emit_forward(PacketRef& p, const net::ParsedPacket& pp, const VipEntry& vip,
                                                    const FlowRecord<A>& rec, const BackendEntry& be) noexcept;
    template <size_t A>
    void reply(PacketRef& p, const net::ParsedPacket& pp, uint64_t h_rev, uint32_t now_ms) noexcept;
    // A client packet whose flow the table cannot hold (full of flows it must keep, or over
    // --new-flow-rate): dsr and nat forward it to Maglev's pick without state; fullnat, whose
    // translation cannot be recomputed, drops it as `reason`.
    // Tunnel VIPs (dp_tunnel.cpp): the packet wrapped for its backend and sent; or, too large
    // once wrapped, answered with ICMP too-big (or dropped: IPv4 without DF).
    template <size_t A>
    [[gnu::noinline]] void emit_tunnel(PacketRef& p, const net::ParsedPacket& pp, const VipEntry& vip,
                                       const BackendEntry& be) noexcept;
    template <size_t A>
    void tunnel_too_big(PacketRef& p, const net::ParsedPacket& pp, uint32_t outer_len) noexcept;
    template <size_t A>
    [[gnu::noinline]] void forward_stateless(PacketRef& p, const net::ParsedPacket& pp, uint16_t vip_idx, uint16_t be_idx,
                           Drop reason) noexcept;
    // A nat reply that matches no flow: rewritten back to its VIP when a ClientMac hint for its
    // client's address and port exists and its backend serves exactly one nat VIP; otherwise
    // dropped as no_flow.
    template <size_t A>
    void reply_stateless(PacketRef& p, const net::ParsedPacket& pp) noexcept;
    // Clients (address, port) of nat packets forwarded without state or picked up unconfirmed,
    // and the MAC they came from: where the backend's answers go. Direct-mapped and keyed like the flow table; an
    // entry is a hint, overwritten freely (a reply that lost its hint is dropped as no_flow).
    template <size_t A>
    struct ClientMac {
        uint8_t addr[A];
        uint16_t port_raw;
        uint8_t mac[6];
        bool used;
    };
    static constexpr uint32_t kClientMacs = 16384;
    template <size_t A>
    ClientMac<A>& client_mac_slot(const uint8_t* addr, uint16_t port_raw) noexcept;
    template <size_t A>
    [[gnu::noinline]] void remember_client(const PacketRef& p, const net::ParsedPacket& pp) noexcept;
    template <size_t A>
    bool pick_snat(const BackendEntry& b, uint8_t proto, uint32_t now_ms, uint8_t& idx, uint16_t& port_raw) noexcept;
    template <size_t A>
    void remove_flow(uint32_t id, FlowEvent::Why why) noexcept;
    // The backends' flow gauges (TrafficCounters::active_flows, inactive_flows) follow every
    // flow: set_flow_state() instead of the table's set_state(), flow_gone() on each removal.
    template <size_t A>
    void set_flow_state(uint32_t id, FlowState s, uint32_t now_ms) noexcept;
    template <size_t A>
    void flow_gone(uint32_t id) noexcept;
    // Persistence (persist_table.hpp). The backend for a new connection of a persistent VIP's
    // client: its network's live entry if the backend still keeps clients (refreshed), else
    // Maglev's pick by the network (pin: the caller pins it once the flow exists). Returns
    // Service::kNoBackendEntry when Maglev has no backend. Out of line, as is the pin, so VIPs
    // without persistence carry nothing of it on the miss path but a branch.
    template <size_t A>
    [[gnu::noinline]] uint16_t persist_choose(const VipEntry& vip, uint16_t vip_idx, const uint8_t* client,
                                              uint32_t now_ms, bool& pin) noexcept;
    template <size_t A>
    [[gnu::noinline]] void persist_pin(const VipEntry& vip, uint16_t vip_idx, const uint8_t* client, uint16_t backend,
                                       uint32_t now_ms) noexcept;
    // A flow of a persistent VIP ended idle: its network's entry lives persist_ms past the
    // flow's last packet (if it still names the flow's backend).
    template <size_t A>
    void persist_flow_ended(uint32_t id) noexcept;
    // Extends e to expiry_ms (never shortens it) and reports the new expiry to the other workers.
    void persist_extend(PersistEntry& e, uint32_t expiry_ms) noexcept;
    // Replication (dp_sync.cpp): reports a fullnat session's confirmation, state change or end.
    template <size_t A>
    [[gnu::noinline]] void session_changed(uint32_t id, uint32_t now_ms) noexcept;
    template <size_t A>
    [[gnu::noinline]] void session_ended(uint32_t id) noexcept;
    template <size_t A>
    SessionReport session_report(uint32_t id, uint32_t now_ms) const noexcept;
    template <size_t A>
    void learn_session(const SessionReport& s, uint32_t now_ms) noexcept;
    void persist_report(const PersistEntry& e) noexcept {
        if (persist_reports_ && !persist_reports_->push(e)) [[unlikely]] ++counters_.persist_lost;
    }
    // Flow log bookkeeping for sampled flows (only called while the log is enabled).
    template <size_t A>
    void log_open(uint32_t id, FlowEvent::Why why, uint32_t len, uint32_t now_ms) noexcept;
    template <size_t A>
    void log_packet(uint32_t id, uint32_t len, uint32_t now_ms) noexcept;
    template <size_t A>
    void log_close(uint32_t id, FlowEvent::Why why) noexcept;
    // Sampled flows are keyed by flow id with the family in the top bit.
    template <size_t A>
    static uint32_t sampled_key(uint32_t id) noexcept { return id | (A == 16 ? 1u << 31 : 0u); }
    template <size_t A>
    FlowEvent flow_event(uint32_t id, FlowEvent::Kind kind, FlowEvent::Why why) const noexcept;
    template <size_t A>
    uint32_t find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h) const noexcept;
    template <size_t A>
    uint32_t find_forward(uint16_t vip, const uint8_t* client, uint16_t cport_raw, uint64_t h,
                          uint32_t bucket) const noexcept;
    template <size_t A>
    void sweep(uint32_t budget) noexcept;
    template <size_t A>
    void answer_echo(PacketRef& p, const net::ParsedPacket& pp) noexcept;
    // ICMP errors about a flow (RFC 792 / RFC 4443 quote the offending packet): matched by
    // the quoted header, translated like the flow's packets, sent to its backend or client.
    template <size_t A>
    void handle_icmp_error(PacketRef& p, const net::ParsedPacket& pp, uint32_t now_ms) noexcept;
    template <size_t A>
    uint32_t find_reply(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw, uint8_t proto,
                        uint64_t h) const noexcept;
    // Fragments: a first fragment's outcome is remembered; later ones repeat it.
    template <size_t A>
    FragTable<A>& frags() noexcept;
    template <size_t A>
    static typename FragTable<A>::Key frag_key(const uint8_t* ip, const net::ParsedPacket& pp) noexcept;
    template <size_t A>
    void remember_fragment(const PacketRef& p, const net::ParsedPacket& pp, const Lookup& lk, const uint8_t* src,
                           const uint8_t* dst, const typename FragTable<A>::Key& k,
                           uint8_t ttl_before, uint32_t now_ms) noexcept;
    template <size_t A>
    void later_fragment(PacketRef& p, const net::ParsedPacket& pp, uint32_t now_ms) noexcept;
    // The worker a NIC's RSS gives this 4-tuple (where the unfragmented packets of a
    // fullnat or dsr flow arrive, and so where the flow lives).
    template <size_t A>
    uint16_t rss_owner(const uint8_t* src, const uint8_t* dst, uint16_t sport_raw, uint16_t dport_raw) const noexcept;
    void redirect(PacketRef& p, uint16_t owner) noexcept {
        // Handed over already yet not ours either: workers disagree on ownership (a
        // misconfigured redirection table). Keeping it here would strand its flow.
        if (p.redirected) return drop(p, Drop::redirect_loop);
        p.verdict = Verdict::redirect;
        p.out = owner;
        ++counters_.redirected_out;
    }
    void handle_arp(PacketRef& p, const net::ParsedPacket& pp) noexcept;
    void handle_nd(PacketRef& p, const net::ParsedPacket& pp) noexcept;
    void drop(PacketRef& p, Drop d) noexcept {
        p.verdict = Verdict::drop;
        p.reason = d;
        counters_.drop(d);
    }
    void to_control(PacketRef& p) noexcept {
        if (!env_.exception_path) return drop(p, Drop::for_self);
        // The kernel side of a port lives on one VLAN (its side's; one arm: the backend's):
        // the control core takes the tag off on the way in and puts it back on the way out.
        if (!on_kernel_vlan(p)) [[unlikely]] return drop(p, Drop::foreign_vlan);
        p.verdict = Verdict::control;
        ++counters_.to_control;
    }
    bool on_kernel_vlan(const PacketRef& p) const noexcept;
    void tx(PacketRef& p, uint16_t port) noexcept {
        p.verdict = Verdict::tx;
        p.out = port;
    }
    // Sends a rewritten frame out of `port` with the tag of the side it leaves by (vid 0:
    // untagged). `tagged`: the frame arrived tagged. Hot callers read both before they write
    // into the packet (whose stores may alias anything) and pass retag_needed().
    static bool retag_needed(bool tagged, uint16_t vid) noexcept { return (static_cast<unsigned>(tagged) | vid) != 0; }
    // Sends the frame back out the port it came in by, to the MAC it came from.
    void send_back(PacketRef& p) noexcept {
        std::memcpy(p.data + net::EthOff::dst, p.data + net::EthOff::src, 6);
        std::memcpy(p.data + net::EthOff::src, env_.port_macs[p.in_port].bytes.data(), 6);
        tx(p, p.in_port);
    }
    void tx_side(PacketRef& p, bool retag_it, uint16_t port, uint16_t vid) noexcept {
        if (retag_it && !retag(p, vid)) [[unlikely]]
            return drop(p, Drop::vlan_no_room);
        tx(p, port);
    }
    // Sets the frame's 802.1Q tag to `vid` (0: removes it), keeping the priority bits of a tag
    // already there. Adding or removing a tag moves the frame by 4 bytes within its buffer: the
    // price of sides that differ in tagging, paid by no other configuration. False: no room.
    [[gnu::noinline]] bool retag(PacketRef& p, uint16_t vid) noexcept;
    // Is the frame for this port, judged on its raw bytes: VLAN first, then a unicast
    // destination MAC? Drop::count_ if it is the port's (or is broadcast or multicast: see
    // finds_neighbours()), else the reason to drop it. (The common frame is cleared before,
    // by the fast parser: see process().)
    Drop not_addressed_here_slow(const PacketRef& p) const noexcept;
    // The rest of pass 1's judgement for a frame the fast parser did not clear (IPv6, tagged,
    // ARP, anything unusual): parses it (into pp, st) if it is the port's, else says why not
    // (st is then ok: the reason is elsewhere).
    [[gnu::noinline]] Drop judge_frame(const PacketRef& p, net::ParsedPacket& pp, net::ParseStatus& st) const noexcept;
    // Broadcast and multicast frames wanted: ARP, IPv6 neighbour solicitations and advertisements.
    bool finds_neighbours(const PacketRef& p, const net::ParsedPacket& pp) const noexcept;
    struct PortIdentity {
        uint64_t mac = 0;           // the MAC's six bytes as they lie in memory, little-endian load
        uint16_t vlan[2] = {0, 0};  // the VLANs it serves (0: untagged)
        uint16_t kernel_vlan = 0;   // the VLAN of its kernel side (--kernel-if)
        // What the fast parser asks of a frame's first eight bytes (parse_fast_ipv4): its
        // MAC on a port that serves untagged frames (any destination while it has no MAC),
        // nothing on one that does not (every frame is judged by judge_frame()).
        uint64_t fast_mask = 0;
        uint64_t fast_dst = 1;
    };
    static constexpr size_t kPortSlots = 32;  // port ids 0..31 (--client-port/--backend-port range)
    std::array<PortIdentity, kPortSlots> ports_{};  // indexed by port id (masked)

    std::shared_ptr<const Service> initial_;  // keeps the constructor's snapshot alive
    const Service* service_;
    WorkerEnv env_;
    net::Toeplitz toeplitz_;
    KeyedHash hash_;
    std::unique_ptr<ClientMac<4>[]> client_macs4_;
    std::unique_ptr<ClientMac<16>[]> client_macs6_;
    std::unique_ptr<FlowTable<4>> flows4_;
    std::unique_ptr<FlowTable<16>> flows6_;
    std::unique_ptr<FragTable<4>> frags4_;
    std::unique_ptr<FragTable<16>> frags6_;
    uint32_t snat_cursor_[2] = {0, 0};  // next SNAT port to try, per family
    uint8_t snat_addr_cursor_[2] = {0, 0};
    WorkerCounters counters_;
    // The flush sweep's state and position in each table.
    bool flushing_ = false;
    uint32_t flush_cursor_[2] = {0, 0};
    // New-flow rate limit (--new-flow-rate): a token bucket of flows; unlimited when 0.
    TokenBucket new_flows_;
    // fullnat SYNs refused by the rate limit are remembered by their keyed forward hash; the
    // same tuple's SYN again 0.2 to 10 s later (a client's retransmission: RFC 6298's first
    // RTO is 1 s) is admitted. Direct-mapped, 2 MiB per worker, only with --new-flow-rate.
    struct SynRetry {
        uint32_t tag = 0;
        uint32_t first_ms = 0;
    };
    static constexpr uint32_t kSynRetrySlots = 1u << 18;
    static constexpr uint32_t kSynRetryMinMs = 200, kSynRetryMaxMs = 10'000;
    [[gnu::noinline]] bool syn_retry_admitted(uint64_t hf, uint32_t now_ms) noexcept;
    std::unique_ptr<SynRetry[]> syn_retries_;
    // Flow log: which new flows are sampled, the sampled flows' counts, the event ring.
    FlowSampler flow_log_;
    // Persistence: the table, the reports to the other workers (null with one worker), and
    // the sweep that forgets entries of removed backends (with flush_removed()).
    std::unique_ptr<PersistTable> persist_;
    std::unique_ptr<PersistRing> persist_reports_;
    std::unique_ptr<SessionRing> session_reports_;
    bool persist_flushing_ = false;
    uint32_t persist_cursor_ = 0;
};

}  // namespace sluice::lb
