// The pre-flight rules. Each rule reads facts, never the hardware, and its fix sentence names
// the option, the EAL argument or the command that resolves it, with the values filled in.
#include "lib/doctor/doctor.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "lib/lb/config.hpp"
#include "lib/lb/flow_table.hpp"
#include "lib/lb/snat_ports.hpp"

namespace sluice::doctor {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
// Rings, queue descriptor rings, the mempool's own header and per-lcore caches, telemetry:
// what EAL memory holds besides the mbufs (measured well under this on vdevs).
constexpr uint64_t kFixedOverhead = 16 * kMiB;
constexpr uint64_t kDescriptorBytes = 64;  // hardware descriptor plus the driver's shadow entry

std::string bytes(uint64_t b) {
    if (b >= kGiB) return fmt::format("{:.1f} GiB", static_cast<double>(b) / static_cast<double>(kGiB));
    if (b >= kMiB) return fmt::format("{} MiB", (b + kMiB - 1) / kMiB);
    return fmt::format("{} KiB", (b + kKiB - 1) / kKiB);
}

// "2 MiB" for prose, "2M" for dpdk-hugepages.py.
std::string page_prose(uint64_t size_kb) {
    return size_kb >= kMiB ? fmt::format("{} GiB", size_kb / kMiB) : fmt::format("{} MiB", size_kb / kKiB);
}
std::string page_arg(uint64_t size_kb) {
    return size_kb >= kMiB ? fmt::format("{}G", size_kb / kMiB) : fmt::format("{}M", size_kb / kKiB);
}
std::string size_arg(uint64_t b) {
    return b % kGiB == 0 ? fmt::format("{}G", b / kGiB) : fmt::format("{}M", (b + kMiB - 1) / kMiB);
}

std::string plural(uint64_t n, const char* one, const char* many) { return fmt::format("{} {}", n, n == 1 ? one : many); }

std::string port_subject(const PortFacts& p) { return fmt::format("port {}", p.id); }
std::string port_label(const PortFacts& p) { return fmt::format("port {} ({})", p.id, p.driver); }

struct Checker {
    const Facts& f;
    const Requested& r;
    Report out;

    void add(Severity s, std::string subject, std::string what, std::string fix = {}) {
        out.findings.push_back({s, std::move(subject), std::move(what), std::move(fix)});
    }

    std::vector<Lcore> workers() const {
        return f.host.worker_lcores.empty() ? std::vector<Lcore>{f.host.main_lcore} : f.host.worker_lcores;
    }

    // The main lcore and the first n worker lcores: what `-l` should say for n workers.
    std::string lcores_for(uint16_t n) const {
        std::vector<unsigned> l{f.host.main_lcore.id};
        for (const Lcore& w : f.host.worker_lcores)
            if (l.size() <= n && w.id != f.host.main_lcore.id) l.push_back(w.id);
        // Fewer worker lcores than asked for (or none): name the next free ids.
        for (unsigned id = 0; l.size() <= n; ++id)
            if (std::find(l.begin(), l.end(), id) == l.end()) l.push_back(id);
        std::sort(l.begin() + 1, l.end());
        return lcore_list(l);
    }

    // A main lcore and r.workers worker lcores on `node`, from its CPU list; empty if unknown.
    std::string lcores_on(int node) const {
        for (const NumaNode& n : f.host.nodes) {
            if (n.id != node || n.cpus.empty()) continue;
            std::vector<unsigned> l;
            if (f.host.main_lcore.socket == node) l.push_back(f.host.main_lcore.id);
            for (unsigned c : n.cpus)
                if (l.size() <= r.workers && std::find(l.begin(), l.end(), c) == l.end()) l.push_back(c);
            std::sort(l.begin(), l.end());
            return lcore_list(l);
        }
        return {};
    }

    uint32_t mbufs() const {
        return r.total_num_mbufs ? r.total_num_mbufs
                                 : mbufs_needed(static_cast<uint16_t>(f.ports.size()), r.workers, r.rxd, r.txd, r.burst,
                                                r.mbcache, r.kernel_side);
    }

