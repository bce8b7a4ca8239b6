// sluicectl's views of `list` and `stats` (see views.hpp for the grammar and its one
// heuristic, the end of an unescaped quoted value).
// Thread contract: pure functions; no shared state.
#include "apps/sluicectl/views.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace sluice::ctlview {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '/';
}

// Length of the key of a `key=` starting at `pos`, or 0 if none starts there.
size_t key_at(std::string_view s, size_t pos) {
    size_t i = pos;
    while (i < s.size() && is_key_char(s[i])) ++i;
    return i > pos && i < s.size() && s[i] == '=' ? i - pos : 0;
}

// Does only blank space, or blank space and then a `key=`, follow `pos`?
bool field_or_end_follows(std::string_view s, size_t pos) {
    while (pos < s.size() && is_space(s[pos])) ++pos;
    return pos == s.size() || key_at(s, pos) > 0;
}

std::string_view trim_cr(std::string_view l) {
    if (l.ends_with('\r')) l.remove_suffix(1);
    return l;
}

template <typename F>
void for_each_line(std::string_view body, F&& f) {
    size_t pos = 0;
    while (pos < body.size()) {
        const size_t eol = std::min(body.find('\n', pos), body.size());
        f(trim_cr(body.substr(pos, eol - pos)));
        pos = eol + 1;
    }
}

std::string format_field(const Field& f) {
    return f.quoted ? fmt::format("{}=\"{}\"", f.key, f.value) : fmt::format("{}={}", f.key, f.value);
}

// Appends `s` escaped (without the quotes): RFC 8259 §7, invalid UTF-8 as U+FFFD.
void escape_into(std::string& out, std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20 || c == 0x7f)
                        out += fmt::format("\\u{:04x}", c);
                    else
                        out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // A well-formed sequence (no overlongs, no surrogates, at most U+10FFFF) is copied.
        size_t n = 0;
        uint32_t cp = 0, min = 0;
        if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
        bool ok = n > 0 && i + n <= s.size();
        for (size_t k = 1; ok && k < n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            ok = (cc & 0xc0) == 0x80;
            cp = (cp << 6) | (cc & 0x3f);
        }
        ok = ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (ok) {
            out.append(s.data() + i, n);
            i += n;
        } else {
            out += "\\ufffd";
            ++i;
        }
    }
}

// "N/CAP" (a flow table's fill) as its two numbers.
bool split_fill(std::string_view v, std::string_view& used, std::string_view& cap) {
    const size_t slash = v.find('/');
    if (slash == std::string_view::npos) return false;
    used = v.substr(0, slash);
    cap = v.substr(slash + 1);
    return is_integer(used) && is_integer(cap);
}

void json_value(std::string& out, const Field& f, bool fills = false) {
    std::string_view used, cap;
    if (f.numeric || (!f.quoted && is_integer(f.value)))
        out += f.value;
    else if (fills && !f.quoted && split_fill(f.value, used, cap))
        out += fmt::format("{{\"flows\":{},\"capacity\":{}}}", used, cap);
    else
        out += json_string(f.value);
}

// `"key":value,...` for every field, each preceded by a comma when `comma` (after earlier
// members).
void json_members(std::string& out, const Fields& fields, bool comma, bool fills = false) {
    for (const auto& f : fields) {
        if (comma) out += ',';
        comma = true;
        out += json_string(f.key);
        out += ':';
        json_value(out, f, fills);
    }
}

void json_words(std::string& out, const std::vector<std::string>& words, bool comma = true) {
    if (words.empty()) return;
    out += comma ? ",\"words\":[" : "\"words\":[";
    for (size_t i = 0; i < words.size(); ++i) {
        if (i) out += ',';
        out += json_string(words[i]);
    }
    out += ']';
}

std::string format_number(double v) {
    if (!std::isfinite(v) || v < 0) v = 0;
    // Two decimals say enough of a rate; whole rates print without a fraction.
    std::string s = fmt::format("{:.2f}", v);
    while (s.ends_with('0')) s.pop_back();
    if (s.ends_with('.')) s.pop_back();
    return s;
}

double rate_of(std::optional<uint64_t> before, std::optional<uint64_t> after, double seconds) {
    if (!after || seconds <= 0) return 0;
    const uint64_t b = before && *before <= *after ? *before : 0;  // a reset counts from zero
    return static_cast<double>(*after - b) / seconds;
}

