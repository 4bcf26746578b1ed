import Foundation
import SluiceDataPlane
import Synchronization
import Testing

/// Workers record first fragments into one shared `FragmentTable` while others look records up:
/// a record read is always one record, whole — never one writer's service with another's
/// direction and detail (two writers on one slot are kept apart by the claim on its key).
@Suite struct FragmentTableConcurrency {
    @Test func concurrentWritersAndReadersNeverSeeATornRecord() {
        let table = FragmentTable(capacity: 64)
        let key: UInt64 = 0x5EED_0000_0000_0041
        let torn = Atomic<Int>(0), seen = Atomic<Int>(0)
        // Three writers, each writing records whose three fields all carry the same number, one
        // range per writer; one reader.
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            if thread < 3 {
                for i in 0..<1_000_000 {
                    let n = thread * 20_000 + i % 20_000
                    table.record(key, FragmentTable.Record(direction: thread == 1 ? .toClient : .toBackend, service: n,
                                                           backend: n, detail: UInt64(n) << 8 | UInt64(thread)),
                                 now: 7)
                }
            } else {
                for _ in 0..<3_000_000 {
                    guard let r = table.lookup(key, now: 7) else { continue }
                    seen.add(1, ordering: .relaxed)
                    let writer = Int(r.detail & 0xFF)
                    let whole = r.service == r.backend && r.detail >> 8 == UInt64(r.service)
                        && r.service / 20_000 == writer && (r.direction == .toClient) == (writer == 1)
                    if !whole { torn.add(1, ordering: .relaxed) }
                }
            }
        }
        #expect(torn.load(ordering: .relaxed) == 0, "torn records among \(seen.load(ordering: .relaxed)) read")
        #expect(seen.load(ordering: .relaxed) > 1000, "the reader met the writers")
        #expect(table.lookup(key, now: 7) != nil)
    }
}
