// libFuzzer target for the worker's packet logic: parse -> classify -> flow lookup -> rewrite.
//
// One Service (dsr, nat and fullnat VIPs over IPv4 and IPv6: the union of the golden cases'
// VIPs, so frames split from their captures hit real VIPs and flows) and three Dataplanes are
// built once and keep their flow tables across inputs, as a worker does across bursts:
//   solo     worker 0 of 1, no exception path;
//   pair[0]  worker 0 of 2, exception path and flow log on;
//   pair[1]  its peer, which receives pair[0]'s redirects (and the other way round), so the
//            nat_owner / redirect / redirected_in paths run end to end.
// Trade-off: state carried across inputs finds bugs that need a history (evictions, stale
// flows, SNAT reuse, reloads) at the price of crashes that may not reproduce from one input
// alone; the burst mode lets a single input carry a whole conversation, which is what the
// seeds do.
//
// Input layout (all counts and lengths big endian):
//   byte 0   bit 0     in_port of a single frame (0 client side, 1 backend side)
//            bits 1-2  target: 0 solo, 1 pair[0], 2 pair[1], 3 pair[1] with `redirected` set
//            bit 3     burst: the rest is frames, each [flags][len_hi][len_lo][bytes]
//                      (flags bit 0 in_port, bit 1 redirected), at most kMaxBurst of them
//            bit 4     run expire() on every Dataplane afterwards, budget = whole table
//            bits 5-7  6: a second pass of the same frames (now hitting their flows);
//                      7: the same with a reload in between (alternating between two
//                      configurations, each built from the previous snapshot, then
//                      flush_removed()), at most once per 64 inputs
//   byte 1   clock advance before each pass: 0..127 ms, or (b - 127) seconds; the clock wraps
//            like a TSC-derived one
//   rest     the frame (single mode) or the frames (burst mode)
//
// Oracles besides the sanitizers (each violation aborts with a message):
//   - every packet gets exactly one verdict and the counters agree (rx/redirected_in, tx,
//     to_control, redirected_out, drops);
//   - a transmitted frame fits its buffer, leaves on an existing port with that port's source
//     MAC, still parses, has a valid IPv4 header checksum, keeps a valid TCP/UDP/ICMP checksum
//     if it came with one (RFC 1624 patching must be exact), and an ND answer's is valid;
//   - a redirect names the other worker, and the owner never answers a handed-over packet
//     with redirect_loop (workers must agree on ownership);
//   - after a single frame to a VIP is forwarded (with a flow, not statelessly), explain()
//     finds its flow, and nat/fullnat rewrote the destination to that flow's backend.
// Checksums are recomputed here from RFC 1071 directly, not with lib/net/checksum.
// With SLUICE_FUZZ_STATS set, the Dataplanes' counters are printed at exit: which paths ran.
// Thread contract: libFuzzer calls LLVMFuzzerTestOneInput from one thread.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/config/options.hpp"
#include "lib/lb/dataplane.hpp"
#include "lib/lb/flow_log.hpp"
#include "lib/lb/service.hpp"
#include "lib/lb/stats_json.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/wire.hpp"

