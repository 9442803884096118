import PlexusCore

/// The spot market's rules on the ledger (see `SpotPrice`): at each block, every model's
/// premium moves at most one update (at most once a `premiumPeriodMillis` of block time)
/// toward the utilization it measured; settlement checks each request's quoted premium
/// against the history and records the tokens settled.
extension LedgerState {
    /// Offered slots for `model`: the concurrency of every whole-model offer of a node whose operator is not jailed.
    func offeredSlots(_ model: String) -> UInt64 {
        var slots: UInt64 = 0
        for n in nodes.values where !standing(n.owner).isJailed(at: height) {
            for o in n.offers where o.model == model && o.layers == nil { slots &+= UInt64(o.concurrency) }
        }
        return slots
    }

    /// The premium of `model` (base units per million tokens) and the utilization it was
    /// last judged against, as `GET /v1/market` shows them.
    public func utilizationBps(_ model: String) -> UInt64 {
        let window = params[.premiumWindowMillis]
        let start = timeMillis >= window ? timeMillis - window : 0
        return SpotPrice.utilizationBps(tokens: spot[model]?.tokens(since: start) ?? 0, slots: offeredSlots(model),
                                        tokensPerSecond: params[.slotTokensPerSecond], windowMillis: window)
    }

    /// Updates every market at the start of a block, in model order. Every change comes with
    /// an event: a block whose opening changed state is kept even when its first transaction
    /// is refused (`Chain.submit`), so that the sealer and every replica apply it once alike.
    mutating func spotBlock() -> [Event] {
        guard !spot.isEmpty else { return [] }
        let rule = SpotPrice.Rule(params), period = params[.premiumPeriodMillis], window = params[.premiumWindowMillis]
        let keep = height > params[.quoteValidityBlocks] ? height - params[.quoteValidityBlocks] : 0
        var events: [Event] = []
        for id in spot.keys.sorted() {
            guard var m = spot[id] else { continue }
            let before = m
            var changed = false
            let start = timeMillis >= window ? timeMillis - window : 0
            m.samples.removeAll { $0.timeMillis < start }
            if timeMillis >= m.updatedMillis &+ period {
                let u = utilizationBps(id)
                let p = SpotPrice.next(m.premium, utilizationBps: u, rule: rule)
                m.updatedMillis = timeMillis
                if p != m.premium {
                    if m.history.isEmpty { m.history.append(.init(height: 0, premium: m.premium)) }
                    m.premium = p
                    m.history.append(.init(height: height, premium: p))
                    events.append(.market(action: "premium_changed", subject: id, detail: "\(p)u per million tokens at utilization \(u) bp"))
                    changed = true
                }
            }
            // The history reaches back to the oldest quote that may still settle: the change in force then, and every later one.
            if let i = m.history.lastIndex(where: { $0.height <= keep }), i > 0 { m.history.removeFirst(i) }
            if m.history.count > SpotMarket.maxHistory { m.history.removeFirst(m.history.count - SpotMarket.maxHistory) }
            if m.premium == 0, m.samples.isEmpty, m.highest(since: keep) == 0 {
                // Idle, and no quote that may still settle names a premium: nothing to keep.
                spot[id] = nil
                dirtyRecords.insert(.spot(id))
                events.append(.market(action: "spot_idle", subject: id, detail: "no premium, no recent tokens"))
                continue
            }
            if m != before {
                spot[id] = m
                dirtyRecords.insert(.spot(id))
                if !changed { events.append(.market(action: "spot_updated", subject: id, detail: "premium \(m.premium)u, \(m.samples.count) recent samples")) }
            }
        }
        return events
    }

    /// The premium a request of `model` settles at: its quote's, if the history holds that
    /// premium at the quote's height and the quote is still valid; without a quote, zero, which
    /// only a model whose premium was zero throughout the validity window accepts.
    func spotPremium(_ model: String, quote: SpotQuote?) throws -> UInt64 {
        let validity = params[.quoteValidityBlocks]
        let oldest = height > validity ? height - validity : 0
        guard let quote else {
            let top = spot[model]?.highest(since: oldest) ?? 0
            guard top == 0 else { throw PlexusError(.spotQuote, "model '\(model)' has had a premium (up to \(top)u per million tokens); the request needs its quote") }
            return 0
        }
        guard quote.height <= height else { throw PlexusError(.spotQuote, "the quote is for height \(quote.height), after this block \(height)") }
        guard quote.height >= oldest else { throw PlexusError(.spotQuote, "the quote from height \(quote.height) is older than \(validity) blocks") }
        let actual = spot[model]?.premium(at: quote.height) ?? 0
        guard actual == quote.premium else {
            throw PlexusError(.spotQuote, "the quote says \(quote.premium)u per million tokens at height \(quote.height); the premium then was \(actual)u")
        }
        return quote.premium
    }

    /// Counts `tokens` settled for `model` in this block.
    mutating func noteSpotTokens(_ model: String, _ tokens: UInt64) {
        guard tokens > 0 else { return }
        var m = spot[model] ?? SpotMarket()
        if m.updatedMillis == 0 { m.updatedMillis = timeMillis }
        if let last = m.samples.last, last.timeMillis == timeMillis {
            m.samples[m.samples.count - 1].tokens = last.tokens &+ tokens
        } else {
            if m.samples.count >= SpotMarket.maxSamples {
                // Merged pairwise, oldest first: the window's sum stays exact, its edge a little coarser.
                m.samples[1].tokens &+= m.samples[0].tokens
                m.samples.removeFirst()
            }
            m.samples.append(.init(timeMillis: timeMillis, tokens: tokens))
        }
        spot[model] = m
        dirtyRecords.insert(.spot(model))
    }
}

extension PlexusError.Code {
    /// A settlement's spot quote is missing, stale or not the premium in force at its height.
    public static let spotQuote = Self("spot_quote")
}
