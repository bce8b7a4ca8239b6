// The replication path end to end, driven by replayed traffic (docs/sync-protocol.md,
// "Measured: the sync path end to end"): what one replicated fullnat flow costs on the wire and
// on the control cores, how far the peer lags, and what it holds when the link loses messages.
//
// Two instances, A and B, each a set of real data paths (lb::Dataplane, two workers, RSS as a
// NIC would spread the packets) and a real control::SyncAgent with its own UDP socket on
// 127.0.0.1. Only A sees traffic: generated fullnat connections (client SYN, the backend's
// SYN-ACK, the client's ACK, a request and an answer, FIN from both sides, the last ACK) go
// through A's Dataplane::process(), so A's workers report their sessions exactly as in the
// binary, A's agent sends them, and B's agent installs them into B's workers. Between the two
// sockets sits a relay socket that forwards datagrams both ways and drops a chosen fraction of
// them at random (acks, heartbeats and resends alike: the link, not the protocol, loses them).
//
// Clocks: the agents stamp the wall clock (Unix ms), as in the binary; the data paths get a
// millisecond clock that follows the wall clock (packets are generated when they are due, in
// turns of 1 ms, the period of the binary's single-lcore control turn). Then the traffic stops
// (flows sit idle where they are; closed ones expire and their ends are sent) and everything
// runs on for a while before B's tables are compared with A's.
//
// CPU: CLOCK_THREAD_CPUTIME_ID around each agent's poll(), apart for A (sender) and B
// (receiver); B's workers' installs (which the binary does on the workers, behind their command
// rings) and A's packet processing are timed on their own. Everything runs on one thread; the
// packet generator and the relay are not counted.
//
// Thread contract: a program; one thread.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "lib/config/options.hpp"
#include "lib/control/sync_agent.hpp"
#include "lib/control/workers.hpp"
#include "lib/lb/dataplane.hpp"
#include "lib/lb/service.hpp"
#include "lib/net/checksum.hpp"
#include "lib/net/wire.hpp"

using namespace sluice;

namespace {

constexpr uint16_t kWorkers = 2;
constexpr uint32_t kFlowCapacity = 1u << 18;  // per worker and family: 100k flows/s live ~2.5 s
constexpr uint32_t kExpireBudget = 4096;      // records per worker and 1 ms turn
constexpr uint32_t kClosingS = 1;             // --timeout-tcp-closing: removes follow FINs soon
constexpr uint32_t kClients = 250;            // 192.0.2.1 .. 192.0.2.250
constexpr uint16_t kFirstPort = 1024;
constexpr size_t kFrameBytes = 256;
constexpr size_t kBatch = 1024;               // packets built and processed at a time

const uint8_t kVip[4] = {203, 0, 113, 10};
constexpr uint16_t kVipPort = 80;
constexpr uint16_t kBackendPort = 8080;
constexpr int kBackends = 4;  // 198.51.100.11 ..
const net::Mac kRouterMac{{0x02, 0, 0, 0, 0, 0xfe}};
const net::Mac kPortMac[2] = {net::Mac{{0x02, 0, 0, 0, 0, 0x01}}, net::Mac{{0x02, 0, 0, 0, 0, 0x02}}};

uint64_t clock_ns(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}
uint64_t mono_us() { return clock_ns(CLOCK_MONOTONIC) / 1000; }
uint64_t unix_ms() { return clock_ns(CLOCK_REALTIME) / 1'000'000; }
uint64_t cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

// A scope's thread CPU time, added to a total.
struct CpuTimer {
    uint64_t& total;
    uint64_t start = cpu_ns();
    ~CpuTimer() { total += cpu_ns() - start; }
};

// ---------------------------------------------------------------------------------------------
// Packets: Ethernet, IPv4, TCP with correct checksums, written in place.

size_t build_tcp4(uint8_t* f, const net::Mac& src_mac, const net::Mac& dst_mac, const uint8_t* sip,
                  const uint8_t* dip, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                  uint16_t payload) {
    using net::Ipv4Off;
    using net::TcpOff;
    std::memcpy(f, dst_mac.bytes.data(), 6);
    std::memcpy(f + 6, src_mac.bytes.data(), 6);
    net::store_be16(f + 12, net::kEtherTypeIpv4);
    uint8_t* ip = f + net::kEthHdrLen;
    const uint16_t l4 = static_cast<uint16_t>(20 + payload);
    std::memset(ip, 0, 20);
    ip[Ipv4Off::ver_ihl] = 0x45;
    net::store_be16(ip + Ipv4Off::total_len, static_cast<uint16_t>(20 + l4));
    ip[Ipv4Off::ttl] = 64;
    ip[Ipv4Off::proto] = net::kIpProtoTcp;
    std::memcpy(ip + Ipv4Off::src, sip, 4);
    std::memcpy(ip + Ipv4Off::dst, dip, 4);
    const uint16_t ic = net::csum(ip, 20);
    std::memcpy(ip + Ipv4Off::csum, &ic, 2);
    uint8_t* t = ip + 20;
    std::memset(t, 0, 20);
    net::store_be16(t + TcpOff::sport, sport);
    net::store_be16(t + TcpOff::dport, dport);
    net::store_be32(t + TcpOff::seq, seq);
    net::store_be32(t + TcpOff::ack, ack);
    t[TcpOff::off] = 5 << 4;
    t[TcpOff::flags] = flags;
    net::store_be16(t + 14, 64240);  // window
    std::memset(t + 20, 'x', payload);
    const uint16_t tc = static_cast<uint16_t>(
        ~net::csum_fold(net::csum_partial(t, l4, net::pseudo_sum_v4(sip, dip, net::kIpProtoTcp, l4))));
    std::memcpy(t + TcpOff::csum, &tc, 2);
    return net::kEthHdrLen + 20 + l4;
}

// ---------------------------------------------------------------------------------------------
// The workers, called directly on this thread. B's installs are queued by the agent (as the
// binary hands them to the workers' command rings) and applied by the caller, timed apart.

class PlainWorkers final : public control::Workers {
public:
    PlainWorkers(std::shared_ptr<const lb::Service> svc, const lb::WorkerEnv& env) : svc_(std::move(svc)) {
        for (uint16_t w = 0; w < kWorkers; ++w) {
            lb::WorkerEnv e = env;
            e.worker_id = w;
            dps_.push_back(std::make_unique<lb::Dataplane>(svc_, e, kFlowCapacity));
        }
        queued_.resize(kWorkers);
    }
    lb::Dataplane& dp(uint16_t w) { return *dps_[w]; }
    void set_clock(uint32_t now_ms) { clock_ms_ = now_ms; }
    // Installs what the agent handed over; applied() holds it until the next call.
    void apply() {
        applied_.clear();
        for (uint16_t w = 0; w < kWorkers; ++w) {
            if (queued_[w].empty()) continue;
            dps_[w]->learn_sessions(queued_[w].data(), queued_[w].size(), clock_ms_);
            applied_.insert(applied_.end(), queued_[w].begin(), queued_[w].end());
            queued_[w].clear();
        }
    }
    const std::vector<lb::SessionReport>& applied() const { return applied_; }

