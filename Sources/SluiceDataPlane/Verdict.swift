import SluiceCore

/// What the data plane did with a frame it transmits. Raw values index per-worker counters.
public enum TransmitAction: UInt8, CaseIterable, Sendable {
    case arpReply = 0
    case neighborAdvertisement
    case icmpEchoReply
    case icmpv6EchoReply
    /// A client packet rewritten (and encapsulated, for vxlan) towards its backend.
    case forwardToBackend
    /// A backend's reply rewritten back to come from the VIP, towards the client.
    case returnToClient
    /// ICMP fragmentation-needed / ICMPv6 packet-too-big sent to a client whose packet would not
    /// fit the encapsulation.
    case icmpTooBig
    /// An ICMP error about a balanced flow, rewritten and delivered to that flow's backend.
    case icmpErrorToBackend

    public var name: String {
        switch self {
        case .arpReply: "arp_reply"
        case .neighborAdvertisement: "neighbor_advertisement"
        case .icmpEchoReply: "icmp_echo_reply"
        case .icmpv6EchoReply: "icmpv6_echo_reply"
        case .forwardToBackend: "forward_to_backend"
        case .returnToClient: "return_to_client"
        case .icmpTooBig: "icmp_too_big"
        case .icmpErrorToBackend: "icmp_error_to_backend"
        }
    }
}

/// The outcome for one frame: transmit it (rewritten in the same buffer, possibly to a new
/// length) out of the port it came in on, or drop it for a counted reason.
public enum Verdict: Equatable, Sendable {
    case transmit(TransmitAction)
    case drop(DropReason)
}
