import PlexusCore

/// The whole ledger state and its pure transition rules.
///
/// Deterministic by construction: no clock (block time is an input), no
/// randomness, no floating point, and no iteration over hash-ordered
/// collections where order could reach the output. Every method either
/// applies all of its effects or throws having changed nothing.
public struct LedgerState: Sendable {
    /// The chain this state belongs to.
    public let chainId: String
    /// All units that exist; conserved by every transition.
    public let totalSupply: Amount
    /// Protocol parameters.
    public internal(set) var params: Params
    /// The height of the latest block begun (0 = genesis only).
    public internal(set) var height: UInt64 = 0
    /// Block time of the latest block begun, in milliseconds.
    public internal(set) var timeMillis: UInt64 = 0
    /// Every account ever touched.
    public internal(set) var accounts: [Address: Account] = [:]

    /// Registered nodes, by their owner's account.
    public internal(set) var nodes: [Address: NodeRecord] = [:]
    /// Model cards, by id.
    public internal(set) var models: [String: ModelCard] = [:]
    /// Gateways, by key.
    public internal(set) var gateways: [Address: GatewayRecord] = [:]
    /// Every settled request, pending or final, by request id.
    public internal(set) var settlements: [Hash256: Settlement] = [:]
    /// Governance: delegates and voting-power histories, by account.
    public internal(set) var voters: [Address: VoterRecord] = [:]
    /// Governance: network-wide totals and the federation.
    public internal(set) var govTotals = GovernanceTotals()
    /// Governance proposals, by id.
    public internal(set) var proposals: [Hash256: Proposal] = [:]
    /// Ballots cast, by proposal and voter.
    public internal(set) var ballots: [Hash256: [Address: Ballot]] = [:]
    /// Communities, by id (the root community and the federation included).
    public internal(set) var communities: [String: Community] = [:]
    /// Memberships, by community and account.
    public internal(set) var memberships: [String: [Address: Membership]] = [:]
    /// Council approvals, by community and approver.
    public internal(set) var approvals: [String: [Address: [Address]]] = [:]
    /// Models listed by governance.
    public internal(set) var listedModels: Set<String> = []
    /// Registered verifiers, by account.
    public internal(set) var verifiers: [Address: VerifierRecord] = [:]
    /// Reputation, jail terms and counts of nodes' operators and verifiers, by account.
    public internal(set) var standings: [Address: Standing] = [:]
    /// Spot checks of exactly verifiable settlements, by request id.
    public internal(set) var checks: [Hash256: Check] = [:]
    /// Disputes, open and decided, by request id.
    public internal(set) var disputes: [Hash256: Dispute] = [:]
    /// Agents' grants, by agent (`LedgerState+Agents`).
    public internal(set) var agents: [Address: AgentGrant] = [:]
    /// Payments for calls, by the request id they are tied to.
    public internal(set) var callPayments: [Hash256: CallPayment] = [:]
    /// Spot markets, by model (`LedgerState+Spot`), and the premium each settled request paid.
    public internal(set) var spot: [String: SpotMarket] = [:]
    public internal(set) var spotCharges: [Hash256: SpotCharge] = [:]
    /// Models' evaluations, by model.
    public internal(set) var evaluations: [String: [Evaluation]] = [:]
    /// Every parameter change governance has made, in order (for the parameters in force at a height).
    public internal(set) var paramChanges: [ParamChange] = []
    /// Nodes' measured service, by node key and model (`report_service`).
    public internal(set) var service: [ServiceKey: ServiceRecord] = [:]
    /// Datasets, by id; access grants, by id (`LedgerState+Data`).
    public internal(set) var datasets: [Hash256: Dataset] = [:]
    public internal(set) var grants: [Hash256: DataGrant] = [:]
    /// The datasets each model's card cites, by model (its royalty shares with their contributors).
    public internal(set) var provenance: [String: [Hash256]] = [:]
    /// The latest version of each owner's dataset name. Derived from `datasets`.
    var datasetVersions: [DatasetName: UInt32] = [:]
    /// Checks waiting for their draw, by the height that draws them. Derived.
    var checkDraws: [UInt64: Set<Hash256>] = [:]
    /// Assigned checks by the height at which their verdict is late. Derived.
    var checkDeadlines: [UInt64: Set<Hash256>] = [:]
    /// Open disputes by the height of their next step (draw or resolution). Derived.
    var disputeSteps: [UInt64: Set<Hash256>] = [:]
    /// Proposals still open to votes, by their deadline. Derived.
    var closing: [UInt64: Set<Hash256>] = [:]
    /// How many open proposals have each snapshot height. Derived.
    var openSnapshots: [UInt64: Int] = [:]
    /// No voting-power lookup happens below this height any more (the
    /// earliest open snapshot); histories drop what lies below it. Derived.
    var governanceFloor: UInt64 = 0
    /// Node key → owner. Derived from `nodes`.
    var nodeOwners: [Address: Address] = [:]
    /// Pending settlements by the height they become final. Derived.
    var finalizations: [UInt64: Set<Hash256>] = [:]
    var dirtyRecords: Set<RecordKey> = []

