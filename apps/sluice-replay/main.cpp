// sluice-replay: a testpmd-style replay harness around Sluice's worker code.
//
//   sluice-replay [EAL options --] --in 0=client.pcap [--in 1=backend.pcap] --out 0=out0.pcap
//                 [--out 1=out1.pcap] [--workers N] [--port-mac P=MAC] [sluice options...]
//
// Packets from all input captures are merged by timestamp and fed one at a time, on a virtual
// clock taken from the capture timestamps, to the same dpdk::Worker code the sluice binary
// runs. With N workers each packet goes to the queue a NIC would pick: Toeplitz over the
// standard RSS input with the default key and a round-robin redirection table. Redirects
// between workers are delivered before the next input packet, so outputs are deterministic.
// Every output packet is written to its port's capture with the timestamp of the input packet
// that caused it. On exit: forward statistics per port, counters as JSON (--stats-json), and a
// check that every mbuf went back to the pool.
// --control-at N=COMMAND runs a sluicectl command through the control plane before the N-th
// input packet (0-based): the same snapshot building and publishing path as the binary, so a
// live change can be replayed and checked byte by byte.
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <fmt/format.h>

#include "drivers/dpdk/eal.hpp"
#include "drivers/dpdk/direct_workers.hpp"
#include "lib/config/options.hpp"
#include "lib/control/control_plane.hpp"
#include "lib/control/flow_log_writer.hpp"
#include "lib/lb/stats_json.hpp"
#include "lib/net/parse.hpp"
#include "lib/net/toeplitz.hpp"
#include "lib/net/wire.hpp"

using namespace sluice;

namespace {

struct InputPacket {
    uint64_t ts_us;
    uint16_t port;
    uint32_t seq;
    std::vector<uint8_t> bytes;
};

struct HarnessArgs {
    std::map<uint16_t, std::string> in, out;
    std::map<uint16_t, net::Mac> macs;
    uint16_t workers = 1;
    std::multimap<uint64_t, std::string> control_at;  // input packet index -> sluicectl command
    std::string hash_key;           // hex; empty = a random key, as the sluice binary uses
    std::vector<std::string> rest;  // Sluice's own options
};

const char* kUsage =
    "usage: sluice-replay [EAL options --] --in PORT=FILE ... [--out PORT=FILE ...] [--workers N]\n"
    "                     [--port-mac PORT=MAC ...] [--control-at N=COMMAND ...] [--hash-key HEX]\n"
    "                     [sluice options ...]\n"
    "Ports without --port-mac get 02:00:00:00:00:0<PORT+1>. Without EAL options the harness runs with\n"
    "--no-huge -m 256 --no-pci and a private --file-prefix. The flow tables' hash key is random per run,\n"
    "as in sluice, unless --hash-key fixes it (up to 128 hex digits) to reproduce a run.\n";

Expected<HarnessArgs> parse_harness(const std::vector<std::string>& args) {
    HarnessArgs h;
    auto port_eq = [](const std::string& opt, const std::string& v, uint16_t& port, std::string& rest) -> Status {
        const auto eq = v.find('=');
        if (eq == std::string::npos || eq == 0) return make_error(fmt::format("{} '{}': expected PORT=VALUE", opt, v));
        try {
            const unsigned long p = std::stoul(v.substr(0, eq));
            if (p >= dpdk::kMaxPorts) return make_error(fmt::format("{} '{}': port out of range", opt, v));
            port = static_cast<uint16_t>(p);
        } catch (...) {
            return make_error(fmt::format("{} '{}': bad port number", opt, v));
        }
        rest = v.substr(eq + 1);
        return {};
    };
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--in" || a == "--out" || a == "--port-mac" || a == "--workers" || a == "--control-at" ||
            a == "--hash-key") {
            if (i + 1 >= args.size()) return make_error(fmt::format("{}: missing value", a));
            const std::string& v = args[++i];
            if (a == "--hash-key") {
                lb::HashKey k;
                if (!lb::HashKey::from_hex(v.c_str(), k))
                    return make_error("--hash-key: expected 1 to 128 hex digits");
                h.hash_key = v;
                continue;
            }
            if (a == "--control-at") {
                const auto eq = v.find('=');
                uint64_t at = 0;
                const auto [end, ec] = std::from_chars(v.data(), v.data() + (eq == std::string::npos ? 0 : eq), at);
                if (eq == std::string::npos || eq == 0 || ec != std::errc() || end != v.data() + eq)
                    return make_error(fmt::format("--control-at '{}': expected N=COMMAND", v));
                auto cmd = control::parse_command(v.substr(eq + 1));
                if (!cmd) return make_error(fmt::format("--control-at '{}': {}", v, cmd.error()));
                h.control_at.emplace(at, v.substr(eq + 1));
                continue;
            }
            if (a == "--workers") {
                try {
                    const unsigned long n = std::stoul(v);
                    if (n < 1 || n > 64) return make_error(fmt::format("--workers '{}': must be 1..64", v));
                    h.workers = static_cast<uint16_t>(n);
                } catch (...) {
                    return make_error(fmt::format("--workers '{}': not a number", v));
                }
                continue;
            }
            uint16_t port = 0;
            std::string rest;
            if (auto st = port_eq(a, v, port, rest); !st) return make_error(st.error());
            if (a == "--in") h.in[port] = rest;
            else if (a == "--out") h.out[port] = rest;
            else {
                auto mac = net::parse_mac(rest);
                if (!mac) return make_error(fmt::format("--port-mac '{}': bad MAC address", v));
                h.macs[port] = *mac;
            }
            continue;
        }
        h.rest.push_back(a);
    }
    if (h.in.empty()) return make_error("at least one --in PORT=FILE is required");
    return h;
}

