// sluicectl: the operator's client for a running Sluice's control socket.
//
//   sluicectl [-s|--socket PATH] [--wait[=SECONDS]] COMMAND [ARGS...]
//   sluicectl [-s PATH] [--kv|--json] [--rate[=S]] list [VIP] | stats | top [VIP]
//
// The command and its arguments are joined into one request line and checked with the same
// parser the server uses, so a usage error is reported without a server. The request is sent
// in canonical form; the response body goes to stdout, an error to stderr. Every socket call
// runs against one overall deadline, so sluicectl never hangs on a stuck server (client.hpp).
// `list` and `stats` print aligned tables unless --kv (the server's lines) or --json asks
// otherwise; `list VIP`, `top` and the view options are sluicectl's own: they reshape the
// plain `list` and `stats` answers on this side of the socket (view_commands.hpp, views.hpp).
// Exit status: 0 ok, 1 the server answered with an error, 2 usage or connection error.
// Thread contract: single-threaded.
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "apps/sluicectl/client.hpp"
#include "apps/sluicectl/view_commands.hpp"
#include "lib/common/expected.hpp"
#include "lib/control/ctl_protocol.hpp"
#include "lib/net/endpoint.hpp"

namespace {

using sluice::Expected;
using sluice::make_error;
namespace ctl = sluice::control;
namespace ctlclient = sluice::ctlclient;
namespace ctlview = sluice::ctlview;

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

using ctlclient::kExitOk;
using ctlclient::kExitServerError;
using ctlclient::kExitUsage;
using ctlclient::send_request;

constexpr const char* kDefaultSocket = "/run/sluice/sluice.sock";

std::string usage() {
    return fmt::format(
        "Usage: sluicectl [-s|--socket PATH] [OPTIONS] COMMAND [ARGS...]\n"
        "Send one command to a running Sluice over its control socket.\n\n"
        "Options:\n"
        "  -s, --socket PATH  control socket (default: $SLUICE_SOCKET, else {})\n"
        "  -h, --help         this text\n"
        "  -V, --version      print the version and exit\n"
        "  --wait[=SECONDS]   with drain (or set-weight 0, set-state draining|disabled):\n"
        "                     return when the backend holds no flow, exit 1 if it still\n"
        "                     does after SECONDS (default 300)\n"
        "  --kv, --json, --rate[=SECONDS], --interval=SECONDS, --iterations=N\n"
        "                     views of list, stats and top (below)\n\n"
        "Commands:\n"
        "{}\n"
        "{}\n"
        "VIP is the name given with --vip; ADDR[:PORT] is 192.0.2.1, 192.0.2.1:8080,\n"
        "[2001:db8::1]:8080 or 2001:db8::1 (an omitted port means the VIP's port).\n\n"
        "Exit status: 0 ok, 1 the command failed, 2 usage or connection error.\n",
        kDefaultSocket, ctl::help_text(), ctlview::views_help());
}

using Clock = std::chrono::steady_clock;

// 16 hex digits from the kernel's random source (a clock fallback keeps them distinct enough).
std::string random_id() {
    uint64_t x = 0;
    if (::getrandom(&x, sizeof x, 0) != static_cast<ssize_t>(sizeof x))
        x = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^ (uint64_t(::getpid()) << 40);
    return fmt::format("{:016x}", x);
}

// --wait: polls `list` until the backend of `c` holds no flow (active or inactive, on any
// worker), printing the count every 5 s; 0 when drained, 1 when time ran out, 2 on errors.
int wait_drained(const std::string& socket_path, const ctl::Command& c, int wait_s) {
    const auto start = Clock::now();
    auto last_report = start;
    for (;;) {
        int connect_errno = 0;
        bool sent = false;
        auto raw = send_request(socket_path, "list", connect_errno, sent);
        auto response = raw ? ctl::parse_response(*raw) : Expected<ctl::Response>(make_error(raw.error()));
        if (!response || !response->ok) {
            fmt::print(stderr, "sluicectl: --wait: {}\n", response ? response->message : response.error());
            return kExitUsage;
        }
        // The VIP's block, then the backend's line: its active_flows and inactive_flows.
        std::optional<uint64_t> flows;
        bool in_vip = false;
        size_t pos = 0;
        const std::string& body = response->body;
        while (pos < body.size()) {
            const size_t eol = std::min(body.find('\n', pos), body.size());
            const std::string_view l(body.data() + pos, eol - pos);
            pos = eol + 1;
            if (l.starts_with("vip ")) {
                in_vip = l.substr(4).starts_with(c.vip + " ");
                continue;
            }
            if (!in_vip || !l.starts_with("  backend ")) continue;
            const std::string_view rest = l.substr(10);
            auto ep = sluice::net::parse_endpoint(rest.substr(0, rest.find(' ')), {"backend", true, 0});
            if (!ep || ep->addr != c.addr || (c.port && ep->port != c.port)) continue;
            const auto field = [&](std::string_view key) -> uint64_t {
                const size_t at = l.find(key);
                return at == std::string_view::npos ? 0 : std::strtoull(l.data() + at + key.size(), nullptr, 10);
            };
            flows = field(" active_flows=") + field(" inactive_flows=");
        }
        if (!flows) {
            fmt::print(stderr, "sluicectl: --wait: the backend is no longer listed under VIP {}\n", c.vip);
            return kExitServerError;
        }
        const auto now = Clock::now();
        const double waited = std::chrono::duration<double>(now - start).count();
        if (*flows == 0) {
            fmt::print(stderr, "sluicectl: drained: no flow left after {:.1f} s\n", waited);
            return kExitOk;
        }
        if (waited >= wait_s) {
            fmt::print(stderr, "sluicectl: still {} flows after {} s\n", *flows, wait_s);
            return kExitServerError;
        }
        if (now - last_report >= std::chrono::seconds(5)) {
            fmt::print(stderr, "sluicectl: waiting: {} flows left ({:.0f} s)\n", *flows, waited);
            last_report = now;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

int run(int argc, char** argv) {
    std::string socket_path;
    if (const char* env = std::getenv("SLUICE_SOCKET"); env && *env) socket_path = env;
    bool socket_given = false;
    int wait_s = 0;  // --wait: seconds; 0 = do not wait
    ctlview::ViewOptions view;
    std::string view_error;

    int i = 1;
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(usage().c_str(), stdout);
            return kExitOk;
        }
        if (a == "-V" || a == "--version") {
            std::fputs("sluicectl " SLUICE_VERSION "\n", stdout);
            return kExitOk;
        }
        if (a == "--") {
            ++i;
            break;
        }
        if (a == "-s" || a == "--socket") {
            if (i + 1 >= argc) {
                fmt::print(stderr, "sluicectl: {} needs a PATH\nTry 'sluicectl --help'.\n", a);
                return kExitUsage;
            }
            socket_path = argv[++i];
            socket_given = true;
            continue;
        }
        if (a == "--wait" || a.starts_with("--wait=")) {
            wait_s = 300;
            if (a.size() > 6) {
                const std::string_view v = a.substr(7);
                char* end = nullptr;
                const std::string text(v);
                const unsigned long n = std::strtoul(text.c_str(), &end, 10);
                if (text.empty() || *end != '\0' || n < 1 || n > 86400 ||
                    !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                    fmt::print(stderr, "sluicectl: --wait={}: expected whole seconds, 1..86400\n", v);
                    return kExitUsage;
                }
                wait_s = static_cast<int>(n);
            }
            continue;
        }
        if (a.starts_with("--socket=")) {
            socket_path = std::string(a.substr(9));
            socket_given = true;
            continue;
        }
        if (const auto taken = ctlview::parse_view_option(a, view, view_error); taken != ctlview::OptionParse::not_mine) {
            if (taken == ctlview::OptionParse::taken) continue;
            fmt::print(stderr, "sluicectl: {}\n", view_error);
            return kExitUsage;
        }
        if (a.size() > 1 && a.front() == '-') {
            fmt::print(stderr, "sluicectl: unknown option '{}'\nTry 'sluicectl --help'.\n", a);
            return kExitUsage;
        }
        break;
    }
    if (i >= argc) {
        fmt::print(stderr, "sluicectl: no command given\n\n{}", usage());
        return kExitUsage;
    }
    if (socket_given && socket_path.empty()) {
        std::fputs("sluicectl: --socket needs a non-empty PATH\n", stderr);
        return kExitUsage;
    }
    if (socket_path.empty()) socket_path = kDefaultSocket;

    // The views: options and a VIP name after list, stats or top stay on this side.
    std::optional<ctlview::ViewCommand> view_cmd;
    const std::string_view word = argv[i];
    if (word == "list") view_cmd = ctlview::ViewCommand::list;
    if (word == "stats") view_cmd = ctlview::ViewCommand::stats;
    if (word == "top") view_cmd = ctlview::ViewCommand::top;
    std::vector<std::string> words = {std::string(word)};
    if (view_cmd) {
        for (int k = i + 1; k < argc; ++k) {
            const std::string_view a = argv[k];
            const auto taken = ctlview::parse_view_option(a, view, view_error);
            if (taken == ctlview::OptionParse::taken) continue;
            if (taken == ctlview::OptionParse::bad) {
                fmt::print(stderr, "sluicectl: {}\n", view_error);
                return kExitUsage;
            }
            if (a.size() > 1 && a.front() == '-') {
                fmt::print(stderr, "sluicectl: unknown option '{}'\nTry 'sluicectl --help'.\n", a);
                return kExitUsage;
            }
            if (view.vip.empty() && !a.starts_with("id=")) {
                view.vip = std::string(a);
                continue;
            }
            words.emplace_back(a);  // the server's parser words its complaint
        }
    } else {
        for (int k = i + 1; k < argc; ++k) words.emplace_back(argv[k]);
    }
    if (view_cmd || view.any()) {
        std::string problem = ctlview::check_view_options(view_cmd, view);
        if (problem.empty() && words.size() > 1)
            problem = fmt::format("unexpected argument '{}' after {}", words[1], word);
        if (problem.empty() && wait_s)
            problem = "--wait goes with drain, set-weight ... 0 or set-state ... draining|disabled";
        if (!problem.empty()) {
            fmt::print(stderr, "sluicectl: {}\nTry 'sluicectl --help'.\n", problem);
            return kExitUsage;
        }
        return ctlview::run_view(socket_path, *view_cmd, view);
    }

    std::string line;
    for (size_t k = 0; k < words.size(); ++k) {
        if (k) line += ' ';
        line += words[k];
    }
    auto cmd = ctl::parse_command(line);
    if (!cmd) {
        fmt::print(stderr, "sluicectl: {}\nTry 'sluicectl --help'.\n", cmd.error());
        return kExitUsage;
    }
    const bool drains = cmd->op == ctl::Op::drain || (cmd->op == ctl::Op::set_weight && cmd->weight == 0u) ||
                        (cmd->op == ctl::Op::set_state && (cmd->state == sluice::lb::BackendState::draining ||
                                                           cmd->state == sluice::lb::BackendState::disabled));
    if (wait_s && !drains) {
        std::fputs("sluicectl: --wait goes with drain, set-weight ... 0 or set-state ... draining|disabled\n", stderr);
        return kExitUsage;
    }

    // A change carries an id, so that repeating it after a lost answer cannot apply it twice.
    if (ctl::changes_state(cmd->op) && cmd->request_id.empty()) cmd->request_id = random_id();
    int connect_errno = 0;
    bool sent = false;
    const std::string request = ctl::format_command(*cmd);
    auto raw = send_request(socket_path, request, connect_errno, sent);
    if (!raw) {
        fmt::print(stderr, "sluicectl: {}: {}{}\n", socket_path, raw.error(), ctlclient::connect_hint(connect_errno));
        if (sent && ctl::changes_state(cmd->op))
            fmt::print(stderr,
                       "sluicectl: the change may have been applied anyway. To learn its outcome without applying it "
                       "twice, repeat it with its id:\n  sluicectl {}\n",
                       request);
        return kExitUsage;
    }
    auto response = ctl::parse_response(*raw);
    if (!response) {
        fmt::print(stderr, "sluicectl: {}: bad response: {}\n", socket_path, response.error());
        return kExitUsage;
    }
    if (!response->ok) {
        fmt::print(stderr, "sluicectl: {}\n", response->message);
        std::fputs(response->body.c_str(), stderr);
        return kExitServerError;
    }
    std::fputs(response->body.c_str(), stdout);
    if (std::fflush(stdout) != 0) return kExitUsage;
    return wait_s ? wait_drained(socket_path, *cmd, wait_s) : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluicectl: %s\n", e.what());
        return kExitUsage;
    }
}
