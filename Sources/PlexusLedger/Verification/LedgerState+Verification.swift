import PlexusCore

/// Spot checks by lot, verifiers, verdicts and standing.
///
/// A settlement whose every share carries an exact commitment gets a check. At
/// the start of the next block, the hash of the block that sealed the settlement
/// draws whether it is checked (under the highest sample rate of its nodes) and,
/// if so, which verifier checks it, weighted by stake. The verifier posts a
/// verdict before its deadline: a pass proves, for each share, the hash of the
/// last chunk of hidden states against the root the node signed (only a
/// re-execution produces it); a failure opens a dispute.
extension LedgerState {
    /// A checked trust transaction's effect, applied after the fee and sender are stored.
    enum TrustPlan {
        case registerVerifier
        case deregisterVerifier
        case verdict(Hash256, pass: Bool, share: UInt8, evidenceHolds: Bool)
        case challenge(Hash256, share: UInt8, bond: Amount)
        case commitVote(Hash256, seat: Int, commitment: Hash256)
        case revealVote(Hash256, seat: Int, fraud: Bool)
    }

    /// The standing of `a` (neutral if it has none yet).
    public func standing(_ a: Address) -> Standing { standings[a] ?? Standing() }

    /// `a`'s reputation now, decayed toward neutral.
    public func reputation(of a: Address) -> UInt64 {
        standing(a).reputation(at: height, halfLife: params[.reputationHalfLifeBlocks])
    }

    mutating func updateStanding(_ a: Address, _ f: (inout Standing) -> Void) {
        var s = standing(a)
        f(&s)
        standings[a] = s
        dirtyRecords.insert(.standing(a))
    }

    mutating func adjustReputation(_ a: Address, by delta: Int64) {
        let h = height, half = params[.reputationHalfLifeBlocks]
        updateStanding(a) { $0.adjust(by: delta, at: h, halfLife: half) }
    }

    /// The share of `owner`'s requests checked, in basis points: all of a node's
    /// first `verifyFirstRequests`, else the base rate raised linearly to 100% as
    /// reputation falls from neutral to the floor.
    public func sampleRate(of owner: Address) -> UInt64 {
        let s = standing(owner)
        if s.served <= params[.verifyFirstRequests] { return 10_000 }
        let base = params[.verifySampleBps]
        let rep = reputation(of: owner)
        guard rep < Standing.neutral else { return base }
        return base + (10_000 - base) * (Standing.neutral - rep) / Standing.neutral
    }

    /// Verifiers that may be drawn now: registered, staked at least the minimum, not jailed, not excluded;
    /// with their stake, in address order.
    func eligibleVerifiers(excluding: Set<Address>) -> [(Address, UInt64)] {
        verifiers.keys.sorted().compactMap { a in
            let staked = account(a).staked.units
            guard !excluding.contains(a), staked > 0, staked >= params[.minVerifierStake], !standing(a).isJailed(at: height) else { return nil }
            return (a, staked)
        }
    }

    /// `k` distinct candidates, each round weighted by stake.
    static func drawWeighted(_ k: Int, from candidates: [(Address, UInt64)], lot: inout LotStream) -> [Address] {
        var pool = candidates
        var out: [Address] = []
        while out.count < k, !pool.isEmpty {
            let total = pool.reduce(UInt64(0)) { $0 &+ $1.1 }  // at most the total supply
            var r = lot.uniform(total)
            var i = 0
            while r >= pool[i].1 { r -= pool[i].1; i += 1 }
            out.append(pool.remove(at: i).0)
        }
        return out
    }

    // MARK: Settlement and block steps

    /// Called when a request settles: counts the work and opens its check if every
    /// share is exactly verifiable. Refuses a share served by a jailed node.
    func checkServable(_ owner: Address, node: Address) throws {
        guard !standing(owner).isJailed(at: height) else {
            throw PlexusError(.invalidState, "node \(node.short) is jailed until height \(standing(owner).jailedUntil)")
        }
    }

    mutating func noteSettled(_ id: Hash256, owners: [Address], receipts: [Receipt]) {
        for o in owners { updateStanding(o) { $0.served &+= 1 } }
        for (o, r) in zip(owners, receipts) { updateStanding(o) { $0.servedTokens &+= r.inputTokens &+ r.outputTokens } }
        let shares = receipts.compactMap { r -> ShareCommitment? in
            guard let c = r.commitment, c.exact, c.chunks > 0 else { return nil }
            return ShareCommitment(root: c.root, chunks: c.chunks)
        }
        guard shares.count == receipts.count else { return }
        let check = Check(requestId: id, shares: shares, settledHeight: height)
        checks[id] = check
        indexCheck(check)
        dirtyRecords.insert(.check(id))
    }

