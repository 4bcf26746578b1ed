// libFuzzer entry for the per-packet path: FrameParser + FrameDispatcher, plus the checksum
// primitives they rely on. Built and run by fuzz/run.sh (fuzz/build.py builds SluiceCore,
// SluiceDataPlane and their dependencies as separate modules with -sanitize=fuzzer,address and
// links this file against them). Only public API is used. Do not build it with -Ounchecked:
// the preconditions are part of the check.
//
// Each input is one Ethernet frame (no FCS). Each input runs as it is and, when they change
// anything, up to twice more: with its IPv4 header and ICMP / ICMPv6 checksums made valid
// (fixUpChecksums), so that mutated frames get past the parser and NS validation; and with
// the IP length field also set to end the packet at the frame's end (fixUpLengths), so that
// truncations yield packets that end at the end of the allocation. Per frame:
//   pass A: the frame in a buffer of capacity max(len, 128) (bytes past `len` filled with 0xA5),
//           so that replies that grow (a Neighbor Advertisement answering a short NS) fit;
//   pass B: the frame in an allocation of exactly `len` bytes with capacity == len, so that
//           AddressSanitizer catches any read or write past the real frame.
// Invariants (any violation prints the check and the input in hex, then aborts):
//   * .transmit: 14 <= new length <= capacity; the output re-parses with no drop reason, with
//     the same EtherType and VLAN tags; per action: ARP op 2 from the owned address and its MAC,
//     ICMP type 0 / ICMPv6 type 129 from the owned address (length unchanged, the upper-layer
//     checksum verifies afterwards whenever it verified before, IPv4 TTL / IPv6 hop limit 64),
//     NA type 136 for an owned target, 72 bytes after L3, hop limit 255, checksum verifying.
//   * .drop: nothing (a dropped buffer is freed, whatever it holds).
//   * A and B agree: same verdict, same output bytes, except that B may drop with
//     .bufferTooSmall where A transmits a Neighbor Advertisement (capacity is all that differs).
//   * Secondary, on the first 64 bytes of the raw input: InternetChecksum.sum / checksum
//     against a naive RFC 1071 reference (also unaligned and with an initial sum); the RFC 1624
//     updates for 16-, 32- and 128-bit fields against full recomputation; both pseudo-header
//     sums against a reference over the literal pseudo-header bytes; CRC32C (slicing-by-8, and
//     split into two updates) against a bytewise reference; SCTPChecksum.store / verifies
//     (hence compute) against it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceDataPlane

// MARK: - The port under test (documentation addresses, RFC 5737 / RFC 3849)

// The first four VIPs are the configuration of Tests/Fixtures/packet-core.json, so that its
// inputs (used as seeds by run.sh) take the same paths here; the last three are extra.
let fuzzPortMAC = MACAddress(value: 0x02_00_00_00_00_01)
let fuzzVIPMAC = MACAddress(value: 0x02_00_00_00_00_0A)

let fuzzOwned = OwnedAddresses(
    portMAC: fuzzPortMAC,
    ipv4: [
        (IPv4Address("192.0.2.10")!, fuzzVIPMAC),
        (IPv4Address("192.0.2.11")!, fuzzPortMAC),
        (IPv4Address("203.0.113.200")!, fuzzVIPMAC),
    ],
    ipv6: [
        (IPv6Address("2001:db8::10")!, fuzzVIPMAC),
        (IPv6Address("2001:db8::11")!, fuzzPortMAC),
        (IPv6Address("2001:db8:1::7")!, fuzzVIPMAC),
        (IPv6Address("fe80::10")!, fuzzPortMAC),
    ])

// MARK: - Failure reporting

/// The input being run, for the report (libFuzzer runs one input at a time per process).
nonisolated(unsafe) var currentInput: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
/// Set while the checksum-fixed variant of the input runs.
nonisolated(unsafe) var currentFixedUp: UnsafeRawBufferPointer? = nil

