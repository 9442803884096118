import PlexusCore

/// Challenges and disputes.
///
/// A challenge (with a bond) or a failed verdict freezes a pending settlement.
/// At the start of the next block the hash of the block holding the challenge
/// draws a committee of verifiers, weighted by stake, excluding the accused,
/// the challenger and the requestor. Members commit sealed votes, then reveal
/// them; at `resolveHeight` the revealed majority decides:
///
/// - **upheld** (more fraud votes than honest): `slashBps` of the accused's
///   stake, bonded and unbonding, is taken; the requestor's whole charge returns
///   to its escrow; the challenger gets its bond back plus `challengerShareBps`
///   of the slash; the majority shares `committeeShareBps`; the rest (and any
///   rounding) goes to the treasury; the accused is jailed for `jailBlocks` and
///   its reputation falls to the floor.
/// - **rejected** (honest votes at least as many, and some): the bond goes to
///   the accused, less `committeeShareBps` for the majority; a verifier whose
///   failure verdict opened it is penalised; the settlement resumes.
/// - **dismissed** (no committee, or no reveals): the bond goes back; the
///   settlement resumes.
///
/// Members who did not reveal, or voted against the majority, are penalised.
/// While a dispute is open the accused's unbonding stake is not released.
extension LedgerState {
    func checkChallenge(_ id: Hash256, share: UInt8, bond: Amount, challenger: Address, balance: Amount) throws {
        guard let s = settlements[id] else { throw PlexusError(.notFound, "request \(id.hex.prefix(16)) is not settled") }
        guard disputes[id] == nil else { throw PlexusError(.invalidState, "request \(id.hex.prefix(16)) has already been challenged") }
        guard s.status == .pending, height < s.finalHeight else {
            throw PlexusError(.invalidState, "the challenge window of request \(id.hex.prefix(16)) has closed (\(s.status.rawValue), final at \(s.finalHeight))")
        }
        guard Int(share) < s.nodes.count else { throw PlexusError(.outOfRange, "request \(id.hex.prefix(16)) has \(s.nodes.count) shares; no share \(share)") }
        guard bond.units >= params[.challengeBondMin] else {
            throw PlexusError(.outOfRange, "a challenge's bond must be at least \(Amount(units: params[.challengeBondMin])); got \(bond)")
        }
        guard s.payouts[Int(share)].account != challenger else { throw PlexusError(.invalidState, "a node cannot challenge its own work") }
        guard bond <= balance else { throw PlexusError(.insufficientFunds, "\(challenger.short) has \(balance) after fees, the bond is \(bond)") }
    }

    /// Freezes the settlement and schedules the committee's draw and the resolution.
    mutating func openDispute(_ id: Hash256, share: UInt8, challenger: Address, bond: Amount) -> [Event] {
        guard var s = settlements[id] else { return [] }
        finalizations[s.finalHeight]?.remove(id)
        s.status = .disputed
        settlements[id] = s
        dirtyRecords.insert(.settlement(id))
        let draw = height &+ 1
        let reveal = draw &+ params[.disputeCommitBlocks]
        let resolve = reveal &+ params[.disputeRevealBlocks]
        let accused = s.payouts[Int(share)].account
        let d = Dispute(requestId: id, share: share, accused: accused, challenger: challenger, bond: bond, openedHeight: height,
                        drawHeight: draw, revealHeight: reveal, resolveHeight: resolve)
        disputes[id] = d
        indexDispute(d)
        dirtyRecords.insert(.dispute(id))
        updateStanding(accused) { $0.openDisputes &+= 1 }
        return [.trust(action: "dispute_opened", subject: id.hex, detail: "share \(share) of \(accused) by \(challenger), bond \(bond)")]
    }

    mutating func indexDispute(_ d: Dispute) {
        guard d.outcome == .open else { return }
        if d.seats.isEmpty && d.drawHeight > height { disputeSteps[d.drawHeight, default: []].insert(d.requestId) }
        disputeSteps[d.resolveHeight, default: []].insert(d.requestId)
    }

    mutating func disputeStep(_ id: Hash256, parentHash: Hash256) throws -> [Event] {
        guard var d = disputes[id], d.outcome == .open else { return [] }
        if height == d.drawHeight && d.seats.isEmpty {
            let requestor = settlements[id]?.requestor ?? d.challenger
            var lot = LotStream(seed: LotStream.seed(blockHash: parentHash, purpose: "dispute:" + id.hex, height: height))
            let drawn = Self.drawWeighted(Int(params[.committeeSize]), from: eligibleVerifiers(excluding: [d.accused, d.challenger, requestor]), lot: &lot)
            guard !drawn.isEmpty else { return try resolve(id, forceDismiss: true) }
            d.seats = drawn.sorted().map(Dispute.Seat.init)
            disputes[id] = d
            dirtyRecords.insert(.dispute(id))
            return [.trust(action: "committee_drawn", subject: id.hex, detail: drawn.sorted().map(\.description).joined(separator: ","))]
        }
        guard height == d.resolveHeight else { return [] }
        return try resolve(id, forceDismiss: false)
    }

