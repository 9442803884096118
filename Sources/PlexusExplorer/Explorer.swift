import AsyncHTTPClient
import Foundation
import Mustache
import PlexusCore
import PlexusLedger

/// The explorer: reads only the ledger's public API, follows the chain into a `Timeline`, and
/// renders pages from mustache templates. Every value from outside reaches a page through an
/// escaping `{{…}}` tag; the only raw markup is what the explorer builds itself.
public final class Explorer: Sendable {
    public let ledger: LedgerClient
    /// Gateways whose public trace of a request (`/v1/trace/{id}`) the request page shows.
    public let gateways: [String]
    let library: MustacheLibrary
    let timeline = Locked(Timeline())
    /// Blocks taken in when the explorer starts (the rest of history is read block by block on demand).
    let backfill: UInt64

    public init(ledger: LedgerClient, gateways: [String] = [], backfill: UInt64 = 2_000) throws {
        self.ledger = ledger
        self.gateways = gateways.map { g in
            var g = g
            while g.hasSuffix("/") { g.removeLast() }
            return g.hasSuffix("/v1") ? String(g.dropLast(3)) : g
        }
        self.backfill = backfill
        var library = MustacheLibrary()
        for (name, text) in Templates.all { try library.register(text, named: name) }
        self.library = library
    }

    /// A page: its status and HTML.
    public struct Page: Sendable {
        public var status: Int
        public var html: String
    }

    /// Why a page cannot be shown.
    struct NotFound: Error { var message: String }

    // MARK: Following the chain

    /// Takes in the blocks after the timeline's last (the latest `backfill` at first).
    public func catchUp() async throws {
        let tip = try await ledger.status().height
        var next = timeline.value.height + 1
        if next == 1, tip > backfill { next = tip - backfill + 1 }
        while next <= tip {
            let heights = Array(next...min(tip, next + 15))
            let blocks = try await withThrowingTaskGroup(of: (UInt64, BlockView?).self) { group in
                for h in heights { group.addTask { (h, try await self.ledger.block(h)) } }
                var out: [UInt64: BlockView] = [:]
                for try await (h, b) in group { if let b { out[h] = b } }
                return out
            }
            for h in heights {
                guard let b = blocks[h] else { return }
                timeline.update { $0.add(b) }
            }
            next = heights.last! + 1
        }
    }