    // The mbufs' own memory. Without hugepages EAL's memory is the kernel's base pages, whose
    // IOVAs need not follow each other, so DPDK's mempool never lets an mbuf straddle two:
    // a 2368-byte mbuf takes a whole 4 KiB page (measured: 16384 mbufs need -m 65 or more,
    // 65536 need about -m 250, where mbufs x size would say 37 and 148 MiB).
    uint64_t mbuf_bytes_total() const {
        const uint64_t n = mbufs(), size = std::max<uint64_t>(1, r.mbuf_bytes);
        if (!f.host.no_huge) return n * size;
        const uint64_t page = std::max<uint64_t>(1, f.host.base_page_bytes);
        if (size <= page) {
            const uint64_t per_page = page / size;
            return (n + per_page - 1) / per_page * page;
        }
        return n * ((size + page - 1) / page * page);
    }

    uint64_t pool_bytes() const {
        const uint64_t queues = static_cast<uint64_t>(f.ports.size()) * r.workers;
        return mbuf_bytes_total() + kFixedOverhead + queues * (r.rxd + r.txd) * kDescriptorBytes;
    }

    const char* users() const {
        return r.flow_tables_in_hugepages ? "the mbuf pool and the flow tables need" : "the mbuf pool needs";
    }

    uint64_t tables_bytes() const { return static_cast<uint64_t>(r.workers) * flow_table_bytes(r.flow_capacity); }

    // ---- host ---------------------------------------------------------------------------------

    void host() {
        const auto& h = f.host;
        std::set<int> sockets;
        for (const Lcore& w : workers())
            if (w.socket >= 0) sockets.insert(w.socket);
        if (sockets.size() > 1)
            add(Severity::warn, "host",
                fmt::format("the workers run on {} NUMA nodes: a worker on another node than its ports reaches "
                            "every packet across the interconnect",
                            sockets.size()),
                fmt::format("run all workers on one NUMA node, the ports' one{}", ports_node() >= 0 && !lcores_on(ports_node()).empty()
                                                                                   ? fmt::format(": -l {}", lcores_on(ports_node()))
                                                                                   : std::string()));

        for (const NumaNode& n : h.nodes) {
            std::string pages;
            for (const HugepagePool& p : n.hugepages)
                pages += fmt::format("{}{} x {} ({} free)", pages.empty() ? "" : ", ", p.total, page_prose(p.size_kb),
                                     p.free);
            add(Severity::ok, "host",
                fmt::format("NUMA node {}: {} CPUs, hugepages {}", n.id, n.cpus.size(), pages.empty() ? "none" : pages));
        }
        if (h.nodes.empty()) add(Severity::info, "host", "the kernel reports no NUMA nodes or hugepage counts (no sysfs?)");

        // EAL itself, the ethdev structures and the telemetry take tens of MiB beyond the pool, so
    // memory suggestions never go below 256 MiB.
    const uint64_t need = pool_bytes() + (r.flow_tables_in_hugepages ? tables_bytes() : 0);
        const uint64_t setup = std::max<uint64_t>(kGiB, (need + kGiB - 1) / kGiB * kGiB);
        if (h.no_huge)
            add(Severity::warn, "host",
                "EAL runs with --no-huge: mbufs sit in 4 KiB pages (more TLB misses) and dpdk-dumpcap cannot attach",
                fmt::format("reserve hugepages and drop --no-huge: dpdk-hugepages.py -p 2M --setup {}", size_arg(setup)));
        if (!h.eal_started) {
            // Its memory is EAL's to report; a verdict without it would only repeat EAL's error.
            add(Severity::info, "host", "memory not judged: EAL did not start");
            return;
        }
        if (h.no_huge) {
            uint64_t free = 0, total = 0;
            for (const NumaNode& n : h.nodes) free += n.eal_free_bytes;
            for (const NumaNode& n : h.nodes) total += n.eal_total_bytes;
            if (need > free) {
                const uint64_t m = std::max<uint64_t>(256, ((total + need - free) + 64 * kMiB - 1) / (64 * kMiB) * 64);
                add(Severity::fatal, "host",
                    fmt::format("{} {} ({} mbufs in {} pages) but EAL has {} of its --no-huge memory left", users(),
                                bytes(need), mbufs(), bytes(h.base_page_bytes), bytes(free)),
                    fmt::format("give EAL more memory: -m {}", m));
            } else {
                add(Severity::ok, "host", fmt::format("memory: {} {} ({} mbufs), EAL has {} free", users(), bytes(need),
                                                      mbufs(), bytes(free)));
            }
            return;
        }
        uint64_t total_pages = 0;
        for (const NumaNode& n : h.nodes)
            for (const HugepagePool& p : n.hugepages) total_pages += p.total;
        if (!h.hugetlbfs_mounted || (!h.nodes.empty() && total_pages == 0)) {
            add(Severity::fatal, "host",
                !h.hugetlbfs_mounted ? "no hugetlbfs is mounted, so EAL has no hugepage memory"
                                     : "no hugepages are reserved on any NUMA node",
                fmt::format("reserve hugepages: dpdk-hugepages.py -p 2M --setup {} (or run with --no-huge -m {} for a test)",
                            size_arg(setup), std::max<uint64_t>(256, (need + 64 * kMiB - 1) / (64 * kMiB) * 64)));
            return;
        }
        memory_on_pool_node(need);
    }