    /// Accounts with a release due at a height. Derived from `accounts`,
    /// so it is rebuilt on load rather than committed to.
    var releases: [UInt64: Set<Address>] = [:]
    var commitment = StateCommitment()
    var dirtyAccounts: Set<Address> = []
    var paramsDirty = true

    /// A state with the given accounts and parameters at height 0.
    public init(chainId: String, params: Params, accounts: [Address: Account]) throws {
        self.chainId = chainId
        self.params = params
        var supply = Amount.zero
        for address in accounts.keys.sorted() {
            guard let account = accounts[address] else { continue }
            supply = try supply.adding(account.total())
        }
        self.totalSupply = supply
        self.accounts = accounts
        for (address, account) in accounts {
            indexReleases(of: address, account)
            dirtyAccounts.insert(address)
        }
        setUpGovernance()
    }

    /// Reconstructs a state loaded from storage at `height`.
    public init(chainId: String, totalSupply: Amount, params: Params, height: UInt64, timeMillis: UInt64, accounts: [Address: Account]) {
        self.chainId = chainId
        self.totalSupply = totalSupply
        self.params = params
        self.height = height
        self.timeMillis = timeMillis
        self.accounts = accounts
        for (address, account) in accounts {
            indexReleases(of: address, account)
            dirtyAccounts.insert(address)
        }
    }

    /// The account at `address` (empty if never touched).
    public func account(_ address: Address) -> Account { accounts[address] ?? Account() }

    /// The treasury's balance.
    public var treasury: Amount { account(.treasury).balance }

    mutating func indexReleases(of address: Address, _ account: Account) {
        for r in account.unbonding { releases[r.releaseHeight, default: []].insert(address) }
        for r in account.escrowUnlocking { releases[r.releaseHeight, default: []].insert(address) }
    }

    mutating func store(_ address: Address, _ account: Account) {
        accounts[address] = account
        dirtyAccounts.insert(address)
    }

    /// Updates the commitment with everything changed since the last call and
    /// returns the state root with the changed accounts (sorted by address),
    /// the changed records (sorted by key; nil value = removed) and the
    /// parameters if they changed, for storage.
    public mutating func commit() -> (root: Hash256, accounts: [(Address, Account)], records: [(key: [UInt8], value: [UInt8]?)], params: Params?) {
        let changed = dirtyAccounts.sorted()
        dirtyAccounts.removeAll(keepingCapacity: true)
        var out = [(Address, Account)]()
        out.reserveCapacity(changed.count)
        for address in changed {
            let account = self.account(address)
            commitment.update(key: Self.accountKey(address), value: Digest32.hashing(account.canonicalBytes))
            out.append((address, account))
        }
        var records: [(key: [UInt8], value: [UInt8]?)] = []
        // Sort by the storage key's bytes, computed once per key.
        let keyed = dirtyRecords.map { ($0.bytes, $0) }.sorted { ByteOrder.less($0.0, $1.0) }
        records.reserveCapacity(keyed.count)
        for (bytes, key) in keyed {
            let value = recordBytes(key)
            commitment.update(key: Digest32.hashing(Self.recordPrefix + bytes), value: value.map { Digest32.hashing($0) })
            records.append((bytes, value))
        }
        dirtyRecords.removeAll(keepingCapacity: true)
        let changedParams = paramsDirty ? params : nil
        if paramsDirty {
            commitment.update(key: Self.paramsKey, value: Digest32.hashing(params.canonicalBytes))
            paramsDirty = false
        }
        return (commitment.root(), out, records, changedParams)
    }

