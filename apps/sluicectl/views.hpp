// sluicectl's views of `list` and `stats`: the server's text answers parsed into values, and
// rendered again as JSON, per-second rates, aligned tables and `top` frames.
//
// The server's text stays the one format (scripts and tests parse it), so everything here is
// client side. Lines are parsed generically: leading words, then `key=value` fields, a value
// in double quotes running to the quote that ends the line or precedes the next `key=`. The
// server does not escape quotes inside a quoted value (a check's detail or a change's reason
// may hold any text), so that rule is what keeps `reason="said "no" twice" fail_streak=2`
// whole. A field the server adds later simply appears in every view; only the leading words
// are read by position. Lines of a kind this client does not know are not fatal, so an older
// sluicectl keeps working against a newer server: a list skips them, stats keep them as
// received (Stats::other) and print them after their tables.
//
// Thread contract: pure functions over values; no shared state, every function reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/common/expected.hpp"

namespace sluice::ctlview {

struct Field {
    std::string key;
    std::string value;
    bool quoted = false;   // came in double quotes: always a string, re-quoted when rendered
    bool numeric = false;  // a computed number (a rate): a JSON number even with a fraction
};
using Fields = std::vector<Field>;

// The value of `key`, or nullptr.
const std::string* find(const Fields& fields, std::string_view key);
// The value of `key` as an unsigned decimal, if present and one.
std::optional<uint64_t> find_u64(const Fields& fields, std::string_view key);
// Is `s` an unsigned decimal integer as JSON writes one (no sign, no leading zero), fitting
// 64 bits?
bool is_integer(std::string_view s);

// One answer line split into its leading words and its key=value fields. A bare word after
// the first field is kept as a word (in order) rather than dropped.
struct Tokens {
    std::vector<std::string> words;
    Fields fields;
};
Tokens tokenize(std::string_view line);
// The line again: words, then fields (`key=value`, quoted ones in quotes), one space apart.
std::string format_line(const Tokens& t);

struct BackendLine {
    std::string address;             // 198.51.100.11:80, [2001:db8::1]:80
    std::vector<std::string> extra;  // words after the address, if a server ever adds some
    Fields fields;
    std::string raw;  // the line as received (empty once the fields were rewritten)
};

struct VipLine {
    std::string name;
    std::string address;  // 203.0.113.10:80 (the part before "/proto")
    std::string proto;    // tcp, udp
    std::string mode;     // nat, fullnat, dsr, tunnel...
    std::vector<std::string> extra;
    Fields fields;
    std::vector<BackendLine> backends;
    std::string raw;
};
using List = std::vector<VipLine>;

// `list`'s body. Fails only on a backend line before any VIP line or a VIP line without its
// leading words.
Expected<List> parse_list(std::string_view body);

// Only the VIP named `name`. An unknown name fails naming the VIPs that exist.
Expected<List> filter_list(const List& list, std::string_view name);

struct Stats {
    Fields counters;            // rx=.. tx=.. ... drops=N
    std::vector<Fields> flows;  // one per worker: worker=0 ipv4=N/CAP ipv6=N/CAP
    Fields drops;               // REASON=N, one per `drop` line
    // Lines of kinds this client does not know (a newer server's), as received: the text
    // views and the tables print them as they are rather than hide them.
    std::vector<std::string> other;
};
// `stats`' body.
Expected<Stats> parse_stats(std::string_view body);

// The text views: the lines as received (`list VIP` is the plain answer cut down to the VIP)
// or, where rates replaced counters, formatted again in the same grammar.
std::string list_text(const List& list);
std::string stats_text(const Stats& stats);

// JSON. A list is an array of VIP objects: name, address, proto, mode, every field (unquoted
// integers as numbers, the rest strings, rates as numbers), any extra words as "words", and
// "backends" (address, fields, "words"). Stats are {"counters": {...}, "flows": [{"worker":
// 0, "ipv4": {"flows": N, "capacity": CAP}, ...}], "drops": {REASON: N}} plus "interval_s"
// for rates; every other line (replication's `sync`, `sync_peer` and `sync_counters`, or a
// newer server's kinds) as an array of objects under its first word, e.g.
// "sync_peer":[{"id":2, ...}] (fields, then any extra words as "words"). Counters sit in an
// object of their own because `drops=N` (their total) would otherwise collide with the
// "drops" object. Strings are escaped per RFC 8259; bytes that
// are not UTF-8 become U+FFFD, so the output is always valid JSON.
std::string list_json(const List& list);
std::string stats_json(const Stats& stats, std::optional<double> interval_s = std::nullopt);
// A JSON string literal for `s`, quotes included.
std::string json_string(std::string_view s);

// The counters of a list that become rates, and the names of the rates.
inline constexpr std::string_view kRatedListKeys[] = {"packets", "bytes", "new_flows"};
// "packets" -> "packets_per_s".
std::string rate_key(std::string_view key);

// `after` with each VIP's and backend's packets, bytes and new_flows replaced by their rate
// over `seconds` (packets_per_s...); gauges and the rest stay as in `after`. A VIP or backend
// absent from `before`, or whose counter went down (clear-counters), is rated from zero.
List list_rates(const List& before, const List& after, double seconds);
// `after` with every integer counter (and each drop reason) replaced by its rate (rx_per_s,
// ..., drops_per_s); the flow gauges stay as they are.
Stats stats_rates(const Stats& before, const Stats& after, double seconds);

// Columns padded to their widest cell, two spaces apart, numbers right-aligned; rows[0] is
// the header. No trailing spaces.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

// An ipvsadm-like table of a list (or of its rates): VIP / backend, state, weight, active,
// inactive, packets, bytes, new flows, and announced when the server reports it. A VIP's
// state is how many of its backends are up ("2/3 up"). When a nat or fullnat VIP is shown,
// a note under the table says what the packet counts count: a VIP's are its clients' packets,
// a backend's add the replies that come back through Sluice.
std::string list_table(const List& list);

// `stats` (or its rates) as tables: the counters in three name/value column pairs, then one
// row per worker (flows held and capacity per family), then the drops by reason, then any
// lines of kinds this client does not know, as received.
std::string stats_table(const Stats& stats);

// A rate as a table shows it: one decimal below 1000, else whole.
std::string format_rate(double per_s);

// One `top` frame: a header with rx/tx packets per second, drops per second and the flows
// held, then the table of the list's rates. `stats` is the rated stats.
std::string top_frame(const Stats& stats, const List& list_rated, double interval_s);

}  // namespace sluice::ctlview
