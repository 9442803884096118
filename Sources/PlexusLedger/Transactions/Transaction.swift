import PlexusCore

/// A signed ledger transaction: `{chainId, kind, from, nonce, fee, body, signature}`.
///
/// The signature is Ed25519 by `from` over `signingBytes` (the canonical
/// encoding of everything but the signature, under a domain tag). The
/// transaction hash is SHA-256 of the complete canonical bytes.
public struct Transaction: Sendable, Hashable {
    /// The chain this transaction is valid on; stops cross-chain replay.
    public var chainId: String
    /// The sender, who signs and pays the fee.
    public var from: Address
    /// Must equal the sender's account nonce; stops replay and reordering.
    public var nonce: UInt64
    /// Paid to the treasury; at least the `minFee` parameter.
    public var fee: Amount
    /// What the transaction does.
    public var body: Body
    /// Ed25519 by `from` over `signingBytes`.
    public var signature: Signature

    /// What a transaction does. Later modules add cases.
    public enum Body: Sendable, Hashable {
        /// Moves `amount` from the sender's balance to `to`.
        case transfer(to: Address, amount: Amount)
        /// Bonds `amount` of the sender's balance as stake.
        case stake(amount: Amount)
        /// Starts unbonding `amount` of stake; released after `unbondingBlocks`.
        case unstake(amount: Amount)
        /// Moves `amount` of the sender's balance into `requestor`'s escrow.
        case deposit(requestor: Address, amount: Amount)
        /// Starts withdrawing `amount` of the sender's own escrow; released after `escrowWithdrawDelayBlocks`.
        case withdraw(amount: Amount)
        /// Registers the sender's node: `nodeKey` signs receipts and consents
        /// with `keyProof` (its signature over `Registry.nodeKeyProofBytes`).
        case registerNode(nodeKey: Address, keyProof: Signature, endpoint: String, offers: [Offer])
        /// Replaces the sender's node's endpoint and offers.
        case updateNode(endpoint: String, offers: [Offer])
        /// Removes the sender's node.
        case deregisterNode
        /// Registers a model card; the sender is its creator.
        case registerModel(ModelCard)
        /// Binds a gateway key (which consents with `keyProof`) to the sender.
        case registerGateway(key: Address, keyProof: Signature)
        /// Settles receipts (sent by the countersigning gateway's key).
        case settle(receipts: [Receipt])
        /// Makes a governance proposal; its id is the hash of `content`.
        case propose(ProposalContent)
        /// Votes on a proposal: weights for (against, for, abstain).
        case vote(proposal: Hash256, weights: [UInt32])
        /// Lends the sender's stake-weighted voting power to `to` (itself to take it back).
        case delegate(to: Address)
        /// Queues a succeeded proposal behind the timelock.
        case queue(proposal: Hash256)
        /// Executes a queued proposal whose timelock has passed (anyone may).
        case execute(proposal: Hash256)
        /// Withdraws the sender's own proposal while it is pending.
        case cancel(proposal: Hash256)
        /// Founds a community; the sender is its first member.
        case createCommunity(id: String, scheme: VotingScheme, open: Bool)
        /// Joins a community (or applies, if it admits by approval).
        case joinCommunity(id: String)
        /// Leaves a community.
        case leaveCommunity(id: String)
        /// Admits an applicant (sent by a member).
        case admitMember(community: String, account: Address)
        /// Forks a community: the new one keeps its settings and history.
        case forkCommunity(parent: String, id: String)
        /// Approves up to `councilApprovals` candidates for a community's elected council.
        case approveCandidates(community: String, candidates: [Address])
        /// Records a network-produced summary of a proposal: its hash, the
        /// model and the settled request that produced it.
        case recordSummary(proposal: Hash256, summaryHash: Hash256, model: String, requestId: Hash256)
        /// Registers the sender as a verifier (its stake must meet `minVerifierStake`).
        case registerVerifier
        /// Ends the sender's verifier registration.
        case deregisterVerifier
        /// The assigned verifier's verdict on a spot check: a pass carries, for
        /// every share, the evidence only a re-execution produces; a failure
        /// names the first share found wrong and opens a dispute.
        case verdict(requestId: Hash256, pass: Bool, share: UInt8, evidence: [ChunkEvidence])
        /// Challenges one share of a pending settlement with a bond.
        case challenge(requestId: Hash256, share: UInt8, bond: Amount)
        /// A committee member's sealed vote (`Dispute.voteCommitment`).
        case commitVote(requestId: Hash256, commitment: Hash256)
        /// A committee member opens its sealed vote.
        case revealVote(requestId: Hash256, fraud: Bool, salt: Hash256)
        /// Lets `agent` spend the sender's escrow under `policy` (or changes the policy of the sender's agent).
        case grantAgent(agent: Address, policy: AgentPolicy)
        /// Ends the sender's grant to `agent` at once.
        case revokeAgent(agent: Address)
        /// Pays `to` for a call, tied to the settled request `requestId` that `to` made to serve
        /// it (once per request); an agent pays from its payer's escrow, within its policy.
        case payForCall(to: Address, amount: Amount, requestId: Hash256)
        /// Settles receipts like `settle`, with the spot premium each request's gateway locked at admission.
        case settleQuoted(receipts: [Receipt], quotes: [SpotQuote])
        /// Records a benchmark suite's result for `model` (the sender is the evaluator; `height` is ignored).
        case recordEvaluation(model: String, evaluation: Evaluation)
        /// Registers a dataset (the sender owns it; a name registered again is its next version).
        case registerDataset(DatasetManifest)
        /// Buys access to a dataset from `server`: the price is held until delivery is proven.
        case buyData(dataset: Hash256, server: Address)
        /// The buyer confirms delivery: the held price goes to the contributors.
        case confirmDelivery(grant: Hash256)
        /// The server shows the buyer's signed acknowledgement of delivery (`DataMarket.deliveryBytes`).
        case claimDelivery(grant: Hash256, acknowledgement: Signature)
        /// After the deadline, undelivered access is refunded to the buyer (anyone may send it).
        case refundData(grant: Hash256)
        /// The model's creator names the datasets it was trained or fine-tuned on (at most 4; replaces the last list).
        case citeDatasets(model: String, datasets: [Hash256])
        /// A gateway's measurements of the nodes it sent requests and probes to since its last report.
        case reportService(samples: [ServiceSample])

