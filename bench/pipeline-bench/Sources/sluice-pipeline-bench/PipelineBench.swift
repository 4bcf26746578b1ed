// In-memory benchmark of the load-balancing pipeline, no DPDK: PacketPipeline over bursts of 32
// prepared packets on one core, with a snapshot built from YAML exactly as sluiced builds it
// (SluicedConfig.parse + makeSnapshot), a FlowTable committed up front and a NeighborTable
// holding the config's static neighbors. Reports ns/packet, Mpps and TSC cycles/packet (on-CPU:
// the thread's CPU clock), and counts heap allocations in the measured loop through the
// LD_PRELOADed malloc interposer.
//
// Each burst is what one RX burst gives the worker: 32 frames copied from a pristine array
// (one 60-byte TCP frame per flow, cycled as a pcap replay would) into 32 buffers with 128
// bytes of headroom, then run through the pipeline as Worker.receiveAndProcess does: stage one
// (`PacketPipeline.prepare`: parse, hash, prefetch the bucket header) over the whole burst, the
// entry lines prefetched (`prefetchEntry`), then stage two (`process(prepared:)`) packet by
// packet. The copy is timed too and reported on its own ("copy only"); no counters, expiry
// sweep or TX.
//
//   sluice-pipeline-bench [--mode dnat|vxlan|new] [--flows N] [--seconds S] [--capacity C]
//                         [--one-by-one] [--sites]
//
//   dnat, vxlan   established flows: a warm-up pass creates every flow (and its reverse entry),
//                 then bursts cycle through the flows for S seconds
//   new           every packet a SYN from a new source: one pass over N flows into an empty
//                 table, repeated (a fresh table each time) for S seconds of passes
//   --one-by-one  each packet prepared and processed before the next (`PacketPipeline.process`),
//                 as the worker did before the two-stage burst: the flow table's misses do not
//                 overlap
//   --sites       record a backtrace per allocation in the measured loop and print the sites
import CBenchSupport
import MallocInterposerSwift
import SluiceConfig
import SluiceConntrack
import SluiceCore
import SluiceDataPlane
import SluiceMaglev

#if canImport(Glibc)
import Glibc
#endif

func eprint(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

enum Mode: String { case dnat, vxlan, new }

struct Tally {
    var packets = 0
    var forwarded = 0
    var other = 0
}

struct Clocks {
    var cpu: timespec
    var wall: timespec
    var tsc: UInt64
    static func now() -> Clocks {
        var c = timespec(), w = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c)
        clock_gettime(CLOCK_MONOTONIC, &w)
        return Clocks(cpu: c, wall: w, tsc: bench_rdtsc())
    }
}
func nanoseconds(_ a: timespec, _ b: timespec) -> Double {
    Double(b.tv_sec - a.tv_sec) * 1e9 + Double(b.tv_nsec - a.tv_nsec)
}

/// TSC frequency, measured against CLOCK_MONOTONIC over 200 ms.
func tscHz() -> Double {
    let a = Clocks.now()
    var request = timespec(tv_sec: 0, tv_nsec: 200_000_000)
    nanosleep(&request, nil)
    let b = Clocks.now()
    return Double(b.tsc &- a.tsc) / nanoseconds(a.wall, b.wall) * 1e9
}

struct Measurement {
    var bursts = 0
    var tally = Tally()
    var cpuNs = 0.0
    var wallNs = 0.0
    var allocations: Int64 = 0
    var frees: Int64 = 0
}

/// The packets and buffers of a run, and what the burst loop needs of the configuration.
struct Workload {
    let pristine: UnsafeMutableRawPointer
    let buffers: UnsafeMutableRawPointer
    let prepared: UnsafeMutablePointer<PreparedFrame>
    /// New flows' reverse entries kept back to the end of the burst, as the worker does; nil
    /// with --immediate-reverse or --one-by-one (inserted at once).
    let deferred: UnsafeMutablePointer<DeferredReverseEntries>?
    let flowCount: Int
    let snapshot: DataPlaneSnapshot
    let burst = 32
    let headroom = 128
    let bufferSize = 2048
    let frameLength = 60
    let frameStride = 64

    /// Copies the next burst of frames from the pristine array into the burst buffers (an RX
    /// burst's work), starting at flow `cursor`.
    @inline(__always)
    func fill(_ cursor: inout Int) {
        for i in 0..<burst {
            (buffers + i * bufferSize + headroom).copyMemory(from: pristine + cursor * frameStride, byteCount: frameLength)
            cursor &+= 1
            if cursor == flowCount { cursor = 0 }
        }
    }