namespace {

using namespace sluice;
using lb::Dataplane;
using lb::PacketRef;
using lb::Verdict;

constexpr uint32_t kTailroom = 128;  // room for process() to grow a frame (ND replies)
constexpr uint16_t kPorts = 2;
constexpr uint32_t kFlowCapacity = 1024;  // the smallest allowed: eviction and full paths are reachable

[[noreturn]] void fail(const char* what, uint32_t i) {
    std::fprintf(stderr, "dataplane_fuzz: invariant violated: %s (packet %u)\n", what, i);
    std::abort();
}
#define FUZZ_CHECK(cond, i) \
    do {                    \
        if (!(cond)) fail(#cond, i); \
    } while (0)

// --- The configuration -----------------------------------------------------------------------
struct VipDef {
    const char* vip;
    std::vector<const char*> backends;  // "ADDR[:PORT],weight=N[,state=S]"
};

// The golden cases' VIPs (tests/golden/*/sluice.conf) under unique names, small Maglev tables
// (reloads rebuild them), and a few variations: on-down policies, a drained backend, a VIP
// whose only backend is disabled.
std::vector<VipDef> vip_defs(bool variant) {
    std::vector<VipDef> d = {
        {"dsr4web,203.0.113.10:80/tcp,dsr,table=251",
         {"198.51.100.11,weight=1", variant ? "198.51.100.12,weight=7" : "198.51.100.12,weight=2", "198.51.100.13,weight=3"}},
        {"dsr4dns,203.0.113.10:53/udp,dsr,table=251,on-down=keep",
         {"198.51.100.11,weight=4", "198.51.100.12,weight=1",
          variant ? "198.51.100.13,weight=2,state=disabled" : "198.51.100.13,weight=2"}},
        {"dsr6web,[2001:db8:f::10]:443/tcp,dsr,table=251",
         {"[2001:db8:be::11],weight=3", "[2001:db8:be::12],weight=1", "[2001:db8:be::13],weight=2"}},
        {"dsr6dns,[2001:db8:f::10]:53/udp,dsr,table=251",
         {"[2001:db8:be::11],weight=2", "[2001:db8:be::12],weight=5", "[2001:db8:be::13],weight=3"}},
        {"nat4web,203.0.113.20:80/tcp,nat,table=251,on-down=drop",
         {"198.51.100.21:8080,weight=1", "198.51.100.22:8080,weight=2",
          variant ? "198.51.100.23:8080,weight=3,state=disabled" : "198.51.100.23:8080,weight=3"}},
        {"nat4dns,203.0.113.20:53/udp,nat,table=251", {"198.51.100.21:5353,weight=3", "198.51.100.23:5353,weight=1"}},
        {"nat6web,[2001:db8:f::20]:80/tcp,nat,table=251,on-down=keep",
         {"[2001:db8:be::21]:8080,weight=2",
          variant ? "[2001:db8:be::22]:8080,weight=3,state=disabled" : "[2001:db8:be::22]:8080,weight=3",
          "[2001:db8:be::23]:8080,weight=1"}},
        {"nat6dns,[2001:db8:f::20]:53/udp,nat,table=251",
         {"[2001:db8:be::21],weight=1", "[2001:db8:be::22],weight=2", "[2001:db8:be::23],weight=4"}},
        {"m4,203.0.113.30:80/tcp,nat,table=251",
         {"198.51.100.31:8080,weight=1", "198.51.100.32:8080,weight=2",
          variant ? "198.51.100.33:8080,weight=4,state=draining" : "198.51.100.33:8080,weight=4"}},
        {"m4dns,203.0.113.30:53/udp,nat,table=251",
         {"198.51.100.31,weight=3", "198.51.100.32,weight=1", "198.51.100.33,weight=0"}},
        {"m6,[2001:db8:f::30]:80/tcp,nat,table=251",
         {variant ? "[2001:db8:be::31]:8080,weight=2,state=disabled" : "[2001:db8:be::31]:8080,weight=2",
          "[2001:db8:be::32]:8080,weight=3", "[2001:db8:be::33]:8080,weight=1"}},
        {"m6dns,[2001:db8:f::30]:53/udp,nat,table=251",
         {"[2001:db8:be::31]:5353,weight=1", "[2001:db8:be::32]:5353,weight=5", "[2001:db8:be::33]:5353,weight=3"}},
        {"full4web,203.0.113.40:80/tcp,fullnat,table=251",
         {"198.51.100.41:8080,weight=1", "198.51.100.42:8080,weight=2", "198.51.100.43:8080,weight=3"}},
        {"full4dns,203.0.113.40:53/udp,fullnat,table=251",
         {"198.51.100.41,weight=2", "198.51.100.42,weight=3", "198.51.100.43,weight=4"}},
        {"full6web,[2001:db8:f::40]:80/tcp,fullnat,table=251,on-down=drop",
         {"[2001:db8:be::41]:8080,weight=3", "[2001:db8:be::42]:8080,weight=2", "[2001:db8:be::43]:8080,weight=1"}},
        {"full6dns,[2001:db8:f::40]:53/udp,fullnat,table=251",
         {"[2001:db8:be::41]:5353,weight=1", "[2001:db8:be::42]:5353,weight=2", "[2001:db8:be::43]:5353,weight=3"}},
        {"reuse4,203.0.113.50:53/udp,fullnat,table=251",
         {"198.51.100.51,weight=1", "198.51.100.52,weight=2", "198.51.100.53,weight=3"}},
        {"dead4,203.0.113.60:80/tcp,nat,table=251", {"198.51.100.61:8080,state=disabled"}},
    };
    // The variant also drops backends (their flows move or are flushed); they come back in
    // the next reload, in their old entries.
    if (!variant) d[5].backends.insert(d[5].backends.begin() + 1, "198.51.100.22:5353,weight=2");
    if (variant) {
        d[14].backends.pop_back();                     // full6web loses [2001:db8:be::43]
        d[16].backends.erase(d[16].backends.begin());  // reuse4 loses 198.51.100.51
    }
    return d;
}

std::vector<std::string> config_args(bool variant) {
    std::vector<std::string> a;
    auto add = [&](const char* opt, const std::string& val) {
        a.emplace_back(opt);
        a.push_back(val);
    };
    for (const auto& v : vip_defs(variant)) {
        add("--vip", v.vip);
        const std::string name(v.vip, std::strchr(v.vip, ','));
        for (const char* b : v.backends) add("--backend", name + "," + b);
    }
    const char* neighbors[] = {"11", "12", "13", "21", "22", "23", "31", "32", "33", "41", "42", "43", "51", "52", "53", "61"};
    for (const char* n : neighbors) {
        add("--neighbor", std::string("198.51.100.") + n + ",02:be:00:00:04:" + n);
        add("--neighbor", std::string("2001:db8:be::") + n + ",02:be:00:00:06:" + n);
    }
    add("--snat", "203.0.113.100");
    add("--snat", "2001:db8:f::100");
    add("--self", "203.0.113.1");
    add("--self", "2001:db8:f::1");
    add("--snat-ports", "40000-40015");  // small, so SNAT exhaustion is reachable
    add("--timeout-tcp-syn", "2");
    add("--timeout-tcp-established", "4");
    add("--timeout-tcp-closing", "2");
    add("--timeout-udp", "3");
    add("--flow-capacity", std::to_string(kFlowCapacity));
    return a;
}

lb::Config parse_config(bool variant) {
    auto p = config::parse_args(config_args(variant));
    if (!p) {
        std::fprintf(stderr, "dataplane_fuzz: bad built-in configuration: %s\n", p.error().c_str());
        std::abort();
    }
    return p->config;
}

lb::WorkerEnv make_env(const lb::ProcessConfig& config, uint16_t worker, uint16_t workers, bool exception_path) {
    lb::WorkerEnv e;
    e.settings = lb::data_path_settings(config);
    e.worker_id = worker;
    e.nb_workers = workers;
    e.client_port = 0;
    e.backend_port = 1;
    // The MACs sluice-replay gives its ports, which the golden captures are addressed to.
    e.port_macs = {net::Mac{{0x02, 0, 0, 0, 0, 0x01}}, net::Mac{{0x02, 0, 0, 0, 0, 0x02}}};
    e.reta = net::Reta::round_robin(workers);
    e.exception_path = exception_path;
    return e;
}

struct Rig {
    lb::Config configs[2];
    std::shared_ptr<const lb::Service> service;
    std::unique_ptr<Dataplane> solo;
    std::unique_ptr<Dataplane> pair[2];
    std::unique_ptr<lb::FlowLogRing> rings[2];
    uint32_t now_ms = 0;
    bool variant = false;
    uint64_t inputs = 0, last_reload = 0, reloads = 0;

    Rig() {
        configs[0] = parse_config(false);
        configs[1] = parse_config(true);
        auto s = lb::Service::build(configs[0]);
        if (!s) {
            std::fprintf(stderr, "dataplane_fuzz: Service::build: %s\n", s.error().c_str());
            std::abort();
        }
        service = std::make_shared<const lb::Service>(std::move(*s));
        solo = std::make_unique<Dataplane>(service, make_env(configs[0], 0, 1, false), kFlowCapacity);
        for (uint16_t w = 0; w < 2; ++w) {
            pair[w] = std::make_unique<Dataplane>(service, make_env(configs[0], w, 2, true), kFlowCapacity);
            rings[w] = std::make_unique<lb::FlowLogRing>(64);
            pair[w]->enable_flow_log(1, rings[w].get());
        }
        if (std::getenv("SLUICE_FUZZ_STATS")) std::atexit([] { instance().print_stats(); });
    }

    static Rig& instance() {
        static Rig& rig = *new Rig();  // lives for the process, as the workers' state does
        return rig;
    }

    // Which paths the run reached (SLUICE_FUZZ_STATS=1, printed at exit).
    void print_stats() {
        const char* names[] = {"solo", "pair[0]", "pair[1]"};
        for (int i = 0; i < 3; ++i) {
            const lb::WorkerCounters& c = all(i)->counters();
            std::fprintf(stderr,
                         "dataplane_fuzz: %s: %s flow-hits %lu rescheduled %lu redirected-in %lu redirected-out %lu "
                         "to-control %lu arp-replies %lu nd-replies %lu\n",
                         names[i], lb::stats_summary({all(i)}).c_str(), static_cast<unsigned long>(c.flow_hits),
                         static_cast<unsigned long>(c.rescheduled), static_cast<unsigned long>(c.redirected_in),
                         static_cast<unsigned long>(c.redirected_out), static_cast<unsigned long>(c.to_control),
                         static_cast<unsigned long>(c.arp_replies), static_cast<unsigned long>(c.nd_replies));
        }
        std::fprintf(stderr, "dataplane_fuzz: %lu inputs, %lu reloads, clock at %u ms\n",
                     static_cast<unsigned long>(inputs), static_cast<unsigned long>(reloads), now_ms);
    }

    Dataplane* all(int i) { return i == 0 ? solo.get() : pair[i - 1].get(); }

    // As the control core does on a reload: build from the current snapshot, switch every
    // worker between bursts, flush the removed backends' flows.
    void reload() {
        variant = !variant;
        ++reloads;
        auto s = lb::Service::build(configs[variant], service.get());
        if (!s) {
            std::fprintf(stderr, "dataplane_fuzz: reload: Service::build: %s\n", s.error().c_str());
            std::abort();
        }
        auto next = std::make_shared<const lb::Service>(std::move(*s));
        for (int i = 0; i < 3; ++i) {
            all(i)->set_service(next.get());
            all(i)->flush_removed();
        }
        service = std::move(next);  // the workers moved on: the old snapshot can go
    }

    // The control core's side of the flow log: events name live entries and format.
    void drain_flow_log() {
        lb::FlowEvent e;
        for (auto& r : rings)
            while (r->pop(e)) {
                FUZZ_CHECK(e.vip < service->vips().size(), 0);
                FUZZ_CHECK(e.backend < service->backends().size(), 0);
                if ((inputs & 63) == 0) (void)lb::format_flow_event(e, *service);
            }
    }
};

// --- Independent checksum arithmetic (RFC 1071) ------------------------------------------------
uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
    for (; n > 1; p += 2, n -= 2) s += static_cast<uint32_t>(p[0] << 8 | p[1]);
    if (n) s += static_cast<uint32_t>(p[0] << 8);
    return s;
}
uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<uint16_t>(s);
}
bool ipv4_header_ok(const uint8_t* ip) { return fold(sum16(ip, (ip[0] & 0x0F) * 4u)) == 0xFFFF; }

