import PlexusCore

/// An owner's dataset name (its versions share it).
struct DatasetName: Hashable {
    var owner: Address
    var name: String
}

/// The data market's rules: datasets registered with their root, terms and contributors; access
/// bought from a server with the price held; paid out to the contributors by weight when the
/// buyer confirms delivery or the server shows the buyer's signed acknowledgement; refunded to
/// the buyer if neither comes by the deadline (`dataDeliveryBlocks`).
extension LedgerState {
    struct DataPlan {
        var dataset: Dataset?
        var grant: DataGrant?
        var citation: (model: String, datasets: [Hash256])?
        /// Accounts other than the sender, updated.
        var writes: [(Address, Account)] = []
        var events: [Event] = []
    }

    /// Checks a data transaction from `tx.from` and plans it; `sender` changes where the sender
    /// itself pays or is paid. Throws having changed nothing.
    func planData(_ tx: Transaction, sender: inout Account) throws -> DataPlan {
        var plan = DataPlan()
        var credited: [Address: Account] = [:]
        func credit(_ a: Address, _ amount: Amount) throws {
            if a == tx.from {
                sender.balance = try sender.balance.adding(amount)
            } else {
                var acct = credited[a] ?? account(a)
                acct.balance = try acct.balance.adding(amount)
                credited[a] = acct
            }
        }
        switch tx.body {
        case let .registerDataset(m):
            try m.validate()
            guard Self.validName(m.name) else { throw PlexusError(.malformed, "dataset name must be 1-\(Registry.maxName) characters of [A-Za-z0-9._:-/]") }
            if let parent = m.derivedFrom { guard datasets[parent] != nil else { throw PlexusError(.notFound, "no dataset \(parent.hex.prefix(16)) to derive from") } }
            let version = (datasetVersions[DatasetName(owner: tx.from, name: m.name)] ?? 0) &+ 1
            let id = DataMarket.datasetId(owner: tx.from, name: m.name, version: version)
            plan.dataset = Dataset(id: id, owner: tx.from, version: version, manifest: m, registeredHeight: height)
            plan.events.append(.market(action: "dataset_registered", subject: id.hex,
                                       detail: "\(m.name) v\(version) by \(tx.from.text): \(m.chunks) chunks, \(m.size) bytes, \(m.license), \(m.price.units)u per access"))

        case let .buyData(datasetId, server):
            guard let d = datasets[datasetId] else { throw PlexusError(.notFound, "no dataset \(datasetId.hex.prefix(16))") }
            guard !d.delisted else { throw PlexusError(.invalidState, "dataset \(datasetId.hex.prefix(16)) is delisted") }
            guard server != tx.from, server != .treasury else { throw PlexusError(.outOfRange, "the server is another account") }
            let id = DataMarket.grantId(buyer: tx.from, nonce: tx.nonce)
            guard grants[id] == nil else { throw PlexusError(.invalidState, "grant \(id.hex.prefix(16)) exists") }
            sender.balance = try Self.debit(sender.balance, d.manifest.price, tx.from)
            let (deadline, o) = height.addingReportingOverflow(params[.dataDeliveryBlocks])
            guard !o else { throw PlexusError(.overflow, "the deadline overflows") }
            plan.grant = DataGrant(id: id, dataset: datasetId, buyer: tx.from, server: server, amount: d.manifest.price, deadline: deadline)
            plan.events.append(.market(action: "data_bought", subject: id.hex,
                                       detail: "\(tx.from.text) bought \(datasetId.hex) from \(server.text) for \(d.manifest.price.units)u, due by \(deadline)"))

        case let .confirmDelivery(grantId), let .claimDelivery(grantId, _):
            guard var g = grants[grantId], g.status == .open else { throw PlexusError(.notFound, "no open grant \(grantId.hex.prefix(16))") }
            guard let d = datasets[g.dataset] else { throw PlexusError(.notFound, "the grant's dataset is gone") }
            if case let .claimDelivery(_, ack) = tx.body {
                guard tx.from == g.server else { throw PlexusError(.badSignature, "only the grant's server claims its delivery") }
                guard g.buyer.verifies(ack, over: DataMarket.deliveryBytes(chainId: chainId, grant: grantId, root: d.manifest.root)) else {
                    throw PlexusError(.badSignature, "the buyer did not sign the delivery of this dataset's root")
                }
            } else {
                guard tx.from == g.buyer else { throw PlexusError(.badSignature, "only the grant's buyer confirms its delivery") }
            }
            for p in DataMarket.split(g.amount, d.manifest.contributors) where !p.amount.isZero { try credit(p.account, p.amount) }
            g.status = .delivered
            plan.grant = g
            plan.events.append(.market(action: "data_delivered", subject: grantId.hex, detail: "\(g.amount.units)u to \(d.manifest.contributors.count) contributors"))

        case let .refundData(grantId):
            guard var g = grants[grantId], g.status == .open else { throw PlexusError(.notFound, "no open grant \(grantId.hex.prefix(16))") }
            guard height > g.deadline else { throw PlexusError(.invalidState, "grant \(grantId.hex.prefix(16)) may be delivered until height \(g.deadline)") }
            try credit(g.buyer, g.amount)
            g.status = .refunded
            plan.grant = g
            plan.events.append(.market(action: "data_refunded", subject: grantId.hex, detail: "\(g.amount.units)u back to \(g.buyer.text)"))

        case let .citeDatasets(model, cited):
            guard let card = models[model] else { throw PlexusError(.notFound, "model '\(model.prefix(64))' is not registered") }
            guard card.creator == tx.from else { throw PlexusError(.badSignature, "only the model's creator cites its datasets") }
            guard cited.count <= DataMarket.maxCitations, Set(cited).count == cited.count else {
                throw PlexusError(.outOfRange, "a model cites at most \(DataMarket.maxCitations) distinct datasets")
            }
            for d in cited { guard datasets[d] != nil else { throw PlexusError(.notFound, "no dataset \(d.hex.prefix(16))") } }
            plan.citation = (model, cited)
            plan.events.append(.market(action: "datasets_cited", subject: model, detail: cited.map(\.hex).joined(separator: ",")))

        default:
            throw PlexusError(.unknownKind, "not a data transaction")
        }
        plan.writes = credited.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return plan
    }

    /// Records a planned data transaction's dataset and grant (the accounts are stored by `apply`).
    mutating func applyData(_ plan: DataPlan) {
        if let d = plan.dataset {
            datasets[d.id] = d
            datasetVersions[DatasetName(owner: d.owner, name: d.manifest.name)] = d.version
            dirtyRecords.insert(.dataset(d.id))
        }
        if let g = plan.grant {
            grants[g.id] = g
            dirtyRecords.insert(.grant(g.id))
        }
        if let c = plan.citation {
            provenance[c.model] = c.datasets.isEmpty ? nil : c.datasets
            dirtyRecords.insert(.provenance(c.model))
        }
    }
}