// `after` with every key in `keys` (all integer fields when `keys` is empty) replaced in
// place by its rate against `before`.
Fields rate_fields(const Fields* before, const Fields& after, double seconds,
                   const std::vector<std::string_view>& keys) {
    Fields out;
    out.reserve(after.size());
    for (const auto& f : after) {
        const bool rated = keys.empty() ? !f.quoted && is_integer(f.value)
                                        : std::find(keys.begin(), keys.end(), f.key) != keys.end();
        if (!rated) {
            out.push_back(f);
            continue;
        }
        const std::optional<uint64_t> b = before ? find_u64(*before, f.key) : std::nullopt;
        out.push_back(Field{rate_key(f.key), format_number(rate_of(b, find_u64(after, f.key), seconds)), false, true});
    }
    return out;
}

std::string cell(const Fields& fields, std::string_view key) {
    const std::string* v = find(fields, key);
    return v ? *v : "-";
}

std::string rate_cell(const Fields& fields, std::string_view key) {
    const std::string* v = find(fields, rate_key(key));
    if (!v) return "-";
    double d = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), d);
    return ec == std::errc() ? format_rate(d) : *v;
}

bool looks_numeric(std::string_view s) {
    return !s.empty() && s != "-" &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

}  // namespace

const std::string* find(const Fields& fields, std::string_view key) {
    for (const auto& f : fields)
        if (f.key == key) return &f.value;
    return nullptr;
}

std::optional<uint64_t> find_u64(const Fields& fields, std::string_view key) {
    for (const auto& f : fields)
        if (f.key == key && !f.quoted && is_integer(f.value)) {
            uint64_t v = 0;
            std::from_chars(f.value.data(), f.value.data() + f.value.size(), v);
            return v;
        }
    return std::nullopt;
}

