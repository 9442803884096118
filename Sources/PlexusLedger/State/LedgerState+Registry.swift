import PlexusCore

/// Node registry, model cards, gateways and settlement.
extension LedgerState {
    /// Pays out every settlement due at `height`; called from `beginBlock`.
    mutating func finalizeSettlements(at height: UInt64) throws -> [Event] {
        guard let due = finalizations.removeValue(forKey: height) else { return [] }
        var events: [Event] = []
        for id in due.sorted() {
            guard var s = settlements[id], s.status == .pending else { continue }
            for p in s.payouts where !p.amount.isZero {
                var a = account(p.account)
                a.balance = try a.balance.adding(p.amount)
                store(p.account, a)
            }
            // The first payouts go to the serving nodes' operators, one per
            // share; each earns reputation for work paid out.
            for p in s.payouts.prefix(s.nodes.count) { addReputation(p.account, params[.reputationPerSettlement]) }
            if !s.fee.isZero {
                var t = account(.treasury)
                t.balance = try t.balance.adding(s.fee)
                store(.treasury, t)
            }
            s.status = .final
            settlements[id] = s
            dirtyRecords.insert(.settlement(id))
            events.append(.settlementFinal(requestId: id, amount: s.charge))
        }
        return events
    }

    /// The rules a model card must meet to be registered (by a transaction, or in a genesis).
    func checkNewModel(_ card: ModelCard) throws {
        guard Self.validName(card.id) else { throw PlexusError(.malformed, "model id must be 1-\(Registry.maxName) characters of [A-Za-z0-9._:-/]") }
        guard models[card.id] == nil else { throw PlexusError(.invalidState, "model '\(card.id)' is already registered") }
        guard card.royaltyBps <= 5_000 else { throw PlexusError(.outOfRange, "royalty must be at most 5000 basis points") }
        guard card.contextLength >= 1 else { throw PlexusError(.outOfRange, "context length must be positive") }
        guard card.capabilities.count <= Registry.maxCapabilities else { throw PlexusError(.tooLarge, "a model card lists at most \(Registry.maxCapabilities) capabilities") }
        for text in [card.architecture, card.quantization, card.license] + card.capabilities where text.utf8.count > Registry.maxName {
            throw PlexusError(.tooLarge, "model card fields are at most \(Registry.maxName) bytes")
        }
    }

    /// Registers a genesis's model cards (checked as a registration would be).
    mutating func registerGenesisModels(_ cards: [ModelCard]) throws {
        for card in cards {
            try checkNewModel(card)
            write([.model(card.id): .model(card)])
        }
    }

