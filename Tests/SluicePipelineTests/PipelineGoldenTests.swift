import SluiceTestSupport
import Foundation
import Testing
import SluiceCore
import SluiceConfig
import SluiceConntrack
import SluiceDataPlane

/// Katran-style golden scenarios for the load-balancing pipeline: a sluiced configuration, then
/// frames through `PacketPipeline.process` one after another over one flow table and one neighbor
/// table, each with its exact expected verdict, egress port, output bytes and counters. The
/// fixtures come from `tools/fixtures/pipeline.py` (scapy); the file format is described there.
@Suite("Pipeline golden scenarios")
struct PipelineGoldenTests {
    /// Room in front of every frame (VXLAN prepends 50 or 70 bytes) and after its start. A
    /// decapsulated frame starts after the input's start (`PacketOutput.prepended` < 0).
    static let headroom = 128
    static let capacity = 2048
    /// The flow table's capacity unless a scenario names one.
    static let flowCapacity = 4096

    /// The outcomes that only the load-balancing pipeline produces. Each must appear in some
    /// fixture, or be listed in `notCovered` with the reason.
    static let loadBalancingDrops: Set<DropReason> = [.noBackend, .neighborUnresolved, .noRoute, .ttlExceeded,
                                                      .unsupportedSCTPRewrite, .badVXLAN, .noSourcePort, .packetTooBig,
                                                      .icmpRateLimited]
    static let loadBalancingActions: Set<TransmitAction> = [.forwardToBackend, .returnToClient, .icmpTooBig,
                                                            .icmpErrorToBackend]
    static let notCovered: [String: String] = [:]