        /// The receipts a `settle` or `settle_quoted` carries (nil for other kinds).
        public var settledReceipts: [Receipt]? {
            switch self {
            case let .settle(receipts), let .settleQuoted(receipts, _): receipts
            default: nil
            }
        }

        /// The wire name of this kind.
        public var kind: Kind {
            switch self {
            case .transfer: .transfer
            case .stake: .stake
            case .unstake: .unstake
            case .deposit: .deposit
            case .withdraw: .withdraw
            case let .registerNode(_, _, _, offers): LayerSpan.anyIn(offers) ? .registerNodeLayered : .registerNode
            case let .updateNode(_, offers): LayerSpan.anyIn(offers) ? .updateNodeLayered : .updateNode
            case .deregisterNode: .deregisterNode
            case .registerModel: .registerModel
            case .registerGateway: .registerGateway
            case let .settle(receipts): receipts.allSatisfy { $0.commitment == nil } ? .settle : .settleVersioned
            case .propose: .propose
            case .vote: .vote
            case .delegate: .delegate
            case .queue: .queue
            case .execute: .execute
            case .cancel: .cancel
            case .createCommunity: .createCommunity
            case .joinCommunity: .joinCommunity
            case .leaveCommunity: .leaveCommunity
            case .admitMember: .admitMember
            case .forkCommunity: .forkCommunity
            case .approveCandidates: .approveCandidates
            case .recordSummary: .recordSummary
            case .registerVerifier: .registerVerifier
            case .deregisterVerifier: .deregisterVerifier
            case .verdict: .verdict
            case .challenge: .challenge
            case .commitVote: .commitVote
            case .revealVote: .revealVote
            case .grantAgent: .grantAgent
            case .revokeAgent: .revokeAgent
            case .payForCall: .payForCall
            case .settleQuoted: .settleQuoted
            case .recordEvaluation: .recordEvaluation
            case .registerDataset: .registerDataset
            case .buyData: .buyData
            case .confirmDelivery: .confirmDelivery
            case .claimDelivery: .claimDelivery
            case .refundData: .refundData
            case .citeDatasets: .citeDatasets
            case .reportService: .reportService
            }
        }
    }

