/// Why a packet was dropped: the one list of drop reasons in Sluice (BRIEF, hot-path rule 4).
///
/// Raw values index the per-worker drop counters, so they are dense from 0 and never reused;
/// add new reasons at the end. `name` is the stable label used in counters and metrics.
public enum DropReason: UInt8, CaseIterable, Sendable {
    // Link layer
    case truncatedEthernet = 0
    case truncatedVLAN
    case tooManyVLANTags
    case unsupportedEtherType
    case foreignDestinationMAC
    // ARP (RFC 826)
    case truncatedARP
    case unsupportedARPFormat
    case arpNotRequest
    case arpNotForOwnedAddress
    // IPv4 (RFC 791)
    case truncatedIPv4
    case badIPVersion
    case badIPv4HeaderLength
    case badIPv4TotalLength
    case badIPv4Checksum
    case badIPv4Options
    case badIPv4Fragment
    // IPv6 (RFC 8200)
    case truncatedIPv6
    case badIPv6PayloadLength
    case truncatedIPv6ExtensionHeader
    case badIPv6ExtensionHeader
    // Transport
    case truncatedTCP
    case badTCPHeaderLength
    case truncatedUDP
    case badUDPLength
    case truncatedSCTP
    case badSCTPChecksum
    case truncatedICMP
    case truncatedICMPv6
    case badNeighborSolicitation
    // Dispatch
    case notOwnedAddress
    case noService
    case unsupportedICMPType
    case fragmentNotHandled
    case bufferTooSmall
    case transmitQueueFull
    // Load balancing
    case noBackend
    case neighborUnresolved
    case noRoute
    case ttlExceeded
    case unsupportedSCTPRewrite
    case badVXLAN
    /// full-NAT: no free (source address, port) towards the backend in the probe window, or no
    /// room in the flow table (a full-NAT flow cannot be forwarded without its return mapping).
    case noSourcePort
    /// Bigger than the egress port's MTU, and no ICMP "too big" could be sent about it (a later
    /// IPv4 fragment, an ICMP error, a tunnelled reply, a link-layer multicast sender, no address
    /// of ours to send it from).
    case packetTooBig
    /// An ICMP error sluiced would have sent (too big) found the worker's budget for this second
    /// spent (`workers.icmp_errors_per_second`): the packet is dropped without it.
    case icmpRateLimited

    /// Stable snake_case label for counters, logs and metrics.
    public var name: String {
        switch self {
        case .truncatedEthernet: "truncated_ethernet"
        case .truncatedVLAN: "truncated_vlan"
        case .tooManyVLANTags: "too_many_vlan_tags"
        case .unsupportedEtherType: "unsupported_ethertype"
        case .foreignDestinationMAC: "foreign_destination_mac"
        case .truncatedARP: "truncated_arp"
        case .unsupportedARPFormat: "unsupported_arp_format"
        case .arpNotRequest: "arp_not_request"
        case .arpNotForOwnedAddress: "arp_not_for_owned_address"
        case .truncatedIPv4: "truncated_ipv4"
        case .badIPVersion: "bad_ip_version"
        case .badIPv4HeaderLength: "bad_ipv4_header_length"
        case .badIPv4TotalLength: "bad_ipv4_total_length"
        case .badIPv4Checksum: "bad_ipv4_checksum"
        case .badIPv4Options: "bad_ipv4_options"
        case .badIPv4Fragment: "bad_ipv4_fragment"
        case .truncatedIPv6: "truncated_ipv6"
        case .badIPv6PayloadLength: "bad_ipv6_payload_length"
        case .truncatedIPv6ExtensionHeader: "truncated_ipv6_extension_header"
        case .badIPv6ExtensionHeader: "bad_ipv6_extension_header"
        case .truncatedTCP: "truncated_tcp"
        case .badTCPHeaderLength: "bad_tcp_header_length"
        case .truncatedUDP: "truncated_udp"
        case .badUDPLength: "bad_udp_length"
        case .truncatedSCTP: "truncated_sctp"
        case .badSCTPChecksum: "bad_sctp_checksum"
        case .truncatedICMP: "truncated_icmp"
        case .truncatedICMPv6: "truncated_icmpv6"
        case .badNeighborSolicitation: "bad_neighbor_solicitation"
        case .notOwnedAddress: "not_owned_address"
        case .noService: "no_service"
        case .unsupportedICMPType: "unsupported_icmp_type"
        case .fragmentNotHandled: "fragment_not_handled"
        case .bufferTooSmall: "buffer_too_small"
        case .transmitQueueFull: "transmit_queue_full"
        case .noBackend: "no_backend"
        case .neighborUnresolved: "neighbor_unresolved"
        case .noRoute: "no_route"
        case .ttlExceeded: "ttl_exceeded"
        case .unsupportedSCTPRewrite: "unsupported_sctp_rewrite"
        case .badVXLAN: "bad_vxlan"
        case .noSourcePort: "no_source_port"
        case .packetTooBig: "packet_too_big"
        case .icmpRateLimited: "icmp_rate_limited"
        }
    }

    public init?(name: String) {
        guard let match = DropReason.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}