Expected<std::vector<InputPacket>> read_inputs(const HarnessArgs& h) {
    std::vector<InputPacket> all;
    for (const auto& [port, path] : h.in) {
        char err[PCAP_ERRBUF_SIZE] = {};
        pcap_t* pc = pcap_open_offline(path.c_str(), err);
        if (!pc) return make_error(fmt::format("--in {}={}: {}", port, path, err));
        if (pcap_datalink(pc) != DLT_EN10MB) {
            pcap_close(pc);
            return make_error(fmt::format("--in {}={}: not an Ethernet capture", port, path));
        }
        pcap_pkthdr* hdr;
        const u_char* data;
        uint32_t seq = 0;
        while (pcap_next_ex(pc, &hdr, &data) == 1) {
            InputPacket p;
            p.ts_us = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(hdr->ts.tv_usec);
            p.port = port;
            p.seq = seq++;
            p.bytes.assign(data, data + hdr->caplen);
            all.push_back(std::move(p));
        }
        pcap_close(pc);
    }
    std::stable_sort(all.begin(), all.end(), [](const InputPacket& a, const InputPacket& b) {
        return a.ts_us != b.ts_us ? a.ts_us < b.ts_us : a.port != b.port ? a.port < b.port : a.seq < b.seq;
    });
    return all;
}

// The RX queue a NIC doing standard RSS (TCP/UDP 4-tuple, else the address pair) would pick.
// Fragments, the first one included, hash by their addresses only, as NICs do.
uint16_t rss_queue(const net::Toeplitz& tz, const net::Reta& reta, const std::vector<uint8_t>& f) {
    net::ParsedPacket pp;
    if (net::parse_packet(f.data(), static_cast<uint32_t>(f.size()), pp) != net::ParseStatus::ok) return 0;
    const uint8_t* ip = f.data() + pp.l3_off;
    const bool ports =
        (pp.l4_proto == net::kIpProtoTcp || pp.l4_proto == net::kIpProtoUdp) && pp.frag == net::Frag::none;
    if (pp.l3 == net::L3::ipv4) {
        const uint8_t* s = ip + net::Ipv4Off::src;
        const uint8_t* d = ip + net::Ipv4Off::dst;
        return reta.queue(ports ? tz.hash_tuple(s, d, 4, pp.sport_raw, pp.dport_raw) : tz.hash_addrs(s, d, 4));
    }
    if (pp.l3 == net::L3::ipv6) {
        const uint8_t* s = ip + net::Ipv6Off::src;
        const uint8_t* d = ip + net::Ipv6Off::dst;
        return reta.queue(ports ? tz.hash_tuple(s, d, 16, pp.sport_raw, pp.dport_raw) : tz.hash_addrs(s, d, 16));
    }
    return 0;
}

