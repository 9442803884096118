import PlexusCore

extension LedgerState {
    /// Starts block `height` at `timeMillis`: releases every unbonding and
    /// escrow withdrawal due at or before it. Accounts are visited in address
    /// order so the events are deterministic.
    /// `parentHash` is the previous block's hash; it seeds draws by lot.
    public mutating func beginBlock(height newHeight: UInt64, timeMillis newTime: UInt64, parentHash: Hash256 = .zero) throws -> [Event] {
        guard newHeight == height + 1 else {
            throw PlexusError(.invalidBlock, "block \(newHeight) does not follow height \(height)")
        }
        guard newTime >= timeMillis else {
            throw PlexusError(.invalidBlock, "block time \(newTime) is before the previous block's \(timeMillis)")
        }
        height = newHeight
        timeMillis = newTime
        var events = try finalizeSettlements(at: newHeight)
        events += spotBlock()
        events += try trustBlock(parentHash: parentHash)
        events += governanceBlock(parentHash: parentHash)
        guard let due = releases.removeValue(forKey: newHeight) else { return events }
        for address in due.sorted() {
            var a = account(address)
            var freed = Amount.zero
            // Stake stays slashable while a dispute against the account is open.
            let held = standing(address).openDisputes > 0
            if held, a.unbonding.contains(where: { $0.releaseHeight <= newHeight }) { releases[newHeight + 1, default: []].insert(address) }
            a.unbonding.removeAll { r in
                guard !held else { return false }
                guard r.releaseHeight <= newHeight else { return false }
                freed = Amount(units: freed.units &+ r.amount.units)
                return true
            }
            var released = Amount.zero
            a.escrowUnlocking.removeAll { r in
                guard r.releaseHeight <= newHeight else { return false }
                released = Amount(units: released.units &+ r.amount.units)
                return true
            }
            // Cannot overflow: the units were already part of the conserved supply.
            a.balance = Amount(units: a.balance.units &+ freed.units &+ released.units)
            store(address, a)
            if !freed.isZero { events.append(.unbonded(account: address, amount: freed)) }
            if !released.isZero { events.append(.escrowReleased(requestor: address, amount: released)) }
        }
        return events
    }

