// Tests for lib/doctor: the pre-flight rules against invented hosts and ports. Every problem
// must come with its exact fix sentence, because that sentence is what the operator acts on.
#include "lib/doctor/doctor.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "lib/lb/config.hpp"
#include "lib/net/addr.hpp"

namespace {

using namespace sluice::doctor;
using Catch::Matchers::Contains;

// A dual-port 10G NIC as ixgbe reports it: 64 queues, RSS over every tuple, 40-byte key,
// 128-entry RETA, descriptors 32..4096 in steps of 8, all checksum offloads.
PortFacts nic_port(uint16_t id, const char* pci, int socket = 0) {
    PortFacts p;
    p.id = id;
    p.name = pci;
    p.driver = "net_ixgbe";
    p.socket = socket;
    p.link = Link::up;
    p.started = true;
    p.speed_mbps = 10000;
    p.max_rx_queues = p.max_tx_queues = 64;
    p.rss = {true, true, true, true, true, true};
    p.rss_key_size = 40;
    p.reta_size = 128;
    p.rx_csum = p.tx_csum = {true, true, true};
    p.max_rx_pktlen = 15872;
    p.max_mtu = 9702;
    p.rx_desc = p.tx_desc = {32, 4096, 8};
    return p;
}

// One NUMA node with CPUs 0-7 and 1024 free 2 MiB pages; main lcore 0, workers on 1..workers.
HostFacts host(uint16_t workers) {
    HostFacts h;
    NumaNode n;
    n.id = 0;
    n.hugepages = {{2048, 1024, 1024}, {1048576, 0, 0}};
    for (unsigned c = 0; c < 8; ++c) n.cpus.push_back(c);
    h.nodes.push_back(n);
    h.hugetlbfs_mounted = true;
    h.main_lcore = {0, 0};
    for (unsigned w = 1; w <= workers; ++w) h.worker_lcores.push_back({w, 0});
    h.mem_available_bytes = 16ull << 30;
    return h;
}

// A healthy two-arm box: 4 workers, two ports with 4 queues each, nat and fullnat VIPs.
Facts healthy() {
    Facts f;
    f.host = host(4);
    f.ports = {nic_port(0, "0000:3b:00.0"), nic_port(1, "0000:3b:00.1")};
    for (auto& p : f.ports) p.max_rx_queues = p.max_tx_queues = 4;
    f.req.workers = 4;
    f.req.nat = true;
    f.req.fullnat_v4_tcp = true;
    f.req.pool_socket = 0;
    return f;
}

// A vdev as net_null/net_pcap report it: one queue, no RSS, no offloads, no descriptor limits.
PortFacts vdev_port(uint16_t id, const char* name, const char* driver) {
    PortFacts p;
    p.id = id;
    p.name = name;
    p.driver = driver;
    p.vdev = true;
    p.link = Link::down;
    p.max_rx_queues = p.max_tx_queues = 1;
    p.max_rx_pktlen = 9618;
    return p;
}

std::vector<Finding> with(const Report& r, Severity s) {
    std::vector<Finding> out;
    for (const auto& f : r.findings)
        if (f.severity == s) out.push_back(f);
    return out;
}

std::string dump(const Report& r) { return render(r); }

}  // namespace

TEST_CASE("doctor: a healthy 2-port 4-queue PCI setup has nothing to fix") {
    const Report r = check(healthy());
    INFO(dump(r));
    CHECK(r.worst() == Severity::ok);
    CHECK(exit_code(r) == 0);
    for (const auto& f : r.findings) CHECK(f.fix.empty());
    const std::string text = render(r);
    CHECK_THAT(text, Contains("OK     port 0  0000:3b:00.0 (net_ixgbe, PCI, NUMA node 0), client side, link up 10 Gbps, "
                              "4 RX / 4 TX queues, RSS ipv4 ipv4-tcp ipv4-udp ipv6 ipv6-tcp ipv6-udp"));
    CHECK_THAT(text, Contains("port 1  0000:3b:00.1 (net_ixgbe, PCI, NUMA node 0), backend side"));
    CHECK_THAT(text, Contains("NUMA node 0: 8 CPUs, hugepages 1024 x 2 MiB (1024 free), 0 x 1 GiB (0 free)"));
    CHECK_THAT(text, Contains("4 workers, 2 ports (two-arm: client port 0, backend port 1), --rxd 1024 --txd 1024 "
                              "--burst 32 --mbcache 256, 35712 mbufs"));
    CHECK_THAT(text, Contains("result: 0 fatal, 0 warnings: Sluice can run\n"));
}

