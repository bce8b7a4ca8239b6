#include "lib/lb/flow_sampler.hpp"

namespace sluice::lb {

void FlowSampler::enable(uint32_t one_in, FlowLogRing* ring) {
    one_in_ = one_in;
    countdown_ = 0;
    ring_ = one_in && ring ? ring : nullptr;
    table_.assign(ring_ ? kSlots : 0, Followed{});
}

bool FlowSampler::follow(uint32_t key, uint32_t len, uint32_t now_ms) noexcept {
    const size_t mask = table_.size() - 1;
    size_t i = home(key), n = 0;
    for (; table_[i].key != kEmpty && n < table_.size() / 2; i = (i + 1) & mask, ++n) {}
    if (table_[i].key != kEmpty) {  // half full: sample no more until some close
        ++lost_;
        return false;
    }
    table_[i] = Followed{key, now_ms, now_ms, 1, len};
    return true;
}

void FlowSampler::packet(uint32_t key, uint32_t len, uint32_t now_ms) noexcept {
    if (Followed* f = find(key)) {
        ++f->packets;
        f->bytes += len;
        f->last_ms = now_ms;
    }
}

FlowSampler::Followed* FlowSampler::find(uint32_t key) noexcept {
    const size_t mask = table_.size() - 1;
    for (size_t i = home(key), n = 0; n < table_.size(); i = (i + 1) & mask, ++n) {
        if (table_[i].key == key) return &table_[i];
        if (table_[i].key == kEmpty) return nullptr;
    }
    return nullptr;
}

void FlowSampler::erase(Followed* f) noexcept {
    const size_t mask = table_.size() - 1;
    size_t hole = static_cast<size_t>(f - table_.data());
    for (size_t i = (hole + 1) & mask; table_[i].key != kEmpty; i = (i + 1) & mask) {
        // Move i into the hole unless its home lies cyclically in (hole, i].
        if (((i - home(table_[i].key)) & mask) >= ((i - hole) & mask)) {
            table_[hole] = table_[i];
            hole = i;
        }
    }
    table_[hole] = Followed{};
}

}  // namespace sluice::lb
