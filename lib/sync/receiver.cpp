// The receiving side: checks in the order docs/sync-protocol.md ("Receiving") gives, then the
// per-peer state changes of a taken datagram.
// Thread contract: see receiver.hpp (one thread).
#include "lib/sync/receiver.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::sync {

const char* to_string(Action::Kind k) noexcept {
    switch (k) {
        case Action::Kind::hello: return "hello";
        case Action::Kind::peer_restarted: return "peer_restarted";
        case Action::Kind::send_ack: return "send_ack";
        case Action::Kind::lost: return "lost";
        case Action::Kind::resend: return "resend";
        case Action::Kind::resync_requested: return "resync_requested";
        case Action::Kind::resync_done: return "resync_done";
        case Action::Kind::resync_failed: return "resync_failed";
    }
    return "?";
}

Expected<Receiver> Receiver::create(const Key& key, ReceiverConfig cfg) {
    if (auto s = crypto_init(); !s) return Error{s.error()};
    if (cfg.self == 0) return make_error("sync: instance id 0 (expected 1..4294967295)");
    if (cfg.self_epoch == 0) return make_error("sync: epoch 0 (make_epoch() gives one)");
    for (size_t i = 0; i < cfg.peers.size(); ++i) {
        const uint32_t p = cfg.peers[i];
        if (p == 0) return make_error("sync: peer instance id 0");
        if (p == cfg.self) return make_error(fmt::format("sync: peer {} is this instance's own id", p));
        if (std::find(cfg.peers.begin(), cfg.peers.begin() + static_cast<ptrdiff_t>(i), p) !=
            cfg.peers.begin() + static_cast<ptrdiff_t>(i))
            return make_error(fmt::format("sync: peer {} listed twice", p));
    }
    if (!cfg.gap_timeout_ms || !cfg.nack_interval_ms || !cfg.resync_timeout_ms || !cfg.forget_ms)
        return make_error("sync: a receiver timeout of 0 ms");
    return Receiver(key, std::move(cfg));
}

Receiver::Receiver(const Key& key, ReceiverConfig cfg) : key_(key), cfg_(std::move(cfg)) {
    peers_.resize(cfg_.peers.size());
    for (size_t i = 0; i < peers_.size(); ++i) peers_[i].id = cfg_.peers[i];
    scratch_.reserve(kMaxDatagramBytes);
}

Receiver::Peer* Receiver::find(uint32_t id) noexcept {
    for (Peer& p : peers_)
        if (p.id == id) return &p;
    return nullptr;
}
const Receiver::Peer* Receiver::find(uint32_t id) const noexcept { return const_cast<Receiver*>(this)->find(id); }

void Receiver::note_lag(Peer& p, uint64_t sent_ms, uint64_t now_ms) noexcept {
    p.lag_ms = static_cast<int64_t>(now_ms - sent_ms);
    const uint64_t lag = p.lag_ms > 0 ? static_cast<uint64_t>(p.lag_ms) : 0;
    ++c_.lag_samples;
    c_.lag_ms_sum += lag;
    c_.lag_ms_max = std::max(c_.lag_ms_max, lag);
}

void Receiver::new_life(Peer& p, uint64_t epoch, bool keep_resync, std::vector<Action>& actions) {
    if (p.heard) {
        ++c_.peer_restarts;
        actions.push_back({.kind = Action::Kind::peer_restarted, .peer = p.id, .epoch = epoch});
        // A resync asked of its earlier life will not be answered, unless this message is a
        // chunk of it (the request reached the new life).
        if (p.resync_active && !keep_resync) {
            p.resync_active = false;
            ++c_.resyncs_failed;
            actions.push_back({.kind = Action::Kind::resync_failed, .peer = p.id, .resync_id = p.resync_id});
        }
    } else {
        ++c_.peers_new;
        actions.push_back({.kind = Action::Kind::hello, .peer = p.id, .epoch = epoch});
    }
    p.heard = true;
    p.epoch = epoch;
    p.stream.reset();
    p.control.reset();
    p.echo_sent_ms = 0;
    p.last_nack_ms = 0;
}

void Receiver::count_stream(Peer& p, const StreamTracker::Outcome& o, std::vector<Action>& actions) {
    c_.missing += o.new_missing;
    c_.filled += o.filled;
    c_.late += o.late;
    if (o.lost) {
        c_.lost += o.lost;
        actions.push_back({.kind = Action::Kind::lost, .peer = p.id, .first = o.lost_span.first, .last = o.lost_span.last});
    }
    if (o.new_missing) actions.push_back({.kind = Action::Kind::send_ack, .peer = p.id});
}