    static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= Registry.maxName
            && s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "._:-/".unicodeScalars.contains($0)) }
    }

    func validateNode(endpoint: String, offers: [Offer]) throws {
        guard endpoint.utf8.count <= Registry.maxEndpoint, endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw PlexusError(.malformed, "node endpoint must be an http(s) URL of at most \(Registry.maxEndpoint) bytes")
        }
        guard !offers.isEmpty, offers.count <= Registry.maxOffers else {
            throw PlexusError(.outOfRange, "a node offers 1 to \(Registry.maxOffers) models")
        }
        var seen = Set<String>()
        for o in offers {
            guard models[o.model] != nil else { throw PlexusError(.notFound, "model '\(o.model.prefix(64))' is not registered") }
            guard params[.modelListing] == 0 || listedModels.contains(o.model) else {
                throw PlexusError(.invalidState, "model '\(o.model.prefix(64))' is not listed by governance; nodes may offer listed models only")
            }
            guard seen.insert(o.model).inserted else { throw PlexusError(.malformed, "model '\(o.model.prefix(64))' is offered twice") }
            guard o.concurrency >= 1, o.concurrency <= 4096 else { throw PlexusError(.outOfRange, "concurrency must be 1...4096") }
            guard o.contextLength >= 1 else { throw PlexusError(.outOfRange, "context length must be positive") }
            guard o.privacy.utf8.count <= Registry.maxName, o.region.utf8.count <= Registry.maxName else {
                throw PlexusError(.tooLarge, "privacy tier and region are at most \(Registry.maxName) bytes")
            }
            if let span = o.layers {
                try span.validate()
                guard span.start > 0 || span.end < span.total else { throw PlexusError(.malformed, "an offer of every layer is a whole-model offer: omit the span") }
            }
        }
    }

    /// Checks a registry transaction against the state; returns the records to
    /// write and the events, changing nothing.
    func planRegistry(_ tx: Transaction, sender: Account) throws -> (records: [RecordKey: RecordValue], events: [Event]) {
        switch tx.body {
        case let .registerNode(nodeKey, proof, endpoint, offers):
            guard nodes[tx.from] == nil else { throw PlexusError(.invalidState, "\(tx.from.short) already has a node; update or deregister it") }
            guard nodeKey != .treasury, nodeOwners[nodeKey] == nil else { throw PlexusError(.invalidState, "node key \(nodeKey.short) is already registered") }
            guard nodeKey.verifies(proof, over: Registry.nodeKeyProofBytes(chainId: chainId, owner: tx.from)) else {
                throw PlexusError(.badSignature, "the node key did not sign its binding to \(tx.from.short)")
            }
            guard sender.staked.units >= params[.minNodeStake] else {
                throw PlexusError(.insufficientFunds, "a node needs \(Amount(units: params[.minNodeStake])) staked; \(tx.from.short) has \(sender.staked)")
            }
            try validateNode(endpoint: endpoint, offers: offers)
            let record = NodeRecord(owner: tx.from, nodeKey: nodeKey, endpoint: endpoint, offers: offers, registeredHeight: height)
            return ([.node(tx.from): .node(record)], [.nodeRegistered(owner: tx.from, nodeKey: nodeKey)])
        case let .updateNode(endpoint, offers):
            guard var record = nodes[tx.from] else { throw PlexusError(.notFound, "\(tx.from.short) has no node") }
            try validateNode(endpoint: endpoint, offers: offers)
            record.endpoint = endpoint
            record.offers = offers
            return ([.node(tx.from): .node(record)], [.nodeUpdated(owner: tx.from)])
        case .deregisterNode:
            guard nodes[tx.from] != nil else { throw PlexusError(.notFound, "\(tx.from.short) has no node") }
            return ([.node(tx.from): .removed], [.nodeDeregistered(owner: tx.from)])
        case let .registerModel(card):
            guard card.creator == tx.from else { throw PlexusError(.badSignature, "a model card's creator must be its sender") }
            try checkNewModel(card)
            return ([.model(card.id): .model(card)], [.modelRegistered(model: card.id, creator: tx.from)])
        case let .registerGateway(key, proof):
            guard key != .treasury, gateways[key] == nil else { throw PlexusError(.invalidState, "gateway key \(key.short) is already registered") }
            guard key.verifies(proof, over: Registry.gatewayKeyProofBytes(chainId: chainId, owner: tx.from)) else {
                throw PlexusError(.badSignature, "the gateway key did not sign its binding to \(tx.from.short)")
            }
            let record = GatewayRecord(key: key, owner: tx.from, registeredHeight: height)
            return ([.gateway(key): .gateway(record)], [.gatewayRegistered(key: key, owner: tx.from)])
        case .settle, .settleQuoted:
            if case let .settleQuoted(_, quotes) = tx.body, Set(quotes.map(\.requestId)).count != quotes.count {
                throw PlexusError(.malformed, "a request is quoted twice")
            }
            guard gateways[tx.from] != nil else {
                throw PlexusError(.badSignature, "\(tx.from.short) is not a registered gateway key")
            }
            return ([:], [])
        default:
            return ([:], [])
        }
    }

    /// Applies planned record changes.
    mutating func write(_ records: [RecordKey: RecordValue]) {
        for (key, value) in records {
            switch (key, value) {
            case let (.node(owner), .node(record)):
                if let old = nodes[owner] { nodeOwners[old.nodeKey] = nil }
                nodes[owner] = record
                nodeOwners[record.nodeKey] = owner
            case let (.node(owner), .removed):
                if let old = nodes.removeValue(forKey: owner) { nodeOwners[old.nodeKey] = nil }
            case let (.model(id), .model(card)): models[id] = card
            case let (.gateway(k), .gateway(record)): gateways[k] = record
            default: continue
            }
            dirtyRecords.insert(key)
        }
    }

    /// Settles each request in `receipts` (consecutive receipts with the same
    /// request id are one request's shares) on its own: a request that fails
    /// a check is refused with a reason and moves nothing.
    mutating func settle(_ receipts: [Receipt], gateway: Address, quotes: [SpotQuote] = []) -> [Event] {
        let quoted = Dictionary(quotes.map { ($0.requestId, $0) }, uniquingKeysWith: { a, _ in a })
        // Every signature of the batch checked together (node and gateway keys are few and
        // prepared once); batched answers equal single verification's, signature by signature.
        var items: [(signature: [UInt8], publicKey: [UInt8], message: [UInt8])] = []
        items.reserveCapacity(2 * receipts.count)
        for r in receipts {
            items.append((r.nodeSignature.bytes, r.node.bytes, r.nodeSigningBytes(chainId: chainId)))
            items.append((r.gatewaySignature.bytes, r.gateway.bytes, r.gatewaySigningBytes(chainId: chainId)))
        }
        let valid = Ed25519.verify(batch: items, cache: SignatureCheck.keyCache)
        var events: [Event] = []
        var i = 0
        while i < receipts.count {
            var j = i + 1
            while j < receipts.count, receipts[j].requestId == receipts[i].requestId { j += 1 }
            let parts = Array(receipts[i..<j])
            let signed = Array(valid[(2 * i)..<(2 * j)])
            i = j
            let id = parts[0].requestId
            do {
                events.append(try settleOne(parts, signed: signed, gateway: gateway, quote: quoted[id]))
            } catch let e as PlexusError {
                events.append(.settlementRejected(requestId: id, reason: "\(e.code.rawValue): \(e.message)"))
            } catch {
                events.append(.settlementRejected(requestId: id, reason: "\(error)"))
            }
        }
        return events
    }

    /// `signed[2k]` and `signed[2k + 1]`: whether part k's node signature and gateway countersignature verify.
    private mutating func settleOne(_ parts: [Receipt], signed: [Bool], gateway: Address, quote: SpotQuote?) throws -> Event {
        let id = parts[0].requestId, requestor = parts[0].requestor
        guard settlements[id] == nil else { throw PlexusError(.invalidState, "request \(id.hex.prefix(16)) is already settled") }
        guard parts.count <= Registry.maxParts else { throw PlexusError(.tooLarge, "more than \(Registry.maxParts) shares") }
        guard requestor != .treasury else { throw PlexusError(.outOfRange, "the treasury has no escrow") }
        var modelId: String?
        var charge = Amount.zero
        var payouts: [Payout] = []
        var fee = Amount.zero, royalty = Amount.zero
        // Shares follow one another; a first share may start after 0 when an
        // earlier node failed mid-stream (its unsigned share is not paid).
        // A pipeline's shards each sign for their layers: the last shard's receipts (which
        // sampled the tokens) follow one another like whole-model nodes'; the others are paid
        // for the positions they ran.
        let sampling = parts.filter(\.samples)
        guard let firstSampling = sampling.first else { throw PlexusError(.malformed, "no share sampled the output") }
        var nextToken = firstSampling.firstOutputToken
        for (k, r) in parts.enumerated() {
            guard r.requestor == requestor else { throw PlexusError(.malformed, "shares name different requestors") }
            guard r.gateway == gateway else { throw PlexusError(.badSignature, "receipt countersigned by another gateway") }
            if r.samples {
                guard r.firstOutputToken == nextToken else { throw PlexusError(.malformed, "shares do not follow one another") }
                nextToken = try Self.sum(nextToken, r.outputTokens)
            }
            guard signed[2 * k] else {
                throw PlexusError(.badSignature, "the node signature on receipt \(r.requestId.hex.prefix(16)) does not verify")
            }
            guard signed[2 * k + 1] else {
                throw PlexusError(.badSignature, "the gateway countersignature on receipt \(r.requestId.hex.prefix(16)) does not verify")
            }
            guard let owner = nodeOwners[r.node], let node = nodes[owner] else {
                throw PlexusError(.notFound, "node \(r.node.short) is not registered")
            }
            try checkServable(owner, node: r.node)
            guard let offer = node.offers.first(where: { models[$0.model]?.weightsHash == r.modelHash && $0.layers == r.shard?.layers }),
                  let card = models[offer.model] else {
                throw PlexusError(.notFound, "node \(r.node.short) offers no model with weights \(r.modelHash.hex.prefix(16))")
            }
            guard modelId == nil || modelId == card.id else { throw PlexusError(.malformed, "shares name different models") }
            modelId = card.id
            guard r.priceIn <= offer.priceIn, r.priceOut <= offer.priceOut else {
                throw PlexusError(.outOfRange, "receipt prices exceed node \(r.node.short)'s offer")
            }
            let cost = try r.cost()
            let split = try Pricing.split(cost, feeBps: params[.protocolFeeBps], royaltyBps: UInt64(card.royaltyBps))
            charge = try charge.adding(cost)
            fee = try fee.adding(split.fee)
            royalty = try royalty.adding(split.royalty)
            payouts.append(Payout(account: owner, amount: split.node))
        }
        guard let modelId, let card = models[modelId] else { throw PlexusError(.malformed, "no shares") }
        guard !charge.isZero else { throw PlexusError(.zeroAmount, "the request cost nothing") }
        // The spot premium locked at admission, on the tokens the sampling shares read and wrote; to the treasury.
        let premiumRate = try spotPremium(modelId, quote: quote)
        let (premium, tokens) = try SpotPrice.premiumCost(parts, premium: premiumRate)
        charge = try charge.adding(premium)
        fee = try fee.adding(premium)
        // The royalty: the creator's, less the share of the contributors of the datasets the card cites.
        if !royalty.isZero {
            payouts += DataMarket.royaltyPayouts(royalty, creator: card.creator, shareBps: params[.provenanceShareBps],
                                                 datasets: (provenance[card.id] ?? []).compactMap { datasets[$0] })
        }
        // An agent's request is paid from its payer's escrow, within its policy, or not at all.
        var grant = agents[requestor]
        if let g = grant {
            if let refusal = g.refusal(of: charge, model: modelId, at: height) { throw refusal }
            grant = g.spending(charge, at: height)
        }
        let paying = grant?.payer ?? requestor
        var payer = account(paying)
        guard charge <= payer.escrow else {
            throw PlexusError(.insufficientFunds, "\(paying.short) has \(payer.escrow) in escrow, the request costs \(charge)")
        }
        let (finalHeight, o) = height.addingReportingOverflow(params[.challengeWindowBlocks])
        guard !o else { throw PlexusError(.overflow, "final height overflows") }
        payer.escrow = try payer.escrow.subtracting(charge)
        store(paying, payer)
        if let grant {
            agents[requestor] = grant
            dirtyRecords.insert(.agent(requestor))
        }
        noteSpotTokens(modelId, tokens)
        if !premium.isZero, let quote {
            spotCharges[id] = SpotCharge(premium: premiumRate, quoteHeight: quote.height, amount: premium)
            dirtyRecords.insert(.spotCharge(id))
        }
        settlements[id] = Settlement(requestId: id, requestor: requestor, gateway: gateway, model: modelId, charge: charge,
                                     payouts: payouts, fee: fee, nodes: parts.map(\.node), outputTokens: parts.map(\.outputTokens),
                                     settledHeight: height, finalHeight: finalHeight, status: .pending)
        finalizations[finalHeight, default: []].insert(id)
        dirtyRecords.insert(.settlement(id))
        noteSettled(id, owners: payouts.prefix(parts.count).map(\.account), receipts: parts)
        return .settlementPending(requestId: id, requestor: requestor, amount: charge, releaseHeight: finalHeight)
    }

    static func sum(_ a: UInt64, _ b: UInt64) throws -> UInt64 {
        let (s, o) = a.addingReportingOverflow(b)
        guard !o else { throw PlexusError(.overflow, "token counts overflow") }
        return s
    }
}

/// A planned record write.
enum RecordValue {
    case node(NodeRecord)
    case model(ModelCard)
    case gateway(GatewayRecord)
    case removed
}