    void publish(std::shared_ptr<const lb::Service> s) override {
        for (auto& d : dps_) d->set_service(s.get());
        svc_ = std::move(s);
    }
    void run_on_all(Task t) override {
        for (auto& d : dps_) control::perform(t, *d);
    }
    std::optional<std::vector<lb::Dataplane::Explanation>> ask_all(const control::FlowQuery& q) override {
        std::vector<lb::Dataplane::Explanation> v;
        for (auto& d : dps_) v.push_back(control::ask(*d, q, clock_ms_));
        return v;
    }
    std::optional<std::vector<std::vector<lb::PersistEntry>>> persist_entries(uint16_t vip, size_t max) override {
        std::vector<std::vector<lb::PersistEntry>> out(dps_.size());
        for (size_t w = 0; w < dps_.size(); ++w) {
            out[w].reserve(max);
            dps_[w]->list_persist(vip, clock_ms_, out[w]);
        }
        return out;
    }
    void send_persist(uint16_t w, std::vector<lb::PersistEntry> e) override {
        if (w < dps_.size()) dps_[w]->learn_persist(e.data(), e.size(), clock_ms_);
    }
    void send_sessions(uint16_t w, std::vector<lb::SessionReport> s) override {
        if (w < queued_.size()) queued_[w].insert(queued_[w].end(), s.begin(), s.end());
    }
    std::optional<SessionWalk> walk_sessions(uint16_t w, bool v6, uint32_t cursor, uint32_t budget, bool learnt,
                                             size_t max) override {
        if (w >= dps_.size()) return std::nullopt;
        SessionWalk out;
        out.sessions.reserve(max);
        out.next = dps_[w]->walk_sessions(v6, cursor, budget, learnt, clock_ms_, out.sessions);
        return out;
    }
    std::optional<std::vector<lb::PersistEntry>> walk_persist(uint16_t w, size_t max) override {
        if (w >= dps_.size()) return std::nullopt;
        std::vector<lb::PersistEntry> out;
        out.reserve(max);
        dps_[w]->walk_persist(clock_ms_, out);
        return out;
    }
    uint32_t clock_ms() const override { return clock_ms_; }
    void for_each(const std::function<void(const lb::Dataplane&)>& f) const override {
        for (const auto& d : dps_) f(*d);
    }

private:
    std::shared_ptr<const lb::Service> svc_;
    std::vector<std::unique_ptr<lb::Dataplane>> dps_;
    std::vector<std::vector<lb::SessionReport>> queued_;
    std::vector<lb::SessionReport> applied_;
    uint32_t clock_ms_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The link: one socket that forwards A's datagrams to B and B's to A, dropping some.

class Relay {
public:
    Relay(uint16_t port, uint16_t a_port, uint16_t b_port, double loss, uint64_t seed)
        : a_port_(a_port), b_port_(b_port), loss_(loss), rng_(seed) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int buf = 16 << 20;
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        sockaddr_in sa = loopback(port);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
            fmt::print(stderr, "sync_path_bench: relay bind: {}\n", std::strerror(errno));
            std::exit(1);
        }
        buf_.resize(65536);
    }
    ~Relay() { ::close(fd_); }
    void pump() {
        for (;;) {
            sockaddr_in from{};
            socklen_t fl = sizeof from;
            const ssize_t n = ::recvfrom(fd_, buf_.data(), buf_.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n < 0) return;
            const uint16_t src = ntohs(from.sin_port);
            const bool from_a = src == a_port_;
            if (!from_a && src != b_port_) continue;
            if (loss_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < loss_) {
                ++(from_a ? dropped_ab : dropped_ba);
                continue;
            }
            ++(from_a ? forwarded_ab : forwarded_ba);
            sockaddr_in to = loopback(from_a ? b_port_ : a_port_);
            ::sendto(fd_, buf_.data(), static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        }
    }
    static sockaddr_in loopback(uint16_t port) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sa;
    }
    uint64_t forwarded_ab = 0, forwarded_ba = 0, dropped_ab = 0, dropped_ba = 0;

private:
    int fd_ = -1;
    uint16_t a_port_, b_port_;
    double loss_;
    std::mt19937_64 rng_;
    std::vector<uint8_t> buf_;
};

