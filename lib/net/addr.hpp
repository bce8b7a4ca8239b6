// IP and MAC address value types used by configuration and the control plane.
//
// Addresses are stored in network byte order (as they appear on the wire) so the data path
// can compare them against packet bytes with memcmp/loads and no conversion.
// Thread contract: plain value types.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lib/common/hash_mix.hpp"
#include "lib/net/wire.hpp"

namespace sluice::net {

enum class Family : uint8_t { v4 = 4, v6 = 6 };

struct IpAddr {
    Family family = Family::v4;
    // v4 uses bytes[0..3]; the rest stay zero so equality and hashing are plain byte compares.
    std::array<uint8_t, 16> bytes{};

    static IpAddr v4(const uint8_t* p) {
        IpAddr a;
        a.family = Family::v4;
        std::memcpy(a.bytes.data(), p, 4);
        return a;
    }
    static IpAddr v6(const uint8_t* p) {
        IpAddr a;
        a.family = Family::v6;
        std::memcpy(a.bytes.data(), p, 16);
        return a;
    }
    bool is_v4() const { return family == Family::v4; }
    size_t size() const { return is_v4() ? 4 : 16; }
    uint32_t v4_be() const { return load_raw32(bytes.data()); }  // as it lies in memory (network order)

    friend bool operator==(const IpAddr&, const IpAddr&) = default;
    friend auto operator<=>(const IpAddr&, const IpAddr&) = default;
};

struct Mac {
    std::array<uint8_t, 6> bytes{};
    friend bool operator==(const Mac&, const Mac&) = default;
    friend auto operator<=>(const Mac&, const Mac&) = default;
};

// Parse "192.0.2.1" or "2001:db8::1" (no brackets). nullopt on any error.
std::optional<IpAddr> parse_ip(std::string_view text);
// Parse "02:00:00:00:00:01". nullopt on any error.
std::optional<Mac> parse_mac(std::string_view text);

std::string to_string(const IpAddr& a);
std::string to_string(const Mac& m);
// "192.0.2.1:80" or "[2001:db8::1]:80".
std::string to_string(const IpAddr& a, uint16_t port);

}  // namespace sluice::net

template <>
struct std::hash<sluice::net::IpAddr> {
    size_t operator()(const sluice::net::IpAddr& a) const noexcept {
        const uint64_t lo = sluice::net::load_raw64(a.bytes.data()), hi = sluice::net::load_raw64(a.bytes.data() + 8);
        return std::hash<uint64_t>{}(lo * sluice::kGoldenRatio64 ^ hi ^ static_cast<uint64_t>(a.family));
    }
};