    mutating func indexCheck(_ c: Check) {
        switch c.state {
        case .undrawn: checkDraws[c.settledHeight &+ 1, default: []].insert(c.requestId)
        case .assigned: checkDeadlines[c.deadline, default: []].insert(c.requestId)
        default: break
        }
    }

    /// The trust steps of a block's start: draws for the previous block's settlements,
    /// missed deadlines, then dispute draws and resolutions, each in id order.
    mutating func trustBlock(parentHash: Hash256) throws -> [Event] {
        var events: [Event] = []
        for id in (checkDraws.removeValue(forKey: height) ?? []).sorted() { events += drawCheck(id, parentHash: parentHash) }
        for id in (checkDeadlines.removeValue(forKey: height) ?? []).sorted() {
            guard var c = checks[id], c.state == .assigned, let v = c.verifier else { continue }
            c.state = .missed
            checks[id] = c
            dirtyRecords.insert(.check(id))
            updateStanding(v) { $0.misses &+= 1 }
            adjustReputation(v, by: -Int64(Standing.missPenalty))
            events.append(.trust(action: "verdict_missed", subject: id.hex, detail: v.description))
        }
        for id in (disputeSteps.removeValue(forKey: height) ?? []).sorted() { events += try disputeStep(id, parentHash: parentHash) }
        return events
    }

    private mutating func drawCheck(_ id: Hash256, parentHash: Hash256) -> [Event] {
        guard var c = checks[id], c.state == .undrawn, let s = settlements[id] else { return [] }
        let owners = s.payouts.prefix(s.nodes.count).map(\.account)
        let rate = owners.map(sampleRate).max() ?? params[.verifySampleBps]
        var lot = LotStream(seed: LotStream.seed(blockHash: parentHash, purpose: "check:" + id.hex, height: height))
        let drawn = lot.uniform(10_000)
        c.rateBps = UInt16(rate)
        c.drawn = UInt16(drawn)
        var events: [Event] = []
        if drawn >= rate {
            // An event even here: every change a block's start makes shows in its events.
            c.state = .skipped
            events.append(.trust(action: "check_skipped", subject: id.hex, detail: "drew \(drawn) of 10000 at rate \(rate)"))
        } else if let v = Self.drawWeighted(1, from: eligibleVerifiers(excluding: Set(owners + [s.requestor])), lot: &lot).first {
            c.state = .assigned
            c.verifier = v
            c.deadline = height &+ params[.verdictDeadlineBlocks]
            events.append(.trust(action: "check_assigned", subject: id.hex, detail: "\(v) until \(c.deadline)"))
        } else {
            c.state = .unassigned
            events.append(.trust(action: "check_unassigned", subject: id.hex, detail: "no eligible verifier"))
        }
        checks[id] = c
        indexCheck(c)
        dirtyRecords.insert(.check(id))
        return events
    }

    // MARK: Transactions

