import AsyncHTTPClient
import Foundation
import NIOHTTP1
import PlexusCore
@testable import PlexusExplorer
import PlexusHTTP
import PlexusLedger
import PlexusTestKit
import Testing

/// The explorer's pages against a ledger in this process, seeded with transfers, a model card
/// and a dataset whose licences are hostile markup: every page is well-formed HTML, shows the
/// hostile texts as text, and answers malformed paths with clear 404s; search finds heights,
/// hashes and addresses; an account's activity comes as CSV; the overview's figures stream.
@Suite struct ExplorerTests {
    let net = TestNetwork(accounts: 3)
    static let hostile = "<script>alert(1)</script>"

    func get(_ s: ExplorerServer, _ path: String) async -> (Int, [(String, String)], String) {
        let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
        let answer = await s.handle(HTTPRequestIn(method: .GET, path: parts[0], query: parts.count > 1 ? parts[1] : nil, headers: [:], body: []))
        switch answer {
        case let .full(status, headers, body): return (status, headers, String(decoding: body, as: UTF8.self))
        case let .stream(status, headers, pipe):
            let first = (try? await pipe.next()) ?? nil
            pipe.close()
            return (status, headers, String(decoding: first ?? [], as: UTF8.self))
        }
    }

    @Test func everyPageIsWellFormedAndEscapesWhatItShows() async throws {
        try await TestLedger.run(net) { ledger, _ in
            let a = net.keys[0], b = net.keys[1]
            let transfer = try await ledger.send(.transfer(to: b.address, amount: Amount(units: 12_345)), from: a)
            let card = ModelCard(id: "m", weightsHash: Hash256.of([1]), architecture: "llama", quantization: "Q8_0", contextLength: 4096,
                                 license: Self.hostile, capabilities: ["chat"], creator: a.address, royaltyBps: 0)
            _ = try await ledger.send(.registerModel(card), from: a)
            let manifest = DatasetManifest(name: "corpus", root: Hash256.of([2]), size: 10, chunkSize: 4_096, chunks: 1,
                                           license: "<img src=x onerror=alert(2)>", price: Amount(units: 1_000), contributors: [Contributor(account: a.address, weight: 1)], totalWeight: 1)
            _ = try await ledger.send(.registerDataset(manifest), from: a)
            let op = net.keys[2]
            _ = try await ledger.send(.stake(amount: Amount(units: 200 * Amount.unitsPerPLX)), from: op)
            _ = try await ledger.send(.stake(amount: Amount(units: 50 * Amount.unitsPerPLX)), from: b)
            let proposal = ProposalContent(communities: [Governance.root], title: Self.hostile, description: "<i>why</i>")
            _ = try await ledger.send(.propose(proposal), from: a)
            // The staked operator votes once voting opens (blocks come with transactions: a tick a try).
            var voted = false
            for _ in 0..<40 where !voted {
                _ = try await ledger.send(.transfer(to: a.address, amount: Amount(units: 1)), from: b)
                voted = (try? await ledger.send(.vote(proposal: proposal.id, weights: [0, 1, 0]), from: op)) != nil
            }
            #expect(voted)
            _ = try await ledger.send(.registerNode(nodeKey: op.address, keyProof: op.sign(Registry.nodeKeyProofBytes(chainId: net.genesis.chainId, owner: op.address)),
                                                   endpoint: "http://127.0.0.1:1/<b>", offers: [Offer(model: "m", priceIn: Amount(units: 5), priceOut: Amount(units: 9))]),
                                      from: op)
            let historyFile = FileManager.default.temporaryDirectory.appendingPathComponent("explorer-history-\(UUID().uuidString).jsonl").path
            defer { try? FileManager.default.removeItem(atPath: historyFile) }
            let explorer = try Explorer(ledger: ledger, historyFile: historyFile)
            try await explorer.catchUp()
            // Two samples a day and a bit apart: the figures' changes read "over 24 h".
            try await explorer.sample(nowMillis: 1_000_000)
            _ = try await ledger.send(.stake(amount: Amount(units: 10 * Amount.unitsPerPLX)), from: op)
            try await explorer.sample(nowMillis: 1_000_000 + 86_400_000 + 60_000)
            let server = ExplorerServer(explorer: explorer)
            let height = try await ledger.status().height
            let pages = ["/", "/blocks", "/blocks/\(transfer.height)", "/tx/\(transfer.hash.hex)", "/accounts/\(a.address.text)", "/nodes",
                         "/governance", "/markets", "/nodes?sort=stake", "/blocks?before=\(height)", "/nodes/\(op.address.text)", "/governance/\(proposal.id.hex)",
                         "/charts/stake", "/charts/height?range=week", "/nodes/\(op.address.text)?range=hour", "/nodes?sort=price&page=3"]
            for path in pages {
                let (status, headers, html) = await get(server, path)
                #expect(status == 200, "\(path): \(html.prefix(300))")
                #expect(headers.contains { $0 == ("content-type", "text/html; charset=utf-8") })
                #expect(HTMLCheck.problems(html).isEmpty, "\(path): \(HTMLCheck.problems(html))")
                #expect(!html.contains("<script>alert") && !html.contains("<img src=x"), "\(path) shows markup from the ledger unescaped")
            }
            let markets = await get(server, "/markets").2
            #expect(markets.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && markets.contains("&lt;img src=x onerror=alert(2)&gt;"))
            // Who voted: the operator, for, with its stake; b held stake too and did not vote.
            let ballots = try await ledger.ballots(proposal.id)
            #expect(ballots.cast.map(\.voter) == [op.address] && ballots.cast.first?.weights == [0, 1, 0], "\(ballots)")
            #expect(ballots.absent.map(\.voter) == [b.address] && ballots.absentCount == 1, "\(ballots)")
            #expect(await get(server, "/governance/\(proposal.id.hex)").2.contains("<td>for</td>"))
            let governance = await get(server, "/governance").2 + (await get(server, "/governance/\(proposal.id.hex)").2)
            #expect(governance.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && governance.contains("&lt;i&gt;why&lt;/i&gt;"))
            let tx = await get(server, "/tx/\(transfer.hash.hex)").2
            #expect(tx.contains("transfer") && tx.contains(a.address.text))
            let account = await get(server, "/accounts/\(b.address.text)").2
            #expect(account.contains(transfer.hash.hex) && account.contains("Download as CSV"))

            // Each overview figure links to its history chart, with its change over the day.
            let overview = await get(server, "/").2
            #expect(overview.contains("href=\"/charts/stake\"") && overview.contains("href=\"/charts/escrow\"") && overview.contains("+10 over 24 h"), "\(overview)")
            let stakeChart = await get(server, "/charts/stake").2
            #expect(stakeChart.contains("<polyline") && stakeChart.contains("+10 over 24 h") && stakeChart.contains("2 samples"), "\(stakeChart)")
            // The node's own history: its stake stepped up by 10 PLX.
            let nodePage = await get(server, "/nodes/\(op.address.text)?range=week").2
            #expect(nodePage.contains("Operator&#39;s stake, last 7 days") && nodePage.contains(">210 PLX<"), "\(nodePage)")
            // The history comes back from its file in a new explorer (a restart).
            let again = try Explorer(ledger: ledger, historyFile: historyFile)
            #expect(again.history.value.points("stake").map(\.value) == explorer.history.value.points("stake").map(\.value))
            #expect(again.history.value.points("node/\(op.address.text)/stake").count == 2)
            // Paging past the last page shows the last one.
            #expect(await get(server, "/nodes?page=3").2.contains("Nodes 1–1 of 1."))

            // Malformed and unknown: clear 404 pages, the input shown escaped.
            #expect(await get(server, "/nodes/\(op.address.text)").2.contains("http://127.0.0.1:1/&lt;b&gt;"))
            for path in ["/nodes/\(b.address.text)", "/blocks/abc", "/blocks/999999", "/tx/zz", "/tx/\(Hash256.of([9]).hex)", "/accounts/nobody", "/requests/\(Hash256.of([9]).hex)",
                         "/governance/12", "/nowhere/<b>x</b>", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/charts/<b>x</b>", "/nodes?page=-1"] {
                let (status, _, html) = await get(server, path)
                #expect(status == 404, "\(path): \(status)")
                #expect(HTMLCheck.problems(html).isEmpty && !html.contains("<script>alert") && !html.contains("<b>x"), "\(path)")
            }
            // Search: a height, a transaction hash, an address, a block hash.
            func location(_ q: String) async -> String? {
                let (status, headers, _) = await get(server, "/search?q=\(q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)")
                return status == 303 ? headers.first { $0.0 == "location" }?.1 : nil
            }
            #expect(await location(String(transfer.height)) == "/blocks/\(transfer.height)")
            #expect(await location(transfer.hash.hex) == "/tx/\(transfer.hash.hex)")
            #expect(await location(" \(a.address.text) ") == "/accounts/\(a.address.text)")
            let block = try #require(try await ledger.block(transfer.height))
            #expect(await location(block.hash.hex) == "/blocks/\(transfer.height)")
            #expect(await location(String(repeating: "9", count: 300)) == nil)

            // CSV: the transfer, with its amount in base units, in both accounts' activity.
            let (status, headers, csv) = await get(server, "/accounts/\(b.address.text).csv")
            #expect(status == 200 && headers.contains { $0.0 == "content-type" && $0.1.hasPrefix("text/csv") })
            let lines = csv.split(separator: "\r\n")
            #expect(lines.first == "height,time,kind,from,counterparty,amount_units,fee_units,transaction")
            #expect(lines.contains { $0.contains("transfer") && $0.contains(",12345,") && $0.contains(transfer.hash.hex) }, "\(csv)")

            let (nodeCSVStatus, _, nodeCSV) = await get(server, "/nodes/\(op.address.text).csv")
            #expect(nodeCSVStatus == 200 && nodeCSV.hasPrefix("height,time,request,input_tokens,output_tokens\r\n"))

            // The overview's figures stream as server-sent events.
            let (liveStatus, liveHeaders, event) = await get(server, "/live")
            #expect(liveStatus == 200 && liveHeaders.contains { $0 == ("content-type", "text/event-stream") })
            #expect(event.hasPrefix("data: {") && event.contains("\"height\":\"") && event.hasSuffix("}\n\n"), "\(event)")
        }
    }

