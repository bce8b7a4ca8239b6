// A token bucket on a millisecond clock: a rate per second and a burst, in whole tokens.
//
// Kept in thousandths of a token, so a rate per second refills exactly `rate` thousandths per
// millisecond, with no division and no drift. The clock is the caller's wrapping millisecond
// counter; the bucket starts full.
// Thread contract: one owner (a worker); no locking.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sluice::lb {

class TokenBucket {
public:
    TokenBucket() = default;
    // per_second 0: unlimited (take() must not be called; see limited()).
    TokenBucket(uint64_t per_second, uint64_t burst) noexcept
        : rate_(per_second), burst_(burst * kUnit), tokens_(burst_) {}

    bool limited() const noexcept { return rate_ != 0; }

    // Takes one token if there is one, after the refill since the last call.
    bool take(uint32_t now_ms) noexcept {
        const uint32_t elapsed = now_ms - last_ms_;  // wrapping clock
        if (elapsed) {
            last_ms_ = now_ms;
            tokens_ = std::min(burst_, tokens_ + uint64_t{elapsed} * rate_);
        }
        if (tokens_ < kUnit) return false;
        tokens_ -= kUnit;
        return true;
    }

private:
    static constexpr uint64_t kUnit = 1000;  // thousandths per token
    uint64_t rate_ = 0;    // tokens per second = thousandths per millisecond
    uint64_t burst_ = 0;   // bucket size, in thousandths
    uint64_t tokens_ = 0;  // in thousandths
    uint32_t last_ms_ = 0;
};

}  // namespace sluice::lb
