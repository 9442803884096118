import Dispatch
import Logging
import Metrics
import Foundation
import PlexusCore

/// A transaction whose signature was checked, with its hash and encoded size.
public struct Ordered: Sendable {
    public var tx: Transaction
    public var hash: Hash256
    public var size: Int
}

/// What orders a replica's submissions (the replicated ledger's `LedgerReplica`).
public protocol TransactionOrdering: Sendable {
    /// Orders `txs`; with `waitForCommit`, answers once this replica has written the block carrying each.
    func order(_ txs: [Ordered], waitForCommit: Bool) async -> [Result<LedgerService.Receipt, PlexusError>]
    /// The replica's role and lag, for `/v1/status`.
    func replicaStatus() -> LedgerService.ReplicaStatus?
}

/// The `solo` orderer: owns the chain, accepts transactions, seals a block
/// whenever transactions are pending (at most every `blockInterval`), writes
/// it durably, and then acknowledges the transactions in it.
///
/// Writing block *h* happens off the actor while block *h+1* is being
/// built; a transaction is acknowledged as committed only after the database
/// transaction holding its block has completed.
public actor LedgerService {
    /// How a submitted transaction fared.
    public struct Receipt: Sendable, Codable {
        public var hash: Hash256
        public var height: UInt64
        public var index: Int
        /// Whether the block holding it is durably committed.
        public var committed: Bool
    }

    /// The chain's head as the API reports it.
    public struct Status: Sendable, Codable {
        public var chainId: String
        public var genesisHash: Hash256
        public var height: UInt64
        public var blockHash: Hash256
        public var stateRoot: Hash256
        public var timeMillis: UInt64
        public var pendingTransactions: Int
        public var orderer: Address
        /// A replica of a replicated ledger: its role (`sealer` or `follower`), the last
        /// log entry it applied, and its lag behind the log.
        public var replica: ReplicaStatus?
        /// Started from a snapshot: the first height whose block (and transactions) this
        /// ledger holds; nil when it holds every block from genesis.
        public var historyFrom: UInt64?
    }

    /// A replica's place in the replicated ledger.
    public struct ReplicaStatus: Sendable, Codable, Hashable {
        public var address: Address
        public var role: String
        public var sealer: Address?
        public var slot: UInt64
        public var lagBlocks: UInt64
        public var lagMillis: UInt64
        public var healthy: Bool
        public var failure: String?

        public init(address: Address, role: String, sealer: Address?, slot: UInt64, lagBlocks: UInt64, lagMillis: UInt64,
                    healthy: Bool, failure: String?) {
            self.address = address
            self.role = role
            self.sealer = sealer
            self.slot = slot
            self.lagBlocks = lagBlocks
            self.lagMillis = lagMillis
            self.healthy = healthy
            self.failure = failure
        }
    }

    let store: BlockStore
    let signer: KeyPair
    let clock: any WallClock
    let logger: Logger
    nonisolated let blockInterval: Duration
    /// When this process started serving (for `/health`: a block older than that is not a stall of this process's).
    nonisolated let startedMillis = SystemClock().nowMillis()
    public nonisolated let genesis: Genesis
    /// Started from a snapshot: the snapshot's height, the first block held.
    public nonisolated let historyFrom: UInt64?
    public nonisolated let chainId: String
    /// Replicated mode: the keys that may seal blocks, and the replica ordering this
    /// replica's submissions (set by `LedgerReplica`); nil for the solo orderer.
    public nonisolated let sealers: Set<Address>?
    nonisolated let ordering = Locked<(any TransactionOrdering)?>(nil)
    /// Replicated mode: the last log entry applied (or passed over), and the outcomes awaited of transactions.
    private(set) var appliedSlot: UInt64 = 0
    /// Expected transactions, with their outcome once a written block carried them.
    private var watched: [Hash256: Result<Receipt, PlexusError>?] = [:]
    /// Waiters for every one of a group of expected transactions.
    private var groups: [Int: (hashes: [Hash256], waiter: CheckedContinuation<Void, Never>)] = [:]
    /// The block writes under way, each after the one before.
    private var lastWrite: Task<Void, Never>?

    private var chain: Chain
    private var committedHeight: UInt64
    private var committedHeader: BlockHeader?
    private var committedHash: Hash256
    /// Replicated mode: the state root after the last durable block.
    private var durableRoot: Hash256?
    private var failure: PlexusError?
    private var commitWaiters: [UInt64: [CheckedContinuation<Void, any Error>]] = [:]
    private var heightWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiterID = 0
    private var sealTask: Task<Void, Never>?
    /// The seal-and-write under way: the actor is re-entered while a block's write is
    /// awaited, and blocks must reach the disk one at a time, in order.
    private var writing: Task<Void, Never>?

    private let txCounter = Counter(label: "plexus_ledger_transactions_total", dimensions: [("result", "accepted")])
    private let rejectCounter = Counter(label: "plexus_ledger_transactions_total", dimensions: [("result", "rejected")])
    private let blockCounter = Counter(label: "plexus_ledger_blocks_total")
    private let heightGauge = Gauge(label: "plexus_ledger_height")
    private let proposalsGauge = Gauge(label: "plexus_ledger_proposals", dimensions: [("voting", "any")])
    private let openProposalsGauge = Gauge(label: "plexus_ledger_proposals", dimensions: [("voting", "open")])
    private let communitiesGauge = Gauge(label: "plexus_ledger_communities")
    private let federatedGauge = Gauge(label: "plexus_ledger_federated_communities")
    private let commitTimer = Metrics.Timer(label: "plexus_ledger_block_commit_seconds")
    private let skippedCounter = Counter(label: "plexus_ledger_log_entries_skipped_total")

    /// Opens the chain stored in `store`, checking that the loaded state
    /// reproduces the last block's state root.
    public init(store: BlockStore, signer: KeyPair, blockInterval: Duration = .milliseconds(100), replicated: Bool = false,
                clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "plexus.ledger")) throws {
        let snap = try store.load()
        if replicated {
            let sealers = snap.genesis.sealers ?? []
            guard sealers.contains(signer.address) else {
                throw PlexusError(.badSignature, "\(signer.address) is not one of this chain's sealers (its genesis lists \(sealers.count))")
            }
            self.sealers = Set(sealers)
        } else {
            guard snap.genesis.orderer == signer.address else {
                throw PlexusError(.badSignature, "this chain's orderer is \(snap.genesis.orderer), not \(signer.address)")
            }
            self.sealers = nil
        }
        var chain = Chain(state: snap.state, tipHash: snap.tipHash, orderer: snap.genesis.orderer)
        let root = chain.stateRoot()
        // (An ordered block's header carries the root before it: the next block checks this one's.)
        if let tip = snap.tip, !tip.ordered, tip.stateRoot != root {
            throw PlexusError(.stateMismatch, "stored state has root \(root) but block \(tip.height) says \(tip.stateRoot); run `plexus ledger verify`")
        }
        self.store = store
        self.signer = signer
        self.clock = clock
        self.logger = logger
        self.blockInterval = blockInterval
        self.genesis = snap.genesis
        self.chainId = snap.genesis.chainId
        self.chain = chain
        self.committedHeight = snap.state.height
        self.committedHeader = snap.tip
        self.committedHash = snap.tipHash
        self.appliedSlot = snap.slot
        self.historyFrom = try store.startingSnapshot().map(\.height)
        if replicated { self.durableRoot = root }
        heightGauge.record(Double(snap.state.height))
    }

    /// With a heartbeat, an empty block is sealed whenever none was for that
    /// long, so that block-counted delays (releases, challenge windows) pass
    /// on an idle chain.
    public var heartbeat: Duration?
    private var lastSeal = ContinuousClock.now

    public func setHeartbeat(_ d: Duration?) { heartbeat = d }

    /// Starts the sealing loop.
    public func start() {
        guard sealTask == nil, sealers == nil else { return }
        sealTask = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                try? await Task.sleep(for: self.blockInterval)
                await self.sealAndWrite()
                if await self.failure != nil { return }
            }
        }
    }

    /// Stops sealing after writing what is pending.
    public func stop() async {
        sealTask?.cancel()
        sealTask = nil
        await sealAndWrite()
    }

    /// Checks size and signature, then applies `tx` to the open block.
    /// With `waitForCommit`, returns only after its block is durable.
    public nonisolated func submit(_ tx: Transaction, waitForCommit wait: Bool) async throws -> Receipt {
        // Encode once: the hash, the size check and the signature all use these bytes.
        let bytes = tx.canonicalBytes
        let hash = Hash256.of(bytes)
        if let ordering = ordering.value {
            // Replicated: the sealing replica checks the signature, once, whichever replica it came through.
            return try await ordering.order([Ordered(tx: tx, hash: hash, size: bytes.count)], waitForCommit: wait)[0].get()
        }
        guard tx.from.verifies(tx.signature, over: Array(bytes[0..<(bytes.count - 64)])) else {
            throw PlexusError(.badSignature, "signature does not verify for \(tx.from.short) over this transaction")
        }
        var receipt = try await accept(tx, hash: hash, size: bytes.count)
        if wait {
            try await self.waitForCommit(height: receipt.height)
            receipt.committed = true
        }
        return receipt
    }

    /// Submits `txs` in order, as `submit` would one by one, with their
    /// signatures verified together; a transaction refused does not stop the
    /// ones after it (which then usually fail on their nonce). With
    /// `waitForCommit`, returns once the block of the last one accepted is durable.
    public nonisolated func submitAll(_ txs: [Transaction], waitForCommit wait: Bool) async throws -> [Result<Receipt, PlexusError>] {
        let encoded = txs.map { tx -> (bytes: [UInt8], hash: Hash256) in
            let bytes = tx.canonicalBytes
            return (bytes, Hash256.of(bytes))
        }
        if let ordering = ordering.value {
            return await ordering.order(txs.indices.map { Ordered(tx: txs[$0], hash: encoded[$0].hash, size: encoded[$0].bytes.count) },
                                        waitForCommit: wait)
        }
        let valid = Ed25519.verify(batch: zip(txs, encoded).map { tx, e in
            (tx.signature.bytes, tx.from.bytes, Array(e.bytes[0..<(e.bytes.count - 64)]))
        }, cache: SignatureCheck.keyCache)
        var results = await acceptAll(txs.indices.map { (txs[$0], encoded[$0].hash, encoded[$0].bytes.count, valid[$0]) })
        if wait, let height = results.compactMap({ try? $0.get().height }).max() {
            try await waitForCommit(height: height)
            results = results.map { $0.map { var r = $0; r.committed = true; return r } }
        }
        return results
    }

    /// `accept` for each transaction in order (one turn on the actor); those whose signature failed are refused.
    private func acceptAll(_ txs: [(tx: Transaction, hash: Hash256, size: Int, signed: Bool)]) -> [Result<Receipt, PlexusError>] {
        txs.map { t in
            guard t.signed else {
                return .failure(PlexusError(.badSignature, "signature does not verify for \(t.tx.from.short) over this transaction"))
            }
            do { return .success(try accept(t.tx, hash: t.hash, size: t.size)) } catch let e as PlexusError {
                return .failure(e)
            } catch {
                return .failure(PlexusError(.invalidState, "\(error)"))
            }
        }
    }

    /// Submits transactions whose signatures were already verified (by the caller, in bulk).
    public func submitVerified(_ txs: [(Transaction, Hash256)]) -> [Result<Receipt, PlexusError>] {
        txs.map { tx, hash in
            do { return .success(try acceptChecked(tx, hash: hash)) } catch let e as PlexusError {
                return .failure(e)
            } catch {
                return .failure(PlexusError(.invalidState, "\(error)"))
            }
        }
    }

    private func accept(_ tx: Transaction, hash: Hash256, size: Int) throws -> Receipt {
        let limit = chain.state.params[.maxTxBytes]
        guard UInt64(size) <= limit else {
            rejectCounter.increment()
            throw PlexusError(.tooLarge, "transaction is \(size) bytes; the limit is \(limit)")
        }
        return try acceptChecked(tx, hash: hash)
    }

    private func acceptChecked(_ tx: Transaction, hash: Hash256) throws -> Receipt {
        if let failure { throw failure }
        do {
            let (height, index) = try chain.submit(tx, hash: hash, nowMillis: clock.nowMillis())
            txCounter.increment()
            return Receipt(hash: hash, height: height, index: index, committed: false)
        } catch {
            rejectCounter.increment()
            throw error
        }
    }

    /// Returns once block `height` is committed (or throws if the ledger failed).
    public func waitForCommit(height: UInt64) async throws {
        if let failure { throw failure }
        if height <= committedHeight { return }
        try await withCheckedThrowingContinuation { c in
            commitWaiters[height, default: []].append(c)
        }
    }

    /// Returns once the committed height exceeds `height`, or after `timeout`.
    public func waitForHeight(above height: UInt64, timeout: Duration) async {
        if committedHeight > height || failure != nil { return }
        let id = nextWaiterID
        nextWaiterID += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expireWaiter(id)
        }
        await withCheckedContinuation { c in heightWaiters[id] = c }
        timer.cancel()
    }

    private func expireWaiter(_ id: Int) {
        heightWaiters.removeValue(forKey: id)?.resume()
    }

    /// Seals the open block, if any, and writes it; used by the loop and by tests.
    public func sealAndWrite() async {
        // `stop()` may call this while the sealing loop's write is still in flight.
        while let running = writing {
            await running.value
            // Done: whoever started it may not have run again yet to clear it.
            if writing == running { writing = nil }
        }
        let task = Task { await self.sealAndWriteOne() }
        writing = task
        await task.value
        if writing == task { writing = nil }
    }

    private func sealAndWriteOne() async {
        guard failure == nil else { return }
        let commit: BlockStore.Commit
        do {
            if let heartbeat, !chain.hasOpenBlock, ContinuousClock.now - lastSeal >= heartbeat {
                try chain.openEmptyBlock(nowMillis: clock.nowMillis())
            }
            guard let c = try chain.seal(signer: signer) else { return }
            commit = c
            lastSeal = ContinuousClock.now
        } catch {
            fail(PlexusError(.invalidState, "sealing failed", cause: error))
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        written(commit, await Self.write(commit, to: store), since: start)
    }

    /// Writes a block on a thread of its own (the database call blocks).
    /// The last durable state, signed by this ledger's key (read off the actor, in one read transaction).
    public nonisolated func snapshot() async throws -> LedgerSnapshot {
        let store = self.store, signer = self.signer
        return try await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: Result { try LedgerSnapshot.take(from: store, signedBy: signer) }) }
        }.get()
    }

    static func write(_ commit: BlockStore.Commit, to store: BlockStore) async -> Result<Void, any Error> {
        await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: Result { try store.commit(commit) }) }
        }
    }

    private func committed(_ c: BlockStore.Commit) {
        let h = c.block.header.height
        if !watched.isEmpty { settleWatched(c) }
        committedHeight = h
        committedHeader = c.block.header
        committedHash = c.hash
        if let root = c.stateRoot { durableRoot = root }
        blockCounter.increment()
        heightGauge.record(Double(h))
        let g = chain.state.governanceCounts
        proposalsGauge.record(Double(g.proposals))
        openProposalsGauge.record(Double(g.open))
        communitiesGauge.record(Double(g.communities))
        federatedGauge.record(Double(g.federated))
        logger.debug("block committed", metadata: ["height": "\(h)", "txs": "\(c.block.transactions.count)"])
        for key in commitWaiters.keys.filter({ $0 <= h }) {
            for w in commitWaiters.removeValue(forKey: key) ?? [] { w.resume() }
        }
        for (_, w) in heightWaiters { w.resume() }
        heightWaiters.removeAll()
    }

    private func fail(_ error: PlexusError) {
        logger.critical("ledger failed", metadata: ["error": "\(error)"])
        failure = error
        for (_, ws) in commitWaiters { for w in ws { w.resume(throwing: error) } }
        commitWaiters.removeAll()
        for (_, w) in heightWaiters { w.resume() }
        heightWaiters.removeAll()
        for (_, g) in groups { g.waiter.resume() }
        groups = [:]
    }

    /// The error that stopped the ledger, if any.
    public var failed: PlexusError? { failure }

    /// Chain head.
    public func status() -> Status {
        Status(chainId: chainId, genesisHash: genesis.hash, height: committedHeight, blockHash: committedHash,
               stateRoot: durableRoot ?? committedHeader?.stateRoot ?? Hash256.zero, timeMillis: committedHeader?.timeMillis ?? genesis.timeMillis,
               pendingTransactions: chain.openCount, orderer: chain.orderer, replica: ordering.value?.replicaStatus(),
               historyFrom: historyFrom)
    }

    // MARK: Replicated mode

    /// How `ingest` fared with a log entry.
    public enum Ingested: Sendable, Equatable {
        /// At or below the last entry applied: dropped.
        case duplicate
        /// Beyond the next entry: read the log again from the next one.
        case gap
        /// Not a block of this chain (every replica passes over it alike).
        case skipped(String)
        /// Applied at this height.
        case applied(UInt64)
        /// A sealer's block beyond the next height: this replica lacks blocks the log no
        /// longer holds (pruned) and must fetch them from a peer first.
        case behind(UInt64)
        /// This replica stopped (see `failed`).
        case halted
    }

    /// Applies log entry `slot` holding `block` (nil: it does not decode), whose
    /// transactions' signatures `signaturesValid` says hold, if it is the next entry; its
    /// write to the database follows the writes before it, and waiters learn the outcome
    /// of their transactions once it is durable. A recomputed state root that differs
    /// from the block's halts the replica (`failed`, `/health` unhealthy) rather than
    /// serving a diverged state.
    public func ingest(slot: UInt64, block: Block?, signaturesValid: Bool) -> Ingested {
        guard let sealers, failure == nil else { return .halted }
        if slot <= appliedSlot { return .duplicate }
        if slot > appliedSlot + 1 { return .gap }
        // An entry at a height this replica holds (its block fetched from a peer) is
        // dropped; a sealer's block beyond the next height means the blocks between are
        // fetched first.
        switch block.map({ Self.place($0, after: chain.state.height, sealers: sealers) }) {
        case .held?:
            appliedSlot = slot
            return .duplicate
        case .ahead?:
            return .behind(block!.header.height)
        default:
            break
        }
        let refusal = block.map { chain.refusal(of: $0, sealers: sealers) ?? (signaturesValid ? nil : "block \($0.header.height) carries a transaction with a bad signature") }
            ?? "entry \(slot) is not a block"
        if let refusal {
            appliedSlot = slot
            skippedCounter.increment()
            logger.warning("log entry passed over", metadata: ["slot": "\(slot)", "reason": "\(refusal)"])
            return .skipped(refusal)
        }
        guard let block else { return .halted }
        return apply(block, slot: slot)
    }

    enum Place { case held, next, ahead }

    /// Where `block` stands after `height`: at or below it; the next (or not properly
    /// sealed, for `refusal` to judge); a sealer's block further ahead.
    static func place(_ block: Block, after height: UInt64, sealers: Set<Address>) -> Place {
        let h = block.header.height
        if h <= height { return .held }
        guard h > height + 1, block.header.ordered, sealers.contains(block.header.orderer), block.hasValidSignature else { return .next }
        return .ahead
    }

    /// Applies a block fetched from a peer replica (`GET /v1/replica/blocks`) when the log
    /// no longer holds it: checked as a log entry is (the chain link, the sealer's right
    /// and signature, every transaction's signature, the state root the next block names).
    /// An error, changing nothing, when it is not the next properly sealed block.
    public func applyFetched(_ block: Block) throws -> UInt64 {
        guard let sealers, failure == nil else { throw failure ?? PlexusError(.invalidState, "not a replica") }
        if let refusal = chain.refusal(of: block, sealers: sealers)
            ?? (SignatureCheck.all(block.transactions).contains(false) ? "block \(block.header.height) carries a transaction with a bad signature" : nil) {
            throw PlexusError(.invalidState, refusal)
        }
        guard case let .applied(h) = apply(block, slot: nil) else { throw failure ?? PlexusError(.invalidState, "replica halted") }
        return h
    }

    /// The height of the last block applied (durable or being written).
    public var appliedHeight: UInt64 { chain.state.height }

    /// Log entries below `slot` are gone from the log and this replica holds their blocks (fetched from peers): it reads on from `slot`.
    public func resume(atSlot slot: UInt64) {
        if slot > appliedSlot + 1 { appliedSlot = slot - 1 }
    }

    private func apply(_ block: Block, slot: UInt64?) -> Ingested {
        let at = slot.map { " (log entry \($0))" } ?? " (fetched from a peer)"
        var c: BlockStore.Commit
        do {
            c = try chain.applyOrdered(block: block, verified: true)
        } catch let e as PlexusError {
            fail(PlexusError(e.code, "replica halted at height \(block.header.height)\(at): \(e.message)"))
            return .halted
        } catch {
            fail(PlexusError(.invalidState, "replica halted at height \(block.header.height)\(at)", cause: error))
            return .halted
        }
        if let slot {
            c.slot = slot
            appliedSlot = slot
        }
        let commit = c, store = self.store, previous = lastWrite, start = DispatchTime.now().uptimeNanoseconds
        lastWrite = Task {
            await previous?.value
            await self.written(commit, await Self.write(commit, to: store), since: start)
        }
        return .applied(block.header.height)
    }

    private func written(_ c: BlockStore.Commit, _ result: Result<Void, any Error>, since start: UInt64) {
        switch result {
        case .success:
            commitTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
            committed(c)
        case .failure(let error):
            fail(PlexusError(.io, "writing block \(c.block.header.height) failed; the ledger stops", cause: error))
        }
    }

    /// Waits until every block applied so far is durable.
    public func flush() async {
        await lastWrite?.value
    }

    /// The next ordered block cut from `transactions` by `signer`, and the log entry it is for.
    public func cut(_ transactions: [Transaction], hashes: [Hash256], signer: KeyPair) -> (block: Block, slot: UInt64) {
        (chain.cut(transactions, hashes: hashes, signer: signer, nowMillis: clock.nowMillis()), appliedSlot + 1)
    }

    /// The next nonce of each of `accounts` in the applied state.
    public func nonces(of accounts: some Sequence<Address>) -> [Address: UInt64] {
        var out: [Address: UInt64] = [:]
        for a in accounts { out[a] = chain.state.account(a).nonce }
        return out
    }

    /// Starts recording the outcomes of these transactions as blocks carrying them are written.
    public func expect(_ hashes: [Hash256]) {
        for h in hashes where watched[h] == nil { watched[h] = .some(nil) }
    }

    /// Stops recording these outcomes.
    public func forget(_ hashes: [Hash256]) {
        for h in hashes { watched.removeValue(forKey: h) }
    }

    /// The outcomes of expected transactions, each once a written block carried it; nil for
    /// those none had after `timeout`.
    public func outcomes(_ hashes: [Hash256], timeout: Duration) async -> [Result<Receipt, PlexusError>?] {
        let pending = hashes.filter { watched[$0].map { $0 == nil } ?? false }
        if !pending.isEmpty, failure == nil {
            let id = nextWaiterID
            nextWaiterID += 1
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expireGroup(id)
            }
            await withCheckedContinuation { c in groups[id] = (pending, c) }
            timer.cancel()
        }
        if let failure { return hashes.map { (watched[$0] ?? nil) ?? .failure(failure) } }
        return hashes.map { watched[$0] ?? nil }
    }

    private func expireGroup(_ id: Int) {
        groups.removeValue(forKey: id)?.waiter.resume()
    }

    private func settleGroups() {
        for (id, g) in groups where g.hashes.allSatisfy({ (watched[$0] ?? nil) != nil }) {
            groups.removeValue(forKey: id)
            g.waiter.resume()
        }
    }

    private func settleWatched(_ c: BlockStore.Commit) {
        var reasons: [Hash256: String] = [:]
        for e in c.events { if case let .transactionInvalid(hash, reason) = e.event { reasons[hash] = reason } }
        for (i, tx) in c.block.transactions.enumerated() {
            let hash = tx.hash
            guard let w = watched[hash], w == nil else { continue }
            if c.invalid.contains(i) {
                // "code: message", as `Chain.applyOrdered` wrote it.
                let parts = (reasons[hash] ?? "invalid_state: refused").split(separator: ":", maxSplits: 1)
                watched[hash] = .failure(PlexusError(PlexusError.Code(String(parts[0])),
                                                     String(parts.last ?? "").trimmingCharacters(in: .whitespaces)))
            } else {
                watched[hash] = .success(Receipt(hash: hash, height: c.block.header.height, index: i, committed: true))
            }
        }
        if !groups.isEmpty { settleGroups() }
    }

    /// The latest view of an account, including transactions accepted into the open block.
    public func account(_ address: Address) -> Account { chain.state.account(address) }

    /// Current parameters.
    public func params() -> Params { chain.state.params }

    /// Registered nodes, by owner address.
    public func nodes() -> [NodeRecord] { chain.state.nodes.values.sorted { $0.owner < $1.owner } }

    /// Model cards, by id.
    public func models() -> [ModelCard] { chain.state.models.values.sorted { $0.id < $1.id } }

    /// Registered gateways, by key.
    public func gateways() -> [GatewayRecord] { chain.state.gateways.values.sorted { $0.key < $1.key } }

    /// A request's settlement, if it was settled.
    public func settlement(_ id: Hash256) -> Settlement? { chain.state.settlements[id] }

    /// The settlements of those of `ids` that were settled (one call for many).
    public func settlements(_ ids: [Hash256]) -> [Settlement] { ids.compactMap { chain.state.settlements[$0] } }

    /// Runs `f` on the current state (including the open block).
    public func read<T: Sendable>(_ f: (LedgerState) throws -> T) rethrows -> T { try f(chain.state) }

    /// Height of the last durable block.
    public func height() -> UInt64 { committedHeight }

    /// Total supply and what is held, for audits.
    public func supply() throws -> (total: Amount, held: Amount) {
        (chain.state.totalSupply, try chain.state.circulatingTotal())
    }
}
