import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PlexusCore
import PlexusHTTP
import PlexusLedger
import PlexusNode

/// `plexus data`: datasets registered by their Merkle root, served chunk by chunk with proofs to
/// the holders of a grant, bought and checked against the root; the price is held on the ledger
/// until delivery is proven (`docs/markets.md`).
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "The data market: register, serve, buy and check datasets.",
        subcommands: [Add.self, Serve.self, Get.self, Refund.self, List.self])

    struct DirOptions: ParsableArguments {
        @Option(name: .long, help: "Where datasets' bytes and manifests are kept (default: $PLEXUS_HOME/data).") var dir: String?
        var path: String { dir ?? PlexusHome.path + "/data" }
    }

    /// A dataset as kept on disk: its bytes (`ID.bin`) and manifest (`ID.json`).
    struct Stored: Codable {
        var id: Hash256
        var manifest: DatasetManifest
        var files: [String]
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Chunk files (in the order given), build the Merkle tree over the chunks and register the dataset; its bytes are kept for serving.")
        @Argument(help: "Files.") var paths: [String]
        @Option(name: .long, help: "The dataset's name (registered again: its next version).") var name: String
        @Option(name: .long, help: "An SPDX licence id, or custom.") var license: String
        @Option(name: .long, help: "Price per access, in PLX.") var price: Amount
        @Option(name: .long, help: "A contributor and its weight, ADDR=WEIGHT, or ADDR=files:PATH[,PATH…] to weigh it by the chunks that hold bytes of those of the files it added (repeat; default: your key, weight 1).") var contributor: [String] = []
        @Option(name: .long, help: "Bytes per chunk (1024...16777216).") var chunkSize: UInt32 = 65_536
        @Option(name: .long, help: "The id of the dataset this one derives from.") var derivedFrom: String?
        @OptionGroup var dir: DirOptions
        @OptionGroup var options: TxOptions

        func run() async throws {
            let key = try options.key.load()
            var bytes: [UInt8] = []
            var sizes: [UInt64] = []
            for p in paths {
                guard let d = FileManager.default.contents(atPath: p) else { throw ValidationError("cannot read \(p)") }
                bytes += d
                sizes.append(UInt64(d.count))
            }
            let perFile = DataMarket.chunksPerFile(sizes: sizes, chunkSize: UInt64(chunkSize))
            var contributors: [Contributor] = []
            for c in contributor {
                let kv = c.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, let a = try? Address(kv[0]) else { throw ValidationError("--contributor takes ADDR=WEIGHT or ADDR=files:PATH[,PATH…]") }
                if kv[1].hasPrefix("files:") {
                    var weight: UInt32 = 0
                    for f in kv[1].dropFirst("files:".count).split(separator: ",").map(String.init) {
                        guard let i = paths.firstIndex(of: f) else { throw ValidationError("--contributor names \(f), which is not among the files added") }
                        weight = weight.addingReportingOverflow(perFile[i]).overflow ? .max : weight + perFile[i]
                    }
                    contributors.append(Contributor(account: a, weight: weight))
                } else {
                    guard let w = UInt32(kv[1]) else { throw ValidationError("--contributor takes ADDR=WEIGHT or ADDR=files:PATH[,PATH…]") }
                    contributors.append(Contributor(account: a, weight: w))
                }
            }
            if contributors.isEmpty { contributors = [Contributor(account: key.address, weight: 1)] }
            let leaves = DataMarket.chunkHashes(bytes, chunkSize: Int(chunkSize))
            let manifest = DatasetManifest(name: name, root: MerkleRoot.of(leaves), size: UInt64(bytes.count), chunkSize: chunkSize, chunks: UInt32(leaves.count),
                                           license: license, price: price, contributors: contributors,
                                           totalWeight: contributors.reduce(0) { $0 + UInt64($1.weight) },
                                           derivedFrom: try derivedFrom.map { try Hash256(hex: $0) })
            do { try manifest.validate() } catch let e as PlexusError { throw ValidationError(e.message) }
            let ledger = LedgerClient(baseURL: options.ledger.ledger)
            let versions = try await ledger.datasetsOf(key.address, name: name)
            let id = DataMarket.datasetId(owner: key.address, name: name, version: UInt32(versions + 1))
            try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
            try AtomicFile.write(bytes, to: dir.path + "/\(id.hex).bin")
            try AtomicFile.write(Array(try JSONEncoder().encode(Stored(id: id, manifest: manifest, files: paths))), to: dir.path + "/\(id.hex).json")
            try await options.send(.registerDataset(manifest))
            guard try await ledger.dataset(id) != nil else { throw PlexusError(.invalidState, "the dataset was not registered as \(id.hex)") }
            print(id.hex)
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the datasets kept in --dir, chunk by chunk with Merkle proofs, to the buyers of grants naming this key as server; claim payment when a buyer acknowledges delivery.")
        @OptionGroup var dir: DirOptions
        @OptionGroup var options: TxOptions
        @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(name: .long, help: "Port (0 picks a free one).") var port: Int = 0
        @Option(name: .long, help: "Write the bound port to this file once listening.") var portFile: String?
        @Option(name: .long, help: "Drill (development chains only): alter this chunk of every dataset served.") var tamperChunk: UInt32?
        @OptionGroup var log: LogOptions

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            let key = try options.key.load()
            let ledger = LedgerClient(baseURL: options.ledger.ledger)
            let chainId = try await ledger.status().chainId
            if tamperChunk != nil, !AdversaryMode.allowed(onChain: chainId) { throw ValidationError("--tamper-chunk is a drill for development chains; '\(chainId)' is not one") }
            let logger = Logger(label: "plexus.data")
            let dir = self.dir.path, tamper = tamperChunk, portFile = self.portFile
            let server = PlainHTTPServer(host: host, port: port, name: "plexus-data") { request in
                do {
                    return try await Self.handle(request, dir: dir, key: key, chainId: chainId, ledger: ledger, tamper: tamper, logger: logger)
                } catch let e as APIError {
                    return e.plainResponse
                } catch let e as PlexusError {
                    return APIError(e).plainResponse
                } catch {
                    return APIError(.internalServerError, .init("internal"), "internal error").plainResponse
                }
            }
            try await server.run { bound in
                logger.notice("data server listening", metadata: ["address": "http://\(host):\(bound)", "server": "\(key.address.short)"])
                if let portFile { try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile) }
            }
        }

        /// `GET /v1/data/info`, `GET /v1/data/{grant}/chunks/{i}` (signed by the grant's buyer), `POST /v1/data/{grant}/ack`.
        static func handle(_ request: HTTPRequestIn, dir: String, key: KeyPair, chainId: String, ledger: LedgerClient, tamper: UInt32?,
                           logger: Logger) async throws -> HTTPResponseOut {
            let parts = request.path.split(separator: "/").map(String.init)
            if request.method == .GET, request.path == "/v1/data/info" || request.path == "/health" {
                return .json(Array(try JSONEncoder().encode(["server": key.address.text, "status": "ok"])))
            }
            guard parts.count >= 4, parts[0] == "v1", parts[1] == "data", let grantId = try? Hash256(hex: parts[2]) else {
                throw APIError(.notFound, .notFound, "no route \(request.method) \(request.path.prefix(64))")
            }
            guard let grant = try await ledger.dataGrant(grantId), grant.server == key.address, grant.status != .refunded else {
                throw APIError(.forbidden, .notFound, "no grant \(grantId.hex.prefix(16)) served by this server")
            }
            switch (request.method, parts.count, parts[3]) {
            case (.GET, 5, "chunks"):
                guard let index = UInt32(parts[4]) else { throw APIError(.badRequest, .malformed, "a chunk index is a number") }
                guard let raw = request.header("x-plexus-data-auth"), let sig = try? Signature(hex: raw),
                      grant.buyer.verifies(sig, over: DataMarket.chunkRequestBytes(chainId: chainId, grant: grantId, index: index)) else {
                    throw APIError(.unauthorized, .badSignature, "the grant's buyer signs each chunk request")
                }
                guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/\(grant.dataset.hex).json"))),
                      let bytes = FileManager.default.contents(atPath: dir + "/\(grant.dataset.hex).bin") else {
                    throw APIError(.notFound, .notFound, "this server does not hold dataset \(grant.dataset.hex.prefix(16))")
                }
                let size = Int(stored.manifest.chunkSize)
                guard index < stored.manifest.chunks else { throw APIError(.notFound, .notFound, "the dataset has \(stored.manifest.chunks) chunks") }
                let leaves = DataMarket.chunkHashes(Array(bytes), chunkSize: size)
                let start = Int(index) * size
                var chunk = Array(bytes[start..<min(bytes.count, start + size)])
                if tamper == index, !chunk.isEmpty { chunk[0] ^= 0xff }
                struct Chunk: Encodable { var index: UInt32; var data: String; var path: [String] }
                let body = Chunk(index: index, data: Data(chunk).base64EncodedString(), path: MerkleRoot.path(leaves, index: Int(index)).map(\.hex))
                return .json(Array(try JSONEncoder().encode(body)))
            case (.POST, 4, "ack"):
                guard let sig = try? Signature(hex: String(decoding: request.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw APIError(.badRequest, .malformed, "the body is the buyer's signature, in hex")
                }
                if grant.status == .open {
                    _ = try await ledger.send(.claimDelivery(grant: grantId, acknowledgement: sig), from: key)
                    logger.info("delivery claimed", metadata: ["grant": "\(grantId.hex.prefix(16))"])
                }
                return .json(Array(try JSONEncoder().encode(["status": "claimed"])))
            default:
                throw APIError(.notFound, .notFound, "no route \(request.method) \(request.path.prefix(64))")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Buy access to DATASET from a server, download every chunk and check it against the dataset's root; then acknowledge and confirm delivery (paying its contributors). A chunk that does not match stops it: the grant stays open and is refunded after its deadline (plexus data refund).")
        @Argument(help: "The dataset's id.") var dataset: String
        @Option(name: .long, help: "The data server's URL.") var server: String
        @Option(name: .long, help: "Where to write the dataset's bytes.") var out: String
        @OptionGroup var options: TxOptions

        func run() async throws {
            guard let datasetId = try? Hash256(hex: dataset) else { throw ValidationError("a dataset id is 64 hex digits") }
            let key = try options.key.load()
            let ledger = LedgerClient(baseURL: options.ledger.ledger)
            guard let d = try await ledger.dataset(datasetId) else { throw PlexusError(.notFound, "no dataset \(dataset)") }
            let chainId = try await ledger.status().chainId
            let (infoResponse, info) = try await DemoCommand.request(server + "/v1/data/info", key: "")
            guard infoResponse.status == .ok, let serverAddress = (info["server"] as? String).flatMap({ try? Address($0) }) else {
                throw PlexusError(.io, "no data server at \(server)")
            }
            // Bought with this key's next nonce: the grant's id follows from it.
            let nonce = try await ledger.account(key.address).nonce
            try await options.send(.buyData(dataset: datasetId, server: serverAddress))
            let grant = DataMarket.grantId(buyer: key.address, nonce: nonce)
            FileHandle.standardError.write(Data("grant \(grant.hex)\n".utf8))
            var bytes: [UInt8] = []
            for i in 0..<d.manifest.chunks {
                var r = HTTPClientRequest(url: server + "/v1/data/\(grant.hex)/chunks/\(i)")
                r.headers.add(name: "x-plexus-data-auth", value: key.sign(DataMarket.chunkRequestBytes(chainId: chainId, grant: grant, index: i)).description)
                let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(60))
                let body = try await resp.body.collect(upTo: Int(d.manifest.chunkSize) * 2 + (1 << 16))
                struct Chunk: Decodable { var index: UInt32; var data: String; var path: [String] }
                guard resp.status == .ok, let c = try? JSONDecoder().decode(Chunk.self, from: Data(buffer: body)), c.index == i,
                      let data = Data(base64Encoded: c.data), c.path.count <= 64 else {
                    throw PlexusError(.io, "chunk \(i): the server answered \(resp.status.code) \(String(buffer: body).prefix(200))")
                }
                let path = try c.path.map { try Hash256(hex: $0) }
                guard MerkleRoot.verify(leaf: Hash256.of(Array(data)), index: UInt64(i), count: UInt64(d.manifest.chunks), path: path, root: d.manifest.root) else {
                    throw PlexusError(.badSignature, "chunk \(i) does not match the dataset's root: delivery not acknowledged; grant \(grant.hex) is refunded after its deadline (plexus data refund \(grant.hex))")
                }
                bytes += data
            }
            guard bytes.count == Int(d.manifest.size) else { throw PlexusError(.malformed, "\(bytes.count) bytes, not the \(d.manifest.size) registered") }
            try AtomicFile.write(bytes, to: out)
            // Every chunk matched: the acknowledgement to the server, and the confirmation on the ledger.
            let ack = key.sign(DataMarket.deliveryBytes(chainId: chainId, grant: grant, root: d.manifest.root))
            var post = HTTPClientRequest(url: server + "/v1/data/\(grant.hex)/ack")
            post.method = .POST
            post.body = .bytes(ByteBuffer(string: ack.description))
            _ = try? await HTTPClient.shared.execute(post, timeout: .seconds(30))
            if try await ledger.dataGrant(grant)?.status == .open { try await options.send(.confirmDelivery(grant: grant)) }
            print("delivered \(bytes.count) bytes of \(d.manifest.name) v\(d.version), \(d.manifest.chunks) chunks checked against \(d.manifest.root.hex.prefix(16)); grant \(grant.hex)")
        }
    }

    struct Refund: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Return an undelivered grant's price to its buyer, once its deadline has passed (anyone may).")
        @Argument(help: "The grant's id.") var grant: String
        @OptionGroup var options: TxOptions
        func run() async throws {
            guard let id = try? Hash256(hex: grant) else { throw ValidationError("a grant id is 64 hex digits") }
            try await options.send(.refundData(grant: id))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Datasets on the ledger: id, name and version, size, licence and its uses, price, contributors.")
        @OptionGroup var ledger: LedgerURLOptions
        func run() async throws {
            let all: [Dataset] = try await LedgerClient(baseURL: ledger.ledger).datasets()
            for d in all {
                let m = d.manifest
                let uses = Licenses.uses(m.license).map(\.rawValue).sorted().joined(separator: ", ")
                print("\(d.id.hex)  \(m.name) v\(d.version)  \(m.size) bytes in \(m.chunks) chunks  \(m.license) (\(uses.isEmpty ? "no use known" : uses))  \(m.price) per access  \(m.contributors.count) contributors\(d.delisted ? "  DELISTED" : "")")
            }
        }
    }
}
