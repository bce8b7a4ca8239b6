// Sluice's option grammar: one set of option names for the command line and the config file.
//
// The command line (the part of argv after EAL's `--`) takes `--name value` or `--name=value`;
// a config file takes the same names as `name = value` lines (Boost.Program_options INI syntax:
// `#` starts a comment, blank lines are ignored, repeatable options may repeat). `--config FILE`
// reads a file first; command-line values then add to the repeatable options (--vip,
// --backend, --snat, --self, --neighbor) and override the scalars. A scalar given twice in
// the same source is an error rather than "last one wins", so a typo cannot hide.
//
// Trade-off: parsing is split in two. The parser checks only what needs the original text
// (syntax, numbers, which VIP a backend names); every semantic rule lives in validate(), so a
// Config built in code (tests, the control socket) is held to exactly the same rules. When
// validate() runs from the parser, its messages quote the option as the operator wrote it,
// with `file:line:` for values from a file; otherwise they quote a canonical rendering.
//
// Nothing here touches DPDK, so `--help` and `--check-config` work without EAL or hugepages.
// Thread contract: all functions are reentrant and keep no global state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"
#include "lib/lb/config.hpp"

namespace sluice::config {

enum class Action { run, help, version, check_config, doctor };

struct Parsed {
    Action action = Action::run;
    lb::Config config;          // filled (and validated) for run, check_config and doctor
    std::string text;           // help/version/check-config output, ends with '\n'; print as is
    std::string config_path;    // the --config FILE, empty if none (what a reload re-reads)
};

// Parses `args` (argv without the program name and without EAL's arguments). --help and
// --version return at once without reading or checking anything else; run, check_config and
// doctor read --config, merge, and validate(). Never throws; errors name the option and its value.
Expected<Parsed> parse_args(const std::vector<std::string>& args);

// Parses the contents of a config file as a complete configuration and validates it.
// `source_name` prefixes error messages ("sluice.conf:12: --vip '...': ..."). The
// command-line-only options (config, help, version, check-config) are rejected. Never throws.
Expected<lb::Config> parse_config_text(std::string_view text, std::string_view source_name);

// The --help text.
std::string usage();

// The semantic rules: value ranges, unicast addresses, unique VIP names and (addr, port,
// proto), backends of the VIP's family and unique within it, dsr port rules, a --snat address
// for each fullnat family, a --neighbor for every backend, and the process-setting ranges.
// Returns the first violation found. Never throws.
Status validate(const lb::Config& c);

}  // namespace sluice::config