func hex(_ p: UnsafeRawPointer?, _ count: Int) -> String {
    guard let p, count > 0 else { return "" }
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(count * 2)
    for i in 0..<count {
        let b = p.load(fromByteOffset: i, as: UInt8.self)
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

func violation(_ check: String, _ detail: @autoclosure () -> String = "") -> Never {
    var message = "\nSLUICE FUZZ INVARIANT VIOLATED: \(check)\n"
    let d = detail()
    if !d.isEmpty { message += "  detail: \(d)\n" }
    message += "  input (\(currentInput.count) bytes): \(hex(currentInput.baseAddress, currentInput.count))\n"
    if let fixed = currentFixedUp {
        message += "  failed on the input with its lengths/checksums fixed up: \(hex(fixed.baseAddress, fixed.count))\n"
    }
    var bytes = Array(message.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

@inline(__always)
func require(_ condition: Bool, _ check: @autoclosure () -> String, _ detail: @autoclosure () -> String = "") {
    if !condition { violation(check(), detail()) }
}

// MARK: - Independent references

/// RFC 1071 one's-complement sum, one 16-bit word at a time with end-around carry.
/// Returns the folded sum in 0...0xFFFF; 0 only when every word (and `initial`) is zero.
func referenceSum(_ p: UnsafeRawPointer, _ count: Int, initial: UInt32 = 0) -> UInt32 {
    var s = initial
    var i = 0
    while i + 1 < count {
        s += UInt32(p.load(fromByteOffset: i, as: UInt8.self)) << 8 | UInt32(p.load(fromByteOffset: i + 1, as: UInt8.self))
        s = (s & 0xFFFF) + (s >> 16)
        i += 2
    }
    if i < count {
        s += UInt32(p.load(fromByteOffset: i, as: UInt8.self)) << 8
        s = (s & 0xFFFF) + (s >> 16)
    }
    return s
}

func referenceFold(_ v: UInt64) -> UInt32 {
    var s = v
    while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
    return UInt32(s)
}

/// Bytewise reflected CRC32c (0x82F63B78), table built from the bitwise definition.
let crcReferenceTable: [UInt32] = (0..<256).map { (i: Int) -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
}

/// `zeroFrom..<zeroTo` is read as zero bytes (the SCTP checksum field).
func referenceCRC32C(_ p: UnsafeRawPointer, _ count: Int, zeroFrom: Int = 0, zeroTo: Int = 0) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    crcReferenceTable.withUnsafeBufferPointer { t in
        for i in 0..<count {
            let b = i >= zeroFrom && i < zeroTo ? 0 : p.load(fromByteOffset: i, as: UInt8.self)
            c = (c >> 8) ^ t[Int((c ^ UInt32(b)) & 0xFF)]
        }
    }
    return ~c
}

/// The folded sum of the literal RFC 8200 §8.1 pseudo-header for ICMPv6.
func icmpv6PseudoSum(_ p: UnsafeRawPointer, l3: Int, l4Length: Int) -> UInt32 {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { pseudo in
        pseudo.initialize(repeating: 0)
        for i in 0..<32 { pseudo[i] = p.load(fromByteOffset: l3 + 8 + i, as: UInt8.self) }
        pseudo[32] = UInt8(truncatingIfNeeded: l4Length >> 24)
        pseudo[33] = UInt8(truncatingIfNeeded: l4Length >> 16)
        pseudo[34] = UInt8(truncatingIfNeeded: l4Length >> 8)
        pseudo[35] = UInt8(truncatingIfNeeded: l4Length)
        pseudo[39] = IPProtocol.icmpv6
        return referenceSum(UnsafeRawPointer(pseudo.baseAddress!), 40)
    }
}

/// IPv6 upper-layer checksum verification with the literal pseudo-header.
func icmpv6Verifies(_ p: UnsafeRawPointer, l3: Int, l4: Int, l4Length: Int) -> Bool {
    referenceSum(p + l4, l4Length, initial: icmpv6PseudoSum(p, l3: l3, l4Length: l4Length)) == 0xFFFF
}

func icmpv4Verifies(_ p: UnsafeRawPointer, l4: Int, l4Length: Int) -> Bool {
    referenceSum(p + l4, l4Length) == 0xFFFF
}

// MARK: - The frame path

/// The upper-layer checksum state of the input, taken before `process` rewrites it in place.
struct InputFacts {
    var parsed = ParsedFrame()
    var parseResult: DropReason? = nil
    var icmpChecksumVerified = false
}

func inputFacts(_ p: UnsafeRawPointer, _ length: Int) -> InputFacts {
    var facts = InputFacts()
    facts.parseResult = FrameParser.parse(p, length: length, into: &facts.parsed)
    let f = facts.parsed
    if facts.parseResult == nil && f.hasL4Header && !f.isFragment {
        if f.isIPv4 && f.l4Protocol == IPProtocol.icmp {
            facts.icmpChecksumVerified = icmpv4Verifies(p, l4: f.l4Offset, l4Length: f.l4Length)
        } else if f.isIPv6 && f.l4Protocol == IPProtocol.icmpv6 {
            facts.icmpChecksumVerified = icmpv6Verifies(p, l3: f.l3Offset, l4: f.l4Offset, l4Length: f.l4Length)
        }
    }
    return facts
}

struct PassResult {
    var verdict: Verdict
    var length: Int
    var output: [UInt8]
}

func runPass(_ data: UnsafeRawPointer, _ size: Int, capacity: Int, facts: InputFacts, label: String) -> PassResult {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
    defer { buffer.deallocate() }
    if size > 0 { buffer.copyMemory(from: data, byteCount: size) }
    if capacity > size { (buffer + size).initializeMemory(as: UInt8.self, repeating: 0xA5, count: capacity - size) }

    var length = size
    let verdict = FrameDispatcher.process(buffer, length: &length, capacity: capacity, owned: fuzzOwned)

    switch verdict {
    case .drop:
        // Nothing is promised about a dropped buffer.
        return PassResult(verdict: verdict, length: length, output: [])
    case .transmit(let action):
        checkTransmit(buffer, length: length, capacity: capacity, action: action,
                      inputLength: size, facts: facts, label: label)
        let out = [UInt8](UnsafeRawBufferPointer(start: buffer, count: length))
        return PassResult(verdict: verdict, length: length, output: out)
    }
}

func checkTransmit(_ p: UnsafeMutableRawPointer, length: Int, capacity: Int, action: TransmitAction,
                   inputLength: Int, facts: InputFacts, label: String) {
    let what = "[\(label) capacity=\(capacity)] transmit \(action.name)"
    require(length >= HeaderSize.ethernet && length <= capacity, "\(what): length in 14...capacity",
            "length \(length)")
    require(facts.parseResult == nil, "\(what): transmitted a frame the parser rejects",
            "input drop reason \(facts.parseResult?.name ?? "-")")
    let input = facts.parsed
    var out = ParsedFrame()
    if let reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &out) {
        violation("\(what): output re-parses without a drop reason",
                  "re-parse says \(reason.name); output \(hex(p, length))")
    }
    require(out.etherType == input.etherType && out.vlanTagCount == input.vlanTagCount
            && out.vlanID == input.vlanID && out.l3Offset == input.l3Offset,
            "\(what): Ethernet/VLAN framing kept", "output \(hex(p, length))")
    let sourceMAC = MACAddress.load(p, 6)

    switch action {
    case .arpReply:
        require(out.isARP && length == inputLength, "\(what): ARP reply in place")
        let l3 = out.l3Offset
        require(p.loadBE16(l3 + 6) == ARPPacket.replyOperation, "\(what): ARP op is reply")
        let owner = fuzzOwned.macFor(p.loadBE32(l3 + ARPPacket.senderIP))
        require(owner != nil, "\(what): ARP sender IP is owned", "output \(hex(p, length))")
        require(MACAddress.load(p, l3 + ARPPacket.senderMAC) == owner && sourceMAC == owner,
                "\(what): ARP sender MAC and Ethernet source are the owner's MAC", "output \(hex(p, length))")

    case .icmpEchoReply:
        require(out.isIPv4 && out.l4Protocol == IPProtocol.icmp && out.hasL4Header && !out.isFragment
                && length == inputLength, "\(what): ICMP echo reply in place")
        require(p.loadBE8(out.l4Offset) == ICMPType.echoReply, "\(what): ICMP type 0")
        require(p.loadBE8(out.l3Offset + 8) == ICMPEcho.replyHopLimit, "\(what): TTL 64")
        let owner = fuzzOwned.macFor(p.loadBE32(out.l3Offset + 12))
        require(owner != nil && sourceMAC == owner, "\(what): from the owned address and its MAC")
        if facts.icmpChecksumVerified {
            require(icmpv4Verifies(p, l4: out.l4Offset, l4Length: out.l4Length),
                    "\(what): ICMP checksum verifies after the reply rewrite (it did before)",
                    "output \(hex(p, length))")
        }

    case .icmpv6EchoReply:
        require(out.isIPv6 && out.l4Protocol == IPProtocol.icmpv6 && out.hasL4Header && !out.isFragment
                && length == inputLength, "\(what): ICMPv6 echo reply in place")
        require(p.loadBE8(out.l4Offset) == ICMPv6Type.echoReply, "\(what): ICMPv6 type 129")
        require(p.loadBE8(out.l3Offset + 7) == ICMPEcho.replyHopLimit, "\(what): hop limit 64")
        let owner = fuzzOwned.macFor(IPv6Address.load(p, out.l3Offset + 8))
        require(owner != nil && sourceMAC == owner, "\(what): from the owned address and its MAC")
        if facts.icmpChecksumVerified {
            require(icmpv6Verifies(p, l3: out.l3Offset, l4: out.l4Offset, l4Length: out.l4Length),
                    "\(what): ICMPv6 checksum verifies after the reply rewrite (it did before)",
                    "output \(hex(p, length))")
        }

    case .neighborAdvertisement:
        let l3 = out.l3Offset
        require(out.isIPv6 && out.l4Protocol == IPProtocol.icmpv6 && out.l4Offset == l3 + HeaderSize.ipv6
                && length == l3 + HeaderSize.ipv6 + NeighborDiscovery.advertisementLength
                && out.l3End == length, "\(what): NA layout (72 bytes after L3)", "output \(hex(p, length))")
        require(p.loadBE8(out.l4Offset) == ICMPv6Type.neighborAdvertisement && p.loadBE8(out.l4Offset + 1) == 0,
                "\(what): ICMPv6 type 136 code 0")
        require(p.loadBE8(l3 + 7) == NeighborDiscovery.hopLimit, "\(what): hop limit 255")
        let target = IPv6Address.load(p, out.l4Offset + 8)
        let owner = fuzzOwned.macFor(target)
        require(owner != nil && sourceMAC == owner && IPv6Address.load(p, l3 + 8) == target,
                "\(what): for an owned target, from it and its MAC", "output \(hex(p, length))")
        require(MACAddress.load(p, out.l4Offset + 26) == owner, "\(what): target link-layer option is the owner's MAC")
        require(icmpv6Verifies(p, l3: l3, l4: out.l4Offset, l4Length: out.l4Length),
                "\(what): NA checksum verifies", "output \(hex(p, length))")

    default:
        // forwardToBackend, returnToClient, icmpTooBig, ...: PacketPipeline's actions, which
        // FrameDispatcher (the responder) never produces. `default` keeps this file compiling
        // as TransmitAction grows.
        violation("\(what): an action FrameDispatcher.process does not produce")
    }
}

/// Makes the IPv4 header checksum and the ICMP / ICMPv6 checksum of the frame valid, in place,
/// and says whether anything changed. Random mutations almost never keep them valid, and the
/// parser (IPv4 header) and the NS validation (ICMPv6) drop frames on them, so without this the
/// fuzzer would hardly get past either; it also gives every mutated echo request a verifying
/// checksum, so the "checksum still verifies after the reply rewrite" checks apply to it.
func fixUpChecksums(_ p: UnsafeMutableRawPointer, _ length: Int) -> Bool {
    var frame = ParsedFrame()
    var reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &frame)
    return fixUpChecksums(p, length, &frame, &reason)
}

/// Sets the IPv4 total length or IPv6 payload length so that the IP packet ends exactly where
/// the frame does (no Ethernet padding), then fixes the checksums; says whether anything
/// changed. A truncation, the commonest mutation, then yields a well-formed packet whose last
/// header ends at the end of the allocation, where pass B's exact buffer catches any overread.
func fixUpLengths(_ p: UnsafeMutableRawPointer, _ length: Int) -> Bool {
    var frame = ParsedFrame()
    var reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &frame)
    var changed = false
    let l3 = frame.l3Offset
    // The parser sets l3Offset (after VLAN tags) before it looks at the IP header.
    if frame.etherType == EtherType.ipv6 && l3 + HeaderSize.ipv6 <= length && length - l3 - HeaderSize.ipv6 <= 0xFFFF {
        let payloadLength = UInt16(length - l3 - HeaderSize.ipv6)
        changed = p.loadBE16(l3 + 4) != payloadLength
        p.storeBE16(payloadLength, l3 + 4)
    } else if frame.etherType == EtherType.ipv4 && l3 + HeaderSize.ipv4Minimum <= length && length - l3 <= 0xFFFF {
        let headerLength = Int(p.loadBE8(l3) & 0x0F) * 4
        let totalLength = UInt16(length - l3)
        if headerLength >= HeaderSize.ipv4Minimum && Int(totalLength) >= headerLength && p.loadBE16(l3 + 2) != totalLength {
            p.storeBE16(totalLength, l3 + 2)
            p.storeBE16(0, l3 + 10)
            p.storeBE16(~UInt16(referenceSum(p + l3, headerLength)), l3 + 10)
            changed = true
        }
    }
    if changed {
        frame = ParsedFrame()
        reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &frame)
    }
    return fixUpChecksums(p, length, &frame, &reason) || changed
}