// A free UDP port on 127.0.0.1 (bound and released: another program could take it meanwhile).
uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa = Relay::loopback(0);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t l = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &l);
    ::close(fd);
    return ntohs(sa.sin_port);
}

// ---------------------------------------------------------------------------------------------

struct Scenario {
    std::string name;
    std::string what;
    uint32_t rate = 10'000;      // new flows per second
    uint32_t life_ms = 1000;     // SYN to the client's FIN
    uint32_t min_age_ms = 500;   // --sync-min-age
    double loss = 0;             // fraction of datagrams the relay drops, each way
    uint32_t refresh_ms = 0;     // --sync-refresh; 0: the default (15 s: no refresh within a run)
    uint32_t measure_ms = 2000;  // the steady window the rates are taken over
    uint32_t settle_ms = 2000;   // traffic stopped, everything running, before B is compared with A
};

struct Instance {
    lb::Config cfg;
    std::shared_ptr<const lb::Service> svc;
    std::unique_ptr<PlainWorkers> workers;
    std::unique_ptr<control::SyncAgent> agent;
};

Instance make_instance(uint32_t id, uint16_t listen, uint16_t relay, const std::string& key, const Scenario& sc,
                       const lb::HashKey& hash_key) {
    const std::string own_snat = id == 1 ? "203.0.113.100" : "203.0.113.101";
    const std::string peer_snat = id == 1 ? "203.0.113.101" : "203.0.113.100";
    std::vector<std::string> args = {"--vip", "web,203.0.113.10:80/tcp,fullnat", "--snat", own_snat,
                                     "--client-gateway", "192.0.2.254", "--neighbor", "192.0.2.254,02:00:00:00:00:fe",
                                     "--timeout-tcp-closing", std::to_string(kClosingS),
                                     "--flow-capacity", std::to_string(kFlowCapacity),
                                     "--sync-id", std::to_string(id), "--sync-listen", fmt::format("127.0.0.1:{}", listen),
                                     "--sync-peer", fmt::format("{},127.0.0.1:{},snat={}", 3 - id, relay, peer_snat),
                                     "--sync-key", key, "--sync-min-age", fmt::format("{}ms", sc.min_age_ms)};
    if (sc.refresh_ms) args.insert(args.end(), {"--sync-refresh", fmt::format("{}ms", sc.refresh_ms)});
    for (int b = 0; b < kBackends; ++b) {
        args.insert(args.end(), {"--backend", fmt::format("web,198.51.100.{}:{}", 11 + b, kBackendPort), "--neighbor",
                                 fmt::format("198.51.100.{},02:00:00:00:01:{:02x}", 11 + b, 11 + b)});
    }
    auto p = config::parse_args(args);
    if (!p) {
        fmt::print(stderr, "sync_path_bench: configuration: {}\n", p.error());
        std::exit(1);
    }
    Instance in;
    in.cfg = p->config;
    auto s = lb::Service::build(in.cfg);
    if (!s) {
        fmt::print(stderr, "sync_path_bench: Service::build: {}\n", s.error());
        std::exit(1);
    }
    in.svc = std::make_shared<const lb::Service>(std::move(*s));
    lb::WorkerEnv env;
    if (auto st = lb::configure_worker_env(in.cfg, 2, env); !st) {
        fmt::print(stderr, "sync_path_bench: {}\n", st.error());
        std::exit(1);
    }
    env.nb_workers = kWorkers;
    env.reta = net::Reta::round_robin(kWorkers);
    env.port_macs = {kPortMac[0], kPortMac[1]};
    env.hash_key = hash_key;
    in.workers = std::make_unique<PlainWorkers>(in.svc, env);
    auto a = control::SyncAgent::open(in.cfg.sync, in.cfg.timeouts, unix_ms(), [](const std::string&) {});
    if (!a) {
        fmt::print(stderr, "sync_path_bench: {}\n", a.error());
        std::exit(1);
    }
    in.agent = std::move(*a);
    return in;
}

// One generated connection. Its client is 192.0.2.(1 + i % 250), port 1024 + i / 250.
struct Flow {
    uint16_t snat_port = 0;  // host order; 0: the SYN was not forwarded
    uint8_t backend = 0;
    uint64_t est_us = 0;     // when the client's ACK established it at A (since the run's start)
    uint64_t inst_us = 0;    // when B's worker first installed it
};

uint32_t flow_of(const uint8_t* client, uint16_t port_host) {
    return uint32_t(port_host - kFirstPort) * kClients + (client[3] - 1u);
}

