// sluicectl's views (see view_commands.hpp): fetching, timing and printing around the pure
// functions of views.hpp.
//
// Rates divide by the time measured between the two answers, not the nominal interval, so a
// slow answer does not inflate them. `top` redraws with ANSI clear/home only (no curses): the
// cursor is hidden while it runs and shown again on every way out, including SIGINT.
// Thread contract: single-threaded.
#include "apps/sluicectl/view_commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "apps/sluicectl/client.hpp"
#include "apps/sluicectl/views.hpp"

namespace sluice::ctlview {
namespace {

using Clock = std::chrono::steady_clock;
using ctlclient::kExitOk;
using ctlclient::kExitServerError;
using ctlclient::kExitUsage;

constexpr double kMinSeconds = 0.1;
constexpr double kMaxSeconds = 3600;
constexpr uint64_t kMaxIterations = 1'000'000;

volatile std::sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

// "1", "0.5": seconds within [kMinSeconds, kMaxSeconds].
bool parse_seconds(std::string_view text, double& out) {
    if (text.empty() || text.size() > 16) return false;
    for (char c : text)
        if (!((c >= '0' && c <= '9') || c == '.')) return false;
    const std::string s(text);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (*end != '\0' || !(v >= kMinSeconds && v <= kMaxSeconds)) return false;
    out = v;
    return true;
}

struct Sample {
    List list;
    Stats stats;
    std::string body;  // the answer as received
    Clock::time_point at;
};

int fail(int code, std::string_view message) {
    fmt::print(stderr, "sluicectl: {}\n", message);
    return code;
}

// Fetches `list` (filtered to `vip` if given) into s.list. 0 or the exit status, printed.
int fetch_list(const std::string& path, const std::string& vip, Sample& s) {
    auto a = ctlclient::query(path, "list");
    if (a.exit_code) return fail(a.exit_code, a.error);
    s.at = Clock::now();
    s.body = a.body;
    auto list = parse_list(a.body);
    if (!list) return fail(kExitUsage, fmt::format("{}: bad list answer: {}", path, list.error()));
    if (!vip.empty()) {
        auto one = filter_list(*list, vip);
        if (!one) return fail(kExitServerError, one.error());
        s.list = std::move(*one);
    } else {
        s.list = std::move(*list);
    }
    return kExitOk;
}

int fetch_stats(const std::string& path, Sample& s) {
    auto a = ctlclient::query(path, "stats");
    if (a.exit_code) return fail(a.exit_code, a.error);
    s.at = Clock::now();
    s.body = a.body;
    auto stats = parse_stats(a.body);
    if (!stats) return fail(kExitUsage, fmt::format("{}: bad stats answer: {}", path, stats.error()));
    s.stats = std::move(*stats);
    return kExitOk;
}

// Sleeps until `until`; false if a stop signal came first.
bool sleep_until(Clock::time_point until) {
    while (!g_stop) {
        const auto left = until - Clock::now();
        if (left <= Clock::duration::zero()) return true;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        ::nanosleep(&ts, nullptr);  // EINTR on a signal: the loop looks at g_stop
    }
    return false;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

bool print(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0;
}

int run_list(const std::string& path, const ViewOptions& o) {
    Sample a;
    if (int rc = fetch_list(path, o.vip, a)) return rc;
    // --kv alone is the server's answer, byte for byte: scripts parse it.
    if (o.kv && !o.rate_s && o.vip.empty()) return print(a.body) ? kExitOk : kExitUsage;
    List shown = std::move(a.list);
    if (o.rate_s) {
        Sample b;
        sleep_until(a.at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*o.rate_s)));
        if (int rc = fetch_list(path, o.vip, b)) return rc;
        shown = list_rates(shown, b.list, seconds_between(a.at, b.at));
    }
    const std::string out = o.json ? list_json(shown) : o.kv ? list_text(shown) : list_table(shown);
    return print(out) ? kExitOk : kExitUsage;
}

int run_stats(const std::string& path, const ViewOptions& o) {
    Sample a;
    if (int rc = fetch_stats(path, a)) return rc;
    if (o.kv && !o.rate_s) return print(a.body) ? kExitOk : kExitUsage;
    std::optional<double> interval;
    Stats shown = std::move(a.stats);
    if (o.rate_s) {
        Sample b;
        sleep_until(a.at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*o.rate_s)));
        if (int rc = fetch_stats(path, b)) return rc;
        interval = seconds_between(a.at, b.at);
        shown = stats_rates(shown, b.stats, *interval);
    }
    const std::string out = o.json ? stats_json(shown, interval) : o.kv ? stats_text(shown) : stats_table(shown);
    return print(out) ? kExitOk : kExitUsage;
}

