import CDPDK
import SluiceCore
import SluiceDataPlane

/// Announcements sent when Sluice takes its VIPs over: a gratuitous ARP (RFC 5227 §2.3 ARP
/// Announcement) per IPv4 VIP and an unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) per
/// IPv6 VIP, each from the MAC that answers for the VIP, so switches and neighbours update
/// their tables at once instead of waiting for entries to expire.
public enum Announcer {
    public struct Report: Sendable {
        public var sent = 0
        /// Frames not sent: no mbuf, no room to build, or the TX queue was full.
        public var failed = 0
    }

    /// Builds and transmits the announcements for `owned` on TX queue `queue` of `port`.
    ///
    /// TX queues are not thread-safe: call this only on the thread that owns `queue`, i.e. on
    /// the main lcore before the workers launch (worker 0 owns queue 0 afterwards).
    public static func announce(_ owned: OwnedAddresses, on port: Port, queue: UInt16, pool: Mempool) -> Report {
        announce(owned, portID: port.id, queue: queue, pool: pool)
    }

    @inline(never)
    public static func announce(_ owned: OwnedAddresses, portID: UInt16, queue: UInt16, pool: Mempool) -> Report {
        var report = Report()
        var batch = [OpaquePointer?]()
        batch.reserveCapacity(WorkerLoop.burstSize)

        func build(_ write: (UnsafeMutableRawPointer, Int) -> Int) {
            guard let m = sl_mbuf_alloc(pool.pointer) else { report.failed += 1; return }
            // Safe: a fresh mbuf's data pointer is valid for `capacity` bytes.
            let length = write(sl_mbuf_data(m), Int(sl_mbuf_capacity(m)))
            guard length > 0 else { sl_mbuf_free(m); report.failed += 1; return }
            sl_mbuf_set_length(m, UInt16(length))
            batch.append(m)
            if batch.count == WorkerLoop.burstSize { transmit() }
        }
        func transmit() {
            guard !batch.isEmpty else { return }
            let count = batch.count
            let sent = batch.withUnsafeMutableBufferPointer { buffer in
                let sent = Int(sl_tx_burst(portID, queue, buffer.baseAddress, UInt16(count)))
                // Safe: the driver took ownership of buffer[0..<sent]; the rest are still ours.
                if sent < count { sl_mbuf_free_bulk(buffer.baseAddress! + sent, UInt32(count - sent)) }
                return sent
            }
            report.sent += sent
            report.failed += count - sent
            batch.removeAll(keepingCapacity: true)
        }

        for (address, mac) in owned.ipv4Addresses {
            build { ARPPacket.writeAnnouncement($0, capacity: $1, mac: mac, address: address) }
        }
        for (address, mac) in owned.ipv6Addresses {
            build { NeighborDiscovery.writeUnsolicitedAdvertisement($0, capacity: $1, mac: mac, address: address) }
        }
        transmit()
        return report
    }
}