struct Result {
    double flows_per_s = 0, adds_per_s = 0;
    double dgrams_per_flow = 0, bytes_per_flow = 0, entries_per_flow = 0, back_bytes_per_flow = 0;
    double dgrams_per_started = 0, bytes_per_started = 0;
    double cpu_a = 0, cpu_b = 0, cpu_b_install = 0, cpu_dp = 0;  // shares of one core
    double lag_p50 = 0, lag_p99 = 0, inst_p50 = 0, inst_p99 = 0;
    double held = 0, state_match = 0, extra = 0, a_sessions = 0;
    double cancelled_share = 0;
    double missing = 0, filled = 0, lost = 0, late = 0, resent = 0, resend_unavailable = 0, nack_ranges = 0;
    double relay_dropped = 0, refresh_sent = 0;
    double syn_not_forwarded = 0, reports_lost = 0, install_refused = 0, conflicts = 0, rate_deferred = 0;
};

double pct(std::vector<uint64_t>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return static_cast<double>(v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))]);
}

// A session as a comparable key and its state.
using Sessions = std::unordered_map<uint64_t, lb::FlowState>;
Sessions sessions_of(PlainWorkers& w, bool learnt) {
    Sessions out;
    for (uint16_t i = 0; i < kWorkers; ++i) {
        uint32_t cursor = 0;
        while (cursor < kFlowCapacity) {
            auto chunk = w.walk_sessions(i, false, cursor, 65536, learnt, 1u << 17);
            for (const auto& r : chunk->sessions) {
                uint32_t a = 0;
                std::memcpy(&a, r.client, 4);
                out[uint64_t(a) << 32 | uint64_t(r.client_port_raw) << 16 | r.vip] = r.state;
            }
            cursor = chunk->next;
        }
    }
    return out;
}

class Run {
public:
    Run(const Scenario& sc, const std::string& key, uint64_t seed) : sc_(sc) {
        if (!lb::HashKey::random(hash_key_)) {
            fmt::print(stderr, "sync_path_bench: no random hash key\n");
            std::exit(1);
        }
        const uint16_t pa = free_port(), pb = free_port(), pr = free_port();
        relay_ = std::make_unique<Relay>(pr, pa, pb, sc.loss, seed);
        a_ = make_instance(1, pa, pr, key, sc, hash_key_);
        b_ = make_instance(2, pb, pr, key, sc, hash_key_);
        warm_ms_ = sc.min_age_ms + sc.life_ms + kClosingS * 1000 + 700;
        gen_end_us_ = uint64_t(warm_ms_ + sc.measure_ms) * 1000;
        flows_.resize(static_cast<size_t>(uint64_t(sc.rate) * (warm_ms_ + sc.measure_ms) / 1000 + 1));
        frames_.resize(kBatch * kFrameBytes);
        refs_.resize(kBatch);
        for (int b = 0; b < kBackends; ++b) backend_ip_[b] = {198, 51, 100, static_cast<uint8_t>(11 + b)};
        for (int b = 0; b < kBackends; ++b) backend_mac_[b] = net::Mac{{0x02, 0, 0, 0, 1, static_cast<uint8_t>(11 + b)}};
    }

    Result go() {
        // Both agents ask each other for a resync at start: let them finish (empty states).
        const uint64_t t0 = mono_us();
        while ((!a_.agent->hold_reason().empty() || !b_.agent->hold_reason().empty()) && mono_us() - t0 < 3'000'000) {
            turn(0, false);
            sleep_until(mono_us() + 1000);
        }
        start_us_ = mono_us();
        Snapshot w0, w1;
        bool have_w0 = false, have_w1 = false;
        for (;;) {
            const uint64_t now = mono_us() - start_us_;
            const bool traffic = now < gen_end_us_;
            turn(now, traffic);
            if (!have_w0 && now >= uint64_t(warm_ms_) * 1000) {
                w0 = snap(now);
                have_w0 = true;
            }
            if (!have_w1 && !traffic) {
                w1 = snap(now);
                have_w1 = true;
            }
            if (now >= gen_end_us_ + uint64_t(sc_.settle_ms) * 1000) break;
            sleep_until(start_us_ + (now / 1000 + 1) * 1000);  // the next millisecond
        }
        return result(w0, w1);
    }

private:
    struct Snapshot {
        uint64_t us = 0, started = 0, cpu_a = 0, cpu_b = 0, cpu_bi = 0, cpu_dp = 0;
        sync::SyncCounters pa, pb;
        control::SyncAgentCounters ca;
        size_t established = 0;
    };
    Snapshot snap(uint64_t now) const {
        Snapshot s;
        s.us = now;
        s.started = next_flow_;
        s.cpu_a = cpu_a_;
        s.cpu_b = cpu_b_;
        s.cpu_bi = cpu_bi_;
        s.cpu_dp = cpu_dp_;
        s.pa = a_.agent->protocol_counters();
        s.pb = b_.agent->protocol_counters();
        s.ca = a_.agent->counters();
        return s;
    }

