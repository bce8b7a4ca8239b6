#include "lib/lb/snat_ports.hpp"

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace sluice::lb {

std::vector<SnatShare> snat_shares(const Config& c, uint16_t nb_workers, const net::Reta& reta) {
    std::vector<SnatShare> out;
    if (nb_workers == 0) nb_workers = 1;
    const net::Toeplitz t;
    const uint32_t lo = c.snat_port_min, hi = c.snat_port_max;
    for (const auto& snat : c.snat_addrs) {
        const size_t alen = snat.is_v4() ? 4 : 16;
        // The reply's input is (backend, SNAT address, backend port, SNAT port): the SNAT port
        // sits last. Histogram of its contribution's low bits (the RETA index).
        std::array<uint32_t, net::Reta::kSize> hist{};
        for (uint32_t p = lo; p <= hi; ++p) {
            const uint8_t port[2] = {static_cast<uint8_t>(p >> 8), static_cast<uint8_t>(p)};
            ++hist[t.hash_at(2 * alen + 2, port, 2) % net::Reta::kSize];
        }
        SnatShare s;
        s.addr = snat;
        s.ports = hi - lo + 1;
        s.fewest.assign(nb_workers, UINT32_MAX);
        s.fewest_to.assign(nb_workers, "");
        bool used = false;
        for (const auto& v : c.vips) {
            if (v.mode != Mode::fullnat || v.addr.family != snat.family) continue;
            for (const auto& b : v.backends) {
                used = true;
                const uint16_t bport = b.port ? b.port : v.port;
                const uint8_t port[2] = {static_cast<uint8_t>(bport >> 8), static_cast<uint8_t>(bport)};
                const uint32_t base = t.hash_at(0, b.addr.bytes.data(), alen) ^
                                      t.hash_at(alen, snat.bytes.data(), alen) ^ t.hash_at(2 * alen, port, 2);
                std::vector<uint32_t> owned(nb_workers, 0);
                for (uint32_t i = 0; i < net::Reta::kSize; ++i) {
                    const uint16_t w = reta.queue(base ^ i);
                    if (w < nb_workers) owned[w] += hist[i];
                }
                for (uint16_t w = 0; w < nb_workers; ++w)
                    if (owned[w] < s.fewest[w]) {
                        s.fewest[w] = owned[w];
                        s.fewest_to[w] = net::to_string(b.addr, bport);
                    }
            }
        }
        if (used) out.push_back(std::move(s));
    }
    return out;
}

std::string describe(const SnatShare& s) {
    std::string per;
    for (uint32_t n : s.fewest) per += (per.empty() ? "" : ", ") + std::to_string(n);
    return fmt::format("SNAT {}: {} ports; toward each backend, worker 0.. owns at least {}", net::to_string(s.addr),
                       s.ports, per);
}

Status check_snat_shares(const Config& c, uint16_t nb_workers, const net::Reta& reta) {
    for (const auto& s : snat_shares(c, nb_workers, reta))
        for (size_t w = 0; w < s.fewest.size(); ++w)
            if (s.fewest[w] == 0)
                return make_error(fmt::format(
                    "--snat-ports {}-{}: worker {} owns none of SNAT {}'s {} ports toward backend {} (a port "
                    "belongs to the worker its reply reaches), so its fullnat flows there would all be refused; "
                    "widen --snat-ports (at least 64 ports per worker) or run fewer workers",
                    c.snat_port_min, c.snat_port_max, w, net::to_string(s.addr), s.ports, s.fewest_to[w]));
    return {};
}

}  // namespace sluice::lb
