import PlexusCore
import PlexusLedger

/// What the explorer keeps of the chain as it follows it, block by block: a sample per block
/// (for rates, changes and charts) and, for the most recent transactions, where each one is
/// and whom it concerns (for account activity and search). Bounded: the latest
/// `keptBlocks` samples and `keptTransactions` transactions. Pure: blocks in, figures out.
public struct Timeline: Sendable {
    public struct Sample: Sendable, Hashable {
        public var height: UInt64
        public var timeMillis: UInt64
        public var hash: Hash256
        public var transactions: Int
        /// Requests settled in the block, and the input and output tokens their receipts count.
        public var requests: Int
        public var tokens: UInt64
    }

    /// A transaction as an account's activity lists it.
    public struct Entry: Sendable, Hashable {
        public var height: UInt64
        public var index: Int
        public var hash: Hash256
        public var timeMillis: UInt64
        public var kind: String
        public var from: Address
        /// The other account it names (a transfer's recipient, a deposit's requestor…), if any.
        public var counterparty: Address?
        /// The amount it moves, if it names one.
        public var amount: Amount?
        public var fee: Amount
    }

    public let keptBlocks: Int
    public let keptTransactions: Int
    public private(set) var samples: [Sample] = []
    private var entries: [Entry] = []
    private var firstEntry = 0
    /// Entry positions (absolute, from `firstEntry`) by account.
    private var byAccount: [Address: [Int]] = [:]
    /// A node's recent paid shares, newest last.
    public struct Share: Sendable, Hashable {
        public var height: UInt64
        public var timeMillis: UInt64
        public var requestId: Hash256
        public var inputTokens: UInt64
        public var outputTokens: UInt64
        /// What the share costs at the node's ask (before the spot premium and the protocol fee).
        public var cost: Amount
    }
    private var shares: [Address: [Share]] = [:]
    /// Shares kept per node.
    public static let keptShares = 500

    /// Where each recent request id was settled: the block and the transaction.
    private var settledIn: [Hash256: (height: UInt64, tx: Hash256)] = [:]
    private var settledOrder: [Hash256] = []

    public init(keptBlocks: Int = 20_000, keptTransactions: Int = 200_000) {
        self.keptBlocks = keptBlocks
        self.keptTransactions = keptTransactions
    }

    /// The last height taken in (0: none).
    public var height: UInt64 { samples.last?.height ?? 0 }

    /// Takes in the next block (a block at or below the last height is ignored).
    public mutating func add(_ block: BlockView) {
        guard block.header.height > height else { return }
        var requests = 0, tokens: UInt64 = 0
        for (i, tx) in block.transactions.enumerated() {
            let hash = i < block.transactionHashes.count ? block.transactionHashes[i] : tx.hash
            let (other, amount) = Self.counterparty(tx.body)
            let e = Entry(height: block.header.height, index: i, hash: hash, timeMillis: block.header.timeMillis, kind: tx.body.kind.name,
                          from: tx.from, counterparty: other, amount: amount, fee: tx.fee)
            let at = firstEntry + entries.count
            entries.append(e)
            byAccount[tx.from, default: []].append(at)
            if let other, other != tx.from { byAccount[other, default: []].append(at) }
            if let receipts = tx.body.settledReceipts {
                let ids = Set(receipts.map(\.requestId))
                requests += ids.count
                for r in receipts where r.samples { tokens &+= r.inputTokens &+ r.outputTokens }
                for r in receipts {
                    var list = shares[r.node, default: []]
                    list.append(Share(height: block.header.height, timeMillis: block.header.timeMillis, requestId: r.requestId,
                                      inputTokens: r.inputTokens, outputTokens: r.outputTokens, cost: (try? r.cost()) ?? .zero))
                    if list.count > Self.keptShares { list.removeFirst(list.count - Self.keptShares) }
                    shares[r.node] = list
                }
                for id in ids where settledIn[id] == nil {
                    settledIn[id] = (block.header.height, hash)
                    settledOrder.append(id)
                }
            }
        }
        samples.append(Sample(height: block.header.height, timeMillis: block.header.timeMillis, hash: block.hash,
                              transactions: block.transactions.count, requests: requests, tokens: tokens))
        trim()
    }

    private mutating func trim() {
        if samples.count > keptBlocks { samples.removeFirst(samples.count - keptBlocks) }
        // Transactions go a tenth at a time: each trim walks every account's list.
        if entries.count > keptTransactions + keptTransactions / 10 {
            let drop = entries.count - keptTransactions
            entries.removeFirst(drop)
            firstEntry += drop
            for (a, list) in byAccount {
                let kept = list.filter { $0 >= firstEntry }
                byAccount[a] = kept.isEmpty ? nil : kept
            }
        }
        if settledOrder.count > keptTransactions {
            let drop = settledOrder.count - keptTransactions
            for id in settledOrder.prefix(drop) { settledIn[id] = nil }
            settledOrder.removeFirst(drop)
        }
    }