void Receiver::take_chunk(Peer& p, const Message& m, uint64_t now_ms, std::vector<Action>& actions) {
    const uint32_t i = m.chunk.index;
    if (p.chunks.size() <= i) p.chunks.resize(i + 1);
    if (!p.chunks[i]) {
        p.chunks[i] = true;
        ++p.chunks_received;
    }
    if (m.header.flags & kFlagDone) p.chunks_total = i + 1;
    p.resync_last_ms = now_ms;
    if (p.chunks_total && p.chunks_received == p.chunks_total) {
        p.resync_active = false;
        ++c_.resyncs_completed;
        actions.push_back({.kind = Action::Kind::resync_done, .peer = p.id, .resync_id = p.resync_id});
        p.chunks.clear();
    }
}

std::optional<Refusal> Receiver::feed(std::span<const uint8_t> d, uint64_t now_ms, Delivery& out) {
    out.peer = 0;
    out.seq = 0;
    out.bulk = false;
    out.entries.clear();
    out.actions.clear();
    ++c_.datagrams_received;
    c_.bytes_received += d.size();

    // Before the tag: only what does not depend on the sender being genuine.
    if (auto r = check_frame(d)) return refuse(*r);
    scratch_.assign(d.begin(), d.end());
    if (!open(key_, scratch_.data(), scratch_.size())) return refuse(Refusal::bad_tag);
    if (auto r = decode_opened(scratch_, msg_)) return refuse(*r);
    const Header& h = msg_.header;

    // The sender and its life.
    if (h.sender == cfg_.self) return refuse(Refusal::from_self);
    Peer* p = find(h.sender);
    if (!p) return refuse(Refusal::unknown_peer);
    bool fresh_life = !p->heard;
    if (p->heard && h.epoch != p->epoch) {
        const bool forgotten = now_ms >= p->last_heard_ms && now_ms - p->last_heard_ms >= cfg_.forget_ms;
        if (h.epoch < p->epoch && !forgotten) return refuse(Refusal::stale_epoch);
        fresh_life = true;
    }
    if (!fresh_life) {
        const auto check = in_stream(h.type) ? p->stream.check(h.seq) : p->control.check(h.seq);
        if (check == ReplayWindow::Check::replayed) return refuse(Refusal::replayed);
        if (check == ReplayWindow::Check::too_old) return refuse(Refusal::too_old);
    }

    // What the body says about us.
    bool ours = false;  // a chunk of the resync this instance is waiting for
    switch (h.type) {
        case MsgType::ack:
            if (msg_.ack.target != cfg_.self || msg_.ack.target_epoch != cfg_.self_epoch)
                return refuse(Refusal::wrong_target);
            break;
        case MsgType::resync_request:
            if (msg_.resync.target != cfg_.self) return refuse(Refusal::wrong_target);
            break;
        case MsgType::bulk_chunk: {
            const ChunkInfo& ci = msg_.chunk;
            if (ci.target != cfg_.self || ci.target_epoch != cfg_.self_epoch) return refuse(Refusal::wrong_target);
            if (!p->resync_active || ci.resync_id != p->resync_id) return refuse(Refusal::stale_resync);
            // A last chunk below one already received, or a chunk past the last: not one resync.
            if ((h.flags & kFlagDone) && ci.index + 1 < p->chunks.size()) return refuse(Refusal::bad_value);
            if (p->chunks_total && ci.index >= p->chunks_total) return refuse(Refusal::bad_value);
            ours = true;
            break;
        }
        case MsgType::entries:
        case MsgType::heartbeat: break;
    }

    // Taken: from here on, state changes.
    if (fresh_life) new_life(*p, h.epoch, ours, out.actions);
    p->last_heard_ms = now_ms;
    out.peer = p->id;
    out.type = h.type;
    out.seq = h.seq;
    ++c_.accepted;
    if (!in_stream(h.type)) p->control.mark(h.seq);

    switch (h.type) {
        case MsgType::entries:
            count_stream(*p, p->stream.accept(h.seq, now_ms), out.actions);
            p->echo_sent_ms = h.sent_ms;
            note_lag(*p, h.sent_ms, now_ms);
            break;
        case MsgType::heartbeat:
            ++c_.heartbeats_received;
            count_stream(*p, p->stream.announce(msg_.heartbeat.highest, now_ms), out.actions);
            p->echo_sent_ms = h.sent_ms;
            note_lag(*p, h.sent_ms, now_ms);
            break;
        case MsgType::ack:
            ++c_.acks_received;
            c_.nack_ranges_received += msg_.ack.missing.size();
            if (msg_.ack.echo_sent_ms && msg_.ack.echo_sent_ms <= now_ms) {
                p->rtt_ms = now_ms - msg_.ack.echo_sent_ms;
                ++c_.rtt_samples;
                c_.rtt_ms_sum += p->rtt_ms;
            }
            for (const SeqRange& r : msg_.ack.missing)
                out.actions.push_back({.kind = Action::Kind::resend, .peer = p->id, .first = r.first, .last = r.last});
            break;
        case MsgType::resync_request:
            ++c_.resync_requests_received;
            out.actions.push_back({.kind = Action::Kind::resync_requested,
                                   .peer = p->id,
                                   .resync_id = msg_.resync.resync_id,
                                   .epoch = h.epoch});
            break;
        case MsgType::bulk_chunk:
            ++c_.bulk_chunks_received;
            out.bulk = true;
            note_lag(*p, h.sent_ms, now_ms);
            take_chunk(*p, msg_, now_ms, out.actions);
            break;
    }

    out.entries.swap(msg_.entries);
    c_.entries_accepted += out.entries.size();
    for (const Entry& e : out.entries) {
        switch (e.index()) {
            case 0: ++c_.session_upserts; break;
            case 1: ++c_.session_removes; break;
            case 2: ++c_.persist_upserts; break;
            default: ++c_.persist_removes; break;
        }
    }
    return std::nullopt;
}

