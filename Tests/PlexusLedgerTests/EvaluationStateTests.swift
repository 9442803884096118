import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Evaluations on the ledger: recorded by a staked evaluator with the settled requests behind
/// them; the latest per evaluator and suite kept; anything else refused with nothing changed.
@Suite struct EvaluationStateTests {
    // Account 7 is a staked verifier (20 PLX); here it also deposits escrow and asks the model.
    let base = VerificationStateTests(params: [:])

    func asked(_ l: VerificationStateTests.Ledger, _ n: Int, by i: Int = 7, prefix: String = "eval") throws -> [Hash256] {
        try l.send(i, .deposit(requestor: l.address(i), amount: Amount(units: VerificationStateTests.plx)))
        let receipts = (0..<n).map { base.receipt("\(prefix)-\($0)", requestor: i, output: 4, exact: false) }
        try l.send(4, .settle(receipts: receipts))
        return receipts.map(\.requestId)
    }

    func evaluation(_ ids: [Hash256], correct: UInt32, suite: Hash256 = Hash256.of(Array("suite".utf8))) -> Evaluation {
        Evaluation(suite: suite, name: "plexus-basic-v1", evaluator: .treasury, correct: correct, requests: ids, height: 0)
    }

    @Test func aStakedEvaluatorRecordsItsScoreWithItsRequests() throws {
        let l = try base.network()
        let ids = try asked(l, 4)
        #expect(ids.allSatisfy { l.state.settlements[$0] != nil })
        try l.send(7, .recordEvaluation(model: "m", evaluation: evaluation(ids, correct: 3)))
        let e = try #require(l.state.evaluations["m"]?.first)
        #expect(e.evaluator == l.address(7) && e.correct == 3 && e.tasks == 4 && e.scoreBps == 7_500 && e.requests == ids && e.height == l.state.height)
        // Run again: the latest replaces it; another suite sits beside it.
        let again = try asked(l, 4, prefix: "again")
        try l.send(7, .recordEvaluation(model: "m", evaluation: evaluation(again, correct: 4)))
        try l.send(7, .recordEvaluation(model: "m", evaluation: evaluation(again, correct: 1, suite: Hash256.of(Array("other".utf8)))))
        #expect(l.state.evaluations["m"]?.count == 2)
        #expect(l.state.evaluations["m"]?.first { $0.suite == Hash256.of(Array("suite".utf8)) }?.correct == 4)
    }

    @Test func evaluationsWithoutStakeOrOthersRequestsAreRefused() throws {
        let l = try base.network()
        let ids = try asked(l, 3)
        let mine = evaluation(ids, correct: 2)
        // Requestor 5 has no stake; 8 is staked but the requests are 7's.
        try l.refuse(5, .recordEvaluation(model: "m", evaluation: mine))
        try l.refuse(8, .recordEvaluation(model: "m", evaluation: mine))
        // Unknown model, unknown request, the same request twice, no request, more right than asked, an empty name.
        try l.refuse(7, .recordEvaluation(model: "no-such-model", evaluation: mine))
        try l.refuse(7, .recordEvaluation(model: "m", evaluation: evaluation(ids + [Hash256.of([9])], correct: 1)))
        try l.refuse(7, .recordEvaluation(model: "m", evaluation: evaluation([ids[0], ids[0]], correct: 1)))
        try l.refuse(7, .recordEvaluation(model: "m", evaluation: evaluation([], correct: 0)))
        try l.refuse(7, .recordEvaluation(model: "m", evaluation: evaluation(ids, correct: 4)))
        var unnamed = mine
        unnamed.name = ""
        try l.refuse(7, .recordEvaluation(model: "m", evaluation: unnamed))
        #expect(l.state.evaluations["m"] == nil)
        try l.send(7, .recordEvaluation(model: "m", evaluation: mine))
        #expect(l.state.evaluations["m"]?.count == 1)
    }
}

/// Licences by use class: commercial ones allow every use, non-commercial ones not commercial
/// use, research-only ones only academic use, unknown ones none.
@Suite struct LicenseTests {
    @Test func usesByLicence() {
        #expect(Licenses.uses("Apache-2.0") == Set(Licenses.Use.allCases))
        #expect(Licenses.uses("mit") == Set(Licenses.Use.allCases))
        #expect(Licenses.uses("cc-by-nc-4.0") == [.nonCommercial, .academic])
        #expect(Licenses.uses("research-only") == [.academic])
        #expect(Licenses.uses("my-own-terms").isEmpty)
        #expect(Licenses.uses("").isEmpty)
    }
}