TEST_CASE("doctor: more workers than queues is fatal and names the worker count and lcores") {
    Facts f = healthy();
    f.host = host(6);
    f.req.workers = 6;
    const Report r = check(f);
    INFO(dump(r));
    const auto fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 2);  // both ports
    CHECK(fatal[0].subject == "port 0");
    CHECK(fatal[0].what == "6 workers need one RX and one TX queue each, port 0 (net_ixgbe) has 4 RX / 4 TX");
    CHECK(fatal[0].fix == "give Sluice at most 4 workers: -l 0-4");
    CHECK(exit_code(r) == 1);
    CHECK_THAT(render(r), Contains("FATAL  port 0  6 workers need"));
    CHECK_THAT(render(r), Contains("       fix: give Sluice at most 4 workers: -l 0-4\n"));
    CHECK_THAT(render(r), Contains("result: 2 fatal, 0 warnings: Sluice cannot run this configuration on this host"));
}

TEST_CASE("doctor: descriptors outside the port's limits are fatal, misaligned ones are rounded") {
    Facts f = healthy();
    f.req.rxd = 8192;
    f.req.txd = 16;
    Report r = check(f);
    INFO(dump(r));
    auto fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 4);
    CHECK(fatal[0].what == "--rxd 8192 is outside port 0 (net_ixgbe)'s RX descriptor range 32..4096");
    CHECK(fatal[0].fix == "use --rxd 4096 (between 32 and 4096, a multiple of 8)");
    CHECK(fatal[1].what == "--txd 16 is outside port 0 (net_ixgbe)'s TX descriptor range 32..4096");
    CHECK(fatal[1].fix == "use --txd 32 (between 32 and 4096, a multiple of 8)");

    f = healthy();
    f.req.rxd = 1000;
    f.ports[1].rx_desc.align = 32;
    r = check(f);
    CHECK(exit_code(r) == 0);
    auto info = with(r, Severity::info);
    REQUIRE(info.size() == 1);
    CHECK(info[0].subject == "port 1");
    CHECK(info[0].fix == "use --rxd 1024 to get what you ask for");
}

TEST_CASE("doctor: several workers without RSS") {
    SECTION("fullnat on a backend port without RSS is fatal") {
        Facts f = healthy();
        f.host = host(2);
        f.req.workers = 2;
        f.ports[1].rss = {};
        const Report r = check(f);
        INFO(dump(r));
        const auto fatal = with(r, Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].subject == "port 1");
        CHECK(fatal[0].what ==
              "fullnat with 2 workers needs the backend side to spread replies by RSS over ipv4-tcp; port 1 (net_ixgbe) "
              "offers RSS none");
        CHECK(fatal[0].fix == "run one worker (-l 0,1), or put the backend side on a NIC with RSS over ipv4-tcp");
    }
    SECTION("fullnat needs the ports in its hash and Sluice's key size") {
        Facts f = healthy();
        f.req.fullnat_v6_udp = true;
        f.ports[1].rss.ipv6_udp = false;
        Report r = check(f);
        REQUIRE(with(r, Severity::fatal).size() == 1);
        CHECK(with(r, Severity::fatal)[0].fix ==
              "run one worker (-l 0,1), or put the backend side on a NIC with RSS over ipv6-udp");

        f = healthy();
        f.ports[1].rss_key_size = 52;  // i40e: Sluice's key is its prefix
        CHECK(check(f).worst() == Severity::ok);
        f.ports[1].rss_key_size = 16;
        r = check(f);
        REQUIRE(with(r, Severity::fatal).size() == 1);
        CHECK(with(r, Severity::fatal)[0].what ==
              "port 1 (net_ixgbe) takes a 16-byte RSS key, shorter than the 40-byte Toeplitz key Sluice steers flows with");
        CHECK(with(r, Severity::fatal)[0].fix ==
              "run one worker (-l 0,1), or use a NIC whose RSS key has 40 bytes or more");
    }
    SECTION("the redirection table must be a multiple of 128 entries, on any RSS port") {
        Facts f = healthy();
        f.ports[0].reta_size = 64;
        const auto fatal = with(check(f), Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].subject == "port 0");
        CHECK(fatal[0].what == "port 0 (net_ixgbe) has an RSS redirection table of 64 entries, Sluice programs a multiple of 128");
        CHECK(fatal[0].fix == "run one worker (-l 0,1), or use a NIC whose redirection table has a multiple of 128 entries");
        f.ports[0].reta_size = 512;
        CHECK(check(f).worst() == Severity::ok);
    }
    SECTION("nat and dsr work without RSS, but the workers do not share the load") {
        Facts f = healthy();
        f.req.fullnat_v4_tcp = false;
        f.ports[0].rss = {};
        f.ports[1].rss = {};
        const Report r = check(f);
        INFO(dump(r));
        CHECK(exit_code(r) == 0);
        const auto warn = with(r, Severity::warn);
        REQUIRE(warn.size() == 2);
        CHECK(warn[0].what ==
              "port 0 (net_ixgbe) has no RSS, so its 4 queues are not filled by flow: the workers do not share its traffic");
        CHECK(warn[1].what ==
              "port 1 (net_ixgbe) has no RSS, so its 4 queues are not filled by flow: the workers do not share its traffic "
              "and nat replies are handed between workers");
        CHECK(warn[1].fix == "run one worker (-l 0,1), or use a NIC with RSS");
    }
    SECTION("one worker needs no RSS") {
        Facts f = healthy();
        f.host = host(1);
        f.req.workers = 1;
        f.ports[0].rss = f.ports[1].rss = {};
        CHECK(check(f).worst() == Severity::ok);
    }
}

