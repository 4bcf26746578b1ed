import SluiceDataPlane
import Testing

/// The per-worker ICMP error budget (RFC 4443 §2.4(f)).
@Suite struct ICMPErrorBudgetTests {
    @Test func aBudgetIsSpentWithinASecondAndRefilledInTheNext() {
        var budget = ICMPErrorBudget(perSecond: 3)
        var taken: [Bool] = []
        for _ in 0..<5 { taken.append(budget.take(now: 10)) }
        #expect(taken == [true, true, true, false, false])
        taken = []
        for _ in 0..<4 { taken.append(budget.take(now: 11)) }
        #expect(taken == [true, true, true, false])
        // Any change of second refills, also a clock that wrapped around.
        let afterWrap = budget.take(now: 0)
        #expect(afterWrap)
    }

    @Test func zeroSendsNone() {
        var budget = ICMPErrorBudget(perSecond: 0)
        let first = budget.take(now: 1), second = budget.take(now: 2)
        #expect(!first && !second)
    }
}