// Sum over the transport bytes and, except for ICMPv4, the pseudo-header (addresses from the
// IP header).
bool l4_checksum_ok(const uint8_t* f, const net::ParsedPacket& pp) {
    const uint8_t* ip = f + pp.l3_off;
    const uint32_t l4_len = pp.ip_end - pp.l4_off;
    uint32_t s = 0;
    if (pp.l4_proto != net::kIpProtoIcmp) {
        s = pp.l3 == net::L3::ipv4 ? sum16(ip + 12, 8) : sum16(ip + 8, 32);
        s += pp.l4_proto;
        s += l4_len & 0xFFFF;
        s += l4_len >> 16;
    }
    return fold(sum16(f + pp.l4_off, l4_len, s)) == 0xFFFF;
}
// Does the transport header carry a checksum to keep valid? (IPv4 UDP may send none.)
bool has_l4_checksum(const uint8_t* f, const net::ParsedPacket& pp) {
    if (pp.l3 != net::L3::ipv4 && pp.l3 != net::L3::ipv6) return false;
    // A later fragment carries no transport header (its bytes only look like one), and a
    // first fragment's checksum covers bytes it does not carry.
    if (pp.frag != net::Frag::none) return false;
    switch (pp.l4_proto) {
        case net::kIpProtoTcp: return true;
        case net::kIpProtoIcmp: return pp.l3 == net::L3::ipv4;
        case net::kIpProtoIcmpv6: return pp.l3 == net::L3::ipv6;
        case net::kIpProtoUdp: return pp.l3 == net::L3::ipv6 || (f[pp.l4_off + 6] | f[pp.l4_off + 7]) != 0;
        default: return false;
    }
}