    /// Checks a trust transaction against the state, changing nothing.
    func planTrust(_ tx: Transaction, sender: Account) throws -> TrustPlan {
        switch tx.body {
        case .registerVerifier:
            guard verifiers[tx.from] == nil else { throw PlexusError(.invalidState, "\(tx.from.short) is already a verifier") }
            guard sender.staked.units >= params[.minVerifierStake], !sender.staked.isZero else {
                throw PlexusError(.insufficientFunds, "a verifier needs \(Amount(units: max(1, params[.minVerifierStake]))) staked; \(tx.from.short) has \(sender.staked)")
            }
            guard !standing(tx.from).isJailed(at: height) else { throw PlexusError(.invalidState, "\(tx.from.short) is jailed until \(standing(tx.from).jailedUntil)") }
            return .registerVerifier
        case .deregisterVerifier:
            guard verifiers[tx.from] != nil else { throw PlexusError(.notFound, "\(tx.from.short) is not a verifier") }
            return .deregisterVerifier
        case let .verdict(id, pass, share, evidence):
            guard let c = checks[id] else { throw PlexusError(.notFound, "request \(id.hex.prefix(16)) has no check") }
            guard c.state == .assigned, c.verifier == tx.from else {
                throw PlexusError(.badSignature, "\(tx.from.short) is not the verifier assigned to check \(id.hex.prefix(16)) (state \(c.state.name))")
            }
            guard height < c.deadline else { throw PlexusError(.invalidState, "the verdict deadline (height \(c.deadline)) has passed") }
            if pass {
                guard evidence.count == c.shares.count else {
                    throw PlexusError(.malformed, "a passing verdict carries evidence for each of the \(c.shares.count) shares; got \(evidence.count)")
                }
                let holds = zip(evidence, c.shares).allSatisfy { $0.proves($1) }
                return .verdict(id, pass: true, share: 0, evidenceHolds: holds)
            }
            guard Int(share) < c.shares.count else { throw PlexusError(.outOfRange, "share \(share) of \(c.shares.count)") }
            return .verdict(id, pass: false, share: share, evidenceHolds: false)
        case let .challenge(id, share, bond):
            try checkChallenge(id, share: share, bond: bond, challenger: tx.from, balance: sender.balance)
            return .challenge(id, share: share, bond: bond)
        case let .commitVote(id, commitment):
            let (d, seat) = try seat(in: id, for: tx.from)
            guard height < d.revealHeight else { throw PlexusError(.invalidState, "the commit phase of dispute \(id.hex.prefix(16)) ended at height \(d.revealHeight)") }
            guard d.seats[seat].commit == nil else { throw PlexusError(.invalidState, "\(tx.from.short) has already committed its vote") }
            return .commitVote(id, seat: seat, commitment: commitment)
        case let .revealVote(id, fraud, salt):
            let (d, seat) = try seat(in: id, for: tx.from)
            guard height >= d.revealHeight, height < d.resolveHeight else {
                throw PlexusError(.invalidState, "dispute \(id.hex.prefix(16)) takes reveals at heights \(d.revealHeight)..<\(d.resolveHeight)")
            }
            guard let commit = d.seats[seat].commit else { throw PlexusError(.invalidState, "\(tx.from.short) committed no vote") }
            guard d.seats[seat].fraud == nil else { throw PlexusError(.invalidState, "\(tx.from.short) has already revealed") }
            guard Dispute.voteCommitment(requestId: id, member: tx.from, fraud: fraud, salt: salt) == commit else {
                throw PlexusError(.badSignature, "the reveal does not match \(tx.from.short)'s commitment")
            }
            return .revealVote(id, seat: seat, fraud: fraud)
        default:
            throw PlexusError(.malformed, "not a trust transaction")
        }
    }

    private func seat(in id: Hash256, for member: Address) throws -> (Dispute, Int) {
        guard let d = disputes[id], d.outcome == .open else { throw PlexusError(.notFound, "no open dispute of request \(id.hex.prefix(16))") }
        guard let i = d.seats.firstIndex(where: { $0.member == member }) else {
            throw PlexusError(.badSignature, "\(member.short) does not sit on the committee of dispute \(id.hex.prefix(16))")
        }
        return (d, i)
    }

    /// Applies a checked trust transaction.
    mutating func applyTrust(_ plan: TrustPlan, from: Address) -> [Event] {
        switch plan {
        case .registerVerifier:
            verifiers[from] = VerifierRecord(account: from, registeredHeight: height)
            dirtyRecords.insert(.verifier(from))
            return [.trust(action: "verifier_registered", subject: from.description, detail: "")]
        case .deregisterVerifier:
            verifiers[from] = nil
            dirtyRecords.insert(.verifier(from))
            return [.trust(action: "verifier_deregistered", subject: from.description, detail: "")]
        case let .verdict(id, pass, share, holds):
            return verdict(id, pass: pass, share: share, evidenceHolds: holds, verifier: from)
        case let .challenge(id, share, bond):
            return openDispute(id, share: share, challenger: from, bond: bond)
        case let .commitVote(id, seat, commitment):
            disputes[id]?.seats[seat].commit = commitment
            dirtyRecords.insert(.dispute(id))
            return [.trust(action: "vote_committed", subject: id.hex, detail: from.description)]
        case let .revealVote(id, seat, fraud):
            disputes[id]?.seats[seat].fraud = fraud
            dirtyRecords.insert(.dispute(id))
            return [.trust(action: "vote_revealed", subject: id.hex, detail: "\(from) \(fraud ? "fraud" : "honest")")]
        }
    }