    void memory_on_pool_node(uint64_t need) {
        const auto& h = f.host;
        if (h.nodes.empty()) return;
        uint64_t avail = 0;
        const NumaNode* node = nullptr;
        for (const NumaNode& n : h.nodes) {
            if (r.pool_socket >= 0 && n.id != r.pool_socket) continue;
            if (!node) node = &n;
            avail += n.eal_free_bytes;
            for (const HugepagePool& p : n.hugepages) avail += p.free * p.size_kb * kKiB;
        }
        if (!node) node = &h.nodes.front();
        const std::string where = r.pool_socket >= 0 ? fmt::format(" on NUMA node {}", r.pool_socket) : "";
        if (need <= avail) {
            add(Severity::ok, "host", fmt::format("memory: {} {} ({} mbufs){}, {} of hugepages free", users(), bytes(need),
                                                  mbufs(), where, bytes(avail)));
            return;
        }
        // The page size the node already uses, else 2 MiB.
        HugepagePool pool{2048, 0, 0};
        for (const HugepagePool& p : node->hugepages)
            if (p.total > pool.total || (pool.total == 0 && p.size_kb == 2048)) pool = p;
        const uint64_t page = pool.size_kb * kKiB;
        const uint64_t per_gib = std::max<uint64_t>(1, kGiB / page);
        uint64_t target = pool.total + (need - avail + page - 1) / page;
        target = (target + per_gib - 1) / per_gib * per_gib;
        const std::string node_arg = h.nodes.size() > 1 ? fmt::format(" --node {}", node->id) : "";
        add(Severity::fatal, "host",
            fmt::format("{} {} of hugepages{} ({} mbufs of {} bytes and queues), only {} are free",
                        users(), bytes(need), where, mbufs(), r.mbuf_bytes, bytes(avail)),
            fmt::format("reserve {} {} pages on node {}: dpdk-hugepages.py -p {}{} --reserve {}", target,
                        page_prose(pool.size_kb), node->id, page_arg(pool.size_kb), node_arg, size_arg(target * page)));
    }

    void flow_tables() {
        const uint64_t need = tables_bytes();
        const std::string what = fmt::format("flow tables: {} x {} flows per family take {}", plural(r.workers, "worker", "workers"),
                                             r.flow_capacity, bytes(need));
        if (r.flow_tables_in_hugepages || !f.host.mem_available_bytes || need <= f.host.mem_available_bytes) {
            add(Severity::ok, "config", what);
            return;
        }
        // The largest capacity (a multiple of 1024, within --flow-capacity's range) that fits in
        // three quarters of what is available, leaving room for everything else.
        const uint64_t budget = f.host.mem_available_bytes / 4 * 3 / r.workers;
        uint64_t lo = 0, hi = r.flow_capacity / 1024;
        while (lo < hi) {
            const uint64_t mid = (lo + hi + 1) / 2;
            if (flow_table_bytes(static_cast<uint32_t>(mid * 1024)) <= budget) lo = mid; else hi = mid - 1;
        }
        add(Severity::fatal, "config", what + fmt::format(", but only {} of memory is available", bytes(f.host.mem_available_bytes)),
            lo ? fmt::format("lower --flow-capacity to {} (or run fewer workers)", lo * 1024)
               : std::string("free memory on this host or run fewer workers: not even 1024 flows per worker fit"));
    }

