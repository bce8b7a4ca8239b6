#include "drivers/dpdk/eal.hpp"

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>

#include <fmt/format.h>

#include "drivers/dpdk/port_facts.hpp"

namespace sluice::dpdk {

SplitArgs split_args(int argc, char** argv) {
    SplitArgs s;
    s.eal.emplace_back(argc > 0 ? argv[0] : "sluice");
    int i = 1;
    bool sep = false;
    for (int j = 1; j < argc; ++j)
        if (std::string(argv[j]) == "--") sep = true;
    if (sep) {
        for (; i < argc && std::string(argv[i]) != "--"; ++i) s.eal.emplace_back(argv[i]);
        for (++i; i < argc; ++i) s.app.emplace_back(argv[i]);
    } else {
        for (; i < argc; ++i) s.app.emplace_back(argv[i]);
    }
    return s;
}

bool split_doctor_args(int argc, char** argv, SplitArgs& out) {
    if (argc < 2 || std::string(argv[1]) != "doctor") return false;
    std::vector<char*> rest(argv, argv + argc);
    rest.erase(rest.begin() + 1);
    bool sep = false;
    for (size_t i = 1; i < rest.size(); ++i) sep |= std::string(rest[i]) == "--";
    out = split_args(static_cast<int>(rest.size()), rest.data());
    if (!sep) {
        out.eal.insert(out.eal.end(), out.app.begin(), out.app.end());
        out.app.clear();
    }
    out.app.emplace_back("--doctor");
    return true;
}

namespace {
// Any hugepages reserved, of any size, on any node (what `sluice doctor` reads too)?
bool hugepages_reserved() {
    for (const auto& node : gather_host_sysfs().nodes)
        for (const auto& pool : node.hugepages)
            if (pool.total > 0) return true;
    return false;
}
}  // namespace

Status init_eal(const std::vector<std::string>& eal_args) {
    std::vector<char*> argv;
    for (const auto& a : eal_args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(eal_args.size()), argv.data()) < 0) {
        const int err = rte_errno;
        // EAL says EACCES when it finds no hugepages at all (no pages reserved, no hugetlbfs).
        bool no_huge = false;
        for (const auto& a : eal_args) no_huge |= a == "--no-huge";
        if (err == EACCES && !no_huge && !hugepages_reserved())
            return make_error(
                "EAL initialisation failed: no hugepages are reserved. Reserve some (e.g. `dpdk-hugepages.py -p 2M "
                "--setup 1G`, or `sysctl vm.nr_hugepages=512` with hugetlbfs mounted on /dev/hugepages), or run "
                "with --no-huge -m MB for tests");
        return make_error(fmt::format("EAL initialisation failed: {}", rte_strerror(err)));
    }
    return {};
}

void cleanup_eal() noexcept {
    namespace fs = std::filesystem;
    const bool primary = rte_eal_process_type() == RTE_PROC_PRIMARY;
    const char* dir = rte_eal_get_runtime_dir();
    const fs::path runtime = dir != nullptr ? fs::path(dir) : fs::path();
    rte_eal_cleanup();
    // Only a directory of DPDK's own layout (.../dpdk/PREFIX), never one a setting pointed
    // elsewhere; errors leave it in place, as DPDK would.
    if (!primary || runtime.empty() || runtime.parent_path().filename() != "dpdk") return;
    std::error_code ec;
    fs::remove_all(runtime, ec);
}

}  // namespace sluice::dpdk