TEST_CASE("doctor: ports on another NUMA node than the workers") {
    Facts f = healthy();
    NumaNode n1;
    n1.id = 1;
    n1.hugepages = {{2048, 1024, 1024}};
    for (unsigned c = 8; c < 16; ++c) n1.cpus.push_back(c);
    f.host.nodes.push_back(n1);
    f.ports[0].socket = f.ports[1].socket = 1;
    const Report r = check(f);
    INFO(dump(r));
    CHECK(exit_code(r) == 0);
    const auto warn = with(r, Severity::warn);
    REQUIRE(warn.size() == 2);
    CHECK(warn[0].what ==
          "port 0 (net_ixgbe) sits on NUMA node 1 but the workers on lcores 1-4 do not: every packet crosses the interconnect");
    CHECK(warn[0].fix == "move the workers to lcores on NUMA node 1 where port 0 sits: -l 8-12");

    SECTION("only the main lcore (and so the mbuf pool) away") {
        for (auto& w : f.host.worker_lcores) w.socket = 1, w.id += 8;
        const Report r2 = check(f);
        const auto w2 = with(r2, Severity::warn);
        REQUIRE(w2.size() == 2);
        CHECK(w2[0].what == "port 0 (net_ixgbe) sits on NUMA node 1 but the mbuf pool is on node 0, the main lcore's");
        CHECK(w2[0].fix == "run the main lcore on NUMA node 1 too: -l 8-12");
    }
    SECTION("ports split over two nodes") {
        f.ports[0].socket = 0;
        const Report r3 = check(f);
        const auto w3 = with(r3, Severity::warn);
        REQUIRE(w3.size() == 1);
        CHECK(w3[0].subject == "ports");
        CHECK(w3[0].fix == "put the NICs in PCIe slots of the same CPU socket");
    }
}

TEST_CASE("doctor: hugepages") {
    SECTION("none reserved") {
        Facts f = healthy();
        f.host.nodes[0].hugepages = {{2048, 0, 0}, {1048576, 0, 0}};
        const Report r = check(f);
        INFO(dump(r));
        const auto fatal = with(r, Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].what == "no hugepages are reserved on any NUMA node");
        CHECK(fatal[0].fix == "reserve hugepages: dpdk-hugepages.py -p 2M --setup 1G (or run with --no-huge -m 256 for a test)");
    }
    SECTION("no hugetlbfs") {
        Facts f = healthy();
        f.host.hugetlbfs_mounted = false;
        const auto fatal = with(check(f), Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].what == "no hugetlbfs is mounted, so EAL has no hugepage memory");
    }
    SECTION("not enough free on the pool's node") {
        Facts f = healthy();
        f.host.nodes[0].hugepages = {{2048, 64, 10}};
        const Report r = check(f);
        INFO(dump(r));
        const auto fatal = with(r, Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].what ==
              "the mbuf pool needs 98 MiB of hugepages on NUMA node 0 (35712 mbufs of 2368 bytes and queues), only 20 MiB "
              "are free");
        CHECK(fatal[0].fix == "reserve 512 2 MiB pages on node 0: dpdk-hugepages.py -p 2M --reserve 1G");
    }
    SECTION("two nodes: the fix names the node, 1 GiB pages stay 1 GiB pages") {
        Facts f = healthy();
        f.host.nodes[0].hugepages = {{2048, 0, 0}, {1048576, 1, 0}};
        NumaNode n1;
        n1.id = 1;
        n1.hugepages = {{1048576, 4, 4}};
        f.host.nodes.push_back(n1);
        const auto fatal = with(check(f), Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].fix == "reserve 2 1 GiB pages on node 0: dpdk-hugepages.py -p 1G --node 0 --reserve 2G");
    }
    SECTION("memory EAL already holds counts") {
        Facts f = healthy();
        f.host.nodes[0].hugepages = {{2048, 512, 0}};
        f.host.nodes[0].eal_free_bytes = 1ull << 30;
        CHECK(check(f).worst() == Severity::ok);
    }
}

