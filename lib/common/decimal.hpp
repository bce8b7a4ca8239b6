// Strict unsigned decimal numbers, as the options and the control protocol take them: digits
// only (no sign, spaces, 0x or exponent), within [lo, hi]. Each caller words its own message
// from the two ways it can fail.
// Thread contract: pure function.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>

namespace sluice {

enum class DecimalError : uint8_t { none, not_a_number, out_of_range };

inline DecimalError parse_decimal(std::string_view s, uint64_t lo, uint64_t hi, uint64_t& out) noexcept {
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return DecimalError::not_a_number;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return DecimalError::out_of_range;
    out = v;
    return DecimalError::none;
}

}  // namespace sluice
