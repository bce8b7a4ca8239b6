// Sequence-number bookkeeping per peer: the anti-replay window, and on top of it the gap
// tracking of a peer's entries stream.
//
// ReplayWindow is the sliding bitmap of RFC 4303 §3.4.3 (IPsec ESP) and RFC 6479, as WireGuard
// keeps it: the highest sequence number seen and one bit for each of the kSize numbers up to
// it, in a ring indexed by seq mod kSize. A number above the top is fresh (the window slides);
// one within the window is fresh once; one below it is too old to tell apart from a replay and
// is refused. 64-bit numbers never wrap, so there is no wrap-around case.
//
// StreamTracker adds what a reliable stream needs: the numbers skipped when the top jumps (or
// a heartbeat announces a higher one) become gaps, each remembering when it was found; a late
// arrival fills its gap; a gap not filled within the caller's timeout, or pushed below the
// window, is given up (lost). The first number heard from a peer's life sets a floor: what
// came before it predates this receiver, is not reported missing, and is still accepted if it
// arrives within the window (reordering at start).
// Thread contract: plain values, owned by one Receiver (one thread).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "lib/sync/codec.hpp"

namespace sluice::sync {

class ReplayWindow {
public:
    static constexpr uint64_t kSize = 1024;
    enum class Check : uint8_t { fresh, replayed, too_old };

    Check check(uint64_t seq) const noexcept {
        if (seq > top_) return Check::fresh;
        if (top_ - seq >= kSize) return Check::too_old;
        return bit(seq) ? Check::replayed : Check::fresh;
    }
    // Slides the window up to `to` without marking it (numbers leaving the window are forgotten).
    void advance(uint64_t to) noexcept {
        if (to <= top_) return;
        if (to - top_ >= kSize) {
            bits_.fill(0);
        } else {
            // Counted, not `s <= to`: with to = 2^64 - 1 that condition never fails.
            uint64_t s = top_;
            for (uint64_t n = to - top_; n; --n) {
                ++s;
                bits_[s / 64 % kWords] &= ~(uint64_t{1} << (s % 64));
            }
        }
        top_ = to;
    }
    // Marks seq received; check(seq) must have said fresh.
    void mark(uint64_t seq) noexcept {
        advance(seq);
        bits_[seq / 64 % kWords] |= uint64_t{1} << (seq % 64);
    }
    bool has(uint64_t seq) const noexcept { return seq <= top_ && top_ - seq < kSize && bit(seq); }
    uint64_t top() const noexcept { return top_; }
    void reset() noexcept {
        top_ = 0;
        bits_.fill(0);
    }

private:
    static constexpr uint64_t kWords = kSize / 64;
    bool bit(uint64_t seq) const noexcept { return bits_[seq / 64 % kWords] >> (seq % 64) & 1; }
    uint64_t top_ = 0;
    std::array<uint64_t, kWords> bits_{};
};

class StreamTracker {
public:
    using Check = ReplayWindow::Check;
    struct Gap {
        uint64_t first = 0, last = 0;
        uint64_t since_ms = 0;  // when it was found missing
    };
    // What one accept() or announce() changed.
    struct Outcome {
        uint64_t new_missing = 0;  // numbers newly found missing
        uint64_t lost = 0;         // numbers pushed below the window while missing
        SeqRange lost_span;        // ... from the first to the last of them
        bool filled = false;       // the number was missing and arrived
        bool late = false;         // it had been given up, and arrived after all
    };

    bool started() const noexcept { return started_; }
    uint64_t top() const noexcept { return win_.top(); }
    uint64_t floor() const noexcept { return floor_; }
    Check check(uint64_t seq) const noexcept { return win_.check(seq); }
    // Every number up to this one was received, given up, or predates this receiver.
    uint64_t cumulative() const noexcept { return gaps_.empty() ? win_.top() : gaps_.front().first - 1; }
    uint64_t missing() const noexcept {
        uint64_t n = 0;
        for (const Gap& g : gaps_) n += g.last - g.first + 1;
        return n;
    }
    const std::vector<Gap>& gaps() const noexcept { return gaps_; }