    void snat_ports() {
        const auto shares = lb::snat_shares(r.fullnat, r.workers, net::Reta::round_robin(r.workers));
        for (const auto& s : shares) {
            const auto none = std::find(s.fewest.begin(), s.fewest.end(), 0u);
            if (none == s.fewest.end()) {
                add(Severity::ok, "config", lb::describe(s));
                continue;
            }
            const size_t w = static_cast<size_t>(none - s.fewest.begin());
            add(Severity::fatal, "config",
                fmt::format("{}: worker {} owns none toward backend {}, so its fullnat flows there would all be refused",
                            lb::describe(s), w, s.fewest_to[w]),
                "widen --snat-ports (at least 64 ports per worker) or run fewer workers");
        }
    }

    void mbuf_pool() {
        const uint64_t ports = f.ports.size();
        const uint32_t n = mbufs();
        const uint32_t rec = mbufs_needed(static_cast<uint16_t>(ports), r.workers, r.rxd, r.txd, r.burst, r.mbcache, r.kernel_side);
        const uint64_t ring_fill = ports * r.workers * r.rxd;
        if (r.total_num_mbufs && r.total_num_mbufs < ring_fill)
            add(Severity::fatal, "config",
                fmt::format("--total-num-mbufs {} cannot fill {} x {} x {} RX descriptors", r.total_num_mbufs,
                            plural(ports, "port", "ports"), plural(r.workers, "worker", "workers"), r.rxd),
                fmt::format("raise --total-num-mbufs to {} or leave it out", rec));
        else if (r.total_num_mbufs && r.total_num_mbufs < rec)
            add(Severity::warn, "config",
                fmt::format("--total-num-mbufs {} is below the {} that full rings, bursts in flight and caches can hold: "
                            "packets are dropped when the pool runs dry",
                            r.total_num_mbufs, rec),
                fmt::format("raise --total-num-mbufs to {} or leave it out", rec));
        if (static_cast<uint64_t>(r.mbcache) * 3 / 2 > n)
            add(Severity::fatal, "config",
                fmt::format("--mbcache {} needs a pool of at least {} mbufs, it has {}", r.mbcache, r.mbcache * 3 / 2, n),
                fmt::format("lower --mbcache to {}", n * 2 / 3));
        else if (r.mbcache == 0)
            add(Severity::warn, "config", "--mbcache 0: every mbuf allocation and free goes to the shared pool",
                "use --mbcache 256");
        else if (r.mbcache < r.burst)
            add(Severity::info, "config",
                fmt::format("--mbcache {} is below --burst {}: a burst can empty the per-lcore cache", r.mbcache, r.burst),
                fmt::format("use --mbcache {} or more", r.burst));
        if (r.burst > r.rxd)
            add(Severity::warn, "config", fmt::format("--burst {} is above --rxd {}: a burst never fills", r.burst, r.rxd),
                fmt::format("use --burst {} or less", r.rxd));
    }

    // ---- ports --------------------------------------------------------------------------------

    int client = 0, backend = 0;

    int ports_node() const {
        int node = -1;
        for (const PortFacts& p : f.ports)
            if (p.socket >= 0) {
                if (node >= 0 && node != p.socket) return -1;
                node = p.socket;
            }
        return node;
    }

    bool roles() {
        const auto n = static_cast<int>(f.ports.size());
        if (n == 0) {
            add(Severity::fatal, "ports", "EAL found no ports",
                "bind the NICs to vfio-pci (dpdk-devbind.py -b vfio-pci 0000:3b:00.0) and allow them with -a, or add a --vdev");
            return false;
        }
        if (n > r.max_ports) {
            add(Severity::fatal, "ports", fmt::format("EAL found {} ports, Sluice drives at most {}", n, r.max_ports),
                fmt::format("allow only Sluice's ports with -a, e.g. -a {} -a {}", f.ports[0].name, f.ports[1].name));
            return false;
        }
        client = r.client_port >= 0 ? r.client_port : 0;
        backend = r.backend_port >= 0 ? r.backend_port : (n > 1 ? 1 : client);
        if (client >= n || backend >= n) {
            add(Severity::fatal, "config",
                fmt::format("--client-port {} / --backend-port {}: only {} exist", client, backend, plural(n, "port", "ports")),
                fmt::format("use port ids 0..{} (or allow more ports with -a)", n - 1));
            return false;
        }
        add(Severity::ok, "config",
            fmt::format("{}, {} ({}: client port {}, backend port {}), --rxd {} --txd {} --burst {} --mbcache {}, {} mbufs",
                        plural(r.workers, "worker", "workers"), plural(n, "port", "ports"), client == backend ? "one-arm" : "two-arm",
                        client, backend, r.rxd, r.txd, r.burst, r.mbcache, mbufs()));
        return true;
    }