// --- One frame in a buffer of its own (so ASan sees any access past cap) ----------------------
struct Frame {
    std::unique_ptr<uint8_t[]> buf;
    PacketRef ref;
    bool in_ok = false;         // parsed as TCP/UDP over IP
    bool in_l4_valid = false;   // carries a valid transport checksum (TCP, UDP, ICMP, ICMPv6) to keep
    bool in_nd = false;         // a neighbour solicitation: an answer gets a checksum of its own
    net::ParsedPacket in_pp;
    uint8_t in_src[16], in_dst[16];

    void load(const uint8_t* data, uint32_t len, uint16_t in_port, bool redirected) {
        buf.reset(new uint8_t[len + kTailroom]);
        std::memcpy(buf.get(), data, len);
        std::memset(buf.get() + len, 0xA5, kTailroom);
        ref = PacketRef{};
        ref.data = buf.get();
        ref.len = len;
        ref.cap = len + kTailroom;
        ref.in_port = in_port;
        ref.redirected = redirected;
        in_ok = in_l4_valid = in_nd = false;
        if (net::parse_packet(ref.data, len, in_pp) != net::ParseStatus::ok) return;
        in_l4_valid = has_l4_checksum(ref.data, in_pp) && l4_checksum_ok(ref.data, in_pp);
        in_nd = in_pp.l3 == net::L3::ipv6 && in_pp.l4_proto == net::kIpProtoIcmpv6 &&
                ref.data[in_pp.l4_off] == net::kIcmp6NeighborSolicit;
        in_ok = (in_pp.l3 == net::L3::ipv4 || in_pp.l3 == net::L3::ipv6) &&
                (in_pp.l4_proto == net::kIpProtoTcp || in_pp.l4_proto == net::kIpProtoUdp);
        if (!in_ok) return;
        const size_t a = in_pp.l3 == net::L3::ipv4 ? 4 : 16;
        const uint8_t* ip = ref.data + in_pp.l3_off;
        std::memcpy(in_src, ip + (a == 4 ? 12 : 8), a);
        std::memcpy(in_dst, ip + (a == 4 ? 16 : 24), a);
    }
};