func fixUpChecksums(_ p: UnsafeMutableRawPointer, _ length: Int, _ frame: inout ParsedFrame,
                    _ reason: inout DropReason?) -> Bool {
    var changed = false
    if reason == .badIPv4Checksum {
        // The parser has checked version, IHL and that the header lies inside the frame.
        let l3 = frame.l3Offset
        let headerLength = Int(p.loadBE8(l3) & 0x0F) * 4
        p.storeBE16(0, l3 + 10)
        p.storeBE16(~UInt16(referenceSum(p + l3, headerLength)), l3 + 10)
        changed = true
        frame = ParsedFrame()
        reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &frame)
    }
    // hasL4Header promises the fixed header only for TCP/UDP/SCTP/ICMP/ICMPv6 (for another
    // protocol it may be 0 bytes long), so the checksum word is touched only for ICMP/ICMPv6.
    guard reason == nil, frame.hasL4Header, !frame.isFragment else { return changed }
    let l4 = frame.l4Offset
    if frame.isIPv4 && frame.l4Protocol == IPProtocol.icmp {
        let old = p.loadBE16(l4 + 2)
        p.storeBE16(0, l4 + 2)
        p.storeBE16(~UInt16(referenceSum(p + l4, frame.l4Length)), l4 + 2)
        changed = changed || p.loadBE16(l4 + 2) != old
    } else if frame.isIPv6 && frame.l4Protocol == IPProtocol.icmpv6 {
        let old = p.loadBE16(l4 + 2)
        p.storeBE16(0, l4 + 2)
        let ps = icmpv6PseudoSum(UnsafeRawPointer(p), l3: frame.l3Offset, l4Length: frame.l4Length)
        p.storeBE16(~UInt16(referenceSum(p + l4, frame.l4Length, initial: ps)), l4 + 2)
        changed = changed || p.loadBE16(l4 + 2) != old
    }
    return changed
}