    void reset() noexcept {
        win_.reset();
        gaps_.clear();
        floor_ = 0;
        started_ = false;
    }

    // Takes seq (check(seq) said fresh), received at now_ms.
    Outcome accept(uint64_t seq, uint64_t now_ms) {
        Outcome o;
        if (!started_) start(seq - 1);
        if (seq > win_.top()) {
            o = open_gap(seq - 1, now_ms);
            win_.mark(seq);
            trim(o);
            return o;
        }
        win_.mark(seq);
        for (size_t i = 0; i < gaps_.size(); ++i) {
            Gap& g = gaps_[i];
            if (seq < g.first) break;
            if (seq > g.last) continue;
            o.filled = true;
            if (g.first == g.last) {
                gaps_.erase(gaps_.begin() + static_cast<ptrdiff_t>(i));
            } else if (seq == g.first) {
                ++g.first;
            } else if (seq == g.last) {
                --g.last;
            } else {
                const Gap upper{seq + 1, g.last, g.since_ms};
                g.last = seq - 1;
                gaps_.insert(gaps_.begin() + static_cast<ptrdiff_t>(i) + 1, upper);
            }
            return o;
        }
        o.late = seq > floor_;
        return o;
    }

    // The peer says it has sent up to `highest` (a heartbeat): what is above the top is missing.
    Outcome announce(uint64_t highest, uint64_t now_ms) {
        if (!started_) {
            start(highest);
            return {};
        }
        if (highest <= win_.top()) return {};
        Outcome o = open_gap(highest, now_ms);
        win_.advance(highest);
        trim(o);
        return o;
    }

    // Gives up the gaps found at least timeout_ms before now_ms; appends them to given_up (if
    // not null) and returns how many numbers they held.
    uint64_t expire(uint64_t now_ms, uint64_t timeout_ms, std::vector<SeqRange>* given_up) {
        uint64_t n = 0;
        size_t kept = 0;
        for (const Gap& g : gaps_) {
            if (now_ms - g.since_ms >= timeout_ms && now_ms >= g.since_ms) {
                n += g.last - g.first + 1;
                if (given_up) given_up->push_back({g.first, g.last});
            } else {
                gaps_[kept++] = g;
            }
        }
        gaps_.resize(kept);
        return n;
    }

private:
    void start(uint64_t floor) {
        started_ = true;
        floor_ = floor;
        win_.advance(floor);
    }
    // Numbers (top, upto] are missing.
    Outcome open_gap(uint64_t upto, uint64_t now_ms) {
        Outcome o;
        if (upto > win_.top()) {
            gaps_.push_back({win_.top() + 1, upto, now_ms});
            o.new_missing = upto - win_.top();
        }
        return o;
    }
    // Drops what the window no longer covers from the gaps, into o.lost and o.lost_span.
    void trim(Outcome& o) {
        if (win_.top() < ReplayWindow::kSize) return;
        const uint64_t cutoff = win_.top() - ReplayWindow::kSize;  // this and below: too old
        size_t drop = 0;
        for (Gap& g : gaps_) {
            if (g.first > cutoff) break;
            if (!o.lost) o.lost_span.first = g.first;
            o.lost_span.last = std::min(g.last, cutoff);
            o.lost += o.lost_span.last - g.first + 1;
            if (g.last > cutoff) {
                g.first = cutoff + 1;
                break;
            }
            ++drop;
        }
        gaps_.erase(gaps_.begin(), gaps_.begin() + static_cast<ptrdiff_t>(drop));
    }

    ReplayWindow win_;
    std::vector<Gap> gaps_;  // ascending, disjoint
    uint64_t floor_ = 0;
    bool started_ = false;
};

}  // namespace sluice::sync