    /// Transaction kinds with their stable wire codes.
    public enum Kind: UInt16, CaseIterable, Sendable {
        case transfer = 1
        case stake = 2
        case unstake = 3
        case deposit = 4
        case withdraw = 5
        case registerNode = 6
        case updateNode = 7
        case deregisterNode = 8
        case registerModel = 9
        case registerGateway = 10
        case settle = 11
        case propose = 12
        case vote = 13
        case delegate = 14
        case queue = 15
        case execute = 16
        case cancel = 17
        case createCommunity = 18
        case joinCommunity = 19
        case leaveCommunity = 20
        case admitMember = 21
        case forkCommunity = 22
        case approveCandidates = 23
        case recordSummary = 24
        /// A settle transaction whose receipts carry their format (commitments among them).
        case settleVersioned = 25
        case registerVerifier = 26
        case deregisterVerifier = 27
        case verdict = 28
        case challenge = 29
        case commitVote = 30
        case revealVote = 31
        /// `registerNode` and `updateNode` with shard offers (their layer spans follow the offers).
        case registerNodeLayered = 32
        case updateNodeLayered = 33
        case grantAgent = 34
        case revokeAgent = 35
        case payForCall = 36
        case settleQuoted = 37
        case recordEvaluation = 38
        case registerDataset = 39
        case buyData = 40
        case confirmDelivery = 41
        case claimDelivery = 42
        case refundData = 43
        case citeDatasets = 44
        case reportService = 45

        /// The name used in JSON and on the command line.
        public var name: String {
            switch self {
            case .registerNode: "register_node"
            case .updateNode: "update_node"
            case .registerNodeLayered: "register_node_layered"
            case .updateNodeLayered: "update_node_layered"
            case .deregisterNode: "deregister_node"
            case .registerModel: "register_model"
            case .registerGateway: "register_gateway"
            case .createCommunity: "create_community"
            case .joinCommunity: "join_community"
            case .leaveCommunity: "leave_community"
            case .admitMember: "admit_member"
            case .forkCommunity: "fork_community"
            case .approveCandidates: "approve_candidates"
            case .recordSummary: "record_summary"
            case .settleVersioned: "settle_versioned"
            case .registerVerifier: "register_verifier"
            case .deregisterVerifier: "deregister_verifier"
            case .commitVote: "commit_vote"
            case .revealVote: "reveal_vote"
            case .grantAgent: "grant_agent"
            case .revokeAgent: "revoke_agent"
            case .payForCall: "pay_for_call"
            case .settleQuoted: "settle_quoted"
            case .recordEvaluation: "record_evaluation"
            case .registerDataset: "register_dataset"
            case .buyData: "buy_data"
            case .confirmDelivery: "confirm_delivery"
            case .claimDelivery: "claim_delivery"
            case .refundData: "refund_data"
            case .citeDatasets: "cite_datasets"
            case .reportService: "report_service"
            default: String(describing: self)
            }
        }

        /// Looks a kind up by name.
        public init(name: String) throws {
            guard let k = Self.allCases.first(where: { $0.name == name }) else {
                throw PlexusError(.unknownKind, "unknown transaction kind '\(name.prefix(64))'")
            }
            self = k
        }
    }

    /// Builds and signs a transaction.
    public init(chainId: String, from key: KeyPair, nonce: UInt64, fee: Amount, body: Body) {
        self.chainId = chainId
        self.from = key.address
        self.nonce = nonce
        self.fee = fee
        self.body = body
        self.signature = .empty
        self.signature = key.sign(signingBytes)
    }

    /// Assembles a transaction from its parts without signing.
    public init(chainId: String, from: Address, nonce: UInt64, fee: Amount, body: Body, signature: Signature) {
        self.chainId = chainId
        self.from = from
        self.nonce = nonce
        self.fee = fee
        self.body = body
        self.signature = signature
    }