func fuzzFrame(_ data: UnsafeRawPointer, _ size: Int) {
    // The facts are taken from a private copy so that the passes' buffers stay exactly sized.
    let facts = inputFacts(data, size)
    let a = runPass(data, size, capacity: max(size, 128), facts: facts, label: "A")
    let b = runPass(data, size, capacity: size, facts: facts, label: "B")
    if a.verdict == b.verdict {
        require(a.length == b.length && a.output == b.output, "passes A and B produce the same output",
                "A \(hex(a.output, a.output.count)) / B \(hex(b.output, b.output.count))")
    } else {
        require(a.verdict == .transmit(.neighborAdvertisement) && b.verdict == .drop(.bufferTooSmall)
                && size < 128,
                "passes A and B agree on the verdict (only NA may not fit the exact buffer)",
                "A \(a.verdict) / B \(b.verdict)")
    }
}

// MARK: - Checksum primitives

@inline(__always)
func byte(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }

let updateWidths = [2, 4, 16]  // bytes: the 16-, 32- and 128-bit InternetChecksum.update

func fuzzInternetChecksum(_ data: UnsafeRawPointer, _ size: Int) {
    // Full sums: aligned, unaligned (offset 1), with an initial partial sum.
    for start in 0..<min(2, size + 1) {
        let p = data + start, n = size - start
        let lib = UInt32(InternetChecksum.fold(InternetChecksum.sum(p, count: n)))
        let ref = referenceSum(p, n)
        require(lib == ref, "InternetChecksum.sum matches RFC 1071 reference", "offset \(start): lib \(lib) ref \(ref)")
        require(InternetChecksum.checksum(p, count: n) == ~UInt16(ref), "InternetChecksum.checksum is ~sum")
        if n > 0 {
            require(InternetChecksum.verifies(p, count: n) == (ref == 0xFFFF), "InternetChecksum.verifies")
        }
    }
    if size >= 8 {
        let initial = UInt64(data.loadBE32(0)) &* 3 &+ UInt64(byte(data, 4))  // up to ~2^34, like pseudo sums
        let lib = UInt32(InternetChecksum.fold(InternetChecksum.sum(data + 5, count: size - 5, initial: initial)))
        let ref = referenceSum(data + 5, size - 5, initial: referenceFold(initial))
        require(lib == ref, "InternetChecksum.sum with initial matches reference", "lib \(lib) ref \(ref)")
    }

    // RFC 1624 incremental updates vs full recomputation, on a private copy.
    guard size >= 4 else { return }
    let copy = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
    defer { copy.deallocate() }
    for width in updateWidths where size >= width + 2 {
        copy.copyMemory(from: data, byteCount: size)
        // Field offset (even, as on the wire) and new value are taken from the input itself.
        let selector = Int(byte(data, 0)) << 8 | Int(byte(data, 1))
        let offset = (selector % (size - width + 1)) & ~1
        let hcBefore = ~UInt16(referenceSum(copy, size))
        let newValueSource = size - width  // the tail of the input
        var hcIncremental: UInt16
        switch width {
        case 2:
            let old = copy.loadBE16(offset)
            let new = data.loadBE16(newValueSource) ^ UInt16(byte(data, 2) & 1 == 0 ? 0 : 0xFFFF)
            copy.storeBE16(new, offset)
            hcIncremental = InternetChecksum.update(hcBefore, old: old, new: new)
        case 4:
            let old = copy.loadBE32(offset)
            let new = data.loadBE32(newValueSource)
            copy.storeBE32(new, offset)
            hcIncremental = InternetChecksum.update(hcBefore, old: old, new: new)
        default:
            let old = IPv6Address.load(copy, offset)
            let new = IPv6Address.load(data, newValueSource)
            new.store(copy, offset)
            hcIncremental = InternetChecksum.update(hcBefore, old: old, new: new)
        }
        let newSum = referenceSum(copy, size)
        let hcFull = ~UInt16(newSum)
        // RFC 1624 eqn. 3 equals recomputation except where the new data is all zero (sum +0):
        // then recomputation gives 0xFFFF and eqn. 3 gives 0x0000 (both are one's-complement zero,
        // but a verifier summing the data sees +0). Checked as exactly that.
        if newSum == 0 {
            require(hcIncremental == 0x0000 && hcFull == 0xFFFF, "\(width * 8)-bit update on all-zero data",
                    "incremental \(hcIncremental) full \(hcFull)")
        } else {
            require(hcIncremental == hcFull, "RFC 1624 \(width * 8)-bit update equals full recomputation",
                    "offset \(offset) before \(hcBefore) incremental \(hcIncremental) full \(hcFull)")
        }
    }

    // Pseudo-header sums vs the literal pseudo-header bytes.
    if size >= 10 {
        let source = IPv4Address(value: data.loadBE32(0)), destination = IPv4Address(value: data.loadBE32(4))
        let proto = byte(data, 8), length = Int(data.loadBE16(8) ^ 0x5A5A)
        let ref = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { pseudo in
            pseudo.initialize(repeating: 0)
            for i in 0..<8 { pseudo[i] = byte(data, i) }
            pseudo[9] = proto
            pseudo[10] = UInt8(length >> 8); pseudo[11] = UInt8(length & 0xFF)
            return referenceSum(UnsafeRawPointer(pseudo.baseAddress!), 12)
        }
        let lib = UInt32(InternetChecksum.fold(InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: proto, length: length)))
        require(lib == ref, "IPv4 pseudo-header sum", "lib \(lib) ref \(ref)")
    }
    if size >= 36 {
        let source = IPv6Address.load(data, 0), destination = IPv6Address.load(data, 16)
        let next = byte(data, 32), length = Int(data.loadBE32(32) & 0x00FF_FFFF)
        let ref = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { pseudo in
            pseudo.initialize(repeating: 0)
            for i in 0..<32 { pseudo[i] = byte(data, i) }
            pseudo[33] = UInt8(length >> 16); pseudo[34] = UInt8((length >> 8) & 0xFF); pseudo[35] = UInt8(length & 0xFF)
            pseudo[39] = next
            return referenceSum(UnsafeRawPointer(pseudo.baseAddress!), 40)
        }
        let lib = UInt32(InternetChecksum.fold(InternetChecksum.pseudoHeaderSum(
            source: source, destination: destination, nextHeader: next, length: length)))
        require(lib == ref, "IPv6 pseudo-header sum", "lib \(lib) ref \(ref)")
    }
}

