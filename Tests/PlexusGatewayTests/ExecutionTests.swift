import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire
import Testing
@testable import PlexusGateway

/// Execution's transitions, driven by events as the shell would send them.
@Suite struct ExecutionTests {
    static let gateway = KeyPair.deterministic("gateway").address
    static let requestor = KeyPair.deterministic("requestor").address
    static let requestId = Hash256.of([7])
    static let candidates = RoutingTests.nodes([0.1, 0.2, 0.3, 0.4, 0.5]).map { n in
        Candidate(node: n, offer: n.offers[0], stats: NodeStats())
    }
    static let base = GenerateRequest(model: "m", messages: [.init(role: "user", content: "hi")], maxTokens: 16, temperature: 0,
                                      topP: 1, seed: 0, stop: [])

    static func machine(limit: Int = 4, timeout: UInt64 = 10_000) -> Execution {
        Execution(base: base, requestId: requestId, requestor: requestor, gateway: gateway, candidates: candidates,
                  attemptLimit: limit, startMillis: 1_000, timeoutMillis: timeout)
    }

    static func receipt(node: Address, first: Int, tokens: Int) -> Receipt {
        Receipt(requestId: requestId, requestHash: Hash256.of([1]), requestor: requestor, node: node, modelHash: Hash256.of([2]),
                inputTokens: 10, outputTokens: UInt64(tokens), firstOutputToken: UInt64(first),
                priceIn: Amount(units: 100_000_000), priceOut: Amount(units: 100_000_000), outputHash: Hash256.of([3]), timeMillis: 5)
    }

    static let retryable = NodeFailure(status: 503, code: "node_unreachable", message: "gone", retryable: true)

    /// The node a directive list calls, and the continuation it is sent.
    static func called(_ ds: [Execution.Directive]) -> (Address, [TokenID])? {
        for d in ds { if case let .call(c, gen, _) = d { return (c.node.nodeKey, gen.continuation) } }
        return nil
    }

    static func failure(_ ds: [Execution.Directive]) -> OpenAIError? {
        for d in ds { if case let .fail(e) = d { return e } }
        return nil
    }

    static func ended(_ ds: [Execution.Directive]) -> [Execution.AttemptOutcome] {
        ds.compactMap { if case let .endAttempt(_, o) = $0 { o } else { nil } }
    }

    @Test func aServedRequestIsRecordedThenFinished() throws {
        var m = Self.machine()
        #expect(Self.called(m.start())?.0 == Self.candidates[0].node.nodeKey)
        let emitted = [m.receive(token: 5, text: "he"), m.receive(token: 6, text: "llo"), m.receive(token: 7, text: "")]
        #expect(emitted == ["he", "llo", nil])
        let node = Self.candidates[0].node.nodeKey
        let ds = m.on(.completed([Self.receipt(node: node, first: 0, tokens: 3)], finish: "stop", promptTokens: 10))
        guard case let .record(record)? = ds.first, ds.count == 1 else { Issue.record("no record: \(ds)"); return }
        #expect(record.nodes == [node] && record.outputTokens == [3] && record.state == "unsettled")
        #expect(record.receipts.first?.gateway == Self.gateway && record.receipts.first?.gatewaySignature == .empty)
        #expect(record.charge == (try record.receipts[0].cost()))
        let done = m.on(.recorded(record))
        #expect(Self.ended(done) == [.served(tokens: 3)])
        guard case let .finish(outcome)? = done.last else { Issue.record("not finished: \(done)"); return }
        #expect(outcome.text == "hello" && outcome.completionTokens == 3 && outcome.promptTokens == 10 && outcome.attempts == 1)
        #expect(outcome.lastNode == node && outcome.finish == "stop")
        // Nothing further happens to a finished request.
        #expect(m.receive(token: 1, text: "x") == nil && m.on(.clientLeft).isEmpty)
    }