void Receiver::poll(uint64_t now_ms, std::vector<Action>& out) {
    std::vector<SeqRange> given_up;
    for (Peer& p : peers_) {
        if (p.heard) {
            given_up.clear();
            if (const uint64_t n = p.stream.expire(now_ms, cfg_.gap_timeout_ms, &given_up)) {
                c_.lost += n;
                for (const SeqRange& r : given_up)
                    out.push_back({.kind = Action::Kind::lost, .peer = p.id, .first = r.first, .last = r.last});
            }
            if (p.stream.missing() && now_ms - p.last_nack_ms >= cfg_.nack_interval_ms) {
                p.last_nack_ms = now_ms;
                out.push_back({.kind = Action::Kind::send_ack, .peer = p.id});
            }
        }
        if (p.resync_active && now_ms - p.resync_last_ms >= cfg_.resync_timeout_ms) {
            p.resync_active = false;
            p.chunks.clear();
            ++c_.resyncs_failed;
            out.push_back({.kind = Action::Kind::resync_failed, .peer = p.id, .resync_id = p.resync_id});
        }
    }
}

std::optional<Ack> Receiver::make_ack(uint32_t peer, uint64_t now_ms) {
    Peer* p = find(peer);
    if (!p || !p->heard) return std::nullopt;
    p->last_nack_ms = now_ms;
    Ack a;
    a.target = p->id;
    a.target_epoch = p->epoch;
    a.cumulative = p->stream.cumulative();
    a.highest = p->stream.top();
    a.echo_sent_ms = p->echo_sent_ms;
    // Gaps the tracker keeps apart (a heartbeat's gap right after an earlier one) travel as one
    // range: the wire wants them separated by at least one number received.
    for (const StreamTracker::Gap& g : p->stream.gaps()) {
        if (!a.missing.empty() && a.missing.back().last + 1 == g.first) {
            a.missing.back().last = g.last;
            continue;
        }
        if (a.missing.size() == kMaxAckRanges) break;
        a.missing.push_back({g.first, g.last});
    }
    return a;
}

uint32_t Receiver::start_resync(uint32_t peer, uint64_t now_ms) {
    Peer* p = find(peer);
    if (!p) return 0;
    if (next_resync_id_ == 0) next_resync_id_ = 1;
    p->resync_active = true;
    p->resync_id = next_resync_id_++;
    p->resync_last_ms = now_ms;
    p->chunks.clear();
    p->chunks_received = 0;
    p->chunks_total = 0;
    return p->resync_id;
}

std::optional<PeerStatus> Receiver::status(uint32_t peer) const {
    const Peer* p = find(peer);
    if (!p) return std::nullopt;
    PeerStatus s;
    s.id = p->id;
    s.heard = p->heard;
    s.epoch = p->epoch;
    s.last_heard_ms = p->last_heard_ms;
    s.highest = p->stream.top();
    s.cumulative = p->stream.cumulative();
    s.missing = p->stream.missing();
    s.lag_ms = p->lag_ms;
    s.rtt_ms = p->rtt_ms;
    s.resync_pending = p->resync_active;
    return s;
}

std::vector<PeerStatus> Receiver::status() const {
    std::vector<PeerStatus> v;
    for (const Peer& p : peers_) v.push_back(*status(p.id));
    return v;
}

}  // namespace sluice::sync