    @Test func theTimelineCountsRatesActivityAndForgetsTheOldest() throws {
        let a = net.keys[0], b = net.keys[1]
        var t = Timeline(keptBlocks: 5, keptTransactions: 4)
        func block(_ h: UInt64, _ time: UInt64, _ txs: [Transaction]) -> BlockView {
            let header = BlockHeader(chainId: "c", height: h, previousHash: .zero, timeMillis: time, txCount: UInt32(txs.count), txRoot: .zero,
                                     stateRoot: .zero, orderer: a.address)
            return BlockView(Block(header: header, signature: .empty, transactions: txs))
        }
        for h in UInt64(1)...8 {
            t.add(block(h, h * 30_000, [net.tx(0, nonce: h, .transfer(to: b.address, amount: Amount(units: h)))]))
        }
        t.add(block(3, 1, []))  // an old block again: ignored
        #expect(t.height == 8 && t.samples.count == 5 && t.samples.first?.height == 4)
        // Four transactions kept, newest first, in both accounts' activity.
        #expect(t.activity(of: b.address).map(\.height) == [8, 7, 6, 5])
        #expect(t.activity(of: a.address).first?.amount == Amount(units: 8) && t.activity(of: a.address).first?.counterparty == b.address)
        // The last minute ends at the last block (240 s): blocks at 210 and 240 s.
        #expect(t.totals(over: 60_000).transactions == 2 && t.totals(over: 60_000).blocks == 2)
        let perMinute = t.series(buckets: 3, bucketMillis: 60_000) { Double($0.transactions) }
        #expect(perMinute.map(\.1) == [2, 2, 1] && perMinute.map(\.0) == [120_000, 180_000, 240_000])
        // The figures as they stood at a time: blocks at 120…240 s kept, a transaction each.
        #expect(t.figures(at: 100_000) == nil)
        let at = try #require(t.figures(at: 200_000))
        #expect(at["height"] == 6 && at["block-time"] == 30 && at["tx-rate"] == 2.0 / 60, "\(at)")

        // An explorer fills its history from such blocks, a period apart, up to now, and then only after its last sample.
        let explorer = try Explorer(ledger: LedgerClient(baseURL: "http://127.0.0.1:1"), samplePeriod: .seconds(60))
        explorer.timeline.value = t
        try explorer.fillHistory(upTo: 300_000)
        #expect(explorer.history.value.points("height").map(\.timeMillis) == [120_000, 180_000, 240_000])
        #expect(explorer.history.value.points("height").map(\.value) == [4, 6, 8])
        try explorer.fillHistory(upTo: 400_000)
        #expect(explorer.history.value.points("height").map(\.timeMillis) == [120_000, 180_000, 240_000, 300_000, 360_000])
    }