    /// The worker's two stages over the burst (Worker.receiveAndProcess), or one packet at a
    /// time (`oneByOne`).
    @inline(__always)
    func processBurst(_ context: inout PipelineContext, _ tally: inout Tally, oneByOne: Bool) {
        if oneByOne {
            for i in 0..<burst {
                let p = buffers + i * bufferSize + headroom
                var length = frameLength
                var output = PacketOutput(port: 0)
                let verdict = PacketPipeline.process(p, length: &length, capacity: bufferSize - headroom, headroom: headroom,
                                                     ingress: 0, output: &output, context: &context)
                count(verdict, output, &tally)
            }
        } else {
            for i in 0..<burst {
                prepared[i] = PacketPipeline.prepare(buffers + i * bufferSize + headroom, length: frameLength, context: context)
            }
            for i in 0..<burst where prepared[i].hash != 0 { context.flows.prefetchEntry(hash: prepared[i].hash) }
            for i in 0..<burst {
                let p = buffers + i * bufferSize + headroom
                var length = frameLength
                var output = PacketOutput(port: 0)
                let verdict = PacketPipeline.process(p, length: &length, capacity: bufferSize - headroom, headroom: headroom,
                                                     ingress: 0, prepared: prepared[i], output: &output, context: &context)
                count(verdict, output, &tally)
            }
            PacketPipeline.commitDeferred(&context)
        }
        tally.packets &+= burst
    }

    @inline(__always)
    func count(_ verdict: Verdict, _ output: PacketOutput, _ tally: inout Tally) {
        if case .transmit(.forwardToBackend) = verdict, output.port == 1 { tally.forwarded &+= 1 } else { tally.other &+= 1 }
    }
}

