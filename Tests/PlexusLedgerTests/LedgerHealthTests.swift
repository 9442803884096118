import PlexusCore
import Testing
@testable import PlexusLedger

/// A ledger's `/health`: a stopped ledger, a replica behind its log, a solo ledger whose
/// waiting transactions get no block, each said with why; a working one is ok.
@Suite struct LedgerHealthTests {
    static func status(height: UInt64 = 10, timeMillis: UInt64, pending: Int, replica: LedgerService.ReplicaStatus? = nil) -> LedgerService.Status {
        LedgerService.Status(chainId: "c", genesisHash: .zero, height: height, blockHash: .zero, stateRoot: .zero, timeMillis: timeMillis,
                             pendingTransactions: pending, orderer: KeyPair.deterministic("o").address, replica: replica, historyFrom: nil)
    }

    @Test func eachProblemIsNamedWithItsCause() {
        let now: UInt64 = 1_000_000
        // Working: nothing pending, or a block recently.
        #expect(LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: 0, pending: 0), blockIntervalMillis: 100, now: now).isEmpty)
        #expect(LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: now - 2_000, pending: 5), blockIntervalMillis: 100, now: now).isEmpty)
        // Transactions wait and no block came for 11 s.
        let stalled = LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: now - 11_000, pending: 5), blockIntervalMillis: 100, now: now)
        #expect(stalled.map(\.component) == ["sealing"] && stalled[0].reason.contains("5 transactions wait"))
        // ... unless this process started only just now (its last block is older than the process).
        #expect(LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: now - 11_000, pending: 5), blockIntervalMillis: 100,
                                      startedMillis: now - 1_000, now: now).isEmpty)
        // A slow block interval stretches the bound.
        #expect(LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: now - 11_000, pending: 5), blockIntervalMillis: 1_000, now: now).isEmpty)
        // A stopped ledger says why.
        let failed = LedgerHealth.problems(failure: PlexusError(.invalidState, "state root mismatch at 12"),
                                           status: Self.status(timeMillis: now, pending: 0), blockIntervalMillis: 100, now: now)
        #expect(failed.map(\.component) == ["ledger"] && failed[0].reason.contains("state root mismatch at 12"))
        // A replica 40 blocks and 12 s behind its log.
        let replica = LedgerService.ReplicaStatus(address: KeyPair.deterministic("r").address, role: "follower", sealer: nil, slot: 3,
                                                  lagBlocks: 40, lagMillis: 12_000, healthy: true, failure: nil)
        let lagging = LedgerHealth.problems(failure: nil, status: Self.status(timeMillis: now, pending: 0, replica: replica), blockIntervalMillis: 100, now: now)
        #expect(lagging.map(\.component) == ["replication"] && lagging[0].reason.contains("40 blocks behind"))
        #expect(HealthProblem.verdict(lagging) == ("unhealthy", 503) && HealthProblem.verdict([]) == ("ok", 200))
    }
}