TEST_CASE("doctor: link state") {
    Facts f = healthy();
    f.ports[1].link = Link::down;
    Report r = check(f);
    auto warn = with(r, Severity::warn);
    REQUIRE(warn.size() == 1);
    CHECK(warn[0].what == "port 1 (net_ixgbe) has no link");
    CHECK(warn[0].fix == "check the cable, the transceiver and the switch port of 0000:3b:00.1");
    CHECK(exit_code(r) == 0);

    f.ports[1].started = false;
    r = check(f);
    CHECK(with(r, Severity::warn).empty());
    REQUIRE(with(r, Severity::info).size() == 1);
    CHECK_THAT(with(r, Severity::info)[0].what, Contains("reads link down while stopped"));
}

TEST_CASE("doctor: checksum offloads and frame size") {
    Facts f = healthy();
    f.ports[0].rx_csum = {false, true, true};  // transport checksums are the endpoints' business
    f.ports[1].rx_csum = {true, false, false};
    f.ports[0].max_rx_pktlen = 1024;
    const Report r = check(f);
    const auto warn = with(r, Severity::warn);
    REQUIRE(warn.size() == 2);
    CHECK(warn[0].what == "port 0 (net_ixgbe) does not validate IPv4 header checksums: the workers check them in software");
    CHECK(warn[0].fix == "use a NIC with IPv4 RX checksum offload to spare the workers that work");
    CHECK(warn[1].fix == "use a port that takes 1518-byte frames (MTU 1500)");
}

TEST_CASE("doctor: vdev ports with --no-huge") {
    Facts f;
    f.host = host(0);  // the main lcore runs the only worker
    f.host.no_huge = true;
    f.host.nodes[0].hugepages.clear();
    f.host.nodes[0].eal_free_bytes = 500ull << 20;
    f.host.nodes[0].eal_total_bytes = 512ull << 20;
    f.ports = {vdev_port(0, "net_null0", "net_null"), vdev_port(1, "net_pcap0", "net_pcap")};
    f.req.nat = true;
    f.req.fullnat_v4_tcp = true;

    SECTION("one worker is fine") {
        const Report r = check(f);
        INFO(dump(r));
        CHECK(exit_code(r) == 0);
        const auto warn = with(r, Severity::warn);
        REQUIRE(warn.size() == 1);
        CHECK(warn[0].what ==
              "EAL runs with --no-huge: mbufs sit in 4 KiB pages (more TLB misses) and dpdk-dumpcap cannot attach");
        CHECK(warn[0].fix == "reserve hugepages and drop --no-huge: dpdk-hugepages.py -p 2M --setup 1G");
        CHECK_THAT(render(r), Contains("port 0  net_null0 (net_null, vdev, NUMA node unknown), client side, link down "
                                       "(port stopped), 1 RX / 1 TX queues, RSS none"));
        CHECK_THAT(render(r), Contains("net_pcap0 (net_pcap, vdev"));
        CHECK_THAT(render(r), Contains("is a virtual device: IPv4 header checksums are checked in software"));
    }
    SECTION("two workers on single-queue vdevs are fatal") {
        f.host = host(2);
        f.host.no_huge = true;
        f.host.nodes[0].eal_free_bytes = 500ull << 20;
        f.req.workers = 2;
        const Report r = check(f);
        INFO(dump(r));
        CHECK(exit_code(r) == 1);
        const auto fatal = with(r, Severity::fatal);
        REQUIRE(fatal.size() == 3);  // queues on both ports, fullnat without RSS on the backend side
        CHECK(fatal[0].fix == "give Sluice at most 1 worker: -l 0,1");
        CHECK(fatal[0].what == "2 workers need one RX and one TX queue each, port 0 (net_null) has 1 RX / 1 TX");
    }
    SECTION("not enough --no-huge memory") {
        f.host.nodes[0].eal_free_bytes = 20ull << 20;
        f.host.nodes[0].eal_total_bytes = 64ull << 20;
        auto fatal = with(check(f), Severity::fatal);
        REQUIRE(fatal.size() == 1);
        CHECK(fatal[0].fix == "give EAL more memory: -m 256");  // never below 256 MiB
        f.req.flow_tables_in_hugepages = true;  // 138 MiB more
        f.host.nodes[0].eal_total_bytes = 256ull << 20;
        fatal = with(check(f), Severity::fatal);
        REQUIRE(fatal.size() == 1);
        // 256 held + 81 (16384 mbufs, a page each) + 138 - 20 free = 455, in steps of 64.
        CHECK(fatal[0].fix == "give EAL more memory: -m 512");
    }
}