@main
enum PipelineBench {
    static func main() {
        // MARK: Options

        var mode = Mode.dnat
        var flowCount = 1000
        var seconds = 3.0
        var capacity = 4_194_304
        var oneByOne = false
        var immediateReverse = false
        var recordSites = false
        let backendCount = 8
        let burst = 32
        let headroom = 128
        let bufferSize = 2048

        var argv = CommandLine.arguments.dropFirst()
        func usage() -> Never {
            eprint("usage: sluice-pipeline-bench [--mode dnat|vxlan|new] [--flows N] [--seconds S] [--capacity C] [--one-by-one] [--immediate-reverse] [--sites]\n")
            exit(2)
        }
        while let a = argv.popFirst() {
            switch a {
            case "--mode": guard let v = argv.popFirst(), let m = Mode(rawValue: v) else { usage() }; mode = m
            case "--flows": guard let v = argv.popFirst(), let n = Int(v), n >= burst else { usage() }; flowCount = n
            case "--seconds": guard let v = argv.popFirst(), let s = Double(v), s > 0 else { usage() }; seconds = s
            case "--capacity": guard let v = argv.popFirst(), let n = Int(v), n > 0 else { usage() }; capacity = n
            case "--one-by-one": oneByOne = true
            case "--immediate-reverse": immediateReverse = true
            case "--sites": recordSites = true
            default: usage()
            }
        }

        // MARK: Configuration, as sluiced builds it

        let vipMAC = MACAddress("02:00:00:00:5e:10")!
        var yaml = """
        ports:
          - { name: pcap0, device: net_pcap0, mac: "02:00:00:00:5e:10", addresses: ["192.0.2.2/24"] }
          - { name: null1, device: net_null0, mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24"] }
        flows: { capacity: \(capacity), hash_seed: "6c62656e63680000000000000000a5a5" }
        vips:
          - { address: 192.0.2.10, port: pcap0 }
        services:
          - name: web
            vip: 192.0.2.10
            protocol: tcp
            port: 80
            mode: \(mode == .vxlan ? "vxlan" : "dnat")
            backends:

        """
        for i in 1...backendCount {
            if mode == .vxlan {
                yaml += "      - { address: 10.244.\(i).10, port: 8080, vtep: 198.51.100.\(100 + i), vni: \(4096 + i), inner_mac: \"02:00:00:00:0c:0\(i)\" }\n"
            } else {
                yaml += "      - { address: 198.51.100.\(100 + i), port: 8080 }\n"
            }
        }
        yaml += "neighbors:\n"
        for i in 1...backendCount { yaml += "  - { address: 198.51.100.\(100 + i), mac: \"02:00:00:00:0b:0\(i)\" }\n" }

        let config: SluicedConfig
        let snapshot: DataPlaneSnapshot
        do {
            config = try SluicedConfig.parse(yaml: yaml, file: "bench.yaml")
            snapshot = try config.makeSnapshot(portMACs: [vipMAC, MACAddress("02:00:00:00:5e:11")!], file: "bench.yaml")
        } catch {
            eprint("config: \(error)\n")
            exit(1)
        }
        let now: UInt32 = 1000
        let neighbors = NeighborTable()
        for (address, mac) in config.neighbors { _ = neighbors.learn(address.mapped, mac: mac, now: 0) }
        let counters = WorkerCounters()

        func makeFlowTable() -> FlowTable {
            do {
                return try FlowTable(FlowTable.Configuration(capacity: config.flows.capacity, prefault: true))
            } catch {
                eprint("flow table: \(error)\n")
                exit(1)
            }
        }

        // MARK: Packets: one 60-byte frame per flow (as bench/lb-fastpath.sh's pcaps)

        let frameLength = 60
        let frameStride = 64
        let pristine = UnsafeMutableRawPointer.allocate(byteCount: flowCount * frameStride, alignment: 64)
        pristine.initializeMemory(as: UInt8.self, repeating: 0, count: flowCount * frameStride)
        let vip: UInt32 = 0xC000_020A
        let clientMAC = MACAddress("02:00:00:00:00:01")!
        for i in 0..<flowCount {
            let p = pristine + i * frameStride
            let src = UInt32(0x0A00_0001 + i)
            let sport = UInt16(1024 + (i * 40503) % 64000)
            vipMAC.store(p, 0); clientMAC.store(p, 6); p.storeBE16(EtherType.ipv4, 12)
            p.storeBE16(0x4500, 14); p.storeBE16(46, 16); p.storeBE16(0, 18); p.storeBE16(0, 20)
            p.storeBE16(64 << 8 | 6, 22); p.storeBE32(src, 26); p.storeBE32(vip, 30)
            p.storeBE16(InternetChecksum.checksum(p + 14, count: 20), 24)
            p.storeBE16(sport, 34); p.storeBE16(80, 36); p.storeBE32(1000, 38)
            p.storeBE32(mode == .new ? 0 : 2000, 42)
            p.storeBE8(5 << 4, 46); p.storeBE8(mode == .new ? 0x02 : 0x10, 47); p.storeBE16(64240, 48)
            let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: src), destination: IPv4Address(value: vip),
                                                          protocol: 6, length: 26)
            p.storeBE16(InternetChecksum.checksum(p + 34, count: 26, initial: pseudo), 50)
        }
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: burst * bufferSize, alignment: 64)
        buffers.initializeMemory(as: UInt8.self, repeating: 0, count: burst * bufferSize)
        let prepared = UnsafeMutablePointer<PreparedFrame>.allocate(capacity: burst)
        prepared.initialize(repeating: PreparedFrame(), count: burst)
        var deferred: UnsafeMutablePointer<DeferredReverseEntries>? = nil
        if !oneByOne && !immediateReverse {
            deferred = .allocate(capacity: 1)
            deferred!.initialize(to: DeferredReverseEntries(capacity: burst))
        }
        let work = Workload(pristine: pristine, buffers: buffers, prepared: prepared, deferred: deferred, flowCount: flowCount,
                            snapshot: snapshot)

        bench_sites_init()

        /// Interposer check: a deliberate allocation inside a counted window must be counted, else the
        /// interposer is not loaded and a count of 0 would mean nothing.
        if recordSites {
            // The C function itself: a Swift closure here would be main-actor isolated, and its
            // isolation check allocates inside the allocator.
            MallocInterposerSwift.setAllocationHook(bench_record_site)
        }
        do {
            MallocInterposerSwift.initialize()
            MallocInterposerSwift.hook()
            let probe = UnsafeMutableRawPointer.allocate(byteCount: 100, alignment: 8)
            MallocInterposerSwift.unhook()
            probe.deallocate()
            let counted = MallocInterposerSwift.getStatistics().mallocCount
            guard counted >= 1 else {
                eprint("FAIL: the malloc interposer counted nothing for a deliberate allocation (is libMallocInterposerSwift.so LD_PRELOADed?)\n")
                exit(1)
            }
            print("interposer check: a deliberate allocation was counted (\(counted))")
            if recordSites {
                eprint("site recording check (the deliberate allocation):\n")
                bench_print_sites()
                bench_sites_reset()
            }
        }

        let hz = tscHz()
        var copyOnly = Measurement()
        var result = Measurement()
        let checkEvery = 256   // bursts between clock reads

        if mode == .new {
            // One pass over every flow into an empty table, timed; a fresh table per pass (outside).
            let deadline = seconds * 1e9
            var passes = 0
            repeat {
                let table = makeFlowTable()
                var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: table.view, counters: counters, now: now)
                context.deferredReverse = work.deferred
                var cursor = 0
                let passBursts = flowCount / burst
                MallocInterposerSwift.initialize()
                MallocInterposerSwift.hook()
                let a = Clocks.now()
                for _ in 0..<passBursts {
                    work.fill(&cursor)
                    work.processBurst(&context, &result.tally, oneByOne: oneByOne)
                }
                let b = Clocks.now()
                MallocInterposerSwift.unhook()
                let stats = MallocInterposerSwift.getStatistics()
                result.allocations += Int64(stats.mallocCount)
                result.frees += Int64(stats.freeCount)
                result.bursts += passBursts
                result.cpuNs += nanoseconds(a.cpu, b.cpu)
                result.wallNs += nanoseconds(a.wall, b.wall)
                passes += 1
                withExtendedLifetime(table) {}
            } while result.wallNs < deadline || passes < 2
            print("new flows: \(passes) passes of \(flowCount) SYNs, each into an empty table of \(capacity) slots")
        } else {
            let table = makeFlowTable()
            var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: table.view, counters: counters, now: now)
            context.deferredReverse = work.deferred
            // Warm-up: a pass over every flow creates its entries, a second one warms the caches.
            var cursor = 0
            var warm = Tally()
            for _ in 0..<(2 * (flowCount + burst - 1) / burst) {
                work.fill(&cursor)
                work.processBurst(&context, &warm, oneByOne: oneByOne)
            }
            let created = counters.read(.newFlows)
            guard created == UInt64(flowCount), warm.other == 0 else {
                eprint("FAIL: warm-up created \(created) flows for \(flowCount), \(warm.other) packets not forwarded\n")
                exit(1)
            }

            // The copy alone, for the same time budget split.
            do {
                var c = 0
                let a = Clocks.now()
                var n = 0
                repeat {
                    for _ in 0..<checkEvery { work.fill(&c) }
                    n += checkEvery
                } while nanoseconds(a.wall, Clocks.now().wall) < seconds * 0.25e9
                let b = Clocks.now()
                copyOnly.bursts = n
                copyOnly.cpuNs = nanoseconds(a.cpu, b.cpu)
                copyOnly.wallNs = nanoseconds(a.wall, b.wall)
            }

            MallocInterposerSwift.initialize()
            MallocInterposerSwift.hook()
            let a = Clocks.now()
            var bursts = 0
            repeat {
                for _ in 0..<checkEvery {
                    work.fill(&cursor)
                    work.processBurst(&context, &result.tally, oneByOne: oneByOne)
                }
                bursts += checkEvery
            } while nanoseconds(a.wall, Clocks.now().wall) < seconds * 1e9
            let b = Clocks.now()
            MallocInterposerSwift.unhook()
            let stats = MallocInterposerSwift.getStatistics()
            result.allocations = Int64(stats.mallocCount)
            result.frees = Int64(stats.freeCount)
            result.bursts = bursts
            result.cpuNs = nanoseconds(a.cpu, b.cpu)
            result.wallNs = nanoseconds(a.wall, b.wall)
            withExtendedLifetime(table) {}
        }

        // MARK: Report

        func f(_ x: Double, _ digits: Int = 1) -> String {
            var s = String(Int((x * pow(10, Double(digits))).rounded()))
            if digits > 0 {
                while s.count <= digits { s = "0" + s }
                s.insert(".", at: s.index(s.endIndex, offsetBy: -digits))
            }
            return s
        }
        let packets = Double(result.tally.packets)
        let nsPerPacket = result.cpuNs / packets
        let label = "\(mode.rawValue)\(mode == .new ? "" : " established"), \(flowCount) flows\(oneByOne ? ", one packet at a time" : immediateReverse ? ", two-stage bursts, reverse entries inserted at once" : ", two-stage bursts (as the worker)")"
        print("\(label): \(result.tally.packets) packets in \(result.bursts) bursts of \(burst), \(result.tally.forwarded) forwarded to a backend, \(result.tally.other) other")
        print("  total (copy + pipeline): \(f(nsPerPacket, 2)) ns/packet on-CPU, \(f(1e3 / nsPerPacket, 2)) Mpps, \(f(nsPerPacket * hz / 1e9, 0)) TSC cycles/packet (TSC \(f(hz / 1e6, 0)) MHz); CPU share \(f(100 * result.cpuNs / result.wallNs, 0))%")
        if copyOnly.bursts > 0 {
            let copyNs = copyOnly.cpuNs / Double(copyOnly.bursts * burst)
            let pipelineNs = nsPerPacket - copyNs
            print("  copy only: \(f(copyNs, 2)) ns/packet; pipeline alone: \(f(pipelineNs, 2)) ns/packet, \(f(1e3 / pipelineNs, 2)) Mpps, \(f(pipelineNs * hz / 1e9, 0)) cycles/packet")
        }
        print("allocations during \(result.bursts) bursts: \(result.allocations) (frees: \(result.frees))")
        if recordSites { bench_print_sites() }
        if result.tally.other != 0 {
            eprint("FAIL: \(result.tally.other) packets were not forwarded to a backend\n")
            exit(1)
        }
    }
}
