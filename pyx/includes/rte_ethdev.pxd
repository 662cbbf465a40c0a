# DPDK 22.11 LTS: rte_ethdev.h (only what the forwarder uses)
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from includes.rte_mbuf cimport rte_mbuf
from includes.rte_mempool cimport rte_mempool

cdef extern from "rte_ethdev.h" nogil:
    # only the fields set for RSS (rte_eth_conf is zeroed first)
    struct rte_eth_rss_conf:
        uint8_t *rss_key
        uint8_t rss_key_len
        uint64_t rss_hf
    struct rte_eth_rxmode:
        int mq_mode
    struct rte_eth_rx_adv_conf:
        rte_eth_rss_conf rss_conf
    struct rte_eth_conf:
        rte_eth_rxmode rxmode
        rte_eth_rx_adv_conf rx_adv_conf
    struct rte_eth_dev_info:
        const char *driver_name
        uint16_t max_rx_queues
        uint16_t max_tx_queues
        uint8_t hash_key_size
        uint16_t reta_size
        uint64_t flow_type_rss_offloads
    enum:
        RTE_ETH_MQ_RX_NONE
        RTE_ETH_MQ_RX_RSS
    uint64_t RTE_ETH_RSS_IPV4
    uint64_t RTE_ETH_RSS_FRAG_IPV4
    uint64_t RTE_ETH_RSS_NONFRAG_IPV4_TCP
    uint64_t RTE_ETH_RSS_NONFRAG_IPV4_UDP
    uint64_t RTE_ETH_RSS_IPV6
    uint64_t RTE_ETH_RSS_FRAG_IPV6
    uint64_t RTE_ETH_RSS_NONFRAG_IPV6_TCP
    uint64_t RTE_ETH_RSS_NONFRAG_IPV6_UDP
    int rte_eth_dev_info_get(uint16_t port_id, rte_eth_dev_info *dev_info)
    struct rte_eth_rxconf:
        pass
    struct rte_eth_txconf:
        pass
    struct rte_eth_stats:
        uint64_t ipackets
        uint64_t opackets
        uint64_t ibytes
        uint64_t obytes
        uint64_t imissed
        uint64_t ierrors
        uint64_t oerrors
        uint64_t rx_nombuf
    struct rte_eth_dev_tx_buffer:
        uint16_t length
    ctypedef void (*buffer_tx_error_fn)(rte_mbuf **unsent, uint16_t count,
                                        void *userdata) noexcept nogil

    int rte_eth_dev_get_port_by_name(const char *name, uint16_t *port_id)
    int rte_eth_dev_get_name_by_port(uint16_t port_id, char *name)
    int rte_eth_dev_socket_id(uint16_t port_id)
    int rte_eth_dev_configure(uint16_t port_id, uint16_t nb_rx_queue, uint16_t nb_tx_queue,
                              const rte_eth_conf *eth_conf)
    int rte_eth_dev_adjust_nb_rx_tx_desc(uint16_t port_id, uint16_t *nb_rx_desc,
                                         uint16_t *nb_tx_desc)
    int rte_eth_rx_queue_setup(uint16_t port_id, uint16_t rx_queue_id, uint16_t nb_rx_desc,
                               unsigned socket_id, const rte_eth_rxconf *rx_conf,
                               rte_mempool *mb_pool)
    int rte_eth_tx_queue_setup(uint16_t port_id, uint16_t tx_queue_id, uint16_t nb_tx_desc,
                               unsigned socket_id, const rte_eth_txconf *tx_conf)
    int rte_eth_dev_start(uint16_t port_id)
    int rte_eth_dev_stop(uint16_t port_id)
    int rte_eth_dev_close(uint16_t port_id)
    int rte_eth_promiscuous_enable(uint16_t port_id)
    struct rte_eth_link:
        uint32_t link_speed
        uint16_t link_status       # a bit-field in C; read by name
    int rte_eth_link_get_nowait(uint16_t port_id, rte_eth_link *link)
    int rte_eth_stats_get(uint16_t port_id, rte_eth_stats *stats)
    int rte_eth_stats_reset(uint16_t port_id)

    uint16_t rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, rte_mbuf **rx_pkts,
                              uint16_t nb_pkts)
    uint16_t rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, rte_mbuf **tx_pkts,
                              uint16_t nb_pkts)
    int rte_eth_tx_buffer_init(rte_eth_dev_tx_buffer *buffer, uint16_t size)
    int rte_eth_tx_buffer_set_err_callback(rte_eth_dev_tx_buffer *buffer,
                                           buffer_tx_error_fn callback, void *userdata)
    uint16_t rte_eth_tx_buffer(uint16_t port_id, uint16_t queue_id,
                               rte_eth_dev_tx_buffer *buffer, rte_mbuf *tx_pkt)
    uint16_t rte_eth_tx_buffer_flush(uint16_t port_id, uint16_t queue_id,
                                     rte_eth_dev_tx_buffer *buffer)