    @Test func aFailureBeforeTheFirstTokenMovesToTheNextNodeFromScratch() {
        var m = Self.machine()
        _ = m.start()
        let ds = m.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_100))
        #expect(Self.ended(ds) == [.failed(nodeAtFault: true)])
        let next = Self.called(ds)
        #expect(next?.0 == Self.candidates[1].node.nodeKey && next?.1 == [])
        #expect(m.attempts == 2)
    }

    @Test func aFailureAfterTheFirstTokenIsContinuedElsewhereAndBothSharesAreKept() throws {
        var m = Self.machine()
        _ = m.start()
        _ = m.receive(token: 11, text: "a")
        _ = m.receive(token: 12, text: "b")
        // The first node is gone from the directory's list now; the rest of the plan still counts.
        let ds = m.on(.failed(Self.retryable, candidates: Array(Self.candidates.dropFirst(2)), nowMillis: 1_100))
        let next = try #require(Self.called(ds))
        #expect(next.0 == Self.candidates[2].node.nodeKey && next.1 == [11, 12])
        _ = m.receive(token: 13, text: "c")
        let ds2 = m.on(.completed([Self.receipt(node: next.0, first: 2, tokens: 1)], finish: "length", promptTokens: 12))
        guard case let .record(record)? = ds2.first else { Issue.record("no record"); return }
        // The failed node's share is listed (unpaid: it has no receipt).
        #expect(record.nodes == [Self.candidates[0].node.nodeKey, next.0] && record.outputTokens == [2, 1] && record.receipts.count == 1)
        guard case let .finish(outcome)? = m.on(.recorded(record)).last else { Issue.record("not finished"); return }
        #expect(outcome.text == "abc" && outcome.completionTokens == 3 && outcome.attempts == 2)
    }

    @Test func aRequestsOwnFaultEndsItWithTheNodesAnswer() {
        var m = Self.machine()
        _ = m.start()
        let ds = m.on(.failed(NodeFailure(status: 400, code: "context_length_exceeded", message: "too long", retryable: false),
                              candidates: Self.candidates, nowMillis: 1_100))
        #expect(Self.ended(ds) == [.failed(nodeAtFault: false)] && Self.called(ds) == nil)
        #expect(Self.failure(ds)?.status == 400 && Self.failure(ds)?.code == "context_length_exceeded" && Self.failure(ds)?.type == "invalid_request_error")
    }

    @Test func aBadReceiptFailsOverLikeAnyNodeFault() {
        var m = Self.machine()
        _ = m.start()
        _ = m.receive(token: 1, text: "x")
        _ = m.on(.completed([Self.receipt(node: Self.candidates[0].node.nodeKey, first: 0, tokens: 1)], finish: "stop", promptTokens: 1))
        let bad = NodeFailure(status: 502, code: "bad_receipt", message: "invalid receipt", retryable: true)
        let ds = m.on(.failed(bad, candidates: Self.candidates, nowMillis: 1_200))
        #expect(Self.ended(ds) == [.failed(nodeAtFault: true)])
        #expect(Self.called(ds)?.1 == [1])
    }

    @Test func theClientLeavingAbandonsTheAttempt() {
        var m = Self.machine()
        _ = m.start()
        _ = m.receive(token: 1, text: "x")
        let ds = m.on(.clientLeft)
        #expect(Self.ended(ds) == [.abandoned])
        guard case .abandon? = ds.last else { Issue.record("not abandoned: \(ds)"); return }
        #expect(m.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_300)).isEmpty)
    }

    @Test func noAttemptStartsAfterTheDeadline() {
        var m = Self.machine(timeout: 500)
        _ = m.start()
        let ds = m.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_500))
        #expect(Self.called(ds) == nil && Self.failure(ds)?.status == 503 && Self.failure(ds)?.message.contains("timeout") == true)
        var late = Self.machine(timeout: 500)
        _ = late.start()
        _ = late.receive(token: 1, text: "x")
        let after = late.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_600))
        #expect(Self.failure(after)?.status == 502 && Self.failure(after)?.code == "stream_interrupted")
    }

    @Test func theAttemptLimitAndTheCandidatesBoundTheTries() {
        var m = Self.machine(limit: 3)
        var ds = m.start()
        var calls = 0
        while Self.called(ds) != nil {
            calls += 1
            ds = m.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_100))
        }
        #expect(calls == 3 && Self.failure(ds)?.code == "no_node_available" && Self.failure(ds)?.retryAfter == 1)
        // Every node tried once at most, even with a higher limit.
        var all = Self.machine(limit: 10)
        ds = all.start()
        var seen: [Address] = []
        while let (node, _) = Self.called(ds) {
            seen.append(node)
            ds = all.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_100))
        }
        #expect(seen == Self.candidates.map(\.node.nodeKey))
    }

    @Test func outputWithoutTokenIdsIsNotContinued() {
        var m = Self.machine()
        _ = m.start()
        _ = m.receive(token: -1, text: "upstream text")
        let ds = m.on(.failed(Self.retryable, candidates: Self.candidates, nowMillis: 1_100))
        #expect(Self.called(ds) == nil && Self.failure(ds)?.code == "stream_interrupted")
        #expect(Self.failure(ds)?.message.contains("upstream") == true)
    }
}
