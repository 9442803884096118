import Dispatch
import PlexusCore

/// The ledger as a sequence of blocks: the pure core that both the orderer
/// (building blocks from incoming transactions) and every replica (applying
/// blocks it receives or reads back) run.
///
/// Building is incremental: the first transaction after a seal opens block
/// *h+1* (running its start-of-block releases), each later transaction is
/// applied on arrival so that its sender learns at once whether it is valid,
/// and `seal` closes the block, commits the state root and signs the header.
public struct Chain: Sendable {
    /// The current state, including the open block's effects.
    public private(set) var state: LedgerState
    /// Hash of the last sealed header (the genesis hash before block 1).
    public private(set) var tipHash: Hash256
    /// The key allowed to seal blocks.
    public let orderer: Address

    struct OpenBlock {
        var height: UInt64
        var timeMillis: UInt64
        var transactions: [Transaction] = []
        var hashes: [Hash256] = []
        var events: [BlockEvent] = []
    }

    private(set) var open: OpenBlock?

    /// Starts from a state and the hash of the header it follows.
    public init(state: LedgerState, tipHash: Hash256, orderer: Address) {
        var state = state
        committedRoot = state.commit().root
        self.state = state
        self.tipHash = tipHash
        self.orderer = orderer
    }

    /// A chain at genesis.
    public init(genesis: Genesis) throws {
        var s = try genesis.initialState()
        s.timeMillis = genesis.timeMillis
        self.init(state: s, tipHash: genesis.hash, orderer: genesis.orderer)
    }

    /// Whether a block is open.
    public var hasOpenBlock: Bool { open != nil }

    /// Transactions in the open block.
    public var openCount: Int { open?.transactions.count ?? 0 }

    /// Applies a transaction whose signature the caller has verified to the
    /// open block (opening one at `nowMillis` if needed). Returns the block
    /// height and index it will have. Throws and changes nothing if invalid.
    public mutating func submit(_ tx: Transaction, hash: Hash256, nowMillis: UInt64) throws -> (height: UInt64, index: Int) {
        var opened: (height: UInt64, time: UInt64, releases: Bool)?
        if open == nil {
            let height = state.height + 1
            let time = max(nowMillis, state.timeMillis)
            opened = (state.height, state.timeMillis, false)
            let releases = try state.beginBlock(height: height, timeMillis: time, parentHash: tipHash)
            opened?.releases = !releases.isEmpty
            open = OpenBlock(height: height, timeMillis: time,
                             events: releases.map { BlockEvent(height: height, txIndex: nil, event: $0) })
        }
        guard var block = open else { throw PlexusError(.invalidState, "no open block") }
        guard block.transactions.count < Int(state.params[.maxBlockTransactions]) else {
            throw PlexusError(.invalidState, "block \(block.height) is full")
        }
        let events: [Event]
        do {
            events = try state.apply(tx)
        } catch {
            // A rejected transaction must not leave an empty block behind. If
            // opening the block released funds, those releases were due anyway
            // and the block stays open to carry them.
            if let opened, !opened.releases {
                state.height = opened.height
                state.timeMillis = opened.time
                open = nil
            }
            throw error
        }
        open = nil
        let index = block.transactions.count
        block.transactions.append(tx)
        block.hashes.append(hash)
        for e in events { block.events.append(BlockEvent(height: block.height, txIndex: UInt32(index), event: e)) }
        open = block
        return (block.height, index)
    }

    /// Opens a block with no transactions yet (if none is open), so that time
    /// advances and due releases and settlements happen without traffic.
    public mutating func openEmptyBlock(nowMillis: UInt64) throws {
        guard open == nil else { return }
        let height = state.height + 1
        let time = max(nowMillis, state.timeMillis)
        let events = try state.beginBlock(height: height, timeMillis: time, parentHash: tipHash)
        open = OpenBlock(height: height, timeMillis: time, events: events.map { BlockEvent(height: height, txIndex: nil, event: $0) })
    }

    /// Seals the open block, if any, with the orderer's key.
    public mutating func seal(signer: KeyPair) throws -> BlockStore.Commit? {
        guard let block = open else { return nil }
        guard signer.address == orderer else {
            throw PlexusError(.badSignature, "key \(signer.address.short) is not this chain's orderer")
        }
        open = nil
        let changes = state.commit()
        committedRoot = changes.root
        let header = BlockHeader(
            chainId: state.chainId, height: block.height, previousHash: tipHash, timeMillis: block.timeMillis,
            txCount: UInt32(block.transactions.count), txRoot: Block.txRoot(block.hashes),
            stateRoot: changes.root, orderer: orderer)
        let hash = header.hash
        let sealed = Block(header: header, signature: signer.sign(hash.bytes), transactions: block.transactions)
        tipHash = hash
        return BlockStore.Commit(block: sealed, hash: hash, events: block.events, accounts: changes.accounts, records: changes.records, params: changes.params)
    }