    static let domain = Array("plexus-tx-v1".utf8)

    /// The bytes the signature covers.
    public var signingBytes: [UInt8] {
        var w = CanonicalWriter(capacity: 160)
        encodeUnsigned(to: &w)
        return w.bytes
    }

    func encodeUnsigned(to w: inout CanonicalWriter) {
        w.write(fixed: Self.domain)
        w.write(chainId)
        w.write(body.kind.rawValue)
        w.write(from)
        w.write(nonce)
        w.write(fee)
        switch body {
        case let .transfer(to, amount):
            w.write(to)
            w.write(amount)
        case let .stake(amount), let .unstake(amount), let .withdraw(amount):
            w.write(amount)
        case let .deposit(requestor, amount):
            w.write(requestor)
            w.write(amount)
        case let .registerNode(key, proof, endpoint, offers):
            w.write(key); w.write(proof); w.write(endpoint); w.write(array: offers)
            if body.kind == .registerNodeLayered { LayerSpan.write(offers, to: &w) }
        case let .updateNode(endpoint, offers):
            w.write(endpoint); w.write(array: offers)
            if body.kind == .updateNodeLayered { LayerSpan.write(offers, to: &w) }
        case .deregisterNode:
            break
        case let .registerModel(card):
            w.write(card)
        case let .registerGateway(key, proof):
            w.write(key); w.write(proof)
        case let .settle(receipts):
            if body.kind == .settle { w.write(array: receipts) } else { w.write(array: receipts.map(VersionedReceipt.init)) }
        case let .propose(content):
            w.write(content)
        case let .vote(p, weights):
            w.write(p); w.write(UInt32(weights.count)); for x in weights { w.write(x) }
        case let .delegate(to):
            w.write(to)
        case let .queue(p), let .execute(p), let .cancel(p):
            w.write(p)
        case let .createCommunity(id, scheme, open):
            w.write(id); w.write(scheme.rawValue); w.write(open)
        case let .joinCommunity(id), let .leaveCommunity(id):
            w.write(id)
        case let .admitMember(c, a):
            w.write(c); w.write(a)
        case let .forkCommunity(parent, id):
            w.write(parent); w.write(id)
        case let .approveCandidates(c, candidates):
            w.write(c); w.write(array: candidates)
        case let .recordSummary(p, h, m, r):
            w.write(p); w.write(h); w.write(m); w.write(r)
        case .registerVerifier, .deregisterVerifier:
            break
        case let .verdict(id, pass, share, evidence):
            w.write(id); w.write(pass); w.write(share); w.write(array: evidence)
        case let .challenge(id, share, bond):
            w.write(id); w.write(share); w.write(bond)
        case let .commitVote(id, commitment):
            w.write(id); w.write(commitment)
        case let .revealVote(id, fraud, salt):
            w.write(id); w.write(fraud); w.write(salt)
        case let .grantAgent(agent, policy):
            w.write(agent); w.write(policy)
        case let .revokeAgent(agent):
            w.write(agent)
        case let .payForCall(to, amount, requestId):
            w.write(to); w.write(amount); w.write(requestId)
        case let .settleQuoted(receipts, quotes):
            w.write(array: receipts.map(VersionedReceipt.init)); w.write(array: quotes)
        case let .recordEvaluation(model, evaluation):
            w.write(model); w.write(evaluation)
        case let .registerDataset(manifest):
            w.write(manifest)
        case let .buyData(dataset, server):
            w.write(dataset); w.write(server)
        case let .confirmDelivery(grant), let .refundData(grant):
            w.write(grant)
        case let .claimDelivery(grant, acknowledgement):
            w.write(grant); w.write(acknowledgement)
        case let .citeDatasets(model, datasets):
            w.write(model); w.write(array: datasets)
        case let .reportService(samples):
            w.write(array: samples)
        }
    }

    /// SHA-256 of the canonical bytes.
    public var hash: Hash256 { Hash256.of(canonicalBytes) }

    /// Whether the signature verifies against `from`.
    public var hasValidSignature: Bool { from.verifies(signature, over: signingBytes) }

