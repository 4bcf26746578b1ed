/*
 * CDPDK setup calls: everything that runs once per process, port or lcore. Each returns 0 (or
 * a count) on success and a negative errno value on failure, never aborts; the Swift side turns
 * the value into text with sl_strerror and names the port.
 */
#include "cdpdk.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_epoll.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_telemetry.h>

/* ---- EAL ---------------------------------------------------------------------------------- */

int sl_eal_init(int argc, char **argv) {
    int consumed = rte_eal_init(argc, argv);
    return consumed < 0 ? -rte_errno : consumed;
}

int sl_eal_cleanup(void) { return rte_eal_cleanup(); }

const char *sl_strerror(int error) { return rte_strerror(error < 0 ? -error : error); }

uint64_t sl_tsc_hz(void) { return rte_get_tsc_hz(); }

/* ---- lcores ------------------------------------------------------------------------------- */

unsigned int sl_main_lcore(void) { return rte_get_main_lcore(); }

bool sl_lcore_is_enabled(unsigned int lcore) { return lcore < RTE_MAX_LCORE && rte_lcore_is_enabled(lcore); }

unsigned int sl_lcore_socket(unsigned int lcore) { return rte_lcore_to_socket_id(lcore); }

int sl_lcore_launch(sl_lcore_entry entry, void *context, unsigned int lcore) {
    /* lcore_function_t is int (void *): the Swift @convention(c) entry has exactly that type. */
    return rte_eal_remote_launch(entry, context, lcore);
}

int sl_lcore_wait(unsigned int lcore) { return rte_eal_wait_lcore(lcore); }

bool sl_lcore_is_running(unsigned int lcore) { return rte_eal_get_lcore_state(lcore) == RUNNING; }

/* ---- mempool ------------------------------------------------------------------------------ */

struct rte_mempool *sl_pktmbuf_pool_create(const char *name, unsigned int mbufs, unsigned int cache_size,
                                           uint16_t data_room, int socket, int *error) {
    struct rte_mempool *pool = rte_pktmbuf_pool_create(name, mbufs, cache_size, 0, data_room, socket);
    *error = pool == NULL ? -rte_errno : 0;
    return pool;
}

void sl_mempool_free(struct rte_mempool *pool) { rte_mempool_free(pool); }

unsigned int sl_mempool_available(const struct rte_mempool *pool) { return rte_mempool_avail_count(pool); }

unsigned int sl_mempool_in_use(const struct rte_mempool *pool) { return rte_mempool_in_use_count(pool); }

uint16_t sl_mempool_frame_capacity(struct rte_mempool *pool) {
    return (uint16_t)(rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM);
}

/* ---- ports -------------------------------------------------------------------------------- */

int sl_port_by_name(const char *name, uint16_t *port) { return rte_eth_dev_get_port_by_name(name, port); }

int sl_port_info(uint16_t port, struct sl_port_info *info) {
    struct rte_eth_dev_info dev;
    memset(info, 0, sizeof(*info));
    int ret = rte_eth_dev_info_get(port, &dev);
    if (ret != 0) return ret;
    info->port_id = port;
    info->max_rx_queues = dev.max_rx_queues;
    info->max_tx_queues = dev.max_tx_queues;
    info->min_mtu = dev.min_mtu;
    info->max_mtu = dev.max_mtu;
    info->max_rx_frame = dev.max_rx_pktlen;
    info->rss_hash_functions = dev.flow_type_rss_offloads;
    info->tx_offloads = dev.tx_offload_capa;
    info->socket = rte_eth_dev_socket_id(port);
    if (dev.driver_name != NULL) snprintf(info->driver, sizeof(info->driver), "%s", dev.driver_name);
    ret = rte_eth_dev_get_name_by_port(port, info->name);
    if (ret != 0) return ret;
    if (rte_eth_dev_get_mtu(port, &info->mtu) != 0) info->mtu = 0;
    struct rte_ether_addr mac;
    ret = rte_eth_macaddr_get(port, &mac);
    if (ret != 0) return ret;
    memcpy(info->mac, mac.addr_bytes, RTE_ETHER_ADDR_LEN);
    return 0;
}

