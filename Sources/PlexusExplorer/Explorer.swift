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
    /// The figures' and nodes' history, and the file it is kept in (nil: memory only).
    let history = Locked(History())
    let historyFile: String?
    /// Whether `follow` has filled the history from the blocks it read at start.
    let historyFilled = Locked(false)
    /// How often the history takes a sample.
    public let samplePeriod: Duration

    public init(ledger: LedgerClient, gateways: [String] = [], backfill: UInt64 = 2_000, historyFile: String? = nil,
                samplePeriod: Duration = .seconds(60)) throws {
        self.ledger = ledger
        self.gateways = gateways.map { g in
            var g = g
            while g.hasSuffix("/") { g.removeLast() }
            return g.hasSuffix("/v1") ? String(g.dropLast(3)) : g
        }
        self.backfill = backfill
        self.historyFile = historyFile
        self.samplePeriod = samplePeriod
        if let historyFile { history.update { $0.load(historyFile) } }
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
    /// The blocks read at start first fill the history's block-derived figures where it has none.
    public func follow() async {
        while !Task.isCancelled {
            do {
                try await catchUp()
                if !historyFilled.value {
                    try? fillHistory(upTo: UInt64(Date().timeIntervalSince1970 * 1_000))
                    historyFilled.value = true
                }
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

    /// One of the overview's figures: its number (what the history keeps) and how it reads.
    struct Figure {
        var id: String
        var label: String
        var number: Double?
        var text: String
        var unit: String
    }

    /// The overview's figures, also what `/live` sends and the history samples.
    func figures() async throws -> [Figure] {
        try await figures(registry: ledger.nodeRegistry())
    }

    /// The overview's figures, with the node registry already read.
    func figures(registry r: NodesView) async throws -> [Figure] {
        async let status = ledger.status()
        async let supply = ledger.supply()
        async let disputes = ledger.disputes()
        async let verifiers = ledger.verifiers()
        let (s, sup, d, v) = try await (status, supply, disputes, verifiers)
        // Block time and the last minute's rates, as the timeline's blocks give them at the last one.
        let tl = timeline.value
        let blocks = tl.samples.last.flatMap { tl.figures(at: $0.timeMillis) } ?? [:]
        let blockTime = blocks["block-time"], txRate = blocks["tx-rate"] ?? 0
        let requests = Int(blocks["requests"] ?? 0), tokens = UInt64(blocks["tokens"] ?? 0)
        let stake = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.staked?.units ?? 0) } ?? 0
        let passes = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.passes ?? 0) } ?? 0
        let frauds = r.standing?.values.reduce(UInt64(0)) { $0 &+ ($1.frauds ?? 0) } ?? 0
        func count(_ id: String, _ label: String, _ n: Int, _ unit: String) -> Figure { Figure(id: id, label: label, number: Double(n), text: String(n), unit: unit) }
        func units(_ id: String, _ label: String, _ a: Amount) -> Figure {
            Figure(id: id, label: label, number: Double(a.units) / Double(Amount.unitsPerPLX), text: a.description, unit: "PLX")
        }
        return [
            Figure(id: "height", label: "Height", number: Double(s.height), text: String(s.height), unit: "blocks"),
            Figure(id: "block-time", label: "Block time", number: blockTime, text: blockTime.map { String(format: "%.2f s", $0) } ?? "–", unit: "s"),
            Figure(id: "tx-rate", label: "Transactions/s (last minute)", number: txRate, text: String(format: "%.2f", txRate), unit: "tx/s"),
            count("requests", "Requests settled (last minute)", requests, "requests/min"),
            Figure(id: "tokens", label: "Tokens settled (last minute)", number: Double(tokens), text: String(tokens), unit: "tokens/min"),
            count("nodes", "Active nodes", r.servable.count, "nodes"),
            units("stake", "Operators' stake", Amount(units: stake)),
            units("escrow", "Requestors' escrow", sup.escrow),
            units("treasury", "Treasury", sup.treasury),
            count("verifiers", "Verifiers", v.filter(\.verifier).count, "verifiers"),
            count("passes", "Checks passed", Int(clamping: passes), "checks"),
            count("frauds", "Frauds found", Int(clamping: frauds), "frauds"),
            count("disputes", "Open disputes", d.filter { $0.outcome == "open" }.count, "disputes"),
        ]
    }

    /// Each node's figures the history keeps: stake, lowest output price, latency and throughput
    /// medians over five minutes, requests served.
    func nodeFigures(_ r: NodesView, _ m: [MarketView]) -> [String: Double] {
        let measured = m.measuredService
        var out: [String: Double] = [:]
        for n in r.nodes {
            let k = "node/\(n.nodeKey.text)/"
            let st = r.standing?[n.owner.text]
            out[k + "stake"] = Double(st?.staked?.units ?? 0) / Double(Amount.unitsPerPLX)
            out[k + "served"] = Double(st?.served ?? 0)
            if let price = n.offers.map(\.priceOut.units).min() { out[k + "price"] = Double(price) }
            let recent = n.offers.lazy.compactMap { measured[ServiceKey(node: n.nodeKey, model: $0.model)]?[.fiveMinutes] }.first
            if let t = recent?.ttftMillis?.p50 { out[k + "ttft"] = t }
            if let t = recent?.tokensPerSecond?.p50 { out[k + "tps"] = t }
        }
        return out
    }

    /// Takes one sample into the history (and its file): every network figure, and each node's
    /// figures that changed.
    public func sample(nowMillis: UInt64 = UInt64(Date().timeIntervalSince1970 * 1_000)) async throws {
        async let registry = ledger.nodeRegistry()
        async let markets = ledger.marketPrices()
        let (r, m) = try await (registry, markets)
        var values = nodeFigures(r, m)
        let f = try await figures(registry: r)
        for x in f { if let v = x.number { values[x.id] = v } }
        try record(at: nowMillis, values)
    }

    /// Takes `values` (figures by id, node figures as `node/{key}/{figure}`) into the history as
    /// one sample at `nowMillis`, and into its file.
    public func record(at nowMillis: UInt64, _ values: [String: Double]) throws {
        let kept = history.update { $0.record(at: nowMillis, values, always: { !$0.hasPrefix("node/") }) }
        if let historyFile { try history.update { try $0.append(at: nowMillis, kept, to: historyFile) } }
    }

    /// Fills the block-derived figures (height, block time, transactions/s, requests and tokens a
    /// minute) a sample period apart, from the blocks the timeline holds, for the times after the
    /// history's last sample of them and before `nowMillis`: on a first start, the backfilled blocks
    /// stand in for samples never taken; after a restart, for the time the explorer was down.
    public func fillHistory(upTo nowMillis: UInt64) throws {
        let tl = timeline.value
        let period = max(1_000, samplePeriodMillis)
        guard let first = tl.samples.first?.timeMillis else { return }
        let h = history.value
        let after = h.span("height").map { $0.last.timeMillis + period } ?? first
        var t = max(first, after)
        // Whole periods, so that filled samples line up; at most a week of them.
        t = (t + period - 1) / period * period
        if nowMillis > h.keepMillis { t = max(t, (nowMillis - h.keepMillis) / period * period) }
        while t < nowMillis {
            if let values = tl.figures(at: t) { try record(at: t, values) }
            t += period
        }
    }

    /// Samples every `samplePeriod` until cancelled, once `follow` has filled the history from the
    /// blocks read at start (a sample taken before would end the gap the fill is for).
    public func keepHistory() async {
        while !historyFilled.value, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(200)) }
        while !Task.isCancelled {
            try? await sample()
            try? await Task.sleep(for: samplePeriod)
        }
    }

    /// How a figure changed over the last day, as its card says it.
    func change(of id: String) -> String? {
        guard let (delta, from, last) = history.value.change(id, over: 86_400_000) else { return nil }
        let sign = delta >= 0 ? "+" : "−"
        let amount = SVGChart.format(abs(delta))
        return last - from + samplePeriodMillis >= 86_400_000 ? "\(sign)\(amount) over 24 h" : "\(sign)\(amount) since \(Self.time(from)) (history starts)"
    }

    var samplePeriodMillis: UInt64 {
        let c = samplePeriod.components
        return UInt64(max(0, c.seconds)) * 1_000 + UInt64(max(0, c.attoseconds) / 1_000_000_000_000_000)
    }

    /// Chart ranges: their names, lengths and labels.
    static let ranges: [(name: String, millis: UInt64, label: String)] = [
        ("hour", 3_600_000, "last hour"), ("day", 86_400_000, "last 24 hours"), ("week", 7 * 86_400_000, "last 7 days"),
    ]

    /// A series over a range as an SVG chart, its time axis labelled.
    func historyChart(_ key: String, range: String, title: String, unit: String) -> String {
        let r = Self.ranges.first { $0.name == range } ?? Self.ranges[1]
        let h = history.value
        let end = h.latest
        let start = end > r.millis ? end - r.millis : 0
        var points = Self.thin(h.points(key, since: start).map { (x: Double(max($0.timeMillis, start)), y: $0.value) }, to: 800)
        // A series kept only when it changes holds its last value up to the latest sample.
        if let last = points.last, last.x < Double(end) { points.append((Double(end), last.y)) }
        let from = max(start, h.span(key)?.first.timeMillis ?? start)
        return SVGChart.line(points, title: "\(title), \(r.label)", unit: unit, xLabels: points.isEmpty ? nil : (Self.time(from), Self.time(end)))
    }

    /// At most about `limit` points: runs of consecutive points become their first and their highest
    /// (so a spike survives), in order.
    static func thin(_ points: [(x: Double, y: Double)], to limit: Int) -> [(x: Double, y: Double)] {
        guard points.count > limit, limit >= 2 else { return points }
        let run = (points.count + limit / 2 - 1) / (limit / 2)
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(limit + 2)
        var i = 0
        while i < points.count {
            let chunk = points[i..<min(points.count, i + run)]
            out.append(chunk.first!)
            if let top = chunk.dropFirst().max(by: { $0.y < $1.y }) { out.append(top) }
            i += run
        }
        if let last = points.last, out.last?.x != last.x { out.append(last) }
        return out
    }

    /// The history chart of one of the overview's figures.
    public func chart(_ id: String, range: String?) async throws -> Page {
        guard let f = try await figures().first(where: { $0.id == id }) else { return notFound("No figure named \(id.prefix(64)).") }
        let range = Self.ranges.contains { $0.name == range } ? range! : "day"
        let span = history.value.span(id)
        let count = span?.count ?? 0
        return render("chart", [
            "label": f.label, "value": f.text, "change": change(of: id) ?? "no change known yet",
            "samples": count == 1 ? "1 sample" : "\(count) samples",
            "since": span.map { Self.time($0.first.timeMillis) } ?? "–",
            "chart": historyChart(id, range: range, title: f.label, unit: f.unit),
            "ranges": Self.ranges.map { ["name": $0.name, "label": $0.label, "current": $0.name == range] as [String: Any] },
            "id": id,
        ], title: f.label)
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
                var x: [String: Any] = ["id": c.id, "label": c.label, "value": c.text]
                if let ch = change(of: c.id) { x["change"] = ch }
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

    /// Why a node looks stale, if it does: gateways measured it over the day and it never
    /// answered, or it was paid for work before and not in the last 24 h.
    static func staleness(_ day: ServiceView.Window?, lastPaid: UInt64?, now: UInt64) -> String? {
        if let day, day.attempts > 0, day.answered == 0 { return "no answer measured today" }
        if let lastPaid, lastPaid + 86_400_000 < now { return "no paid work for a day" }
        return nil
    }

    /// Nodes the nodes page lists at a time.
    static let nodesPage = 200

    public func nodes(sort: String?, page: Int = 0) async throws -> Page {
        async let registry = ledger.nodeRegistry()
        async let markets = ledger.marketPrices()
        async let models = ledger.models()
        let (r, m, cards) = try await (registry, markets, models)
        let measured = m.measuredService
        let quant = Dictionary(cards.map { ($0.id, $0.quantization) }, uniquingKeysWith: { a, _ in a })
        struct Row { var key: Address; var owner: Address; var offers: [Offer]; var stake: UInt64; var reputation: Double; var jailed: Bool
            var day: ServiceView.Window?; var served: UInt64; var tokens: UInt64; var passes: UInt64; var frauds: UInt64 }
        var rows = r.nodes.map { n -> Row in
            let st = r.standing?[n.owner.text]
            let day = n.offers.lazy.compactMap { measured[ServiceKey(node: n.nodeKey, model: $0.model)]?[.day] }.first
            return Row(key: n.nodeKey, owner: n.owner, offers: n.offers, stake: st?.staked?.units ?? 0, reputation: st?.reputation ?? 0.5,
                       jailed: st?.jailed ?? false, day: day, served: st?.served ?? 0, tokens: st?.servedTokens ?? 0, passes: st?.passes ?? 0, frauds: st?.frauds ?? 0)
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
        let sort = sorts.contains { $0.0 == sort } ? sort! : "key"
        let tl = timeline.value, now = tl.samples.last?.timeMillis ?? 0
        let size = Self.nodesPage, count = rows.count
        let page = min(max(0, page), max(0, (count - 1) / size))
        rows = Array(rows.dropFirst(page * size).prefix(size))
        var context: [String: Any] = [
            "count": count, "sorts": sorts.map { ["key": $0.0, "label": $0.1] },
            "first": count == 0 ? 0 : page * size + 1, "last": page * size + rows.count,
        ]
        if page > 0 { context["earlier"] = ["sort": sort, "page": page - 1, "size": size] }
        if (page + 1) * size < count { context["later"] = ["sort": sort, "page": page + 1, "size": size] }
        context["nodes"] = rows.map { row -> [String: Any] in
                let x: [String: Any] = [
                    "key": row.key.text, "keyShort": row.key.short, "owner": row.owner.text, "ownerShort": row.owner.short, "stake": Amount(units: row.stake).description,
                    "reputation": String(format: "%.3f", row.reputation), "jailed": row.jailed,
                    "served": row.served, "tokens": row.tokens, "verified": "\(row.passes) / \(row.frauds)",
                    "uptime": Self.percent(row.day?.uptime), "ttft": row.day?.ttftMillis.map { String(format: "≤%.0f", $0.p50) } ?? "–",
                    "throughput": row.day?.tokensPerSecond.map { String(format: "≤%.1f", $0.p50) } ?? "–",
                    // Stale: measured over the day yet nothing answered, or paid work seen but none for a day.
                    "stale": Self.staleness(row.day, lastPaid: tl.lastShare(of: row.key)?.timeMillis, now: now).map { $0 as Any } ?? false,
                    "offers": row.offers.map { o -> [String: Any] in
                        var y: [String: Any] = ["model": o.model, "priceIn": o.priceIn.description, "priceOut": o.priceOut.description,
                                                "quantization": quant[o.model] ?? "", "context": o.contextLength]
                        if let l = o.layers { y["layers"] = "\(l.start)–\(l.end) of \(l.total)" }
                        return y
                    },
                ]
                return x
            }
        return render("nodes", context, title: "Nodes")
    }

    public func node(_ key: Address, range: String? = nil) async throws -> Page {
        let range = Self.ranges.contains { $0.name == range } ? range! : "day"
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
            "served": st?.served ?? 0, "tokens": st?.servedTokens ?? 0, "passes": st?.passes ?? 0, "frauds": st?.frauds ?? 0, "jailed": st?.jailed ?? false,
            "offers": n.offers.map { o -> [String: Any] in
                var y: [String: Any] = ["model": o.model, "priceIn": o.priceIn.description, "priceOut": o.priceOut.description,
                                        "concurrency": o.concurrency, "context": o.contextLength, "region": o.region]
                if let l = o.layers { y["layers"] = "\(l.start)–\(l.end) of \(l.total)" }
                return y
            },
            "service": service,
            "chart": SVGChart.line(perMinute.enumerated().map { (Double($0.offset), $0.element) }, title: "Output tokens paid per minute, last hour", unit: "tokens/min"),
            "shares": shares.prefix(50).map { ["height": $0.height, "time": Self.time($0.timeMillis), "id": $0.requestId.hex, "short": Self.short($0.requestId),
                                               "input": $0.inputTokens, "output": $0.outputTokens, "cost": $0.cost.description] as [String: Any] },
            "ranges": Self.ranges.map { ["name": $0.name, "label": $0.label, "current": $0.name == range] as [String: Any] },
            "history": [("stake", "Operator's stake", "PLX"), ("price", "Output price", "units/M tokens"), ("ttft", "First-token latency, 5-minute median", "ms"),
                        ("tps", "Throughput, 5-minute median", "tokens/s"), ("served", "Requests served", "requests")].map { m, title, unit in
                ["title": title, "svg": historyChart("node/\(key.text)/\(m)", range: range, title: title, unit: unit)]
            },
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
        async let params = ledger.params(at: s.settledHeight)
        async let charge = try? ledger.marketCharge(id)
        async let status = ledger.status()
        let (v, p, c, chainId) = try await (verification, params, charge, status.chainId)
        // The gateway's view when one of ours served it (every attempt, a failed one too); else the ledger's (the paid shares).
        let attempts = await trace(id) ?? zip(s.nodes, s.outputTokens).map { (node: $0.0.text, tokens: $0.1, paid: true, failure: String?.none) }
        let total = attempts.reduce(0) { $0 + $1.tokens }
        var context: [String: Any] = [
            "id": id.hex, "model": s.model, "requestor": s.requestor.text, "gateway": s.gateway.text, "status": s.status.rawValue,
            "charge": s.charge.description, "fee": s.fee.description, "settledHeight": s.settledHeight, "finalHeight": s.finalHeight,
            "path": attempts.enumerated().map { i, a -> [String: Any] in
                ["order": i + 1, "node": a.node, "tokens": a.tokens, "paid": a.paid ? "paid" : a.tokens > 0 ? "not paid (failed mid-answer, no receipt)" : "not paid",
                 "share": total == 0 ? "–" : String(format: "%.1f%%", Double(a.tokens) / Double(total) * 100),
                 "why": a.failure ?? (i == attempts.count - 1 ? "finished the answer" : "–")]
            },
            "payouts": s.payouts.map { ["to": $0.account.text, "amount": $0.amount.description] },
            "params": p.params.map { e -> [String: Any] in
                let later = (p.changes ?? []).filter { $0.name == e.name }
                return ["name": e.name, "value": e.value,
                        "since": later.isEmpty ? "–" : later.map { "\($0.new) at block \($0.height)" }.joined(separator: ", ")]
            },
        ]
        if attempts.count > 1 { context["failover"] = ["count": attempts.count] }
        if let c {
            context["premium"] = Amount(units: c.amount.units).description
            context["quoteHeight"] = c.quoteHeight
        }
        if let at = timeline.value.settlement(of: id) {
            context["tx"] = at.tx.hex
            context["txShort"] = Self.short(at.tx)
            // The receipts as settled: each share's ask and what it cost at it, and both signatures, checked here.
            if let tx = try? await ledger.committedTransaction(at.tx)?.transaction, let receipts = tx.body.settledReceipts {
                let rows = receipts.filter { $0.requestId == id }.map { r -> [String: Any] in
                    let valid = (try? r.verify(chainId: chainId)) != nil
                    return ["node": r.node.text, "nodeShort": r.node.short, "input": r.inputTokens, "output": r.outputTokens,
                            "ask": "\(r.priceIn) / \(r.priceOut)", "cost": (try? r.cost())?.description ?? "overflows",
                            "nodeSignature": String(Hex.encode(r.nodeSignature.bytes).prefix(16)), "gatewaySignature": String(Hex.encode(r.gatewaySignature.bytes).prefix(16)),
                            "valid": valid ? "both valid" : "INVALID"]
                }
                if !rows.isEmpty { context["receipts"] = ["rows": rows] }
            }
        }
        context["verification"] = Self.describe(v)
        return render("request", context, title: "Request \(Self.short(id))")
    }

    /// A request's attempts as the gateway that served it recorded them (nil: no configured gateway knows it).
    func trace(_ id: Hash256) async -> [(node: String, tokens: UInt64, paid: Bool, failure: String?)]? {
        for g in gateways {
            guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "\(g)/v1/trace/\(id.hex)"), timeout: .seconds(5)),
                  r.status == .ok, let body = try? await r.body.collect(upTo: 1 << 20),
                  let j = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any],
                  let list = j["attempts"] as? [[String: Any]] else { continue }
            return list.map { a in (a["node"] as? String ?? "", UInt64(a["output_tokens"] as? Int ?? 0), a["paid"] as? Bool ?? false, a["failure"] as? String) }
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
                        "pendingDraw": f.pendingDraw.map { "a new draw is due at block \($0)" } ?? "",
                        "draws": (f.draws ?? []).map { ["from": $0.fromHeight, "count": $0.members.count,
                                                        "members": $0.members.map { ["address": $0.text, "short": $0.short] }] as [String: Any] }]
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
        // Each model's evaluations, asked for all at once.
        let evaluated = await withTaskGroup(of: (String, [String]).self) { group in
            for card in cards {
                group.addTask { (card.id, ((try? await self.ledger.evaluations(card.id)) ?? []).map { "\($0.name): \($0.correct)/\($0.tasks)" }) }
            }
            var out: [String: [String]] = [:]
            for await (id, list) in group { out[id] = list }
            return out
        }
        var rows: [[String: Any]] = []
        for card in cards {
            let v = m.first { $0.model == card.id }
            let history = (v?.history ?? []).map { (Double($0.height), Double($0.premium) / Double(Amount.unitsPerPLX)) }
            rows.append(["id": card.id, "quantization": card.quantization, "license": card.license,
                         "chart": SVGChart.line(history, title: "Spot premium of \(card.id) by block height", unit: "PLX per M tokens"),
                         "premium": v.map { Amount(units: $0.premium).description } ?? "–",
                         "utilization": v.map { String(format: "%.1f%%", Double($0.utilizationBps) / 100) } ?? "–",
                         "asks": v?.asks.count ?? 0,
                         "evaluations": (evaluated[card.id] ?? []).joined(separator: ", ")])
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