func fuzzCRC(_ data: UnsafeRawPointer, _ size: Int) {
    let full = CRC32C.checksum(data, count: size)
    let ref = referenceCRC32C(data, size)
    require(full == ref, "CRC32C slicing-by-8 matches bytewise reference", "lib \(full) ref \(ref)")
    if size > 0 {
        let split = Int(byte(data, 0)) % (size + 1)
        let chained = CRC32C.update(CRC32C.update(0, data, count: split), data + split, count: size - split)
        require(chained == full, "CRC32C.update chained at \(split) equals one pass")
    }
    guard size >= HeaderSize.sctpCommon else { return }
    let field = SCTPChecksum.fieldOffset
    let expected = referenceCRC32C(data, size, zeroFrom: field, zeroTo: field + 4)
    let stored = UInt32(littleEndian: data.loadUnaligned(fromByteOffset: field, as: UInt32.self))
    require(SCTPChecksum.verifies(data, count: size) == (stored == expected), "SCTPChecksum.verifies",
            "stored \(stored) reference \(expected)")
    // store() must write the reference CRC least significant byte first, and verifies() (which
    // runs compute()) must accept it: together these pin compute() to the reference too.
    let copy = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
    defer { copy.deallocate() }
    copy.copyMemory(from: data, byteCount: size)
    SCTPChecksum.store(copy, count: size)
    let written = (0..<4).map { copy.load(fromByteOffset: field + $0, as: UInt8.self) }
    require(written == [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: expected >> $0) },
            "SCTPChecksum.store writes the reference CRC32c, least significant byte first")
    require(SCTPChecksum.verifies(copy, count: size), "SCTPChecksum.store then verifies")
}

