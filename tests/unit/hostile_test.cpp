// Hostile traffic against the real data path, closed loop.
//
// One Sluice (1 or 2 workers, each a real Dataplane with its own flow table) sits between
// simulated clients and simulated backends that behave like kernel TCP stacks: a backend
// answers a SYN with a SYN-ACK of its own sequence number, acknowledges data of connections
// it knows and answers anything else with an RST; a client completes its handshake with the
// SYN-ACK it receives and sends data. Links have delays (clients 10 ms away, backends 0.25 ms),
// so a handshake is in flight while the flood goes on. A NIC's RSS (Toeplitz over the 4-tuple)
// picks the worker, and redirects between workers are followed as the binary does.
//
// Checked for every mode (dsr, nat, fullnat), IPv4 and IPv6, 1 and 2 workers:
//  - a spoofed SYN flood and a spoofed ACK flood of 10x the tables' capacity lose no packet of
//    established flows that stay active, and never change a fullnat flow's SNAT port (the
//    backend would see an unknown connection);
//  - the tables stay within capacity;
//  - the share of legitimate new connections that complete during the flood (target >= 90%);
//  - a targeted collision attack (crafted for the old unkeyed CRC32-C) blocks nothing.
// The numbers are printed; run `build/tests/hostile_tests -s` to see them.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#ifdef __SSE4_2__
#include <nmmintrin.h>
#endif

#include "lib/lb/dataplane.hpp"
#include "lib/lb/service.hpp"
#include "lib/net/toeplitz.hpp"
#include "tests/unit/packet_builder.hpp"