    @Test func theHistoryKeepsChangesForAWeekAndReadsBackItsFile() throws {
        var h = History(keepMillis: 10_000, maxPoints: 5)
        let day: UInt64 = 86_400_000
        // Network figures are kept every sample, nodes' only when they change.
        h.record(at: 1_000, ["height": 1, "node/x/stake": 5], always: { !$0.hasPrefix("node/") })
        h.record(at: 2_000, ["height": 2, "node/x/stake": 5], always: { !$0.hasPrefix("node/") })
        h.record(at: 3_000, ["height": 4, "node/x/stake": 7, "bad": .nan], always: { !$0.hasPrefix("node/") })
        #expect(h.points("height").map(\.value) == [1, 2, 4] && h.points("node/x/stake").map(\.value) == [5, 7] && h.points("bad").isEmpty)
        #expect(h.value("node/x/stake", at: 2_500) == 5 && h.value("height", at: 500) == nil)
        // A change over more than the history holds is measured from its start.
        #expect(h.change("height", over: day).map { $0.delta == 3 && $0.from == 1_000 } == true)
        #expect(h.change("height", over: 1_000).map { $0.delta == 2 && $0.from == 2_000 } == true)
        // Older than the window: dropped, but the last point before it stays (a step series keeps its value).
        h.record(at: 13_000, ["height": 9], always: { _ in true })
        #expect(h.points("height").map(\.timeMillis) == [3_000, 13_000] && h.points("node/x/stake").map(\.value) == [7])
        // At most maxPoints a series; a point older than the last is ignored.
        for t in UInt64(0)..<10 { h.record(at: 13_100 + t, ["height": Double(t)]) }
        h.record(at: 1, ["height": 100])
        #expect(h.points("height").count == 5 && h.points("height").last?.value == 9)
        #expect(h.points("height", since: 13_107).map(\.timeMillis) == [13_106, 13_107, 13_108, 13_109])

        // The file: appended line by line, rewritten whole now and then, a torn last line skipped.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var w = History()
        for i in UInt64(1)...5 {
            let kept = w.record(at: i * 60_000, ["requests": Double(i), "node/n/price": i < 3 ? 10 : 12], always: { !$0.hasPrefix("node/") })
            try w.append(at: i * 60_000, kept, to: path, rewriteEvery: 3)
        }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"t\": 999999, \"v\": {\"requ".utf8))
        try handle.close()
        var r = History()
        r.load(path)
        #expect(r.points("requests").map(\.value) == [1, 2, 3, 4, 5] && r.points("node/n/price").map(\.value) == [10, 12])
        #expect(r.latest == 300_000)
        var missing = History()
        missing.load(path + ".none")
        #expect(missing.keys.isEmpty)
    }

    @Test func staleNodesAreTheSilentAndTheUnpaid() {
        let day: UInt64 = 86_400_000
        func window(_ attempts: UInt64, _ answered: UInt64) -> ServiceView.Window {
            try! JSONDecoder().decode(ServiceView.Window.self, from: Data("{\"window\":\"1d\",\"attempts\":\(attempts),\"answered\":\(answered),\"reports\":1}".utf8))
        }
        #expect(Explorer.staleness(window(5, 0), lastPaid: nil, now: day) == "no answer measured today")
        #expect(Explorer.staleness(window(5, 1), lastPaid: 1, now: 2 * day) == "no paid work for a day")
        #expect(Explorer.staleness(window(5, 1), lastPaid: day, now: 2 * day) == nil)
        #expect(Explorer.staleness(nil, lastPaid: nil, now: 2 * day) == nil)
    }

    @Test func longSeriesAreThinnedKeepingTheirPeaksAndEnds() {
        let points = (0..<10_080).map { (x: Double($0), y: $0 == 5_000 ? 99.0 : 1.0) }
        let thin = Explorer.thin(points, to: 800)
        #expect(thin.count <= 802 && thin.first?.x == 0 && thin.last?.x == 10_079 && thin.contains { $0.y == 99 })
        #expect(zip(thin, thin.dropFirst()).allSatisfy { $0.0.x < $0.1.x })
        #expect(Explorer.thin(Array(points.prefix(10)), to: 800).count == 10)
    }

    @Test func chartsAndEscapes() {
        let svg = SVGChart.line([(0, 1), (1, 3), (2, 2)], title: "a <b> & \"c\"", unit: "x/s")
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline") && svg.contains("a &lt;b&gt; &amp; &quot;c&quot;") && HTMLCheck.problems(svg).isEmpty)
        #expect(SVGChart.line([], title: "t", unit: "u").contains("no data yet"))
        let timed = SVGChart.line([(0, 1), (1, 2)], title: "t", unit: "u", xLabels: ("<start>", "end"))
        #expect(timed.contains("&lt;start&gt;") && timed.contains(">end</text>") && HTMLCheck.problems(timed).isEmpty)
        #expect(HTML.escape("<a href='x'>&</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;")
    }
}

