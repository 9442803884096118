import Foundation
import Logging
import PlexusCore
import PlexusLedger
import Synchronization

/// Settlement: the recorded receipts sent to the ledger in batches, followed to
/// finality, with its own lifecycle (`run` until cancelled, then one bounded round).
final class Settler: Sendable {
    /// The gateway key: countersigns receipts and signs settlement transactions.
    let key: KeyPair
    let chainId: String
    let ledger: LedgerClient
    let store: ReceiptStore
    let escrow: EscrowBook
    let logger: Logger
    /// Requests this process may have submitted before without learning the outcome (found
    /// unsettled at start, or in a round that failed): looked up before they are sent again.
    private let recovered: Mutex<Set<Hash256>>
    /// Since when rounds have failed, and why the last one did (nil while they succeed), for `/health`.
    let failing = Mutex<(sinceMillis: UInt64, error: String)?>(nil)

    /// Held while a batch's nonces are read and its transactions submitted: the gateway key's
    /// other transactions (service reports, challenges) wait for it rather than take a nonce twice.
    let sending: AsyncLock

    init(key: KeyPair, chainId: String, ledger: LedgerClient, store: ReceiptStore, escrow: EscrowBook,
         recovered: Set<Hash256>, sending: AsyncLock = AsyncLock(), logger: Logger) {
        self.key = key
        self.sending = sending
        self.chainId = chainId
        self.ledger = ledger
        self.store = store
        self.escrow = escrow
        self.recovered = Mutex(recovered)
        self.logger = logger
    }