    /// The account's recent transactions, newest first (at most `limit`).
    public func activity(of a: Address, limit: Int = 10_000) -> [Entry] {
        (byAccount[a] ?? []).reversed().prefix(limit).map { entries[$0 - firstEntry] }
    }

    /// A node's latest paid share.
    public func lastShare(of node: Address) -> Share? { shares[node]?.last }

    /// A node's recent paid shares, newest first.
    public func shares(of node: Address) -> [Share] { (shares[node] ?? []).reversed() }

    /// Where a recent request id was settled.
    public func settlement(of id: Hash256) -> (height: UInt64, tx: Hash256)? { settledIn[id] }

    /// The sample of a recent block by its hash.
    public func block(hash: Hash256) -> Sample? { samples.last { $0.hash == hash } }

    /// The position of the last block at or before `timeMillis` (samples are in time order).
    func lastIndex(atOrBefore timeMillis: UInt64) -> Int? {
        var lo = 0, hi = samples.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if samples[mid].timeMillis <= timeMillis { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 ? lo - 1 : nil
    }

    /// Sums over the blocks whose time is within `millis` before `now` (or before the last block).
    public func totals(over millis: UInt64, endingAt now: UInt64? = nil) -> (transactions: Int, requests: Int, tokens: UInt64, blocks: Int) {
        let end = now ?? samples.last?.timeMillis ?? 0
        let start = end > millis ? end - millis : 0
        var t = (transactions: 0, requests: 0, tokens: UInt64(0), blocks: 0)
        var i = lastIndex(atOrBefore: end) ?? -1
        while i >= 0, samples[i].timeMillis > start {
            t.transactions += samples[i].transactions
            t.requests += samples[i].requests
            t.tokens &+= samples[i].tokens
            t.blocks += 1
            i -= 1
        }
        return t
    }

    /// The block-derived figures as they stood at `timeMillis` (nil before the first block kept):
    /// height, block time over the last 20 blocks, and transactions/s, requests and tokens over the
    /// minute before — as the overview shows them.
    public func figures(at timeMillis: UInt64) -> [String: Double]? {
        guard let last = lastIndex(atOrBefore: timeMillis) else { return nil }
        var out: [String: Double] = ["height": Double(samples[last].height)]
        if last >= 1 {
            let first = max(0, last - 20)
            out["block-time"] = Double(samples[last].timeMillis - samples[first].timeMillis) / Double(last - first) / 1_000
        }
        let minute = totals(over: 60_000, endingAt: timeMillis)
        out["tx-rate"] = Double(minute.transactions) / 60
        out["requests"] = Double(minute.requests)
        out["tokens"] = Double(minute.tokens)
        return out
    }

    /// `value` per bucket of `bucketMillis` over the last `buckets` buckets ending at the last
    /// block: (bucket start time, sum) pairs, oldest first, empty buckets included.
    public func series(buckets: Int, bucketMillis: UInt64, _ value: (Sample) -> Double) -> [(UInt64, Double)] {
        guard let last = samples.last, buckets > 0, bucketMillis > 0 else { return [] }
        let endBucket = last.timeMillis / bucketMillis
        let firstBucket = endBucket >= UInt64(buckets - 1) ? endBucket - UInt64(buckets - 1) : 0
        var sums = [Double](repeating: 0, count: Int(endBucket - firstBucket + 1))
        for s in samples.reversed() {
            let b = s.timeMillis / bucketMillis
            guard b >= firstBucket else { break }
            sums[Int(b - firstBucket)] += value(s)
        }
        return sums.enumerated().map { ((firstBucket + UInt64($0.offset)) * bucketMillis, $0.element) }
    }

    /// The account a transaction names besides its sender, and the amount it moves.
    static func counterparty(_ body: Transaction.Body) -> (Address?, Amount?) {
        switch body {
        case let .transfer(to, amount): (to, amount)
        case let .deposit(requestor, amount): (requestor, amount)
        case let .stake(amount), let .unstake(amount), let .withdraw(amount): (nil, amount)
        case let .payForCall(to, amount, _): (to, amount)
        case let .delegate(to): (to, nil)
        case let .grantAgent(agent, _), let .revokeAgent(agent): (agent, nil)
        case let .challenge(_, _, bond): (nil, bond)
        case let .buyData(_, server): (server, nil)
        default: (nil, nil)
        }
    }
}
