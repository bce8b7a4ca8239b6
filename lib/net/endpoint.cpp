#include "lib/net/endpoint.hpp"

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include "lib/common/clip.hpp"
#include "lib/common/decimal.hpp"

namespace sluice::net {

Expected<Endpoint> parse_endpoint(std::string_view tok, const EndpointGrammar& g) {
    const auto bad = [&](std::string_view why) {
        return make_error(fmt::format("bad {} {} ({})", g.what, quote(tok), why));
    };
    std::string_view host, port_text;
    bool has_port = false;
    bool want_v6 = false;
    if (!tok.empty() && tok.front() == '[') {
        auto close = tok.find(']');
        if (close == std::string_view::npos) return bad("no ']' after the IPv6 address");
        host = tok.substr(1, close - 1);
        auto rest = tok.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return bad("expected ':PORT' after ']'");
            port_text = rest.substr(1);
            has_port = true;
        }
        want_v6 = true;
    } else if (std::count(tok.begin(), tok.end(), ':') >= 2) {
        if (!g.bare_v6) return bad("an IPv6 address takes brackets, e.g. [2001:db8::1]:80");
        host = tok;  // a bare IPv6 address: it cannot carry a port
        want_v6 = true;
    } else {
        auto colon = tok.find(':');
        host = tok.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = tok.substr(colon + 1);
            has_port = true;
        }
    }
    auto a = parse_ip(host);
    if (!a) {
        if (want_v6) return bad(fmt::format("{} is not an IPv6 address", quote(host)));
        return bad(g.bare_v6 ? "expected ADDR[:PORT], e.g. 192.0.2.1:80, [2001:db8::1]:80 or 2001:db8::1"
                             : "expected ADDR[:PORT], e.g. 192.0.2.1:80 or [2001:db8::1]:80");
    }
    if (want_v6 && a->is_v4()) return bad("brackets are for IPv6 addresses only");
    Endpoint ep{*a, std::nullopt};
    if (has_port) {
        uint64_t p = 0;
        switch (parse_decimal(port_text, g.min_port, 65535, p)) {
            case DecimalError::none: break;
            case DecimalError::not_a_number:
                return bad(fmt::format("port {} is not a decimal number", quote(port_text)));
            case DecimalError::out_of_range:
                return bad(fmt::format("port {} out of range ({}..65535)", clip(port_text, 64), g.min_port));
        }
        ep.port = static_cast<uint16_t>(p);
    }
    return ep;
}

socklen_t to_sockaddr(const IpAddr& addr, uint16_t port, sockaddr_storage& out) noexcept {
    std::memset(&out, 0, sizeof out);
    if (addr.is_v4()) {
        auto* s = reinterpret_cast<sockaddr_in*>(&out);
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        std::memcpy(&s->sin_addr, addr.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&out);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    std::memcpy(&s->sin6_addr, addr.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

}  // namespace sluice::net
