import PlexusCore

/// Governance: voting power, proposals and their lifecycle, communities,
/// councils, the federation assembly. Every handler checks everything first
/// (throwing, changing nothing) and then applies effects that cannot fail.
extension LedgerState {
    // MARK: Set-up and hooks

    /// The root community, the federation, and voting-power histories for
    /// stake present at genesis.
    mutating func setUpGovernance() {
        let settings = Governance.communitySettings.map { params[$0] }
        communities[Governance.root] = Community(id: Governance.root, scheme: .token, open: true, settings: settings, founder: .treasury, createdHeight: 0)
        communities[Governance.federation] = Community(id: Governance.federation, scheme: .assembly, open: false, settings: settings, founder: .treasury, createdHeight: 0)
        dirtyRecords.insert(.community(Governance.root))
        dirtyRecords.insert(.community(Governance.federation))
        var total: UInt64 = 0
        for address in accounts.keys.sorted() {
            let s = account(address).staked.units
            guard s > 0 else { continue }
            var v = VoterRecord()
            v.stake.push(height: height, value: s)
            v.votes.push(height: height, value: s)
            voters[address] = v
            dirtyRecords.insert(.voter(address))
            total &+= s
        }
        govTotals.stake.push(height: height, value: total)
        dirtyRecords.insert(.govTotals)
    }

    /// Proposals in all, those still open to votes, communities (the network and
    /// the federation included) and federated communities, for metrics.
    public var governanceCounts: (proposals: Int, open: Int, communities: Int, federated: Int) {
        (proposals.count, openSnapshots.values.reduce(0, +), communities.count, govTotals.federation.count)
    }

    /// Whom `account`'s stake votes with.
    public func delegate(of account: Address) -> Address { voters[account]?.delegate ?? account }

    mutating func updateVoter(_ a: Address, _ f: (inout VoterRecord) -> Void) {
        var v = voters[a] ?? VoterRecord()
        f(&v)
        voters[a] = v
        dirtyRecords.insert(.voter(a))
    }

    /// Records a change of `account`'s stake from `old` to `new` units.
    mutating func stakeChanged(_ account: Address, from old: UInt64, to new: UInt64) {
        guard old != new else { return }
        let h = height
        let floor = governanceFloor
        updateVoter(account) { $0.stake.push(height: h, value: new, floor: floor) }
        updateVoter(delegate(of: account)) { v in
            v.votes.push(height: h, value: new > old ? v.votes.latest &+ (new - old) : v.votes.latest &- (old - new), floor: floor)
        }
        let t = govTotals.stake.latest
        govTotals.stake.push(height: h, value: new > old ? t &+ (new - old) : t &- (old - new), floor: floor)
        dirtyRecords.insert(.govTotals)
    }

    /// Awards reputation points (they can never be moved to anyone else).
    mutating func addReputation(_ account: Address, _ points: UInt64) {
        guard points > 0, account != .treasury else { return }
        let h = height
        let floor = governanceFloor
        updateVoter(account) { $0.reputation.push(height: h, value: $0.reputation.latest &+ points, floor: floor) }
        govTotals.reputation.push(height: h, value: govTotals.reputation.latest &+ points, floor: floor)
        dirtyRecords.insert(.govTotals)
    }

    // MARK: Voting power

    /// Whether `a` was a member of `community` at the end of the block before `height`.
    public func isMember(_ a: Address, of community: String, before height: UInt64) -> Bool {
        memberships[community]?[a]?.history.value(before: height) == 1
    }

    /// Whether `a` is a member now.
    public func isMember(_ a: Address, of community: String) -> Bool {
        memberships[community]?[a]?.isMember ?? false
    }

    /// The current members of a community, sorted.
    public func members(of community: String) -> [Address] {
        (memberships[community] ?? [:]).filter { $0.value.isMember }.map(\.key).sorted()
    }

    /// `a`'s voting power in `community` under `scheme`, as it stood at the
    /// end of the block before `height`. The root community counts every
    /// account for token and reputation weight; otherwise only members count
    /// (so that splitting tokens across fresh accounts gains nothing).
    public func power(of a: Address, in community: Community, scheme: VotingScheme, before height: UInt64) -> UInt64 {
        switch scheme {
        case .council, .sortition:
            return community.council(before: height).contains(a) ? 1 : 0
        case .assembly:
            return (govTotals.assembly.last(where: { $0.fromHeight < height })?.members ?? []).contains(a) ? 1 : 0
        default: break
        }
        let open = community.id == Governance.root && (scheme == .token || scheme == .reputation)
        guard open || isMember(a, of: community.id, before: height) else { return 0 }
        switch scheme {
        case .token: return voters[a]?.votes.value(before: height) ?? 0
        case .quadratic: return voters[a]?.stake.value(before: height) ?? 0
        case .reputation: return voters[a]?.reputation.value(before: height) ?? 0
        case .member: return 1
        case .council, .sortition, .assembly: return 0
        }
    }