    static void sleep_until(uint64_t mono) {
        timespec ts{static_cast<time_t>(mono / 1'000'000), static_cast<long>(mono % 1'000'000) * 1000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    }

    // One 1 ms turn: the due packets through A, expiry, the agents, the link.
    void turn(uint64_t now_us, bool traffic) {
        {
            clock_ms_ = 1000 + static_cast<uint32_t>(now_us / 1000);
            a_.workers->set_clock(clock_ms_);
            b_.workers->set_clock(clock_ms_);
            if (traffic) generate(now_us);
            {
                CpuTimer t(cpu_dp_);
                for (uint16_t w = 0; w < kWorkers; ++w) a_.workers->dp(w).expire(clock_ms_, kExpireBudget);
            }
            for (uint16_t w = 0; w < kWorkers; ++w) b_.workers->dp(w).expire(clock_ms_, kExpireBudget);
        }
        {
            CpuTimer t(cpu_a_);
            a_.agent->poll(unix_ms(), *a_.workers, *a_.svc);
        }
        relay_->pump();
        {
            CpuTimer t(cpu_b_);
            b_.agent->poll(unix_ms(), *b_.workers, *b_.svc);
        }
        {
            CpuTimer t(cpu_bi_);
            b_.workers->apply();
        }
        // When B's worker first held each flow (outside the timed part).
        for (const auto& r : b_.workers->applied()) {
            if (r.kind != lb::SessionReport::Kind::up || r.addr_len != 4) continue;
            const uint32_t i = flow_of(r.client, ntohs(r.client_port_raw));
            if (i < flows_.size() && !flows_[i].inst_us) flows_[i].inst_us = now_us;
        }
        relay_->pump();
    }

    // Phase k of every flow whose time has come, phases in order, so a flow's SYN is through A
    // before its SYN-ACK is built.
    struct Phase {
        uint32_t at_ms;
        enum Kind { syn, synack, ack, req, resp, fin_c, fin_b, last_ack } kind;
    };
    void generate(uint64_t now_us) {
        const uint32_t half = sc_.life_ms / 2;
        const Phase phases[] = {{0, Phase::syn},        {1, Phase::synack},           {2, Phase::ack},
                                {half, Phase::req},     {half + 1, Phase::resp},      {sc_.life_ms, Phase::fin_c},
                                {sc_.life_ms + 1, Phase::fin_b}, {sc_.life_ms + 2, Phase::last_ack}};
        // New flows: those whose start time has come.
        const uint64_t due = std::min<uint64_t>(flows_.size(), now_us * sc_.rate / 1'000'000 + 1);
        if (due > next_flow_) next_flow_ = due;
        for (size_t k = 0; k < std::size(phases); ++k) {
            size_t n = 0;
            auto& c = cursor_[k];
            while (c < next_flow_ && start_us(c) + uint64_t(phases[k].at_ms) * 1000 <= now_us) {
                if (phases[k].kind == Phase::syn || flows_[c].snat_port) {
                    build(c, phases[k].kind, n);
                    ids_[n++] = static_cast<uint32_t>(c);
                    if (n == kBatch) {
                        send_batch(phases[k].kind, n, now_us);
                        n = 0;
                    }
                }
                ++c;
            }
            if (n) send_batch(phases[k].kind, n, now_us);
        }
    }
    uint64_t start_us(size_t i) const { return uint64_t(i) * 1'000'000 / sc_.rate; }

    void build(size_t i, Phase::Kind k, size_t slot) {
        uint8_t* f = frames_.data() + slot * kFrameBytes;
        const uint8_t client[4] = {192, 0, 2, static_cast<uint8_t>(1 + i % kClients)};
        const auto cport = static_cast<uint16_t>(kFirstPort + i / kClients);
        const uint32_t cs = static_cast<uint32_t>(i * 2654435761u), bs = ~cs;  // the ends' initial sequences
        const Flow& fl = flows_[i];
        const uint8_t* snat = a_snat_;
        const uint8_t* be = backend_ip_[fl.backend].data();
        const net::Mac& bmac = backend_mac_[fl.backend];
        size_t len = 0;
        uint16_t port = 0;
        using net::kTcpAck, net::kTcpSyn, net::kTcpFin, net::kTcpPsh;
        switch (k) {
            case Phase::syn: len = build_tcp4(f, kRouterMac, kPortMac[0], client, kVip, cport, kVipPort, cs, 0, kTcpSyn, 0); break;
            case Phase::synack:
                len = build_tcp4(f, bmac, kPortMac[1], be, snat, kBackendPort, fl.snat_port, bs, cs + 1, kTcpSyn | kTcpAck, 0);
                port = 1;
                break;
            case Phase::ack: len = build_tcp4(f, kRouterMac, kPortMac[0], client, kVip, cport, kVipPort, cs + 1, bs + 1, kTcpAck, 0); break;
            case Phase::req:
                len = build_tcp4(f, kRouterMac, kPortMac[0], client, kVip, cport, kVipPort, cs + 1, bs + 1, kTcpAck | kTcpPsh, 100);
                break;
            case Phase::resp:
                len = build_tcp4(f, bmac, kPortMac[1], be, snat, kBackendPort, fl.snat_port, bs + 1, cs + 101, kTcpAck | kTcpPsh, 200);
                port = 1;
                break;
            case Phase::fin_c:
                len = build_tcp4(f, kRouterMac, kPortMac[0], client, kVip, cport, kVipPort, cs + 101, bs + 201, kTcpAck | kTcpFin, 0);
                break;
            case Phase::fin_b:
                len = build_tcp4(f, bmac, kPortMac[1], be, snat, kBackendPort, fl.snat_port, bs + 201, cs + 102, kTcpAck | kTcpFin, 0);
                port = 1;
                break;
            case Phase::last_ack:
                len = build_tcp4(f, kRouterMac, kPortMac[0], client, kVip, cport, kVipPort, cs + 102, bs + 202, kTcpAck, 0);
                break;
        }
        lb::PacketRef& p = refs_[slot];
        p = lb::PacketRef{};
        p.data = f;
        p.len = static_cast<uint32_t>(len);
        p.cap = kFrameBytes;
        p.in_port = port;
        // The NIC's RSS: the queue of the packet's own 4-tuple.
        const uint8_t* ip = f + net::kEthHdrLen;
        queue_[slot] = a_.workers->dp(0).rss_queue(ip + net::Ipv4Off::src, ip + net::Ipv4Off::dst, 4,
                                                   htons(net::load_be16(ip + 20)), htons(net::load_be16(ip + 22)));
    }

    // The batch through A's workers, each its own packets in bursts; redirects go to their owner.
    void send_batch(Phase::Kind k, size_t n, uint64_t now_us) {
        for (uint16_t w = 0; w < kWorkers; ++w) {
            std::vector<lb::PacketRef> b;
            std::vector<size_t> slots;
            for (size_t i = 0; i < n; ++i)
                if (queue_[i] == w) {
                    b.push_back(refs_[i]);
                    slots.push_back(i);
                }
            for (size_t off = 0; off < b.size(); off += lb::Dataplane::kMaxBurst) {
                const auto m = static_cast<uint32_t>(std::min<size_t>(lb::Dataplane::kMaxBurst, b.size() - off));
                CpuTimer t(cpu_dp_);
                a_.workers->dp(w).process(b.data() + off, m, clock_ms_);
            }
            for (size_t j = 0; j < b.size(); ++j) {
                lb::PacketRef& p = b[j];
                if (p.verdict == lb::Verdict::redirect) {
                    p.redirected = true;
                    CpuTimer t(cpu_dp_);
                    a_.workers->dp(p.out).process(&p, 1, clock_ms_);
                }
                refs_[slots[j]] = p;
            }
        }
        for (size_t i = 0; i < n; ++i) {
            const lb::PacketRef& p = refs_[i];
            Flow& fl = flows_[ids_[i]];
            if (p.verdict != lb::Verdict::tx) {
                ++not_forwarded_;
                continue;
            }
            if (k == Phase::syn) {
                const uint8_t* ip = p.data + net::kEthHdrLen;
                std::memcpy(a_snat_, ip + net::Ipv4Off::src, 4);
                fl.snat_port = net::load_be16(ip + 20);
                fl.backend = static_cast<uint8_t>(ip[net::Ipv4Off::dst + 3] - 11);
                if (fl.backend >= kBackends) fl.snat_port = 0;
            } else if (k == Phase::ack) {
                fl.est_us = now_us;
            }
        }
    }

    Result result(const Snapshot& w0, const Snapshot& w1) {
        Result r;
        const double secs = double(w1.us - w0.us) / 1e6;
        const double wall_ns = double(w1.us - w0.us) * 1000;
        const double started = double(w1.started - w0.started);
        const double adds = double(w1.ca.adds_sent - w0.ca.adds_sent);
        r.flows_per_s = started / secs;
        r.adds_per_s = adds / secs;
        const double dg = double(w1.pa.datagrams_sent - w0.pa.datagrams_sent);
        const double by = double(w1.pa.bytes_sent - w0.pa.bytes_sent);
        const double en = double(w1.pa.entries_sent - w0.pa.entries_sent);
        const double back = double(w1.pb.bytes_sent - w0.pb.bytes_sent);
        if (adds > 0) {
            r.dgrams_per_flow = dg / adds;
            r.bytes_per_flow = by / adds;
            r.entries_per_flow = en / adds;
            r.back_bytes_per_flow = back / adds;
        }
        r.dgrams_per_started = dg / started;
        r.bytes_per_started = by / started;
        r.cpu_a = double(w1.cpu_a - w0.cpu_a) / wall_ns;
        r.cpu_b = double(w1.cpu_b - w0.cpu_b) / wall_ns;
        r.cpu_b_install = double(w1.cpu_bi - w0.cpu_bi) / wall_ns;
        r.cpu_dp = double(w1.cpu_dp - w0.cpu_dp) / wall_ns;
        r.lag_p50 = double(b_.agent->lag_percentile(0.5));
        r.lag_p99 = double(b_.agent->lag_percentile(0.99));
        std::vector<uint64_t> delays;
        for (size_t i = 0; i < next_flow_; ++i) {
            const Flow& f = flows_[i];
            if (f.est_us >= w0.us && f.est_us < w1.us && f.inst_us)
                delays.push_back(f.inst_us - f.est_us);
        }
        r.inst_p50 = pct(delays, 0.5) / 1000.0;
        r.inst_p99 = pct(delays, 0.99) / 1000.0;
        const auto ca = a_.agent->counters();
        if (ca.adds_queued) r.cancelled_share = double(ca.reports_cancelled) / double(ca.adds_queued);
        // B against A, once the traffic has stopped and the agents have run on.
        const Sessions sa = sessions_of(*a_.workers, false), sb = sessions_of(*b_.workers, true);
        size_t held = 0, same = 0, extra = 0;
        for (const auto& [k, st] : sa)
            if (auto it = sb.find(k); it != sb.end()) {
                ++held;
                same += it->second == st;
            }
        for (const auto& [k, st] : sb) extra += !sa.count(k);
        r.a_sessions = double(sa.size());
        if (!sa.empty()) {
            r.held = double(held) / double(sa.size());
            r.state_match = double(same) / double(sa.size());
        }
        r.extra = double(extra);
        const auto pb = b_.agent->protocol_counters(), pa = a_.agent->protocol_counters();
        r.missing = double(pb.missing);
        r.filled = double(pb.filled);
        r.lost = double(pb.lost);
        r.late = double(pb.late);
        r.resent = double(pa.resent);
        r.resend_unavailable = double(pa.resend_unavailable);
        r.nack_ranges = double(pb.nack_ranges_sent);
        r.relay_dropped = double(relay_->dropped_ab + relay_->dropped_ba);
        r.refresh_sent = double(ca.refresh_sent);
        r.rate_deferred = double(ca.rate_deferred);
        r.syn_not_forwarded = double(not_forwarded_);
        const lb::WorkerCounters wa = a_.workers->counters(), wb = b_.workers->counters();
        r.reports_lost = double(wa.sync_reports_lost);
        r.install_refused = double(wb.sync_install_refused);
        r.conflicts = double(wb.sync_conflicts);
        return r;
    }

    Scenario sc_;
    lb::HashKey hash_key_;
    std::unique_ptr<Relay> relay_;
    Instance a_, b_;
    uint32_t warm_ms_ = 0;
    uint64_t gen_end_us_ = 0, start_us_ = 0;
    uint32_t clock_ms_ = 1000;
    std::vector<Flow> flows_;
    size_t next_flow_ = 0;
    size_t cursor_[8] = {};
    std::vector<uint8_t> frames_;
    std::vector<lb::PacketRef> refs_;
    uint16_t queue_[kBatch] = {};
    uint32_t ids_[kBatch] = {};
    uint8_t a_snat_[4] = {203, 0, 113, 100};
    std::array<uint8_t, 4> backend_ip_[kBackends];
    net::Mac backend_mac_[kBackends];
    uint64_t cpu_a_ = 0, cpu_b_ = 0, cpu_bi_ = 0, cpu_dp_ = 0;
    uint64_t not_forwarded_ = 0;
};

// The tier's key, in a directory of its own, readable by this user only.
std::string write_key(std::string& dir) {
    char tmpl[] = "/tmp/sync-path-bench.XXXXXX";
    if (!::mkdtemp(tmpl)) {
        fmt::print(stderr, "sync_path_bench: mkdtemp: {}\n", std::strerror(errno));
        std::exit(1);
    }
    dir = tmpl;
    const std::string path = dir + "/sync.key";
    std::random_device rd;
    std::string hex;
    for (int i = 0; i < 32; ++i) hex += fmt::format("{:02x}", rd() & 0xFF);
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f || ::fchmod(fileno(f), 0600) != 0 || std::fputs(hex.c_str(), f) < 0 || std::fclose(f) != 0) {
        fmt::print(stderr, "sync_path_bench: {}: {}\n", path, std::strerror(errno));
        std::exit(1);
    }
    return path;
}

