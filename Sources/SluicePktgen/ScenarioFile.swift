import SluiceCore
import Yams

/// A scenario file: the traffic plan in YAML. Every key is optional; command-line flags given
/// on top override it. Example (docs/pktgen.md):
///
/// ```yaml
/// targets: ["192.0.2.10:80", "192.0.2.11:443"]
/// traffic: established        # syn | established | udp | handshake
/// flows: 100000
/// popularity: zipf            # uniform | zipf
/// zipf_exponent: 0.99
/// sizes: 64                   # a wire size (FCS included), "imix" or "smallest" (the default)
/// rate: 0                     # packets per second; 0 = as fast as the port takes them
/// duration: 5                 # seconds
/// packets: 0                  # 0 = no count bound
/// warmup: true                # send each flow once before measuring
/// concurrency: 512            # handshake: connections open at once at most (0 = no limit)
/// client_network: 203.0.113.0/24
/// dst_mac: "02:00:00:00:5e:10"
/// ```
public enum ScenarioFile {
    struct Document: Decodable {
        var targets: [String]?
        var traffic: String?
        var flows: Int?
        var popularity: String?
        var zipf_exponent: Double?
        var sizes: String?
        var rate: Double?
        var duration: Double?
        var packets: UInt64?
        var warmup: Bool?
        var concurrency: Int?
        var client_network: String?
        var dst_mac: String?
    }

    /// Applies the YAML text onto `plan`; an error names the key. `plan` is unchanged on error.
    public static func apply(_ text: String, to plan: inout TrafficPlan) throws(PlanError) {
        let document: Document
        do {
            document = try YAMLDecoder().decode(Document.self, from: text)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw PlanError(field: path.isEmpty ? "scenario" : path, reason: context.debugDescription)
        } catch {
            throw PlanError(field: "scenario", reason: "\(error)")
        }
        var updated = plan
        if let targets = document.targets { updated.targets = try parseTargets(targets, field: "targets") }
        if let traffic = document.traffic { updated.kind = try parseKind(traffic, field: "traffic") }
        if let flows = document.flows { updated.flows = flows }
        if let popularity = document.popularity {
            updated.popularity = try parsePopularity(popularity, exponent: document.zipf_exponent, field: "popularity")
        } else if let exponent = document.zipf_exponent {
            updated.popularity = .zipf(exponent: exponent)
        }
        if let sizes = document.sizes { updated.sizes = try parseSizes(sizes, field: "sizes") }
        if let rate = document.rate { updated.ratePPS = rate }
        if let duration = document.duration { updated.durationSeconds = duration }
        if let packets = document.packets { updated.packets = packets }
        if let warmup = document.warmup { updated.warmup = warmup }
        if let concurrency = document.concurrency { updated.concurrency = concurrency }
        if let network = document.client_network { try applyClientNetwork(network, to: &updated, field: "client_network") }
        if let mac = document.dst_mac { updated.destinationMAC = try parseMAC(mac, field: "dst_mac") }
        plan = updated
    }

    public static func parseTargets(_ texts: [String], field: String) throws(PlanError) -> [Target] {
        var targets: [Target] = []
        for (i, text) in texts.enumerated() {
            guard let target = Target(parsing: text) else {
                throw PlanError(field: "\(field)[\(i)]", reason: "'\(text)' is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)")
            }
            targets.append(target)
        }
        return targets
    }

    public static func parseKind(_ text: String, field: String) throws(PlanError) -> TrafficKind {
        guard let kind = TrafficKind(rawValue: text) else {
            throw PlanError(field: field, reason: "'\(text)' is not one of \(TrafficKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    public static func parsePopularity(_ text: String, exponent: Double?, field: String) throws(PlanError) -> Popularity {
        switch text {
        case "uniform": return .uniform
        case "zipf": return .zipf(exponent: exponent ?? 0.99)
        default: throw PlanError(field: field, reason: "'\(text)' is not uniform or zipf")
        }
    }

    public static func parseSizes(_ text: String, field: String) throws(PlanError) -> FrameSizes {
        if text == "imix" { return .imix }
        if text == "smallest" { return .smallest }
        guard let size = Int(text) else { throw PlanError(field: field, reason: "'\(text)' is not a frame size or imix") }
        return .fixed(size)
    }

    public static func applyClientNetwork(_ text: String, to plan: inout TrafficPlan, field: String) throws(PlanError) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let length = Int(parts[1]) else {
            throw PlanError(field: field, reason: "'\(text)' is not ADDRESS/PREFIX-LENGTH")
        }
        if let a = IPv4Address(String(parts[0])), (8...30).contains(length) {
            plan.clientNetwork4 = (IPv4Address(value: a.value & ~(UInt32.max >> UInt32(length))), length)
        } else if let a = IPv6Address(String(parts[0])), (64...126).contains(length) {
            plan.clientNetwork6 = (IPv6Address(high: a.high, low: 0), length)
        } else {
            throw PlanError(field: field, reason: "'\(text)' is not an IPv4 /8-/30 or IPv6 /64-/126 network")
        }
    }

    public static func parseMAC(_ text: String, field: String) throws(PlanError) -> MACAddress {
        guard let mac = MACAddress(text) else { throw PlanError(field: field, reason: "'\(text)' is not a MAC address") }
        return mac
    }
}