    @Test("the scenario file loads, is substantial and consistent")
    func scenariosLoad() throws {
        let scenarios = try PipelineFixtures.load()
        #expect(scenarios.count >= 10)
        #expect(Set(scenarios.map(\.description)).count == scenarios.count, "scenario descriptions must be unique")
        let known = Set(DropReason.allCases.map { "drop:\($0.name)" } + TransmitAction.allCases.map { "transmit:\($0.name)" })
        for scenario in scenarios {
            #expect(Set(scenario.steps.map(\.description)).count == scenario.steps.count, "\(scenario.description)")
            for (i, step) in scenario.steps.enumerated() {
                let at = "\(scenario.description) / \(step.description)"
                #expect(known.contains(step.verdict), "\(at): unknown verdict \(step.verdict)")
                #expect((step.input != nil) != (step.inputs != nil), "\(at): exactly one of input / inputs")
                #expect(step.verdict.hasPrefix("transmit:") == (step.output != nil || step.outputs != nil), "\(at)")
                if let k = step.choiceFromStep { #expect(k < i, "\(at): choice_from_step must name an earlier step") }
                if step.outputs != nil { #expect(step.referenceChoice != nil || step.choiceFromStep != nil, "\(at)") }
                for mask in step.masks ?? [] {
                    #expect(PipelineFixtures.checks.contains(mask.check), "\(at): unknown mask check \(mask.check)")
                    if let k = mask.sameAsStep { #expect(k < i, "\(at)") }
                }
                for name in (step.counters ?? [:]).keys {
                    #expect(Counter.allCases.contains { $0.name == name }, "\(at): unknown counter \(name)")
                }
            }
        }
    }

    /// Every scenario twice: reverse entries inserted at once, and kept back as the worker keeps
    /// them (`DeferredReverseEntries`), committed after each frame as at the end of a burst.
    @Test("golden scenario", arguments: PipelineFixtures.scenarios, [false, true])
    func scenario(_ scenario: PipelineScenario, deferReverseEntries: Bool) throws {
        let config = try SluicedConfig.parse(yaml: scenario.config, file: "pipeline.json")
        let macs = try scenario.portMACs.map { text in try #require(MACAddress(text), "port MAC \(text)") }
        let snapshot = try config.makeSnapshot(portMACs: macs, file: "pipeline.json")
        let neighbors = NeighborTable(capacity: 256)
        for n in scenario.neighbors {
            let mac = try #require(MACAddress(n.mac), "neighbor MAC \(n.mac)")
            if let a = IPv4Address(n.address) {
                neighbors.learn(ipv4: a.value, mac: mac, now: scenario.now)
            } else {
                neighbors.learn(try #require(IPv6Address(n.address), "neighbor \(n.address)"), mac: mac, now: scenario.now)
            }
        }
        let flows = try FlowTable(capacity: scenario.flowCapacity ?? Self.flowCapacity)
        let counters = WorkerCounters()
        let fragments = FragmentTable(capacity: 64)
        // The context holds its tables unretained: keep them alive to the end of the scenario.
        defer { withExtendedLifetime((snapshot, neighbors, flows, counters, fragments)) {} }
        var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: flows.view,
                                      counters: counters, now: scenario.now, fragments: fragments)
        context.limitICMPErrors(perSecond: config.workers.icmpErrorsPerSecond)
        let deferred = UnsafeMutablePointer<DeferredReverseEntries>.allocate(capacity: 1)
        deferred.initialize(to: DeferredReverseEntries(capacity: 32))
        defer {
            deferred.deinitialize(count: 1)
            deferred.deallocate()
        }
        if deferReverseEntries { context.deferredReverse = deferred }
        // Per step: which candidate (backend) the output matched, and the masked bytes as sent.
        var choices: [Int?] = []
        var maskedBytes: [[Int: [UInt8]]] = []
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.headroom + Self.capacity, alignment: 64)
        defer { buffer.deallocate() }

        for (index, step) in scenario.steps.enumerated() {
            choices.append(nil)
            maskedBytes.append([:])
            let at = "\(scenario.description) / step \(index): \(step.description)"
            let input: [UInt8]
            if let hex = step.input {
                input = Hex.decode(hex)
            } else {
                let k = try #require(step.choiceFromStep, "\(at): inputs without choice_from_step")
                let choice = try #require(choices[k], "\(at): step \(k) chose no backend")
                input = Hex.decode(try #require(step.inputs?[choice], "\(at): no input \(choice)"))
            }
            try #require(input.count <= Self.capacity)
            buffer.initializeMemory(as: UInt8.self, repeating: 0xA5, count: Self.headroom + Self.capacity)
            let p = buffer + Self.headroom
            input.withUnsafeBytes { src in
                if let base = src.baseAddress { p.copyMemory(from: base, byteCount: input.count) }
            }
            var length = input.count
            var output = PacketOutput(port: step.ingress)
            let verdict = PacketPipeline.process(p, length: &length, capacity: Self.capacity, headroom: Self.headroom,
                                                 ingress: step.ingress, output: &output, context: &context)
            PacketPipeline.commitDeferred(&context)
            let scapy = step.scapy ?? step.scapyInputs?.joined(separator: " | ") ?? ""
            #expect(verdict.pipelineFixtureName == step.verdict, "\(at)\nscapy: \(scapy)")

            if case .transmit = verdict, step.verdict.hasPrefix("transmit:") {
                #expect(output.port == step.egress, "\(at): egress port")
                // The frame starts `prepended` bytes before p: in the headroom when outer headers were
                // prepended (VXLAN encapsulation), inside the input frame when they were stripped
                // (decapsulation, prepended < 0: the frame then lies within the input's bytes).
                let start = Self.headroom - output.prepended
                try #require(output.prepended <= Self.headroom, "\(at): prepended \(output.prepended)")
                try #require(length >= 0 && start + length <= Self.headroom + Self.capacity, "\(at): length \(length)")
                if output.prepended < 0 {
                    try #require(-output.prepended + length <= input.count,
                                 "\(at): stripped \(-output.prepended) bytes, \(length) left, of a \(input.count)-byte input")
                }
                let actual = [UInt8](UnsafeRawBufferPointer(start: buffer + start, count: length))
                let masks = step.masks ?? []
                let candidates = (step.output.map { [$0] } ?? step.outputs ?? []).map(Hex.decode)
                let matched = candidates.firstIndex { PipelineHex.equal($0, actual, ignoring: masks) }
                if let matched {
                    choices[index] = matched
                } else {
                    let diffs = candidates.enumerated().map { i, expected in
                        "candidate \(i):\n" + PipelineHex.diff(expected: expected, actual: actual, masks: masks)
                    }.joined(separator: "\n")
                    Issue.record("\(at): output matches no expected frame\n\(diffs)\nscapy: \(scapy)")
                }
                if let reference = step.referenceChoice, let matched {
                    #expect(matched == reference,
                            "\(at): Maglev sent the flow to backend \(matched), tools/maglev/reference.py predicts \(reference)")
                }
                if step.outputs != nil, let k = step.choiceFromStep, let matched {
                    #expect(matched == choices[k], "\(at): backend \(matched), but step \(k)'s flow went to \(String(describing: choices[k]))")
                }
                for mask in masks {
                    guard mask.offset >= 0, mask.offset + mask.length <= actual.count else {
                        Issue.record("\(at): mask \(mask.field) outside the frame")
                        continue
                    }
                    let bytes = Array(actual[mask.offset..<mask.offset + mask.length])
                    maskedBytes[index][mask.offset] = bytes
                    if let problem = PipelineFixtures.check(mask, bytes: bytes, frame: actual) {
                        Issue.record("\(at): \(mask.field): \(problem)")
                    }
                    if let k = mask.sameAsStep {
                        #expect(maskedBytes[k][mask.offset] == bytes,
                                "\(at): \(mask.field) \(Hex.encode(bytes)) differs from step \(k)'s")
                    }
                }
            } else {
                #expect(length == input.count, "\(at): a dropped frame keeps its length")
                #expect(output.prepended == 0, "\(at): a dropped frame gets nothing prepended")
            }
            for (name, value) in (step.counters ?? [:]).sorted(by: { $0.key < $1.key }) {
                let counter = try #require(Counter.allCases.first { $0.name == name }, "\(at): unknown counter \(name)")
                #expect(counters.read(counter) == value, "\(at): counter \(name) is \(counters.read(counter)), expected \(value)")
            }
        }
        withExtendedLifetime((snapshot, neighbors, flows, counters)) {}
    }

    @Test("every load-balancing DropReason and TransmitAction has a golden scenario")
    func everyLoadBalancingOutcomeIsCovered() {
        let verdicts = Set(PipelineFixtures.scenarios.flatMap { $0.steps.map(\.verdict) })
        for reason in Self.loadBalancingDrops {
            let covered = verdicts.contains("drop:\(reason.name)")
            let listed = Self.notCovered["drop:\(reason.name)"] != nil
            #expect(covered != listed, "drop:\(reason.name): covered \(covered), listed as not covered \(listed)")
        }
        for action in Self.loadBalancingActions {
            let covered = verdicts.contains("transmit:\(action.name)")
            let listed = Self.notCovered["transmit:\(action.name)"] != nil
            #expect(covered != listed, "transmit:\(action.name): covered \(covered), listed as not covered \(listed)")
        }
        // Reasons added after the responder's set belong to the load-balancing pipeline: a new one
        // must join the list above (and get a scenario).
        for reason in DropReason.allCases where reason.rawValue > DropReason.transmitQueueFull.rawValue {
            #expect(Self.loadBalancingDrops.contains(reason), "\(reason.name) is not in loadBalancingDrops")
        }
    }
}

// MARK: - Fixture file

/// One scenario of `Tests/Fixtures/pipeline.json`.
struct PipelineScenario: Decodable, Sendable, CustomStringConvertible {
    struct Neighbor: Decodable, Sendable {
        var address: String
        var mac: String
    }