    static let paramsKey = Digest32.hashing(Array("plexus-state:params".utf8))
    static let recordPrefix = Array("plexus-state:record:".utf8)

    static func accountKey(_ address: Address) -> Digest32 {
        Digest32.hashing(Array("plexus-state:account:".utf8) + address.bytes)
    }

    /// Sum of every unit held anywhere (accounts and pending settlements);
    /// equals `totalSupply` in every valid state.
    public func circulatingTotal() throws -> Amount {
        var t = Amount.zero
        for address in accounts.keys.sorted() {
            t = try t.adding(account(address).total())
        }
        return try t.adding(pendingSettlementTotal())
    }

    /// Units charged from escrow and not yet paid out, bonds of open disputes, and the price of
    /// data access held until delivery.
    public func pendingSettlementTotal() throws -> Amount {
        var t = Amount.zero
        for s in settlements.values where s.status == .pending || s.status == .disputed { t = try t.adding(s.charge) }
        for d in disputes.values where d.outcome == .open { t = try t.adding(d.bond) }
        for g in grants.values where g.status == .open { t = try t.adding(g.amount) }
        return t
    }

    /// The current encoding of a record, or nil if it does not exist.
    func recordBytes(_ key: RecordKey) -> [UInt8]? {
        switch key {
        case let .node(owner): nodes[owner]?.canonicalBytes
        case let .model(id): models[id]?.canonicalBytes
        case let .gateway(k): gateways[k]?.canonicalBytes
        case let .settlement(id): settlements[id]?.canonicalBytes
        case let .voter(a): voters[a]?.canonicalBytes
        case .govTotals: govTotals.canonicalBytes
        case let .proposal(id): proposals[id]?.canonicalBytes
        case let .ballot(id, a): ballots[id]?[a]?.canonicalBytes
        case let .community(id): communities[id]?.canonicalBytes
        case let .member(c, a): memberships[c]?[a]?.canonicalBytes
        case let .approval(c, a): approvals[c]?[a].map { list in
            var w = CanonicalWriter(capacity: 4 + 32 * list.count)
            w.write(array: list)
            return w.bytes
        }
        case let .listed(id): listedModels.contains(id) ? [1] : nil
        case let .verifier(a): verifiers[a]?.canonicalBytes
        case let .standing(a): standings[a]?.canonicalBytes
        case let .check(id): checks[id]?.canonicalBytes
        case let .dispute(id): disputes[id]?.canonicalBytes
        case let .agent(a): agents[a]?.canonicalBytes
        case let .callPayment(id): callPayments[id]?.canonicalBytes
        case let .spot(id): spot[id]?.canonicalBytes
        case let .spotCharge(id): spotCharges[id]?.canonicalBytes
        case let .dataset(id): datasets[id]?.canonicalBytes
        case let .grant(id): grants[id]?.canonicalBytes
        case let .provenance(id): provenance[id].map { list in
            var w = CanonicalWriter(capacity: 4 + 32 * list.count)
            w.write(array: list)
            return w.bytes
        }
        case let .service(node, model): service[ServiceKey(node: node, model: model)]?.canonicalBytes
        case .paramLog: paramChanges.isEmpty ? nil : {
            var w = CanonicalWriter(capacity: 64 * paramChanges.count)
            w.write(array: paramChanges)
            return w.bytes
        }()
        case let .evaluations(id): evaluations[id].map { list in
            var w = CanonicalWriter(capacity: 256 * list.count)
            w.write(array: list)
            return w.bytes
        }
        }
    }

