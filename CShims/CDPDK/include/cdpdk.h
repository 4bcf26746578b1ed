/*
 * CDPDK: the only C that Swift sees of DPDK 22.11.
 *
 * Two halves:
 *  - per-packet calls: `static inline __attribute__((always_inline))` wrappers in this header.
 *    Swift's Clang importer emits them into the calling Swift module where LLVM inlines them,
 *    so the release worker loop contains no call to any `sl_*` function (tools/check-inlining.sh
 *    proves it). `rte_eth_rx_burst`/`rte_eth_tx_burst` become an indirect call through DPDK's
 *    fast-path ops table (`rte_eth_fp_ops`), exactly as in C; `rte_pktmbuf_free_bulk` is an
 *    exported library function in 22.11 and stays a call.
 *  - setup calls: out of line in cdpdk.c. They return 0 or a negative errno value that
 *    `sl_strerror` (rte_strerror) turns into text; nothing here aborts the process.
 *
 * `struct rte_mbuf` does not import into Swift (it arrives as `OpaquePointer`), so every mbuf
 * field Swift needs is reached through a helper here. Every exported symbol is prefixed `sl_`.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>

#define SL_ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- Layout that the Swift side relies on ------------------------------------------------ */

/* Swift prefetches the packet data, not the mbuf header: the header's first cache line (buf_addr,
 * data_off, data_len, pkt_len) is what rx burst just wrote, so it is already in L1. */
_Static_assert(sizeof(struct rte_mbuf) == 2 * RTE_CACHE_LINE_MIN_SIZE, "rte_mbuf is two cache lines");
_Static_assert(offsetof(struct rte_mbuf, data_len) < RTE_CACHE_LINE_MIN_SIZE, "data_len in line 0");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) < RTE_CACHE_LINE_MIN_SIZE, "pkt_len in line 0");
/* Swift passes lengths as UInt16 (data_len) and UInt32 (pkt_len). */
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_len) == sizeof(uint16_t), "data_len is 16 bits");
_Static_assert(sizeof(((struct rte_mbuf *)0)->pkt_len) == sizeof(uint32_t), "pkt_len is 32 bits");
_Static_assert(sizeof(((struct rte_mbuf *)0)->buf_len) == sizeof(uint16_t), "buf_len is 16 bits");
/* Port and queue ids cross into Swift as UInt16. */
_Static_assert(RTE_MAX_ETHPORTS <= UINT16_MAX, "port ids fit in 16 bits");
_Static_assert(sizeof(struct rte_ether_addr) == 6, "a MAC address is 6 bytes");

/* ---- Per-packet calls (always inline) ---------------------------------------------------- */

/** Receives up to `n` packets from `queue` of `port` into `pkts`; returns how many. */
SL_ALWAYS_INLINE uint16_t sl_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_rx_burst(port, queue, pkts, n);
}

/** Queues up to `n` packets on `queue` of `port`; returns how many the driver took. The caller
 *  still owns (and must free or retry) `pkts[result..<n]`. */
SL_ALWAYS_INLINE uint16_t sl_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_tx_burst(port, queue, pkts, n);
}

/** First byte of packet data in the first segment (rte_pktmbuf_mtod). */
SL_ALWAYS_INLINE void *sl_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

SL_ALWAYS_INLINE uint16_t sl_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
SL_ALWAYS_INLINE uint32_t sl_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
SL_ALWAYS_INLINE uint16_t sl_mbuf_segment_count(const struct rte_mbuf *m) { return m->nb_segs; }
SL_ALWAYS_INLINE void sl_mbuf_set_data_len(struct rte_mbuf *m, uint16_t len) { m->data_len = len; }
SL_ALWAYS_INLINE void sl_mbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len) { m->pkt_len = len; }

/** Sets both lengths of a single-segment packet (the only kind Sluice receives: RX scatter is
 *  never enabled and the data room holds a whole frame). */
SL_ALWAYS_INLINE void sl_mbuf_set_length(struct rte_mbuf *m, uint16_t len) {
    m->data_len = len;
    m->pkt_len = len;
}

/** Bytes writable from the data start to the end of the first segment's buffer: how far a
 *  reply built in place may grow. */
SL_ALWAYS_INLINE uint16_t sl_mbuf_capacity(const struct rte_mbuf *m) {
    return (uint16_t)(m->buf_len - m->data_off);
}

