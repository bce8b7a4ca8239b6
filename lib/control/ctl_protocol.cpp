// The control protocol: request grammar, canonical rendering, response framing.
//
// Parsing is strict and one-pass: every token is consumed by exactly one rule, so anything
// left over is reported as an unexpected argument rather than silently ignored. Error
// messages are "<command>: <problem> (<what was expected>)" and quote the offending token,
// shortened when long so an error response stays one readable line.
// Thread contract: no global mutable state; every function is reentrant.
#include "lib/control/ctl_protocol.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include <fmt/format.h>

#include "lib/common/decimal.hpp"
#include "lib/net/endpoint.hpp"

namespace sluice::control {
namespace {

struct CommandSpec {
    Op op;
    std::string_view name;
    std::string_view args;
    std::string_view summary;
};

constexpr std::array kSpecs = {
    CommandSpec{Op::list, "list", "", "VIPs and backends: state, weight, counters"},
    CommandSpec{Op::stats, "stats", "", "counters summed over the workers, each worker's flow-table fill, drops"},
    CommandSpec{Op::add_backend, "add-backend", "VIP ADDR[:PORT] [weight=N] [mac=MAC]",
                "add a backend to a VIP (weight 0..65535, default 1; its MAC)"},
    CommandSpec{Op::remove_backend, "remove-backend", "VIP ADDR[:PORT]", "remove a backend from a VIP"},
    CommandSpec{Op::set_weight, "set-weight", "VIP ADDR[:PORT] N", "set a backend's weight (0..65535; 0 drains)"},
    CommandSpec{Op::drain, "drain", "VIP ADDR[:PORT]", "keep a backend's flows, give it no new ones"},
    CommandSpec{Op::set_state, "set-state", "VIP ADDR[:PORT] up|down|draining|disabled",
                "set a backend's state"},
    CommandSpec{Op::reload, "reload", "", "re-read the configuration and apply its services"},
    CommandSpec{Op::clear_counters, "clear-counters", "", "reset all counters to zero"},
    CommandSpec{Op::explain, "explain", "tcp|udp SRC_ADDR:SPORT DST_ADDR:DPORT",
                "which backend takes this packet, and why"},
    CommandSpec{Op::persist, "persist", "VIP",
                "a persistent VIP's client networks: backend, time left, workers"},
    CommandSpec{Op::set_neighbor, "set-neighbor", "ADDR MAC", "set a next hop's MAC (as --neighbor; wins over ARP/ND)"},
    CommandSpec{Op::withdraw, "withdraw", "",
                "withdraw every VIP from the routers (--announce); keep forwarding"},
    CommandSpec{Op::announce, "announce", "", "offer the VIPs that can be served again (--announce)"},
    CommandSpec{Op::help, "help", "", "this list"},
};

constexpr size_t kMaxQuotedChars = 64;

const CommandSpec& spec_of(Op op) {
    for (const auto& s : kSpecs)
        if (s.op == op) return s;
    return kSpecs.back();  // unreachable: every Op has a spec
}

std::string usage_of(const CommandSpec& s) {
    return s.args.empty() ? std::string(s.name) : fmt::format("{} {}", s.name, s.args);
}

std::string command_names() {
    std::string names;
    for (const auto& s : kSpecs) {
        if (!names.empty()) names += ", ";
        names += s.name;
    }
    return names;
}

// 'token', cut short so a 4 KiB garbage token does not become a 4 KiB error line.
std::string quote(std::string_view token) {
    if (token.size() <= kMaxQuotedChars) return fmt::format("'{}'", token);
    return fmt::format("'{}...' ({} bytes)", token.substr(0, kMaxQuotedChars), token.size());
}

// The argument cursor of one request: hands out tokens and words the "missing" and
// "unexpected" errors with the command's usage.
class Args {
public:
    Args(const CommandSpec& spec, const std::vector<std::string_view>& tokens) : spec_(spec), tokens_(tokens) {}

    bool more() const { return next_ < tokens_.size(); }
    std::string_view peek() const { return tokens_[next_]; }

