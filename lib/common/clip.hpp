// Quoting what an operator (or a client) wrote in a message: bounded and printable.
//
// A 10 MB value must not become a 20 MB log line, and bytes such as NUL or ESC must not reach
// a terminal raw. clip() escapes anything outside printable ASCII as \xNN and keeps at most
// `max` characters of the result, saying how long the original was. quote() puts a token in
// quotes the same way, any cut outside them: 'abc...' (5000 bytes).
// Thread contract: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

inline std::string clip(std::string_view s, size_t max = 120) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const auto ch = static_cast<unsigned char>(s[i]);
        if (out.size() >= max) {
            out += "... (" + std::to_string(s.size()) + " bytes in all)";
            break;
        }
        if (ch >= 0x20 && ch < 0x7f) {
            out += static_cast<char>(ch);
        } else {
            out += "\\x";
            out += kHex[ch >> 4];
            out += kHex[ch & 15];
        }
    }
    return out;
}

inline std::string quote(std::string_view s, size_t max = 64) {
    std::string out(1, '\'');
    out += clip(s.substr(0, max), SIZE_MAX);
    if (s.size() <= max) return out += '\'';
    out += "...' (";
    out += std::to_string(s.size());
    out += " bytes)";
    return out;
}

}  // namespace sluice
