// Maglev disruption, balance and build time against the backend count: the figures quoted in
// lib/lb/maglev.hpp, rerunnable:
//     build/tests/maglev_disruption [--size PRIME] [--sets S] [--victims V] [--members N]...
//
// For each case (10, 100, 1000 equal members; 100 and 1000 members of weights 1-4; or only N
// equal members for each --members N), over S sets of member ids (default 4), at the size
// Maglev::auto_size() picks for it (or at --size PRIME; `--size 65537` gives the figures of
// the fixed size used before), it prints:
//   - disruption: remove one member and rebuild at the same size (as when a backend goes down
//     or is drained; a removal from the configuration too, unless the count crosses a step of
//     Maglev::kAutoSizes), then count the entries whose owner (by member id) changed, over the
//     ideal, the removed member's share of the table: size * w_removed / w_total. Its own
//     entries move in any case, so 1.00x is the floor. Averaged, and its maximum given, over V
//     removed members spread evenly over each set (default 6);
//   - max/mean and min/mean: the most and least loaded member's entries over its share
//     (size * w / w_total), so weighted members compare with their own share; the extremes
//     over the sets;
//   - build: the median wall time of 5 runs of Maglev::build() for the first set, in ms.
// Member ids come from fixed splitmix64 sequences, so every run prints the same table but
// for the build times (which only compare within one run on one machine).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lib/lb/maglev.hpp"

namespace {

using sluice::lb::Maglev;
using sluice::lb::MaglevMember;

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E37'79B9'7F4A'7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
}

struct Case {
    const char* name;
    size_t members;
    bool weighted;  // weights 1, 2, 3, 4 in turn
};

// Id set number `set` of a case: sets differ in every id.
std::vector<MaglevMember> make_members(const Case& c, size_t set) {
    uint64_t state = 1000 + c.members + set * 7919;
    std::vector<MaglevMember> members(c.members);
    for (size_t i = 0; i < c.members; ++i) {
        members[i].id = splitmix64(state);
        members[i].weight = c.weighted ? static_cast<uint32_t>(1 + i % 4) : 1;
    }
    return members;
}

Maglev build_or_die(const std::vector<MaglevMember>& members, uint32_t size) {
    auto m = Maglev::build(members, size);
    if (!m) {
        std::fprintf(stderr, "maglev_disruption: %s\n", m.error().c_str());
        std::exit(1);
    }
    return std::move(m).value();
}

struct Row {
    uint32_t size = 0;
    double disruption_sum = 0;
    size_t removals = 0;
    double disruption_max = 0;
    double max_load = 0;
    double min_load = 1e9;
    double build_ms = 0;
};

// Adds one id set's figures to r; times the build on the first set only.
void measure_set(const Case& c, size_t set, size_t victims, Row& r) {
    const std::vector<MaglevMember> members = make_members(c, set);
    uint64_t total = 0;
    for (const auto& m : members) total += m.weight;

    Maglev full;
    std::vector<double> times;
    for (int i = 0; i < (set == 0 ? 5 : 1); ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        full = build_or_die(members, r.size);
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    if (set == 0) r.build_ms = times[times.size() / 2];

    std::vector<uint32_t> count(members.size(), 0);
    for (const uint16_t e : full.table()) ++count[e];
    for (size_t i = 0; i < members.size(); ++i) {
        const double share = static_cast<double>(r.size) * members[i].weight / static_cast<double>(total);
        r.max_load = std::max(r.max_load, count[i] / share);
        r.min_load = std::min(r.min_load, count[i] / share);
    }

    victims = std::min(victims, members.size());
    for (size_t v = 0; v < victims; ++v) {
        const size_t victim = v * members.size() / victims;
        std::vector<MaglevMember> fewer = members;
        fewer.erase(fewer.begin() + static_cast<ptrdiff_t>(victim));
        const Maglev after = build_or_die(fewer, r.size);
        uint32_t changed = 0;
        for (uint32_t s = 0; s < r.size; ++s) {
            changed += members[full.table()[s]].id != fewer[after.table()[s]].id ? 1 : 0;
        }
        const double ideal = static_cast<double>(r.size) * members[victim].weight / static_cast<double>(total);
        const double ratio = changed / ideal;
        r.disruption_sum += ratio;
        ++r.removals;
        r.disruption_max = std::max(r.disruption_max, ratio);
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: maglev_disruption [--size PRIME] [--sets S] [--victims V] [--members N]...\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    uint32_t size = 0;  // Maglev::auto_size()
    size_t sets = 4;
    size_t victims = 6;
    std::vector<Case> cases = {
        {"equal", 10, false},       {"equal", 100, false},     {"equal", 1000, false},
        {"weights 1-4", 100, true}, {"weights 1-4", 1000, true},
    };
    std::vector<Case> chosen;
    for (int i = 1; i < argc; ++i) {
        if (i + 1 < argc && std::strcmp(argv[i], "--size") == 0) {
            size = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (i + 1 < argc && std::strcmp(argv[i], "--sets") == 0) {
            sets = std::strtoul(argv[++i], nullptr, 10);
        } else if (i + 1 < argc && std::strcmp(argv[i], "--victims") == 0) {
            victims = std::strtoul(argv[++i], nullptr, 10);
        } else if (i + 1 < argc && std::strcmp(argv[i], "--members") == 0) {
            const size_t n = std::strtoul(argv[++i], nullptr, 10);
            if (n < 2 || n > Maglev::kMaxMembers) usage();
            chosen.push_back({"equal", n, false});
        } else {
            usage();
        }
    }
    if (victims == 0 || sets == 0) usage();
    if (!chosen.empty()) cases = chosen;
    std::printf("%-12s %5s %8s %8s %9s %9s %8s %8s %9s\n", "case", "N", "size", "KiB", "disr.avg",
                "disr.max", "max/mean", "min/mean", "build ms");
    for (const Case& c : cases) {
        Row r;
        r.size = size != 0 ? size : Maglev::auto_size(c.members);
        for (size_t set = 0; set < sets; ++set) measure_set(c, set, victims, r);
        std::printf("%-12s %5zu %8u %8u %8.2fx %8.2fx %8.4f %8.4f %9.2f\n", c.name, c.members, r.size,
                    static_cast<unsigned>(r.size * sizeof(uint16_t) / 1024), r.disruption_sum / static_cast<double>(r.removals), r.disruption_max,
                    r.max_load, r.min_load, r.build_ms);
        std::fflush(stdout);
    }
    return 0;
}
