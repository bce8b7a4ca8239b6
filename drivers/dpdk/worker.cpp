#include "drivers/dpdk/worker.hpp"

namespace sluice::dpdk {

Worker::Worker(std::shared_ptr<const lb::Service> service, const lb::WorkerEnv& env, uint32_t flow_capacity,
               uint16_t nb_ports)
    : dp_(std::move(service), env, flow_capacity), nb_ports_(nb_ports), tx_(nb_ports), redirect_(env.nb_workers) {}

void Worker::handle(rte_mbuf** pkts, uint16_t n, bool redirected, uint32_t now_ms) noexcept {
    // Left uninitialised: each entry used is filled below (default-constructing kMaxBurst
    // PacketRefs per call is measurable at these rates).
    alignas(lb::PacketRef) unsigned char refs_mem[sizeof(lb::PacketRef) * lb::Dataplane::kMaxBurst];
    auto* refs = reinterpret_cast<lb::PacketRef*>(refs_mem);
    rte_mbuf* burst[lb::Dataplane::kMaxBurst];
    const uint16_t nb_ports = nb_ports_;  // a local: stores into refs[] cannot alias it
    while (n > 0) {
        const uint16_t take = n < lb::Dataplane::kMaxBurst ? n : lb::Dataplane::kMaxBurst;
        uint16_t b = 0;
        for (uint16_t i = 0; i < take; ++i) {
            rte_mbuf* m = pkts[i];
            if (m->nb_segs != 1) {  // the data path reads one contiguous buffer
                dp_.counters().rx++;
                count_drop(lb::Drop::multi_segment);
                rte_pktmbuf_free(m);
                continue;
            }
            // RX checksum offload (where the port has it): a header the NIC found bad is
            // dropped here, one it found good is not summed again.
            const uint64_t ip_csum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
            if (ip_csum == RTE_MBUF_F_RX_IP_CKSUM_BAD) [[unlikely]] {
                dp_.counters().rx++;
                count_drop(lb::Drop::bad_ip_checksum);
                rte_pktmbuf_free(m);
                continue;
            }
            // Built in registers and written whole, not field by field (about 2% in the
            // 1K-flow benchmark).
            lb::PacketRef r;
            r.data = rte_pktmbuf_mtod(m, uint8_t*);
            r.len = m->data_len;
            r.cap = static_cast<uint16_t>(m->buf_len - m->data_off);  // length + tailroom
            r.headroom = m->data_off;
            r.in_port = m->port < nb_ports ? m->port : 0;
            r.redirected = redirected;
            r.ip_csum_good = ip_csum == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
            refs[b] = r;
            burst[b++] = m;
        }
        dp_.process(refs, b, now_ms);
        // The staging array being filled and its count live in registers while consecutive
        // packets go to the same place (the common case): a count in memory would make every
        // packet wait for the previous one's store.
        Staging* cur = nullptr;
        uint16_t cur_n = 0;
        for (uint16_t i = 0; i < b; ++i) {
            rte_mbuf* m = burst[i];
            lb::PacketRef& r = refs[i];
            Staging* s = nullptr;
            if (r.verdict == lb::Verdict::tx && r.out < nb_ports) {
                s = &tx_[r.out];
                if (r.len != m->data_len || r.data != rte_pktmbuf_mtod(m, uint8_t*)) {
                    m->data_len = static_cast<uint16_t>(r.len);
                    m->pkt_len = r.len;
                    // A tunnel's outer header went into the headroom: the frame starts earlier.
                    m->data_off = static_cast<uint16_t>(r.data - static_cast<uint8_t*>(m->buf_addr));
                }
            } else if (r.verdict == lb::Verdict::redirect && r.out < redirect_.size()) {
                s = &redirect_[r.out];
            } else if (r.verdict == lb::Verdict::control) {
                s = &control_;
            }
            if (s != cur && s) {
                if (cur) cur->n = cur_n;
                cur = s;
                cur_n = s->n;
            }
            if (s && cur_n < Staging::kCap) {
                s->pkts[cur_n++] = m;
                continue;
            }
            if (s)
                count_drop(r.verdict == lb::Verdict::tx         ? lb::Drop::tx_full
                           : r.verdict == lb::Verdict::control ? lb::Drop::control_full
                                                                : lb::Drop::redirect_full);
            else if (r.verdict != lb::Verdict::drop)  // an output that does not exist
                count_drop(lb::Drop::bad_output);
            if (r.verdict == lb::Verdict::tx) --dp_.counters().tx;  // the data path counted it as sent
            rte_pktmbuf_free(m);
        }
        if (cur) cur->n = cur_n;
        pkts += take;
        n = static_cast<uint16_t>(n - take);
    }
}

lb::FlowLogRing* Worker::enable_flow_log(uint32_t one_in) {
    constexpr size_t kEntries = 4096;  // about 80 ms of events at 50k new flows/s sampled 1 in 1
    flow_log_ = std::make_unique<lb::FlowLogRing>(kEntries);
    dp_.enable_flow_log(one_in, flow_log_.get());
    return flow_log_.get();
}

void Worker::tx_done(uint16_t port, uint16_t sent) noexcept {
    Staging& st = tx_[port];
    if (sent < st.n) {
        count_drop(lb::Drop::tx_full, st.n - sent);
        dp_.counters().tx -= st.n - sent;
        rte_pktmbuf_free_bulk(st.pkts + sent, st.n - sent);
    }
    st.n = 0;
}

void Worker::handed_over(Staging& st, unsigned taken, lb::Drop full) noexcept {
    if (taken < st.n) {
        count_drop(full, st.n - taken);
        rte_pktmbuf_free_bulk(st.pkts + taken, st.n - taken);
    }
    st.n = 0;
}

void Worker::stage_unchanged(rte_mbuf* m) noexcept {
    Staging& st = tx_[m->port < nb_ports_ ? m->port : 0];
    if (st.n < Staging::kCap) {
        st.pkts[st.n++] = m;
        ++dp_.counters().tx;
    } else {
        count_drop(lb::Drop::tx_full);
        rte_pktmbuf_free(m);
    }
}

}  // namespace sluice::dpdk