// MARK: - libFuzzer entry points

/// How much of each input the secondary (checksum) checks use; see sluiceFuzzTestOneInput.
let secondaryCheckBytes = 64

@_cdecl("LLVMFuzzerInitialize")
public func sluiceFuzzInitialize(_ argc: UnsafeMutablePointer<CInt>,
                                 _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    // Known answers keep the references honest (RFC 3720 B.4 / the usual "123456789" check value).
    let check = Array("123456789".utf8)
    let crc = check.withUnsafeBytes { referenceCRC32C($0.baseAddress!, 9) }
    precondition(crc == 0xE306_9283, "reference CRC32c check value")
    let zeros = [UInt8](repeating: 0, count: 32)
    precondition(zeros.withUnsafeBytes { referenceCRC32C($0.baseAddress!, 32) } == 0x8A91_36AA, "RFC 3720 B.4 zeros")
    precondition(fuzzOwned.macFor(IPv4Address("192.0.2.10")!.value) == fuzzVIPMAC)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func sluiceFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // A private, exactly sized copy (libFuzzer's own buffer may be larger, or null when empty),
    // so that ASan also catches overreads by the parser and the checksum code run on it.
    let storage = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
    defer { storage.deallocate() }
    if let data, size > 0 { storage.copyMemory(from: data, byteCount: size) }
    let input = UnsafeRawPointer(storage)
    currentInput = UnsafeRawBufferPointer(start: input, count: size)
    fuzzFrame(input, size)
    if size >= HeaderSize.ethernet {
        let fixed = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
        defer { fixed.deallocate() }
        let firstFixUp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
        defer { firstFixUp.deallocate() }
        fixed.copyMemory(from: input, byteCount: size)
        var ranFirst = false
        if fixUpChecksums(fixed, size) {
            currentFixedUp = UnsafeRawBufferPointer(start: fixed, count: size)
            fuzzFrame(UnsafeRawPointer(fixed), size)
            firstFixUp.copyMemory(from: fixed, byteCount: size)
            ranFirst = true
        }
        fixed.copyMemory(from: input, byteCount: size)
        if fixUpLengths(fixed, size) && !(ranFirst && memcmp(fixed, firstFixUp, size) == 0) {
            currentFixedUp = UnsafeRawBufferPointer(start: fixed, count: size)
            fuzzFrame(UnsafeRawPointer(fixed), size)
        }
        currentFixedUp = nil
    }
    // The checksum code has no behaviour that depends on length beyond its 8-byte blocks and a
    // tail, so its (comparatively slow) reference checks look at a bounded prefix only.
    let prefix = min(size, secondaryCheckBytes)
    fuzzInternetChecksum(input, prefix)
    fuzzCRC(input, prefix)
    return 0
}