void check_tx(const Frame& fr, const lb::WorkerEnv& env, uint32_t i) {
    const PacketRef& p = fr.ref;
    FUZZ_CHECK(p.out < kPorts, i);
    FUZZ_CHECK(p.len >= net::kEthHdrLen && p.len <= p.cap, i);
    FUZZ_CHECK(std::memcmp(p.data + 6, env.port_macs[p.out].bytes.data(), 6) == 0, i);
    net::ParsedPacket pp;
    FUZZ_CHECK(net::parse_packet(p.data, p.len, pp) == net::ParseStatus::ok, i);
    if (pp.l3 == net::L3::ipv4) FUZZ_CHECK(ipv4_header_ok(p.data + pp.l3_off), i);
    // Patched checksums stay valid; an ND advertisement is written whole, with its own.
    if ((fr.in_l4_valid || fr.in_nd) && has_l4_checksum(p.data, pp)) FUZZ_CHECK(l4_checksum_ok(p.data, pp), i);
}

struct Tally {
    uint64_t rx = 0, redirected_in = 0, tx = 0, control = 0, redirect = 0, drops = 0;
    static Tally of(const lb::WorkerCounters& c) {
        return {c.rx, c.redirected_in, c.tx, c.to_control, c.redirected_out, c.total_drops()};
    }
};