/** True when the port verified the IPv4 header checksum and found it good
 *  (RTE_MBUF_F_RX_IP_CKSUM_GOOD; only with RTE_ETH_RX_OFFLOAD_IPV4_CKSUM, else UNKNOWN). */
SL_ALWAYS_INLINE bool sl_mbuf_rx_ipv4_checksum_good(const struct rte_mbuf *m) {
    return (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
}

/** Asks the port to compute the IPv4 header checksum of the header `l2_len` bytes into the
 *  frame (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM; the field must hold 0). Only on a port
 *  configured with RTE_ETH_TX_OFFLOAD_IPV4_CKSUM. */
SL_ALWAYS_INLINE void sl_mbuf_offload_ipv4_checksum(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len) {
    m->l2_len = l2_len;
    m->l3_len = l3_len;
    m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_TX_OFFLOAD_MASK) | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
}

/** Bytes writable in front of the data (where VXLAN outer headers go). */
SL_ALWAYS_INLINE uint16_t sl_mbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

/** Moves the data start `len` bytes back (rte_pktmbuf_prepend): data_len and pkt_len grow by
 *  `len`. Returns the new data pointer, or NULL (mbuf untouched) without that much headroom. */
SL_ALWAYS_INLINE void *sl_mbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

/** Removes `len` bytes from the front of the data (rte_pktmbuf_adj); NULL if there are fewer. */
SL_ALWAYS_INLINE void *sl_mbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

SL_ALWAYS_INLINE void sl_prefetch0(const void *p) { rte_prefetch0(p); }

/** Returns `n` packets (any segments, any pools) to their pools. An exported function in DPDK
 *  22.11: the one call left in the worker loop, on the drop path only. */
SL_ALWAYS_INLINE void sl_mbuf_free_bulk(struct rte_mbuf **pkts, unsigned int n) { rte_pktmbuf_free_bulk(pkts, n); }
SL_ALWAYS_INLINE void sl_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

/** A fresh single-segment mbuf with default headroom, or NULL when the pool is empty. */
SL_ALWAYS_INLINE struct rte_mbuf *sl_mbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }
/** All `n` or none: 0 on success, a negative errno value when the pool has fewer. */
SL_ALWAYS_INLINE int sl_mbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **pkts, unsigned int n) {
    return rte_pktmbuf_alloc_bulk(pool, pkts, n);
}

SL_ALWAYS_INLINE uint64_t sl_rdtsc(void) { return rte_rdtsc(); }
SL_ALWAYS_INLINE void sl_pause(void) { rte_pause(); }

/* ---- Setup (out of line, cdpdk.c) -------------------------------------------------------- */

/** rte_eal_init. `argv` is kept by the EAL for the life of the process. Returns the number of
 *  arguments it consumed, or a negative errno value. */
int sl_eal_init(int argc, char **argv);
int sl_eal_cleanup(void);
/** rte_strerror of a (positive or negative) errno value, including DPDK's own codes. */
const char *sl_strerror(int error);
uint64_t sl_tsc_hz(void);

/* lcores */
typedef int (*sl_lcore_entry)(void *context);
unsigned int sl_main_lcore(void);
bool sl_lcore_is_enabled(unsigned int lcore);
unsigned int sl_lcore_socket(unsigned int lcore);
/** Runs `entry(context)` on worker `lcore` (rte_eal_remote_launch); 0 or a negative errno. */
int sl_lcore_launch(sl_lcore_entry entry, void *context, unsigned int lcore);
/** Waits for `lcore` to finish; returns its entry's return value (0 if it was not running). */
int sl_lcore_wait(unsigned int lcore);
/** True while `lcore` is running a launched function. */
bool sl_lcore_is_running(unsigned int lcore);

/* mempool */
/** A packet mbuf pool (rte_pktmbuf_pool_create); NULL on failure with `*error` set. */
struct rte_mempool *sl_pktmbuf_pool_create(const char *name, unsigned int mbufs, unsigned int cache_size,
                                           uint16_t data_room, int socket, int *error);
void sl_mempool_free(struct rte_mempool *pool);
unsigned int sl_mempool_available(const struct rte_mempool *pool);
unsigned int sl_mempool_in_use(const struct rte_mempool *pool);
/** Bytes of packet data per mbuf (data room minus headroom). */
uint16_t sl_mempool_frame_capacity(struct rte_mempool *pool);

/* ports */
#define SL_DRIVER_NAME_SIZE 48
#define SL_DEVICE_NAME_SIZE RTE_ETH_NAME_MAX_LEN