    /// Restores records read from storage (after `init`).
    public mutating func load(records: [(key: [UInt8], value: [UInt8])]) throws {
        for (k, v) in records {
            let key = try RecordKey(bytes: k)
            switch key {
            case let .node(owner):
                let n = try NodeRecord(canonicalBytes: v)
                nodes[owner] = n
                nodeOwners[n.nodeKey] = owner
            case let .model(id): models[id] = try ModelCard(canonicalBytes: v)
            case let .gateway(g): gateways[g] = try GatewayRecord(canonicalBytes: v)
            case let .settlement(id):
                let s = try Settlement(canonicalBytes: v)
                settlements[id] = s
                if s.status == .pending { finalizations[s.finalHeight, default: []].insert(id) }
            case let .voter(a): voters[a] = try VoterRecord(canonicalBytes: v)
            case .govTotals: govTotals = try GovernanceTotals(canonicalBytes: v)
            case let .proposal(id):
                let p = try Proposal(canonicalBytes: v)
                proposals[id] = p
                if !p.canceled && p.deadline >= height { trackOpen(p) }
            case let .ballot(id, a): ballots[id, default: [:]][a] = try Ballot(canonicalBytes: v)
            case let .community(id): communities[id] = try Community(canonicalBytes: v)
            case let .member(c, a): memberships[c, default: [:]][a] = try Membership(canonicalBytes: v)
            case let .approval(c, a):
                var r = CanonicalReader(v)
                approvals[c, default: [:]][a] = try r.readArray(of: Address.self, limit: 100)
            case .listed(let id): listedModels.insert(id)
            case let .verifier(a): verifiers[a] = try VerifierRecord(canonicalBytes: v)
            case let .standing(a): standings[a] = try Standing(canonicalBytes: v)
            case let .check(id):
                let c = try Check(canonicalBytes: v)
                checks[id] = c
                indexCheck(c)
            case let .dispute(id):
                let d = try Dispute(canonicalBytes: v)
                disputes[id] = d
                indexDispute(d)
            case let .agent(a): agents[a] = try AgentGrant(canonicalBytes: v)
            case let .callPayment(id): callPayments[id] = try CallPayment(canonicalBytes: v)
            case let .spot(id): spot[id] = try SpotMarket(canonicalBytes: v)
            case let .spotCharge(id): spotCharges[id] = try SpotCharge(canonicalBytes: v)
            case let .dataset(id):
                let d = try Dataset(canonicalBytes: v)
                datasets[id] = d
                let name = DatasetName(owner: d.owner, name: d.manifest.name)
                datasetVersions[name] = max(datasetVersions[name] ?? 0, d.version)
            case let .grant(id): grants[id] = try DataGrant(canonicalBytes: v)
            case let .provenance(id):
                var r = CanonicalReader(v)
                provenance[id] = try r.readArray(of: Hash256.self, limit: DataMarket.maxCitations)
            case let .evaluations(id):
                var r = CanonicalReader(v)
                evaluations[id] = try r.readArray(of: Evaluation.self, limit: Evaluation.maxPerModel)
            case let .service(node, model): service[ServiceKey(node: node, model: model)] = try ServiceRecord(canonicalBytes: v)
            case .paramLog:
                var r = CanonicalReader(v)
                paramChanges = try r.readArray(of: ParamChange.self, limit: 1 << 20)
            }
            dirtyRecords.insert(key)
        }
        // Derived, like the indexes above: the earliest snapshot an open proposal can still
        // read (`closeVoting` moves it only forward, and a proposal's snapshot is never below
        // the floor when it opens). Left at 0, a restarted ledger kept history that every other
        // replica had dropped, and its next state root differed from theirs (found by the soak).
        governanceFloor = min(height, openSnapshots.keys.min() ?? height)
    }
}