    /// Checks everything about `tx` that does not depend on the signature and
    /// applies it, or throws and changes nothing. Callers must verify the
    /// signature first (`Transaction.verifySignature`); it is kept apart so
    /// that signatures can be checked in parallel before the serial apply.
    public mutating func apply(_ tx: Transaction) throws -> [Event] {
        guard tx.chainId == chainId else {
            throw PlexusError(.wrongChain, "transaction is for chain '\(tx.chainId.prefix(64))', this ledger is '\(chainId)'")
        }
        guard tx.from != .treasury else {
            throw PlexusError(.badSignature, "the treasury cannot send transactions")
        }
        var sender = account(tx.from)
        guard tx.nonce == sender.nonce else {
            throw PlexusError(.badNonce, "nonce \(tx.nonce) for \(tx.from.short); expected \(sender.nonce)")
        }
        guard tx.fee >= params.minFee else {
            throw PlexusError(.feeTooLow, "fee \(tx.fee.units)u is below the minimum \(params.minFee.units)u")
        }
        do {
            sender.balance = try sender.balance.subtracting(tx.fee)
        } catch {
            throw PlexusError(.insufficientFunds, "\(tx.from.short) cannot pay the fee \(tx.fee)")
        }
        sender.nonce += 1
        var treasury = account(.treasury)
        treasury.balance = try treasury.balance.adding(tx.fee)
        var events: [Event] = [.feePaid(from: tx.from, amount: tx.fee)]
        var writes: [(Address, Account)] = []
        var plan: (records: [RecordKey: RecordValue], events: [Event]) = ([:], [])
        var governance: GovernancePlan?
        var trust: TrustPlan?
        var agentPlan: AgentPlan?
        var evaluated: (model: String, list: [Evaluation])?
        var measured: [ServiceKey: ServiceRecord] = [:]
        var dataPlan: DataPlan?
        let stakeBefore = sender.staked.units

        switch tx.body {
        case let .transfer(to, amount):
            try Self.requirePositive(amount)
            sender.balance = try Self.debit(sender.balance, amount, tx.from)
            if to == tx.from {
                sender.balance = try sender.balance.adding(amount)
            } else if to == .treasury {
                treasury.balance = try treasury.balance.adding(amount)
            } else {
                var recipient = account(to)
                recipient.balance = try recipient.balance.adding(amount)
                writes.append((to, recipient))
            }
            events.append(.transferred(from: tx.from, to: to, amount: amount))

        case let .stake(amount):
            try Self.requirePositive(amount)
            sender.balance = try Self.debit(sender.balance, amount, tx.from)
            sender.staked = try sender.staked.adding(amount)
            events.append(.staked(account: tx.from, amount: amount))

        case let .unstake(amount):
            try Self.requirePositive(amount)
            guard amount <= sender.staked else {
                throw PlexusError(.insufficientFunds, "\(tx.from.short) has \(sender.staked) staked, cannot unstake \(amount)")
            }
            if nodes[tx.from] != nil, sender.staked.units - amount.units < params[.minNodeStake] {
                throw PlexusError(.invalidState, "\(tx.from.short) runs a node, which needs \(Amount(units: params[.minNodeStake])) staked; deregister it first")
            }
            // One stake secures every role; each role's minimum is checked against it.
            if verifiers[tx.from] != nil, sender.staked.units - amount.units < params[.minVerifierStake] {
                throw PlexusError(.invalidState, "\(tx.from.short) is a verifier, which needs \(Amount(units: params[.minVerifierStake])) staked; deregister it first")
            }
            guard !standing(tx.from).isJailed(at: height) else {
                throw PlexusError(.invalidState, "\(tx.from.short) is jailed until height \(standing(tx.from).jailedUntil) and cannot unstake")
            }
            try requireReleaseSlot(sender.unbonding)
            let release = try releaseHeight(after: params[.unbondingBlocks])
            sender.staked = try sender.staked.subtracting(amount)
            sender.unbonding.append(PendingRelease(amount: amount, releaseHeight: release))
            events.append(.unstaked(account: tx.from, amount: amount, releaseHeight: release))

        case let .deposit(requestor, amount):
            try Self.requirePositive(amount)
            guard requestor != .treasury else {
                throw PlexusError(.outOfRange, "the treasury cannot hold escrow")
            }
            sender.balance = try Self.debit(sender.balance, amount, tx.from)
            if requestor == tx.from {
                sender.escrow = try sender.escrow.adding(amount)
            } else {
                var r = account(requestor)
                r.escrow = try r.escrow.adding(amount)
                writes.append((requestor, r))
            }
            events.append(.escrowDeposited(payer: tx.from, requestor: requestor, amount: amount))

        case let .withdraw(amount):
            try Self.requirePositive(amount)
            guard amount <= sender.escrow else {
                throw PlexusError(.insufficientFunds, "\(tx.from.short) has \(sender.escrow) in escrow, cannot withdraw \(amount)")
            }
            try requireReleaseSlot(sender.escrowUnlocking)
            let release = try releaseHeight(after: params[.escrowWithdrawDelayBlocks])
            sender.escrow = try sender.escrow.subtracting(amount)
            sender.escrowUnlocking.append(PendingRelease(amount: amount, releaseHeight: release))
            events.append(.escrowWithdrawRequested(requestor: tx.from, amount: amount, releaseHeight: release))

        case .registerNode, .updateNode, .deregisterNode, .registerModel, .registerGateway, .settle, .settleQuoted:
            plan = try planRegistry(tx, sender: sender)

        case .propose, .vote, .delegate, .queue, .execute, .cancel, .createCommunity, .joinCommunity, .leaveCommunity,
             .admitMember, .forkCommunity, .approveCandidates, .recordSummary:
            governance = try planGovernance(tx)

        case .registerVerifier, .deregisterVerifier, .verdict, .commitVote, .revealVote:
            trust = try planTrust(tx, sender: sender)

        case let .challenge(_, _, bond):
            trust = try planTrust(tx, sender: sender)
            sender.balance = try Self.debit(sender.balance, bond, tx.from)

        case let .recordEvaluation(model, evaluation):
            evaluated = (model, try planEvaluation(evaluation, model: model, from: tx.from))
            events.append(.market(action: "evaluation_recorded", subject: model,
                                  detail: "\(evaluation.name): \(evaluation.correct) of \(evaluation.requests.count) by \(tx.from.text)"))

        case let .reportService(samples):
            measured = try planServiceReport(samples, from: tx.from)
            events.append(.market(action: "service_reported", subject: tx.from.text, detail: "\(samples.count) node and model samples"))

        case .registerDataset, .buyData, .confirmDelivery, .claimDelivery, .refundData, .citeDatasets:
            let p = try planData(tx, sender: &sender)
            writes += p.writes
            dataPlan = p

        case .grantAgent, .revokeAgent, .payForCall:
            let p = try planAgents(tx, sender: &sender)
            writes += p.writes
            agentPlan = p
        }

        // Every check has passed: commit all writes together.
        store(tx.from, sender)
        store(.treasury, treasury)
        for (address, account) in writes { store(address, account) }
        if case .unstake = tx.body { indexReleases(of: tx.from, sender) }
        if case .withdraw = tx.body { indexReleases(of: tx.from, sender) }
        write(plan.records)
        events += plan.events
        if case let .settle(receipts) = tx.body { events += settle(receipts, gateway: tx.from) }
        if case let .settleQuoted(receipts, quotes) = tx.body { events += settle(receipts, gateway: tx.from, quotes: quotes) }
        if sender.staked.units != stakeBefore { stakeChanged(tx.from, from: stakeBefore, to: sender.staked.units) }
        if let governance { events += applyGovernance(governance, from: tx.from) }
        if let trust { events += applyTrust(trust, from: tx.from) }
        if let dataPlan {
            applyData(dataPlan)
            events += dataPlan.events
        }
        if let evaluated {
            evaluations[evaluated.model] = evaluated.list
            dirtyRecords.insert(.evaluations(evaluated.model))
        }
        for (key, record) in measured {
            service[key] = record
            dirtyRecords.insert(.service(key.node, key.model))
        }
        if let agentPlan {
            applyAgents(agentPlan)
            events += agentPlan.events
        }
        return events
    }

    static func requirePositive(_ amount: Amount) throws {
        guard !amount.isZero else {
            throw PlexusError(.zeroAmount, "amount must be greater than zero")
        }
    }

    static func debit(_ balance: Amount, _ amount: Amount, _ who: Address) throws -> Amount {
        guard amount <= balance else {
            throw PlexusError(.insufficientFunds, "\(who.short) has \(balance) after fees, needs \(amount)")
        }
        return try balance.subtracting(amount)
    }

    func requireReleaseSlot(_ pending: [PendingRelease]) throws {
        guard pending.count < Int(params[.maxPendingReleases]) else {
            throw PlexusError(.invalidState, "too many pending releases (limit \(params[.maxPendingReleases])); wait for one to complete")
        }
    }

    func releaseHeight(after delay: UInt64) throws -> UInt64 {
        let (h, o) = height.addingReportingOverflow(delay)
        guard !o else { throw PlexusError(.overflow, "release height overflows") }
        return h
    }
}
