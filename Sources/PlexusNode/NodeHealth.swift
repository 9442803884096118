import Foundation
import PlexusCore
import PlexusLedger
import Synchronization

/// What a node's `/health` finds wrong: whether gateways can find it on the ledger (listed,
/// at this endpoint, not jailed) and whether it can reach the ledger (to learn of new
/// gateways). Read every `interval` by `watch`; judged by `problems`, which is pure.
final class NodeHealth: Sendable {
    struct Facts: Sendable {
        /// When the ledger last answered, and why it did not since.
        var ledgerMillis: UInt64
        var ledgerError: String?
        /// Whether the registry lists this node, at which endpoint, and whether its operator is jailed.
        var listed = true
        var endpoint: String?
        var jailed = false
    }

    let facts: Mutex<Facts>
    static let staleAfterMillis: UInt64 = 30_000

    init(now: UInt64) { facts = Mutex(Facts(ledgerMillis: now)) }

    static func problems(_ f: Facts, expectedEndpoint: String?, now: UInt64) -> [HealthProblem] {
        var out: [HealthProblem] = []
        if now > f.ledgerMillis &+ staleAfterMillis {
            out.append(HealthProblem("ledger", "no answer from the ledger for \(HealthProblem.secondsAgo(f.ledgerMillis, now: now)) s (new gateways cannot be admitted): \((f.ledgerError ?? "").prefix(300))"))
        }
        if !f.listed {
            out.append(HealthProblem("registration", "the ledger does not list this node: gateways cannot route to it"))
        } else if let expectedEndpoint, let e = f.endpoint, e != expectedEndpoint {
            out.append(HealthProblem("registration", "the ledger lists this node at \(e.prefix(200)), not \(expectedEndpoint.prefix(200))"))
        }
        if f.jailed {
            out.append(HealthProblem("standing", "the operator is jailed: gateways route nothing to this node until the jail ends"))
        }
        return out
    }

    /// Reads the node's registration every `interval` until cancelled.
    func watch(node: Address, ledger: LedgerClient, interval: Duration = .seconds(5)) async {
        while !Task.isCancelled {
            do {
                let registry = try await ledger.nodeRegistry()
                let mine = registry.nodes.first { $0.nodeKey == node }
                let now = SystemClock().nowMillis()
                facts.withLock {
                    $0.ledgerMillis = now
                    $0.ledgerError = nil
                    $0.listed = mine != nil
                    $0.endpoint = mine?.endpoint
                    $0.jailed = mine.map { registry.standing?[$0.owner.text]?.jailed == true } ?? false
                }
            } catch {
                facts.withLock { $0.ledgerError = "\(error)" }
            }
            try? await Task.sleep(for: interval)
        }
    }
}
