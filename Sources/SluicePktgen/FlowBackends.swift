/// Which backend each flow reached, checked on every returned packet: a consistent load
/// balancer sends every packet of a flow to the backend that got its first packet.
///
/// One 64-bit slot per flow (80 MB at 10M flows): 0 until the flow's first packet returns, then
/// the backend key (`ReturnedPacket.backend`, bit 48 set), with bit 63 set once the flow has
/// moved. Owned by the one receive loop; no synchronisation.
public struct FlowBackends: ~Copyable {
    public let slots: UnsafeMutablePointer<UInt64>
    public let flows: Int
    /// Flows that returned at least once.
    public private(set) var flowsSeen: Int = 0
    /// Flows with at least one packet at a backend other than their first one.
    public private(set) var movedFlows: Int = 0
    /// Packets that arrived at a backend other than their flow's first.
    public private(set) var movedPackets: UInt64 = 0
    /// The first moved flows (at most `examplesKept`): flow, first backend, later backend.
    public private(set) var movedExamples: [(flow: UInt32, first: UInt64, then: UInt64)] = []
    /// Flows per backend (by first backend), in the order backends were first seen.
    public private(set) var backends: [(key: UInt64, flows: Int)] = []
    public static let examplesKept = 10
    public static let movedBit: UInt64 = 1 << 63

    public init(flows: Int) {
        self.flows = flows
        slots = UnsafeMutablePointer<UInt64>.allocate(capacity: flows)
        slots.initialize(repeating: 0, count: flows)
    }

    deinit { slots.deallocate() }

    /// Records that a packet of `flow` (validated `< flows` by the classifier) reached `backend`.
    @inlinable @inline(__always)
    public mutating func record(flow: UInt32, backend: UInt64) {
        let slot = slots + Int(flow)
        let known = slot.pointee
        if known & ~FlowBackends.movedBit == backend { return }
        if known == 0 {
            firstSeen(slot, flow: flow, backend: backend)
        } else {
            moved(slot, flow: flow, known: known, backend: backend)
        }
    }

    @usableFromInline @inline(never)
    mutating func firstSeen(_ slot: UnsafeMutablePointer<UInt64>, flow: UInt32, backend: UInt64) {
        slot.pointee = backend
        flowsSeen += 1
        if let i = backends.firstIndex(where: { $0.key == backend }) {
            backends[i].flows += 1
        } else {
            backends.append((backend, 1))
        }
    }

    @usableFromInline @inline(never)
    mutating func moved(_ slot: UnsafeMutablePointer<UInt64>, flow: UInt32, known: UInt64, backend: UInt64) {
        movedPackets += 1
        if known & FlowBackends.movedBit == 0 {
            slot.pointee = known | FlowBackends.movedBit
            movedFlows += 1
            if movedExamples.count < FlowBackends.examplesKept {
                movedExamples.append((flow, known, backend))
            }
        }
    }

    /// Forgets which flows moved (not where they first went): counting starts again, e.g.
    /// across a backend change.
    public mutating func resetMoves() {
        for i in 0..<flows { slots[i] &= ~FlowBackends.movedBit }
        movedFlows = 0
        movedPackets = 0
        movedExamples = []
    }
}