int run(const HarnessArgs& h, const lb::Config& cfg, std::vector<std::string> eal) {
    if (eal.size() <= 1)
        for (const char* a : {"-l", "0", "--no-huge", "-m", "256", "--no-pci", "--log-level=error"}) eal.emplace_back(a);
    const bool own_prefix =
        std::none_of(eal.begin(), eal.end(), [](const std::string& a) { return a.rfind("--file-prefix", 0) == 0; });
    if (own_prefix) eal.push_back(fmt::format("--file-prefix=sluice-replay-{}", getpid()));
    if (auto st = dpdk::init_eal(eal); !st) {
        fmt::print(stderr, "sluice-replay: {}\n", st.error());
        return 1;
    }
    // The runtime directory of a prefix the harness chose goes when the run ends (after EAL's
    // cleanup): hundreds of runs would leave hundreds of /run/dpdk/sluice-replay-PID behind.
    struct RemoveDir {
        std::string path;
        ~RemoveDir() {
            std::error_code ec;
            if (!path.empty()) std::filesystem::remove_all(path, ec);
        }
    } runtime_dir;
    if (own_prefix) runtime_dir.path = rte_eal_get_runtime_dir();
    auto inputs = read_inputs(h);
    if (!inputs) {
        fmt::print(stderr, "sluice-replay: {}\n", inputs.error());
        return 1;
    }
    const uint16_t nb_ports = static_cast<uint16_t>(std::max<int>(h.in.rbegin()->first, h.out.empty() ? 0 : h.out.rbegin()->first) + 1);
    lb::WorkerEnv env;
    if (auto st = lb::configure_worker_env(cfg, nb_ports, env); !st) {
        fmt::print(stderr, "sluice-replay: {}\n", st.error());
        return 1;
    }
    if (h.hash_key.empty() ? !lb::HashKey::random(env.hash_key) : !lb::HashKey::from_hex(h.hash_key.c_str(), env.hash_key)) {
        fmt::print(stderr, "sluice-replay: cannot read a random hash key from the kernel\n");
        return 1;
    }

    // Room for jumbo frames; larger ones are dropped as a NIC would (counted as oversize).
    constexpr unsigned kPoolSize = 8191;
    constexpr uint16_t kMaxFrame = 9216;
    rte_mempool* pool =
        rte_pktmbuf_pool_create("replay_mbufs", kPoolSize, 0, 0, RTE_PKTMBUF_HEADROOM + kMaxFrame, SOCKET_ID_ANY);
    if (!pool) {
        fmt::print(stderr, "sluice-replay: mempool: {}\n", rte_strerror(rte_errno));
        return 1;
    }
    const unsigned pool_free_at_start = rte_mempool_avail_count(pool);

    // The control plane builds every snapshot; the workers are called directly, one packet at
    // a time, on this thread (the binary runs the same control plane over rings and RCU).
    dpdk::DirectWorkers workers;
    control::Hooks hooks;
    hooks.log = [](const std::string& line) { fmt::print("sluice-replay: {}\n", line); };
    auto prober = control::Prober::create();  // never polled: the harness sends no probes
    if (!prober) {
        fmt::print(stderr, "sluice-replay: {}\n", prober.error());
        return 1;
    }
    control::ControlPlane cp(cfg, workers, std::move(hooks), std::move(*prober));
    if (auto st = cp.start(0); !st) {
        fmt::print(stderr, "sluice-replay: {}\n", st.error());
        return 1;
    }
    env.nb_workers = h.workers;
    env.reta = net::Reta::round_robin(h.workers);
    for (uint16_t p = 0; p < nb_ports; ++p) {
        net::Mac m{{0x02, 0, 0, 0, 0, static_cast<uint8_t>(p + 1)}};
        if (auto it = h.macs.find(p); it != h.macs.end()) m = it->second;
        env.port_macs.push_back(m);
    }
    workers.build(h.workers, env, cfg.flow_capacity, nb_ports);
    control::FlowLogWriter flow_log(cfg.flow_log_rate, [](const std::string& line) {
        fmt::print("sluice-replay: {}\n", line);
    });
    if (cfg.flow_log_one_in) workers.enable_flow_log(cfg.flow_log_one_in, flow_log);

    std::vector<pcap_dumper_t*> dumpers(nb_ports, nullptr);
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    for (const auto& [port, path] : h.out) {
        dumpers[port] = pcap_dump_open(dead, path.c_str());
        if (!dumpers[port]) {
            fmt::print(stderr, "sluice-replay: --out {}={}: {}\n", port, path, pcap_geterr(dead));
            return 1;
        }
    }

    const net::Toeplitz tz;
    std::vector<uint64_t> rx_per_port(nb_ports), tx_per_port(nb_ports), oversize_per_port(nb_ports),
        rx_per_queue(h.workers);
    uint64_t alloc_failures = 0;
    uint64_t index = 0;
    for (const InputPacket& in : *inputs) {
        const uint32_t now_ms = static_cast<uint32_t>(in.ts_us / 1000);
        workers.set_clock(now_ms);
        for (auto [it, end] = h.control_at.equal_range(index++); it != end; ++it) {
            const std::string out = cp.handle(control::parse_command(it->second));
            fmt::print("sluice-replay: control at packet {}: {}: {}", it->first, it->second, out);
        }
        if (in.bytes.size() > kMaxFrame) {
            ++oversize_per_port[in.port];
            continue;
        }
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        if (!m) {
            ++alloc_failures;
            continue;
        }
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(in.bytes.size())), in.bytes.data(), in.bytes.size());
        m->port = in.port;
        ++rx_per_port[in.port];
        const uint16_t q = h.workers > 1 ? rss_queue(tz, env.reta, in.bytes) : 0;
        ++rx_per_queue[q];
        workers[q].handle(&m, 1, false, now_ms);
        // Deliver until quiet: TX to the captures, redirects to their owners.
        for (bool pending = true; pending;) {
            pending = false;
            for (uint16_t wi = 0; wi < workers.size(); ++wi) {
                dpdk::Worker& w = workers[wi];
                for (uint16_t p = 0; p < nb_ports; ++p) {
                    dpdk::Staging& st = w.tx(p);
                    for (uint16_t i = 0; i < st.n; ++i) {
                        rte_mbuf* o = st.pkts[i];
                        if (dumpers[p]) {
                            pcap_pkthdr hdr{};
                            hdr.ts.tv_sec = static_cast<time_t>(in.ts_us / 1'000'000);
                            hdr.ts.tv_usec = static_cast<suseconds_t>(in.ts_us % 1'000'000);
                            hdr.caplen = hdr.len = o->data_len;
                            pcap_dump(reinterpret_cast<u_char*>(dumpers[p]), &hdr, rte_pktmbuf_mtod(o, const u_char*));
                        }
                        ++tx_per_port[p];
                        rte_pktmbuf_free(o);
                    }
                    st.n = 0;
                }
                for (uint16_t dst = 0; dst < h.workers; ++dst) {
                    dpdk::Staging& st = w.redirect(dst);
                    if (!st.n) continue;
                    const uint16_t n = st.n;
                    rte_mbuf* moved[dpdk::Staging::kCap];
                    std::memcpy(moved, st.pkts, n * sizeof(rte_mbuf*));
                    st.n = 0;
                    workers[dst].handle(moved, n, true, now_ms);
                    pending = true;
                }
            }
        }
        // The control core's turn between two input packets: persistence entries a worker made
        // or extended reach the others before the next packet (and the flows' ends, found by
        // the expiry pass, too).
        workers.relay_persist();
        for (uint16_t wi = 0; wi < workers.size(); ++wi) workers[wi].expire(now_ms);
        workers.relay_persist();
        if (cfg.flow_log_one_in) flow_log.drain(now_ms, *cp.service());
    }
    for (auto* d : dumpers)
        if (d) pcap_dump_close(d);
    pcap_close(dead);

    const std::vector<const lb::Dataplane*> dps = workers.dataplanes();
    fmt::print("\n  ---------------------- Forward statistics for all ports ----------------------\n");
    for (uint16_t p = 0; p < nb_ports; ++p)
        fmt::print("  port {}: RX-packets: {:<10} RX-oversize: {:<6} TX-packets: {:<10}\n", p, rx_per_port[p],
                   oversize_per_port[p], tx_per_port[p]);
    for (uint16_t q = 0; q < h.workers; ++q)
        fmt::print("  worker {}: RX-packets: {:<10} {}\n", q, rx_per_queue[q], lb::stats_summary({dps[q]}));
    fmt::print("  total: {}\n", lb::stats_summary(dps));
    if (!cfg.stats_json.empty()) std::ofstream(cfg.stats_json) << lb::stats_to_json(dps);

    workers.clear();
    const unsigned pool_free_at_end = rte_mempool_avail_count(pool);
    int rc = 0;
    if (pool_free_at_end != pool_free_at_start) {
        fmt::print(stderr, "sluice-replay: mbuf leak: {} of {} mbufs not returned\n",
                   pool_free_at_start - pool_free_at_end, pool_free_at_start);
        rc = 1;
    }
    if (alloc_failures) {
        fmt::print(stderr, "sluice-replay: {} input packets found no free mbuf (a leak upstream)\n", alloc_failures);
        rc = 1;
    }
    rte_mempool_free(pool);
    rte_eal_cleanup();
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    const dpdk::SplitArgs args = dpdk::split_args(argc, argv);
    for (const auto& a : args.app)
        if (a == "--help" || a == "-h") {
            fmt::print("{}\nSluice options:\n{}", kUsage, config::usage());
            return 0;
        }
    auto h = parse_harness(args.app);
    if (!h) {
        fmt::print(stderr, "sluice-replay: error: {}\n{}", h.error(), kUsage);
        return 2;
    }
    auto parsed = config::parse_args(h->rest);
    if (!parsed) {
        fmt::print(stderr, "sluice-replay: error: {}\n", parsed.error());
        return 2;
    }
    if (parsed->action != config::Action::run) {
        fmt::print("{}", parsed->text);
        return 0;
    }
    return run(*h, parsed->config, args.eal);
}
