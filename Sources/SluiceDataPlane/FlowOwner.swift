import SluiceConntrack
import SluiceCore

/// What a flow-table entry refers to, decoded for the control plane (never per packet).
public struct FlowOwner: Sendable {
    /// Index into `services.services` of the snapshot that decoded it.
    public var serviceIndex: Int
    public var backendIndex: Int
    /// True for the reverse (backend → client) entry of a flow.
    public var isReverse: Bool
}

extension DataPlaneSnapshot {
    /// The positions of the service and backend whose stable ids `value` holds, as the pipeline
    /// wrote them (`FlowBinding`), and whether the entry is a reply-direction one. Nil when this
    /// snapshot has no such service or backend (the entry predates a change). A full-NAT return
    /// entry names its forward entry instead: its owner is that entry's, found in `flows`.
    public func owner(of value: FlowValue, zone: UInt16, flows: FlowTableView, now: UInt32) -> FlowOwner? {
        var value = value
        if zone == FlowBinding.fullNATReturnZone {
            guard let forward = flows.snapshot(slot: Int(value.backend), now: now),
                  forward.key.zone == FlowBinding.forwardZone else { return nil }
            value = forward.value
        }
        guard let s = services.index(id: FlowBinding.service(value)),
              let b = services.services[s].backendIndex(id: FlowBinding.backend(value)) else { return nil }
        return FlowOwner(serviceIndex: s, backendIndex: b, isReverse: zone != FlowBinding.forwardZone)
    }

    /// The value the pipeline stores for a flow of the service with stable id `service` to its
    /// backend with stable id `backend` (tests of the control plane insert flows with it).
    public static func flowValue(service: Int, backend: Int, vipPort: UInt16, ingress: Int) -> FlowValue {
        FlowBinding.value(service: service, backend: backend, vipPort: vipPort, ingress: ingress)
    }

    public static var forwardFlowZone: UInt16 { FlowBinding.forwardZone }
    public static var reverseFlowZone: UInt16 { FlowBinding.reverseZone }
    public static var fullNATReturnFlowZone: UInt16 { FlowBinding.fullNATReturnZone }
}
