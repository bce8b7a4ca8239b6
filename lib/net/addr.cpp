#include "lib/net/addr.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

namespace sluice::net {

std::optional<IpAddr> parse_ip(std::string_view text) {
    if (text.empty() || text.size() > 45) return std::nullopt;
    std::string s(text);
    IpAddr a;
    if (s.find(':') == std::string::npos) {
        if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
        a.family = Family::v4;
    } else {
        if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
        a.family = Family::v6;
    }
    return a;
}

std::optional<Mac> parse_mac(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    Mac m;
    for (size_t i = 0; i < 6; ++i) {
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        int h = hex(text[i * 3]), l = hex(text[i * 3 + 1]);
        if (h < 0 || l < 0) return std::nullopt;
        if (i < 5 && text[i * 3 + 2] != ':') return std::nullopt;
        m.bytes[i] = static_cast<uint8_t>(h << 4 | l);
    }
    return m;
}

std::string to_string(const IpAddr& a) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
    return buf;
}

std::string to_string(const Mac& m) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m.bytes[0], m.bytes[1], m.bytes[2],
                       m.bytes[3], m.bytes[4], m.bytes[5]);
}

std::string to_string(const IpAddr& a, uint16_t port) {
    return a.is_v4() ? fmt::format("{}:{}", to_string(a), port) : fmt::format("[{}]:{}", to_string(a), port);
}

}  // namespace sluice::net