    void identity(const PortFacts& p) {
        std::string link;
        if (p.link == Link::up)
            link = p.speed_mbps ? fmt::format("link up {}", speed(p.speed_mbps)) : "link up";
        else if (p.link == Link::down)
            link = p.started ? "link down" : "link down (port stopped)";
        else
            link = "link unknown";
        const std::string role = p.id == client && p.id == backend ? "client and backend side"
                                 : p.id == client                  ? "client side"
                                 : p.id == backend                 ? "backend side"
                                                                   : "unused";
        add(Severity::ok, port_subject(p),
            fmt::format("{} ({}, {}, {}), {}, {}, {} RX / {} TX queues, RSS {}, RX descriptors {}", p.name, p.driver,
                        p.vdev ? "vdev" : "PCI", p.socket >= 0 ? fmt::format("NUMA node {}", p.socket) : "NUMA node unknown",
                        role, link, p.max_rx_queues, p.max_tx_queues, rss_list(p.rss),
                        p.rx_desc.max ? fmt::format("{}..{}", p.rx_desc.min, p.rx_desc.max) : std::string("unlimited")));
    }

    static std::string speed(uint32_t mbps) {
        return mbps >= 1000 && mbps % 1000 == 0 ? fmt::format("{} Gbps", mbps / 1000) : fmt::format("{} Mbps", mbps);
    }

    static std::string rss_list(const RssHashes& h) {
        std::string s;
        const std::pair<bool, const char*> names[] = {{h.ipv4, "ipv4"}, {h.ipv4_tcp, "ipv4-tcp"}, {h.ipv4_udp, "ipv4-udp"},
                                                       {h.ipv6, "ipv6"}, {h.ipv6_tcp, "ipv6-tcp"}, {h.ipv6_udp, "ipv6-udp"}};
        for (auto [on, name] : names)
            if (on) s += fmt::format("{}{}", s.empty() ? "" : " ", name);
        return s.empty() ? "none" : s;
    }

    void queues(const PortFacts& p) {
        const uint16_t most = std::min(p.max_rx_queues, p.max_tx_queues);
        if (most == 0) {
            add(Severity::fatal, port_subject(p), fmt::format("{} offers no {} queue", port_label(p), p.max_rx_queues ? "TX" : "RX"),
                fmt::format("leave {} out (-b {}) and use a port that can receive and send", p.name, p.name));
            return;
        }
        if (r.workers <= most) return;
        add(Severity::fatal, port_subject(p),
            fmt::format("{} workers need one RX and one TX queue each, {} has {} RX / {} TX", r.workers, port_label(p),
                        p.max_rx_queues, p.max_tx_queues),
            fmt::format("give Sluice at most {}: -l {}", plural(most, "worker", "workers"), lcores_for(most)));
    }

    void descriptors(const PortFacts& p, const char* opt, const char* dir, uint32_t want, const DescLimits& lim) {
        if (lim.max == 0) return;
        const uint32_t align = lim.align ? lim.align : 1;
        if (want < lim.min || want > lim.max) {
            uint32_t pick = std::clamp<uint32_t>(want, lim.min, lim.max);
            pick = pick / align * align;
            if (pick < lim.min) pick += align;
            add(Severity::fatal, port_subject(p),
                fmt::format("--{} {} is outside {}'s {} descriptor range {}..{}", opt, want, port_label(p), dir, lim.min, lim.max),
                fmt::format("use --{} {} (between {} and {}{})", opt, pick, lim.min, lim.max,
                            align > 1 ? fmt::format(", a multiple of {}", align) : std::string()));
        } else if (want % align) {
            const uint32_t up = (want + align - 1) / align * align;
            add(Severity::info, port_subject(p),
                fmt::format("--{} {} is not a multiple of {} for {}: the driver rounds it up to {}", opt, want, align,
                            port_label(p), up),
                fmt::format("use --{} {} to get what you ask for", opt, up));
        }
    }

