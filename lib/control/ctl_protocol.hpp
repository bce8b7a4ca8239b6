// The operator control protocol spoken over Sluice's Unix socket (`sluicectl`).
//
// One request per connection: the client sends a single text line (at most kMaxLineBytes
// including its '\n'), the server answers and closes. The answer's first line is `ok` or
// `error: <message>`, then zero or more body lines. A line-based text protocol keeps the
// server free of framing state and lets an operator drive it with `socat` when sluicectl is
// not at hand; the price is that a body line can never start a new response, which nothing
// needs. The grammar lives here once, so sluicectl rejects a malformed request locally with
// the same message the server would send.
//
// Request grammar (words separated by spaces or tabs; names are case-sensitive):
//   list | stats | reload | clear-counters | withdraw | announce | help
//   add-backend VIP ADDR[:PORT] [weight=N] [mac=MAC]
//   set-neighbor ADDR MAC
//   remove-backend VIP ADDR[:PORT]
//   set-weight VIP ADDR[:PORT] N
//   drain VIP ADDR[:PORT]
//   set-state VIP ADDR[:PORT] up|down|draining|disabled
//   explain tcp|udp SRC_ADDR:SPORT DST_ADDR:DPORT
//   persist VIP
// Any request may end with `id=TOKEN` (1..64 letters, digits, '-', '_'): a change repeated with
// the same id (a retry after a timeout) is answered with the first answer and not applied again.
// VIP is the name given with --vip. A backend is `192.0.2.1`, `192.0.2.1:8080`,
// `[2001:db8::1]:8080` or a bare `2001:db8::1`; an omitted port means the VIP's port.
// explain takes ports always and IPv6 in brackets. Addresses follow net::parse_endpoint
// (lib/net/endpoint.hpp), VIP names lb::check_vip_name, as the options do.
//
// Thread contract: pure functions over values; no shared state, every function reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"
#include "lib/net/addr.hpp"

namespace sluice::control {

// Longest request line, counting its terminating '\n'.
inline constexpr size_t kMaxLineBytes = 4096;

enum class Op : uint8_t {
    list,            // VIPs and backends with state, weight, counters
    stats,           // global, per-worker and drop counters
    add_backend,     // vip, addr, port, weight (optional)
    remove_backend,  // vip, addr, port
    set_weight,      // vip, addr, port, weight (always set); 0 drains
    drain,           // vip, addr, port
    set_state,       // vip, addr, port, state
    reload,          // re-read the configuration, apply service settings
    clear_counters,  // reset counters
    explain,         // proto, src_addr/src_port, dst_addr/dst_port
    set_neighbor,    // addr, mac: a backend's (or gateway's) MAC, as --neighbor gives it
    withdraw,        // the tier: withdraw every VIP address (drain the whole instance)
    announce,        // the tier: offer the VIP addresses again (those that can be served)
    persist,         // vip: its persistence entries (client network, backend, time left, workers)
    help,            // the command list
};

// The command word: "add-backend" for Op::add_backend.
const char* to_string(Op op);
// Does the command change anything (and so need a privileged peer)?
bool changes_state(Op op) noexcept;
inline constexpr size_t kMaxRequestIdLen = 64;

// A parsed request. Fields an Op does not use keep their defaults, so two parses of the same
// request compare equal.
struct Command {
    Op op = Op::help;
    // Backend commands (add-backend, remove-backend, set-weight, drain, set-state), persist.
    std::string vip;                                 // VIP name as configured (--vip NAME,...)
    net::IpAddr addr;                                // backend address
    uint16_t port = 0;                               // backend port; 0: not given (the VIP's port)
    std::optional<uint32_t> weight;                  // 0..lb::kMaxWeight; add-backend: if weight=N given
    std::optional<net::Mac> mac;                     // add-backend: if mac=MAC given; set-neighbor: always
    lb::BackendState state = lb::BackendState::up;   // set-state
    // explain: the packet to explain, as the client sends it.
    lb::Proto proto = lb::Proto::tcp;
    net::IpAddr src_addr;
    uint16_t src_port = 0;
    net::IpAddr dst_addr;
    uint16_t dst_port = 0;
    std::string request_id;  // `id=TOKEN`; empty: none

    friend bool operator==(const Command&, const Command&) = default;
};

// Parse one request line; a trailing "\n" or "\r\n" is accepted and ignored. Errors name the
// offending token and what was expected: empty line, over-long line, control characters,
// unknown command (listing the valid ones), missing argument, bad VIP name, bad address or
// port, weight not a number or out of range, bad state or protocol, trailing arguments,
// explain addresses of different families.
Expected<Command> parse_command(std::string_view line);

// The canonical request line for `cmd`, without '\n'. parse_command(format_command(c)) == c
// for every Command that parse_command can produce.
std::string format_command(const Command& cmd);

// One line per command with its syntax and purpose, for `help` and `sluicectl --help`.
std::string help_text();

// Server side. "ok\n" followed by `body`; a non-empty body gets a final '\n' if it lacks one.
std::string ok_response(std::string_view body);
// Server side. "error: <first line of message>\n"; further lines of `message` become the body.
std::string error_response(std::string_view message);

// Client side: a complete response as read until the server closed the connection.
struct Response {
    bool ok = false;
    std::string message;  // error text (empty when ok)
    std::string body;     // body lines, each ending in '\n'
};
// Fails on an empty response, a first line without '\n', or one that is neither `ok` nor
// `error: ...`.
Expected<Response> parse_response(std::string_view text);

}  // namespace sluice::control
