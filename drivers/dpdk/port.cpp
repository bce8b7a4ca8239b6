#include "drivers/dpdk/port.hpp"

#include <cstring>

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
    static uint8_t rss_key[net::kRssKeyLen];
    std::memcpy(rss_key, net::kDefaultRssKey.data(), sizeof rss_key);
    const uint64_t want_rss = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
    if (params.nb_queues > 1 && (dev_info.flow_type_rss_offloads & want_rss)) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = dev_info.hash_key_size == net::kRssKeyLen ? net::kRssKeyLen : 0;
        if (!conf.rx_adv_conf.rss_conf.rss_key_len) conf.rx_adv_conf.rss_conf.rss_key = nullptr;
        conf.rx_adv_conf.rss_conf.rss_hf = want_rss & dev_info.flow_type_rss_offloads;
        info.rss = true;
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
    rte_eth_promiscuous_enable(port_id);  // some vdevs do not support it; harmless then
    rte_ether_addr mac{};
    rte_eth_macaddr_get(port_id, &mac);
    std::memcpy(info.mac.bytes.data(), mac.addr_bytes, 6);
    return info;
}

}  // namespace sluice::dpdk