/** What Swift needs from rte_eth_dev_info and friends, flattened into an importable struct. */
struct sl_port_info {
    uint16_t port_id;
    uint16_t max_rx_queues;
    uint16_t max_tx_queues;
    uint16_t min_mtu;
    uint16_t max_mtu;
    uint16_t mtu;
    int32_t socket;                /* NUMA socket, or -1 when unknown (virtual devices) */
    uint32_t max_rx_frame;         /* max_rx_pktlen */
    uint64_t rss_hash_functions;   /* flow_type_rss_offloads */
    uint64_t tx_offloads;          /* tx_offload_capa */
    uint8_t mac[RTE_ETHER_ADDR_LEN];
    char driver[SL_DRIVER_NAME_SIZE];
    char name[SL_DEVICE_NAME_SIZE];
};

/** The port configuration Sluice applies: N RX and N TX queues, one pair per worker. */
struct sl_port_setup {
    uint16_t queues;
    uint16_t rx_descriptors;       /* requested; adjusted to the driver's limits */
    uint16_t tx_descriptors;
    uint16_t mtu;                  /* 0: leave the driver's default */
    bool rss;                      /* RSS over IP/TCP/UDP, intersected with what the port hashes */
    bool rx_interrupts;            /* intr_conf.rxq; retried without it if the driver refuses */
    bool tx_ipv4_checksum;         /* ask for RTE_ETH_TX_OFFLOAD_IPV4_CKSUM where the port has it */
    struct rte_mempool *pool;
};

/** What `sl_port_configure` actually did; on failure `failed_call` names the DPDK call. */
struct sl_port_setup_result {
    uint16_t rx_descriptors;
    uint16_t tx_descriptors;
    uint64_t rss_hash_functions;   /* 0: RSS off */
    bool rx_interrupts;
    bool fast_free;                /* RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE on */
    bool rx_ipv4_checksum;         /* RTE_ETH_RX_OFFLOAD_IPV4_CKSUM on: mbufs say GOOD / BAD */
    bool tx_ipv4_checksum;         /* RTE_ETH_TX_OFFLOAD_IPV4_CKSUM on */
    const char *failed_call;       /* static string, NULL on success */
    int failed_queue;              /* -1 unless a queue setup failed */
};

/** rte_eth_dev_get_port_by_name: 0 and `*port` set, or a negative errno value. */
int sl_port_by_name(const char *name, uint16_t *port);
int sl_port_info(uint16_t port, struct sl_port_info *info);
/** The kernel network interface `ifname`'s MTU (SIOCGIFMTU), or a negative errno value. The
 *  af_packet and af_xdp PMDs report DPDK's default (1500) until an MTU is set through them,
 *  whatever the interface they sit on has. */
int sl_kernel_interface_mtu(const char *ifname);
/** Configures the device, its MTU and every RX/TX queue. Does not start it. */
int sl_port_configure(uint16_t port, const struct sl_port_setup *setup, struct sl_port_setup_result *result);
int sl_port_set_mac(uint16_t port, const uint8_t mac[RTE_ETHER_ADDR_LEN]);
int sl_port_mac(uint16_t port, uint8_t mac[RTE_ETHER_ADDR_LEN]);
int sl_port_promiscuous_enable(uint16_t port);
int sl_port_start(uint16_t port);
int sl_port_stop(uint16_t port);
int sl_port_close(uint16_t port);

struct sl_link {
    uint32_t speed_mbps;           /* RTE_ETH_SPEED_NUM_* in Mb/s; 0 unknown */
    bool up;
    bool full_duplex;
    bool autoneg;
};
/** Current link state without waiting (rte_eth_link_get_nowait). */
int sl_port_link(uint16_t port, struct sl_link *link);

struct sl_port_stats {
    uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes;
    uint64_t rx_missed;            /* imissed: dropped by the device, RX ring full */
    uint64_t rx_errors, tx_errors;
    uint64_t rx_no_mbuf;           /* rx_nombuf: the pool ran dry */
};
int sl_port_stats(uint16_t port, struct sl_port_stats *stats);

/* RX interrupts (idle mode `interrupt`). The epoll instance is per thread: call these on the
 * worker's own lcore. */
/** True when the started port has an interrupt event fd for `queue` (the driver implements RX
 *  interrupts and they were requested at configure time). */