TEST_CASE("doctor: --no-huge memory counts a 4 KiB page per mbuf, as DPDK lays them out") {
    // Measured with net_null ports and the default pool (16384 mbufs of 2368 bytes): -m 64
    // fails to create the pool and -m 66 starts, because no mbuf straddles two base pages.
    Facts f;
    f.host = host(0);
    f.host.no_huge = true;
    f.host.nodes[0].hugepages.clear();
    f.ports = {vdev_port(0, "net_null0", "net_null"), vdev_port(1, "net_null1", "net_null")};
    f.req.nat = true;
    f.host.nodes[0].eal_free_bytes = f.host.nodes[0].eal_total_bytes = 64ull << 20;
    Report r = check(f);
    INFO(dump(r));
    auto fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 1);
    CHECK(fatal[0].what ==
          "the mbuf pool needs 81 MiB (16384 mbufs in 4 KiB pages) but EAL has 64 MiB of its --no-huge memory left");
    CHECK(fatal[0].fix == "give EAL more memory: -m 256");
    f.host.nodes[0].eal_free_bytes = f.host.nodes[0].eal_total_bytes = 96ull << 20;
    r = check(f);
    INFO(dump(r));
    CHECK(exit_code(r) == 0);
    // Twice the page: two mbufs fit in each.
    f.host.base_page_bytes = 8192;
    f.host.nodes[0].eal_free_bytes = f.host.nodes[0].eal_total_bytes = 64ull << 20;
    CHECK(exit_code(check(f)) == 0);
}

TEST_CASE("doctor: without EAL, memory is not judged (EAL's error is the one fatal)") {
    Facts f;
    f.host = host(0);
    f.host.eal_started = false;
    f.host.no_huge = true;  // no EAL memory to count: 0 free
    f.host.nodes[0].hugepages.clear();
    SECTION("--no-huge") {
        const Report r = check(f);
        INFO(dump(r));
        CHECK(with(r, Severity::fatal).empty());
        const auto info = with(r, Severity::info);
        REQUIRE(info.size() == 1);
        CHECK(info[0].what == "memory not judged: EAL did not start");
    }
    SECTION("hugepages, none reserved: EAL's own error says so") {
        f.host.no_huge = false;
        f.host.hugetlbfs_mounted = false;
        const Report r = check(f);
        INFO(dump(r));
        for (const auto& x : r.findings) CHECK(!(x.subject == "host" && x.severity == Severity::fatal));
    }
}

TEST_CASE("doctor: mbuf pool settings") {
    Facts f = healthy();
    f.req.total_num_mbufs = 4096;
    Report r = check(f);
    auto fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 1);
    CHECK(fatal[0].what == "--total-num-mbufs 4096 cannot fill 2 ports x 4 workers x 1024 RX descriptors");
    CHECK(fatal[0].fix == "raise --total-num-mbufs to 35712 or leave it out");

    f.req.total_num_mbufs = 20000;
    r = check(f);
    CHECK(exit_code(r) == 0);
    REQUIRE(with(r, Severity::warn).size() == 1);
    CHECK(with(r, Severity::warn)[0].fix == "raise --total-num-mbufs to 35712 or leave it out");

    f.req.total_num_mbufs = 9000;
    f.req.mbcache = 512;
    f.req.rxd = 1024;
    f.host = host(1);
    f.req.workers = 1;
    f.req.total_num_mbufs = 600;
    f.req.rxd = f.req.txd = 128;
    r = check(f);
    fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 1);
    CHECK(fatal[0].what == "--mbcache 512 needs a pool of at least 768 mbufs, it has 600");
    CHECK(fatal[0].fix == "lower --mbcache to 400");

    f = healthy();
    f.req.mbcache = 0;
    REQUIRE(with(check(f), Severity::warn).size() == 1);
    CHECK(with(check(f), Severity::warn)[0].fix == "use --mbcache 256");
}