    /// Applies a complete block as a replica would, checking the link to the
    /// tip, the orderer's signature, every transaction's signature and
    /// validity, the transaction root and the state root. On a throw the chain
    /// must be discarded: a replica that sees an invalid block stops.
    public mutating func apply(block: Block) throws -> BlockStore.Commit {
        guard open == nil else { throw PlexusError(.invalidState, "cannot apply a block while one is open") }
        let h = block.header
        guard h.chainId == state.chainId else {
            throw PlexusError(.invalidBlock, "block \(h.height) is for chain \(h.chainId)")
        }
        guard h.previousHash == tipHash else {
            throw PlexusError(.invalidBlock, "block \(h.height) does not link to the tip \(tipHash)")
        }
        guard h.orderer == orderer, block.hasValidSignature else {
            throw PlexusError(.invalidBlock, "block \(h.height) is not signed by the orderer")
        }
        let hashes = block.transactions.map(\.hash)
        guard Block.txRoot(hashes) == h.txRoot, Int(h.txCount) == block.transactions.count else {
            throw PlexusError(.invalidBlock, "block \(h.height) transaction root does not match its transactions")
        }
        let valid = SignatureCheck.all(block.transactions)
        if let bad = valid.firstIndex(of: false) {
            throw PlexusError(.invalidBlock, "block \(h.height) transaction \(bad) has a bad signature")
        }
        var events = try state.beginBlock(height: h.height, timeMillis: h.timeMillis, parentHash: h.previousHash)
            .map { BlockEvent(height: h.height, txIndex: nil, event: $0) }
        for (i, tx) in block.transactions.enumerated() {
            do {
                for e in try state.apply(tx) { events.append(BlockEvent(height: h.height, txIndex: UInt32(i), event: e)) }
            } catch {
                throw PlexusError(.invalidBlock, "block \(h.height) transaction \(i) is invalid", cause: error)
            }
        }
        let changes = state.commit()
        guard changes.root == h.stateRoot else {
            throw PlexusError(.stateMismatch, "block \(h.height): state root \(changes.root) differs from the header's \(h.stateRoot)")
        }
        let hash = h.hash
        tipHash = hash
        return BlockStore.Commit(block: block, hash: hash, events: events, accounts: changes.accounts, records: changes.records, params: changes.params)
    }

    /// Whether `block` may stand at the next height of a replicated chain whose sealers
    /// are `sealers`: nil when it may, else why not. Pure and the same on every replica,
    /// so every replica passes over the same entries of the log (one written there by
    /// anyone but an authorised sealer, or not extending the chain, is not a block of it).
    /// Transaction signatures are checked by `applyOrdered`.
    public func refusal(of block: Block, sealers: Set<Address>) -> String? {
        let h = block.header
        guard h.ordered else { return "block \(h.height) is not an ordered block" }
        guard h.chainId == state.chainId else { return "block \(h.height) is for chain \(h.chainId)" }
        guard h.height == state.height + 1 else { return "block at height \(h.height) where \(state.height + 1) is next" }
        guard h.previousHash == tipHash else { return "block \(h.height) does not link to the tip \(tipHash)" }
        guard sealers.contains(h.orderer) else { return "block \(h.height) is sealed by \(h.orderer.short), not a sealer of this chain" }
        guard block.hasValidSignature else { return "block \(h.height) has a bad sealer signature" }
        guard Int(h.txCount) == block.transactions.count, Block.txRoot(block.transactions.map(\.hash)) == h.txRoot else {
            return "block \(h.height) transaction root does not match its transactions"
        }
        return nil
    }

    /// Cuts the next ordered block from `transactions` (signatures checked by the caller),
    /// sealed by `signer`, without executing them: the header carries the current state
    /// root (the previous height's), and replicas, this one too, execute the block with
    /// `applyOrdered`.
    public func cut(_ transactions: [Transaction], hashes: [Hash256], signer: KeyPair, nowMillis: UInt64) -> Block {
        let header = BlockHeader(
            chainId: state.chainId, height: state.height + 1, previousHash: tipHash,
            timeMillis: max(nowMillis, state.timeMillis), txCount: UInt32(transactions.count),
            txRoot: Block.txRoot(hashes), stateRoot: committedRoot, orderer: signer.address, ordered: true)
        return Block(header: header, signature: signer.sign(header.hash.bytes), transactions: transactions)
    }