    /// Follows the chain until cancelled: each new block as the ledger's event stream announces it.
    public func follow() async {
        while !Task.isCancelled {
            do {
                try await catchUp()
                _ = try await ledger.events(since: timeline.value.height, timeoutMillis: 2_000)
            } catch {
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    // MARK: Rendering

    func render(_ template: String, _ context: [String: Any], title: String, query: String = "", status: Int = 200) -> Page {
        let body = library.render(context, withTemplate: template) ?? ""
        let html = library.render(["title": title, "query": query, "body": body] as [String: Any], withTemplate: "layout") ?? ""
        return Page(status: status, html: html)
    }

    func notFound(_ message: String, query: String = "") -> Page {
        render("error", ["status": "Not found", "message": message], title: "Not found", query: query, status: 404)
    }

    static func time(_ millis: UInt64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1_000))
    }

    static func short(_ h: Hash256) -> String { String(h.hex.prefix(16)) }

    static func percent(_ x: Double?) -> String { x.map { String(format: "%.1f%%", $0 * 100) } ?? "–" }

    // MARK: Pages

    /// The overview's figures, also what `/live` sends.
    func figures() async throws -> [(id: String, label: String, value: String, change: String?)] {
        async let status = ledger.status()
        async let registry = ledger.nodeRegistry()
        async let treasury = ledger.account(.treasury)
        async let disputes = ledger.disputes()
        async let verifiers = ledger.verifiers()
        let (s, r, t, d, v) = try await (status, registry, treasury, disputes, verifiers)
        let tl = timeline.value
        let minute = tl.totals(over: 60_000), day = tl.totals(over: 86_400_000)
        let previousDay = tl.totals(over: 86_400_000, endingAt: (tl.samples.last?.timeMillis ?? 0) &- 86_400_000)
        let blockTime = tl.samples.count >= 2
            ? Double(tl.samples.last!.timeMillis - tl.samples[max(0, tl.samples.count - 21)].timeMillis) / Double(min(20, tl.samples.count - 1)) / 1_000 : nil
        let stake = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.staked?.units ?? 0) } ?? 0
        let passes = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.passes ?? 0) } ?? 0
        let frauds = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.frauds ?? 0) } ?? 0
        func change(_ now: Int, _ before: Int) -> String? {
            tl.samples.first.map { $0.timeMillis + 86_400_000 <= (tl.samples.last?.timeMillis ?? 0) } == true ? "\(now - before >= 0 ? "+" : "")\(now - before) over 24 h" : nil
        }
        return [
            ("height", "Height", String(s.height), nil),
            ("block-time", "Block time", blockTime.map { String(format: "%.2f s", $0) } ?? "–", nil),
            ("tx-rate", "Transactions/s (last minute)", String(format: "%.2f", Double(minute.transactions) / 60), nil),
            ("requests", "Requests settled (last minute)", String(minute.requests), nil),
            ("tokens", "Tokens settled (last minute)", String(minute.tokens), nil),
            ("requests-day", "Requests settled (24 h)", String(day.requests), change(day.requests, previousDay.requests)),
            ("nodes", "Active nodes", String(r.servable.count), nil),
            ("stake", "Operators' stake", Amount(units: stake).description, nil),
            ("treasury", "Treasury", t.balance.description, nil),
            ("verifiers", "Verifiers", String(v.filter(\.verifier).count), nil),
            ("verified", "Checks passed / frauds found", "\(passes) / \(frauds)", nil),
            ("disputes", "Open disputes", String(d.filter { $0.outcome == "open" }.count), nil),
        ]
    }

    public func overview() async throws -> Page {
        let cards = try await figures()
        let tl = timeline.value
        let perMinute = tl.series(buckets: 60, bucketMillis: 60_000) { Double($0.requests) }
        let tokens = tl.series(buckets: 60, bucketMillis: 60_000) { Double($0.tokens) }
        let base = perMinute.first?.0 ?? 0
        let latest = tl.samples.suffix(10).reversed().map { s -> [String: Any] in
            ["height": s.height, "time": Self.time(s.timeMillis), "transactions": s.transactions, "requests": s.requests]
        }
        return render("overview", [
            "chain": try await ledger.status().chainId, "ledger": ledger.baseURL,
            "cards": cards.map { c -> [String: Any] in
                var x: [String: Any] = ["id": c.id, "label": c.label, "value": c.value]
                if let ch = c.change { x["change"] = ch }
                return x
            },
            "requestsChart": SVGChart.line(perMinute.map { (Double($0.0 - base) / 60_000, $0.1) }, title: "Requests settled per minute, last hour", unit: "requests/min"),
            "tokensChart": SVGChart.line(tokens.map { (Double($0.0 - base) / 60_000, $0.1) }, title: "Tokens settled per minute, last hour", unit: "tokens/min"),
            "latest": latest,
        ], title: "Overview")
    }

    public func blocks(before: UInt64?) async throws -> Page {
        let tip = try await ledger.status().height
        let top = min(tip, before.map { $0 > 0 ? $0 - 1 : 0 } ?? tip)
        let heights = top == 0 ? [] : Array((top > 19 ? top - 19 : 1)...top).reversed()
        let summaries = try await withThrowingTaskGroup(of: BlockSummaryView?.self) { group in
            for h in heights { group.addTask { try await self.ledger.blockSummary(h, limit: 0) } }
            var out: [UInt64: BlockSummaryView] = [:]
            for try await b in group { if let b { out[b.header.height] = b } }
            return out
        }
        let rows = heights.compactMap { h in summaries[h].map { b -> [String: Any] in
            ["height": h, "hash": b.hash.hex, "time": Self.time(b.header.timeMillis), "transactions": b.transactionCount]
        } }
        var context: [String: Any] = ["blocks": rows]
        if let last = heights.last, last > 1 { context["older"] = last }
        return render("blocks", context, title: "Blocks")
    }

    /// Transactions a block page lists.
    static let blockPage = 100

    public func block(_ height: UInt64, page: Int = 0) async throws -> Page {
        let offset = max(0, page) * Self.blockPage
        guard let b = try await ledger.blockSummary(height, offset: offset, limit: Self.blockPage) else { return notFound("No block at height \(height).") }
        var context: [String: Any] = [
            "height": height, "hash": b.hash.hex, "time": Self.time(b.header.timeMillis), "orderer": b.header.orderer.text,
            "stateRoot": b.header.stateRoot.hex, "count": b.transactionCount,
            "transactions": b.transactions.map { t -> [String: Any] in
                ["index": t.index, "hash": t.hash.hex, "short": Self.short(t.hash), "kind": t.kind, "from": t.from.text, "fromShort": t.from.short]
            },
        ]
        if offset + Self.blockPage < b.transactionCount { context["later"] = ["page": page + 1] }
        if page > 0 { context["earlier"] = ["page": page - 1] }
        if height > 1 {
            context["previous"] = height - 1
            context["previousHash"] = b.header.previousHash.hex
        }
        return render("block", context, title: "Block \(height)")
    }

    public func transaction(_ hash: Hash256) async throws -> Page {
        guard let at = try await ledger.committedTransaction(hash), let tx = at.transaction else {
            return notFound("No committed transaction \(hash.hex).")
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let body = (try? e.encode(tx)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let requests = Array(Set(tx.body.settledReceipts?.map(\.requestId.hex) ?? [])).sorted()
        return render("transaction", [
            "hash": hash.hex, "height": at.height, "index": at.index, "kind": tx.body.kind.name, "from": tx.from.text,
            "nonce": tx.nonce, "fee": tx.fee.description, "body": body, "requests": requests, "hasRequests": !requests.isEmpty,
        ], title: "Transaction \(Self.short(hash))")
    }

    public func account(_ a: Address) async throws -> Page {
        async let acct = ledger.account(a)
        async let standing = try? ledger.standing(of: a)
        async let voter = try? ledger.voter(a)
        async let registry = ledger.nodeRegistry()
        let (v, s, vote, r) = try await (acct, standing, voter, registry)
        let all = timeline.value.activity(of: a)
        let activity = all.prefix(100)
        var context: [String: Any] = [
            "address": a.text, "balance": v.balance.description, "staked": v.staked.description, "escrow": v.escrow.description,
            "unbonding": Amount(units: v.unbonding.reduce(0) { $0 &+ $1.amount.units }).description, "nonce": v.nonce,
            "activityCount": all.count,
            "activity": activity.map { e -> [String: Any] in
                ["height": e.height, "time": Self.time(e.timeMillis), "kind": e.kind, "fromShort": e.from.short,
                 "counterpartyShort": e.counterparty?.short ?? "", "amount": e.amount?.description ?? "", "hash": e.hash.hex, "short": Self.short(e.hash)]
            },
        ]
        if let s { context["reputation"] = String(format: "%.3f", s.reputation) }
        if let vote {
            if vote.votes > 0 { context["votingPower"] = String(vote.votes) }
            if vote.delegate != a { context["delegate"] = vote.delegate.text }
        }
        if let n = r.nodes.first(where: { $0.owner == a }) { context["node"] = n.nodeKey.text }
        return render("account", context, title: "Account \(a.short)")
    }

    /// The account's recent activity as CSV (RFC 4180; a text field that could start a formula is quoted with a leading apostrophe).
    public func accountCSV(_ a: Address) -> String {
        func field(_ s: String) -> String {
            var v = s
            if let c = v.first, "=+-@".contains(c) { v = "'" + v }
            return v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : v
        }
        var out = "height,time,kind,from,counterparty,amount_units,fee_units,transaction\r\n"
        for e in timeline.value.activity(of: a) {
            out += [String(e.height), Self.time(e.timeMillis), e.kind, e.from.text, e.counterparty?.text ?? "",
                    e.amount.map { String($0.units) } ?? "", String(e.fee.units), e.hash.hex].map(field).joined(separator: ",") + "\r\n"
        }
        return out
    }

    public func nodes(sort: String?) async throws -> Page {
        async let registry = ledger.nodeRegistry()
        async let markets = ledger.marketPrices()
        async let models = ledger.models()
        let (r, m, cards) = try await (registry, markets, models)
        let measured = m.measuredService
        let quant = Dictionary(cards.map { ($0.id, $0.quantization) }, uniquingKeysWith: { a, _ in a })
        struct Row { var key: Address; var owner: Address; var offers: [Offer]; var stake: UInt64; var reputation: Double; var jailed: Bool
            var day: ServiceView.Window?; var served: UInt64; var passes: UInt64; var frauds: UInt64 }
        var rows = r.nodes.map { n -> Row in
            let st = r.standing?[n.owner.text]
            let day = n.offers.lazy.compactMap { measured[ServiceKey(node: n.nodeKey, model: $0.model)]?[.day] }.first
            return Row(key: n.nodeKey, owner: n.owner, offers: n.offers, stake: st?.staked?.units ?? 0, reputation: st?.reputation ?? 0.5,
                       jailed: st?.jailed ?? false, day: day, served: st?.served ?? 0, passes: st?.passes ?? 0, frauds: st?.frauds ?? 0)
        }
        switch sort {
        case "stake": rows.sort { ($0.stake, $0.key) > ($1.stake, $1.key) }
        case "served": rows.sort { ($0.served, $0.key) > ($1.served, $1.key) }
        case "reputation": rows.sort { ($0.reputation, $0.key) > ($1.reputation, $1.key) }
        case "uptime": rows.sort { ($0.day?.uptime ?? -1, $0.key) > ($1.day?.uptime ?? -1, $1.key) }
        case "latency": rows.sort { ($0.day?.ttftMillis?.p50 ?? .infinity, $0.key) < ($1.day?.ttftMillis?.p50 ?? .infinity, $1.key) }
        case "price": rows.sort { ($0.offers.map { $0.priceIn.units &+ $0.priceOut.units }.min() ?? .max, $0.key) < ($1.offers.map { $0.priceIn.units &+ $0.priceOut.units }.min() ?? .max, $1.key) }
        default: rows.sort { $0.key < $1.key }
        }
        let sorts = [("key", "node"), ("price", "price"), ("stake", "stake"), ("reputation", "reputation"), ("served", "requests served"),
                     ("uptime", "uptime"), ("latency", "latency")]
        return render("nodes", [
            "count": rows.count, "sorts": sorts.map { ["key": $0.0, "label": $0.1] },
            "nodes": rows.map { row -> [String: Any] in
                let x: [String: Any] = [
                    "key": row.key.text, "keyShort": row.key.short, "owner": row.owner.text, "ownerShort": row.owner.short, "stake": Amount(units: row.stake).description,
                    "reputation": String(format: "%.3f", row.reputation), "jailed": row.jailed,
                    "served": row.served, "verified": "\(row.passes) / \(row.frauds)",
                    "uptime": Self.percent(row.day?.uptime), "ttft": row.day?.ttftMillis.map { String(format: "≤%.0f", $0.p50) } ?? "–",
                    "throughput": row.day?.tokensPerSecond.map { String(format: "≤%.1f", $0.p50) } ?? "–",
                    // Stale: measured over the day, yet nothing answered.
                    "stale": row.day.map { $0.attempts > 0 && $0.answered == 0 } ?? false,
                    "offers": row.offers.map { o -> [String: Any] in
                        var y: [String: Any] = ["model": o.model, "priceIn": o.priceIn.description, "priceOut": o.priceOut.description,
                                                "quantization": quant[o.model] ?? "", "context": o.contextLength]
                        if let l = o.layers { y["layers"] = "\(l.start)–\(l.end) of \(l.total)" }
                        return y
                    },
                ]
                return x
            },
        ], title: "Nodes")
    }

    public func node(_ key: Address) async throws -> Page {
        async let registry = ledger.nodeRegistry()
        async let markets = ledger.marketPrices()
        async let disputes = ledger.disputes()
        let (r, m, d) = try await (registry, markets, disputes)
        guard let n = r.nodes.first(where: { $0.nodeKey == key }) else { return notFound("No registered node \(key.text).") }
        let st = r.standing?[n.owner.text]
        let shares = timeline.value.shares(of: key)
        let measured = m.measuredService
        var service: [[String: Any]] = []
        for o in n.offers {
            guard let v = measured[ServiceKey(node: key, model: o.model)] else { continue }
            for w in v.windows {
                service.append(["model": o.model, "window": w.window, "uptime": Self.percent(w.uptime), "attempts": w.attempts, "reports": w.reports,
                                "ttft": w.ttftMillis.map { String(format: "≤%.0f / ≤%.0f / ≤%.0f", $0.p50, $0.p90, $0.p99) } ?? "–",
                                "throughput": w.tokensPerSecond.map { String(format: "≤%.1f / ≤%.1f / ≤%.1f", $0.p50, $0.p90, $0.p99) } ?? "–"])
            }
        }
        // Output tokens it was paid for, per minute over the last hour.
        let now = timeline.value.samples.last?.timeMillis ?? 0
        var perMinute = [Double](repeating: 0, count: 60)
        for s in shares where s.timeMillis + 3_600_000 > now {
            let i = 59 - Int((now - s.timeMillis) / 60_000)
            if (0..<60).contains(i) { perMinute[i] += Double(s.outputTokens) }
        }
        return render("node", [
            "key": key.text, "owner": n.owner.text, "endpoint": n.endpoint, "registered": n.registeredHeight,
            "stake": st?.staked?.description ?? "–", "reputation": st.map { String(format: "%.3f", $0.reputation) } ?? "–",
            "served": st?.served ?? 0, "passes": st?.passes ?? 0, "frauds": st?.frauds ?? 0, "jailed": st?.jailed ?? false,
            "offers": n.offers.map { o -> [String: Any] in
                var y: [String: Any] = ["model": o.model, "priceIn": o.priceIn.description, "priceOut": o.priceOut.description,
                                        "concurrency": o.concurrency, "context": o.contextLength, "region": o.region]
                if let l = o.layers { y["layers"] = "\(l.start)–\(l.end) of \(l.total)" }
                return y
            },
            "service": service,
            "chart": SVGChart.line(perMinute.enumerated().map { (Double($0.offset), $0.element) }, title: "Output tokens paid per minute, last hour", unit: "tokens/min"),
            "shares": shares.prefix(50).map { ["height": $0.height, "time": Self.time($0.timeMillis), "id": $0.requestId.hex, "short": Self.short($0.requestId),
                                               "input": $0.inputTokens, "output": $0.outputTokens] as [String: Any] },
            "disputes": d.filter { $0.accused == n.owner || $0.accused == key }.map { ["id": $0.requestId.hex, "short": Self.short($0.requestId),
                                                                                        "outcome": $0.outcome, "slashed": $0.slashed.description] as [String: Any] },
        ], title: "Node \(key.short)")
    }

    /// A node's recent paid shares as CSV.
    public func nodeCSV(_ key: Address) -> String {
        var out = "height,time,request,input_tokens,output_tokens\r\n"
        for s in timeline.value.shares(of: key) {
            out += "\(s.height),\(Self.time(s.timeMillis)),\(s.requestId.hex),\(s.inputTokens),\(s.outputTokens)\r\n"
        }
        return out
    }

    public func request(_ id: Hash256) async throws -> Page {
        guard let s = try await ledger.settlement(id) else { return notFound("No settled request \(id.hex).") }
        async let verification = try? ledger.verification(id)
        async let params = ledger.params()
        async let charge = try? ledger.marketCharge(id)
        let (v, p, c) = try await (verification, params, charge)
        // The gateway's view when one of ours served it (every attempt, a failed one too); else the ledger's (the paid shares).
        let attempts = await trace(id) ?? zip(s.nodes, s.outputTokens).map { (node: $0.0.text, tokens: $0.1, paid: true) }
        let total = attempts.reduce(0) { $0 + $1.tokens }
        var context: [String: Any] = [
            "id": id.hex, "model": s.model, "requestor": s.requestor.text, "gateway": s.gateway.text, "status": s.status.rawValue,
            "charge": s.charge.description, "fee": s.fee.description, "settledHeight": s.settledHeight, "finalHeight": s.finalHeight,
            "path": attempts.enumerated().map { i, a -> [String: Any] in
                ["order": i + 1, "node": a.node, "tokens": a.tokens, "paid": a.paid ? "paid" : "not paid (failed mid-answer, no receipt)",
                 "share": total == 0 ? "–" : String(format: "%.1f%%", Double(a.tokens) / Double(total) * 100)]
            },
            "payouts": s.payouts.map { ["to": $0.account.text, "amount": $0.amount.description] },
            "params": p.params.map { ["name": $0.name, "value": $0.value] },
        ]
        if attempts.count > 1 { context["failover"] = ["count": attempts.count] }
        if let c {
            context["premium"] = Amount(units: c.amount.units).description
            context["quoteHeight"] = c.quoteHeight
        }
        if let at = timeline.value.settlement(of: id) {
            context["tx"] = at.tx.hex
            context["txShort"] = Self.short(at.tx)
        }
        context["verification"] = Self.describe(v)
        return render("request", context, title: "Request \(Self.short(id))")
    }

    /// A request's attempts as the gateway that served it recorded them (nil: no configured gateway knows it).
    func trace(_ id: Hash256) async -> [(node: String, tokens: UInt64, paid: Bool)]? {
        for g in gateways {
            guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "\(g)/v1/trace/\(id.hex)"), timeout: .seconds(5)),
                  r.status == .ok, let body = try? await r.body.collect(upTo: 1 << 20),
                  let j = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any],
                  let list = j["attempts"] as? [[String: Any]] else { continue }
            return list.map { a in (a["node"] as? String ?? "", UInt64(a["output_tokens"] as? Int ?? 0), a["paid"] as? Bool ?? false) }
        }
        return nil
    }

    static func describe(_ v: VerificationView?) -> String {
        guard let v else { return "No verification record." }
        if let d = v.dispute { return "Challenged: dispute \(d.outcome)\(d.slashed.isZero ? "" : ", \(d.slashed) slashed")." }
        if let c = v.check { return "Drawn for a check (\(c.state))\(c.verifier.map { " by verifier \($0.short)" } ?? "")." }
        return v.exactlyVerifiable ? "Not drawn for a check." : "Not exactly verifiable (its backend cannot be re-executed bit for bit)."
    }

    public func governance() async throws -> Page {
        async let proposals = ledger.proposals()
        async let communities = ledger.communities()
        async let federation = try? ledger.federation()
        let (ps, cs, f) = try await (proposals, communities, federation)
        var context: [String: Any] = [
            "proposals": ps.map { ["id": $0.id.hex, "short": Self.short($0.id), "title": $0.title, "state": $0.state.rawValue,
                                   "communities": $0.communities.joined(separator: ", ")] as [String: Any] },
            "hasProposals": !ps.isEmpty,
            "communities": cs.map { ["id": $0.id, "members": $0.memberCount, "scheme": String(describing: $0.scheme)] as [String: Any] },
        ]
        // Set only when there is one: mustache takes a nil wrapped in Any for a value.
        if let f, !f.communities.isEmpty {
            context["assembly"] = ["seats": zip(f.communities, f.seats).map { ["community": $0.0, "seats": $0.1] as [String: Any] },
                        "members": f.assembly.map(\.text), "since": f.since.map(String.init) ?? "–", "termEnd": f.termEnd,
                        "pendingDraw": f.pendingDraw.map { "a new draw is due at block \($0)" } ?? ""]
        }
        return render("governance", context, title: "Governance")
    }

    public func proposal(_ id: Hash256) async throws -> Page {
        guard let p = try? await ledger.proposal(id) else { return notFound("No proposal \(id.hex).") }
        let ballots = try? await ledger.ballots(id)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var context: [String: Any] = [
            "id": id.hex, "title": p.title, "description": p.description, "state": p.state.rawValue, "proposer": p.proposer.text,
            "created": p.createdHeight, "snapshot": p.snapshot, "deadline": p.deadline, "extended": p.extended,
            "actions": (try? e.encode(p.actions)).map { String(decoding: $0, as: UTF8.self) } ?? "",
            "counts": p.counts.map { c -> [String: Any] in
                let cast = c.forVotes &+ c.againstVotes &+ c.abstainVotes
                func share(_ v: UInt64) -> String { cast == 0 ? "–" : String(format: "%.1f%%", Double(v) / Double(cast) * 100) }
                return ["community": c.community, "scheme": String(describing: c.scheme), "for": c.forVotes, "forShare": share(c.forVotes),
                        "against": c.againstVotes, "againstShare": share(c.againstVotes), "abstain": c.abstainVotes, "voters": c.voters,
                        "turnout": c.totalPower.map { $0 == 0 ? "–" : String(format: "%.1f%%", Double(cast) / Double($0) * 100) } ?? "–",
                        "quorum": c.quorum.map(String.init) ?? String(format: "%.1f%% of power", Double(c.quorumBps) / 100),
                        "reached": c.quorumReached ? "reached" : "not reached"]
            },
        ]
        if let eta = p.eta { context["eta"] = eta }
        if let ballots {
            func power(_ p: [UInt64]) -> String { zip(ballots.communities, p).map { "\($0.0) \($0.1)" }.joined(separator: ", ") }
            context["cast"] = ballots.cast.map { ["voter": $0.voter.text, "choice": Self.choice($0.weights), "power": power($0.power), "height": $0.height] as [String: Any] }
            context["absent"] = ballots.absent.map { ["voter": $0.voter.text, "power": power($0.power)] as [String: Any] }
            context["absentCount"] = ballots.absentCount
            if ballots.absentCount > ballots.absent.count { context["moreAbsent"] = ["count": ballots.absentCount - ballots.absent.count] }
        }
        if let summary = p.summary {
            context["summary"] = ["hash": summary.summaryHash.hex, "model": summary.model, "request": summary.requestId.hex, "by": summary.recordedBy.text]
        }
        return render("proposal", context, title: p.title)
    }

    /// A ballot's weights (in `Choice` order) in words.
    static func choice(_ w: [UInt32]) -> String {
        let nonzero = w.enumerated().compactMap { i, x in x > 0 ? Choice(rawValue: i).map { ($0.name, x) } : nil }
        if nonzero.count == 1 { return nonzero[0].0 }
        return nonzero.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
    }

    public func markets() async throws -> Page {
        async let prices = ledger.marketPrices()
        async let models = ledger.models()
        async let datasets = ledger.datasets()
        let (m, cards, ds) = try await (prices, models, datasets)
        var rows: [[String: Any]] = []
        for card in cards {
            let v = m.first { $0.model == card.id }
            let evaluations = (try? await ledger.evaluations(card.id)) ?? []
            let history = (v?.history ?? []).map { (Double($0.height), Double($0.premium) / Double(Amount.unitsPerPLX)) }
            rows.append(["id": card.id, "quantization": card.quantization, "license": card.license,
                         "chart": SVGChart.line(history, title: "Spot premium of \(card.id) by block height", unit: "PLX per M tokens"),
                         "premium": v.map { Amount(units: $0.premium).description } ?? "–",
                         "utilization": v.map { String(format: "%.1f%%", Double($0.utilizationBps) / 100) } ?? "–",
                         "asks": v?.asks.count ?? 0,
                         "evaluations": evaluations.map { "\($0.name): \($0.correct)/\($0.tasks)" }.joined(separator: ", ")])
        }
        return render("markets", [
            "models": rows,
            "datasets": ds.map { ["name": $0.manifest.name, "version": $0.version, "license": $0.manifest.license, "price": $0.manifest.price.description,
                                  "contributors": $0.manifest.contributors.count] as [String: Any] },
        ], title: "Markets")
    }

    /// Where a search goes: a height, a transaction, a request, a proposal, a block hash, an account — or nowhere.
    public func search(_ raw: String) async -> String? {
        let q = raw.trimmingCharacters(in: .whitespaces)
        guard !q.isEmpty, q.utf8.count <= 128 else { return nil }
        if let h = UInt64(q) { return (try? await ledger.block(h)) != nil ? "/blocks/\(h)" : nil }
        if let a = try? Address(q) { return "/accounts/\(a.text)" }
        guard let hash = try? Hash256(hex: q) else { return nil }
        if (try? await ledger.transaction(hash)) != nil { return "/tx/\(hash.hex)" }
        if (try? await ledger.settlement(hash)) != nil { return "/requests/\(hash.hex)" }
        if (try? await ledger.proposal(hash)) != nil { return "/governance/\(hash.hex)" }
        if let s = timeline.value.block(hash: hash) { return "/blocks/\(s.height)" }
        return nil
    }
}
