// sluice: the load balancer. `sluice [EAL options] -- [options]`.
//
// Parses the options, starts the EAL, builds the runtime (drivers/dpdk/runtime.hpp), runs it
// until SIGINT or SIGTERM (SIGHUP reloads the configuration), and shuts it down.
#include <atomic>
#include <csignal>
#include <vector>
#include <new>

#include <rte_eal.h>

#include <fmt/format.h>

#include "drivers/dpdk/eal.hpp"
#include "drivers/dpdk/port_facts.hpp"
#include "drivers/dpdk/runtime.hpp"
#include "lib/config/options.hpp"

using namespace sluice;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
void on_hup(int) { g_reload.store(true, std::memory_order_relaxed); }

int run(const lb::Config& cfg, const std::vector<std::string>& eal_args, const std::vector<std::string>& app_args) {
    // Before anything slow: a SIGHUP or SIGTERM during start-up must not kill the process.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_hup);
    if (auto st = dpdk::init_eal(eal_args); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        return 1;
    }
    auto rt = dpdk::Runtime::build(cfg, app_args, g_stop, g_reload);
    if (!rt) {
        if (!rt.error().empty()) fmt::print(stderr, "sluice: {}\n", rt.error());
        dpdk::cleanup_eal();
        return 1;
    }
    if (auto st = (*rt)->run(); !st) {
        fmt::print(stderr, "sluice: {}\n", st.error());
        g_stop.store(true);
    }
    const int rc = (*rt)->shutdown();
    rt->reset();
    dpdk::cleanup_eal();
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    dpdk::SplitArgs args;
    if (!dpdk::split_doctor_args(argc, argv, args)) args = dpdk::split_args(argc, argv);
    auto parsed = config::parse_args(args.app);
    if (!parsed) {
        fmt::print(stderr, "sluice: error: {}\n", parsed.error());
        return 2;
    }
    switch (parsed->action) {
        case config::Action::help:
        case config::Action::version:
        case config::Action::check_config:
            fmt::print("{}", parsed->text);
            return 0;
        case config::Action::doctor:
            return dpdk::run_doctor(parsed->config, args.eal);
        case config::Action::run:
            break;
    }
    try {
        return run(parsed->config, args.eal, args.app);
    } catch (const std::bad_alloc&) {
        fmt::print(stderr, "sluice: out of memory while starting (free memory, raise the process's limit, or lower "
                           "--flow-capacity / --total-num-mbufs; `sluice doctor` sizes them for this host)\n");
        return 1;
    }
}