namespace {

using namespace sluice::lb;
using sluice::test::Bytes;
using sluice::test::kAck;
using sluice::test::kRst;
using sluice::test::kSyn;
using sluice::test::Pkt;

constexpr const char* kPort0Mac = "02:00:00:00:00:a0";
constexpr const char* kPort1Mac = "02:00:00:00:00:b0";
constexpr const char* kRouterMac = "02:00:00:00:00:c1";
constexpr const char* kBeMac[2] = {"02:00:00:00:00:11", "02:00:00:00:00:12"};

sluice::net::IpAddr ip(const std::string& s) {
    auto a = sluice::net::parse_ip(s);
    REQUIRE(a);
    return *a;
}

// What the simulation reads back from a frame.
struct Seg {
    bool v6 = false;
    std::string src, dst;
    uint16_t sport = 0, dport = 0;
    uint8_t flags = 0;
    uint32_t seq = 0, ack = 0;
    uint32_t payload = 0;
};

std::string addr_str(const uint8_t* a, bool v6) {
    char buf[64];
    inet_ntop(v6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
    return buf;
}
uint32_t be32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

Seg parse(const Bytes& f) {
    Seg s;
    const uint8_t* ip = f.data() + 14;
    size_t l4;
    if (be16(f.data() + 12) == 0x86DD) {
        s.v6 = true;
        s.src = addr_str(ip + 8, true);
        s.dst = addr_str(ip + 24, true);
        l4 = 14 + 40;
        s.payload = be16(ip + 4);
    } else {
        s.src = addr_str(ip + 12, false);
        s.dst = addr_str(ip + 16, false);
        l4 = 14 + (ip[0] & 15u) * 4;
        s.payload = be16(ip + 2) - (ip[0] & 15u) * 4;
    }
    const uint8_t* t = f.data() + l4;
    s.sport = be16(t);
    s.dport = be16(t + 2);
    s.seq = be32(t + 4);
    s.ack = be32(t + 8);
    s.flags = t[13];
    s.payload -= (t[12] >> 4) * 4u;
    return s;
}

// payload > 0: that many bytes, the first four carrying `tag` (which client sent it).
Bytes tcp(bool v6, const char* smac, const char* dmac, const std::string& src, const std::string& dst, uint16_t sport,
          uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0, uint32_t tag = 0) {
    Pkt p;
    p.eth(smac, dmac);
    if (v6) p.ipv6(src, dst); else p.ipv4(src, dst);
    p.tcp(sport, dport, flags).seq(seq).ack(ack);
    if (payload) {
        Bytes b(payload, 0);
        std::memcpy(b.data(), &tag, 4);
        p.payload(b);
    }
    return p.build();
}

// --- The network ----------------------------------------------------------------------------
struct Scenario {
    Mode mode = Mode::nat;
    bool v6 = false;
    uint16_t workers = 1;
    enum class Flood { syn, ack } flood = Flood::syn;
    uint32_t capacity = 4096;      // flows per worker and family
    uint32_t flood_ms = 1000;      // the flood's duration
    uint32_t new_flow_rate = 0;    // --new-flow-rate
    uint32_t established = 200;    // flows open before the flood, active throughout
    uint32_t legit = 200;          // new connections started during the flood
};

struct Result {
    uint64_t est_sent = 0, est_delivered = 0;
    uint32_t legit_started = 0, legit_done = 0;
    uint32_t max_size = 0, capacity = 0;
    uint64_t evictions = 0, refusals = 0, stateless = 0, flood_packets = 0;
};

class Net {
public:
    explicit Net(const Scenario& sc) : sc_(sc), rng_(42) {
        vip_ = sc.v6 ? "2001:db8::10" : "203.0.113.10";
        be_[0] = sc.v6 ? "2001:db8:b::11" : "198.51.100.11";
        be_[1] = sc.v6 ? "2001:db8:b::12" : "198.51.100.12";
        snat_ = sc.v6 ? "2001:db8:5::100" : "192.0.2.254";  // no client uses it
        Config c;
        VipConf v;
        v.name = "web";
        v.addr = ip(vip_);
        v.port = 80;
        v.proto = Proto::tcp;
        v.mode = sc.mode;
        v.table_size = 1021;
        for (const auto& b : be_) v.backends.push_back({ip(b), static_cast<uint16_t>(sc.mode == Mode::dsr ? 0 : 8080), 1});
        c.vips = {v};
        c.snat_addrs = {ip(snat_)};
        c.neighbors = {{ip(be_[0]), *sluice::net::parse_mac(kBeMac[0])}, {ip(be_[1]), *sluice::net::parse_mac(kBeMac[1])}};
        c.new_flow_rate = sc.new_flow_rate;
        auto s = Service::build(c);
        if (!s) FAIL("Service::build: " << s.error());
        svc_ = std::make_shared<const Service>(std::move(*s));
        HashKey key;
        REQUIRE(HashKey::random(key));  // a key the test does not look at
        reta_ = sluice::net::Reta::round_robin(sc.workers);
        for (uint16_t w = 0; w < sc.workers; ++w) {
            WorkerEnv e;
            e.worker_id = w;
            e.nb_workers = sc.workers;
            e.client_port = 0;
            e.backend_port = 1;
            e.port_macs = {*sluice::net::parse_mac(kPort0Mac), *sluice::net::parse_mac(kPort1Mac)};
            e.reta = reta_;
            e.hash_key = key;
            e.settings = data_path_settings(c);
            dps_.push_back(std::make_unique<Dataplane>(svc_, e, sc.capacity));
        }
    }

    Result run() {
        Result r;
        const uint32_t t_flood = 1'000'000;  // us: established flows open during the first second
        // Established clients: 192.0.2.1.. / 2001:db8:c::1..; one connection each.
        for (uint32_t i = 0; i < sc_.established; ++i)
            open(client_addr(1 + i % 200, 0), static_cast<uint16_t>(20000 + i), 1000 + i * 4000, /*legit=*/false);
        // Their data during the flood: one segment every 50 ms each.
        for (uint32_t t = t_flood; t < t_flood + sc_.flood_ms * 1000; t += 50'000)
            for (uint32_t i = 0; i < sc_.established; ++i)
                at(t + i * 10, Ev::client_send, key(client_addr(1 + i % 200, 0), static_cast<uint16_t>(20000 + i)));
        // The flood: 10x the tables' capacity, spoofed sources, evenly over flood_ms.
        const uint32_t flood = 10 * sc_.capacity * sc_.workers;
        r.flood_packets = flood;
        for (uint32_t k = 0; k < flood; ++k) {
            const uint32_t t = t_flood + static_cast<uint32_t>(uint64_t{k} * sc_.flood_ms * 1000 / flood);
            Ev e{t, seq_++, Ev::spoof, {}, {}};
            e.frame = tcp(sc_.v6, kRouterMac, kPort0Mac, client_addr(1 + rng_() % 250, 1), vip_,
                          static_cast<uint16_t>(1024 + rng_() % 18000), 80,  // below the real clients' ports
                          sc_.flood == Scenario::Flood::syn ? kSyn : kAck, rng_(), rng_());
            q_.push(std::move(e));
        }
        // Legitimate new connections, started evenly during the flood from other clients.
        for (uint32_t i = 0; i < sc_.legit; ++i)
            open(client_addr(1 + i % 200, 2), static_cast<uint16_t>(30000 + i),
                 t_flood + 50'000 + i * (sc_.flood_ms * 1000 - 100'000) / sc_.legit, /*legit=*/true);
        r.legit_started = sc_.legit;

        const uint32_t end = t_flood + sc_.flood_ms * 1000 + 4'000'000;  // room for SYN retransmissions
        while (!q_.empty() && q_.top().t_us <= end) {
            Ev e = q_.top();
            q_.pop();
            now_us_ = e.t_us;
            switch (e.kind) {
                case Ev::spoof:
                case Ev::to_sluice_client_side: sluice(e.frame, 0); break;
                case Ev::to_sluice_backend_side: sluice(e.frame, 1); break;
                case Ev::to_client: client_rx(e.frame); break;
                case Ev::to_backend: backend_rx(e.frame); break;
                case Ev::client_send: client_send(e.key); break;
                case Ev::syn_timer: syn_timer(e.key); break;
            }
            if ((++events_ & 1023) == 0) r.max_size = std::max(r.max_size, max_size());
        }
        r.max_size = std::max(r.max_size, max_size());
        r.capacity = sc_.capacity;
        for (const auto& c : clients_) {
            if (!c.second.legit) continue;
            r.legit_done += c.second.done;
        }
        r.est_sent = est_sent_;
        r.est_delivered = est_delivered_;
        for (const auto& dp : dps_) {
            const auto& st = sc_.v6 ? dp->flows6().stats() : dp->flows4().stats();
            r.evictions += st.evictions;
            r.refusals += st.refusals;
            r.stateless += dp->counters().stateless_forwarded;
        }
        return r;
    }

    const std::vector<std::unique_ptr<Dataplane>>& dataplanes() const { return dps_; }

private:
    struct Ev {
        uint32_t t_us;
        uint64_t seq;
        enum Kind { spoof, to_sluice_client_side, to_sluice_backend_side, to_client, to_backend, client_send, syn_timer } kind;
        Bytes frame;
        std::string key;
        bool operator>(const Ev& o) const { return t_us != o.t_us ? t_us > o.t_us : seq > o.seq; }
    };
    struct Client {
        std::string addr;
        uint16_t port = 0;
        bool legit = false;
        enum class St { syn_sent, established, reset } st = St::syn_sent;
        uint32_t isn = 0, next_seq = 0, server_next = 0;
        uint32_t rto_us = 1'000'000, syn_tries = 1;
        bool done = false;  // a data segment was acknowledged by the backend
    };
    static constexpr uint32_t kEstTag = 1u << 20;  // data of an established client carries kEstTag + port
    struct Conn {
        uint32_t isn = 0;
        uint32_t rcv_next = 0;
    };

    static std::string key(const std::string& a, uint16_t p) { return a + "|" + std::to_string(p); }
    std::string client_addr(uint32_t i, uint32_t net) const {
        // In the form inet_ntop gives, so that it matches what parse() reads back.
        if (sc_.v6) return addr_str(sluice::test::ip6(fmt::format("2001:db8:c:{}::{:x}", net, i)).data(), true);
        return fmt::format("192.0.2.{}", i);  // IPv4: told apart by port ranges
    }
    void at(uint32_t t, Ev::Kind k, std::string key) { q_.push(Ev{t, seq_++, k, {}, std::move(key)}); }
    void at(uint32_t t, Ev::Kind k, Bytes f) { q_.push(Ev{t, seq_++, k, std::move(f), {}}); }

    void open(const std::string& addr, uint16_t port, uint32_t t, bool legit) {
        Client c;
        c.addr = addr;
        c.port = port;
        c.legit = legit;
        c.isn = rng_();
        c.next_seq = c.isn + 1;
        clients_[key(addr, port)] = c;
        at(t, Ev::to_sluice_client_side, tcp(sc_.v6, kRouterMac, kPort0Mac, addr, vip_, port, 80, kSyn, c.isn, 0));
        at(t + c.rto_us, Ev::syn_timer, key(addr, port));
    }
    // A kernel's SYN retransmission: after 1 s, then 2 s (RFC 6298), three tries in all.
    void syn_timer(const std::string& k) {
        Client& c = clients_.at(k);
        if (c.st != Client::St::syn_sent || c.syn_tries >= 3) return;
        ++c.syn_tries;
        c.rto_us *= 2;
        at(now_us_, Ev::to_sluice_client_side, tcp(sc_.v6, kRouterMac, kPort0Mac, c.addr, vip_, c.port, 80, kSyn, c.isn, 0));
        at(now_us_ + c.rto_us, Ev::syn_timer, k);
    }

    uint32_t max_size() const {
        uint32_t m = 0;
        for (const auto& dp : dps_) m = std::max(m, sc_.v6 ? dp->flows6().size() : dp->flows4().size());
        return m;
    }

    // The NIC: RSS over the 4-tuple picks the queue; hand-overs are followed.
    void sluice(const Bytes& in, uint16_t port) {
        const Seg s = parse(in);
        std::vector<uint8_t> tuple;
        const size_t a = sc_.v6 ? 16 : 4;
        const uint8_t* ipb = in.data() + 14 + (sc_.v6 ? 8 : 12);
        tuple.insert(tuple.end(), ipb, ipb + 2 * a);
        tuple.push_back(static_cast<uint8_t>(s.sport >> 8));
        tuple.push_back(static_cast<uint8_t>(s.sport));
        tuple.push_back(static_cast<uint8_t>(s.dport >> 8));
        tuple.push_back(static_cast<uint8_t>(s.dport));
        uint16_t w = reta_.queue(sluice::net::toeplitz_ref(sluice::net::kDefaultRssKey.data(), sluice::net::kRssKeyLen,
                                                           tuple.data(), tuple.size()));
        std::vector<uint8_t> buf(2048);
        std::memcpy(buf.data(), in.data(), in.size());
        PacketRef p;
        p.data = buf.data();
        p.len = static_cast<uint32_t>(in.size());
        p.cap = static_cast<uint32_t>(buf.size());
        p.in_port = port;
        for (int hop = 0; hop < 3; ++hop) {
            dps_[w]->process(&p, 1, now_us_ / 1000);
            if (p.verdict != Verdict::redirect) break;
            w = p.out;
            p.redirected = true;
        }
        if (p.verdict != Verdict::tx) return;
        Bytes out(buf.begin(), buf.begin() + p.len);
        if (p.out == 1) at(now_us_ + 250, Ev::to_backend, std::move(out));
        else at(now_us_ + 10'000, Ev::to_client, std::move(out));
    }

    // A kernel TCP stack on the backend. In dsr it answers the client directly from the VIP.
    void backend_rx(const Bytes& f) {
        const Seg s = parse(f);
        const std::string k = key(s.dst, s.dport) + ">" + key(s.src, s.sport);
        const int be = s.dst == be_[0] ? 0 : s.dst == be_[1] ? 1 : (sc_.mode == Mode::dsr ? dsr_backend(f) : -1);
        if (be < 0) return;
        auto send = [&](uint8_t flags, uint32_t seq, uint32_t ack) {
            Bytes r = tcp(sc_.v6, kBeMac[be], sc_.mode == Mode::dsr ? kRouterMac : kPort1Mac, s.dst, s.src, s.dport,
                          s.sport, flags, seq, ack);
            if (sc_.mode == Mode::dsr) at(now_us_ + 10'000, Ev::to_client, std::move(r));
            else at(now_us_ + 250, Ev::to_sluice_backend_side, std::move(r));
        };
        auto it = conns_.find(k);
        if ((s.flags & (kSyn | kAck)) == kSyn) {
            Conn c;
            c.isn = rng_();
            c.rcv_next = s.seq + 1;
            conns_[k] = c;
            send(kSyn | kAck, c.isn, s.seq + 1);
            return;
        }
        if (s.flags & kRst) {
            if (it != conns_.end()) conns_.erase(it);
            return;
        }
        if (it == conns_.end()) {
            if (s.payload) ++unknown_data_;
            send(kRst, s.ack, 0);  // RFC 793: a segment of no connection gets an RST
            return;
        }
        if (s.payload) {
            // The sender, by the tag in its data (fullnat hides its address and port).
            uint32_t tag;
            std::memcpy(&tag, f.data() + f.size() - s.payload, 4);
            if (tag >= kEstTag) ++est_delivered_;
            it->second.rcv_next = s.seq + s.payload;
            send(kAck, it->second.isn + 1, it->second.rcv_next);
        }
    }
    // dsr leaves the destination address alone: the backend is known by its MAC.
    int dsr_backend(const Bytes& f) const {
        for (int b = 0; b < 2; ++b)
            if (std::memcmp(f.data(), sluice::test::mac(kBeMac[b]).data(), 6) == 0) return b;
        return -1;
    }

    void client_rx(const Bytes& f) {
        const Seg s = parse(f);
        auto it = clients_.find(key(s.dst, s.dport));
        if (it == clients_.end()) return;  // to a spoofed source
        Client& c = it->second;
        if (s.flags & kRst) {
            c.st = Client::St::reset;
            return;
        }
        if ((s.flags & (kSyn | kAck)) == (kSyn | kAck) && c.st == Client::St::syn_sent) {
            c.st = Client::St::established;
            c.server_next = s.seq + 1;
            at(now_us_, Ev::to_sluice_client_side,
               tcp(sc_.v6, kRouterMac, kPort0Mac, c.addr, vip_, c.port, 80, kAck, c.next_seq, c.server_next));
            if (c.legit) client_send(it->first);
            return;
        }
        if ((s.flags & kAck) && c.st == Client::St::established && s.ack == c.next_seq && c.legit) c.done = true;
    }

    void client_send(const std::string& k) {
        Client& c = clients_.at(k);
        if (c.st != Client::St::established) {
            if (!c.legit) ++est_sent_;  // a flow that should be established but is not: a loss
            return;
        }
        if (!c.legit) ++est_sent_;
        at(now_us_, Ev::to_sluice_client_side,
           tcp(sc_.v6, kRouterMac, kPort0Mac, c.addr, vip_, c.port, 80, kAck | sluice::test::kPsh, c.next_seq,
               c.server_next, 100, c.legit ? 1 : kEstTag + c.port));
        c.next_seq += 100;
    }

    Scenario sc_;
    std::mt19937 rng_;
    std::string vip_, be_[2], snat_;
    std::shared_ptr<const Service> svc_;
    sluice::net::Reta reta_ = sluice::net::Reta::round_robin(1);
    std::vector<std::unique_ptr<Dataplane>> dps_;
    std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> q_;
    uint64_t seq_ = 0, events_ = 0;
    uint32_t now_us_ = 0;
    std::map<std::string, Client> clients_;
    std::map<std::string, Conn> conns_;
    uint64_t est_sent_ = 0, est_delivered_ = 0, unknown_data_ = 0;
};

const char* mode_name(Mode m) { return m == Mode::dsr ? "dsr" : m == Mode::nat ? "nat" : "fullnat"; }

}  // namespace

TEST_CASE("hostile: floods of 10x capacity lose no active established flow", "[hostile]") {
    for (const Mode mode : {Mode::dsr, Mode::nat, Mode::fullnat})
        for (const bool v6 : {false, true})
            for (const uint16_t workers : {uint16_t{1}, uint16_t{2}})
                for (const auto flood : {Scenario::Flood::syn, Scenario::Flood::ack}) {
                    Scenario sc;
                    sc.mode = mode;
                    sc.v6 = v6;
                    sc.workers = workers;
                    sc.flood = flood;
                    const std::string what = fmt::format("{} {} {} worker(s), {} flood", mode_name(mode), v6 ? "IPv6" : "IPv4",
                                                         workers, flood == Scenario::Flood::syn ? "SYN" : "ACK");
                    INFO(what);
                    Net net(sc);
                    const Result r = net.run();
                    const double share = 100.0 * r.legit_done / r.legit_started;
                    fmt::print("hostile: {:34} established {}/{} delivered, legit new {}/{} ({:.1f}%), table max {}/{}, "
                               "evicted {}, refused {}, stateless {}\n",
                               what, r.est_delivered, r.est_sent, r.legit_done, r.legit_started, share, r.max_size,
                               r.capacity, r.evictions, r.refusals, r.stateless);
                    CHECK(r.est_sent > 0);
                    CHECK(r.est_delivered == r.est_sent);
                    CHECK(r.max_size <= r.capacity);
                    CHECK(share >= 90.0);
                }
}

TEST_CASE("hostile: legitimate new connections during a SYN flood, with and without --new-flow-rate", "[hostile]") {
    // The share that completes depends on how long a half-open flow survives the flood (the
    // table's capacity over the flood's rate) against the handshake's round trip (20 ms here).
    struct Case {
        uint32_t flood_ms;
        uint32_t rate;
    };
    for (const Mode mode : {Mode::dsr, Mode::nat, Mode::fullnat})
        for (const Case cs : {Case{1000, 0}, Case{250, 0}, Case{100, 0}, Case{1000, 5000}}) {
            Scenario sc;
            sc.mode = mode;
            sc.flood_ms = cs.flood_ms;
            sc.new_flow_rate = cs.rate;
            Net net(sc);
            const Result r = net.run();
            const double share = 100.0 * r.legit_done / r.legit_started;
            const std::string what = fmt::format("{} IPv4, {} SYN/s, --new-flow-rate {}", mode_name(mode),
                                                 r.flood_packets * 1000 / cs.flood_ms, cs.rate);
            INFO(what);
            fmt::print("hostile: {:48} legit new {}/{} ({:.1f}%), established {}/{}, stateless {}\n", what,
                       r.legit_done, r.legit_started, share, r.est_delivered, r.est_sent, r.stateless);
            CHECK(r.est_delivered == r.est_sent);
            // dsr and nat never need the table to complete a handshake: Maglev answers a miss and
            // the rate limit forwards without state. fullnat needs the flow: over the rate limit
            // a client's retransmitted SYN is admitted.
            // Except where no table can help: fullnat needs the half-open flow to outlive the
            // handshake's round trip (20 ms), and at 410k SYN/s a 4096-flow table holds one for
            // 10 ms. Reported, not checked (a real table of 1M flows holds it for 2.5 s).
            if (mode != Mode::fullnat || cs.flood_ms >= 250) CHECK(share >= 90.0);
        }
}

namespace {

// The flow table's index before keyed hashing: CRC32-C of the key words (SSE4.2), spread by
// one multiply; equal CRCs meant equal signatures and buckets.
uint32_t old_crc(uint64_t w0) {
#ifdef __SSE4_2__
    return static_cast<uint32_t>(_mm_crc32_u64(0x6B43A9B5u, w0));
#else
    uint32_t c = 0x6B43A9B5u;
    for (int i = 0; i < 64; ++i) c = (c >> 1) ^ (((c ^ static_cast<uint32_t>(w0 >> i)) & 1u) ? 0x82F63B78u : 0u);
    return c;
#endif
}
// The old forward key of an IPv4 flow: client address and port as they sit in the packet.
uint64_t old_key4(const uint8_t addr[4], uint16_t port_host, uint16_t vip) {
    uint32_t a;
    std::memcpy(&a, addr, 4);
    const uint16_t p = static_cast<uint16_t>(port_host >> 8 | port_host << 8);
    return a | uint64_t{p} << 32 | uint64_t{vip} << 48;
}

// For a source port, the one source address whose old key has the victim's CRC. CRC is affine
// over GF(2): crc(a) = crc(0) ^ L(a) for the address bits a, so solve L(a) = target ^ crc(0)
// by Gaussian elimination over the 32 address bits.
bool collide(uint32_t target, uint16_t port, uint16_t vip, uint8_t out[4]) {
    const uint8_t zero[4] = {0, 0, 0, 0};
    const uint32_t base = old_crc(old_key4(zero, port, vip));
    uint32_t col[32];
    for (int b = 0; b < 32; ++b) {
        uint8_t a[4] = {0, 0, 0, 0};
        a[b / 8] = static_cast<uint8_t>(1u << (b % 8));
        col[b] = old_crc(old_key4(a, port, vip)) ^ base;
    }
    // Rows: equations per output bit; columns: address bits (augmented with the target bit).
    uint64_t rows[32];
    const uint32_t rhs = target ^ base;
    for (int r = 0; r < 32; ++r) {
        uint64_t row = 0;
        for (int b = 0; b < 32; ++b) row |= uint64_t{(col[b] >> r) & 1u} << b;
        rows[r] = row | uint64_t{(rhs >> r) & 1u} << 32;
    }
    int rank = 0;
    int pivot_col[32];
    for (int c = 0; c < 32 && rank < 32; ++c) {
        int p = -1;
        for (int r = rank; r < 32; ++r)
            if ((rows[r] >> c) & 1u) {
                p = r;
                break;
            }
        if (p < 0) continue;
        std::swap(rows[p], rows[rank]);
        for (int r = 0; r < 32; ++r)
            if (r != rank && ((rows[r] >> c) & 1u)) rows[r] ^= rows[rank];
        pivot_col[rank++] = c;
    }
    for (int r = rank; r < 32; ++r)
        if ((rows[r] >> 32) & 1u) return false;  // inconsistent
    uint32_t a = 0;
    for (int r = 0; r < rank; ++r)
        if ((rows[r] >> 32) & 1u) a |= 1u << pivot_col[r];
    std::memcpy(out, &a, 4);
    return true;
}

}  // namespace

TEST_CASE("hostile: a targeted collision attack made for the old CRC blocks nothing", "[hostile]") {
    // For each source port, the source address whose key collides with the victim's under
    // the old hash: one per port, so 2^16 crafted tuples, which the 10^6 SYNs cycle through.
    // The crafted sources are arbitrary addresses: they exist only inside this process.
    constexpr uint32_t kCrafted = 1'000'000;
    const uint8_t victim[4] = {192, 0, 2, 77};
    const uint16_t victim_port = 40000;
    const uint32_t target = old_crc(old_key4(victim, victim_port, 0));
    std::vector<std::array<uint8_t, 4>> srcs;
    std::vector<uint16_t> ports;
    for (uint32_t port = 1; port < 65536; ++port) {
        uint8_t a[4];
        if (!collide(target, static_cast<uint16_t>(port), 0, a)) continue;
        // The self-check: this key really has the victim's CRC under the old function.
        REQUIRE(old_crc(old_key4(a, static_cast<uint16_t>(port), 0)) == target);
        srcs.push_back({a[0], a[1], a[2], a[3]});
        ports.push_back(static_cast<uint16_t>(port));
    }
    REQUIRE(srcs.size() > 60'000);
    for (const uint16_t workers : {uint16_t{1}, uint16_t{2}}) {
        Config c;
        VipConf v;
        v.name = "web";
        v.addr = ip("203.0.113.10");
        v.port = 80;
        v.mode = Mode::nat;
        v.table_size = 1021;
        v.backends = {{ip("198.51.100.11"), 8080, 1}};
        c.vips = {v};
        c.neighbors = {{ip("198.51.100.11"), *sluice::net::parse_mac(kBeMac[0])}};
        auto s = Service::build(c);
        REQUIRE(s);
        auto svc = std::make_shared<const Service>(std::move(*s));
        HashKey key;
        REQUIRE(HashKey::random(key));
        std::vector<std::unique_ptr<Dataplane>> dps;
        for (uint16_t w = 0; w < workers; ++w) {
            WorkerEnv e;
            e.worker_id = w;
            e.nb_workers = workers;
            e.backend_port = 1;
            e.port_macs = {*sluice::net::parse_mac(kPort0Mac), *sluice::net::parse_mac(kPort1Mac)};
            e.reta = sluice::net::Reta::round_robin(workers);
            e.hash_key = key;
            e.settings = data_path_settings(c);
            dps.push_back(std::make_unique<Dataplane>(svc, e, 1u << 16));
        }
        // Every packet is given to the worker that owns its flow (nat: the client's), as the
        // binary's hand-over would.
        auto run = [&](const Bytes& f, uint32_t now_ms, uint16_t port = 0) {
            std::vector<uint8_t> buf(f.begin(), f.end());
            buf.resize(2048);
            PacketRef p;
            p.data = buf.data();
            p.len = static_cast<uint32_t>(f.size());
            p.cap = 2048;
            p.in_port = port;
            uint16_t w = 0;
            for (int hop = 0; hop < 3; ++hop) {
                dps[w]->process(&p, 1, now_ms);
                if (p.verdict != Verdict::redirect) break;
                w = p.out;
                p.redirected = true;
            }
            return p.verdict;
        };
        // The crafted SYNs over 10 s of virtual time; the victim's handshake and data in the
        // middle of them.
        Bytes frame = tcp(false, kRouterMac, kPort0Mac, "192.0.2.1", "203.0.113.10", 1, 80, kSyn, 1, 0);
        uint32_t victim_ok = 0, victim_sent = 0;
        for (uint32_t k = 0; k < kCrafted; ++k) {
            const uint32_t now = k / 100;  // 100,000 a second
            const size_t j = k % srcs.size();
            std::memcpy(frame.data() + 14 + 12, srcs[j].data(), 4);
            frame[14 + 20] = static_cast<uint8_t>(ports[j] >> 8);
            frame[14 + 21] = static_cast<uint8_t>(ports[j]);
            // The IPv4 header checksum after the source change.
            frame[14 + 10] = frame[14 + 11] = 0;
            const uint16_t csum = sluice::test::ref_csum(frame.data() + 14, 20);
            frame[14 + 10] = static_cast<uint8_t>(csum >> 8);
            frame[14 + 11] = static_cast<uint8_t>(csum);
            run(frame, now);
            if (k % 50'000 == 25'000) {
                // A victim connection: SYN, the backend's SYN-ACK, ACK, data.
                const uint16_t vp = static_cast<uint16_t>(victim_port + k / 50'000);
                const std::string va = "192.0.2.77";
                victim_sent += 3;
                victim_ok += run(tcp(false, kRouterMac, kPort0Mac, va, "203.0.113.10", vp, 80, kSyn, 100, 0), now) ==
                             Verdict::tx;
                victim_ok += run(tcp(false, kBeMac[0], kPort1Mac, "198.51.100.11", va, 8080, vp, kSyn | kAck, 500, 101),
                                 now, 1) == Verdict::tx;
                victim_ok += run(tcp(false, kRouterMac, kPort0Mac, va, "203.0.113.10", vp, 80, kAck, 101, 501, 10),
                                 now + 1) == Verdict::tx;
            }
        }
        uint64_t failures = 0, refusals = 0, size = 0;
        for (const auto& dp : dps) {
            failures += dp->flows4().stats().insert_failures;
            refusals += dp->flows4().stats().refusals;
            size += dp->flows4().size();
        }
        fmt::print("hostile: collision attack, {} worker(s): {} crafted SYNs; victim packets through {}/{}; "
                   "index insert failures {}, refusals {}, flows {}\n",
                   workers, kCrafted, victim_ok, victim_sent, failures, refusals, size);
        CHECK(victim_ok == victim_sent);
        // Against the old hash every crafted SYN after the 16th failed to insert; now they land
        // at random, and a cuckoo index at <= 85% load places them all.
        CHECK(failures == 0);
    }
}
