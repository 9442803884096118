import PlexusCore

/// JSON form used by the HTTP API:
/// `{"chainId","kind","from","nonce","fee","body":{...},"signature"}` with
/// amounts as base-unit strings. Unknown kinds and missing fields are errors.
extension Transaction: Codable {
    enum CodingKeys: String, CodingKey {
        case chainId, kind, from, nonce, fee, body, signature
    }

    enum BodyKeys: String, CodingKey {
        case to, amount, requestor, nodeKey, keyProof, endpoint, offers, card, key, receipts
        case content, proposal, weights, id, scheme, open, community, account, parent, candidates, summaryHash, model, requestId
        case pass, share, evidence, bond, commitment, fraud, salt, agent, policy, quotes, evaluation, manifest, dataset, server, grant, acknowledgement, datasets, samples
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        chainId = try c.decode(String.self, forKey: .chainId)
        guard chainId.utf8.count <= 64 else {
            throw PlexusError(.malformed, "chain id is longer than 64 bytes")
        }
        let kind = try Kind(name: c.decode(String.self, forKey: .kind))
        from = try c.decode(Address.self, forKey: .from)
        nonce = try c.decode(UInt64.self, forKey: .nonce)
        fee = try c.decode(Amount.self, forKey: .fee)
        let b = try c.nestedContainer(keyedBy: BodyKeys.self, forKey: .body)
        switch kind {
        case .transfer:
            body = .transfer(to: try b.decode(Address.self, forKey: .to), amount: try b.decode(Amount.self, forKey: .amount))
        case .stake: body = .stake(amount: try b.decode(Amount.self, forKey: .amount))
        case .unstake: body = .unstake(amount: try b.decode(Amount.self, forKey: .amount))
        case .deposit:
            body = .deposit(requestor: try b.decode(Address.self, forKey: .requestor), amount: try b.decode(Amount.self, forKey: .amount))
        case .withdraw: body = .withdraw(amount: try b.decode(Amount.self, forKey: .amount))
        case .registerNode, .registerNodeLayered:
            body = .registerNode(nodeKey: try b.decode(Address.self, forKey: .nodeKey), keyProof: try b.decode(Signature.self, forKey: .keyProof),
                                 endpoint: try b.decode(String.self, forKey: .endpoint), offers: try b.decode([Offer].self, forKey: .offers))
        case .updateNode, .updateNodeLayered:
            body = .updateNode(endpoint: try b.decode(String.self, forKey: .endpoint), offers: try b.decode([Offer].self, forKey: .offers))
        case .deregisterNode: body = .deregisterNode
        case .registerModel: body = .registerModel(try b.decode(ModelCard.self, forKey: .card))
        case .registerGateway:
            body = .registerGateway(key: try b.decode(Address.self, forKey: .key), keyProof: try b.decode(Signature.self, forKey: .keyProof))
        case .settle, .settleVersioned: body = .settle(receipts: try b.decode([Receipt].self, forKey: .receipts))
        case .propose: body = .propose(try b.decode(ProposalContent.self, forKey: .content))
        case .vote: body = .vote(proposal: try b.decode(Hash256.self, forKey: .proposal), weights: try b.decode([UInt32].self, forKey: .weights))
        case .delegate: body = .delegate(to: try b.decode(Address.self, forKey: .to))
        case .queue: body = .queue(proposal: try b.decode(Hash256.self, forKey: .proposal))
        case .execute: body = .execute(proposal: try b.decode(Hash256.self, forKey: .proposal))
        case .cancel: body = .cancel(proposal: try b.decode(Hash256.self, forKey: .proposal))
        case .createCommunity:
            body = .createCommunity(id: try b.decode(String.self, forKey: .id), scheme: try b.decode(VotingScheme.self, forKey: .scheme),
                                    open: try b.decode(Bool.self, forKey: .open))
        case .joinCommunity: body = .joinCommunity(id: try b.decode(String.self, forKey: .id))
        case .leaveCommunity: body = .leaveCommunity(id: try b.decode(String.self, forKey: .id))
        case .admitMember:
            body = .admitMember(community: try b.decode(String.self, forKey: .community), account: try b.decode(Address.self, forKey: .account))
        case .forkCommunity: body = .forkCommunity(parent: try b.decode(String.self, forKey: .parent), id: try b.decode(String.self, forKey: .id))
        case .approveCandidates:
            body = .approveCandidates(community: try b.decode(String.self, forKey: .community), candidates: try b.decode([Address].self, forKey: .candidates))
        case .recordSummary:
            body = .recordSummary(proposal: try b.decode(Hash256.self, forKey: .proposal), summaryHash: try b.decode(Hash256.self, forKey: .summaryHash),
                                  model: try b.decode(String.self, forKey: .model), requestId: try b.decode(Hash256.self, forKey: .requestId))
        case .registerVerifier: body = .registerVerifier
        case .deregisterVerifier: body = .deregisterVerifier
        case .verdict:
            let evidence = try b.decode([ChunkEvidence].self, forKey: .evidence)
            guard evidence.count <= Registry.maxParts, evidence.allSatisfy({ $0.path.count <= ChunkEvidence.maxPath }) else {
                throw PlexusError(.tooLarge, "a verdict carries at most \(Registry.maxParts) proofs of at most \(ChunkEvidence.maxPath) steps")
            }
            body = .verdict(requestId: try b.decode(Hash256.self, forKey: .requestId), pass: try b.decode(Bool.self, forKey: .pass),
                            share: try b.decode(UInt8.self, forKey: .share), evidence: evidence)
        case .challenge:
            body = .challenge(requestId: try b.decode(Hash256.self, forKey: .requestId), share: try b.decode(UInt8.self, forKey: .share),
                              bond: try b.decode(Amount.self, forKey: .bond))
        case .commitVote:
            body = .commitVote(requestId: try b.decode(Hash256.self, forKey: .requestId), commitment: try b.decode(Hash256.self, forKey: .commitment))
        case .revealVote:
            body = .revealVote(requestId: try b.decode(Hash256.self, forKey: .requestId), fraud: try b.decode(Bool.self, forKey: .fraud),
                               salt: try b.decode(Hash256.self, forKey: .salt))
        case .grantAgent:
            body = .grantAgent(agent: try b.decode(Address.self, forKey: .agent), policy: try b.decode(AgentPolicy.self, forKey: .policy))
        case .revokeAgent: body = .revokeAgent(agent: try b.decode(Address.self, forKey: .agent))
        case .registerDataset: body = .registerDataset(try b.decode(DatasetManifest.self, forKey: .manifest))
        case .buyData: body = .buyData(dataset: try b.decode(Hash256.self, forKey: .dataset), server: try b.decode(Address.self, forKey: .server))
        case .confirmDelivery: body = .confirmDelivery(grant: try b.decode(Hash256.self, forKey: .grant))
        case .claimDelivery:
            body = .claimDelivery(grant: try b.decode(Hash256.self, forKey: .grant), acknowledgement: try b.decode(Signature.self, forKey: .acknowledgement))
        case .refundData: body = .refundData(grant: try b.decode(Hash256.self, forKey: .grant))
        case .citeDatasets: body = .citeDatasets(model: try b.decode(String.self, forKey: .model), datasets: try b.decode([Hash256].self, forKey: .datasets))
        case .reportService: body = .reportService(samples: try b.decode([ServiceSample].self, forKey: .samples))
        case .recordEvaluation:
            body = .recordEvaluation(model: try b.decode(String.self, forKey: .model), evaluation: try b.decode(Evaluation.self, forKey: .evaluation))
        case .settleQuoted:
            body = .settleQuoted(receipts: try b.decode([Receipt].self, forKey: .receipts), quotes: try b.decode([SpotQuote].self, forKey: .quotes))
        case .payForCall:
            body = .payForCall(to: try b.decode(Address.self, forKey: .to), amount: try b.decode(Amount.self, forKey: .amount),
                               requestId: try b.decode(Hash256.self, forKey: .requestId))
        }
        signature = try c.decode(Signature.self, forKey: .signature)
        // What JSON lets through must hold to the canonical form's limits too (names, titles, list
        // lengths): a transaction is signed, hashed and put in blocks by its canonical bytes, and
        // one whose bytes no reader takes back would stop every replica that read its block.
        guard (try? Transaction(canonicalBytes: canonicalBytes)) == self else {
            throw PlexusError(.tooLarge, "a field of this \(kind.name) transaction is beyond the ledger's limits (names of \(Registry.maxName) bytes, list lengths)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(chainId, forKey: .chainId)
        try c.encode(body.kind.name, forKey: .kind)
        try c.encode(from, forKey: .from)
        try c.encode(nonce, forKey: .nonce)
        try c.encode(fee, forKey: .fee)
        var b = c.nestedContainer(keyedBy: BodyKeys.self, forKey: .body)
        switch body {
        case let .transfer(to, amount):
            try b.encode(to, forKey: .to)
            try b.encode(amount, forKey: .amount)
        case let .stake(amount), let .unstake(amount), let .withdraw(amount):
            try b.encode(amount, forKey: .amount)
        case let .deposit(requestor, amount):
            try b.encode(requestor, forKey: .requestor)
            try b.encode(amount, forKey: .amount)
        case let .registerNode(key, proof, endpoint, offers):
            try b.encode(key, forKey: .nodeKey); try b.encode(proof, forKey: .keyProof)
            try b.encode(endpoint, forKey: .endpoint); try b.encode(offers, forKey: .offers)
        case let .updateNode(endpoint, offers):
            try b.encode(endpoint, forKey: .endpoint); try b.encode(offers, forKey: .offers)
        case .deregisterNode:
            break
        case let .registerModel(card):
            try b.encode(card, forKey: .card)
        case let .registerGateway(key, proof):
            try b.encode(key, forKey: .key); try b.encode(proof, forKey: .keyProof)
        case let .settle(receipts):
            try b.encode(receipts, forKey: .receipts)
        case let .propose(content):
            try b.encode(content, forKey: .content)
        case let .vote(p, weights):
            try b.encode(p, forKey: .proposal); try b.encode(weights, forKey: .weights)
        case let .delegate(to):
            try b.encode(to, forKey: .to)
        case let .queue(p), let .execute(p), let .cancel(p):
            try b.encode(p, forKey: .proposal)
        case let .createCommunity(id, scheme, open):
            try b.encode(id, forKey: .id); try b.encode(scheme, forKey: .scheme); try b.encode(open, forKey: .open)
        case let .joinCommunity(id), let .leaveCommunity(id):
            try b.encode(id, forKey: .id)
        case let .admitMember(c, a):
            try b.encode(c, forKey: .community); try b.encode(a, forKey: .account)
        case let .forkCommunity(parent, id):
            try b.encode(parent, forKey: .parent); try b.encode(id, forKey: .id)
        case let .approveCandidates(c, candidates):
            try b.encode(c, forKey: .community); try b.encode(candidates, forKey: .candidates)
        case let .recordSummary(p, h, m, r):
            try b.encode(p, forKey: .proposal); try b.encode(h, forKey: .summaryHash); try b.encode(m, forKey: .model); try b.encode(r, forKey: .requestId)
        case .registerVerifier, .deregisterVerifier:
            break
        case let .verdict(id, pass, share, evidence):
            try b.encode(id, forKey: .requestId); try b.encode(pass, forKey: .pass); try b.encode(share, forKey: .share)
            try b.encode(evidence, forKey: .evidence)
        case let .challenge(id, share, bond):
            try b.encode(id, forKey: .requestId); try b.encode(share, forKey: .share); try b.encode(bond, forKey: .bond)
        case let .commitVote(id, commitment):
            try b.encode(id, forKey: .requestId); try b.encode(commitment, forKey: .commitment)
        case let .revealVote(id, fraud, salt):
            try b.encode(id, forKey: .requestId); try b.encode(fraud, forKey: .fraud); try b.encode(salt, forKey: .salt)
        case let .grantAgent(agent, policy):
            try b.encode(agent, forKey: .agent); try b.encode(policy, forKey: .policy)
        case let .revokeAgent(agent):
            try b.encode(agent, forKey: .agent)
        case let .settleQuoted(receipts, quotes):
            try b.encode(receipts, forKey: .receipts); try b.encode(quotes, forKey: .quotes)
        case let .recordEvaluation(model, evaluation):
            try b.encode(model, forKey: .model); try b.encode(evaluation, forKey: .evaluation)
        case let .registerDataset(manifest):
            try b.encode(manifest, forKey: .manifest)
        case let .buyData(dataset, server):
            try b.encode(dataset, forKey: .dataset); try b.encode(server, forKey: .server)
        case let .confirmDelivery(grant), let .refundData(grant):
            try b.encode(grant, forKey: .grant)
        case let .claimDelivery(grant, acknowledgement):
            try b.encode(grant, forKey: .grant); try b.encode(acknowledgement, forKey: .acknowledgement)
        case let .citeDatasets(model, datasets):
            try b.encode(model, forKey: .model); try b.encode(datasets, forKey: .datasets)
        case let .reportService(samples):
            try b.encode(samples, forKey: .samples)
        case let .payForCall(to, amount, requestId):
            try b.encode(to, forKey: .to); try b.encode(amount, forKey: .amount); try b.encode(requestId, forKey: .requestId)
        }
        try c.encode(signature, forKey: .signature)
    }
}
