#include "drivers/dpdk/port_facts.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <unistd.h>

#include <fmt/format.h>

#include "drivers/dpdk/eal.hpp"
#include "drivers/dpdk/worker.hpp"
#include "lib/net/toeplitz.hpp"

namespace sluice::dpdk {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

uint64_t read_u64(const std::string& path) {
    const std::string s = slurp(path);
    uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);  // unreadable or garbage: 0
    return v;
}

// "0-3,8-11" (sysfs cpulist); malformed pieces are skipped.
std::vector<unsigned> parse_cpulist(const std::string& text) {
    std::vector<unsigned> out;
    std::stringstream in(text);
    std::string piece;
    while (std::getline(in, piece, ',')) {
        unsigned lo = 0, hi = 0;
        const char* b = piece.data();
        const char* e = piece.data() + piece.size();
        auto [p, ec] = std::from_chars(b, e, lo);
        if (ec != std::errc()) continue;
        hi = lo;
        if (p < e && *p == '-' && std::from_chars(p + 1, e, hi).ec != std::errc()) continue;
        for (unsigned c = lo; c <= hi && c - lo < 4096; ++c) out.push_back(c);
    }
    return out;
}

std::vector<doctor::HugepagePool> hugepages_in(const std::string& dir) {
    std::vector<doctor::HugepagePool> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();  // hugepages-2048kB
        doctor::HugepagePool p;
        if (name.rfind("hugepages-", 0) != 0 ||
            std::from_chars(name.data() + 10, name.data() + name.size(), p.size_kb).ec != std::errc())
            continue;
        p.total = read_u64(e.path() / "nr_hugepages");
        p.free = read_u64(e.path() / "free_hugepages");
        out.push_back(p);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size_kb < b.size_kb; });
    return out;
}

doctor::Link link_of(uint16_t port, uint32_t* speed) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port, &link) != 0) return doctor::Link::unknown;
    if (speed) *speed = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    return link.link_status == RTE_ETH_LINK_UP ? doctor::Link::up : doctor::Link::down;
}

doctor::Report problems(const doctor::Report& r) {
    doctor::Report out;
    for (const auto& f : r.findings)
        if (f.severity >= doctor::Severity::warn) out.findings.push_back(f);
    return out;
}

}  // namespace

doctor::HostFacts gather_host_sysfs(const std::string& root) {
    doctor::HostFacts h;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root + "/sys/devices/system/node", ec)) {
        const std::string name = e.path().filename().string();
        doctor::NumaNode n;
        if (name.rfind("node", 0) != 0 || std::from_chars(name.data() + 4, name.data() + name.size(), n.id).ec != std::errc())
            continue;
        n.cpus = parse_cpulist(slurp(e.path() / "cpulist"));
        n.hugepages = hugepages_in(e.path() / "hugepages");
        h.nodes.push_back(std::move(n));
    }
    if (h.nodes.empty()) {  // a kernel without NUMA support: one node with the global counts
        doctor::NumaNode n;
        n.cpus = parse_cpulist(slurp(root + "/sys/devices/system/cpu/online"));
        n.hugepages = hugepages_in(root + "/sys/kernel/mm/hugepages");
        if (!n.cpus.empty() || !n.hugepages.empty()) h.nodes.push_back(std::move(n));
    }
    std::sort(h.nodes.begin(), h.nodes.end(), [](const auto& a, const auto& b) { return a.id < b.id; });

    std::istringstream mounts(slurp(root + "/proc/mounts"));
    for (std::string line; std::getline(mounts, line);) {
        std::istringstream fields(line);
        std::string dev, dir, type;
        fields >> dev >> dir >> type;
        if (type == "hugetlbfs") h.hugetlbfs_mounted = true;
    }
    std::istringstream meminfo(slurp(root + "/proc/meminfo"));
    for (std::string line; std::getline(meminfo, line);)
        if (line.rfind("MemAvailable:", 0) == 0) {
            std::istringstream fields(line.substr(13));
            uint64_t kb = 0;
            fields >> kb;
            h.mem_available_bytes = kb * 1024;
        }
    return h;
}

