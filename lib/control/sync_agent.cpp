#include "lib/control/sync_agent.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "lib/common/hash_mix.hpp"
#include "lib/net/endpoint.hpp"
#include "lib/sync/key.hpp"

namespace sluice::control {

namespace {

constexpr uint64_t kHeartbeatMs = 1000;
constexpr uint64_t kPollMs = 20;
// Records a walk looks at per worker and turn, and sessions it copies out at most: a few
// hundred microseconds of a worker's time between two bursts.
constexpr uint32_t kWalkBudget = 32768;
constexpr size_t kWalkMax = 8192;
constexpr size_t kPersistWalkMax = 1u << 17;
// Confirmed sessions waiting for their age or the rate budget; past this the oldest go unsent.
constexpr size_t kMaxPending = 1u << 20;
constexpr size_t kMaxDatagramsPerTurn = 512;
// A peer that is heard but whose resync fails is asked this many times more before this
// instance goes on without its state.
constexpr uint32_t kResyncRetries = 3;

net::IpAddr addr_of(const uint8_t* p, uint8_t len) { return len == 4 ? net::IpAddr::v4(p) : net::IpAddr::v6(p); }

int snat_index(const lb::Service& s, const net::IpAddr& a) {
    const auto& v = s.snat(a.family);
    const auto it = std::find(v.begin(), v.end(), a);
    return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

}  // namespace

SyncAgent::SessKey SyncAgent::key_of(const lb::SessionReport& r) noexcept {
    SessKey k;
    k.len = r.addr_len;
    k.vip = r.vip;
    k.port_raw = r.client_port_raw;
    std::memcpy(k.client.data(), r.client, r.addr_len == 4 ? 4 : 16);
    return k;
}

size_t SyncAgent::SessKeyHash::operator()(const SessKey& k) const noexcept {
    uint64_t a = 0, b = 0;
    std::memcpy(&a, k.client.data(), 8);
    std::memcpy(&b, k.client.data() + 8, 8);
    return static_cast<size_t>((a * kGoldenRatio64 ^ b) * kGoldenRatio64 ^ (uint64_t{k.vip} << 16 | k.port_raw));
}

Expected<std::unique_ptr<SyncAgent>> SyncAgent::open(const lb::SyncConf& conf, const lb::Timeouts& timeouts,
                                                     uint64_t unix_ms, std::function<void(const std::string&)> log) {
    auto key = sync::load_key_file(conf.key_file);
    if (!key) return make_error(fmt::format("--sync-key: {}", key.error()));
    const sync::Identity id{conf.id, sync::make_epoch(unix_ms)};
    auto enc = sync::Encoder::create(*key, id, sync::EncoderConfig{conf.mtu});
    if (!enc) return make_error(fmt::format("replication: {}", enc.error()));
    sync::ReceiverConfig rc;
    rc.self = conf.id;
    rc.self_epoch = id.epoch;
    for (const auto& p : conf.peers) rc.peers.push_back(p.id);
    auto rx = sync::Receiver::create(*key, rc);
    if (!rx) return make_error(fmt::format("replication: {}", rx.error()));

    const int fd = ::socket(conf.listen.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(fmt::format("replication socket: {}", std::strerror(errno)));
    const int rcvbuf = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
    if (!conf.listen.is_v4()) {
        const int only = 1;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
    }
    sockaddr_storage ss;
    const socklen_t len = net::to_sockaddr(conf.listen, conf.listen_port, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        const int e = errno;
        ::close(fd);
        return make_error(fmt::format("--sync-listen {}: {}{}", net::to_string(conf.listen, conf.listen_port),
                                      std::strerror(e),
                                      e == EADDRNOTAVAIL ? " (the address must be on one of this host's interfaces)"
                                                         : ""));
    }
    std::unique_ptr<SyncAgent> a(
        new SyncAgent(conf, timeouts, std::move(*enc), std::move(*rx), fd, std::move(log)));
    for (auto& p : a->peers_) a->ask_resync(p, unix_ms);
    a->flush_out(unix_ms);
    a->next_refresh_ms_ = unix_ms + a->conf_.refresh_ms;
    a->tokens_ms_ = unix_ms;
    a->log_(fmt::format("replication: instance {} on {}, {} peers; asking them for their state", conf.id,
                        net::to_string(conf.listen, conf.listen_port), conf.peers.size()));
    return a;
}

SyncAgent::SyncAgent(const lb::SyncConf& conf, const lb::Timeouts& timeouts, sync::Encoder enc, sync::Receiver rx,
                     int fd, std::function<void(const std::string&)> log)
    : conf_(conf), timeouts_(timeouts), enc_(std::move(enc)), rx_(std::move(rx)), fd_(fd), log_(std::move(log)) {
    for (const auto& p : conf.peers) peers_.push_back(PeerState{p});
    if (!conf_.refresh_ms)  // a Config built in code may leave it to the timeouts, as the options do
        conf_.refresh_ms = std::max<uint32_t>(1000, std::min(timeouts.tcp_established_ms, timeouts.udp_ms) / 2);
    buf_.resize(sync::kMaxDatagramBytes + 1);
    tokens_ = conf.rate;
}

SyncAgent::~SyncAgent() {
    if (fd_ >= 0) ::close(fd_);
}

SyncAgent::PeerState* SyncAgent::peer(uint32_t id) {
    for (auto& p : peers_)
        if (p.conf.id == id) return &p;
    return nullptr;
}

void SyncAgent::ask_resync(PeerState& p, uint64_t now) {
    p.resync_id = rx_.start_resync(p.conf.id, now);
    p.resync = PeerResync::asking;
    if (auto d = enc_.resync_request(p.conf.id, p.resync_id, now); d) send_to(p.conf.id, *d);
}

void SyncAgent::send_to(uint32_t id, const sync::Datagram& d) {
    const PeerState* p = peer(id);
    if (!p) return;
    sockaddr_storage ss;
    const socklen_t len = net::to_sockaddr(p->conf.addr, p->conf.port, ss);
    if (::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) ++c_.send_errors;
}

void SyncAgent::send_all(std::vector<sync::Datagram>& out) {
    for (const auto& d : out)
        for (const auto& p : peers_) send_to(p.conf.id, d);
    out.clear();
}

void SyncAgent::flush_out(uint64_t now) {
    enc_.flush(now);
    enc_.take(out_);
    send_all(out_);
}

std::optional<sync::Session> SyncAgent::to_session(const lb::SessionReport& r, const lb::Service& service) const {
    const auto& vips = service.vips();
    const auto& backends = service.backends();
    const net::Family f = r.addr_len == 4 ? net::Family::v4 : net::Family::v6;
    if (r.vip >= vips.size() || r.backend >= backends.size() || r.snat_idx >= service.snat(f).size())
        return std::nullopt;
    const lb::VipEntry& v = vips[r.vip];
    const lb::BackendEntry& b = backends[r.backend];
    sync::Session s;
    s.key.proto = v.proto;
    s.key.client = addr_of(r.client, r.addr_len);
    s.key.client_port = ntohs(r.client_port_raw);
    s.key.vip = v.addr;
    s.key.vip_port = ntohs(v.port_raw);
    s.backend = b.addr;
    s.backend_port = ntohs(b.port_raw);
    s.snat = service.snat(f)[r.snat_idx];
    s.snat_port = ntohs(r.snat_port_raw);
    s.state = r.state;
    s.replied = r.replied;
    s.fin_client = r.fin_client;
    s.fin_backend = r.fin_backend;
    s.idle_ms = std::min(r.idle_ms, sync::kMaxIdleMs);
    return s;
}

std::optional<sync::Persist> SyncAgent::to_persist(const lb::PersistEntry& e, const lb::Service& service,
                                                   uint32_t clock) const {
    const auto& vips = service.vips();
    const auto& backends = service.backends();
    if (e.key.vip >= vips.size() || e.backend >= backends.size() || backends[e.backend].vip != e.key.vip)
        return std::nullopt;
    const lb::VipEntry& v = vips[e.key.vip];
    const auto left = static_cast<int32_t>(e.expiry_ms - clock);
    if (left <= 0) return std::nullopt;
    const auto age = static_cast<int32_t>(clock - e.pinned_ms);
    sync::Persist p;
    p.key.proto = v.proto;
    p.key.vip = v.addr;
    p.key.vip_port = ntohs(v.port_raw);
    p.key.net = addr_of(e.key.net, e.key.family == 4 ? 4 : 16);
    p.key.prefix_len = e.key.mask_len;
    p.backend = backends[e.backend].addr;
    p.backend_port = ntohs(backends[e.backend].port_raw);
    p.left_ms = std::min<uint32_t>(static_cast<uint32_t>(left), lb::kMaxPersistMs);
    p.pinned_age_ms = age > 0 ? static_cast<uint32_t>(age) : 0;
    return p;
}

void SyncAgent::add(const sync::Entry& e, uint64_t now, uint64_t& counter) {
    if (enc_.add(e, now)) ++counter;
}

void SyncAgent::take_reports(uint64_t now, Workers& workers, const lb::Service& service) {
    for (const lb::Dataplane* dp : workers.dataplanes()) {
        lb::SessionRing* ring = dp->session_reports();
        if (!ring) continue;
        lb::SessionReport r;
        while (ring->pop(r)) {
            ++c_.reports;
            const SessKey k = key_of(r);
            auto it = pending_index_.find(k);
            if (r.kind == lb::SessionReport::Kind::down) {
                if (it != pending_index_.end()) {  // never sent: nothing to take back
                    pending_.erase(it->second);
                    pending_index_.erase(it);
                    ++c_.reports_cancelled;
                    continue;
                }
                if (closed_unsent_.erase(k)) {  // closed before its age came: never sent either
                    ++c_.reports_cancelled;
                    continue;
                }
                auto s = to_session(r, service);
                if (!s) {
                    ++c_.unknown_service;
                    continue;
                }
                urgent_.push_back(sync::SessionRemove{s->key});
                continue;
            }
            if (it != pending_index_.end()) {  // a state change before it was sent
                // Closed (FIN from both sides, or an RST) before --sync-min-age: a short flow,
                // which stays here. Its end is reported only when it expires, a closing timeout
                // later, long after its age has come: kept pending, it would be sent.
                if (r.state == lb::FlowState::tcp_closing && closed_unsent_.size() < kMaxPending) {
                    pending_.erase(it->second);
                    pending_index_.erase(it);
                    closed_unsent_.insert(k);
                    continue;
                }
                it->second->report = r;
                continue;
            }
            // A closed flow's tuple opened again (a new SYN): a session of its own, confirmed anew.
            const bool reopened = closed_unsent_.erase(k) != 0;
            // The first report of a session is its confirmation; any later one is a change of
            // a session already sent (or lost to a full ring), which goes at once.
            const bool first = r.state == lb::FlowState::tcp_established || r.state == lb::FlowState::udp;
            if (!first && !reopened) {
                if (auto s = to_session(r, service)) urgent_.push_back(*s);
                continue;
            }
            if (pending_.size() >= kMaxPending) {
                pending_index_.erase(key_of(pending_.front().report));
                pending_.pop_front();
                ++c_.pending_dropped;
            }
            pending_.push_back(Pending{r, now});
            pending_index_.emplace(k, std::prev(pending_.end()));
            ++c_.adds_queued;
        }
    }
    // Persistence entries (pins and their refreshes): few, and each one matters to a client.
    const uint32_t clock = workers.clock_ms();
    workers.relay_persist([&](const lb::PersistEntry& e) {
        if (auto p = to_persist(e, service, clock)) add(*p, now, c_.persist_sent);
    });
}

void SyncAgent::send_pending(uint64_t now, const lb::Service& service) {
    tokens_ = std::min<double>(conf_.rate, tokens_ + static_cast<double>(now - tokens_ms_) * conf_.rate / 1000.0);
    tokens_ms_ = now;
    for (const auto& e : urgent_) {
        if (std::holds_alternative<sync::SessionRemove>(e)) add(e, now, c_.removes_sent);
        else add(e, now, c_.updates_sent);
    }
    urgent_.clear();
    while (!pending_.empty() && now - pending_.front().first_ms >= conf_.min_age_ms) {
        if (tokens_ < 1) {
            ++c_.rate_deferred;
            break;
        }
        const Pending& p = pending_.front();
        if (auto s = to_session(p.report, service)) {
            // Its idle time as reported, plus the wait here.
            s->idle_ms = static_cast<uint32_t>(std::min<uint64_t>(s->idle_ms + (now - p.first_ms), sync::kMaxIdleMs));
            add(*s, now, c_.adds_sent);
            tokens_ -= 1;
        } else {
            ++c_.unknown_service;
        }
        pending_index_.erase(key_of(p.report));
        pending_.pop_front();
    }
}

void SyncAgent::step_walk(uint64_t now, Workers& workers, const lb::Service& service) {
    if (walks_.empty()) return;
    Walk& w = walks_.front();
    const auto nb = static_cast<uint16_t>(workers.dataplanes().size());
    if (w.worker < nb) {
        // Refreshes yield to new sessions: a chunk only while the budget holds a whole one (or
        // half a second of it, at low rates).
        if (!w.bulk && tokens_ < std::min<double>(kWalkMax, conf_.rate / 2.0)) return;
        auto chunk = workers.walk_sessions(w.worker, w.v6, w.cursor, kWalkBudget, w.bulk, kWalkMax);
        if (!chunk) {
            ++c_.walk_timeouts;
            return;
        }
        for (const auto& r : chunk->sessions) {
            auto s = to_session(r, service);
            if (!s) continue;
            if (w.bulk) {
                if (w.writer->add(*s, now)) ++c_.bulk_sent;
            } else {
                add(*s, now, c_.refresh_sent);
                tokens_ -= 1;
            }
        }
        w.cursor = chunk->next;
        const lb::Dataplane& dp = *workers.dataplanes()[w.worker];
        if (w.cursor >= (w.v6 ? dp.flows6().capacity() : dp.flows4().capacity())) {
            // The table's end: the other family, then the next worker.
            w.cursor = 0;
            if (!w.v6) {
                w.v6 = true;
            } else {
                w.v6 = false;
                ++w.worker;
            }
        }
    } else if (w.bulk && !w.persist_done) {
        const uint32_t clock = workers.clock_ms();
        for (uint16_t i = 0; i < nb; ++i) {
            auto entries = workers.walk_persist(i, kPersistWalkMax);
            if (!entries) {
                ++c_.walk_timeouts;
                continue;
            }
            for (const auto& e : *entries)
                if (auto p = to_persist(e, service, clock); p && w.writer->add(*p, now)) ++c_.bulk_sent;
        }
        w.persist_done = true;
    }
    if (w.bulk) {
        if (w.worker >= nb && w.persist_done) w.writer->finish(now);
        w.writer->take(out_);
        for (const auto& d : out_) send_to(w.peer, d);
        out_.clear();
        if (w.writer->finished()) {
            ++c_.resyncs_answered;
            log_(fmt::format("replication: sent peer {} our state ({} chunks)", w.peer, w.writer->chunks()));
            walks_.pop_front();
        }
    } else if (w.worker >= nb) {
        walks_.pop_front();
    }
}

void SyncAgent::install(const sync::Entry& e, const lb::Dataplane* dp0, uint32_t clock, const lb::Service& service,
                        std::vector<std::vector<lb::SessionReport>>& sessions, std::vector<lb::PersistEntry>& persist) {
    if (!dp0) return;  // no workers yet
    if (const auto* s = std::get_if<sync::Session>(&e); s || std::holds_alternative<sync::SessionRemove>(e)) {
        const sync::SessionKey& k = s ? s->key : std::get<sync::SessionRemove>(e).key;
        const uint16_t vport = htons(k.vip_port);
        const uint16_t vi = service.find_vip(k.vip.family, k.vip.bytes.data(), vport, static_cast<uint8_t>(k.proto));
        if (vi == lb::Service::kNoVip || service.vips()[vi].mode != lb::Mode::fullnat) {
            ++c_.unknown_service;
            return;
        }
        lb::SessionReport r;
        r.addr_len = k.client.is_v4() ? 4 : 16;
        r.proto = static_cast<uint8_t>(k.proto);
        r.vip = vi;
        r.client_port_raw = htons(k.client_port);
        std::memcpy(r.client, k.client.bytes.data(), r.addr_len);
        const uint16_t fwd = dp0->rss_queue(r.client, k.vip.bytes.data(), r.addr_len, r.client_port_raw, vport);
        if (!s) {
            r.kind = lb::SessionReport::Kind::down;
            // Its reply tuple is not in a remove: every worker that may hold it looks.
            for (size_t w = 0; w < sessions.size(); ++w) sessions[w].push_back(r);
            ++c_.removed;
            return;
        }
        const int bi = service.find_backend(vi, s->backend, s->backend_port);
        const int si = snat_index(service, s->snat);
        if (bi < 0 || si < 0) {
            ++c_.unknown_service;
            return;
        }
        r.backend = static_cast<uint16_t>(bi);
        r.snat_idx = static_cast<uint8_t>(si);
        r.snat_port_raw = htons(s->snat_port);
        r.state = s->state;
        r.replied = s->replied;
        r.fin_client = s->fin_client;
        r.fin_backend = s->fin_backend;
        r.idle_ms = s->idle_ms;
        sessions[fwd].push_back(r);
        // The backend's answers reach the worker RSS gives the reply tuple: with another
        // worker count than the session's maker, maybe not this one, which gets a copy.
        const uint16_t rev = dp0->rss_queue(s->backend.bytes.data(), s->snat.bytes.data(), r.addr_len,
                                               htons(s->backend_port), r.snat_port_raw);
        if (rev != fwd) sessions[rev].push_back(r);
        ++c_.installed;
        return;
    }
    if (const auto* p = std::get_if<sync::Persist>(&e)) {
        const uint16_t vi = service.find_vip(p->key.vip.family, p->key.vip.bytes.data(), htons(p->key.vip_port),
                                             static_cast<uint8_t>(p->key.proto));
        if (vi == lb::Service::kNoVip || !service.vips()[vi].persist_ms) {
            ++c_.unknown_service;
            return;
        }
        const uint16_t bport = p->backend_port ? p->backend_port : p->key.vip_port;
        const int bi = service.find_backend(vi, p->backend, bport);
        if (bi < 0) {
            ++c_.unknown_service;
            return;
        }
        lb::PersistEntry pe{};
        std::memcpy(pe.key.net, p->key.net.bytes.data(), p->key.net.is_v4() ? 4 : 16);
        pe.key.vip = vi;
        pe.key.family = p->key.net.is_v4() ? 4 : 6;
        pe.key.mask_len = p->key.prefix_len;
        pe.backend = static_cast<uint16_t>(bi);
        pe.expiry_ms = clock + p->left_ms;
        pe.pinned_ms = clock - p->pinned_age_ms;
        persist.push_back(pe);
        ++c_.persist_installed;
    }
    // Persistence removes are not sent by this version's instances: entries expire.
}

void SyncAgent::act(const sync::Action& a, uint64_t now) {
    using K = sync::Action::Kind;
    PeerState* p = peer(a.peer);
    switch (a.kind) {
        case K::hello:
            log_(fmt::format("replication: peer {} heard", a.peer));
            // A peer that did not answer our first request (down then) has state now.
            if (p && p->resync == PeerResync::unanswered) {
                p->retries = 0;
                ask_resync(*p, now);
            }
            break;
        case K::peer_restarted: log_(fmt::format("replication: peer {} restarted", a.peer)); break;
        case K::send_ack:
            if (auto ack = rx_.make_ack(a.peer, now))
                if (auto d = enc_.ack(*ack, now)) send_to(a.peer, *d);
            break;
        case K::resend: {
            std::vector<sync::Datagram> out;
            enc_.resend(a.first, a.last, out);
            for (const auto& d : out) send_to(a.peer, d);
            break;
        }
        case K::lost: break;  // counted by the receiver; the next refresh repairs it
        case K::resync_requested: {
            // A newer request of the same peer replaces one in progress.
            std::erase_if(walks_, [&](const Walk& w) { return w.bulk && w.peer == a.peer; });
            Walk w;
            w.bulk = true;
            w.peer = a.peer;
            w.writer.emplace(enc_.bulk(a.peer, a.epoch, a.resync_id));
            walks_.push_front(std::move(w));
            break;
        }
        case K::resync_done:
            if (p && a.resync_id == p->resync_id) {
                if (p->resync != PeerResync::done)
                    log_(fmt::format("replication: resynchronised from peer {}", a.peer));
                p->resync = PeerResync::done;
                p->holding = false;
            }
            break;
        case K::resync_failed:
            if (p && a.resync_id == p->resync_id && p->resync == PeerResync::asking) {
                // A peer that is there (heard lately) is asked again, a few times: its answer
                // or our request was lost. One that is silent is down: go on without it.
                const auto st = rx_.status(a.peer);
                if (st && st->heard && now - st->last_heard_ms < 3000 && ++p->retries <= kResyncRetries) {
                    ask_resync(*p, now);
                    break;
                }
                p->resync = PeerResync::unanswered;
                p->holding = false;
                log_(fmt::format("replication: peer {} did not answer the resync; going on without its state "
                                 "(asked again when it is heard)",
                                 a.peer));
            }
            break;
    }
}

void SyncAgent::receive(uint64_t now, Workers& workers, const lb::Service& service) {
    const auto dps = workers.dataplanes();
    const lb::Dataplane* dp0 = dps.empty() ? nullptr : dps[0];
    const uint32_t clock = workers.clock_ms();
    std::vector<std::vector<lb::SessionReport>> sessions(dps.size());
    std::vector<lb::PersistEntry> persist;
    for (size_t i = 0; i < kMaxDatagramsPerTurn; ++i) {
        const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), 0);
        if (n < 0) break;
        actions_.clear();
        if (!rx_.feed(std::span<const uint8_t>(buf_.data(), static_cast<size_t>(n)), now, delivery_)) {
            for (const auto& e : delivery_.entries) install(e, dp0, clock, service, sessions, persist);
            if (auto st = rx_.status(delivery_.peer))
                if (delivery_.type != sync::MsgType::ack && delivery_.type != sync::MsgType::resync_request)
                    note_lag(static_cast<uint64_t>(std::max<int64_t>(st->lag_ms, 0)));
            for (const auto& a : delivery_.actions) act(a, now);
        }
    }
    for (size_t w = 0; w < sessions.size(); ++w)
        if (!sessions[w].empty()) workers.send_sessions(static_cast<uint16_t>(w), std::move(sessions[w]));
    if (!persist.empty())
        for (size_t w = 0; w < sessions.size(); ++w) workers.send_persist(static_cast<uint16_t>(w), persist);
}

void SyncAgent::poll(uint64_t now, Workers& workers, const lb::Service& service) {
    last_now_ = now;
    take_reports(now, workers, service);
    send_pending(now, service);
    receive(now, workers, service);
    if (now >= next_poll_ms_) {
        next_poll_ms_ = now + kPollMs;
        actions_.clear();
        rx_.poll(now, actions_);
        for (const auto& a : actions_) act(a, now);
    }
    if (now >= next_refresh_ms_) {
        next_refresh_ms_ = now + conf_.refresh_ms;
        if (std::none_of(walks_.begin(), walks_.end(), [](const Walk& w) { return !w.bulk; })) walks_.push_back(Walk{});
    }
    step_walk(now, workers, service);
    if (now >= next_heartbeat_ms_) {
        next_heartbeat_ms_ = now + kHeartbeatMs;
        enc_.flush(now);
        enc_.take(out_);
        out_.push_back(enc_.heartbeat(now));
        send_all(out_);
    }
    flush_out(now);
}

void SyncAgent::note_lag(uint64_t lag_ms) {
    size_t b = 0;
    while (lag_ms && b + 1 < lag_hist_.size()) {
        lag_ms >>= 1;
        ++b;
    }
    ++lag_hist_[b];
}

uint64_t SyncAgent::lag_percentile(double p) const {
    uint64_t total = 0;
    for (auto v : lag_hist_) total += v;
    if (!total) return 0;
    const auto want = static_cast<uint64_t>(p * static_cast<double>(total));
    uint64_t seen = 0;
    for (size_t b = 0; b < lag_hist_.size(); ++b) {
        seen += lag_hist_[b];
        if (seen > want) return b == 0 ? 0 : (uint64_t{1} << b) - 1;  // the bucket's upper bound
    }
    return (uint64_t{1} << (lag_hist_.size() - 1));
}

std::string SyncAgent::hold_reason() const {
    std::string asking;
    for (const auto& p : peers_)
        if (p.holding) asking += (asking.empty() ? "" : ", ") + std::to_string(p.conf.id);
    return asking.empty() ? std::string() : "replication: resynchronising from peer " + asking;
}

sync::SyncCounters SyncAgent::protocol_counters() const {
    sync::SyncCounters t = enc_.counters();
    t.add(rx_.counters());
    return t;
}

std::string SyncAgent::stats() const {
    std::string o = fmt::format("sync instance={} pending={} walks={} lag_p50_ms={} lag_p99_ms={}\n", conf_.id,
                                pending_.size(), walks_.size(), lag_percentile(0.5), lag_percentile(0.99));
    for (const auto& s : rx_.status()) {
        const PeerState* p = nullptr;
        for (const auto& q : peers_)
            if (q.conf.id == s.id) p = &q;
        o += fmt::format("sync_peer id={} heard={} resync={} highest={} missing={} lag_ms={} rtt_ms={}\n", s.id,
                         s.heard ? "yes" : "no",
                         !p ? "?" : p->resync == PeerResync::done ? "done"
                                 : p->resync == PeerResync::asking ? "asking" : "unanswered",
                         s.highest, s.missing, s.lag_ms, s.rtt_ms);
    }
    std::string line = "sync_counters";
    protocol_counters().for_each([&](const char* name, uint64_t v) { line += fmt::format(" {}={}", name, v); });
    c_.for_each([&](const char* name, uint64_t v) { line += fmt::format(" agent_{}={}", name, v); });
    return o + line + "\n";
}

std::string SyncAgent::metrics() const {
    std::string o;
    o += "# HELP sluice_sync_events_total Replication between instances: the protocol's and the agent's counters.\n"
         "# TYPE sluice_sync_events_total counter\n";
    protocol_counters().for_each(
        [&](const char* name, uint64_t v) { o += fmt::format("sluice_sync_events_total{{event=\"{}\"}} {}\n", name, v); });
    c_.for_each([&](const char* name, uint64_t v) {
        o += fmt::format("sluice_sync_events_total{{event=\"agent_{}\"}} {}\n", name, v);
    });
    o += "# HELP sluice_sync_pending Confirmed sessions waiting for --sync-min-age or the rate budget.\n"
         "# TYPE sluice_sync_pending gauge\n";
    o += fmt::format("sluice_sync_pending {}\n", pending_.size());
    o += "# HELP sluice_sync_lag_ms Lag of accepted replication messages (receive minus send time).\n"
         "# TYPE sluice_sync_lag_ms gauge\n";
    o += fmt::format("sluice_sync_lag_ms{{quantile=\"0.5\"}} {}\n", lag_percentile(0.5));
    o += fmt::format("sluice_sync_lag_ms{{quantile=\"0.99\"}} {}\n", lag_percentile(0.99));
    o += "# HELP sluice_sync_peer_up Whether the peer was heard within the last 3 seconds.\n"
         "# TYPE sluice_sync_peer_up gauge\n";
    for (const auto& s : rx_.status())
        o += fmt::format("sluice_sync_peer_up{{peer=\"{}\"}} {}\n", s.id,
                         s.heard && last_now_ - s.last_heard_ms < 3000 ? 1 : 0);
    return o;
}

}  // namespace sluice::control