    /// Settles every `intervalMillis` until cancelled, then runs one last round of at
    /// most `finalSeconds` (what is left is resubmitted on the next start).
    func run(intervalMillis: UInt64, finalSeconds: Int = 3) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(intervalMillis)))
            await settleOnce()
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.settleOnce() }
            group.addTask { try? await Task.sleep(for: .seconds(finalSeconds)) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Submits unsettled receipts in batches, and tracks them to finality.
    /// Each round goes on until nothing is left (up to `settleRounds`
    /// batches), so settlement keeps pace with any request rate.
    func settleOnce() async {
        do {
            for _ in 0..<Self.settleRounds {
                // Records stay "unsettled" until the ledger has answered.
                let batch = store.unsettled(limit: Self.settleBatch)
                if batch.isEmpty { break }
                try await sending.withLock { try await submit(batch) }
                if batch.count < Self.settleBatch { break }
            }
            // Pending settlements are looked at once their challenge window has passed, not every round.
            let height = try await ledger.status().height
            for _ in 0..<Self.settleRounds {
                let due = try store.records(state: "pending", dueBy: height, limit: 4 * Self.settleBatch)
                if due.isEmpty { break }
                let now = try await ledger.settlements(due.map(\.requestId))
                var changes: [(id: Hash256, state: String, due: UInt64)] = []
                for r in due {
                    if let s = now[r.requestId], s.status == .final || s.status == .refunded {
                        // Paid out, or refunded after fraud was upheld: nothing more to watch.
                        changes.append((r.requestId, s.status.rawValue, 0))
                    } else if now[r.requestId]?.status == .disputed {
                        changes.append((r.requestId, "pending", height + 5))
                    } else {
                        // Not final yet (or unknown for now): look again a little later.
                        changes.append((r.requestId, "pending", now[r.requestId].map { max($0.finalHeight, height + 1) } ?? height + 10))
                    }
                }
                try store.setStates(changes)
                if due.count < 4 * Self.settleBatch { break }
            }
            failing.withLock { $0 = nil }
        } catch {
            logger.warning("settlement round failed; will retry", metadata: ["error": "\(error)"])
            let now = SystemClock().nowMillis()
            failing.withLock { $0 = ($0?.sinceMillis ?? now, "\(error)") }
        }
    }

    static let settleBatch = 2_000
    static let settleRounds = 40

    /// `r` with every receipt countersigned (those saved before countersigning get
    /// it now; Ed25519 signatures are deterministic, so it is the same every time).
    func countersigned(_ r: RequestRecord) -> RequestRecord {
        var r = r
        for i in r.receipts.indices where r.receipts[i].gatewaySignature == .empty {
            r.receipts[i].countersign(key, chainId: chainId)
        }
        return r
    }

    /// Sends one batch's receipts to the ledger and records what it made of them.
    private func submit(_ records: [RequestRecord]) async throws {
        var batch = records.map(countersigned)
        // Already settled (a resubmission after a restart or a failed round) is skipped; the
        // ledger's once-only rule would refuse it anyway.
        let doubtful = recovered.withLock { r in batch.map(\.requestId).filter { r.contains($0) } }
        let known = doubtful.isEmpty ? [:] : try await ledger.settlements(doubtful)
        recovered.withLock { r in
            for id in doubtful { r.remove(id) }
            // Until this round's outcome is recorded, a failure leaves these in doubt.
            for x in batch { r.insert(x.requestId) }
        }
        // One transaction per chunk that fits the ledger's `maxTxBytes` (a request's shares stay together).
        let params = try await ledger.params()
        let limit = Int(params.params.first { $0.name == "maxTxBytes" }?.value ?? 16_384) - 512
        // Each request with the spot premium locked when it was admitted.
        var chunks: [(receipts: [Receipt], quotes: [SpotQuote])] = [], chunk: (receipts: [Receipt], quotes: [SpotQuote]) = ([], []), size = 0
        for r in batch where known[r.requestId] == nil && !r.receipts.isEmpty {
            let bytes = r.receipts.reduce(0) { $0 + VersionedReceipt($1).canonicalBytes.count } + (r.quote == nil ? 0 : 48)
            if size + bytes > limit, !chunk.receipts.isEmpty {
                chunks.append(chunk)
                chunk = ([], [])
                size = 0
            }
            chunk.receipts += r.receipts
            if let q = r.quote { chunk.quotes.append(q) }
            size += bytes
        }
        if !chunk.receipts.isEmpty { chunks.append(chunk) }
        if !chunks.isEmpty {
            // The ledger applies transactions on arrival: the chunks go one after another with
            // consecutive nonces, and only the last waits for its block to be committed (blocks
            // are committed in order, so the earlier ones are then durable too).
            async let statusReq = ledger.status()
            async let accountReq = ledger.account(key.address)
            let (status, account) = try await (statusReq, accountReq)
            let fee = Amount(units: params.params.first { $0.name == "minFee" }?.value ?? 0)
            let txs = chunks.enumerated().map { i, c in
                Transaction(chainId: status.chainId, from: key, nonce: account.nonce + UInt64(i), fee: fee,
                            body: c.quotes.isEmpty ? .settle(receipts: c.receipts) : .settleQuoted(receipts: c.receipts, quotes: c.quotes))
            }
            // In batches (one request each, applied in order) of as many transactions of up to
            // `maxTxBytes` as a request holds; only the last batch waits for its block.
            let perRequest = max(1, min(LedgerAPI.maxBatchTransactions, (LedgerAPI.maxBatchBodyBytes - 1024) / (limit + 512)))
            for start in stride(from: 0, to: txs.count, by: perRequest) {
                let end = min(txs.count, start + perRequest)
                for r in try await ledger.submitAll(Array(txs[start..<end]), waitForCommit: end == txs.count) { _ = try r.get() }
            }
        }
        let after = try await ledger.settlements(batch.map(\.requestId))
        var answered: [(record: RequestRecord, due: UInt64)] = []
        for i in batch.indices {
            if let s = after[batch[i].requestId], s.gateway == key.address {
                batch[i].state = s.status.rawValue
                answered.append((batch[i], s.status == .final ? 0 : s.finalHeight))
            } else {
                batch[i].state = "rejected"
                batch[i].reason = "the ledger refused the receipts"
                answered.append((batch[i], 0))
            }
            escrow.settled(batch[i].requestor, batch[i].charge.units)
        }
        try store.archive(answered)
        recovered.withLock { r in for x in batch { r.remove(x.requestId) } }
    }
}