    void rss(const PortFacts& p) {
        if (r.workers < 2) return;
        const std::string one = fmt::format("-l {}", lcores_for(1));
        if (p.id == backend) {
            std::vector<const char*> missing;
            if (r.fullnat_v4_tcp && !p.rss.ipv4_tcp) missing.push_back("ipv4-tcp");
            if (r.fullnat_v4_udp && !p.rss.ipv4_udp) missing.push_back("ipv4-udp");
            if (r.fullnat_v6_tcp && !p.rss.ipv6_tcp) missing.push_back("ipv6-tcp");
            if (r.fullnat_v6_udp && !p.rss.ipv6_udp) missing.push_back("ipv6-udp");
            if (!missing.empty()) {
                std::string list;
                for (const char* m : missing) list += fmt::format("{}{}", list.empty() ? "" : ", ", m);
                add(Severity::fatal, port_subject(p),
                    fmt::format("fullnat with {} needs the backend side to spread replies by RSS over {}; {} offers RSS {}",
                                plural(r.workers, "worker", "workers"), list, port_label(p), rss_list(p.rss)),
                    fmt::format("run one worker ({}), or put the backend side on a NIC with RSS over {}", one, list));
                return;
            }
        }
        // setup_port programs Sluice's key and a round-robin table on every RSS port, so that
        // its software Toeplitz predicts the queue; a port that cannot take them is refused.
        if (p.rss.any() && p.rss_key_size < r.rss_key_size) {
            add(Severity::fatal, port_subject(p),
                fmt::format("{} takes a {}-byte RSS key, shorter than the {}-byte Toeplitz key Sluice steers flows with",
                            port_label(p), p.rss_key_size, r.rss_key_size),
                fmt::format("run one worker ({}), or use a NIC whose RSS key has {} bytes or more", one, r.rss_key_size));
            return;
        }
        if (p.rss.any() && (p.reta_size == 0 || p.reta_size % r.reta_multiple != 0)) {
            add(Severity::fatal, port_subject(p),
                fmt::format("{} has an RSS redirection table of {} entries, Sluice programs a multiple of {}", port_label(p),
                            p.reta_size, r.reta_multiple),
                fmt::format("run one worker ({}), or use a NIC whose redirection table has a multiple of {} entries", one,
                            r.reta_multiple));
            return;
        }
        if (!p.rss.any()) {
            const bool nat_here = r.nat && p.id == backend;
            add(Severity::warn, port_subject(p),
                fmt::format("{} has no RSS, so its {} queues are not filled by flow: the workers do not share its traffic{}",
                            port_label(p), r.workers, nat_here ? " and nat replies are handed between workers" : ""),
                fmt::format("run one worker ({}), or use a NIC with RSS", one));
        } else if (!(p.rss.ipv4_tcp || p.rss.ipv4_udp || p.rss.ipv6_tcp || p.rss.ipv6_udp)) {
            add(Severity::info, port_subject(p),
                fmt::format("{} hashes addresses only (RSS {}): one client's connections all land on one worker",
                            port_label(p), rss_list(p.rss)));
        }
    }

    void numa(const PortFacts& p, bool ports_split) {
        if (p.socket < 0 || ports_split) return;
        std::vector<unsigned> away;
        for (const Lcore& w : workers())
            if (w.socket >= 0 && w.socket != p.socket) away.push_back(w.id);
        const bool pool_away = r.pool_socket >= 0 && r.pool_socket != p.socket;
        if (away.empty() && !pool_away) return;
        const std::string l = lcores_on(p.socket);
        const std::string to = l.empty() ? "" : fmt::format(": -l {}", l);
        if (!away.empty())
            add(Severity::warn, port_subject(p),
                fmt::format("{} sits on NUMA node {} but the workers on lcores {} do not: every packet crosses the interconnect",
                            port_label(p), p.socket, lcore_list(away)),
                fmt::format("move the workers to lcores on NUMA node {} where port {} sits{}", p.socket, p.id, to));
        else
            add(Severity::warn, port_subject(p),
                fmt::format("{} sits on NUMA node {} but the mbuf pool is on node {}, the main lcore's", port_label(p),
                            p.socket, r.pool_socket),
                fmt::format("run the main lcore on NUMA node {} too{}", p.socket, to));
    }

