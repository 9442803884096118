import Dispatch
import Logging
import Metrics
import PlexusCore

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
    }

    let store: BlockStore
    let signer: KeyPair
    let clock: any WallClock
    let logger: Logger
    let blockInterval: Duration
    public nonisolated let genesis: Genesis
    public nonisolated let chainId: String

    private var chain: Chain
    private var committedHeight: UInt64
    private var committedHeader: BlockHeader?
    private var committedHash: Hash256
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

    /// Opens the chain stored in `store`, checking that the loaded state
    /// reproduces the last block's state root.
    public init(store: BlockStore, signer: KeyPair, blockInterval: Duration = .milliseconds(100),
                clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "plexus.ledger")) throws {
        let snap = try store.load()
        guard snap.genesis.orderer == signer.address else {
            throw PlexusError(.badSignature, "this chain's orderer is \(snap.genesis.orderer), not \(signer.address)")
        }
        var chain = Chain(state: snap.state, tipHash: snap.tipHash, orderer: snap.genesis.orderer)
        let root = chain.stateRoot()
        if let tip = snap.tip, tip.stateRoot != root {
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
        guard sealTask == nil else { return }
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
        let store = self.store
        let result: Result<Void, any Error> = await withCheckedContinuation { c in
            DispatchQueue.global().async {
                c.resume(returning: Result { try store.commit(commit) })
            }
        }
        switch result {
        case .success:
            commitTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
            committed(commit)
        case .failure(let error):
            fail(PlexusError(.io, "writing block \(commit.block.header.height) failed; the ledger stops", cause: error))
        }
    }

    private func committed(_ c: BlockStore.Commit) {
        let h = c.block.header.height
        committedHeight = h
        committedHeader = c.block.header
        committedHash = c.hash
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
    }

    /// The error that stopped the ledger, if any.
    public var failed: PlexusError? { failure }

    /// Chain head.
    public func status() -> Status {
        Status(chainId: chainId, genesisHash: genesis.hash, height: committedHeight, blockHash: committedHash,
               stateRoot: committedHeader?.stateRoot ?? Hash256.zero, timeMillis: committedHeader?.timeMillis ?? genesis.timeMillis,
               pendingTransactions: chain.openCount, orderer: chain.orderer)
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