bool is_integer(std::string_view s) {
    if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
    if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

Tokens tokenize(std::string_view line) {
    Tokens t;
    size_t pos = 0;
    while (pos < line.size()) {
        while (pos < line.size() && is_space(line[pos])) ++pos;
        if (pos >= line.size()) break;
        const size_t klen = key_at(line, pos);
        if (!klen) {
            size_t end = pos;
            while (end < line.size() && !is_space(line[end])) ++end;
            t.words.emplace_back(line.substr(pos, end - pos));
            pos = end;
            continue;
        }
        Field f;
        f.key = std::string(line.substr(pos, klen));
        size_t v = pos + klen + 1;
        if (v < line.size() && line[v] == '"') {
            f.quoted = true;
            size_t close = std::string_view::npos;
            for (size_t j = v + 1; j < line.size(); ++j)
                if (line[j] == '"' && field_or_end_follows(line, j + 1)) {
                    close = j;
                    break;
                }
            if (close == std::string_view::npos) {  // unterminated: the rest of the line
                f.value = std::string(line.substr(v + 1));
                pos = line.size();
            } else {
                f.value = std::string(line.substr(v + 1, close - v - 1));
                pos = close + 1;
            }
        } else {
            size_t end = v;
            while (end < line.size() && !is_space(line[end])) ++end;
            f.value = std::string(line.substr(v, end - v));
            pos = end;
        }
        t.fields.push_back(std::move(f));
    }
    return t;
}

std::string format_line(const Tokens& t) {
    std::string s;
    for (const auto& w : t.words) {
        if (!s.empty()) s += ' ';
        s += w;
    }
    for (const auto& f : t.fields) {
        if (!s.empty()) s += ' ';
        s += format_field(f);
    }
    return s;
}

Expected<List> parse_list(std::string_view body) {
    List list;
    Status st;
    size_t n = 0;
    for_each_line(body, [&](std::string_view l) {
        ++n;
        if (!st) return;
        Tokens t = tokenize(l);
        if (t.words.empty()) return;
        if (t.words[0] == "vip" && !is_space(l.front())) {
            if (t.words.size() < 4) {
                st = make_error(fmt::format("list line {}: a VIP line without name, address and mode", n));
                return;
            }
            VipLine v;
            v.name = t.words[1];
            const size_t slash = t.words[2].rfind('/');
            v.address = t.words[2].substr(0, slash);
            v.proto = slash == std::string::npos ? std::string() : t.words[2].substr(slash + 1);
            v.mode = t.words[3];
            v.extra.assign(t.words.begin() + 4, t.words.end());
            v.fields = std::move(t.fields);
            v.raw = std::string(l);
            list.push_back(std::move(v));
        } else if (t.words[0] == "backend" && is_space(l.front())) {
            if (list.empty() || t.words.size() < 2) {
                st = make_error(fmt::format("list line {}: a backend line {}", n,
                                            list.empty() ? "before any VIP" : "without an address"));
                return;
            }
            BackendLine b;
            b.address = t.words[1];
            b.extra.assign(t.words.begin() + 2, t.words.end());
            b.fields = std::move(t.fields);
            b.raw = std::string(l);
            list.back().backends.push_back(std::move(b));
        }
    });
    if (!st) return Error{st.error()};
    return list;
}

Expected<List> filter_list(const List& list, std::string_view name) {
    for (const auto& v : list)
        if (v.name == name) return List{v};
    std::string names;
    for (const auto& v : list) names += (names.empty() ? "" : ", ") + v.name;
    return make_error(fmt::format("no VIP named '{}' ({})", name,
                                  names.empty() ? std::string("no VIP is configured") : "VIPs: " + names));
}

Expected<Stats> parse_stats(std::string_view body) {
    Stats s;
    for_each_line(body, [&](std::string_view l) {
        Tokens t = tokenize(l);
        if (t.words.empty()) {
            s.counters.insert(s.counters.end(), t.fields.begin(), t.fields.end());
        } else if (t.words[0] == "flows" && t.words.size() == 1) {
            s.flows.push_back(std::move(t.fields));
        } else if (t.words[0] == "drop" && t.words.size() == 1) {
            s.drops.insert(s.drops.end(), t.fields.begin(), t.fields.end());
        } else {
            s.other.emplace_back(l);
        }
    });
    if (s.counters.empty()) return make_error("stats: no counters in the answer");
    return s;
}

std::string list_text(const List& list) {
    std::string o;
    for (const auto& v : list) {
        if (!v.raw.empty()) {
            o += v.raw;
        } else {
            Tokens t{{"vip", v.name, v.proto.empty() ? v.address : v.address + "/" + v.proto, v.mode}, v.fields};
            t.words.insert(t.words.end(), v.extra.begin(), v.extra.end());
            o += format_line(t);
        }
        o += '\n';
        for (const auto& b : v.backends) {
            if (!b.raw.empty()) {
                o += b.raw;
            } else {
                Tokens t{{"backend", b.address}, b.fields};
                t.words.insert(t.words.end(), b.extra.begin(), b.extra.end());
                o += "  " + format_line(t);
            }
            o += '\n';
        }
    }
    return o;
}

std::string stats_text(const Stats& s) {
    std::string o = format_line(Tokens{{}, s.counters}) + "\n";
    for (const auto& f : s.flows) o += format_line(Tokens{{"flows"}, f}) + "\n";
    for (const auto& d : s.drops) o += "drop " + format_field(d) + "\n";
    for (const auto& l : s.other) o += l + "\n";
    return o;
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    escape_into(out, s);
    out += '"';
    return out;
}

std::string list_json(const List& list) {
    std::string o = "[";
    for (size_t i = 0; i < list.size(); ++i) {
        const VipLine& v = list[i];
        o += i ? ",\n  {" : "\n  {";
        o += fmt::format("\"name\":{},\"address\":{},\"proto\":{},\"mode\":{}", json_string(v.name),
                         json_string(v.address), json_string(v.proto), json_string(v.mode));
        json_members(o, v.fields, true);
        json_words(o, v.extra);
        o += ",\"backends\":[";
        for (size_t k = 0; k < v.backends.size(); ++k) {
            const BackendLine& b = v.backends[k];
            o += k ? ",\n    {" : "\n    {";
            o += "\"address\":" + json_string(b.address);
            json_members(o, b.fields, true);
            json_words(o, b.extra);
            o += '}';
        }
        o += v.backends.empty() ? "]}" : "\n  ]}";
    }
    o += list.empty() ? "]\n" : "\n]\n";
    return o;
}

std::string stats_json(const Stats& s, std::optional<double> interval_s) {
    std::string o = "{";
    if (interval_s) o += fmt::format("\"interval_s\":{},\n ", format_number(*interval_s));
    o += "\"counters\":{";
    json_members(o, s.counters, false);
    o += "},\n \"flows\":[";
    for (size_t i = 0; i < s.flows.size(); ++i) {
        o += i ? "," : "";
        o += '{';
        json_members(o, s.flows[i], false, true);
        o += '}';
    }
    o += "],\n \"drops\":{";
    json_members(o, s.drops, false);
    o += '}';
    // The other lines (replication's `sync`, `sync_peer`, `sync_counters`, and kinds a newer
    // server adds), grouped by their first word into arrays of objects in the order received:
    // JSON carries everything the text does. A kind named like a member above gets "_lines".
    std::vector<std::pair<std::string, std::vector<Tokens>>> kinds;
    for (const auto& l : s.other) {
        Tokens t = tokenize(l);
        std::string kind = t.words.empty() ? "other" : t.words[0];
        if (!t.words.empty()) t.words.erase(t.words.begin());
        if (kind == "counters" || kind == "flows" || kind == "drops" || kind == "interval_s") kind += "_lines";
        auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == kind; });
        if (it == kinds.end()) it = kinds.insert(kinds.end(), {kind, {}});
        it->second.push_back(std::move(t));
    }
    for (const auto& [kind, lines] : kinds) {
        o += ",\n " + json_string(kind) + ":[";
        for (size_t i = 0; i < lines.size(); ++i) {
            o += i ? ",{" : "{";
            json_members(o, lines[i].fields, false);
            json_words(o, lines[i].words, !lines[i].fields.empty());
            o += '}';
        }
        o += ']';
    }
    o += "}\n";
    return o;
}