    /// The total voting power in `community` under `scheme` before `height`.
    public func totalPower(in community: Community, scheme: VotingScheme, before height: UInt64) -> UInt64 {
        switch scheme {
        case .council, .sortition: return UInt64(community.council(before: height).count)
        case .assembly: return UInt64(govTotals.assembly.last(where: { $0.fromHeight < height })?.members.count ?? 0)
        case .token where community.id == Governance.root: return govTotals.stake.value(before: height)
        case .reputation where community.id == Governance.root: return govTotals.reputation.value(before: height)
        default:
            var total: UInt64 = 0
            for (a, m) in memberships[community.id] ?? [:] where m.history.value(before: height) == 1 {
                total &+= power(of: a, in: community, scheme: scheme, before: height)
            }
            return total
        }
    }

    /// A community's value of one of the governance settings (the root
    /// community's are the protocol parameters).
    public func setting(_ key: Params.Key, of community: Community) -> UInt64 {
        community.id == Governance.root ? params[key] : community.setting(key)
    }

    /// The state of a proposal now.
    public func proposalState(_ id: Hash256) -> ProposalState? { proposals[id]?.state(at: height) }

    /// A proposal with its totals at the snapshot filled in where voting has begun.
    public func proposalView(_ id: Hash256) -> Proposal? {
        guard var p = proposals[id] else { return nil }
        if height > p.snapshot { fillTotals(&p) }
        return p
    }

    /// Fills in each community's total power at the snapshot where it is not fixed
    /// yet (call only once the snapshot has passed, when it can no longer change).
    func fillTotals(_ p: inout Proposal) {
        for i in p.votes.indices where p.votes[i].totalPower == nil {
            if let c = communities[p.votes[i].community] {
                p.votes[i].totalPower = totalPower(in: c, scheme: p.votes[i].scheme, before: p.snapshot)
            }
        }
    }

    // MARK: Transactions

    /// A checked governance transaction, ready to apply.
    enum GovernancePlan {
        case propose(Proposal)
        case vote(Hash256, [UInt32], [UInt64])
        case delegate(Address)
        case queue(Hash256, UInt64)
        case execute(Hash256)
        case cancel(Hash256)
        case createCommunity(Community)
        case join(String, admitted: Bool)
        case leave(String)
        case admit(String, Address)
        case fork(Community)
        case approve(String, [Address])
        case summary(Hash256, ProposalSummary)
    }

    func community(_ id: String) throws -> Community {
        guard let c = communities[id] else { throw PlexusError(.notFound, "no community '\(id.prefix(64))'") }
        return c
    }

    /// Checks a governance transaction against the state; changes nothing.
    func planGovernance(_ tx: Transaction) throws -> GovernancePlan {
        let me = tx.from
        switch tx.body {
        case let .propose(content):
            return .propose(try checkProposal(content, proposer: me))

        case let .vote(id, weights):
            guard let p = proposals[id] else { throw PlexusError(.notFound, "no proposal \(id.hex.prefix(16))") }
            guard ballots[id]?[me] == nil else { throw PlexusError(.invalidState, "\(me.short) has already voted on \(id.hex.prefix(16))") }
            let state = p.state(at: height)
            guard state == .active else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) is \(state.rawValue), not active") }
            try Ballots.validate(weights, splitAllowed: p.votes.allSatisfy { $0.scheme == .quadratic })
            var powers: [UInt64] = []
            for v in p.votes {
                let c = try community(v.community)
                powers.append(power(of: me, in: c, scheme: v.scheme, before: p.snapshot))
            }
            guard powers.contains(where: { $0 > 0 }) else {
                throw PlexusError(.invalidState, "\(me.short) had no voting power at the snapshot (height \(p.snapshot))")
            }
            return .vote(id, weights, powers)

        case let .delegate(to):
            guard to != .treasury else { throw PlexusError(.outOfRange, "the treasury cannot be a delegate") }
            guard delegate(of: me) != to else { throw PlexusError(.invalidState, "\(me.short) already delegates to \(to.short)") }
            return .delegate(to)

        case let .queue(id):
            guard let p = proposals[id] else { throw PlexusError(.notFound, "no proposal \(id.hex.prefix(16))") }
            let state = p.state(at: height)
            guard state == .succeeded else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) is \(state.rawValue); only a succeeded proposal can be queued") }
            let (eta, o) = height.addingReportingOverflow(params[.timelockBlocks])
            guard !o else { throw PlexusError(.overflow, "eta overflows") }
            return .queue(id, eta)