    void link(const PortFacts& p) {
        if (p.link != Link::down) return;
        if (p.started)
            add(Severity::warn, port_subject(p), fmt::format("{} has no link", port_label(p)),
                fmt::format("check the cable, the transceiver and the switch port of {}", p.name));
        else if (!p.vdev)
            add(Severity::info, port_subject(p),
                fmt::format("{} reads link down while stopped (many NICs raise the link only when started); Sluice "
                            "checks again after starting it",
                            port_label(p)));
    }

    void offloads(const PortFacts& p) {
        // Sluice verifies IPv4 header checksums (the NIC's verdict when offered) and leaves
        // transport checksums to the endpoints, so only IPv4 RX validation matters.
        if (p.vdev) {
            if (!p.rx_csum.ipv4)
                add(Severity::info, port_subject(p),
                    fmt::format("{} is a virtual device: IPv4 header checksums are checked in software", port_label(p)));
        } else if (!p.rx_csum.ipv4) {
            add(Severity::warn, port_subject(p),
                fmt::format("{} does not validate IPv4 header checksums: the workers check them in software", port_label(p)),
                "use a NIC with IPv4 RX checksum offload to spare the workers that work");
        }
        if (!p.vdev && !p.tx_csum.all())
            add(Severity::info, port_subject(p),
                fmt::format("{} lacks some TX checksum offloads: Sluice patches checksums incrementally in software",
                            port_label(p)));
        if (p.max_rx_pktlen && p.max_rx_pktlen < 1518)
            add(Severity::warn, port_subject(p),
                fmt::format("{} receives frames of at most {} bytes: full 1500-byte packets are dropped", port_label(p),
                            p.max_rx_pktlen),
                "use a port that takes 1518-byte frames (MTU 1500)");
    }

    void ports() {
        if (!roles()) return;
        std::set<int> sockets;
        for (const PortFacts& p : f.ports)
            if (p.socket >= 0) sockets.insert(p.socket);
        const bool split = sockets.size() > 1;
        if (split)
            add(Severity::warn, "ports", "the ports sit on different NUMA nodes: one side's traffic always crosses nodes",
                "put the NICs in PCIe slots of the same CPU socket");
        for (const PortFacts& p : f.ports) {
            identity(p);
            queues(p);
            descriptors(p, "rxd", "RX", r.rxd, p.rx_desc);
            descriptors(p, "txd", "TX", r.txd, p.tx_desc);
            rss(p);
            numa(p, split);
            link(p);
            offloads(p);
        }
    }
};

}  // namespace

const char* to_string(Severity s) {
    switch (s) {
        case Severity::ok: return "ok";
        case Severity::info: return "info";
        case Severity::warn: return "warn";
        case Severity::fatal: return "fatal";
    }
    return "?";
}

Severity Report::worst() const noexcept {
    Severity w = Severity::ok;
    for (const Finding& x : findings) w = std::max(w, x.severity);
    return w;
}

size_t Report::count(Severity s) const noexcept {
    return static_cast<size_t>(std::count_if(findings.begin(), findings.end(), [s](const Finding& x) { return x.severity == s; }));
}