struct Figure {
    const char* label;
    double Result::*field;
    double scale;
    const char* fmt;
};
const Figure kFigures[] = {
    {"new flows/s (achieved)", &Result::flows_per_s, 1, "{:.0f}"},
    {"adds sent/s", &Result::adds_per_s, 1, "{:.0f}"},
    {"A->B datagrams per replicated flow", &Result::dgrams_per_flow, 1, "{:.4f}"},
    {"A->B bytes per replicated flow (UDP payload)", &Result::bytes_per_flow, 1, "{:.1f}"},
    {"A->B entries per replicated flow", &Result::entries_per_flow, 1, "{:.2f}"},
    {"B->A bytes per replicated flow", &Result::back_bytes_per_flow, 1, "{:.2f}"},
    {"A->B datagrams per started flow", &Result::dgrams_per_started, 1, "{:.4f}"},
    {"A->B bytes per started flow", &Result::bytes_per_started, 1, "{:.1f}"},
    {"A agent poll() CPU, % of a core", &Result::cpu_a, 100, "{:.2f}"},
    {"B agent poll() CPU, % of a core", &Result::cpu_b, 100, "{:.2f}"},
    {"B workers' installs CPU, % of a core", &Result::cpu_b_install, 100, "{:.2f}"},
    {"A data path CPU, % of a core", &Result::cpu_dp, 100, "{:.2f}"},
    {"B lag p50, ms", &Result::lag_p50, 1, "{:.0f}"},
    {"B lag p99, ms", &Result::lag_p99, 1, "{:.0f}"},
    {"established at A -> installed at B, p50, ms", &Result::inst_p50, 1, "{:.1f}"},
    {"established at A -> installed at B, p99, ms", &Result::inst_p99, 1, "{:.1f}"},
    {"adds cancelled by --sync-min-age, %", &Result::cancelled_share, 100, "{:.1f}"},
    {"A's sessions at the end", &Result::a_sessions, 1, "{:.0f}"},
    {"of them held by B, %", &Result::held, 100, "{:.3f}"},
    {"of them held by B in A's state, %", &Result::state_match, 100, "{:.3f}"},
    {"B's sessions A no longer has", &Result::extra, 1, "{:.0f}"},
    {"datagrams dropped by the link", &Result::relay_dropped, 1, "{:.0f}"},
    {"B: stream numbers missing", &Result::missing, 1, "{:.0f}"},
    {"B: filled", &Result::filled, 1, "{:.0f}"},
    {"B: lost (given up)", &Result::lost, 1, "{:.0f}"},
    {"B: late", &Result::late, 1, "{:.0f}"},
    {"B: NACK ranges sent", &Result::nack_ranges, 1, "{:.0f}"},
    {"A: resent", &Result::resent, 1, "{:.0f}"},
    {"A: resend unavailable", &Result::resend_unavailable, 1, "{:.0f}"},
    {"A: refresh adds sent", &Result::refresh_sent, 1, "{:.0f}"},
    {"A: adds deferred by --sync-rate (turns)", &Result::rate_deferred, 1, "{:.0f}"},
    {"A: packets not forwarded", &Result::syn_not_forwarded, 1, "{:.0f}"},
    {"A: session reports lost (ring full)", &Result::reports_lost, 1, "{:.0f}"},
    {"B: installs refused", &Result::install_refused, 1, "{:.0f}"},
    {"B: conflicts", &Result::conflicts, 1, "{:.0f}"},
};

