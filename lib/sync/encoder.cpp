// Packing, numbering and sealing of outgoing datagrams (encoder.hpp says why it packs in order
// and retains what it sealed).
// Thread contract: see encoder.hpp (one thread).
#include "lib/sync/encoder.hpp"

#include <algorithm>

#include <sodium.h>

#include <fmt/format.h>

#include "lib/net/wire.hpp"

namespace sluice::sync {

uint64_t make_epoch(uint64_t unix_ms) noexcept {
    (void)crypto_init();  // randombytes works without it (it opens the system source itself)
    return unix_ms << 20 | randombytes_uniform(1u << 20);
}

Expected<Encoder> Encoder::create(const Key& key, Identity id, EncoderConfig cfg) {
    if (auto s = crypto_init(); !s) return Error{s.error()};
    if (id.instance == 0) return make_error("sync: instance id 0 (expected 1..4294967295)");
    if (id.epoch == 0) return make_error("sync: epoch 0 (make_epoch() gives one)");
    if (cfg.mtu_bytes < kMinMtuBytes || cfg.mtu_bytes > kMaxDatagramBytes)
        return make_error(fmt::format("sync: MTU budget {} bytes out of range ({}..{})", cfg.mtu_bytes, kMinMtuBytes,
                                      kMaxDatagramBytes));
    return Encoder(key, id, cfg);
}

Encoder::Encoder(const Key& key, Identity id, EncoderConfig cfg) : key_(key), id_(id), cfg_(cfg) {}

void Encoder::begin(Datagram& d, size_t fixed) const {
    d.clear();
    d.reserve(cfg_.mtu_bytes);
    d.resize(kHeaderBytes + fixed);
}

void Encoder::seal(Datagram& d, MsgType type, uint8_t flags, uint16_t count, uint64_t seq, uint64_t now_ms) {
    Header h;
    h.type = type;
    h.flags = flags;
    h.sender = id_.instance;
    h.count = count;
    h.body_len = static_cast<uint16_t>(d.size() - kHeaderBytes);
    h.epoch = id_.epoch;
    h.seq = seq;
    h.sent_ms = now_ms;
    put_header(d.data(), h);
    d.resize(d.size() + kTagBytes);
    sync::seal(key_, d.data());
    ++c_.datagrams_sent;
    c_.bytes_sent += d.size();
}

Status Encoder::add(const Entry& e, uint64_t now_ms) {
    if (const char* why = validate(e)) {
        ++c_.entries_invalid;
        return make_error(fmt::format("sync: entry not sent: {}", why));
    }
    const size_t n = entry_bytes(e);
    if (open_count_ && open_.size() + n + kTagBytes > cfg_.mtu_bytes) close_open(now_ms);
    if (!open_count_) begin(open_, 0);
    const size_t at = open_.size();
    open_.resize(at + n);
    put_entry(open_.data() + at, e);
    ++open_count_;
    ++c_.entries_sent;
    return {};
}

void Encoder::close_open(uint64_t now_ms) {
    seal(open_, MsgType::entries, 0, open_count_, ++stream_seq_, now_ms);
    if (cfg_.retain) {
        if (retained_.size() == cfg_.retain) retained_.pop_front();
        retained_.push_back(open_);
    }
    sealed_.push_back(std::move(open_));
    open_ = Datagram();
    open_count_ = 0;
}

void Encoder::flush(uint64_t now_ms) {
    if (open_count_) close_open(now_ms);
}

size_t Encoder::take(std::vector<Datagram>& out) {
    const size_t n = sealed_.size();
    for (auto& d : sealed_) out.push_back(std::move(d));
    sealed_.clear();
    return n;
}

size_t Encoder::resend(uint64_t first, uint64_t last, std::vector<Datagram>& out) {
    if (first == 0 || first > last) return 0;
    last = std::min(last, stream_seq_);
    if (first > last) return 0;
    const uint64_t lo = stream_seq_ - retained_.size() + 1;  // oldest retained number
    size_t n = 0;
    if (first < lo) c_.resend_unavailable += std::min(last + 1, lo) - first;
    for (uint64_t s = std::max(first, lo); s <= last; ++s) {
        out.push_back(retained_[s - lo]);
        ++c_.datagrams_sent;
        c_.bytes_sent += out.back().size();
        ++c_.resent;
        ++n;
    }
    return n;
}

Datagram Encoder::heartbeat(uint64_t now_ms) {
    Datagram d;
    begin(d, kHeartbeatBytes);
    uint8_t* b = d.data() + kHeaderBytes;
    net::store_be32(b, static_cast<uint32_t>(stream_seq_ >> 32));
    net::store_be32(b + 4, static_cast<uint32_t>(stream_seq_));
    seal(d, MsgType::heartbeat, 0, 0, ++control_seq_, now_ms);
    ++c_.heartbeats_sent;
    return d;
}

Expected<Datagram> Encoder::ack(const Ack& a, uint64_t now_ms) {
    if (a.target == 0 || a.target_epoch == 0 || a.cumulative > a.highest)
        return make_error("sync: ack with target or epoch 0, or cumulative above highest");
    const size_t room = (cfg_.mtu_bytes - kOverheadBytes - kAckFixedBytes) / kAckRangeBytes;
    Ack fit = a;
    if (fit.missing.size() > std::min(room, kMaxAckRanges)) fit.missing.resize(std::min(room, kMaxAckRanges));
    uint64_t floor = a.cumulative;
    for (size_t i = 0; i < fit.missing.size(); ++i) {
        const SeqRange& r = fit.missing[i];
        if (r.first <= floor || r.first > r.last || r.last > a.highest || (i > 0 && r.first == floor + 1))
            return make_error("sync: ack ranges not ascending, disjoint and within (cumulative, highest]");
        floor = r.last;
    }
    Datagram d;
    begin(d, kAckFixedBytes + kAckRangeBytes * fit.missing.size());
    put_ack_body(d.data() + kHeaderBytes, fit);
    seal(d, MsgType::ack, 0, static_cast<uint16_t>(fit.missing.size()), ++control_seq_, now_ms);
    ++c_.acks_sent;
    c_.nack_ranges_sent += fit.missing.size();
    return d;
}

Expected<Datagram> Encoder::resync_request(uint32_t target, uint32_t resync_id, uint64_t now_ms) {
    if (target == 0 || resync_id == 0) return make_error("sync: resync request with target or id 0");
    Datagram d;
    begin(d, kResyncRequestBytes);
    net::store_be32(d.data() + kHeaderBytes, target);
    net::store_be32(d.data() + kHeaderBytes + 4, resync_id);
    seal(d, MsgType::resync_request, 0, 0, ++control_seq_, now_ms);
    ++c_.resync_requests_sent;
    return d;
}

BulkWriter Encoder::bulk(uint32_t target, uint64_t target_epoch, uint32_t resync_id) {
    ChunkInfo info;
    info.target = target;
    info.target_epoch = target_epoch;
    info.resync_id = resync_id;
    info.snapshot_seq = stream_seq_;
    return BulkWriter(*this, info);
}

BulkWriter::BulkWriter(Encoder& enc, const ChunkInfo& info) : enc_(&enc), info_(info) {}

Status BulkWriter::add(const Entry& e, uint64_t now_ms) {
    if (finished_) return make_error("sync: bulk resync already finished");
    if (const char* why = validate(e)) {
        ++enc_->c_.entries_invalid;
        return make_error(fmt::format("sync: entry not sent: {}", why));
    }
    const size_t n = entry_bytes(e);
    if (open_count_ && open_.size() + n + kTagBytes > enc_->cfg_.mtu_bytes) {
        if (info_.index + 1 >= kMaxBulkChunks)
            return make_error(fmt::format("sync: bulk resync over {} chunks", kMaxBulkChunks));
        close_open(now_ms, false);
    }
    if (!open_count_) enc_->begin(open_, kChunkFixedBytes);
    const size_t at = open_.size();
    open_.resize(at + n);
    put_entry(open_.data() + at, e);
    ++open_count_;
    ++enc_->c_.bulk_entries_sent;
    return {};
}

void BulkWriter::close_open(uint64_t now_ms, bool last) {
    if (!open_count_) enc_->begin(open_, kChunkFixedBytes);  // the empty last chunk of an empty state
    put_chunk_info(open_.data() + kHeaderBytes, info_);
    enc_->seal(open_, MsgType::bulk_chunk, last ? kFlagDone : 0, open_count_, ++enc_->control_seq_, now_ms);
    ++enc_->c_.bulk_chunks_sent;
    sealed_.push_back(std::move(open_));
    open_ = Datagram();
    open_count_ = 0;
    ++info_.index;
}

void BulkWriter::finish(uint64_t now_ms) {
    if (finished_) return;
    close_open(now_ms, true);
    finished_ = true;
}

size_t BulkWriter::take(std::vector<Datagram>& out) {
    const size_t n = sealed_.size();
    for (auto& d : sealed_) out.push_back(std::move(d));
    sealed_.clear();
    return n;
}

}  // namespace sluice::sync