    /// The root committed by the last `commit` of the state (the current one when no block is open).
    public private(set) var committedRoot: Hash256 = .zero

    /// Applies an ordered block that `refusal` admitted: every transaction's signature
    /// must verify (a sealer that let a bad one through sealed an invalid block: it is
    /// refused whole); the header's state root must equal this replica's, or the replica
    /// has diverged from the sealer and must stop (`stateMismatch`); a transaction the
    /// state refuses changes nothing and is recorded as `transactionInvalid`, identically
    /// on every replica. A throw after the signature and root checks (a start-of-block step
    /// failing) leaves the state part-way: the replica must stop.
    public mutating func applyOrdered(block: Block, verified: Bool = false) throws -> BlockStore.Commit {
        guard open == nil else { throw PlexusError(.invalidState, "cannot apply a block while one is open") }
        let h = block.header
        if !verified, let bad = SignatureCheck.all(block.transactions).firstIndex(of: false) {
            throw PlexusError(.invalidBlock, "block \(h.height) transaction \(bad) has a bad signature")
        }
        guard h.stateRoot == committedRoot else {
            throw PlexusError(.stateMismatch, "block \(h.height) says the state root at height \(h.height - 1) is \(h.stateRoot); this replica has \(committedRoot)")
        }
        var events = try state.beginBlock(height: h.height, timeMillis: h.timeMillis, parentHash: h.previousHash)
            .map { BlockEvent(height: h.height, txIndex: nil, event: $0) }
        var invalid = Set<Int>()
        let limit = state.params[.maxTxBytes]
        for (i, tx) in block.transactions.enumerated() {
            do {
                guard UInt64(tx.canonicalBytes.count) <= limit else {
                    throw PlexusError(.tooLarge, "transaction is larger than \(limit) bytes")
                }
                for e in try state.apply(tx) { events.append(BlockEvent(height: h.height, txIndex: UInt32(i), event: e)) }
            } catch {
                invalid.insert(i)
                let reason = (error as? PlexusError).map { "\($0.code.rawValue): \($0.message)" } ?? "\(error)"
                events.append(BlockEvent(height: h.height, txIndex: UInt32(i), event: .transactionInvalid(hash: tx.hash, reason: String(reason.prefix(500)))))
            }
        }
        let changes = state.commit()
        committedRoot = changes.root
        tipHash = h.hash
        var c = BlockStore.Commit(block: block, hash: tipHash, events: events, accounts: changes.accounts, records: changes.records, params: changes.params)
        c.invalid = invalid
        c.stateRoot = changes.root
        return c
    }

    /// The state root of the current state (commits pending changes to the commitment).
    public mutating func stateRoot() -> Hash256 {
        committedRoot = state.commit().root
        return committedRoot
    }
}

/// Verifies many transaction signatures on all cores, in batches, with
/// results in the order of the input.
public enum SignatureCheck {
    /// Prepared public keys of recent senders, shared by all checks.
    static let keyCache = Ed25519.KeyCache(capacity: 16_384)

    /// For each transaction: whether its signature is valid, and its hash
    /// (computed from the same encoding, so each is encoded once).
    public static func verifyAndHash(_ transactions: [Transaction]) -> [(valid: Bool, hash: Hash256)] {
        let n = transactions.count
        guard n > 0 else { return [] }
        let batch = Ed25519.maxBatch
        let chunks = (n + batch - 1) / batch
        let results = UnsafeMutableBufferPointer<(valid: Bool, hash: Hash256)>.allocate(capacity: n)
        defer { results.deallocate() }
        results.initialize(repeating: (false, .zero))
        // Each chunk writes a disjoint slice of `results`.
        nonisolated(unsafe) let out = results
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * batch, hi = min(n, lo + batch)
            var items: [(signature: [UInt8], publicKey: [UInt8], message: [UInt8])] = []
            var hashes: [Hash256] = []
            items.reserveCapacity(hi - lo)
            hashes.reserveCapacity(hi - lo)
            for tx in transactions[lo..<hi] {
                let full = tx.canonicalBytes
                hashes.append(Hash256.of(full))
                items.append((tx.signature.bytes, tx.from.bytes, Array(full[0..<(full.count - 64)])))
            }
            let valid = Ed25519.verify(batch: items, cache: keyCache)
            for i in 0..<(hi - lo) { out[lo + i] = (valid[i], hashes[i]) }
        }
        return Array(results)
    }

    /// `result[i]` says whether `transactions[i]` is validly signed.
    public static func all(_ transactions: [Transaction]) -> [Bool] {
        verifyAndHash(transactions).map(\.valid)
    }
}
