import SluiceCore

/// What the data plane did with a frame it transmits. Raw values index per-worker counters.
public enum TransmitAction: UInt8, CaseIterable, Sendable {
    case arpReply = 0
    case neighborAdvertisement
    case icmpEchoReply
    case icmpv6EchoReply

    public var name: String {
        switch self {
        case .arpReply: "arp_reply"
        case .neighborAdvertisement: "neighbor_advertisement"
        case .icmpEchoReply: "icmp_echo_reply"
        case .icmpv6EchoReply: "icmpv6_echo_reply"
        }
    }
}

/// The outcome for one frame: transmit it (rewritten in the same buffer, possibly to a new
/// length) out of the port it came in on, or drop it for a counted reason.
public enum Verdict: Equatable, Sendable {
    case transmit(TransmitAction)
    case drop(DropReason)
}