// Runs frames through one Dataplane and checks every verdict and the counter deltas.
void run(Dataplane& dp, const lb::WorkerEnv& env, Frame* frames, uint32_t n, uint32_t now_ms) {
    std::vector<PacketRef> refs(n);
    for (uint32_t i = 0; i < n; ++i) refs[i] = frames[i].ref;
    const Tally before = Tally::of(dp.counters());
    dp.process(refs.data(), n, now_ms);
    Tally want;
    for (uint32_t i = 0; i < n; ++i) {
        frames[i].ref = refs[i];
        const PacketRef& p = refs[i];
        (p.redirected ? want.redirected_in : want.rx)++;
        switch (p.verdict) {
            case Verdict::tx: ++want.tx; check_tx(frames[i], env, i); break;
            case Verdict::drop: ++want.drops; FUZZ_CHECK(p.reason < lb::Drop::count_, i); break;
            case Verdict::control:
                ++want.control;
                FUZZ_CHECK(env.exception_path, i);
                FUZZ_CHECK(p.len <= p.cap, i);
                break;
            case Verdict::redirect:
                ++want.redirect;
                FUZZ_CHECK(!p.redirected, i);
                FUZZ_CHECK(env.nb_workers > 1 && p.out < env.nb_workers && p.out != env.worker_id, i);
                break;
            default: fail("unknown verdict", i);
        }
    }
    const Tally after = Tally::of(dp.counters());
    FUZZ_CHECK(after.rx - before.rx == want.rx, 0);
    FUZZ_CHECK(after.redirected_in - before.redirected_in == want.redirected_in, 0);
    FUZZ_CHECK(after.tx - before.tx == want.tx, 0);
    FUZZ_CHECK(after.control - before.control == want.control, 0);
    FUZZ_CHECK(after.redirect - before.redirect == want.redirect, 0);
    FUZZ_CHECK(after.drops - before.drops == want.drops, 0);
}

// After a single frame to a VIP went out: its flow exists, and a nat/fullnat rewrite points at it.
void check_explain(const Dataplane& dp, const Frame& fr, uint32_t now_ms) {
    if (!fr.in_ok || fr.ref.verdict != Verdict::tx || fr.ref.out != 1) return;
    const lb::Service& s = dp.service();
    const net::Family f = fr.in_pp.l3 == net::L3::ipv4 ? net::Family::v4 : net::Family::v6;
    if (s.find_vip(f, fr.in_dst, fr.in_pp.dport_raw, fr.in_pp.l4_proto) == lb::Service::kNoVip) return;
    const auto e = dp.explain(f, fr.in_src, fr.in_dst, fr.in_pp.sport_raw, fr.in_pp.dport_raw, fr.in_pp.l4_proto, now_ms);
    FUZZ_CHECK(e.how == Dataplane::Explanation::How::flow_hit, 0);
    FUZZ_CHECK(e.backend < s.backends().size(), 0);
    const lb::VipEntry& v = s.vips()[e.vip];
    if (v.mode == lb::Mode::dsr) return;
    const lb::BackendEntry& b = s.backends()[e.backend];
    net::ParsedPacket pp;
    FUZZ_CHECK(net::parse_packet(fr.ref.data, fr.ref.len, pp) == net::ParseStatus::ok, 0);
    const uint8_t* dst = fr.ref.data + pp.l3_off + (f == net::Family::v4 ? 16 : 24);
    FUZZ_CHECK(std::memcmp(dst, b.addr.bytes.data(), f == net::Family::v4 ? 4 : 16) == 0, 0);
    FUZZ_CHECK(pp.dport_raw == b.port_raw, 0);
}