bool sl_rx_interrupt_available(uint16_t port, uint16_t queue);
/** Adds (or removes) `queue`'s interrupt to the calling thread's epoll set. */
int sl_rx_interrupt_register(uint16_t port, uint16_t queue, bool add);
int sl_rx_interrupt_enable(uint16_t port, uint16_t queue);
int sl_rx_interrupt_disable(uint16_t port, uint16_t queue);
/** Waits up to `timeout_ms` on the calling thread's epoll set; returns events seen (0 on
 *  timeout) or a negative errno value. Events are only wake-ups: the caller then polls. */
int sl_rx_interrupt_wait(int timeout_ms);

/* ---- RCU (rte_rcu_qsbr): quiescent-state reclamation of snapshots ------------------------- */

/** A QSBR variable for `max_threads` readers (the workers), zeroed, cache aligned; NULL on failure. */
struct rte_rcu_qsbr *sl_rcu_create(uint32_t max_threads);
void sl_rcu_free(struct rte_rcu_qsbr *v);
/** Adds / removes reader `id` (0 ..< max_threads); 0 or a negative errno. */
int sl_rcu_register(struct rte_rcu_qsbr *v, unsigned int id);
int sl_rcu_unregister(struct rte_rcu_qsbr *v, unsigned int id);

/** Writer: a token for "everything published before now" (rte_rcu_qsbr_start). */
SL_ALWAYS_INLINE uint64_t sl_rcu_start(struct rte_rcu_qsbr *v) { return rte_rcu_qsbr_start(v); }
/** Writer: true once every online reader has passed a quiescent state since `token` was taken.
 *  Never waits (rte_rcu_qsbr_check with wait = false). */
SL_ALWAYS_INLINE bool sl_rcu_passed(struct rte_rcu_qsbr *v, uint64_t token) { return rte_rcu_qsbr_check(v, token, false) == 1; }

/** Reader: "I hold no reference to anything published before now" (a release store of the
 *  current token). Called once per worker-loop iteration. */
SL_ALWAYS_INLINE void sl_rcu_quiescent(struct rte_rcu_qsbr *v, unsigned int id) {
    rte_rcu_qsbr_quiescent(v, id);
}
/** Reader going to sleep (writers stop waiting for it) / waking (it reads afresh after this). */
SL_ALWAYS_INLINE void sl_rcu_offline(struct rte_rcu_qsbr *v, unsigned int id) { rte_rcu_qsbr_thread_offline(v, id); }
SL_ALWAYS_INLINE void sl_rcu_online(struct rte_rcu_qsbr *v, unsigned int id) { rte_rcu_qsbr_thread_online(v, id); }

/* Telemetry (out of line, cdpdk.c): commands of Sluice's own on the EAL's telemetry socket
 * (`/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2`), answered on DPDK's telemetry thread. */
struct rte_tel_data;

/** Fills `data` for one request of `command`; `params` is the text after the comma, NULL when
 *  there is none. Returns 0, or a negative errno value (the client then reads `null`). */
typedef int (*sl_telemetry_handler)(void *context, const char *command, const char *params,
                                    struct rte_tel_data *data);

/** Commands `sl_telemetry_register` can hold. */
#define SL_TELEMETRY_MAX_COMMANDS 8

/** Registers `command` (rte_telemetry_register_cmd) to call `handler(context, …)`. Call from
 *  the main lcore before the command can be requested; commands cannot be unregistered, so
 *  `context` must stay valid for the life of the process. 0, -ENOSPC when the table is full,
 *  -EINVAL for a name DPDK refuses, or rte_telemetry_register_cmd's error. */
int sl_telemetry_register(const char *command, const char *help, sl_telemetry_handler handler, void *context);

/* Building a reply (rte_tel_data_*): each returns 0 or a negative errno value. */
int sl_tel_start_dict(struct rte_tel_data *d);
int sl_tel_start_u64_array(struct rte_tel_data *d);
int sl_tel_start_string_array(struct rte_tel_data *d);
int sl_tel_add_dict_u64(struct rte_tel_data *d, const char *name, uint64_t value);
int sl_tel_add_dict_string(struct rte_tel_data *d, const char *name, const char *value);
int sl_tel_add_array_u64(struct rte_tel_data *d, uint64_t value);
int sl_tel_add_array_string(struct rte_tel_data *d, const char *value);
/** A container for one array nested in a dict; NULL when out of memory. */
struct rte_tel_data *sl_tel_alloc(void);
/** Adds `child` (an array) under `name`; the library frees it after the reply is sent. On
 *  failure `child` is freed here. */
int sl_tel_add_dict_array(struct rte_tel_data *d, const char *name, struct rte_tel_data *child);