        case let .execute(id):
            guard let p = proposals[id] else { throw PlexusError(.notFound, "no proposal \(id.hex.prefix(16))") }
            let state = p.state(at: height)
            guard state == .queued, let eta = p.eta else {
                throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) is \(state.rawValue); only a queued proposal can be executed")
            }
            guard height >= eta else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) is timelocked until height \(eta)") }
            try checkActions(p.content.actions, executing: true)
            return .execute(id)

        case let .cancel(id):
            guard let p = proposals[id] else { throw PlexusError(.notFound, "no proposal \(id.hex.prefix(16))") }
            guard p.proposer == me else { throw PlexusError(.badSignature, "only the proposer can cancel a proposal") }
            let state = p.state(at: height)
            guard state == .pending else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) is \(state.rawValue); only a pending proposal can be canceled") }
            return .cancel(id)

        case let .createCommunity(id, scheme, open):
            try checkNewCommunity(id)
            guard scheme != .assembly else { throw PlexusError(.outOfRange, "only the federation votes by assembly") }
            try checkMembershipRoom(me)
            let settings = Governance.communitySettings.map { params[$0] }
            return .createCommunity(Community(id: id, scheme: scheme, open: open, settings: settings, founder: me, createdHeight: height))

        case let .joinCommunity(id):
            let c = try community(id)
            guard id != Governance.federation else { throw PlexusError(.outOfRange, "the federation's members are communities; join one of them") }
            guard !isMember(me, of: id) else { throw PlexusError(.invalidState, "\(me.short) is already a member of '\(id)'") }
            try checkMembershipRoom(me)
            let followsParent = c.forkedFrom.map { isMember(me, of: $0) } ?? false
            if !c.open && !followsParent {
                guard memberships[id]?[me]?.applied != true else { throw PlexusError(.invalidState, "\(me.short) has already applied to '\(id)'") }
            }
            return .join(id, admitted: c.open || followsParent)

        case let .leaveCommunity(id):
            _ = try community(id)
            guard isMember(me, of: id) else { throw PlexusError(.invalidState, "\(me.short) is not a member of '\(id.prefix(64))'") }
            return .leave(id)

        case let .admitMember(id, a):
            _ = try community(id)
            guard isMember(me, of: id) else { throw PlexusError(.badSignature, "only a member of '\(id.prefix(64))' can admit applicants") }
            guard memberships[id]?[a]?.applied == true else { throw PlexusError(.notFound, "\(a.short) has not applied to '\(id.prefix(64))'") }
            try checkMembershipRoom(a)
            return .admit(id, a)

        case let .forkCommunity(parentId, id):
            let parent = try community(parentId)
            guard parentId != Governance.root, parentId != Governance.federation else {
                throw PlexusError(.outOfRange, "the network and the federation cannot be forked")
            }
            guard isMember(me, of: parentId) else { throw PlexusError(.badSignature, "only a member of '\(parentId.prefix(64))' can fork it") }
            try checkNewCommunity(id)
            try checkMembershipRoom(me)
            var fork = Community(id: id, scheme: parent.scheme, open: parent.open, settings: parent.settings, founder: me, createdHeight: height)
            fork.forkedFrom = parentId
            fork.history = parent.history
            return .fork(fork)

        case let .approveCandidates(id, candidates):
            let c = try community(id)
            guard c.scheme == .council else { throw PlexusError(.invalidState, "'\(id.prefix(64))' does not elect a council") }
            guard isMember(me, of: id) else { throw PlexusError(.badSignature, "only members approve council candidates") }
            guard candidates.count <= Int(setting(.councilApprovals, of: c)) else {
                throw PlexusError(.outOfRange, "at most \(setting(.councilApprovals, of: c)) candidates may be approved")
            }
            guard Set(candidates).count == candidates.count else { throw PlexusError(.malformed, "a candidate is approved twice") }
            for a in candidates where !isMember(a, of: id) {
                throw PlexusError(.notFound, "candidate \(a.short) is not a member of '\(id.prefix(64))'")
            }
            return .approve(id, candidates)

        case let .recordSummary(id, summaryHash, model, requestId):
            guard let p = proposals[id] else { throw PlexusError(.notFound, "no proposal \(id.hex.prefix(16))") }
            guard p.summary == nil else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) already has a summary") }
            guard let s = settlements[requestId] else {
                throw PlexusError(.notFound, "request \(requestId.hex.prefix(16)) has not been settled; record the summary once it is")
            }
            guard s.model == model else { throw PlexusError(.malformed, "request \(requestId.hex.prefix(16)) was served by '\(s.model)', not '\(model.prefix(64))'") }
            guard s.requestor == me else { throw PlexusError(.badSignature, "request \(requestId.hex.prefix(16)) was not paid by \(me.short)") }
            return .summary(id, ProposalSummary(summaryHash: summaryHash, model: model, requestId: requestId, recordedBy: me))

        default:
            throw PlexusError(.unknownKind, "not a governance transaction")
        }
    }

    func checkNewCommunity(_ id: String) throws {
        guard Self.validName(id), !id.contains("/") else { throw PlexusError(.malformed, "community id must be 1-\(Registry.maxName) characters of [A-Za-z0-9._:-]") }
        guard communities[id] == nil else { throw PlexusError(.invalidState, "community '\(id)' already exists") }
    }

    func checkMembershipRoom(_ a: Address) throws {
        guard (voters[a]?.communities.count ?? 0) < Governance.maxMemberships else {
            throw PlexusError(.outOfRange, "\(a.short) belongs to \(Governance.maxMemberships) communities already")
        }
    }

    /// Checks a new proposal: names, sizes, actions, the distributed-veto
    /// rule, duplicates and the proposer's threshold in every named community.
    func checkProposal(_ content: ProposalContent, proposer: Address) throws -> Proposal {
        guard !content.communities.isEmpty, content.communities.count <= Governance.maxCommunitiesPerProposal else {
            throw PlexusError(.outOfRange, "a proposal names 1 to \(Governance.maxCommunitiesPerProposal) communities")
        }
        guard Set(content.communities).count == content.communities.count else { throw PlexusError(.malformed, "a community is named twice") }
        guard !content.title.isEmpty, content.title.utf8.count <= Governance.maxTitle else {
            throw PlexusError(.outOfRange, "a title is 1 to \(Governance.maxTitle) bytes")
        }
        guard content.description.utf8.count <= Governance.maxDescription else {
            throw PlexusError(.tooLarge, "a description is at most \(Governance.maxDescription) bytes")
        }
        guard content.actions.count <= Governance.maxActions else { throw PlexusError(.tooLarge, "at most \(Governance.maxActions) actions") }
        let named = try content.communities.map { try community($0) }
        try checkActions(content.actions, executing: false)
        for action in content.actions {
            for c in action.touches where !content.communities.contains(c) {
                throw PlexusError(.invalidState, "action \(action.kind) touches '\(c)', which must be named among the proposal's communities")
            }
        }
        let id = content.id
        guard proposals[id] == nil else { throw PlexusError(.invalidState, "proposal \(id.hex.prefix(16)) already exists") }
        for c in named {
            let threshold = setting(.proposalThreshold, of: c)
            let have = power(of: proposer, in: c, scheme: c.scheme, before: height)
            guard have >= threshold else {
                throw PlexusError(.insufficientFunds, "proposing in '\(c.id)' needs voting power \(threshold); \(proposer.short) had \(have) at the previous block")
            }
        }
        let delay = named.map { setting(.votingDelayBlocks, of: $0) }.max() ?? 0
        let period = named.map { setting(.votingPeriodBlocks, of: $0) }.max() ?? 1
        let (snapshot, o1) = height.addingReportingOverflow(delay)
        let (deadline, o2) = snapshot.addingReportingOverflow(period)
        guard !o1, !o2 else { throw PlexusError(.overflow, "voting period overflows") }
        return Proposal(id: id, content: content, proposer: proposer, createdHeight: height, snapshot: snapshot, deadline: deadline,
                        gracePeriod: params[.gracePeriodBlocks],
                        votes: named.map { CommunityVote(community: $0.id, scheme: $0.scheme, quorumBps: setting(.quorumBps, of: $0)) })
    }

    /// Checks actions against the bounds and the state (when proposed and again when executed).
    func checkActions(_ actions: [ProposalAction], executing: Bool) throws {
        var spend: UInt64 = 0
        var listed = listedModels
        var federated = Set(govTotals.federation)
        var proposed = params
        for action in actions {
            switch action {
            case let .setParam(name, value):
                try proposed.set(name, to: value)
                try proposed.checkRelations()
            case let .setCommunityParam(c, name, value):
                _ = try community(c)
                guard c != Governance.root else { throw PlexusError(.outOfRange, "the network's settings are protocol parameters; use set_param") }
                let key = try Params.check(name, value)
                guard Governance.communitySettings.contains(key) else {
                    throw PlexusError(.notFound, "'\(name.prefix(64))' is not a community setting (one of \(Governance.communitySettings.map(\.name).joined(separator: ", ")))")
                }
            case let .setScheme(c, scheme):
                _ = try community(c)
                guard (c == Governance.federation) == (scheme == .assembly) else {
                    throw PlexusError(.outOfRange, "the federation, and only the federation, votes by assembly")
                }
            case let .setOpen(c, _):
                _ = try community(c)
                guard c != Governance.federation else { throw PlexusError(.outOfRange, "the federation's members are communities") }
            case let .listModel(m):
                guard models[m] != nil else { throw PlexusError(.notFound, "model '\(m.prefix(64))' is not registered") }
                guard listed.insert(m).inserted else { throw PlexusError(.invalidState, "model '\(m.prefix(64))' is already listed") }
            case let .delistModel(m):
                guard listed.remove(m) != nil else { throw PlexusError(.invalidState, "model '\(m.prefix(64))' is not listed") }
            case let .delistDataset(d), let .relistDataset(d):
                guard let ds = datasets[d] else { throw PlexusError(.notFound, "no dataset \(d.hex.prefix(16))") }
                if case .delistDataset = action, ds.delisted { throw PlexusError(.invalidState, "dataset \(d.hex.prefix(16)) is already delisted") }
                if case .relistDataset = action, !ds.delisted { throw PlexusError(.invalidState, "dataset \(d.hex.prefix(16)) is not delisted") }
            case let .treasurySpend(to, amount):
                guard !amount.isZero else { throw PlexusError(.zeroAmount, "a treasury spend must be positive") }
                guard to != .treasury else { throw PlexusError(.outOfRange, "the treasury cannot pay itself") }
                let (s, o) = spend.addingReportingOverflow(amount.units)
                guard !o else { throw PlexusError(.overflow, "treasury spends overflow") }
                spend = s
                if executing, spend > treasury.units {
                    throw PlexusError(.insufficientFunds, "the treasury holds \(treasury), the proposal spends \(Amount(units: spend))")
                }
            case let .grantReputation(a, points):
                guard a != .treasury, points > 0, points <= 1_000_000_000 else {
                    throw PlexusError(.outOfRange, "reputation grants are 1 to 1000000000 points to an account")
                }
            case let .federationJoin(c):
                _ = try community(c)
                guard c != Governance.root, c != Governance.federation else { throw PlexusError(.outOfRange, "'\(c)' cannot join the federation") }
                guard federated.insert(c).inserted else { throw PlexusError(.invalidState, "'\(c.prefix(64))' is already in the federation") }
            case let .federationLeave(c):
                guard federated.remove(c) != nil else { throw PlexusError(.invalidState, "'\(c.prefix(64))' is not in the federation") }
            }
        }
    }

    /// Applies a checked plan; cannot fail.
    mutating func applyGovernance(_ plan: GovernancePlan, from me: Address) -> [Event] {
        let h = height
        switch plan {
        case let .propose(p):
            proposals[p.id] = p
            trackOpen(p)
            dirtyRecords.insert(.proposal(p.id))
            return [.governance(action: "proposal_created", subject: p.id.hex,
                                detail: "by \(me.short); snapshot \(p.snapshot), deadline \(p.deadline)")]

        case let .vote(id, weights, powers):
            guard var p = proposals[id] else { return [] }
            var events: [Event] = []
            // Totals at the snapshot are fixed by the first vote, before quorum is judged.
            fillTotals(&p)
            let wasReached = p.votes.allSatisfy(\.quorumReached)
            for i in p.votes.indices { p.votes[i].tally.add(power: powers[i], weights: weights) }
            // The voter is the transaction's sender; the detail is the ballot and its power.
            var detail = "weights"
            for w in weights { detail += " \(w)" }
            detail += " power"
            for p in powers { detail += " \(p)" }
            events.append(.governance(action: "vote_cast", subject: id.hex, detail: detail))
            // Late quorum: the first time quorum is reached, voting stays open
            // at least `lateQuorumExtensionBlocks` more (applied once).
            if !p.extended, !wasReached, p.votes.allSatisfy(\.quorumReached) {
                p.extended = true
                let (ext, o) = h.addingReportingOverflow(params[.lateQuorumExtensionBlocks])
                if !o, ext > p.deadline {
                    untrackOpen(p)
                    p.deadline = ext
                    trackOpen(p)
                    events.append(.governance(action: "proposal_extended", subject: id.hex, detail: "deadline \(ext)"))
                }
            }
            proposals[id] = p
            ballots[id, default: [:]][me] = Ballot(weights: weights, power: powers, height: h)
            dirtyRecords.insert(.proposal(id))
            dirtyRecords.insert(.ballot(id, me))
            return events

        case let .delegate(to):
            let old = delegate(of: me)
            let stake = account(me).staked.units
            let floor = governanceFloor
            updateVoter(old) { $0.votes.push(height: h, value: $0.votes.latest &- stake, floor: floor) }
            updateVoter(to) { $0.votes.push(height: h, value: $0.votes.latest &+ stake, floor: floor) }
            updateVoter(me) { $0.delegate = to == me ? nil : to }
            return [.governance(action: "delegate_changed", subject: me.description, detail: "from \(old.short) to \(to.short)")]

        case let .queue(id, eta):
            proposals[id]?.eta = eta
            dirtyRecords.insert(.proposal(id))
            return [.governance(action: "proposal_queued", subject: id.hex, detail: "eta \(eta)")]

        case let .execute(id):
            guard var p = proposals[id] else { return [] }
            var events: [Event] = []
            for action in p.content.actions { events += execute(action) }
            p.executed = true
            proposals[id] = p
            dirtyRecords.insert(.proposal(id))
            for c in p.content.communities {
                communities[c]?.history.append(id)
                dirtyRecords.insert(.community(c))
            }
            events.append(.governance(action: "proposal_executed", subject: id.hex, detail: "\(p.content.actions.count) actions"))
            return events

        case let .cancel(id):
            proposals[id]?.canceled = true
            if let p = proposals[id] { untrackOpen(p) }
            dirtyRecords.insert(.proposal(id))
            return [.governance(action: "proposal_canceled", subject: id.hex, detail: "by \(me.short)")]

        case let .createCommunity(c), let .fork(c):
            communities[c.id] = c
            dirtyRecords.insert(.community(c.id))
            setMembership(c.id, me, member: true)
            if let parent = c.forkedFrom {
                return [.governance(action: "community_forked", subject: c.id, detail: "from \(parent) by \(me.short)")]
            }
            return [.governance(action: "community_created", subject: c.id, detail: "\(c.scheme.name), \(c.open ? "open" : "by approval")")]

        case let .join(id, admitted):
            if admitted {
                setMembership(id, me, member: true)
                return [.governance(action: "member_joined", subject: id, detail: me.description)]
            }
            var m = memberships[id]?[me] ?? Membership()
            m.applied = true
            memberships[id, default: [:]][me] = m
            dirtyRecords.insert(.member(id, me))
            return [.governance(action: "member_applied", subject: id, detail: me.description)]

        case let .leave(id):
            setMembership(id, me, member: false)
            if approvals[id]?.removeValue(forKey: me) != nil { dirtyRecords.insert(.approval(id, me)) }
            return [.governance(action: "member_left", subject: id, detail: me.description)]

        case let .admit(id, a):
            setMembership(id, a, member: true)
            return [.governance(action: "member_joined", subject: id, detail: "\(a) admitted by \(me.short)")]

        case let .approve(id, candidates):
            approvals[id, default: [:]][me] = candidates
            dirtyRecords.insert(.approval(id, me))
            return [.governance(action: "candidates_approved", subject: id, detail: "\(me.short): \(candidates.count)")]

        case let .summary(id, s):
            proposals[id]?.summary = s
            dirtyRecords.insert(.proposal(id))
            return [.governance(action: "summary_recorded", subject: id.hex, detail: "\(s.model) request \(s.requestId.hex.prefix(16))")]
        }
    }

    mutating func setMembership(_ id: String, _ a: Address, member: Bool) {
        var m = memberships[id]?[a] ?? Membership()
        let was = m.isMember
        m.history.push(height: height, value: member ? 1 : 0, floor: governanceFloor)
        m.applied = false
        memberships[id, default: [:]][a] = m
        dirtyRecords.insert(.member(id, a))
        guard was != member, var c = communities[id] else { return }
        c.memberCount = member ? c.memberCount &+ 1 : c.memberCount &- 1
        communities[id] = c
        dirtyRecords.insert(.community(id))
        updateVoter(a) { v in
            if member { v.communities.append(id) } else { v.communities.removeAll { $0 == id } }
        }
    }

    /// One action's effect (already checked).
    mutating func execute(_ action: ProposalAction) -> [Event] {
        switch action {
        case let .setParam(name, value):
            if let old = params.value(name), (try? params.set(name, to: value)) != nil {
                paramChanges.append(ParamChange(height: height, name: name, old: old, new: value))
                dirtyRecords.insert(.paramLog)
            }
            paramsDirty = true
            return [.governance(action: "param_changed", subject: name, detail: String(value))]
        case let .setCommunityParam(c, name, value):
            if let i = Governance.communitySettings.firstIndex(where: { $0.name == name }) {
                communities[c]?.settings[i] = value
                dirtyRecords.insert(.community(c))
            }
            return [.governance(action: "community_param_changed", subject: c, detail: "\(name) = \(value)")]
        case let .setScheme(c, scheme):
            communities[c]?.scheme = scheme
            dirtyRecords.insert(.community(c))
            return [.governance(action: "scheme_changed", subject: c, detail: scheme.name)]
        case let .setOpen(c, open):
            communities[c]?.open = open
            dirtyRecords.insert(.community(c))
            return [.governance(action: "membership_changed", subject: c, detail: open ? "open" : "by approval")]
        case let .listModel(m):
            listedModels.insert(m)
            dirtyRecords.insert(.listed(m))
            return [.governance(action: "model_listed", subject: m, detail: "")]
        case let .delistModel(m):
            listedModels.remove(m)
            dirtyRecords.insert(.listed(m))
            return [.governance(action: "model_delisted", subject: m, detail: "")]
        case let .delistDataset(d), let .relistDataset(d):
            let delist: Bool
            if case .delistDataset = action { delist = true } else { delist = false }
            datasets[d]?.delisted = delist
            dirtyRecords.insert(.dataset(d))
            return [.governance(action: delist ? "dataset_delisted" : "dataset_relisted", subject: d.hex, detail: "")]
        case let .treasurySpend(to, amount):
            var t = account(.treasury)
            var r = account(to)
            // Checked at execution: the treasury holds at least the proposal's spends.
            t.balance = Amount(units: t.balance.units &- amount.units)
            r.balance = Amount(units: r.balance.units &+ amount.units)
            store(.treasury, t)
            store(to, r)
            return [.transferred(from: .treasury, to: to, amount: amount)]
        case let .grantReputation(a, points):
            addReputation(a, points)
            return [.governance(action: "reputation_granted", subject: a.description, detail: String(points))]
        case let .federationJoin(c):
            govTotals.federation.append(c)
            govTotals.federation.sort()
            announceAssemblyDraw()
            return [.governance(action: "federation_joined", subject: c, detail: "")]
        case let .federationLeave(c):
            govTotals.federation.removeAll { $0 == c }
            announceAssemblyDraw()
            return [.governance(action: "federation_left", subject: c, detail: "")]
        }
    }

    // MARK: Councils, draws, the assembly (start of every block)

    mutating func announceAssemblyDraw() {
        if govTotals.pendingDraw == nil || govTotals.pendingDraw! <= height {
            govTotals.pendingDraw = height &+ params[.sortitionDelayBlocks]
        }
        dirtyRecords.insert(.govTotals)
    }

    /// Elections, draws by lot and assembly terms due at the block now
    /// starting; `parentHash` (the previous block's hash) seeds the draws.
    mutating func governanceBlock(parentHash: Hash256) -> [Event] {
        var events: [Event] = []
        let h = height
        closeVoting()
        for id in communities.keys.sorted() {
            guard var c = communities[id] else { continue }
            let epoch = setting(.councilEpochBlocks, of: c)
            switch c.scheme {
            case .council where h % epoch == 0:
                c.councils.append(CouncilTerm(fromHeight: h, members: elect(c)))
                communities[id] = c
                dirtyRecords.insert(.community(id))
                events.append(.governance(action: "council_elected", subject: id, detail: "\(c.councils.last?.members.count ?? 0) seats"))
            case .sortition:
                if c.pendingDraw == h {
                    var lot = LotStream(seed: LotStream.seed(blockHash: parentHash, purpose: "council:" + id, height: h))
                    let drawn = lot.draw(Int(setting(.councilSize, of: c)), from: members(of: id)).sorted()
                    c.councils.append(CouncilTerm(fromHeight: h, members: drawn))
                    c.pendingDraw = nil
                    events.append(.governance(action: "council_drawn", subject: id, detail: "\(drawn.count) seats from block \(parentHash.hex.prefix(16))"))
                } else if c.pendingDraw == nil && (h % epoch == 0 || c.councils.isEmpty) {
                    c.pendingDraw = h &+ params[.sortitionDelayBlocks]
                    events.append(.governance(action: "draw_announced", subject: id, detail: "at height \(c.pendingDraw!)"))
                } else {
                    continue
                }
                communities[id] = c
                dirtyRecords.insert(.community(id))
            default: continue
            }
        }
        if govTotals.pendingDraw == h {
            events.append(drawAssembly(parentHash: parentHash))
        } else if govTotals.pendingDraw == nil, !govTotals.federation.isEmpty, h >= govTotals.termEnd {
            govTotals.pendingDraw = h &+ params[.sortitionDelayBlocks]
            dirtyRecords.insert(.govTotals)
            events.append(.governance(action: "draw_announced", subject: Governance.federation, detail: "at height \(govTotals.pendingDraw!)"))
        }
        return events
    }

    /// Proposals whose voting has closed get their totals fixed (for views),
    /// and histories may forget what no open proposal's snapshot can reach:
    /// the floor is the earliest snapshot still open, or the height.
    mutating func closeVoting() {
        // Blocks come one at a time, so only proposals whose deadline was the previous block close now.
        for id in (closing.removeValue(forKey: height &- 1) ?? []) {
            guard var p = proposals[id] else { continue }
            releaseSnapshot(p.snapshot)
            fillTotals(&p)
            proposals[id] = p
            dirtyRecords.insert(.proposal(id))
        }
        governanceFloor = max(governanceFloor, min(height, openSnapshots.keys.min() ?? height))
    }

    /// Indexes a proposal open to votes (by deadline and snapshot).
    mutating func trackOpen(_ p: Proposal) {
        closing[p.deadline, default: []].insert(p.id)
        openSnapshots[p.snapshot, default: 0] += 1
    }

    /// Removes a proposal from the open index.
    mutating func untrackOpen(_ p: Proposal) {
        guard closing[p.deadline]?.remove(p.id) != nil else { return }
        if closing[p.deadline]?.isEmpty == true { closing[p.deadline] = nil }
        releaseSnapshot(p.snapshot)
    }

    /// One open proposal fewer with this snapshot.
    mutating func releaseSnapshot(_ snapshot: UInt64) {
        openSnapshots[snapshot, default: 1] -= 1
        if openSnapshots[snapshot] == 0 { openSnapshots[snapshot] = nil }
    }

    /// The top `councilSize` candidates by stake-weighted approval of current members.
    func elect(_ c: Community) -> [Address] {
        var score: [Address: UInt64] = [:]
        for (approver, list) in approvals[c.id] ?? [:] where isMember(approver, of: c.id) {
            let weight = account(approver).staked.units
            guard weight > 0 else { continue }
            for a in list where isMember(a, of: c.id) { score[a, default: 0] &+= weight }
        }
        let ranked = score.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return ranked.prefix(Int(setting(.councilSize, of: c))).map(\.key).sorted()
    }

    /// Draws the federation assembly: seats by size with floors, each
    /// community's representatives by lot among its members.
    mutating func drawAssembly(parentHash: Hash256) -> Event {
        let h = height
        let federated = govTotals.federation
        let rosters = federated.map { members(of: $0) }
        let seats = Apportionment.seats(sizes: rosters.map(\.count), total: Int(params[.assemblySeats]), floor: Int(params[.assemblyFloor]))
        var chosen = Set<Address>()
        for (i, c) in federated.enumerated() {
            var lot = LotStream(seed: LotStream.seed(blockHash: parentHash, purpose: "assembly:" + c, height: h))
            for a in lot.draw(seats[i], from: rosters[i]) { chosen.insert(a) }
        }
        govTotals.assembly.append(CouncilTerm(fromHeight: h, members: chosen.sorted()))
        govTotals.seats = seats.map { UInt64($0) }
        govTotals.pendingDraw = nil
        govTotals.termEnd = h &+ params[.assemblyTermBlocks]
        dirtyRecords.insert(.govTotals)
        return .governance(action: "assembly_drawn", subject: Governance.federation,
                           detail: "\(chosen.count) representatives of \(federated.count) communities, term to \(govTotals.termEnd)")
    }
}
