// The ADDR[:PORT] grammar, one for the option grammar (--vip, --backend) and the control
// protocol (sluicectl's backends and explain), so both accept the same text and say the same
// thing about a wrong one.
//
// Forms: 192.0.2.1, 192.0.2.1:80, [2001:db8::1], [2001:db8::1]:80, and, where the grammar
// allows it, a bare 2001:db8::1 (which cannot carry a port: the last group would be taken for
// one). Errors read "bad <what> '<text>' (<why>)", the text quoted as clip() does.
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <sys/socket.h>

#include "lib/common/expected.hpp"
#include "lib/net/addr.hpp"

namespace sluice::net {

struct Endpoint {
    IpAddr addr;
    std::optional<uint16_t> port;  // nullopt: not given
};

struct EndpointGrammar {
    std::string_view what = "address";  // names the token in errors: "bad backend address ..."
    bool bare_v6 = false;               // accept 2001:db8::1 without brackets (and without a port)
    uint16_t min_port = 0;              // lowest port accepted when one is given
};

Expected<Endpoint> parse_endpoint(std::string_view text, const EndpointGrammar& grammar = {});

// The socket address of addr:port (host order port) in `out`; returns its length.
socklen_t to_sockaddr(const IpAddr& addr, uint16_t port, sockaddr_storage& out) noexcept;

}  // namespace sluice::net
