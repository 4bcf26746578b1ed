import SluiceTestSupport
import Foundation
import SluiceCore
import SluiceDataPlane

/// One golden packet from `Tests/Fixtures/packet-core.json`, written by `tools/fixtures/generate.py`.
struct GoldenFixture: Decodable, Sendable, CustomStringConvertible {
    struct VIP: Decodable, Sendable {
        var address: String
        var mac: String?
    }

    struct Config: Decodable, Sendable {
        var portMAC: String
        var vips: [VIP]

        enum CodingKeys: String, CodingKey {
            case portMAC = "port_mac"
            case vips
        }
    }

    var description: String
    var scapy: String
    var config: Config
    var input: String
    var verdict: String
    var output: String?

    var inputBytes: [UInt8] { Hex.decode(input) }
    var outputBytes: [UInt8]? { output.map(Hex.decode) }

    /// The drop reason this fixture expects, if it expects a drop.
    var expectedDrop: DropReason? {
        guard verdict.hasPrefix("drop:") else { return nil }
        return DropReason(name: String(verdict.dropFirst("drop:".count)))
    }

    func ownedAddresses() throws -> OwnedAddresses {
        guard let port = MACAddress(config.portMAC) else { throw FixtureError.bad("port_mac \(config.portMAC)") }
        var v4: [(IPv4Address, MACAddress)] = []
        var v6: [(IPv6Address, MACAddress)] = []
        for vip in config.vips {
            var mac = port
            if let text = vip.mac {
                guard let parsed = MACAddress(text) else { throw FixtureError.bad("vip mac \(text)") }
                mac = parsed
            }
            if let a = IPv4Address(vip.address) {
                v4.append((a, mac))
            } else if let a = IPv6Address(vip.address) {
                v6.append((a, mac))
            } else {
                throw FixtureError.bad("vip address \(vip.address)")
            }
        }
        return OwnedAddresses(portMAC: port, ipv4: v4, ipv6: v6)
    }
}

/// `Tests/Fixtures/builders-and-checksums.json`: scapy-made packets for checksum and builder tests.
struct BuilderFixtures: Decodable, Sendable {
    struct SCTPPacket: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var packet: String
        var checksumField: String

        enum CodingKeys: String, CodingKey {
            case description, scapy, packet
            case checksumField = "checksum_field"
        }
    }

    struct Announcement: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var mac: String
        var address: String
        var vlan: UInt16?
        var output: String
    }

    var sctp: [SCTPPacket]
    var garp: [Announcement]
    var unsolicitedNA: [Announcement]

    enum CodingKeys: String, CodingKey {
        case sctp, garp
        case unsolicitedNA = "unsolicited_na"
    }
}

enum FixtureError: Error, CustomStringConvertible {
    case bad(String)
    var description: String {
        switch self { case .bad(let what): "bad fixture field: \(what)" }
    }
}

enum Fixtures {
    /// Tests/Fixtures, found from this source file (no bundle resources needed).
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func loadPacketCore() throws -> [GoldenFixture] {
        let data = try Data(contentsOf: directory.appendingPathComponent("packet-core.json"))
        return try JSONDecoder().decode([GoldenFixture].self, from: data)
    }

    static func loadBuilders() throws -> BuilderFixtures {
        let data = try Data(contentsOf: directory.appendingPathComponent("builders-and-checksums.json"))
        return try JSONDecoder().decode(BuilderFixtures.self, from: data)
    }

    /// All golden fixtures, or none if the file is missing or malformed (a separate test fails then).
    static let packetCore: [GoldenFixture] = (try? loadPacketCore()) ?? []
    static let builders: BuilderFixtures? = try? loadBuilders()

    /// The input bytes of the fixture with this exact description.
    static func input(_ description: String) -> [UInt8]? {
        packetCore.first { $0.description == description }?.inputBytes
    }
}

extension Hex {

    /// Side-by-side hex of two byte strings, 16 bytes a line, with differing lines marked `!` and
    /// the first differing offset named.
    static func diff(expected: [UInt8], actual: [UInt8]) -> String {
        var lines: [String] = []
        let firstDiff = zip(expected, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? (expected.count == actual.count ? nil : min(expected.count, actual.count))
        lines.append("expected \(expected.count) bytes, got \(actual.count) bytes"
            + (firstDiff.map { "; first difference at offset \($0) (0x\(String($0, radix: 16)))" } ?? ""))
        lines.append("offs  expected                                          actual")
        let rows = (max(expected.count, actual.count) + 15) / 16
        for row in 0..<rows {
            let range = row * 16..<(row * 16 + 16)
            func cells(_ b: [UInt8]) -> String {
                range.map { $0 < b.count ? Hex.encode([b[$0]]) : "  " }.joined(separator: " ")
            }
            let e = cells(expected), a = cells(actual)
            let mark = e == a ? " " : "!"
            let offset = String(row * 16, radix: 16)
            lines.append("\(mark)\(String(repeating: "0", count: max(0, 4 - offset.count)))\(offset) \(e)  \(a)")
        }
        return lines.joined(separator: "\n")
    }
}

extension Verdict {
    /// The fixture spelling: `transmit:<action>` or `drop:<reason>`.
    var fixtureName: String {
        switch self {
        case .transmit(let action): "transmit:\(action.name)"
        case .drop(let reason): "drop:\(reason.name)"
        }
    }
}

/// A small deterministic generator (SplitMix64) so that "random" tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    static func random(count: Int, using rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}

/// Runs `body` over a heap allocation of exactly `bytes.count` bytes holding `bytes`, so that a
/// read past the end touches memory the allocator (or ASan) owns, not a roomy stack buffer.
func withExactAllocation<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
    let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { p.deallocate() }
    bytes.withUnsafeBytes { src in
        if let base = src.baseAddress { p.copyMemory(from: base, byteCount: bytes.count) }
    }
    return try body(p)
}
