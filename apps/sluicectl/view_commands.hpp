// sluicectl's client-side views: `list [VIP]` and `stats` as aligned tables (the default), the
// server's key=value lines (--kv), JSON, rates, and `top`.
//
// The server grammar stays as it is (`list` and `stats` take no argument): each view sends
// the plain request, once or twice, and reshapes the answer with views.hpp. Exit status as
// for any command: 0 ok, 1 the server answered with an error or the VIP is unknown, 2 usage
// or connection error.
// Thread contract: single-threaded; run_top() installs SIGINT/SIGTERM handlers while it runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::ctlview {

enum class ViewCommand : uint8_t { list, stats, top };

struct ViewOptions {
    bool json = false;                // --json
    bool kv = false;                  // --kv: the server's key=value lines
    bool table = false;               // --table: the default, accepted for scripts that ask for it
    std::optional<double> rate_s;     // --rate[=SECONDS]
    std::optional<double> interval_s; // --interval=SECONDS (top)
    std::optional<uint64_t> iterations;  // --iterations=N (top)
    std::string vip;                  // list VIP, top VIP
    bool any() const { return json || kv || table || rate_s || interval_s || iterations; }
};

enum class OptionParse : uint8_t { not_mine, taken, bad };
// Takes `arg` if it is a view option. `error` says what is wrong with a bad one.
OptionParse parse_view_option(std::string_view arg, ViewOptions& o, std::string& error);

// Which options go with which command; empty when `o` suits `cmd`. `cmd` is empty for a
// command that is not a view (every view option is then out of place).
std::string check_view_options(std::optional<ViewCommand> cmd, const ViewOptions& o);

// Runs the view and prints it; returns the exit status.
int run_view(const std::string& socket_path, ViewCommand cmd, const ViewOptions& o);

// The --help section for the views.
std::string views_help();

}  // namespace sluice::ctlview