// Where one frame of the input lies, and how it arrives.
struct Slice {
    const uint8_t* data;
    uint32_t len;
    uint16_t in_port;
    bool redirected;
};

// One pass of the input's frames through their Dataplane (and the redirects to the owner).
void pass(Rig& rig, unsigned target, bool burst, const std::vector<Slice>& slices, uint32_t now) {
    Dataplane* dp = target == 0 ? rig.solo.get() : rig.pair[target == 1 ? 0 : 1].get();
    const uint16_t self = target == 1 ? 0 : 1;  // index in rig.pair (unused for solo)
    const lb::WorkerEnv env = target == 0 ? make_env(rig.configs[0], 0, 1, false) : make_env(rig.configs[0], self, 2, true);
    std::vector<Frame> frames(slices.size());
    for (size_t i = 0; i < slices.size(); ++i)
        frames[i].load(slices[i].data, slices[i].len, slices[i].in_port, slices[i].redirected);
    const uint64_t stateless = dp->counters().stateless_forwarded;
    run(*dp, env, frames.data(), static_cast<uint32_t>(frames.size()), now);
    // A frame forwarded without state (an RST of no flow, a full table) has no flow to explain.
    if (!burst && !frames[0].ref.redirected && dp->counters().stateless_forwarded == stateless)
        check_explain(*dp, frames[0], now);
    if (target == 0) return;
    // Hand redirects to the owner, as the redirect rings do; it must take them.
    std::vector<Frame> moved;
    for (auto& fr : frames)
        if (fr.ref.verdict == Verdict::redirect) {
            moved.push_back(std::move(fr));
            moved.back().ref.redirected = true;
        }
    if (moved.empty()) return;
    const uint16_t owner = 1 - self;
    run(*rig.pair[owner], make_env(rig.configs[0], owner, 2, true), moved.data(), static_cast<uint32_t>(moved.size()), now);
    for (uint32_t i = 0; i < moved.size(); ++i)
        if (moved[i].ref.verdict == Verdict::drop) FUZZ_CHECK(moved[i].ref.reason != lb::Drop::redirect_loop, i);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Rig& rig = Rig::instance();
    if (size < 2) return 0;
    ++rig.inputs;
    const uint8_t ctl = data[0];
    const uint8_t tick = data[1];
    const uint32_t advance = tick < 128 ? tick : (tick - 127u) * 1000u;
    data += 2;
    size -= 2;

    const unsigned target = (ctl >> 1) & 3;
    const bool burst = ctl & 0x08;
    std::vector<Slice> slices;
    if (!burst) {
        slices.push_back({data, static_cast<uint32_t>(size), static_cast<uint16_t>(ctl & 1), target == 3});
    } else {
        for (size_t off = 0; off + 3 <= size && slices.size() < Dataplane::kMaxBurst;) {
            const uint8_t flags = data[off];
            size_t len = static_cast<size_t>(data[off + 1] << 8 | data[off + 2]);
            off += 3;
            if (len > size - off) len = size - off;
            slices.push_back({data + off, static_cast<uint32_t>(len), static_cast<uint16_t>(flags & 1), (flags & 2) != 0});
            off += len;
        }
        if (slices.empty()) return 0;
    }

    pass(rig, target, burst, slices, rig.now_ms += advance);
    // Bits 5-7: 6 replays the frames (their flows now exist), 7 reloads in between, so the
    // replay meets flows whose backend was removed, disabled or drained.
    const unsigned again = ctl >> 5;
    if (again >= 6) {
        if (again == 7 && rig.inputs - rig.last_reload >= 64) {
            rig.last_reload = rig.inputs;
            rig.reload();
        }
        pass(rig, target, burst, slices, rig.now_ms += advance);
    }
    if (ctl & 0x10)
        for (int i = 0; i < 3; ++i) rig.all(i)->expire(rig.now_ms, kFlowCapacity);
    rig.drain_flow_log();
    return 0;
}