/// A strict enough check of the explorer's HTML: every element closed in order (void
/// elements and `/>` aside), script and style bodies skipped, no stray `<`.
enum HTMLCheck {
    static let void: Set<String> = ["meta", "input", "br", "img", "link", "hr"]

    static func problems(_ html: String) -> [String] {
        var stack: [String] = []
        var problems: [String] = []
        var i = html.startIndex
        while let open = html[i...].firstIndex(of: "<") {
            guard let close = html[open...].firstIndex(of: ">") else { problems.append("unclosed tag at the end"); break }
            let tag = html[html.index(after: open)..<close]
            i = html.index(after: close)
            if tag.hasPrefix("!") { continue }
            let closing = tag.hasPrefix("/")
            let name = String(tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }).lowercased()
            guard !name.isEmpty else { problems.append("stray '<' before \(tag.prefix(20))"); continue }
            if closing {
                guard stack.last == name else { problems.append("</\(name)> closes <\(stack.last ?? "nothing")>"); continue }
                stack.removeLast()
            } else if !tag.hasSuffix("/") && !void.contains(name) {
                if name == "script" || name == "style", let end = html[i...].range(of: "</\(name)>") {
                    i = end.upperBound
                    continue
                }
                stack.append(name)
            }
        }
        if !stack.isEmpty { problems.append("unclosed: \(stack)") }
        return problems
    }
}
