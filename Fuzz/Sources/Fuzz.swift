import Foundation
import PlexusCore
import PlexusEngine
import PlexusGateway
import PlexusHTTP
import PlexusLedger
import PlexusWire

/// libFuzzer targets for every decoder of outside bytes (`scripts/fuzz.sh TARGET SECONDS`).
/// The target is named by `PLEXUS_FUZZ_TARGET`; each checks a property, not only that
/// nothing crashes: what decodes re-encodes to the same bytes (canonical encodings are
/// unique, so a transaction's hash cannot be changed by re-encoding it), and the fast
/// readers agree with Foundation's decoders on every input both accept.
enum Fuzz {
    static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "transaction": { canonical($0, Transaction.self) },
        "block": { canonical($0, Block.self) },
        "receipt": { canonical($0, VersionedReceipt.self) },
        "snapshot": { canonical($0, LedgerSnapshot.self) },
        "shard-frame": shardFrame,
        "envelope": envelope,
        "json": json,
        "generate-request": generateRequest,
        "chat-request": { _ = try? ChatRequest.read($0) },
        "node-event": nodeEvent,
        "gguf": gguf,
        "http-server": httpServer,
        "http-client": httpClient,
        "ledger-json": ledgerJSON,
        "market-record": marketRecord,
    ]

    static let name = ProcessInfo.processInfo.environment["PLEXUS_FUZZ_TARGET"] ?? ""
    static let target: @Sendable ([UInt8]) -> Void = {
        guard let t = targets[name] else {
            FileHandle.standardError.write(Data("PLEXUS_FUZZ_TARGET must be one of \(targets.keys.sorted().joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return t
    }()

    static func require(_ ok: Bool, _ what: @autoclosure () -> String) {
        if !ok { fatalError("property failed (\(name)): \(what())") }
    }

    /// The markets' ledger records (read from a peer's snapshot) and a dataset's manifest: the first byte picks the kind.
    static func marketRecord(_ bytes: [UInt8]) {
        guard let kind = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        switch kind % 11 {
        case 9: canonical(rest, ServiceRecord.self)
        case 10: canonical(rest, ServiceSample.self)
        case 5: canonical(rest, Evaluation.self)
        case 6: canonical(rest, DatasetManifest.self)
        case 7: canonical(rest, Dataset.self)
        case 8: canonical(rest, DataGrant.self)
        case 0: canonical(rest, AgentGrant.self)
        case 1: canonical(rest, CallPayment.self)
        case 2: canonical(rest, SpotMarket.self)
        case 3: canonical(rest, SpotCharge.self)
        default: canonical(rest, SpotQuote.self)
        }
    }

    /// Decodes; what decodes must encode to exactly the input.
    static func canonical<T: CanonicalCodable & Equatable>(_ bytes: [UInt8], _: T.Type) {
        guard let value = try? T(canonicalBytes: bytes) else { return }
        require(value.canonicalBytes == bytes, "re-encoding changes the bytes")
        require((try? T(canonicalBytes: value.canonicalBytes)) == value, "decode(encode(x)) != x")
    }

    /// The ledger's JSON bodies: a transaction as `POST /v1/tx` reads it without the canonical
    /// content type, and the settlements query. What decodes survives JSON re-encoding with the
    /// same hash (the signed bytes), and its canonical form decodes to it.
    static func ledgerJSON(_ bytes: [UInt8]) {
        if let tx = try? JSONDecoder().decode(Transaction.self, from: Data(bytes)) {
            let again = (try? JSONEncoder().encode(tx)).flatMap { try? JSONDecoder().decode(Transaction.self, from: $0) }
            require(again == tx && again?.hash == tx.hash, "a transaction does not survive JSON re-encoding")
            require((try? Transaction(canonicalBytes: tx.canonicalBytes)) == tx, "a transaction read from JSON does not survive its canonical form")
        }
        struct Query: Codable, Equatable { var ids: [Hash256] }
        if let q = try? JSONDecoder().decode(Query.self, from: Data(bytes)) {
            require((try? JSONEncoder().encode(q)).flatMap { try? JSONDecoder().decode(Query.self, from: $0) } == q, "a settlements query does not survive re-encoding")
        }
    }

    static func shardFrame(_ bytes: [UInt8]) {
        if let step = try? ShardFrame.decodeStep(bytes) {
            let again = try? ShardFrame.decodeStep(ShardFrame.encode(step))
            require(again.map { ShardFrame.encode($0) } == ShardFrame.encode(step), "a step frame does not survive re-encoding")
        }
        if let reply = try? ShardFrame.decodeReply(bytes) {
            let again = try? ShardFrame.decodeReply(ShardFrame.encode(reply))
            require(again.map { ShardFrame.encode($0) } == ShardFrame.encode(reply), "a reply frame does not survive re-encoding")
        }
    }

    static func envelope(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self), let e = try? Envelope(hex: text) else { return }
        require((try? Envelope(hex: e.hex)) == e, "an envelope does not survive re-encoding")
    }

    /// The fast JSON reader against `JSONSerialization`: on every document both accept, the same value.
    static func json(_ bytes: [UInt8]) {
        guard let tree = JSONTree.parse(bytes, maxDepth: 64) else { return }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else { return }
        require(same(tree, object), "JSONTree and JSONSerialization read \(String(decoding: bytes.prefix(200), as: UTF8.self)) differently")
    }

    static func same(_ t: JSONTree, _ o: Any) -> Bool {
        switch t {
        case .null: return o is NSNull
        case let .bool(b): return (o as? Bool) == b
        case let .string(s): return (o as? String) == s
        case let .number(text):
            guard let n = o as? NSNumber, let d = Double(text), d.isFinite else { return o is NSNumber }
            // Past 15 significant digits the two may round differently; both read a number.
            return text.filter(\.isNumber).count > 15 || n.doubleValue == d
        case let .array(items):
            guard let a = o as? [Any], a.count == items.count else { return false }
            return zip(items, a).allSatisfy { same($0, $1) }
        case let .object(members):
            guard let d = o as? [String: Any] else { return false }
            // With a key repeated the two keep different copies; both read an object.
            guard Set(members.map(\.0)).count == members.count else { return true }
            return d.count == members.count && members.allSatisfy { k, v in d[k].map { same(v, $0) } ?? false }
        }
    }

    /// The node's request reader: the hand-written path and `JSONDecoder` agree where both read a request.
    static func generateRequest(_ bytes: [UInt8]) {
        guard let fast = try? GenerateRequest.decode(bytes) else { return }
        if let slow = try? JSONDecoder().decode(GenerateRequest.self, from: Data(bytes)) {
            require(fast == slow, "the fast and the Foundation readers of a generate request disagree")
        }
        require((try? GenerateRequest.decode(fast.json)) == fast, "a generate request does not survive re-encoding")
    }

    /// The gateway's fast readers of node events against `JSONDecoder`.
    static func nodeEvent(_ bytes: [UInt8]) {
        if let (token, text) = FastJSON.parseTokenEvent(bytes[...]) {
            let e = try? JSONDecoder().decode(NodeEvent.self, from: Data(bytes))
            require(e?.type == "token" && e?.token == token && e?.text == text, "the fast token-event reader disagrees with JSONDecoder")
        }
        if let done = FastJSON.parseDoneEvent(bytes[...]) {
            let e = try? JSONDecoder().decode(NodeEvent.self, from: Data(bytes))
            require(e?.type == "done" && e?.finishReason == done.finish, "the fast done-event reader disagrees with JSONDecoder")
        }
    }

    static let ggufPath = NSTemporaryDirectory() + "plexus-fuzz-\(getpid()).gguf"

    /// GGUF headers and tensor directories: whatever parses names every tensor of a known
    /// type inside the file, and its bytes can be read (those of unknown types are never read).
    static func gguf(_ bytes: [UInt8]) {
        guard FileManager.default.createFile(atPath: ggufPath, contents: Data(bytes)) else { return }
        defer { unlink(ggufPath) }
        guard let file = try? GGUFFile(path: ggufPath) else { return }
        for t in file.tensors where t.type != nil {
            require(file.dataOffset + t.offset + t.byteCount <= bytes.count, "tensor \(t.name) lies outside the file")
            require((try? file.data(of: t).count) == t.byteCount, "tensor \(t.name)'s bytes cannot be read")
        }
    }
}

extension Fuzz {
    /// Small valid inputs of each target, written to `dir/TARGET/` (the committed seed corpora).
    static func writeSeeds(to dir: String) throws {
        let key = KeyPair.deterministic("fuzz"), other = KeyPair.deterministic("fuzz-2")
        let tx = Transaction(chainId: "plexus-local", from: key, nonce: 3, fee: Amount(units: 1_000), body: .transfer(to: other.address, amount: Amount(units: 5)))
        let header = BlockHeader(chainId: "plexus-local", height: 2, previousHash: Hash256.of([1]), timeMillis: 1_000, txCount: 1,
                                 txRoot: Block.txRoot([tx.hash]), stateRoot: Hash256.of([2]), orderer: key.address, ordered: true)
        let block = Block(header: header, signature: key.sign(header.hash.bytes), transactions: [tx])
        var receipt = Receipt(requestId: Hash256.of([3]), requestHash: Hash256.of([4]), requestor: key.address, node: other.address, modelHash: Hash256.of([5]),
                              inputTokens: 12, outputTokens: 30, priceIn: Amount(units: 10), priceOut: Amount(units: 20), outputHash: Hash256.of([6]),
                              timeMillis: 2_000, commitment: ReceiptCommitment(root: Hash256.of([7]), chunks: 2, exact: true))
        receipt.signAsNode(other, chainId: "plexus-local")
        var envelope = Envelope(requestId: Hash256.of([8]), requestor: key.address, gateway: other.address, node: key.address, bodyHash: Hash256.of([9]), expiresAtMillis: 9_000)
        envelope.sign(other, chainId: "plexus-local")
        let request = GenerateRequest(model: "smollm2-135m", messages: [ChatMessage(role: "user", content: "hi")], maxTokens: 16, temperature: 0.7, seed: 5, stop: ["\n"])
        var gguf = GGUFWriter()
        gguf.metadata = [(key: "general.architecture", value: .string("llama"))]
        gguf.tensors = [GGUFWriter.Tensor(name: "t", shape: [4], type: .f32, data: [UInt8](repeating: 0, count: 16))]
        var snapshot = LedgerSnapshot(chainId: "plexus-local", genesisHash: Hash256.of([10]), slot: 4, height: 2, timeMillis: 1_000, params: [1, 2, 3],
                                      tip: block, tipEvents: [], accounts: [.init(key: key.address.bytes, value: [0, 1])],
                                      records: [.init(key: [1], value: [2])], stateRoot: Hash256.of([11]), signer: key.address, signature: key.sign([]))
        snapshot.signature = key.sign(snapshot.hash.bytes)
        let policy = AgentPolicy(budget: Amount(units: 1_000_000), periodBlocks: 100, maxPerRequest: Amount(units: 50_000), models: ["echo"], expiresHeight: 900)
        var grant = AgentGrant(agent: other.address, payer: key.address, policy: policy, grantedHeight: 3)
        grant.spent = Amount(units: 40_000)
        var market = SpotMarket()
        market.premium = 2_000_000
        market.updatedMillis = 5_000
        market.samples = [.init(timeMillis: 4_000, tokens: 30), .init(timeMillis: 5_000, tokens: 16)]
        market.history = [.init(height: 0, premium: 0), .init(height: 7, premium: 2_000_000)]
        let quote = SpotQuote(requestId: Hash256.of([3]), premium: 2_000_000, height: 7)
        let manifest = DatasetManifest(name: "corpus", root: Hash256.of([15]), size: 10_000, chunkSize: 4_096, chunks: 3, license: "cc-by-4.0",
                                       price: Amount(units: 1_000), contributors: [Contributor(account: key.address, weight: 2), Contributor(account: other.address, weight: 1)],
                                       totalWeight: 3, derivedFrom: Hash256.of([16]))
        var sample = ServiceSample(node: other.address, model: "echo", attempts: 9, answered: 8)
        sample.ttft[7] = 6
        sample.throughput[12] = 5
        var service = ServiceRecord()
        service.add(sample, at: 60_000)
        service.add(sample, at: 2_000_000)
        let marketTxs = [Transaction(chainId: "plexus-local", from: key, nonce: 4, fee: Amount(units: 1_000), body: .grantAgent(agent: other.address, policy: policy)),
                         Transaction(chainId: "plexus-local", from: other, nonce: 0, fee: Amount(units: 1_000),
                                     body: .payForCall(to: key.address, amount: Amount(units: 700), requestId: Hash256.of([3]))),
                         Transaction(chainId: "plexus-local", from: key, nonce: 5, fee: Amount(units: 1_000), body: .settleQuoted(receipts: [receipt], quotes: [quote])),
                         Transaction(chainId: "plexus-local", from: key, nonce: 6, fee: Amount(units: 1_000), body: .registerDataset(manifest)),
                         Transaction(chainId: "plexus-local", from: other, nonce: 1, fee: Amount(units: 1_000), body: .buyData(dataset: Hash256.of([13]), server: key.address)),
                         Transaction(chainId: "plexus-local", from: key, nonce: 7, fee: Amount(units: 1_000),
                                     body: .claimDelivery(grant: Hash256.of([14]), acknowledgement: other.sign([1, 2, 3]))),
                         Transaction(chainId: "plexus-local", from: key, nonce: 8, fee: Amount(units: 1_000), body: .citeDatasets(model: "m", datasets: [Hash256.of([13])])),
                         Transaction(chainId: "plexus-local", from: key, nonce: 9, fee: Amount(units: 1_000),
                                     body: .propose(ProposalContent(communities: ["plexus"], title: "delist",
                                                                    actions: [.delistDataset(Hash256.of([13])), .relistDataset(Hash256.of([13]))]))),
                         Transaction(chainId: "plexus-local", from: other, nonce: 2, fee: Amount(units: 1_000), body: .reportService(samples: [sample]))]
        let seeds: [String: [[UInt8]]] = [
            "market-record": [[0] + grant.canonicalBytes, [1] + CallPayment(requestId: Hash256.of([3]), from: other.address, to: key.address,
                                                                               amount: Amount(units: 700), height: 9).canonicalBytes,
                              [2] + market.canonicalBytes, [3] + SpotCharge(premium: 2_000_000, quoteHeight: 7, amount: Amount(units: 92)).canonicalBytes,
                              [4] + quote.canonicalBytes,
                              [5] + Evaluation(suite: Hash256.of([12]), name: "plexus-basic-v2", evaluator: key.address, correct: 7,
                                               requests: [Hash256.of([3]), Hash256.of([4])], height: 9).canonicalBytes,
                              [6] + manifest.canonicalBytes,
                              [7] + Dataset(id: Hash256.of([13]), owner: key.address, version: 2, manifest: manifest, registeredHeight: 4).canonicalBytes,
                              [8] + DataGrant(id: Hash256.of([14]), dataset: Hash256.of([13]), buyer: other.address, server: key.address,
                                              amount: Amount(units: 1_000), deadline: 40).canonicalBytes,
                              [9] + service.canonicalBytes, [10] + sample.canonicalBytes],
            "snapshot": [snapshot.canonicalBytes],
            "transaction": [tx.canonicalBytes] + marketTxs.map(\.canonicalBytes),
            "block": [block.canonicalBytes],
            "receipt": [VersionedReceipt(receipt).canonicalBytes],
            "shard-frame": [ShardFrame.encode(ShardFrame.Step(sequence: Hash256.of([1]), sample: true, input: .tokens([1, 2, 3]))),
                            ShardFrame.encode(ShardFrame.Step(sequence: Hash256.of([1]), sample: false, input: .hidden([0.5, -1, 2, 0], width: 2))),
                            ShardFrame.encode(.sampled([ShardFrame.Piece(token: 7, text: "a")], done: nil)), ShardFrame.encode(.states([1, 2], width: 2)),
                            ShardFrame.encode(.error(code: "not_found", message: "no open sequence"))],
            "envelope": [Array(envelope.hex.utf8)],
            "json": [Array(#"{"a":[1,2.5e3,-0.1,true,false,null],"b":"x\u00e9\n","c":{}}"#.utf8), Array("[]".utf8), Array("\"s\"".utf8)],
            "generate-request": [request.json],
            "chat-request": [Array(#"{"model":"smollm2-135m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":32,"temperature":0.7,"stream":true,"stop":["\n"],"seed":3,"response_format":{"type":"json_object"}}"#.utf8)],
            // Events as the readers see them: without the `data: ` before and the blank line after.
            "node-event": [FastJSON.tokenEvent(42, "he said \"hi\""), FastJSON.doneEvent(finish: "stop", promptTokens: 12, receipt: receipt)]
                .map { Array($0.dropFirst(6).dropLast(2)) },
            "gguf": [try gguf.bytes()],
            "ledger-json": [Array(try JSONEncoder().encode(tx)), Array(#"{"ids":["\#(Hash256.of([3]).hex)"]}"#.utf8)]
                + (try marketTxs.map { Array(try JSONEncoder().encode($0)) }),
            "http-server": ["POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                            "GET /health HTTP/1.1\r\nhost: a\r\n\r\nGET /stream HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
                            "POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"].map { Array($0.utf8) },
            "http-client": ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n",
                            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\nbusy"].map { Array($0.utf8) },
        ]
        for (target, inputs) in seeds {
            try FileManager.default.createDirectory(atPath: dir + "/" + target, withIntermediateDirectories: true)
            for (i, bytes) in inputs.enumerated() { try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(target)/seed-\(i)")) }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.target(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The executable's entry point (SwiftPM links an executable target's `main` to this name):
/// libFuzzer's driver over `fuzzOne`, or the seeds written with `PLEXUS_FUZZ_WRITE_SEEDS=DIR`.
@_cdecl("PlexusFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["PLEXUS_FUZZ_WRITE_SEEDS"] {
        do { try Fuzz.writeSeeds(to: dir) } catch { fatalError("cannot write the seeds: \(error)") }
        return 0
    }
    _ = Fuzz.target
    var count = argc
    var args = argv
    return LLVMFuzzerRunDriver(&count, &args, fuzzOne)
}