std::string spread(std::vector<double> v, const Figure& f) {
    std::sort(v.begin(), v.end());
    auto one = [&](double x) { return fmt::format(fmt::runtime(f.fmt), x * f.scale); };
    const std::string med = one(v[v.size() / 2]);
    if (v.size() == 1 || one(v.front()) == one(v.back())) return med;
    return fmt::format("{} [{} – {}]", med, one(v.front()), one(v.back()));
}

std::vector<Scenario> scenarios() {
    std::vector<Scenario> v;
    auto add = [&](std::string name, std::string what, uint32_t rate, uint32_t life, uint32_t age, double loss,
                   uint32_t refresh) {
        Scenario s;
        s.name = std::move(name);
        s.what = std::move(what);
        s.rate = rate;
        s.life_ms = life;
        s.min_age_ms = age;
        s.loss = loss;
        s.refresh_ms = refresh;
        v.push_back(s);
    };
    add("10k", "10,000 new flows/s of 1 s, --sync-min-age 500ms", 10'000, 1000, 500, 0, 0);
    add("100k", "100,000 new flows/s of 1 s, --sync-min-age 500ms", 100'000, 1000, 500, 0, 0);
    add("10k-short", "10,000 new flows/s of 0.2 s, --sync-min-age 500ms", 10'000, 200, 500, 0, 0);
    add("10k-short-age0", "10,000 new flows/s of 0.2 s, --sync-min-age 0", 10'000, 200, 0, 0, 0);
    add("10k-loss1", "as 10k, the link drops 1% of datagrams", 10'000, 1000, 500, 0.01, 0);
    add("10k-loss10", "as 10k, the link drops 10% of datagrams", 10'000, 1000, 500, 0.10, 0);
    add("10k-loss10-refresh", "as 10k-loss10, --sync-refresh 1s", 10'000, 1000, 500, 0.10, 1000);
    add("100k-loss10", "as 100k, the link drops 10% of datagrams", 100'000, 1000, 500, 0.10, 0);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 3;
    std::vector<std::string> only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--reps" && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--only" && i + 1 < argc) {
            std::string list = argv[++i];
            for (size_t p = 0; p <= list.size();) {
                const size_t c = std::min(list.find(',', p), list.size());
                only.push_back(list.substr(p, c - p));
                p = c + 1;
            }
        } else {
            fmt::print("usage: sync_path_bench [--reps N] [--only NAME,...]\n"
                       "scenarios:");
            for (const auto& s : scenarios()) fmt::print(" {}", s.name);
            fmt::print("\n");
            return a == "--help" ? 0 : 2;
        }
    }
    std::string dir;
    const std::string key = write_key(dir);
    std::vector<std::pair<Scenario, std::vector<Result>>> all;
    for (const auto& sc : scenarios()) {
        if (!only.empty() && std::find(only.begin(), only.end(), sc.name) == only.end()) continue;
        std::vector<Result> rs;
        for (int r = 0; r < reps; ++r) {
            fmt::print(stderr, "{} run {}/{}...\n", sc.name, r + 1, reps);
            Run run(sc, key, 0x5eed0000u + uint64_t(r));
            rs.push_back(run.go());
        }
        fmt::print("== {}: {} ({} runs: median [min – max])\n", sc.name, sc.what, reps);
        for (const auto& f : kFigures) {
            std::vector<double> v;
            for (const auto& r : rs) v.push_back(r.*f.field);
            fmt::print("  {:<48} {}\n", f.label, spread(v, f));
        }
        std::fflush(stdout);
        all.emplace_back(sc, std::move(rs));
    }
    ::unlink(key.c_str());
    ::rmdir(dir.c_str());
    return 0;
}
