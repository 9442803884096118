import PlexusCore

/// What a ledger's `/health` finds wrong: pure, given its state now.
public enum LedgerHealth {
    /// A replica further behind its log than this, or a solo ledger with transactions
    /// waiting and no block for this long (or 50 block intervals, if longer), is unhealthy.
    public static let stallMillis: UInt64 = 10_000

    public static func problems(failure: PlexusError?, status: LedgerService.Status, blockIntervalMillis: UInt64, startedMillis: UInt64 = 0, now: UInt64) -> [HealthProblem] {
        var out: [HealthProblem] = []
        if let failure {
            out.append(HealthProblem("ledger", "stopped applying blocks: \(failure.message)"))
        }
        if let r = status.replica {
            if r.lagMillis > stallMillis {
                out.append(HealthProblem("replication", "\(r.lagBlocks) blocks behind the log for \(r.lagMillis / 1_000) s"))
            }
        } else if failure == nil, status.pendingTransactions > 0 {
            let since = max(status.timeMillis, startedMillis)
            let age = now >= since ? now - since : 0
            if age > max(stallMillis, 50 * blockIntervalMillis) {
                out.append(HealthProblem("sealing", "\(status.pendingTransactions) transactions wait and the last block (height \(status.height)) is \((now >= status.timeMillis ? now - status.timeMillis : 0) / 1_000) s old"))
            }
        }
        return out
    }
}