TEST_CASE("doctor: flow tables must fit in memory") {
    Facts f = healthy();
    f.req.flow_capacity = 1u << 24;
    f.host.mem_available_bytes = 4ull << 30;
    const Report r = check(f);
    INFO(dump(r));
    const auto fatal = with(r, Severity::fatal);
    REQUIRE(fatal.size() == 1);
    CHECK_THAT(fatal[0].what, Contains("flow tables: 4 workers x 16777216 flows per family take"));
    CHECK_THAT(fatal[0].fix, Contains("lower --flow-capacity to "));
    // The suggestion fits three quarters of the memory.
    const auto n = std::stoul(fatal[0].fix.substr(std::string("lower --flow-capacity to ").size()));
    CHECK(n % 1024 == 0);
    CHECK(4 * flow_table_bytes(static_cast<uint32_t>(n)) <= (3ull << 30));
    CHECK(4 * flow_table_bytes(static_cast<uint32_t>(n + 1024)) > (3ull << 30));
}

TEST_CASE("doctor: ports and roles") {
    Facts f = healthy();
    f.ports.clear();
    auto fatal = with(check(f), Severity::fatal);
    REQUIRE(fatal.size() >= 1);
    CHECK(fatal[0].fix ==
          "bind the NICs to vfio-pci (dpdk-devbind.py -b vfio-pci 0000:3b:00.0) and allow them with -a, or add a --vdev");

    f = healthy();
    f.req.backend_port = 3;
    fatal = with(check(f), Severity::fatal);
    REQUIRE(fatal.size() == 1);
    CHECK(fatal[0].what == "--client-port 0 / --backend-port 3: only 2 ports exist");
    CHECK(fatal[0].fix == "use port ids 0..1 (or allow more ports with -a)");
}

TEST_CASE("doctor: helpers") {
    CHECK(lcore_list({0, 1, 2, 3}) == "0-3");
    CHECK(lcore_list({0, 1}) == "0,1");
    CHECK(lcore_list({4, 0, 2, 6, 7, 8}) == "0,2,4,6-8");
    CHECK(lcore_list({}) == "");
    CHECK(mbufs_needed(1, 1, 1024, 1024, 32, 256, false) == 16384);
    CHECK(mbufs_needed(2, 4, 1024, 1024, 32, 256, false) == 35712);
    // Within the flow table's own accounting (README: under 64 / 128 bytes per flow).
    CHECK(flow_table_bytes(1u << 20) < (64ull + 128) << 20);

    sluice::lb::Config c;
    sluice::lb::VipConf v;
    v.mode = sluice::lb::Mode::fullnat;
    v.proto = sluice::lb::Proto::udp;
    v.addr = *sluice::net::parse_ip("2001:db8::10");
    c.vips.push_back(v);
    c.rxd = 512;
    c.mbcache = 128;
    c.backend_port = 1;
    Requested req;
    fill_requested(c, req);
    CHECK(req.fullnat_v6_udp);
    CHECK_FALSE(req.fullnat_v4_tcp);
    CHECK_FALSE(req.nat);
    CHECK(req.rxd == 512);
    CHECK(req.mbcache == 128);
    CHECK(req.backend_port == 1);
}

TEST_CASE("doctor: links checked again after start") {
    std::vector<PortFacts> ports = {nic_port(0, "0000:3b:00.0"), nic_port(1, "0000:3b:00.1")};
    CHECK(check_links(ports).findings.empty());
    ports[0].link = Link::down;
    const Report r = check_links(ports);
    REQUIRE(r.findings.size() == 1);
    CHECK(r.findings[0].severity == Severity::warn);
    CHECK(r.findings[0].fix == "check the cable, the transceiver and the switch port of 0000:3b:00.0");
}
