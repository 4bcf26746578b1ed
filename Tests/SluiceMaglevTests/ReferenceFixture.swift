import Foundation
import SluiceMaglev

/// Tests/Fixtures/maglev/reference.json, written by `tools/maglev/reference.py fixture`.
struct ReferenceFixture: Decodable {
    struct SipHashVector: Decodable {
        var c: Int
        var d: Int
        var key: String
        var message: String
        var hash: String
    }
    struct CPythonVector: Decodable {
        var message: String
        var hash: String
    }
    struct Flow: Decodable {
        var seed: String
        var source: String
        var destination: String
        var sourcePort: UInt16
        var destinationPort: UInt16
        var proto: UInt8
        var hash: String
        var slot65537: Int
    }
    struct Backend: Decodable {
        var label: String
        var identity: String
        var weight: UInt32
        var offset: Int
        var skip: Int
    }
    struct Table: Decodable {
        var name: String
        var size: Int
        var backends: [Backend]
        var entries: [Int]
    }
    struct PaperTable1: Decodable {
        var permutations: [[Int]]
        var before: [String]
        var after: [String]
    }

    var paperTable1: PaperTable1
    var siphash: [SipHashVector]
    var cpythonSiphash13Key0: [CPythonVector]
    var flows: [Flow]
    var tables: [Table]

    static let shared: ReferenceFixture = {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/maglev/reference.json")
        let data = try! Data(contentsOf: url)
        return try! JSONDecoder().decode(ReferenceFixture.self, from: data)
    }()
}

func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}

func uint64(hex: String) -> UInt64 { UInt64(hex, radix: 16)! }