    Expected<std::string_view> take(std::string_view what) {
        if (!more()) return fail(fmt::format("missing {}", what));
        return tokens_[next_++];
    }
    Status finish() const {
        if (more()) return fail(fmt::format("unexpected argument {}", quote(tokens_[next_])));
        return {};
    }
    // "<command>: <problem> (usage: <command> <args>)"
    Error fail(std::string_view problem) const {
        return make_error(fmt::format("{}: {} (usage: {})", spec_.name, problem, usage_of(spec_)));
    }
    // "<command>: <problem>" for problems that already say what was expected.
    Error fail_plain(std::string_view problem) const {
        return make_error(fmt::format("{}: {}", spec_.name, problem));
    }

private:
    const CommandSpec& spec_;
    const std::vector<std::string_view>& tokens_;
    size_t next_ = 1;  // tokens_[0] is the command word
};

Status parse_vip_and_backend(Args& args, Command& cmd) {
    auto vip = args.take("VIP");
    if (!vip) return Error{vip.error()};
    if (auto st = lb::check_vip_name(*vip); !st) return args.fail_plain(st.error());
    cmd.vip = std::string(*vip);
    auto tok = args.take("ADDR[:PORT]");
    if (!tok) return Error{tok.error()};
    auto ep = net::parse_endpoint(*tok, {.what = "backend address", .bare_v6 = true, .min_port = 1});
    if (!ep) return args.fail_plain(ep.error());
    cmd.addr = ep->addr;
    cmd.port = ep->port.value_or(0);
    return {};
}

// A unicast MAC, as --neighbor takes it.
Status parse_mac_arg(Args& args, std::string_view text, Command& cmd) {
    auto m = net::parse_mac(text);
    if (!m) return args.fail_plain(fmt::format("bad MAC {} (expected 02:00:00:00:00:11)", quote(text)));
    if (*m == net::Mac{} || (m->bytes[0] & 0x01))
        return args.fail_plain(fmt::format("MAC {} is zero or multicast, not a host's", quote(text)));
    cmd.mac = *m;
    return {};
}

Status parse_weight(Args& args, std::string_view text, Command& cmd) {
    uint64_t w = 0;
    switch (parse_decimal(text, 0, lb::kMaxWeight, w)) {
        case DecimalError::none: cmd.weight = static_cast<uint32_t>(w); return {};
        case DecimalError::not_a_number:
            return args.fail_plain(fmt::format("bad weight {} (expected a decimal number 0..{})", quote(text),
                                               lb::kMaxWeight));
        case DecimalError::out_of_range:
            return args.fail_plain(fmt::format("weight {} out of range (0..{})", quote(text), lb::kMaxWeight));
    }
    return {};
}

Expected<lb::BackendState> parse_state(std::string_view s) {
    constexpr lb::BackendState kStates[] = {lb::BackendState::up, lb::BackendState::down,
                                            lb::BackendState::draining, lb::BackendState::disabled};
    if (auto st = lb::from_string(s, kStates)) return *st;
    return make_error(fmt::format("bad state {} (expected up, down, draining or disabled)", quote(s)));
}

Status parse_explain(Args& args, Command& cmd) {
    auto proto = args.take("protocol tcp|udp");
    if (!proto) return Error{proto.error()};
    constexpr lb::Proto kProtos[] = {lb::Proto::tcp, lb::Proto::udp};
    auto p = lb::from_string(*proto, kProtos);
    if (!p) return args.fail_plain(fmt::format("bad protocol {} (expected tcp or udp)", quote(*proto)));
    cmd.proto = *p;
    net::Endpoint ends[2];
    const std::string_view names[2] = {"source", "destination"};
    const std::string_view forms[2] = {"SRC_ADDR:SPORT", "DST_ADDR:DPORT"};
    for (int i = 0; i < 2; ++i) {
        auto tok = args.take(forms[i]);
        if (!tok) return Error{tok.error()};
        auto ep = net::parse_endpoint(*tok, {.what = names[i], .bare_v6 = true, .min_port = 0});
        if (!ep) return args.fail_plain(ep.error());
        if (!ep->port)
            return args.fail_plain(fmt::format("{} {} lacks a port (expected {}, IPv6 as [2001:db8::1]:80)",
                                               names[i], quote(*tok), forms[i]));
        ends[i] = *ep;
    }
    if (ends[0].addr.family != ends[1].addr.family)
        return args.fail_plain("source and destination are of different address families (expected both IPv4 "
                               "or both IPv6)");
    cmd.src_addr = ends[0].addr;
    cmd.src_port = *ends[0].port;
    cmd.dst_addr = ends[1].addr;
    cmd.dst_port = *ends[1].port;
    return {};
}

std::string format_backend(const Command& c) {
    if (c.port) return net::to_string(c.addr, c.port);
    return net::to_string(c.addr);  // IPv6 bare: without a port there is nothing to bracket off
}

}  // namespace

const char* to_string(Op op) { return spec_of(op).name.data(); }

Expected<Command> parse_command(std::string_view line) {
    size_t wire_bytes = line.size() + (line.ends_with('\n') ? 0 : 1);
    if (wire_bytes > kMaxLineBytes)
        return make_error(fmt::format("request line too long ({} bytes, at most {} including the newline)",
                                      wire_bytes, kMaxLineBytes));
    if (line.ends_with('\n')) line.remove_suffix(1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    for (size_t i = 0; i < line.size(); ++i) {
        auto ch = static_cast<unsigned char>(line[i]);
        if (ch == '\n') return make_error("more than one line in the request (one request per connection)");
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return make_error(fmt::format("bad character 0x{:02x} at byte {} (expected printable text)", ch, i));
    }

    std::vector<std::string_view> tokens;
    constexpr std::string_view kSpace = " \t";
    for (size_t pos = line.find_first_not_of(kSpace); pos != std::string_view::npos;) {
        size_t end = line.find_first_of(kSpace, pos);
        tokens.push_back(line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
        pos = end == std::string_view::npos ? end : line.find_first_not_of(kSpace, end);
    }
    if (tokens.empty()) return make_error("empty request (expected a command; try 'help')");
    std::string request_id;
    if (tokens.size() > 1 && tokens.back().starts_with("id=")) {
        const std::string_view id = tokens.back().substr(3);
        if (id.empty() || id.size() > kMaxRequestIdLen ||
            !std::all_of(id.begin(), id.end(), [](char ch) {
                return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                       ch == '_';
            }))
            return make_error(fmt::format("bad request {} (id=TOKEN: 1..{} letters, digits, '-', '_')",
                                          quote(tokens.back()), kMaxRequestIdLen));
        request_id = std::string(id);
        tokens.pop_back();
    }

    const CommandSpec* spec = nullptr;
    for (const auto& s : kSpecs)
        if (s.name == tokens[0]) spec = &s;
    if (!spec)
        return make_error(fmt::format("unknown command {} (expected one of: {})", quote(tokens[0]), command_names()));

    Command cmd;
    cmd.op = spec->op;
    cmd.request_id = std::move(request_id);
    Args args(*spec, tokens);
    switch (cmd.op) {
        case Op::list:
        case Op::stats:
        case Op::reload:
        case Op::clear_counters:
        case Op::withdraw:
        case Op::announce:
        case Op::help: break;
        case Op::remove_backend:
        case Op::drain:
            if (auto st = parse_vip_and_backend(args, cmd); !st) return Error{st.error()};
            break;
        case Op::add_backend:
            if (auto st = parse_vip_and_backend(args, cmd); !st) return Error{st.error()};
            while (args.more()) {
                const auto tok = args.peek();
                if (tok.starts_with("weight=") && !cmd.weight) {
                    (void)args.take("weight=N");
                    if (auto st = parse_weight(args, tok.substr(7), cmd); !st) return Error{st.error()};
                } else if (tok.starts_with("mac=") && !cmd.mac) {
                    (void)args.take("mac=MAC");
                    if (auto st = parse_mac_arg(args, tok.substr(4), cmd); !st) return Error{st.error()};
                } else {
                    break;  // finish() reports it
                }
            }
            break;
        case Op::set_neighbor: {
            auto tok = args.take("ADDR");
            if (!tok) return Error{tok.error()};
            auto ep = net::parse_endpoint(*tok, {.what = "neighbor address", .bare_v6 = true, .min_port = 1});
            if (!ep) return args.fail_plain(ep.error());
            if (ep->port) return args.fail_plain(fmt::format("a neighbor is an address, not {}", quote(*tok)));
            cmd.addr = ep->addr;
            auto m = args.take("MAC");
            if (!m) return Error{m.error()};
            if (auto st = parse_mac_arg(args, *m, cmd); !st) return Error{st.error()};
            break;
        }
        case Op::set_weight: {
            if (auto st = parse_vip_and_backend(args, cmd); !st) return Error{st.error()};
            auto tok = args.take("weight N");
            if (!tok) return Error{tok.error()};
            if (auto st = parse_weight(args, *tok, cmd); !st) return Error{st.error()};
            break;
        }
        case Op::set_state: {
            if (auto st = parse_vip_and_backend(args, cmd); !st) return Error{st.error()};
            auto tok = args.take("state up|down|draining|disabled");
            if (!tok) return Error{tok.error()};
            auto state = parse_state(*tok);
            if (!state) return args.fail_plain(state.error());
            cmd.state = *state;
            break;
        }
        case Op::explain:
            if (auto st = parse_explain(args, cmd); !st) return Error{st.error()};
            break;
        case Op::persist: {
            auto vip = args.take("VIP");
            if (!vip) return Error{vip.error()};
            if (auto st = lb::check_vip_name(*vip); !st) return args.fail_plain(st.error());
            cmd.vip = std::string(*vip);
            break;
        }
    }
    if (auto st = args.finish(); !st) return Error{st.error()};
    return cmd;
}

std::string format_command(const Command& c) {
    std::string line = to_string(c.op);
    switch (c.op) {
        case Op::list:
        case Op::stats:
        case Op::reload:
        case Op::clear_counters:
        case Op::withdraw:
        case Op::announce:
        case Op::help: break;
        case Op::add_backend:
            line += fmt::format(" {} {}", c.vip, format_backend(c));
            if (c.weight) line += fmt::format(" weight={}", *c.weight);
            if (c.mac) line += fmt::format(" mac={}", net::to_string(*c.mac));
            break;
        case Op::set_neighbor:
            line += fmt::format(" {} {}", c.addr.is_v4() ? net::to_string(c.addr) : fmt::format("[{}]", net::to_string(c.addr)),
                                c.mac ? net::to_string(*c.mac) : std::string());
            break;
        case Op::remove_backend:
        case Op::drain: line += fmt::format(" {} {}", c.vip, format_backend(c)); break;
        case Op::set_weight: line += fmt::format(" {} {} {}", c.vip, format_backend(c), c.weight.value_or(0)); break;
        case Op::set_state:
            line += fmt::format(" {} {} {}", c.vip, format_backend(c), lb::to_string(c.state));
            break;
        case Op::explain:
            line += fmt::format(" {} {} {}", lb::to_string(c.proto), net::to_string(c.src_addr, c.src_port),
                                net::to_string(c.dst_addr, c.dst_port));
            break;
        case Op::persist: line += " " + c.vip; break;
    }
    if (!c.request_id.empty()) line += " id=" + c.request_id;
    return line;
}

bool changes_state(Op op) noexcept {
    switch (op) {
        case Op::list:
        case Op::stats:
        case Op::explain:
        case Op::persist:
        case Op::help: return false;
        case Op::add_backend:
        case Op::remove_backend:
        case Op::set_weight:
        case Op::drain:
        case Op::set_state:
        case Op::reload:
        case Op::set_neighbor:
        case Op::withdraw:
        case Op::announce:
        case Op::clear_counters: return true;
    }
    return true;
}

std::string help_text() {
    size_t width = 0;
    for (const auto& s : kSpecs) width = std::max(width, usage_of(s).size());
    std::string text;
    for (const auto& s : kSpecs) text += fmt::format("  {:<{}}  {}\n", usage_of(s), width, s.summary);
    return text;
}

std::string ok_response(std::string_view body) {
    std::string r = "ok\n";
    r += body;
    if (!body.empty() && !body.ends_with('\n')) r += '\n';
    return r;
}

std::string error_response(std::string_view message) {
    auto nl = message.find('\n');
    auto first = message.substr(0, nl);
    if (first.ends_with('\r')) first.remove_suffix(1);
    std::string r = fmt::format("error: {}\n", first.empty() ? std::string_view("unspecified error") : first);
    if (nl != std::string_view::npos) {
        auto rest = message.substr(nl + 1);
        r += rest;
        if (!rest.empty() && !rest.ends_with('\n')) r += '\n';
    }
    return r;
}

Expected<Response> parse_response(std::string_view text) {
    if (text.empty()) return make_error("empty response (the server closed the connection without answering)");
    auto nl = text.find('\n');
    if (nl == std::string_view::npos)
        return make_error(fmt::format("truncated response {} (no end of line)", quote(text)));
    auto first = text.substr(0, nl);
    if (first.ends_with('\r')) first.remove_suffix(1);
    Response r;
    if (first == "ok") {
        r.ok = true;
    } else if (first.starts_with("error: ")) {
        r.message = std::string(first.substr(7));
    } else {
        return make_error(fmt::format("unexpected response line {} (expected 'ok' or 'error: ...')", quote(first)));
    }
    r.body = std::string(text.substr(nl + 1));
    return r;
}

}  // namespace sluice::control