std::string rate_key(std::string_view key) { return std::string(key) + "_per_s"; }

List list_rates(const List& before, const List& after, double seconds) {
    const std::vector<std::string_view> keys(std::begin(kRatedListKeys), std::end(kRatedListKeys));
    List out = after;
    for (auto& v : out) {
        const VipLine* bv = nullptr;
        for (const auto& c : before)
            if (c.name == v.name) bv = &c;
        v.fields = rate_fields(bv ? &bv->fields : nullptr, v.fields, seconds, keys);
        v.raw.clear();
        for (auto& b : v.backends) {
            const BackendLine* bb = nullptr;
            if (bv)
                for (const auto& c : bv->backends)
                    if (c.address == b.address) bb = &c;
            b.fields = rate_fields(bb ? &bb->fields : nullptr, b.fields, seconds, keys);
            b.raw.clear();
        }
    }
    return out;
}

Stats stats_rates(const Stats& before, const Stats& after, double seconds) {
    Stats out;
    out.counters = rate_fields(&before.counters, after.counters, seconds, {});
    out.flows = after.flows;
    out.other = after.other;
    out.drops = rate_fields(&before.drops, after.drops, seconds, {});
    // A reason's rate keeps the reason as its name: the drops object is per second already.
    for (auto& d : out.drops)
        if (d.key.ends_with("_per_s")) d.key.resize(d.key.size() - 6);
    return out;
}

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
    size_t ncols = 0;
    for (const auto& r : rows) ncols = std::max(ncols, r.size());
    std::vector<size_t> width(ncols, 0);
    std::vector<bool> right(ncols, true);  // a column is right-aligned when all its cells are numbers
    for (size_t ri = 0; ri < rows.size(); ++ri)
        for (size_t c = 0; c < rows[ri].size(); ++c) {
            width[c] = std::max(width[c], rows[ri][c].size());
            if (ri > 0 && rows[ri][c] != "-" && !rows[ri][c].empty() && !looks_numeric(rows[ri][c]))
                right[c] = false;
        }
    std::string o;
    for (const auto& r : rows) {
        std::string line;
        for (size_t c = 0; c < ncols; ++c) {
            const std::string& s = c < r.size() ? r[c] : std::string();
            if (c) line += "  ";
            const std::string pad(width[c] - s.size(), ' ');
            line += right[c] && c > 0 ? pad + s : s + pad;
        }
        while (line.ends_with(' ')) line.pop_back();
        o += line + '\n';
    }
    return o;
}

std::string format_rate(double per_s) {
    if (!std::isfinite(per_s) || per_s < 0) per_s = 0;
    return per_s < 1000 ? fmt::format("{:.1f}", per_s) : fmt::format("{:.0f}", per_s);
}

std::string list_table(const List& list) {
    bool rates = false, announced = false, replies = false;
    for (const auto& v : list) {
        rates |= find(v.fields, rate_key("packets")) != nullptr;
        announced |= find(v.fields, "announced") != nullptr;
        replies |= v.mode == "nat" || v.mode == "fullnat";
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"VIP / backend", "State", "Weight", "Active", "Inactive"};
    if (rates)
        head.insert(head.end(), {"Pkts/s", "Bytes/s", "NewFlows/s"});
    else
        head.insert(head.end(), {"Packets", "Bytes", "NewFlows"});
    if (announced) head.push_back("Announced");
    rows.push_back(head);
    const auto counters = [&](const Fields& f, std::vector<std::string>& row) {
        for (std::string_view k : kRatedListKeys) row.push_back(rates ? rate_cell(f, k) : cell(f, k));
    };
    for (const auto& v : list) {
        size_t up = 0;
        for (const auto& b : v.backends) up += cell(b.fields, "state") == "up";
        std::vector<std::string> row = {
            fmt::format("{} {}{}{} {}", v.name, v.address, v.proto.empty() ? "" : "/", v.proto, v.mode),
            fmt::format("{}/{} up", up, v.backends.size()), "", cell(v.fields, "active_flows"),
            cell(v.fields, "inactive_flows")};
        counters(v.fields, row);
        if (announced) row.push_back(cell(v.fields, "announced"));
        rows.push_back(std::move(row));
        for (const auto& b : v.backends) {
            std::vector<std::string> br = {"  -> " + b.address, cell(b.fields, "state"), cell(b.fields, "weight"),
                                           cell(b.fields, "active_flows"), cell(b.fields, "inactive_flows")};
            counters(b.fields, br);
            if (announced) br.push_back("");
            rows.push_back(std::move(br));
        }
    }
    std::string o = render_table(rows);
    // The two counts differ only where replies pass through Sluice (ControlPlane::list()).
    if (replies)
        o += fmt::format("{}: a VIP counts its clients' packets, a nat or fullnat backend also its replies\n",
                         rates ? "Pkts/s, Bytes/s" : "Packets, Bytes");
    return o;
}