    private mutating func resolve(_ id: Hash256, forceDismiss: Bool) throws -> [Event] {
        guard var d = disputes[id], var s = settlements[id] else { return [] }
        let fraud = d.seats.filter { $0.fraud == true }.map(\.member)
        let honest = d.seats.filter { $0.fraud == false }.map(\.member)
        let outcome: Dispute.Outcome = forceDismiss ? .dismissed : fraud.count > honest.count ? .upheld : honest.isEmpty ? .dismissed : .rejected
        let majority = outcome == .upheld ? fraud : outcome == .rejected ? honest : []
        var events: [Event] = []
        for seat in d.seats where !majority.contains(seat.member) {
            let taken = penalise(seat.member, missed: seat.fraud == nil)
            events.append(.trust(action: "member_penalised", subject: id.hex, detail: "\(seat.member) slashed \(taken): \(seat.fraud == nil ? "no reveal" : "voted against the majority")"))
        }
        disputeSteps[d.resolveHeight]?.remove(id)
        updateStanding(d.accused) { $0.openDisputes = $0.openDisputes > 0 ? $0.openDisputes - 1 : 0 }
        switch outcome {
        case .upheld:
            let slashed = slash(d.accused, bps: params[.slashBps])
            let toChallenger = Self.share(slashed.units, bps: params[.challengerShareBps])
            let toCommittee = Self.share(slashed.units, bps: params[.committeeShareBps])
            credit(d.challenger, Amount(units: d.bond.units &+ toChallenger))
            let each = toCommittee / UInt64(majority.count)
            for m in majority { credit(m, Amount(units: each)) }
            credit(.treasury, Amount(units: slashed.units - toChallenger - each * UInt64(majority.count)))
            // Back to the escrow it came from (an agent's payer's).
            let paying = payer(of: s.requestor)
            var payer = account(paying)
            payer.escrow = Amount(units: payer.escrow.units &+ s.charge.units)
            store(paying, payer)
            s.status = .refunded
            let until = height &+ params[.jailBlocks], now = height
            updateStanding(d.accused) { st in
                st.jailedUntil = max(st.jailedUntil, until)
                st.score = 0
                st.asOf = now
                st.frauds &+= 1
            }
            d.slashed = slashed
            events.append(.trust(action: "fraud_upheld", subject: id.hex,
                                 detail: "\(d.accused) slashed \(slashed), jailed until \(until); \(s.requestor) refunded \(s.charge)"))
        case .rejected:
            let toCommittee = Self.share(d.bond.units, bps: params[.committeeShareBps])
            let each = toCommittee / UInt64(majority.count)
            for m in majority { credit(m, Amount(units: each)) }
            credit(d.accused, Amount(units: d.bond.units - each * UInt64(majority.count)))
            adjustReputation(d.accused, by: Int64(Standing.passGain))
            if let c = checks[id], c.state == .failed, c.verifier == d.challenger {
                let taken = penalise(d.challenger)
                events.append(.trust(action: "verifier_penalised", subject: id.hex, detail: "\(d.challenger) slashed \(taken): false failure"))
            }
            s = resumed(s)
            events.append(.trust(action: "challenge_rejected", subject: id.hex, detail: "bond \(d.bond) to \(d.accused) and the committee"))
        case .dismissed, .open:
            credit(d.challenger, d.bond)
            s = resumed(s)
            events.append(.trust(action: "dispute_dismissed", subject: id.hex, detail: forceDismiss ? "no eligible committee" : "no votes revealed"))
        }
        d.outcome = outcome == .open ? .dismissed : outcome
        disputes[id] = d
        settlements[id] = s
        dirtyRecords.insert(.dispute(id))
        dirtyRecords.insert(.settlement(id))
        return events
    }

    /// A frozen settlement back in its window: final where it would have been, or next block.
    private mutating func resumed(_ s: Settlement) -> Settlement {
        var s = s
        s.status = .pending
        s.finalHeight = max(s.finalHeight, height &+ 1)
        finalizations[s.finalHeight, default: []].insert(s.requestId)
        return s
    }
}
