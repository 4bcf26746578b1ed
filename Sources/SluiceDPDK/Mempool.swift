import CDPDK

/// A pool of packet buffers (rte_pktmbuf_pool_create) shared by every port's RX queues.
///
/// One pool serves all ports and workers, so every mbuf has the same pool and refcount 1 when
/// transmitted: the precondition for RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE. Each lcore keeps a
/// per-lcore cache of `cacheSize` mbufs, so allocation and free touch the shared ring only in
/// bulk. The pool lives until `release()`, which must come after every port using it is closed.
public final class Mempool: @unchecked Sendable {
    // Safe (@unchecked Sendable): `pointer` never changes; DPDK's mempool is thread-safe for
    // get/put from any lcore, and `release` is called once, after all users stopped.
    public let name: String
    public let pointer: OpaquePointer
    public let mbufs: Int

    /// - Parameters:
    ///   - dataRoom: bytes per mbuf buffer including RTE_PKTMBUF_HEADROOM (DPDK's default is 2176).
    ///   - socket: NUMA socket to allocate on; -1 (SOCKET_ID_ANY) for any.
    public init(name: String, mbufs: Int, cacheSize: Int, dataRoom: Int, socket: Int32) throws(DPDKError) {
        let subject = "mempool \(name)"
        guard mbufs > 0, mbufs <= Int(UInt32.max) else {
            throw DPDKError(subject: subject, operation: "mbufs", reason: "\(mbufs) is not a valid mbuf count")
        }
        guard cacheSize >= 0, cacheSize <= Int(RTE_MEMPOOL_CACHE_MAX_SIZE) else {
            throw DPDKError(subject: subject, operation: "cache size",
                            reason: "\(cacheSize) exceeds RTE_MEMPOOL_CACHE_MAX_SIZE (\(RTE_MEMPOOL_CACHE_MAX_SIZE))")
        }
        guard dataRoom > Int(RTE_PKTMBUF_HEADROOM), dataRoom <= Int(UInt16.max) else {
            throw DPDKError(subject: subject, operation: "data room",
                            reason: "\(dataRoom) must exceed the \(RTE_PKTMBUF_HEADROOM)-byte headroom and fit in 16 bits")
        }
        var error: Int32 = 0
        guard let pool = sl_pktmbuf_pool_create(name, UInt32(mbufs), UInt32(cacheSize), UInt16(dataRoom),
                                                socket, &error) else {
            throw DPDKError(subject: subject, operation: "rte_pktmbuf_pool_create(\(mbufs) mbufs of \(dataRoom) bytes)",
                            code: error)
        }
        self.name = name
        self.pointer = pool
        self.mbufs = mbufs
    }

    /// Bytes of frame one mbuf holds (data room minus headroom): the largest frame Sluice can
    /// receive, since RX scatter is never enabled.
    public var frameCapacity: Int { Int(sl_mempool_frame_capacity(pointer)) }
    public var available: Int { Int(sl_mempool_available(pointer)) }
    public var inUse: Int { Int(sl_mempool_in_use(pointer)) }

    /// Frees the pool. Only after every port whose queues hold its mbufs has been closed.
    public func release() { sl_mempool_free(pointer) }
}