    /// Encodes once, then returns whether the signature verifies and the hash.
    public func verifiedHash() -> (valid: Bool, hash: Hash256) {
        let full = canonicalBytes
        let signing = Array(full[0..<(full.count - 64)])
        return (from.verifies(signature, over: signing), Hash256.of(full))
    }

    /// Checks the signature, throwing `bad_signature` if it fails.
    public func verifySignature() throws {
        guard hasValidSignature else {
            throw PlexusError(.badSignature, "signature does not verify for \(from.short) over this transaction")
        }
    }
}

extension Transaction: CanonicalCodable {
    /// The layer spans of a layered node transaction; one canonical form: it must name one.
    static func readLayers(into offers: inout [Offer], from r: inout CanonicalReader) throws {
        try LayerSpan.read(into: &offers, from: &r)
        guard LayerSpan.anyIn(offers) else { throw PlexusError(.malformed, "a layered node transaction must carry a shard offer") }
    }

    public func encode(to w: inout CanonicalWriter) {
        encodeUnsigned(to: &w)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws {
        let tag = try r.readBytes(count: Self.domain.count)
        guard tag == Self.domain else {
            throw PlexusError(.malformed, "not a Plexus transaction (bad domain tag)")
        }
        chainId = try r.readString(limit: 64)
        let code = try r.readUInt16()
        guard let kind = Kind(rawValue: code) else {
            throw PlexusError(.unknownKind, "unknown transaction kind code \(code)")
        }
        from = try r.readAddress()
        nonce = try r.readUInt64()
        fee = try r.readAmount()
        switch kind {
        case .transfer: body = .transfer(to: try r.readAddress(), amount: try r.readAmount())
        case .stake: body = .stake(amount: try r.readAmount())
        case .unstake: body = .unstake(amount: try r.readAmount())
        case .deposit: body = .deposit(requestor: try r.readAddress(), amount: try r.readAmount())
        case .withdraw: body = .withdraw(amount: try r.readAmount())
        case .registerNode, .registerNodeLayered:
            let key = try r.readAddress(), proof = try r.readSignature(), endpoint = try r.readString(limit: Registry.maxEndpoint)
            var offers = try r.readArray(of: Offer.self, limit: Registry.maxOffers)
            if kind == .registerNodeLayered { try Self.readLayers(into: &offers, from: &r) }
            body = .registerNode(nodeKey: key, keyProof: proof, endpoint: endpoint, offers: offers)
        case .updateNode, .updateNodeLayered:
            let endpoint = try r.readString(limit: Registry.maxEndpoint)
            var offers = try r.readArray(of: Offer.self, limit: Registry.maxOffers)
            if kind == .updateNodeLayered { try Self.readLayers(into: &offers, from: &r) }
            body = .updateNode(endpoint: endpoint, offers: offers)
        case .deregisterNode: body = .deregisterNode
        case .registerModel: body = .registerModel(try ModelCard(from: &r))
        case .registerGateway: body = .registerGateway(key: try r.readAddress(), keyProof: try r.readSignature())
        case .settle: body = .settle(receipts: try r.readArray(of: Receipt.self, limit: 4096))
        case .settleVersioned:
            let receipts = try r.readArray(of: VersionedReceipt.self, limit: 4096).map(\.receipt)
            // One canonical form: receipts all of format 1 travel in a plain `settle`.
            guard receipts.contains(where: { $0.commitment != nil }) else {
                throw PlexusError(.malformed, "a versioned settle transaction must carry a receipt of format 2")
            }
            body = .settle(receipts: receipts)
        case .propose: body = .propose(try ProposalContent(from: &r))
        case .vote:
            let p = try r.readHash()
            let n = Int(try r.readUInt32())
            guard n <= 8 else { throw PlexusError(.tooLarge, "a ballot has at most 8 weights") }
            body = .vote(proposal: p, weights: try (0..<n).map { _ in try r.readUInt32() })
        case .delegate: body = .delegate(to: try r.readAddress())
        case .queue: body = .queue(proposal: try r.readHash())
        case .execute: body = .execute(proposal: try r.readHash())
        case .cancel: body = .cancel(proposal: try r.readHash())
        case .createCommunity:
            let id = try r.readString(limit: Registry.maxName)
            guard let s = VotingScheme(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown voting scheme") }
            body = .createCommunity(id: id, scheme: s, open: try r.readBool())
        case .joinCommunity: body = .joinCommunity(id: try r.readString(limit: Registry.maxName))
        case .leaveCommunity: body = .leaveCommunity(id: try r.readString(limit: Registry.maxName))
        case .admitMember: body = .admitMember(community: try r.readString(limit: Registry.maxName), account: try r.readAddress())
        case .forkCommunity: body = .forkCommunity(parent: try r.readString(limit: Registry.maxName), id: try r.readString(limit: Registry.maxName))
        case .approveCandidates:
            body = .approveCandidates(community: try r.readString(limit: Registry.maxName), candidates: try r.readArray(of: Address.self, limit: 100))
        case .recordSummary:
            body = .recordSummary(proposal: try r.readHash(), summaryHash: try r.readHash(), model: try r.readString(limit: Registry.maxName),
                                  requestId: try r.readHash())
        case .registerVerifier: body = .registerVerifier
        case .deregisterVerifier: body = .deregisterVerifier
        case .verdict:
            body = .verdict(requestId: try r.readHash(), pass: try r.readBool(), share: try r.readUInt8(),
                            evidence: try r.readArray(of: ChunkEvidence.self, limit: Registry.maxParts))
        case .challenge: body = .challenge(requestId: try r.readHash(), share: try r.readUInt8(), bond: try r.readAmount())
        case .commitVote: body = .commitVote(requestId: try r.readHash(), commitment: try r.readHash())
        case .revealVote: body = .revealVote(requestId: try r.readHash(), fraud: try r.readBool(), salt: try r.readHash())
        case .grantAgent: body = .grantAgent(agent: try r.readAddress(), policy: try AgentPolicy(from: &r))
        case .revokeAgent: body = .revokeAgent(agent: try r.readAddress())
        case .payForCall: body = .payForCall(to: try r.readAddress(), amount: try r.readAmount(), requestId: try r.readHash())
        case .settleQuoted:
            body = .settleQuoted(receipts: try r.readArray(of: VersionedReceipt.self, limit: 4096).map(\.receipt),
                                 quotes: try r.readArray(of: SpotQuote.self, limit: 4096))
        case .recordEvaluation: body = .recordEvaluation(model: try r.readString(limit: Registry.maxName), evaluation: try Evaluation(from: &r))
        case .registerDataset: body = .registerDataset(try DatasetManifest(from: &r))
        case .buyData: body = .buyData(dataset: try r.readHash(), server: try r.readAddress())
        case .confirmDelivery: body = .confirmDelivery(grant: try r.readHash())
        case .claimDelivery: body = .claimDelivery(grant: try r.readHash(), acknowledgement: try r.readSignature())
        case .refundData: body = .refundData(grant: try r.readHash())
        case .citeDatasets: body = .citeDatasets(model: try r.readString(limit: Registry.maxName), datasets: try r.readArray(of: Hash256.self, limit: DataMarket.maxCitations))
        case .reportService: body = .reportService(samples: try r.readArray(of: ServiceSample.self, limit: ServiceSample.maxPerReport))
        }
        signature = try r.readSignature()
    }
}

extension PlexusError.Code {
    /// A transaction names a kind this ledger does not know.
    public static let unknownKind = Self("unknown_kind")
    /// A transaction is for another chain.
    public static let wrongChain = Self("wrong_chain")
    /// A transaction's nonce is not the sender's next nonce.
    public static let badNonce = Self("bad_nonce")
    /// The sender cannot afford the transaction.
    public static let insufficientFunds = Self("insufficient_funds")
    /// The fee is below `minFee`.
    public static let feeTooLow = Self("fee_too_low")
    /// An amount is zero where that is meaningless.
    public static let zeroAmount = Self("zero_amount")
    /// A block failed validation.
    public static let invalidBlock = Self("invalid_block")
    /// Replicas disagree on the state.
    public static let stateMismatch = Self("state_mismatch")
}