Report check(const Facts& facts) {
    Checker c{facts, facts.req, {}};
    c.host();
    if (facts.host.eal_started) {  // ports, lcores and the pool are EAL's facts
        c.ports();
        c.mbuf_pool();
        c.flow_tables();
        c.snat_ports();
    }
    // Problems first, worst first; ok lines keep their order below them.
    std::stable_sort(c.out.findings.begin(), c.out.findings.end(),
                     [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
    return std::move(c.out);
}

Report check_links(const std::vector<PortFacts>& ports) {
    Facts none;
    Checker c{none, none.req, {}};
    for (const PortFacts& p : ports) c.link(p);
    return std::move(c.out);
}

std::string render(const Report& report) {
    size_t width = 0;
    for (const Finding& x : report.findings) width = std::max(width, x.subject.size());
    std::string out;
    for (const Finding& x : report.findings) {
        std::string tag = to_string(x.severity);
        std::transform(tag.begin(), tag.end(), tag.begin(), [](char ch) { return static_cast<char>(ch - 'a' + 'A'); });
        out += fmt::format("{:<6} {:<{}}  {}\n", tag, x.subject, width, x.what);
        if (!x.fix.empty()) out += fmt::format("{:<6} {:<{}}  fix: {}\n", "", "", width, x.fix);
    }
    const size_t fatal = report.count(Severity::fatal), warn = report.count(Severity::warn);
    out += fmt::format("result: {} fatal, {}: {}\n", fatal, plural(warn, "warning", "warnings"),
                       fatal ? "Sluice cannot run this configuration on this host"
                       : warn ? "Sluice can run, with the warnings above"
                              : "Sluice can run");
    return out;
}

int exit_code(const Report& report) noexcept { return report.worst() == Severity::fatal ? 1 : 0; }

uint32_t mbufs_needed(uint16_t ports, uint16_t workers, uint32_t rxd, uint32_t txd, uint32_t burst, uint32_t mbcache,
                      bool kernel_side) noexcept {
    // Rings and bursts of every queue, 4 KiB of redirect ring per worker, 2048 for each TAP,
    // and up to 1.5 caches per lcore (the mempool's flush threshold) stranded in the caches.
    const uint64_t n = static_cast<uint64_t>(ports) * workers * (rxd + txd + 4ull * burst) + workers * 4ull * 1024 +
                       (kernel_side ? ports * 2048ull : 0) + (workers + 1ull) * mbcache * 3 / 2;
    return static_cast<uint32_t>(std::clamp<uint64_t>(n, 16384, UINT32_MAX));
}

uint64_t flow_table_bytes(uint32_t capacity) noexcept {
    return lb::FlowTable<4>::bytes_for(capacity) + lb::FlowTable<16>::bytes_for(capacity);
}

void fill_requested(const lb::Config& c, Requested& req) {
    req.rxd = c.rxd;
    req.txd = c.txd;
    req.burst = c.burst;
    req.mbcache = c.mbcache;
    req.total_num_mbufs = c.total_num_mbufs;
    req.flow_capacity = c.flow_capacity;
    req.client_port = c.client_port;
    req.backend_port = c.backend_port;
    req.kernel_side = !c.kernel_if.empty();
    req.fullnat = lb::Config{};
    req.fullnat.snat_addrs = c.snat_addrs;
    req.fullnat.snat_port_min = c.snat_port_min;
    req.fullnat.snat_port_max = c.snat_port_max;
    for (const lb::VipConf& v : c.vips)
        if (v.mode == lb::Mode::fullnat) req.fullnat.vips.push_back(v);
    for (const lb::VipConf& v : c.vips) {
        const bool tcp = v.proto == lb::Proto::tcp;
        switch (v.mode) {
            case lb::Mode::dsr: req.dsr = true; break;
            case lb::Mode::tunnel: req.tunnel = true; break;
            case lb::Mode::nat: req.nat = true; break;
            case lb::Mode::fullnat:
                (v.addr.is_v4() ? (tcp ? req.fullnat_v4_tcp : req.fullnat_v4_udp) : (tcp ? req.fullnat_v6_tcp : req.fullnat_v6_udp)) =
                    true;
                break;
        }
    }
}

std::string lcore_list(const std::vector<unsigned>& lcores) {
    std::vector<unsigned> l = lcores;
    std::sort(l.begin(), l.end());
    l.erase(std::unique(l.begin(), l.end()), l.end());
    std::string out;
    for (size_t i = 0; i < l.size();) {
        size_t j = i;
        while (j + 1 < l.size() && l[j + 1] == l[j] + 1) ++j;
        out += fmt::format("{}{}", out.empty() ? "" : ",", l[i]);
        if (j > i) out += fmt::format("{}{}", j == i + 1 ? "," : "-", l[j]);
        i = j + 1;
    }
    return out;
}

}  // namespace sluice::doctor