    struct Mask: Decodable, Sendable {
        var offset: Int
        var length: Int
        var field: String
        var check: String
        var header: Int?
        var sameAsStep: Int?

        enum CodingKeys: String, CodingKey {
            case offset, length, field, check, header
            case sameAsStep = "same_as_step"
        }
    }

    struct Step: Decodable, Sendable {
        var description: String
        var ingress: Int
        var scapy: String?
        var input: String?
        var scapyInputs: [String]?
        var inputs: [String]?
        var choiceFromStep: Int?
        var verdict: String
        var egress: Int?
        var scapyOutput: String?
        var output: String?
        var scapyOutputs: [String]?
        var outputs: [String]?
        var referenceChoice: Int?
        var masks: [Mask]?
        var counters: [String: UInt64]?

        enum CodingKeys: String, CodingKey {
            case description, ingress, scapy, input, inputs, verdict, egress, output, outputs, masks, counters
            case scapyInputs = "scapy_inputs"
            case choiceFromStep = "choice_from_step"
            case scapyOutput = "scapy_output"
            case scapyOutputs = "scapy_outputs"
            case referenceChoice = "reference_choice"
        }
    }

    var description: String
    var config: String
    var portMACs: [String]
    var neighbors: [Neighbor]
    var now: UInt32
    /// The flow table's capacity when not the default (a scenario that fills it).
    var flowCapacity: Int?
    var steps: [Step]

    enum CodingKeys: String, CodingKey {
        case description, config, neighbors, now, steps
        case portMACs = "port_macs"
        case flowCapacity = "flow_capacity"
    }
}

enum PipelineFixtures {
    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
        .appendingPathComponent("pipeline.json")

    static func load() throws -> [PipelineScenario] {
        try JSONDecoder().decode([PipelineScenario].self, from: Data(contentsOf: url))
    }

    /// All scenarios, or none if the file is missing or malformed (`scenariosLoad` fails then).
    static let scenarios: [PipelineScenario] = (try? load()) ?? []

    static let checks: Set<String> = ["any", "ipv4_header_checksum", "vxlan_source_port", "udp_ipv6_checksum"]