int sl_kernel_interface_mtu(const char *ifname) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    if (strlen(ifname) >= sizeof(request.ifr_name)) return -ENAMETOOLONG;
    snprintf(request.ifr_name, sizeof(request.ifr_name), "%s", ifname);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int ret = ioctl(fd, SIOCGIFMTU, &request);
    int error = errno;
    close(fd);
    return ret == 0 ? request.ifr_mtu : -error;
}

static int fail(struct sl_port_setup_result *result, const char *call, int queue, int ret) {
    result->failed_call = call;
    result->failed_queue = queue;
    return ret < 0 ? ret : -ret;
}

int sl_port_configure(uint16_t port, const struct sl_port_setup *setup, struct sl_port_setup_result *result) {
    memset(result, 0, sizeof(*result));
    result->failed_queue = -1;

    struct rte_eth_dev_info dev;
    int ret = rte_eth_dev_info_get(port, &dev);
    if (ret != 0) return fail(result, "rte_eth_dev_info_get", -1, ret);
    if (setup->queues == 0 || setup->queues > dev.max_rx_queues || setup->queues > dev.max_tx_queues)
        return fail(result, "queue count (one RX and one TX queue per worker) exceeds the device's", -1, -EINVAL);

    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (setup->rss && setup->queues > 1) {
        uint64_t wanted = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
        uint64_t hash_functions = wanted & dev.flow_type_rss_offloads;
        if (hash_functions != 0) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = NULL; /* the driver's default key */
            conf.rx_adv_conf.rss_conf.rss_hf = hash_functions;
            result->rss_hash_functions = hash_functions;
        }
    }
    /* Every mbuf comes from one pool with refcount 1: the precondition of fast free. */
    if (dev.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
        result->fast_free = true;
    }
    /* Checksum offloads where the port has them: RX verifies IPv4 headers (the parser skips its
     * own check on GOOD), TX fills in the VXLAN outer IPv4 header's checksum — asked for only on
     * ports that carry VXLAN (on some NICs any TX offload rules out the vector TX path). TCP/UDP
     * checksums are updated incrementally in software (RFC 1624: a few adds, cheaper than
     * preparing the pseudo-header checksum a NIC's L4 offload needs). */
    if (dev.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
        result->rx_ipv4_checksum = true;
    }
    if (setup->tx_ipv4_checksum && (dev.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)) {
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
        result->tx_ipv4_checksum = true;
    }
    conf.intr_conf.rxq = setup->rx_interrupts ? 1 : 0;

    ret = rte_eth_dev_configure(port, setup->queues, setup->queues, &conf);
    if (ret < 0 && conf.intr_conf.rxq) {
        /* The driver refused RX interrupts: the worker will fall back to sleeping. */
        conf.intr_conf.rxq = 0;
        ret = rte_eth_dev_configure(port, setup->queues, setup->queues, &conf);
    }
    if (ret < 0) return fail(result, "rte_eth_dev_configure", -1, ret);
    result->rx_interrupts = conf.intr_conf.rxq;

    if (setup->mtu != 0) {
        ret = rte_eth_dev_set_mtu(port, setup->mtu);
        if (ret < 0) return fail(result, "rte_eth_dev_set_mtu", -1, ret);
    }

    uint16_t rx_descriptors = setup->rx_descriptors, tx_descriptors = setup->tx_descriptors;
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_descriptors, &tx_descriptors);
    if (ret < 0) return fail(result, "rte_eth_dev_adjust_nb_rx_tx_desc", -1, ret);
    result->rx_descriptors = rx_descriptors;
    result->tx_descriptors = tx_descriptors;

    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0) socket = SOCKET_ID_ANY;
    struct rte_eth_rxconf rxconf = dev.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    for (uint16_t q = 0; q < setup->queues; q++) {
        ret = rte_eth_rx_queue_setup(port, q, rx_descriptors, (unsigned int)socket, &rxconf, setup->pool);
        if (ret < 0) return fail(result, "rte_eth_rx_queue_setup", q, ret);
    }
    struct rte_eth_txconf txconf = dev.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < setup->queues; q++) {
        ret = rte_eth_tx_queue_setup(port, q, tx_descriptors, (unsigned int)socket, &txconf);
        if (ret < 0) return fail(result, "rte_eth_tx_queue_setup", q, ret);
    }
    return 0;
}

