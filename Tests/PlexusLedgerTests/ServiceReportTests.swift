import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Nodes' measured service on the ledger: gateways report attempts, answers and histograms;
/// the ledger sums them by minute and half hour, and the three windows read back what was put
/// in; reports from anyone but a registered gateway or verifier, on nodes its own operator runs, or with
/// figures that do not hang together are refused with nothing changed.
@Suite struct ServiceReportTests {
    let base = VerificationStateTests(params: [:])
    var node: Address { base.nodeKeys[0].address }

    func histogram(_ counts: [Int: UInt32]) -> [UInt32] {
        (0..<ServiceHistogram.buckets).map { counts[$0] ?? 0 }
    }

    func sample(attempts: UInt32, answered: UInt32, ttft: [Int: UInt32] = [:], throughput: [Int: UInt32] = [:], node n: Int = 0, model: String = "m") -> ServiceSample {
        ServiceSample(node: base.nodeKeys[n].address, model: model, attempts: attempts, answered: answered, ttft: histogram(ttft), throughput: histogram(throughput))
    }

    @Test func bucketsAndQuantilesFollowTheEdges() {
        let first = ServiceHistogram.ttftFirstEdge
        #expect(ServiceHistogram.bucket(0, first: first) == 0 && ServiceHistogram.bucket(10, first: first) == 0)
        #expect(ServiceHistogram.bucket(10.5, first: first) == 1 && ServiceHistogram.bucket(14.1, first: first) == 1)
        #expect(ServiceHistogram.bucket(14.2, first: first) == 2 && ServiceHistogram.bucket(20, first: first) == 2)
        #expect(ServiceHistogram.bucket(1e9, first: first) == ServiceHistogram.buckets - 1)
        #expect(ServiceHistogram.bucket(.nan, first: first) == 0 && ServiceHistogram.bucket(-5, first: first) == 0)
        // Every value is at most its bucket's edge and above the edge before.
        for v in stride(from: 0.6, through: 20_000, by: 3.7) {
            let b = ServiceHistogram.bucket(v, first: 0.5)
            guard b < ServiceHistogram.buckets - 1 else { continue }
            #expect(v <= ServiceHistogram.edge(b, first: 0.5) && (b == 0 || v > ServiceHistogram.edge(b - 1, first: 0.5)))
        }
        // 90 answers at 100 ms (bucket 6 ends at 80, 7 at 113) and 10 at 2 s: p50 = 113, p90 = 113, p99 ≈ 2,263.
        var counts = [UInt64](repeating: 0, count: ServiceHistogram.buckets)
        counts[ServiceHistogram.bucket(100, first: first)] = 90
        counts[ServiceHistogram.bucket(2_000, first: first)] = 10
        let p50 = try? #require(ServiceHistogram.quantile(0.5, of: counts, first: first))
        let p99 = try? #require(ServiceHistogram.quantile(0.99, of: counts, first: first))
        #expect(p50.map { $0 >= 100 && $0 < 100 * 2.0.squareRoot() } == true, "\(String(describing: p50))")
        #expect(ServiceHistogram.quantile(0.9, of: counts, first: first) == p50)
        #expect(p99.map { $0 >= 2_000 && $0 < 2_000 * 2.0.squareRoot() } == true, "\(String(describing: p99))")
        #expect(ServiceHistogram.quantile(0.5, of: [UInt64](repeating: 0, count: ServiceHistogram.buckets), first: first) == nil)
    }

    @Test func reportsAddUpPerWindowAndAgeOut() throws {
        let l = try base.network()
        let minute: UInt64 = 60_000
        let t0: UInt64 = 1_000 * 1_800_000  // on a half-hour boundary
        // One report a minute for ten minutes: 10 attempts, 9 answered, each at 100 ms and 50 tokens/s.
        for m in 0..<10 {
            try l.send(4, .reportService(samples: [sample(attempts: 10, answered: 9, ttft: [7: 9], throughput: [13: 9])]), at: t0 + UInt64(m) * minute)
        }
        let record = try #require(l.state.service[ServiceKey(node: node, model: "m")])
        let now = t0 + 9 * minute + 30_000
        let five = record.totals(.fiveMinutes, now: now), thirty = record.totals(.thirtyMinutes, now: now), day = record.totals(.day, now: now)
        #expect(five.attempts == 50 && five.answered == 45 && five.reports == 5)
        #expect(thirty.attempts == 100 && thirty.answered == 90 && day.attempts == 100 && day.ttft[7] == 90 && day.throughput[13] == 90)
        // An hour later the minutes are gone from both short windows; the day still holds them.
        let later = now + 60 * minute
        #expect(record.totals(.fiveMinutes, now: later).attempts == 0 && record.totals(.thirtyMinutes, now: later).attempts == 0)
        #expect(record.totals(.day, now: later).attempts == 100)
        #expect(record.totals(.day, now: now + 25 * 60 * minute).attempts == 0)
        // A report long after drops the slots no window reaches.
        try l.send(4, .reportService(samples: [sample(attempts: 1, answered: 1)]), at: t0 + 2 * 24 * 60 * minute)
        let aged = try #require(l.state.service[ServiceKey(node: node, model: "m")])
        #expect(aged.minutes.count == 1 && aged.halfHours.count == 1)
        // Replicas replaying the blocks, and a ledger restarted from storage, hold the same records.
        let loaded = try l.replayAndRestart()
        #expect(loaded.service == l.state.service)
    }