    /// Checks masked bytes by their meaning; nil when they are right. The checksums are verified
    /// here with a plain RFC 1071 sum, independent of SluiceCore.
    static func check(_ mask: PipelineScenario.Mask, bytes: [UInt8], frame: [UInt8]) -> String? {
        switch mask.check {
        case "any":
            return nil
        case "vxlan_source_port":
            guard bytes.count == 2 else { return "not 2 bytes" }
            let port = Int(bytes[0]) << 8 | Int(bytes[1])
            return (49152...65535).contains(port) ? nil : "\(port) is outside 49152-65535 (RFC 7348 §5)"
        case "ipv4_header_checksum":
            guard let h = mask.header, h < frame.count else { return "no header offset" }
            let headerLength = Int(frame[h] & 0x0F) * 4
            guard h + headerLength <= frame.count else { return "header past the frame" }
            let sum = onesComplementSum(frame[h..<h + headerLength])
            return sum == 0xFFFF ? nil : "IPv4 header sums to 0x\(String(sum, radix: 16)), not 0xffff"
        case "udp_ipv6_checksum":
            guard let h = mask.header, h + 48 <= frame.count else { return "no header offset" }
            let udp = h + 40
            let udpLength = Int(frame[udp + 4]) << 8 | Int(frame[udp + 5])
            guard udpLength >= 8, udp + udpLength <= frame.count else { return "UDP length \(udpLength) past the frame" }
            guard bytes != [0, 0] else { return "zero UDP checksum over IPv6" }
            var pseudo = Array(frame[h + 8..<h + 40])                    // source, destination
            pseudo += [0, 0, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0, 0, 17]
            let sum = onesComplementSum(pseudo + frame[udp..<udp + udpLength])
            return sum == 0xFFFF ? nil : "UDP over IPv6 sums to 0x\(String(sum, radix: 16)), not 0xffff"
        default:
            return "unknown check \(mask.check)"
        }
    }

    static func onesComplementSum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var sum: UInt32 = 0
        var high: UInt8? = nil
        for b in bytes {
            if let h = high {
                sum += UInt32(h) << 8 | UInt32(b)
                high = nil
            } else {
                high = b
            }
        }
        if let h = high { sum += UInt32(h) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum
    }
}

enum PipelineHex {
    static func isMasked(_ offset: Int, _ masks: [PipelineScenario.Mask]) -> Bool {
        masks.contains { offset >= $0.offset && offset < $0.offset + $0.length }
    }

    /// Equal lengths, and equal bytes outside the masks.
    static func equal(_ expected: [UInt8], _ actual: [UInt8], ignoring masks: [PipelineScenario.Mask]) -> Bool {
        guard expected.count == actual.count else { return false }
        for i in 0..<expected.count where expected[i] != actual[i] && !isMasked(i, masks) { return false }
        return true
    }

    /// Side-by-side hex, 16 bytes a line, differing lines marked `!`, masked bytes shown as `..`
    /// on the expected side.
    static func diff(expected: [UInt8], actual: [UInt8], masks: [PipelineScenario.Mask]) -> String {
        let firstDiff = (0..<min(expected.count, actual.count)).first { expected[$0] != actual[$0] && !isMasked($0, masks) }
            ?? (expected.count == actual.count ? nil : min(expected.count, actual.count))
        var lines = ["expected \(expected.count) bytes, got \(actual.count) bytes"
            + (firstDiff.map { "; first difference at offset \($0) (0x\(String($0, radix: 16)))" } ?? "")]
        for row in 0..<(max(expected.count, actual.count) + 15) / 16 {
            let range = row * 16..<(row * 16 + 16)
            let e = range.map { $0 < expected.count ? (isMasked($0, masks) ? ".." : Hex.encode([expected[$0]])) : "  " }
            let a = range.map { $0 < actual.count ? Hex.encode([actual[$0]]) : "  " }
            let same = range.allSatisfy { i in
                (i < expected.count) == (i < actual.count) && (i >= expected.count || isMasked(i, masks) || expected[i] == actual[i])
            }
            let offset = String(row * 16, radix: 16)
            lines.append("\(same ? " " : "!")\(String(repeating: "0", count: max(0, 4 - offset.count)))\(offset) "
                + e.joined(separator: " ") + "  " + a.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}

extension Verdict {
    /// The fixture spelling: `transmit:<action>` or `drop:<reason>`.
    var pipelineFixtureName: String {
        switch self {
        case .transmit(let action): "transmit:\(action.name)"
        case .drop(let reason): "drop:\(reason.name)"
        }
    }
}
