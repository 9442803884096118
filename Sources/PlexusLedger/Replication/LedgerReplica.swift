import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import PlexusCore

/// One replica of a ledger whose order comes from etcd.
///
/// Blocks live in etcd under write-once keys `PREFIX/blk/%020d`, one per log entry
/// (`slot`); a block is appended with one etcd transaction that succeeds only if its key
/// does not exist and the one before does, so two sealers can never fork the chain. One
/// replica at a time holds `PREFIX/sealer`, bound to an etcd lease; it cuts blocks from the
/// transactions every replica forwards to it. Every replica, the sealer too, reads the log
/// in order (a page of entries, then a watch), checks each entry (`Chain.refusal`, every
/// transaction's signature), applies it with the deterministic state machine and writes
/// it with its state; a state root that differs from the block's halts the replica.
public actor LedgerReplica: TransactionOrdering {
    public struct Config: Sendable {
        /// Keys live under this prefix (`plexus/CHAIN/`).
        public var prefix: String
        /// This replica's API URL, which other replicas forward transactions to while it seals.
        public var publicURL: String
        /// The sealer lease's time to live, in seconds.
        public var leaseSeconds: Int = 2
        /// An empty block is sealed when none was for this long (block-counted delays pass on an idle chain).
        public var heartbeat: Duration? = .seconds(1)
        /// The cutter's limits: transactions and bytes in one block (below etcd's request limit).
        public var maxBlockTransactions: Int = 8_192
        public var maxBlockBytes: Int = 1_000_000
        /// How long a submission waits for a sealer to order it before it fails (503).
        public var orderTimeout: Duration = .seconds(10)
        /// Log entries kept in etcd behind the tip: the sealer deletes older ones once every
        /// live replica has applied them, and compacts etcd's history. A replica that was
        /// away longer fetches the blocks it lacks from a peer.
        public var retainEntries: UInt64 = 10_000
        /// The time to live of the lease each replica's `replicas/ADDRESS` key is bound to.
        public var memberSeconds: Int = 10

        public init(prefix: String, publicURL: String) {
            self.prefix = prefix
            self.publicURL = publicURL
        }
    }

    let service: LedgerService
    let etcd: EtcdClient
    let signer: KeyPair
    let config: Config
    let logger: Logger
    let http: HTTPClient
    let blockPrefix: [UInt8]
    let blockEnd: [UInt8]
    let sealerKey: [UInt8]
    let memberPrefix: [UInt8]

    /// The sealer as the `sealer` key names it.
    struct SealerInfo: Codable, Sendable, Equatable {
        var address: Address
        var url: String
    }

    /// A live replica as its `replicas/ADDRESS` key (bound to its lease) says: where it
    /// serves and how far it has applied the log. The sealer prunes below the slowest;
    /// a replica that lacks pruned blocks fetches them from the others.
    public struct Member: Codable, Sendable, Equatable {
        public var address: Address
        public var url: String
        public var slot: UInt64
        public var height: UInt64
    }

    private var lease: Int64 = 0
    private var leaseValidUntil = ContinuousClock.now
    private var sealing = false
    private var sealer: SealerInfo?
    private var mempool: [Ordered] = []
    private var mempoolHashes: Set<Hash256> = []
    private var arrived: [Hash256: ContinuousClock.Instant] = [:]
    private var lastSeal = ContinuousClock.now
    private var latestSeen: UInt64 = 0
    private var behindSince: ContinuousClock.Instant?
    private var lastError: String?
    private var tasks: [Task<Void, Never>] = []
    private var memberLease: Int64 = 0
    private var lastPrune = ContinuousClock.now
    private var prunedBelow: UInt64 = 0
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private nonisolated let snapshot: Locked<LedgerService.ReplicaStatus>

    private let lagBlocks = Gauge(label: "plexus_ledger_replica_lag_blocks")
    private let lagSeconds = Gauge(label: "plexus_ledger_replica_lag_seconds")
    private let sealerChanges = Counter(label: "plexus_ledger_sealer_changes_total")
    private let conflicts = Counter(label: "plexus_ledger_append_conflicts_total")
    private let sealerGauge = Gauge(label: "plexus_ledger_replica_sealing")
    private let prunedCounter = Counter(label: "plexus_ledger_log_entries_pruned_total")
    private let fetchedCounter = Counter(label: "plexus_ledger_blocks_fetched_total")

    public init(service: LedgerService, etcd: EtcdClient, signer: KeyPair, config: Config, http: HTTPClient = .failFast,
                logger: Logger = Logger(label: "plexus.ledger.replica")) {
        self.service = service
        self.etcd = etcd
        self.signer = signer
        self.config = config
        self.http = http
        self.logger = logger
        blockPrefix = Array((config.prefix + "blk/").utf8)
        blockEnd = EtcdClient.prefixEnd(blockPrefix)
        sealerKey = Array((config.prefix + "sealer").utf8)
        memberPrefix = Array((config.prefix + "replicas/").utf8)
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        snapshot = Locked(LedgerService.ReplicaStatus(address: signer.address, role: "follower", sealer: nil, slot: 0,
                                                      lagBlocks: 0, lagMillis: 0, healthy: true, failure: nil))
    }

    /// The etcd key of log entry `slot`.
    public static func blockKey(prefix: String, slot: UInt64) -> [UInt8] {
        let digits = String(slot)
        return Array((prefix + "blk/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits).utf8)
    }

    func key(_ slot: UInt64) -> [UInt8] { Self.blockKey(prefix: config.prefix, slot: slot) }

    func slot(of key: [UInt8]) -> UInt64? {
        guard key.count > blockPrefix.count, Array(key[..<blockPrefix.count]) == blockPrefix else { return nil }
        return UInt64(String(decoding: key[blockPrefix.count...], as: UTF8.self))
    }

    /// Starts following the log, campaigning for the sealer's key and sealing while held.
    public func start() {
        guard tasks.isEmpty else { return }
        service.ordering.value = self
        tasks = [Task { await self.follow() }, Task { await self.campaign() }, Task { await self.sealLoop() }, Task { await self.announce() }]
    }

    /// Stops; a sealer gives its lease back so that another replica takes over at once.
    public func stop() async {
        for t in tasks { t.cancel() }
        tasks = []
        wake.finish()
        if sealing, lease != 0 { try? await etcd.revoke(lease) }
        if memberLease != 0 { try? await etcd.revoke(memberLease) }
        sealing = false
        await service.flush()
    }

    // MARK: Following the log

    private func follow() async {
        outer: while !Task.isCancelled {
            do {
                // Catch up by pages, then watch from the revision after the last page.
                var revision: Int64 = 0
                while true {
                    let next = await service.appliedSlot + 1
                    let page = try await etcd.range(key(next), end: blockEnd, limit: 64)
                    revision = page.revision
                    if let first = page.kvs.first.flatMap({ slot(of: $0.key) }), first > next {
                        // The entries before `first` were pruned: their blocks come from a peer.
                        await fetchFromPeers(through: first)
                        continue outer
                    }
                    let fared = await ingest(page.kvs)
                    if fared == .halted { return }
                    if case .behind = fared {
                        await fetchFromPeers(through: nil)
                        continue outer
                    }
                    if !page.more || fared == .gap { break }
                }
                let next = await service.appliedSlot + 1
                for try await events in etcd.watch(key(next), end: blockEnd, from: revision + 1) {
                    let fared = await ingest(events)
                    if fared == .halted { return }
                    // Never trust the watch alone: a gap is repaired by reading the range again.
                    if fared == .gap { break }
                    if case .behind = fared {
                        await fetchFromPeers(through: nil)
                        continue outer
                    }
                }
            } catch {
                lastError = "\(error)"
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Decodes, checks the signatures of and applies entries in slot order; `.gap` when one is beyond the next.
    private func ingest(_ kvs: [EtcdClient.KeyValue]) async -> LedgerService.Ingested {
        let entries = kvs.compactMap { kv in slot(of: kv.key).map { ($0, kv.value) } }.sorted { $0.0 < $1.0 }
        var last = LedgerService.Ingested.duplicate
        for (slot, value) in entries {
            latestSeen = max(latestSeen, slot)
            let block = try? Block(canonicalBytes: value)
            let valid = block.map { !SignatureCheck.all($0.transactions).contains(false) } ?? false
            last = await service.ingest(slot: slot, block: block, signaturesValid: valid)
            if last == .halted || last == .gap { break }
            if case .behind = last { break }
        }
        await updateLag()
        return last
    }

    private func updateLag() async {
        let applied = await service.appliedSlot
        let behind = latestSeen > applied ? latestSeen - applied : 0
        if behind == 0 { behindSince = nil } else if behindSince == nil { behindSince = .now }
        let millis = behindSince.map { UInt64(max(0, (ContinuousClock.now - $0) / .milliseconds(1))) } ?? 0
        lagBlocks.record(Double(behind))
        lagSeconds.record(Double(millis) / 1000)
        let failure = await service.failed
        snapshot.value = LedgerService.ReplicaStatus(address: signer.address, role: sealing ? "sealer" : "follower",
                                                     sealer: sealer?.address, slot: applied, lagBlocks: behind, lagMillis: millis,
                                                     healthy: failure == nil, failure: failure?.message)
    }

    public nonisolated func replicaStatus() -> LedgerService.ReplicaStatus? { snapshot.value }

    // MARK: Catching up from peers

    /// Fetches the blocks this replica lacks from the live replica furthest ahead (then the
    /// next), each checked as a log entry is; then, when `first` (the first entry the log
    /// still holds) is given, reads the log on from there. Without a peer to serve them it
    /// waits a second and the caller tries again.
    private func fetchFromPeers(through first: UInt64?) async {
        let peers = ((try? await members()) ?? []).filter { $0.address != signer.address }.sorted { $0.height > $1.height }
        var fetched = 0
        for peer in peers {
            do {
                while true {
                    let blocks = try await Self.blocks(from: await service.appliedHeight + 1, at: peer.url, http: http)
                    if blocks.isEmpty { break }
                    for b in blocks { _ = try await service.applyFetched(b) }
                    fetched += blocks.count
                    fetchedCounter.increment(by: blocks.count)
                }
            } catch {
                lastError = "fetching blocks from \(peer.url): \(error)"
                logger.warning("cannot fetch blocks from a peer", metadata: ["peer": "\(peer.url)", "error": "\(error)"])
            }
            if fetched > 0 { break }
        }
        let height = await service.appliedHeight
        if fetched > 0 {
            logger.notice("fetched blocks from a peer", metadata: ["blocks": "\(fetched)", "height": "\(height)"])
        }
        if let first { await service.resume(atSlot: first) }
        if fetched == 0 {
            logger.warning("behind the log, and no peer served the blocks", metadata: ["height": "\(height)", "peers": "\(peers.count)"])
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Up to 64 blocks from `height` on, from the replica at `url` (`GET /v1/replica/blocks`).
    static func blocks(from height: UInt64, at url: String, http: HTTPClient) async throws -> [Block] {
        let response = try await http.execute(HTTPClientRequest(url: url + "/v1/replica/blocks?from=\(height)"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: LedgerAPI.maxBlocksBytes + (1 << 20))
        guard response.status == .ok else { throw PlexusError(.unavailable, "\(url) answered \(response.status.code)") }
        var r = CanonicalReader(Array(buffer: body))
        let blocks = try r.readArray(of: Block.self, limit: 64)
        try r.expectEnd()
        return blocks
    }

    // MARK: Membership and pruning

    /// Keeps `replicas/ADDRESS` (bound to this replica's own lease) saying where it serves and how far it applied.
    private func announce() async {
        let key = memberPrefix + Array(signer.address.text.utf8)
        while !Task.isCancelled {
            do {
                if memberLease != 0, try await etcd.keepAlive(memberLease) == 0 { memberLease = 0 }
                if memberLease == 0 { memberLease = try await etcd.grantLease(ttl: config.memberSeconds) }
                let me = Member(address: signer.address, url: config.publicURL, slot: await service.appliedSlot, height: await service.appliedHeight)
                try await etcd.put(key, Array(try JSONEncoder().encode(me)), lease: memberLease)
            } catch {
                lastError = "\(error)"
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// The live replicas, as their keys say.
    public func members() async throws -> [Member] {
        try await etcd.range(memberPrefix, end: EtcdClient.prefixEnd(memberPrefix)).kvs.compactMap { try? JSONDecoder().decode(Member.self, from: Data($0.value)) }
    }

    /// The sealer deletes the log entries every live replica has applied, keeping the last
    /// `retainEntries` (with `reclaiming`, etcd's space quota being exhausted, only the
    /// tip), compacts etcd's history to the delete, and when reclaiming defragments the
    /// members and clears the space alarm.
    private func prune(reclaiming: Bool) async {
        lastPrune = .now
        let tip = await service.appliedSlot
        let below: UInt64
        if reclaiming {
            // Only the tip is needed to append; a replica further behind fetches from its peers.
            below = max(tip, 1)
        } else {
            guard tip > config.retainEntries, let members = try? await members() else { return }
            below = min(members.filter { $0.address != signer.address }.map(\.slot).min() ?? tip, tip - max(1, config.retainEntries)) + 1
            guard below > prunedBelow + 64 else { return }
        }
        do {
            let (deleted, revision) = try await etcd.deleteRange(blockPrefix, end: key(below))
            try await etcd.compact(revision)
            prunedBelow = below
            prunedCounter.increment(by: Int(deleted))
            if reclaiming { try await etcd.reclaimSpace() }
            logger.info("pruned the log", metadata: ["below": "\(below)", "deleted": "\(deleted)", "reclaimed": "\(reclaiming)"])
        } catch {
            lastError = "pruning: \(error)"
            logger.warning("cannot prune the log", metadata: ["error": "\(error)"])
        }
    }

    // MARK: The sealer's lease

    private var mayServe: Bool { sealing && ContinuousClock.now < leaseValidUntil - .milliseconds(250) }

    private func campaign() async {
        let period = Duration.milliseconds(max(100, config.leaseSeconds * 1000 / 3))
        while !Task.isCancelled {
            if await service.failed != nil {
                if sealing { stepDown("this replica halted") ; if lease != 0 { try? await etcd.revoke(lease) } }
                return
            }
            if sealing {
                let sent = ContinuousClock.now
                do {
                    let ttl = try await etcd.keepAlive(lease)
                    if ttl > 0 { leaseValidUntil = sent + .seconds(ttl) } else { stepDown("its lease expired") }
                } catch {
                    lastError = "\(error)"
                    if ContinuousClock.now >= leaseValidUntil { stepDown("etcd did not renew its lease: \(error)") }
                }
            } else {
                do {
                    if let kv = try await etcd.get(sealerKey) {
                        let info = try? JSONDecoder().decode(SealerInfo.self, from: Data(kv.value))
                        if info != sealer { sealer = info }
                    } else {
                        sealer = nil
                        let sent = ContinuousClock.now
                        let granted = try await etcd.grantLease(ttl: config.leaseSeconds)
                        let me = SealerInfo(address: signer.address, url: config.publicURL)
                        switch try await etcd.create(sealerKey, Array(try JSONEncoder().encode(me)), lease: granted) {
                        case .written:
                            lease = granted
                            leaseValidUntil = sent + .seconds(config.leaseSeconds)
                            sealing = true
                            sealer = me
                            sealerChanges.increment()
                            sealerGauge.record(1)
                            logger.notice("sealing", metadata: ["replica": "\(signer.address.short)"])
                            wake.yield()
                        default:
                            try? await etcd.revoke(granted)
                        }
                    }
                } catch {
                    lastError = "\(error)"
                }
            }
            await updateLag()
            try? await Task.sleep(for: period)
        }
    }

    private func stepDown(_ why: String) {
        guard sealing else { return }
        sealing = false
        sealer = nil
        lease = 0
        sealerGauge.record(0)
        // What was waiting goes: the replicas that forwarded it forward it again to the next sealer.
        mempool = []
        mempoolHashes = []
        arrived = [:]
        logger.notice("stopped sealing", metadata: ["replica": "\(signer.address.short)", "why": "\(why)"])
    }

    // MARK: Sealing

    private func sealLoop() async {
        var iterator = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            guard mayServe else {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            if mempool.isEmpty {
                let due = config.heartbeat.map { ContinuousClock.now - lastSeal >= $0 } ?? false
                if !due {
                    // Sleep until work arrives or the heartbeat is due (bounded, so a lost lease is noticed).
                    let wait = min(config.heartbeat.map { $0 - (ContinuousClock.now - lastSeal) } ?? .milliseconds(200), .milliseconds(200))
                    let waker = Task { try? await Task.sleep(for: max(wait, .milliseconds(1))); self.wake.yield() }
                    _ = await iterator.next()
                    waker.cancel()
                    continue
                }
            }
            await sealOne()
            if ContinuousClock.now - lastPrune >= .seconds(2) { await prune(reclaiming: false) }
        }
    }

    /// Takes transactions in nonce order per sender, within the cutter's limits.
    private func take() async -> [Ordered] {
        let senders = Set(mempool.map(\.tx.from))
        var expected = await service.nonces(of: senders)
        var bySender: [Address: [Ordered]] = [:]
        var order: [Address] = []
        for o in mempool {
            if bySender[o.tx.from] == nil { order.append(o.tx.from) }
            bySender[o.tx.from, default: []].append(o)
        }
        var taken: [Ordered] = [], kept: [Ordered] = []
        var bytes = 512
        let now = ContinuousClock.now
        for sender in order {
            for o in (bySender[sender] ?? []).sorted(by: { $0.tx.nonce < $1.tx.nonce }) {
                let next = expected[sender] ?? 0
                if o.tx.nonce < next {
                    drop(o.hash)  // already used: a copy forwarded twice, or stale
                } else if o.tx.nonce == next, taken.count < config.maxBlockTransactions, bytes + o.size + 8 <= config.maxBlockBytes {
                    taken.append(o)
                    bytes += o.size + 8
                    expected[sender] = next + 1
                } else if let t = arrived[o.hash], now - t > .seconds(30) {
                    drop(o.hash)  // a nonce gap nobody filled
                } else {
                    kept.append(o)
                }
            }
        }
        mempool = kept
        for o in taken { mempoolHashes.remove(o.hash); arrived.removeValue(forKey: o.hash) }
        return taken
    }

    private func drop(_ hash: Hash256) {
        mempoolHashes.remove(hash)
        arrived.removeValue(forKey: hash)
    }

    private func putBack(_ txs: [Ordered]) {
        let now = ContinuousClock.now
        for o in txs where !mempoolHashes.contains(o.hash) {
            mempoolHashes.insert(o.hash)
            arrived[o.hash] = now
        }
        mempool = txs + mempool
    }

    private func sealOne() async {
        let txs = await take()
        let (block, slot) = await service.cut(txs.map(\.tx), hashes: txs.map(\.hash), signer: signer)
        let bytes = block.canonicalBytes
        var outcome: EtcdClient.Write?
        while outcome == nil, mayServe {
            do {
                outcome = try await etcd.create(key(slot), bytes, after: slot > 1 ? key(slot - 1) : nil)
            } catch let e as EtcdClient.EtcdError {
                lastError = e.message
                if e.kind == .unavailable {
                    // The outcome is unknown: read the entry back (ours, or someone else's to build on).
                    if let kv = try? await etcd.get(key(slot)) { outcome = .taken(kv); break }
                    try? await Task.sleep(for: .milliseconds(100))
                } else if e.kind == .noSpace {
                    // Etcd's space quota is exhausted: prune what every replica applied, compact, reclaim, try again.
                    logger.error("etcd's space quota is exhausted; pruning the log", metadata: ["slot": "\(slot)"])
                    await prune(reclaiming: true)
                    try? await Task.sleep(for: .milliseconds(200))
                } else {
                    logger.error("cannot append a block", metadata: ["slot": "\(slot)", "error": "\(e.message)"])
                    try? await Task.sleep(for: .milliseconds(500))
                    break
                }
            } catch {
                lastError = "\(error)"
                break
            }
        }
        switch outcome {
        case .written:
            lastSeal = .now
            _ = await service.ingest(slot: slot, block: block, signaturesValid: true)
        case let .taken(kv) where kv.value == bytes:
            lastSeal = .now
            _ = await service.ingest(slot: slot, block: block, signaturesValid: true)
        case let .taken(kv):
            conflicts.increment()
            putBack(txs)
            _ = await ingest([kv])
        case .missingPredecessor:
            putBack(txs)
            logger.error("the log has no entry \(slot - 1) although this replica applied it; is this etcd the chain's?")
            try? await Task.sleep(for: .seconds(1))
        case nil:
            putBack(txs)
        }
        await updateLag()
    }

    // MARK: Submissions

    /// Accepts transactions whose signatures were checked, forwarded by a replica (or
    /// submitted here), into the sealer's pool; refused when this replica is not sealing.
    public func accept(_ txs: [Ordered]) async throws -> [Result<Void, PlexusError>] {
        guard mayServe else { throw PlexusError(.notSealer, "this replica is not sealing") }
        let nonces = await service.nonces(of: Set(txs.map(\.tx.from)))
        let limit = Int(await service.params()[.maxTxBytes])
        let now = ContinuousClock.now
        var results: [Result<Void, PlexusError>] = []
        for o in txs {
            if mempoolHashes.contains(o.hash) { results.append(.success(())); continue }
            if o.size > limit { results.append(.failure(PlexusError(.tooLarge, "transaction is \(o.size) bytes; the limit is \(limit)"))); continue }
            if o.tx.nonce < nonces[o.tx.from] ?? 0 {
                results.append(.failure(PlexusError(.badNonce, "nonce \(o.tx.nonce) for \(o.tx.from.short) is used; expected \(nonces[o.tx.from] ?? 0)")))
                continue
            }
            guard mempool.count < 200_000 else { results.append(.failure(PlexusError(.busy, "the sealer's pool is full"))); continue }
            mempool.append(o)
            mempoolHashes.insert(o.hash)
            arrived[o.hash] = now
            results.append(.success(()))
        }
        wake.yield()
        return results
    }

    /// `accept` after checking the signatures (the forward endpoint checks those forwarded).
    private func acceptChecking(_ txs: [Ordered]) async throws -> [Result<Void, PlexusError>] {
        let checked = SignatureCheck.verifyAndHash(txs.map(\.tx))
        let good = txs.indices.filter { checked[$0].valid }
        var results = [Result<Void, PlexusError>](repeating: .failure(PlexusError(.badSignature, "signature does not verify over this transaction")), count: txs.count)
        for (i, r) in zip(good, try await accept(good.map { txs[$0] })) { results[i] = r }
        return results
    }

    /// Sends `txs` to the sealer (this replica, or the one the `sealer` key names),
    /// looking for one for up to the order timeout.
    private func forward(_ txs: [Ordered], until deadline: ContinuousClock.Instant) async -> [Result<Void, PlexusError>] {
        while true {
            do {
                if mayServe { return try await acceptChecking(txs) }
                if let s = sealer, s.address != signer.address {
                    return try await Self.post(txs, to: s.url, http: http)
                }
                if let kv = try? await etcd.get(sealerKey) { sealer = try? JSONDecoder().decode(SealerInfo.self, from: Data(kv.value)) }
            } catch {
                lastError = "\(error)"
                sealer = nil
            }
            guard ContinuousClock.now < deadline else {
                let e = PlexusError(.unavailable, "no sealer is ordering transactions now\(lastError.map { " (\($0))" } ?? "")")
                return txs.map { _ in .failure(e) }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    static func post(_ txs: [Ordered], to url: String, http: HTTPClient) async throws -> [Result<Void, PlexusError>] {
        var w = CanonicalWriter()
        w.write(array: txs.map(\.tx))
        var request = HTTPClientRequest(url: url + "/v1/replica/forward")
        request.method = .POST
        request.headers.add(name: "content-type", value: LedgerAPI.canonicalType)
        request.body = .bytes(ByteBuffer(bytes: w.bytes))
        let response = try await http.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else { throw PlexusError(.unavailable, "the sealer at \(url) answered \(response.status.code)") }
        let answer = try JSONDecoder().decode(LedgerAPI.BatchAnswer.self, from: Data(buffer: body))
        guard answer.results.count == txs.count else { throw PlexusError(.malformed, "the sealer answered for \(answer.results.count) of \(txs.count)") }
        return answer.results.map { item in
            item.error.map { .failure(PlexusError(PlexusError.Code($0.code), $0.message)) } ?? .success(())
        }
    }

    public func order(_ txs: [Ordered], waitForCommit wait: Bool) async -> [Result<LedgerService.Receipt, PlexusError>] {
        let deadline = ContinuousClock.now + config.orderTimeout
        let hashes = txs.map(\.hash)
        if wait { await service.expect(hashes) }
        let forwarded = await forward(txs, until: deadline)
        var results: [Result<LedgerService.Receipt, PlexusError>?] = forwarded.enumerated().map { i, r in
            switch r {
            case .failure(let e): .failure(e)
            case .success: wait ? nil : .success(LedgerService.Receipt(hash: hashes[i], height: 0, index: 0, committed: false))
            }
        }
        if wait {
            // Wait for the block; if none carries a transaction soon, forward it again (to
            // whichever replica seals now: the sealer that had it may have died).
            while results.contains(where: { $0 == nil }) {
                let waiting = results.indices.filter { results[$0] == nil }
                for (i, r) in zip(waiting, await service.outcomes(waiting.map { hashes[$0] }, timeout: .milliseconds(1500))) { results[i] = r }
                let pending = results.indices.filter { results[$0] == nil }
                guard !pending.isEmpty else { break }
                guard ContinuousClock.now < deadline else {
                    let e = PlexusError(.unavailable, "not ordered within \(config.orderTimeout)\(lastError.map { " (\($0))" } ?? "")")
                    for i in pending { results[i] = .failure(e) }
                    break
                }
                let again = await forward(pending.map { txs[$0] }, until: deadline)
                for (i, r) in zip(pending, again) { if case .failure(let e) = r, e.code != .badNonce { results[i] = .failure(e) } }
            }
            await service.forget(hashes)
        }
        return results.map { $0 ?? .failure(PlexusError(.unavailable, "not ordered")) }
    }
}

extension PlexusError.Code {
    /// A replica that is not the sealer was asked to seal.
    public static let notSealer = Self("not_sealer")
    /// The service cannot do this now (no sealer, etcd without quorum); try again.
    public static let unavailable = Self("unavailable")
}