int sl_port_set_mac(uint16_t port, const uint8_t mac[RTE_ETHER_ADDR_LEN]) {
    struct rte_ether_addr address;
    memcpy(address.addr_bytes, mac, RTE_ETHER_ADDR_LEN);
    return rte_eth_dev_default_mac_addr_set(port, &address);
}

int sl_port_mac(uint16_t port, uint8_t mac[RTE_ETHER_ADDR_LEN]) {
    struct rte_ether_addr address;
    int ret = rte_eth_macaddr_get(port, &address);
    if (ret == 0) memcpy(mac, address.addr_bytes, RTE_ETHER_ADDR_LEN);
    return ret;
}

int sl_port_promiscuous_enable(uint16_t port) { return rte_eth_promiscuous_enable(port); }
int sl_port_start(uint16_t port) { return rte_eth_dev_start(port); }
int sl_port_stop(uint16_t port) { return rte_eth_dev_stop(port); }
int sl_port_close(uint16_t port) { return rte_eth_dev_close(port); }

int sl_port_link(uint16_t port, struct sl_link *link) {
    struct rte_eth_link state;
    memset(link, 0, sizeof(*link));
    int ret = rte_eth_link_get_nowait(port, &state);
    if (ret != 0) return ret;
    link->speed_mbps = state.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : state.link_speed;
    link->up = state.link_status == RTE_ETH_LINK_UP;
    link->full_duplex = state.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    link->autoneg = state.link_autoneg == RTE_ETH_LINK_AUTONEG;
    return 0;
}

int sl_port_stats(uint16_t port, struct sl_port_stats *stats) {
    struct rte_eth_stats raw;
    memset(stats, 0, sizeof(*stats));
    int ret = rte_eth_stats_get(port, &raw);
    if (ret != 0) return ret;
    stats->rx_packets = raw.ipackets;
    stats->tx_packets = raw.opackets;
    stats->rx_bytes = raw.ibytes;
    stats->tx_bytes = raw.obytes;
    stats->rx_missed = raw.imissed;
    stats->rx_errors = raw.ierrors;
    stats->tx_errors = raw.oerrors;
    stats->rx_no_mbuf = raw.rx_nombuf;
    return 0;
}

/* ---- RX interrupts ------------------------------------------------------------------------ */

bool sl_rx_interrupt_available(uint16_t port, uint16_t queue) {
    return rte_eth_dev_rx_intr_ctl_q_get_fd(port, queue) >= 0;
}

int sl_rx_interrupt_register(uint16_t port, uint16_t queue, bool add) {
    int ret = rte_eth_dev_rx_intr_ctl_q(port, queue, RTE_EPOLL_PER_THREAD,
                                        add ? RTE_INTR_EVENT_ADD : RTE_INTR_EVENT_DEL, NULL);
    return ret < 0 ? ret : 0;
}

int sl_rx_interrupt_enable(uint16_t port, uint16_t queue) { return rte_eth_dev_rx_intr_enable(port, queue); }
int sl_rx_interrupt_disable(uint16_t port, uint16_t queue) { return rte_eth_dev_rx_intr_disable(port, queue); }

int sl_rx_interrupt_wait(int timeout_ms) {
    struct rte_epoll_event events[8];
    int n = rte_epoll_wait(RTE_EPOLL_PER_THREAD, events, 8, timeout_ms);
    return n < 0 ? -errno : n;
}

/* ---- RCU -------------------------------------------------------------------------------- */

