import SluiceTestSupport
import Testing
import SluiceCore
import SluiceDataPlane

/// Golden packets: scapy-made input bytes + config → exact verdict and exact output bytes
/// (BRIEF, "How it is tested"). The fixtures come from `tools/fixtures/generate.py`.
@Suite("Golden packets")
struct GoldenPacketTests {
    /// Every buffer handed to the dispatcher has this capacity (an mbuf data room is 2048).
    static let capacity = 2048

    /// Drop reasons that the parser and dispatcher cannot produce from a frame in a 2048-byte
    /// buffer in this first cut. Anything not listed here needs a golden fixture.
    static let notReachableFromParser: [DropReason: String] = [
        .badSCTPChecksum: "the parser does not verify SCTP checksums yet (no SCTP service)",
        .bufferTooSmall: "replies fit in a 2048-byte buffer; covered by a unit test with a small capacity",
        .transmitQueueFull: "a worker-loop outcome, not a per-frame verdict",
    ]

    /// Outcomes of the load-balancing pipeline (services, flows, neighbors): the responder-only
    /// fixtures here cannot produce them; Tests/Fixtures/pipeline.json covers them, checked by
    /// SluicePipelineTests.
    static let loadBalancingDrops: Set<DropReason> = [.noBackend, .neighborUnresolved, .noRoute, .ttlExceeded,
                                                      .unsupportedSCTPRewrite, .badVXLAN, .noSourcePort, .packetTooBig,
                                                      .icmpRateLimited]
    static let loadBalancingActions: Set<TransmitAction> = [.forwardToBackend, .returnToClient, .icmpTooBig,
                                                            .icmpErrorToBackend]

    @Test("the fixture file loads and is substantial")
    func fixturesLoad() throws {
        let fixtures = try Fixtures.loadPacketCore()
        #expect(fixtures.count >= 60)
        let descriptions = Set(fixtures.map(\.description))
        #expect(descriptions.count == fixtures.count, "fixture descriptions must be unique")
    }

    @Test("golden packet", arguments: Fixtures.packetCore)
    func golden(_ fixture: GoldenFixture) throws {
        let owned = try fixture.ownedAddresses()
        let input = fixture.inputBytes
        try #require(input.count <= Self.capacity)
        let p = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity, alignment: 64)
        defer { p.deallocate() }
        p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: Self.capacity)
        input.withUnsafeBytes { src in
            if let base = src.baseAddress { p.copyMemory(from: base, byteCount: input.count) }
        }
        var length = input.count
        let verdict = FrameDispatcher.process(p, length: &length, capacity: Self.capacity, owned: owned)
        #expect(verdict.fixtureName == fixture.verdict, "scapy: \(fixture.scapy)")
        guard case .transmit = verdict else {
            #expect(length == input.count, "a dropped frame keeps its length")
            return
        }
        guard let expected = fixture.outputBytes else { return }  // verdict mismatch, reported above
        try #require(length >= 0 && length <= Self.capacity)
        let actual = [UInt8](UnsafeRawBufferPointer(start: p, count: length))
        let same = actual == expected
        #expect(same, "output differs:\n\(Hex.diff(expected: expected, actual: actual))\nscapy: \(fixture.scapy)")
    }

    @Test("every verdict name in the fixtures is a real DropReason or TransmitAction")
    func verdictNamesAreKnown() {
        let known = Set(DropReason.allCases.map { "drop:\($0.name)" }
            + TransmitAction.allCases.map { "transmit:\($0.name)" })
        for fixture in Fixtures.packetCore {
            #expect(known.contains(fixture.verdict), "\(fixture.description): unknown verdict \(fixture.verdict)")
            #expect((fixture.output != nil) == fixture.verdict.hasPrefix("transmit:"), "\(fixture.description)")
        }
    }

    @Test("every DropReason has a fixture or is listed as not reachable")
    func everyDropReasonIsCovered() {
        let covered = Set(Fixtures.packetCore.compactMap(\.expectedDrop))
        for reason in DropReason.allCases where !Self.loadBalancingDrops.contains(reason) {
            let listed = Self.notReachableFromParser[reason] != nil
            if covered.contains(reason) {
                #expect(!listed, "\(reason.name) has a fixture: take it off notReachableFromParser")
            } else {
                #expect(listed, "\(reason.name) has no golden fixture and is not listed as unreachable")
            }
        }
    }

    @Test("every TransmitAction has a fixture")
    func everyTransmitActionIsCovered() {
        let covered = Set(Fixtures.packetCore.map(\.verdict))
        for action in TransmitAction.allCases where !Self.loadBalancingActions.contains(action) {
            #expect(covered.contains("transmit:\(action.name)"), "\(action.name) has no golden fixture")
        }
    }

    @Test("an NA that does not fit the buffer is dropped as buffer_too_small, frame untouched")
    func advertisementNeedsRoom() throws {
        let fixture = try #require(Fixtures.packetCore.first {
            $0.description.hasPrefix("unicast NS (NUD) for a VIP without its own MAC")
        })
        let input = fixture.inputBytes
        let reply = try #require(fixture.outputBytes)
        try #require(reply.count > input.count, "this NS has no option, so its NA is longer")
        let owned = try fixture.ownedAddresses()
        for capacity in [input.count, reply.count - 1] {
            let p = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            defer { p.deallocate() }
            input.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: input.count) }
            var length = input.count
            let verdict = FrameDispatcher.process(p, length: &length, capacity: capacity, owned: owned)
            #expect(verdict == .drop(.bufferTooSmall))
            #expect(length == input.count)
            #expect([UInt8](UnsafeRawBufferPointer(start: p, count: input.count)) == input)
        }
        // With exactly enough room it is answered.
        let p = UnsafeMutableRawPointer.allocate(byteCount: reply.count, alignment: 1)
        defer { p.deallocate() }
        input.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: input.count) }
        var length = input.count
        #expect(FrameDispatcher.process(p, length: &length, capacity: reply.count, owned: owned)
            == .transmit(.neighborAdvertisement))
        #expect([UInt8](UnsafeRawBufferPointer(start: p, count: length)) == reply)
    }

    @Test("every expected reply is itself a well-formed frame")
    func repliesReparse() throws {
        for fixture in Fixtures.packetCore where fixture.output != nil {
            let out = try #require(fixture.outputBytes)
            var frame = ParsedFrame()
            let reason = out.withUnsafeBytes { FrameParser.parse($0.baseAddress!, length: out.count, into: &frame) }
            #expect(reason == nil, "\(fixture.description): our own reply parses as \(String(describing: reason))")
        }
    }
}
