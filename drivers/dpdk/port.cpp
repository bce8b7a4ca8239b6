#include "drivers/dpdk/port.hpp"

#include <cstring>
#include <vector>

#include <rte_ethdev.h>

#include <fmt/format.h>

#include "lib/net/toeplitz.hpp"

namespace sluice::dpdk {

Expected<PortInfo> setup_port(uint16_t port_id, const PortParams& params) {
    PortInfo info;
    info.port_id = port_id;
    rte_eth_dev_info dev_info{};
    if (int rc = rte_eth_dev_info_get(port_id, &dev_info); rc != 0)
        return make_error(fmt::format("port {}: rte_eth_dev_info_get: {}", port_id, rte_strerror(-rc)));
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    rte_eth_dev_get_name_by_port(port_id, name);
    info.name = name;
    info.driver = dev_info.driver_name ? dev_info.driver_name : "?";
    if (params.nb_queues > dev_info.max_rx_queues || params.nb_queues > dev_info.max_tx_queues)
        return make_error(fmt::format(
            "port {} ({}, {}) offers {} RX / {} TX queues but {} workers need one each: use fewer worker lcores",
            port_id, info.name, info.driver, dev_info.max_rx_queues, dev_info.max_tx_queues, params.nb_queues));

    rte_eth_conf conf{};
    // Sluice's 40-byte key; a longer key (52 bytes on some NICs) starts with it: Toeplitz over
    // an input of n bytes uses only the first n + 4 key bytes, at most 40 here.
    static uint8_t rss_key[256];
    std::memset(rss_key, 0, sizeof rss_key);
    std::memcpy(rss_key, net::kDefaultRssKey.data(), net::kRssKeyLen);
    const uint64_t want_rss = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
    if (params.nb_queues > 1 && (dev_info.flow_type_rss_offloads & want_rss)) {
        if (dev_info.hash_key_size < net::kRssKeyLen)  // hash_key_size is a uint8_t: it fits rss_key
            return make_error(fmt::format("port {} ({}): its RSS key is {} bytes, Sluice needs {} or more to steer "
                                          "flows to the workers that own them: run one worker",
                                          port_id, info.driver, dev_info.hash_key_size, net::kRssKeyLen));
        if (dev_info.reta_size == 0 || dev_info.reta_size % net::Reta::kSize != 0)
            return make_error(fmt::format("port {} ({}): its RSS redirection table has {} entries, Sluice needs a "
                                          "multiple of {}: run one worker",
                                          port_id, info.driver, dev_info.reta_size, net::Reta::kSize));
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = dev_info.hash_key_size;
        conf.rx_adv_conf.rss_conf.rss_hf = want_rss & dev_info.flow_type_rss_offloads;
        info.rss = true;
    }
    if (dev_info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
        info.rx_ip_csum = true;
    }
    if (int rc = rte_eth_dev_configure(port_id, params.nb_queues, params.nb_queues, &conf); rc != 0)
        return make_error(fmt::format("port {}: rte_eth_dev_configure: {}", port_id, rte_strerror(-rc)));
    uint16_t rxd = params.rxd, txd = params.txd;
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd); rc != 0)
        return make_error(fmt::format("port {}: descriptor counts {}/{}: {}", port_id, rxd, txd, rte_strerror(-rc)));
    const int socket = rte_eth_dev_socket_id(port_id);
    const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < params.nb_queues; ++q) {
        if (int rc = rte_eth_rx_queue_setup(port_id, q, rxd, sock, nullptr, params.pool); rc != 0)
            return make_error(fmt::format("port {}: RX queue {}: {}", port_id, q, rte_strerror(-rc)));
        if (int rc = rte_eth_tx_queue_setup(port_id, q, txd, sock, nullptr); rc != 0)
            return make_error(fmt::format("port {}: TX queue {}: {}", port_id, q, rte_strerror(-rc)));
    }
    if (int rc = rte_eth_dev_start(port_id); rc != 0)
        return make_error(fmt::format("port {}: start: {}", port_id, rte_strerror(-rc)));
    if (info.rss) {
        // Entry i -> (i mod 128) mod queues: for a table of k x 128 entries the queue of hash h
        // is (h mod 128) mod queues, which is what net::Reta::round_robin predicts. Written
        // once the port runs (what drivers accept); packets in the start-up moment before it
        // may reach another worker, as a restart under load would anyway.
        rte_eth_dev_info_get(port_id, &dev_info);  // the size may change with the configuration
        if (dev_info.reta_size == 0 || dev_info.reta_size % net::Reta::kSize != 0) {
            rte_eth_dev_stop(port_id);
            return make_error(fmt::format("port {} ({}): its RSS redirection table has {} entries once configured, "
                                          "Sluice needs a multiple of {}: run one worker",
                                          port_id, info.driver, dev_info.reta_size, net::Reta::kSize));
        }
        std::vector<rte_eth_rss_reta_entry64> reta(dev_info.reta_size / RTE_ETH_RETA_GROUP_SIZE);
        for (uint32_t i = 0; i < dev_info.reta_size; ++i) {
            reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
            reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] =
                static_cast<uint16_t>((i % net::Reta::kSize) % params.nb_queues);
        }
        if (int rc = rte_eth_dev_rss_reta_update(port_id, reta.data(), dev_info.reta_size); rc != 0) {
            rte_eth_dev_stop(port_id);
            return make_error(fmt::format("port {} ({}): cannot program the RSS redirection table: {}: run one worker",
                                          port_id, info.driver, rte_strerror(-rc)));
        }
    }
    rte_eth_promiscuous_enable(port_id);  // some vdevs do not support it; harmless then
    rte_ether_addr mac{};
    rte_eth_macaddr_get(port_id, &mac);
    std::memcpy(info.mac.bytes.data(), mac.addr_bytes, 6);
    return info;
}

}  // namespace sluice::dpdk