struct rte_rcu_qsbr *sl_rcu_create(uint32_t max_threads) {
    size_t size = rte_rcu_qsbr_get_memsize(max_threads);
    if (size == (size_t)1) return NULL;
    /* Plain process memory, not the EAL heap: the variable may outlive rte_eal_cleanup (it is
     * freed with the last reference to the pipeline's resources). */
    size = RTE_ALIGN_CEIL(size, RTE_CACHE_LINE_SIZE);
    struct rte_rcu_qsbr *v = aligned_alloc(RTE_CACHE_LINE_SIZE, size);
    if (v == NULL) return NULL;
    memset(v, 0, size);
    if (rte_rcu_qsbr_init(v, max_threads) != 0) {
        free(v);
        return NULL;
    }
    return v;
}

void sl_rcu_free(struct rte_rcu_qsbr *v) { free(v); }
int sl_rcu_register(struct rte_rcu_qsbr *v, unsigned int id) { return rte_rcu_qsbr_thread_register(v, id); }
int sl_rcu_unregister(struct rte_rcu_qsbr *v, unsigned int id) { return rte_rcu_qsbr_thread_unregister(v, id); }

/* ---- Telemetry ---------------------------------------------------------------------------- */

/* DPDK's callback has no context argument, so one dispatcher looks the command up here. The
 * table is written on the main lcore before rte_telemetry_register_cmd publishes the command
 * (its spinlock orders the write before any read by the telemetry thread) and never changes
 * afterwards. */
static struct {
    char command[RTE_TEL_MAX_STRING_LEN];
    sl_telemetry_handler handler;
    void *context;
} sl_telemetry_commands[SL_TELEMETRY_MAX_COMMANDS];
static int sl_telemetry_command_count;

static int sl_telemetry_dispatch(const char *cmd, const char *params, struct rte_tel_data *d) {
    for (int i = 0; i < sl_telemetry_command_count; i++) {
        if (strcmp(sl_telemetry_commands[i].command, cmd) == 0) {
            const char *p = params != NULL && params[0] != '\0' ? params : NULL;
            return sl_telemetry_commands[i].handler(sl_telemetry_commands[i].context, cmd, p, d);
        }
    }
    return -ENOENT;
}

int sl_telemetry_register(const char *command, const char *help, sl_telemetry_handler handler, void *context) {
    if (sl_telemetry_command_count == SL_TELEMETRY_MAX_COMMANDS) return -ENOSPC;
    if (strlen(command) >= RTE_TEL_MAX_STRING_LEN) return -EINVAL;
    int i = sl_telemetry_command_count;
    strcpy(sl_telemetry_commands[i].command, command);
    sl_telemetry_commands[i].handler = handler;
    sl_telemetry_commands[i].context = context;
    int ret = rte_telemetry_register_cmd(command, sl_telemetry_dispatch, help);
    if (ret == 0) sl_telemetry_command_count = i + 1;
    return ret;
}

int sl_tel_start_dict(struct rte_tel_data *d) { return rte_tel_data_start_dict(d); }
int sl_tel_start_u64_array(struct rte_tel_data *d) { return rte_tel_data_start_array(d, RTE_TEL_U64_VAL); }
int sl_tel_start_string_array(struct rte_tel_data *d) { return rte_tel_data_start_array(d, RTE_TEL_STRING_VAL); }
int sl_tel_add_dict_u64(struct rte_tel_data *d, const char *name, uint64_t value) {
    return rte_tel_data_add_dict_u64(d, name, value);
}
int sl_tel_add_dict_string(struct rte_tel_data *d, const char *name, const char *value) {
    return rte_tel_data_add_dict_string(d, name, value);
}
int sl_tel_add_array_u64(struct rte_tel_data *d, uint64_t value) { return rte_tel_data_add_array_u64(d, value); }
int sl_tel_add_array_string(struct rte_tel_data *d, const char *value) { return rte_tel_data_add_array_string(d, value); }
struct rte_tel_data *sl_tel_alloc(void) { return rte_tel_data_alloc(); }
int sl_tel_add_dict_array(struct rte_tel_data *d, const char *name, struct rte_tel_data *child) {
    int ret = rte_tel_data_add_dict_container(d, name, child, 0);
    if (ret != 0) rte_tel_data_free(child);
    return ret;
}