doctor::PortFacts gather_port(uint16_t port_id) {
    doctor::PortFacts p;
    p.id = port_id;
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    rte_eth_dev_get_name_by_port(port_id, name);
    p.name = name;
    rte_eth_dev_info info{};
    // On failure every capability stays zero, so the checker reports the port unusable.
    const bool known = rte_eth_dev_info_get(port_id, &info) == 0;
    p.driver = known && info.driver_name ? info.driver_name : "unknown driver";
    if (!known) return p;
    if (info.device)
        if (const rte_bus* bus = rte_dev_bus(info.device)) p.vdev = std::string(rte_bus_name(bus)) == "vdev";
    p.socket = rte_eth_dev_socket_id(port_id);
    p.link = link_of(port_id, &p.speed_mbps);
    p.started = false;  // facts are gathered before Sluice configures the port
    p.max_rx_queues = info.max_rx_queues;
    p.max_tx_queues = info.max_tx_queues;
    const uint64_t hf = info.flow_type_rss_offloads;
    p.rss.ipv4 = hf & (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER);
    p.rss.ipv4_tcp = hf & RTE_ETH_RSS_NONFRAG_IPV4_TCP;
    p.rss.ipv4_udp = hf & RTE_ETH_RSS_NONFRAG_IPV4_UDP;
    p.rss.ipv6 = hf & (RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER | RTE_ETH_RSS_IPV6_EX);
    p.rss.ipv6_tcp = hf & (RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_IPV6_TCP_EX);
    p.rss.ipv6_udp = hf & (RTE_ETH_RSS_NONFRAG_IPV6_UDP | RTE_ETH_RSS_IPV6_UDP_EX);
    p.rss_key_size = info.hash_key_size;
    p.reta_size = info.reta_size;
    p.rx_csum = {(info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0,
                 (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) != 0,
                 (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0};
    p.tx_csum = {(info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0,
                 (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0,
                 (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0};
    p.max_rx_pktlen = info.max_rx_pktlen;
    p.max_mtu = info.max_mtu;
    p.rx_desc = {info.rx_desc_lim.nb_min, info.rx_desc_lim.nb_max, info.rx_desc_lim.nb_align};
    p.tx_desc = {info.tx_desc_lim.nb_min, info.tx_desc_lim.nb_max, info.tx_desc_lim.nb_align};
    return p;
}

doctor::Facts gather(const lb::Config& config) {
    doctor::Facts f;
    f.host = gather_host_sysfs();
    f.host.no_huge = !rte_eal_has_hugepages();
    if (const long page = ::sysconf(_SC_PAGESIZE); page > 0) f.host.base_page_bytes = static_cast<uint64_t>(page);
    const unsigned main = rte_get_main_lcore();
    f.host.main_lcore = {main, static_cast<int>(rte_lcore_to_socket_id(main))};
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) f.host.worker_lcores.push_back({lc, static_cast<int>(rte_lcore_to_socket_id(lc))});
    // What EAL already holds counts as available: with -m, --socket-mem or --no-huge it took
    // its memory at start, and sysfs no longer counts those pages as free.
    for (unsigned i = 0; i < rte_socket_count(); ++i) {
        const int sid = rte_socket_id_by_idx(i);
        rte_malloc_socket_stats st{};
        if (sid < 0 || rte_malloc_get_socket_stats(sid, &st) != 0) continue;
        auto it = std::find_if(f.host.nodes.begin(), f.host.nodes.end(), [&](const auto& n) { return n.id == sid; });
        if (it == f.host.nodes.end()) {
            f.host.nodes.push_back({});
            it = f.host.nodes.end() - 1;
            it->id = sid;
        }
        it->eal_free_bytes = st.heap_freesz_bytes;
        it->eal_total_bytes = st.heap_totalsz_bytes;
    }
    uint16_t port;
    RTE_ETH_FOREACH_DEV(port) f.ports.push_back(gather_port(port));

    doctor::Requested& r = f.req;
    doctor::fill_requested(config, r);
    r.workers = f.host.worker_lcores.empty() ? 1 : static_cast<uint16_t>(f.host.worker_lcores.size());
    r.pool_socket = static_cast<int>(rte_socket_id());  // where sluice creates its pool
    r.mbuf_bytes = rte_mempool_calc_obj_size(sizeof(rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE, 0, nullptr);
    r.flow_tables_in_hugepages = false;  // anonymous memory (transparent huge pages), not the reserved pages
    r.max_ports = kMaxPorts;
    r.rss_key_size = net::kRssKeyLen;
    r.reta_multiple = net::Reta::kSize;
    return f;
}

bool preflight(const lb::Config& config) {
    const doctor::Report report = doctor::check(gather(config));
    const doctor::Report shown = problems(report);
    if (shown.findings.empty()) return true;
    const bool fatal = doctor::exit_code(report) != 0;
    fmt::print(stderr, "sluice: pre-flight checks:\n{}", doctor::render(shown));
    if (fatal)
        fmt::print(stderr, "sluice: refusing to start; `sluice doctor` with the same arguments shows the full report\n");
    std::fflush(stderr);
    return !fatal;
}

void check_links_after_start(uint16_t nb_ports) {
    std::vector<doctor::PortFacts> ports;
    // Links take a moment to come up after rte_eth_dev_start; give them up to a second.
    for (int tries = 0; tries < 10; ++tries) {
        bool all_up = true;
        for (uint16_t p = 0; p < nb_ports; ++p) all_up &= link_of(p, nullptr) != doctor::Link::down;
        if (all_up) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (uint16_t p = 0; p < nb_ports; ++p) {
        ports.push_back(gather_port(p));
        ports.back().started = true;
    }
    const doctor::Report r = doctor::check_links(ports);
    if (!r.findings.empty()) fmt::print(stderr, "sluice: after start:\n{}", doctor::render(r));
}

int run_doctor(const lb::Config& config, const std::vector<std::string>& eal_args) {
    if (auto st = init_eal(eal_args); !st) {
        // Without EAL only the host can be judged, and the host is the usual reason EAL fails.
        doctor::Facts f;
        f.host = gather_host_sysfs();
        f.host.no_huge = std::find(eal_args.begin(), eal_args.end(), "--no-huge") != eal_args.end();
        f.host.eal_started = false;  // one FATAL, EAL's: no verdicts built on what it would have said
        doctor::fill_requested(config, f.req);
        doctor::Report r;
        r.findings.push_back({doctor::Severity::fatal, "eal", st.error(),
                              "correct the EAL options (before `--`): EAL's own message above names the problem"});
        for (const auto& x : doctor::check(f).findings)
            if (x.subject == "host") r.findings.push_back(x);
        fmt::print("sluice doctor: EAL did not start\n{}", doctor::render(r));
        return 1;
    }
    const doctor::Facts f = gather(config);
    std::vector<unsigned> workers;
    for (const auto& w : f.host.worker_lcores) workers.push_back(w.id);
    fmt::print("sluice doctor: {} port{}, {} worker{} ({}), main lcore {}\n", f.ports.size(), f.ports.size() == 1 ? "" : "s",
               f.req.workers, f.req.workers == 1 ? "" : "s",
               workers.empty()       ? std::string("run by the main lcore")
               : workers.size() == 1 ? fmt::format("lcore {}", workers[0])
                                     : "lcores " + doctor::lcore_list(workers),
               f.host.main_lcore.id);
    const doctor::Report r = doctor::check(f);
    fmt::print("{}", doctor::render(r));
    std::fflush(stdout);
    for (uint16_t p = 0; p < rte_eth_dev_count_avail(); ++p) rte_eth_dev_close(p);
    cleanup_eal();
    return doctor::exit_code(r);
}

}  // namespace sluice::dpdk