    private mutating func verdict(_ id: Hash256, pass: Bool, share: UInt8, evidenceHolds: Bool, verifier: Address) -> [Event] {
        guard var c = checks[id] else { return [] }
        var events: [Event] = []
        if pass && evidenceHolds {
            c.state = .passed
            updateStanding(verifier) { $0.verdicts &+= 1 }
            adjustReputation(verifier, by: Int64(Standing.passGain))
            if let s = settlements[id] {
                for owner in s.payouts.prefix(s.nodes.count).map(\.account) {
                    updateStanding(owner) { $0.passes &+= 1 }
                    adjustReputation(owner, by: Int64(Standing.passGain))
                }
            }
            let fee = min(params[.verifierFee], treasury.units)
            if fee > 0 { moveFromTreasury(Amount(units: fee), to: verifier) }
            events.append(.trust(action: "check_passed", subject: id.hex, detail: "\(verifier) paid \(Amount(units: fee))"))
        } else if pass {
            // A pass without the evidence of a re-execution: the lazy verifier's mark.
            c.state = .faulted
            let taken = penalise(verifier, jail: true)
            events.append(.trust(action: "verdict_faulted", subject: id.hex, detail: "\(verifier) slashed \(taken): evidence does not prove out"))
        } else {
            c.state = .failed
            updateStanding(verifier) { $0.verdicts &+= 1 }
            events.append(.trust(action: "check_failed", subject: id.hex, detail: "\(verifier) share \(share)"))
            if disputes[id] == nil, settlements[id]?.status == .pending {
                events += openDispute(id, share: share, challenger: verifier, bond: .zero)
            }
        }
        checks[id] = c
        dirtyRecords.insert(.check(id))
        return events
    }

    mutating func moveFromTreasury(_ amount: Amount, to a: Address) {
        var t = account(.treasury)
        t.balance = Amount(units: t.balance.units - amount.units)  // callers take at most the balance
        store(.treasury, t)
        credit(a, amount)
    }

    mutating func credit(_ a: Address, _ amount: Amount) {
        guard !amount.isZero else { return }
        var x = account(a)
        x.balance = Amount(units: x.balance.units &+ amount.units)  // units already part of the conserved supply
        store(a, x)
    }

    /// `bps` basis points of `units`, rounded down, without overflow.
    static func share(_ units: UInt64, bps: UInt64) -> UInt64 {
        let p = units.multipliedFullWidth(by: min(bps, 10_000))
        return UInt64(10_000).dividingFullWidth(p).quotient
    }

    /// Takes `bps` of `who`'s stake, bonded first and then unbonding (latest
    /// release first), and returns what was taken; the caller places it.
    mutating func slash(_ who: Address, bps: UInt64) -> Amount {
        var a = account(who)
        let base = a.staked.units &+ a.unbondingTotal.units
        let amount = Self.share(base, bps: bps)
        guard amount > 0 else { return .zero }
        let before = a.staked.units
        var left = amount
        let fromStake = min(left, a.staked.units)
        a.staked = Amount(units: a.staked.units - fromStake)
        left -= fromStake
        var i = a.unbonding.count - 1
        while left > 0, i >= 0 {
            let t = min(left, a.unbonding[i].amount.units)
            a.unbonding[i].amount = Amount(units: a.unbonding[i].amount.units - t)
            left -= t
            if a.unbonding[i].amount.isZero { a.unbonding.remove(at: i) }
            i -= 1
        }
        store(who, a)
        stakeChanged(who, from: before, to: a.staked.units)
        return Amount(units: amount - left)
    }

    /// A verifier's fault: `verifierPenaltyBps` of its stake to the treasury, reputation
    /// lost and, for a pass without evidence, jail. Returns what was slashed.
    @discardableResult
    mutating func penalise(_ verifier: Address, jail: Bool = false, missed: Bool = false) -> Amount {
        let taken = slash(verifier, bps: params[.verifierPenaltyBps])
        credit(.treasury, taken)
        let until = height &+ params[.jailBlocks]
        updateStanding(verifier) { s in
            if missed { s.misses &+= 1 } else { s.faults &+= 1 }
            if jail { s.jailedUntil = max(s.jailedUntil, until) }
        }
        adjustReputation(verifier, by: -Int64(missed ? Standing.missPenalty : Standing.faultPenalty))
        return taken
    }
}
