// The flow log's sampler: picks 1 new flow in N, follows the picked flows' packets and bytes,
// and pushes their open and close events into the flow log's ring (lib/lb/flow_log.hpp).
//
// Followed flows live in a fixed table (open addressing, linear probing, backward-shift
// deletion: no tombstones, so lookups stay short), keyed by a caller's 32-bit flow key. At most
// half of it fills: a flow picked while it is half full is not followed, and counts as lost,
// as does an event the full ring refuses.
// Thread contract: one per worker, used only by that worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lib/common/hash_mix.hpp"
#include "lib/lb/flow_log.hpp"

namespace sluice::lb {

class FlowSampler {
public:
    // Samples 1 new flow in one_in (0: off) into `ring` (owned by the caller, outliving the
    // sampler; nullptr: off). Forgets the flows followed so far.
    void enable(uint32_t one_in, FlowLogRing* ring);
    bool enabled() const noexcept { return ring_ != nullptr; }
    // Counts a new flow (only while enabled): true for the one in one_in to sample.
    bool pick() noexcept {
        if (++countdown_ < one_in_) return false;
        countdown_ = 0;
        return true;
    }
    // Starts following `key`, whose first packet had `len` bytes, and logs its open event
    // (identity() makes it); lost when the table is half full.
    template <class Identity>
    void open(uint32_t key, uint32_t len, uint32_t now_ms, Identity&& identity) noexcept {
        if (follow(key, len, now_ms)) log(identity());
    }
    // A packet of `key`, if followed.
    void packet(uint32_t key, uint32_t len, uint32_t now_ms) noexcept;
    // Stops following `key`, if followed, and logs its close event: identity() makes it, and
    // the sampler adds the duration, packets and bytes.
    template <class Identity>
    void close(uint32_t key, Identity&& identity) noexcept {
        Followed* f = find(key);
        if (!f) return;
        FlowEvent e = identity();
        e.duration_ms = f->last_ms - f->start_ms;
        e.packets = f->packets;
        e.bytes = f->bytes;
        erase(f);
        log(e);
    }
    // Flows picked but not followed, and events the ring refused.
    uint64_t lost() const noexcept { return lost_; }

private:
    static constexpr uint32_t kEmpty = UINT32_MAX;
    static constexpr size_t kSlots = 8192;
    struct Followed {
        uint32_t key = kEmpty;
        uint32_t start_ms = 0, last_ms = 0;
        uint64_t packets = 0, bytes = 0;
    };
    size_t home(uint32_t key) const noexcept { return (key * kGoldenPrime32) & (table_.size() - 1); }
    bool follow(uint32_t key, uint32_t len, uint32_t now_ms) noexcept;
    Followed* find(uint32_t key) noexcept;
    void erase(Followed* f) noexcept;
    void log(const FlowEvent& e) noexcept {
        if (!ring_->push(e)) ++lost_;
    }

    uint32_t one_in_ = 0;
    uint32_t countdown_ = 0;  // new flows since the last sampled one
    FlowLogRing* ring_ = nullptr;
    uint64_t lost_ = 0;
    std::vector<Followed> table_;
};

}  // namespace sluice::lb