std::string stats_table(const Stats& s) {
    // Rated stats name every counter NAME_per_s: the header says it once instead.
    bool rates = false;
    for (const auto& f : s.counters) rates |= f.numeric;
    const auto name = [](const Field& f) {
        return f.numeric && f.key.ends_with("_per_s") ? f.key.substr(0, f.key.size() - 6) : f.key;
    };
    const auto value = [](const Field& f) {
        if (!f.numeric) return f.value;
        double d = 0;
        auto [p, ec] = std::from_chars(f.value.data(), f.value.data() + f.value.size(), d);
        return ec == std::errc() ? format_rate(d) : f.value;
    };
    const char* unit = rates ? "Per second" : "Total";
    std::string o;

    // Three name/value pairs a row, filled down the columns so names read in the server's order.
    constexpr size_t kPairs = 3;
    const size_t n = s.counters.size(), nrows = (n + kPairs - 1) / kPairs;
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head;
    for (size_t c = 0; c < std::min(kPairs, n); ++c) head.insert(head.end(), {"Counter", unit});
    rows.push_back(std::move(head));
    for (size_t r = 0; r < nrows; ++r) {
        std::vector<std::string> row;
        for (size_t c = 0; c < kPairs; ++c)
            if (const size_t i = c * nrows + r; i < n) row.insert(row.end(), {name(s.counters[i]), value(s.counters[i])});
        rows.push_back(std::move(row));
    }
    o += render_table(rows);

    if (!s.flows.empty()) {
        rows = {{"Worker", "IPv4 flows", "IPv4 capacity", "IPv6 flows", "IPv6 capacity"}};
        for (const auto& w : s.flows) {
            std::vector<std::string> row = {cell(w, "worker")};
            for (std::string_view family : {"ipv4", "ipv6"}) {
                std::string_view used = "-", cap = "-";
                if (const std::string* v = find(w, family); v && !split_fill(*v, used, cap)) used = *v;
                row.insert(row.end(), {std::string(used), std::string(cap)});
            }
            rows.push_back(std::move(row));
        }
        o += '\n' + render_table(rows);
    }

    if (s.drops.empty()) {
        o += "\nNo drops.\n";
    } else {
        rows = {{"Drop reason", rates ? "Per second" : "Packets"}};
        for (const auto& d : s.drops) rows.push_back({d.key, value(d)});
        o += '\n' + render_table(rows);
    }
    if (!s.other.empty()) {
        o += '\n';
        for (const auto& l : s.other) o += l + '\n';
    }
    return o;
}

std::string top_frame(const Stats& stats, const List& list_rated, double interval_s) {
    uint64_t v4 = 0, v6 = 0;
    for (const auto& w : stats.flows) {
        std::string_view used, cap;
        if (const std::string* s = find(w, "ipv4"); s && split_fill(*s, used, cap)) v4 += std::stoull(std::string(used));
        if (const std::string* s = find(w, "ipv6"); s && split_fill(*s, used, cap)) v6 += std::stoull(std::string(used));
    }
    const auto r = [&](std::string_view k) { return rate_cell(stats.counters, k); };
    std::string o = fmt::format("sluice top (every {} s)  rx {} pps  tx {} pps  drops {}/s  flows {} (ipv4 {}, ipv6 {})\n",
                                format_number(interval_s), r("rx"), r("tx"), r("drops"), v4 + v6, v4, v6);
    std::string drops;
    for (const auto& d : stats.drops)
        if (d.value != "0") drops += fmt::format(" {}={}/s", d.key, d.value);
    if (!drops.empty()) o += "drops:" + drops + "\n";
    o += '\n';
    o += list_table(list_rated);
    return o;
}

}  // namespace sluice::ctlview