// Restores what `top` changed, however it ends.
class TopTerminal {
public:
    explicit TopTerminal(bool tty) : tty_(tty) {
        struct sigaction sa {};
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART: a signal ends the sleep at once
        ::sigaction(SIGINT, &sa, &old_int_);
        ::sigaction(SIGTERM, &sa, &old_term_);
        if (tty_) print("\x1b[?25l");  // hide the cursor
    }
    ~TopTerminal() {
        if (tty_) print("\x1b[?25h");
        ::sigaction(SIGINT, &old_int_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
    }
    TopTerminal(const TopTerminal&) = delete;
    TopTerminal& operator=(const TopTerminal&) = delete;

private:
    bool tty_;
    struct sigaction old_int_ {};
    struct sigaction old_term_ {};
};

int run_top(const std::string& path, const ViewOptions& o) {
    const double interval = o.interval_s.value_or(1.0);
    const auto step = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
    const bool tty = ::isatty(STDOUT_FILENO) == 1;
    g_stop = 0;
    TopTerminal term(tty);
    Sample prev;
    if (int rc = fetch_list(path, o.vip, prev)) return rc;
    if (int rc = fetch_stats(path, prev)) return rc;
    uint64_t frames = 0;
    auto next = prev.at + step;
    while (sleep_until(next)) {
        Sample cur;
        if (int rc = fetch_list(path, o.vip, cur)) return rc;
        if (int rc = fetch_stats(path, cur)) return rc;
        const double dt = seconds_between(prev.at, cur.at);
        const std::string frame =
            top_frame(stats_rates(prev.stats, cur.stats, dt), list_rates(prev.list, cur.list, dt), interval);
        if (!print(tty ? "\x1b[H\x1b[2J" + frame : (frames ? "\n" : "") + frame)) return kExitUsage;
        if (o.iterations && ++frames >= *o.iterations) break;
        prev = std::move(cur);
        next += step;
        if (next < Clock::now()) next = Clock::now();  // a slow answer: no burst of catch-up frames
    }
    return kExitOk;
}

}  // namespace

OptionParse parse_view_option(std::string_view a, ViewOptions& o, std::string& error) {
    double s = 0;
    if (a == "--json") {
        o.json = true;
    } else if (a == "--kv") {
        o.kv = true;
    } else if (a == "--table") {
        o.table = true;
    } else if (a == "--rate") {
        o.rate_s = 1.0;
    } else if (a.starts_with("--rate=") || a.starts_with("--interval=")) {
        const bool rate = a.starts_with("--rate=");
        const std::string_view v = a.substr(a.find('=') + 1);
        if (!parse_seconds(v, s)) {
            error = fmt::format("{}: expected seconds, {}..{} (such as 1 or 0.5)", a, kMinSeconds, kMaxSeconds);
            return OptionParse::bad;
        }
        (rate ? o.rate_s : o.interval_s) = s;
    } else if (a.starts_with("--iterations=")) {
        const std::string v(a.substr(13));
        char* end = nullptr;
        const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || v.front() < '0' || v.front() > '9' || n < 1 || n > kMaxIterations) {
            error = fmt::format("{}: expected a whole number, 1..{}", a, kMaxIterations);
            return OptionParse::bad;
        }
        o.iterations = n;
    } else {
        return OptionParse::not_mine;
    }
    return OptionParse::taken;
}

std::string check_view_options(std::optional<ViewCommand> cmd, const ViewOptions& o) {
    const bool list = cmd == ViewCommand::list, stats = cmd == ViewCommand::stats, top = cmd == ViewCommand::top;
    if (o.json && !(list || stats)) return "--json goes with list or stats";
    if (o.kv && !(list || stats)) return "--kv goes with list or stats";
    if (o.table && !(list || stats)) return "--table goes with list or stats";
    if (o.rate_s && !(list || stats)) return "--rate goes with list or stats (top always shows rates)";
    if (o.json + o.kv + o.table > 1) return "choose one of --table, --kv and --json";
    if ((o.interval_s || o.iterations) && !top) return "--interval and --iterations go with top";
    if (!o.vip.empty() && !(list || top)) return "only list and top take a VIP name";
    return {};
}

int run_view(const std::string& socket_path, ViewCommand cmd, const ViewOptions& o) {
    switch (cmd) {
        case ViewCommand::list: return run_list(socket_path, o);
        case ViewCommand::stats: return run_stats(socket_path, o);
        case ViewCommand::top: return run_top(socket_path, o);
    }
    return kExitUsage;
}

std::string views_help() {
    return "Views (client side; options may come before or after the command):\n"
           "  list [VIP] [--kv|--json] [--rate[=SECONDS]]\n"
           "                     an aligned table, as ipvsadm -L: VIP / backend, state, weight,\n"
           "                     active and inactive flows, packets, bytes, new flows (and\n"
           "                     announced when the server reports it). A nat or fullnat VIP's\n"
           "                     packets are its clients'; its backends' add their replies.\n"
           "                     VIP: only that VIP (an unknown name exits 1, naming the VIPs);\n"
           "                     --kv: the server's lines, one key=value field per counter;\n"
           "                     --json: an array of VIP objects (name, address, proto, mode,\n"
           "                     every field, integers as numbers) with their \"backends\";\n"
           "                     --rate: two answers SECONDS apart (default 1): packets, bytes\n"
           "                     and new flows per second instead of the totals, flow gauges\n"
           "                     as they are now\n"
           "  stats [--kv|--json] [--rate[=SECONDS]]\n"
           "                     tables of the workers' summed counters, each worker's flow-table\n"
           "                     fill and the drops by reason; --kv: the server's lines;\n"
           "                     --json: {\"counters\": {...}, \"flows\": [per worker], \"drops\":\n"
           "                     {REASON: N}}; --rate: every counter and drop reason per second\n"
           "  top [VIP] [--interval=SECONDS] [--iterations=N]\n"
           "                     redraw every SECONDS (default 1): rx/tx packets and drops per\n"
           "                     second, flows held, and per VIP and backend: state, weight,\n"
           "                     active/inactive flows, packets, bytes and new flows per second.\n"
           "                     Ctrl-C ends it. --iterations=N: stop after N frames; when\n"
           "                     stdout is not a terminal, frames are plain text, a blank line\n"
           "                     apart\n"
           "Scripts parse --kv or --json: the tables' columns may change, those formats do not.\n"
           "--table (the default) is accepted for scripts written when it was not.\n";
}

}  // namespace sluice::ctlview
