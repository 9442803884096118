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
        case .registerNode:
            body = .registerNode(nodeKey: try b.decode(Address.self, forKey: .nodeKey), keyProof: try b.decode(Signature.self, forKey: .keyProof),
                                 endpoint: try b.decode(String.self, forKey: .endpoint), offers: try b.decode([Offer].self, forKey: .offers))
        case .updateNode:
            body = .updateNode(endpoint: try b.decode(String.self, forKey: .endpoint), offers: try b.decode([Offer].self, forKey: .offers))
        case .deregisterNode: body = .deregisterNode
        case .registerModel: body = .registerModel(try b.decode(ModelCard.self, forKey: .card))
        case .registerGateway:
            body = .registerGateway(key: try b.decode(Address.self, forKey: .key), keyProof: try b.decode(Signature.self, forKey: .keyProof))
        case .settle: body = .settle(receipts: try b.decode([Receipt].self, forKey: .receipts))
        }
        signature = try c.decode(Signature.self, forKey: .signature)
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
        }
        try c.encode(signature, forKey: .signature)
    }
}
