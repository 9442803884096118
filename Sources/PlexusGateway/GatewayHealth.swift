import PlexusCore

/// What a gateway's `/health` finds wrong: pure, given what the gateway knows now.
enum GatewayHealth {
    /// What the gateway knows of its ledger, nodes and settlement.
    struct Facts {
        var now: UInt64
        /// When the node registry was last read from the ledger, and why reading it failed since.
        var registryMillis: UInt64
        var registryError: String?
        /// Nodes the ledger lists as servable, and how many of them are out (breaker open).
        var nodes: Int
        var nodesOut: Int
        /// Since when settlement rounds have failed, and why (nil while they succeed).
        var settlementFailing: (sinceMillis: UInt64, error: String)?
        /// The registry is refreshed every settlement interval; this many missed is a problem.
        var staleAfterMillis: UInt64
    }

    static func problems(_ f: Facts) -> [HealthProblem] {
        var out: [HealthProblem] = []
        if f.now > f.registryMillis &+ f.staleAfterMillis {
            let why = f.registryError.map { ": \($0.prefix(300))" } ?? ""
            out.append(HealthProblem("ledger", "the node registry has not been read for \(HealthProblem.secondsAgo(f.registryMillis, now: f.now)) s\(why)"))
        }
        if f.nodes == 0 {
            out.append(HealthProblem("nodes", "the ledger lists no node this gateway can route to (none registered, or all jailed)"))
        } else if f.nodesOut == f.nodes {
            out.append(HealthProblem("nodes", "every node (\(f.nodes)) is failing: their breakers are open"))
        }
        if let s = f.settlementFailing, f.now > s.sinceMillis &+ f.staleAfterMillis {
            out.append(HealthProblem("settlement", "settlement rounds have failed for \(HealthProblem.secondsAgo(s.sinceMillis, now: f.now)) s: \(s.error.prefix(300))"))
        }
        return out
    }
}

extension Gateway {
    /// The facts `/health` judges, read now.
    func healthFacts() -> GatewayHealth.Facts {
        let now = SystemClock().nowMillis()
        let d = directory.health(now: now)
        return GatewayHealth.Facts(now: now, registryMillis: d.refreshedMillis, registryError: d.refreshError, nodes: d.nodes, nodesOut: d.out,
                                   settlementFailing: settler.failing.withLock { $0 },
                                   staleAfterMillis: max(15_000, 5 * config.settleIntervalMillis))
    }
}