    @Test func onlyGatewaysReportAndOnlyFiguresThatHangTogether() throws {
        let l = try base.network()
        let good = sample(attempts: 4, answered: 3, ttft: [5: 3], throughput: [10: 2])
        // Not a gateway key: a requestor, a node owner, the gateway's owner.
        try l.refuse(5, .reportService(samples: [good]))
        try l.refuse(1, .reportService(samples: [good]))
        try l.refuse(3, .reportService(samples: [good]))
        // Nothing, too much, twice the same node and model.
        try l.refuse(4, .reportService(samples: []))
        try l.refuse(4, .reportService(samples: Array(repeating: good, count: ServiceSample.maxPerReport + 1)))
        try l.refuse(4, .reportService(samples: [good, good]))
        // No attempts, more answers than attempts, histograms holding more than the answers or of the wrong size.
        try l.refuse(4, .reportService(samples: [sample(attempts: 0, answered: 0)]))
        try l.refuse(4, .reportService(samples: [sample(attempts: 2, answered: 3)]))
        try l.refuse(4, .reportService(samples: [sample(attempts: 5, answered: 3, ttft: [1: 4])]))
        try l.refuse(4, .reportService(samples: [sample(attempts: 5, answered: 3, throughput: [0: 2, 23: 2])]))
        try l.refuse(4, .reportService(samples: [sample(attempts: ServiceSample.maxAttempts + 1, answered: 0)]))
        var short = good
        short.ttft.removeLast()
        try l.refuse(4, .reportService(samples: [short]))
        // An unknown node key, a model the node does not offer, an empty model id.
        var stranger = good
        stranger.node = KeyPair.deterministic("stranger").address
        try l.refuse(4, .reportService(samples: [stranger]))
        try l.refuse(4, .reportService(samples: [sample(attempts: 1, answered: 1, model: "other")]))
        try l.refuse(4, .reportService(samples: [sample(attempts: 1, answered: 1, model: "")]))
        #expect(l.state.service.isEmpty)
        // Both nodes in one report.
        try l.send(4, .reportService(samples: [good, sample(attempts: 2, answered: 2, node: 1)]))
        #expect(l.state.service.count == 2)
        // A verifier reports its probes too.
        try l.send(7, .reportService(samples: [sample(attempts: 1, answered: 0)]))
        #expect(l.state.service[ServiceKey(node: node, model: "m")]?.minutes.last?.totals.attempts == 5)
    }

    @Test func aVerifierDoesNotReportOnItsOwnNode() throws {
        let l = try base.network()
        // Owner 1, who runs node 0, is a verifier too.
        try l.send(1, .registerVerifier)
        try l.refuse(1, .reportService(samples: [sample(attempts: 3, answered: 3)]))
        try l.send(1, .reportService(samples: [sample(attempts: 3, answered: 3, node: 1)]))
        #expect(l.state.service.count == 1)
    }

    @Test func aGatewayDoesNotReportOnItsOwnOwnersNode() throws {
        let l = try base.network()
        // Owner 1, who runs node 0, registers a gateway of its own (key 11).
        let gk = base.net.keys[11]
        try l.send(1, .registerGateway(key: gk.address, keyProof: gk.sign(Registry.gatewayKeyProofBytes(chainId: base.chainId, owner: l.address(1)))))
        try l.refuse(11, .reportService(samples: [sample(attempts: 3, answered: 3)]))
        try l.send(11, .reportService(samples: [sample(attempts: 3, answered: 3, node: 1)]))
        #expect(l.state.service[ServiceKey(node: node, model: "m")] == nil && l.state.service.count == 1)
    }

    @Test func samplesRoundTripAndHostileBytesAreRefused() throws {
        let s = sample(attempts: 9, answered: 7, ttft: [2: 3, 23: 4], throughput: [0: 7])
        #expect(try ServiceSample(canonicalBytes: s.canonicalBytes) == s)
        for n in 0..<s.canonicalBytes.count { #expect(throws: (any Error).self) { try ServiceSample(canonicalBytes: Array(s.canonicalBytes.prefix(n))) } }
        // A histogram whose length says 25.
        var bytes = s.canonicalBytes
        let at = 32 + 4 + 1 + 4 + 4
        bytes[at + 3] = 25
        #expect(throws: PlexusError.self) { try ServiceSample(canonicalBytes: bytes) }
        let tx = base.net.tx(4, nonce: 0, .reportService(samples: [s]))
        #expect(try Transaction(canonicalBytes: tx.canonicalBytes) == tx)
        let json = try JSONEncoder().encode(tx)
        #expect(try JSONDecoder().decode(Transaction.self, from: json) == tx)
    }
}
