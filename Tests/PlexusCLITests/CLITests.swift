import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// Command-line behaviour of the real binary.
@Suite struct CLITests {
    @Test func keysNewWritesAnOwnerOnlyKeyAndRefusesToOverwrite() async throws {
        let dir = try TemporaryDirectory("plexus-cli")
        defer { dir.remove() }
        let path = dir.path + "/k.json"
        let (s1, out) = try await PlexusProcess.run(["keys", "new", "--out", path], logDirectory: dir.path)
        #expect(s1 == 0)
        let address = try #require(out.split(separator: "\n").first.map(String.init))
        #expect(try Address(address) == KeyFile.read(path).address)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        let (s2, _) = try await PlexusProcess.run(["keys", "new", "--out", path], logDirectory: dir.path)
        #expect(s2 != 0)
        let (s3, shown) = try await PlexusProcess.run(["keys", "show", "--key", path], logDirectory: dir.path)
        #expect(s3 == 0 && shown.contains(address))
        // A key others can read is refused, with the fix in the message.
        chmod(path, 0o644)
        let (s4, refused) = try await PlexusProcess.run(["keys", "show", "--key", path], logDirectory: dir.path)
        #expect(s4 != 0 && refused.contains("chmod 600"), "\(refused)")
        // What plexus creates is owner-only whatever the shell's umask: the folders above a new key too.
        let nested = dir.path + "/a/b/k.json"
        let (s5, _) = try await PlexusProcess.run(["keys", "new", "--out", nested], logDirectory: dir.path)
        #expect(s5 == 0)
        for folder in [dir.path + "/a", dir.path + "/a/b"] {
            let m = (try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? NSNumber)?.intValue
            #expect(m == 0o700, "\(folder): \(String(m ?? 0, radix: 8))")
        }
    }

    @Test func ledgerInitRejectsBadInput() async throws {
        let dir = try TemporaryDirectory("plexus-cli")
        defer { dir.remove() }
        let base = ["ledger", "init", "--orderer-key", dir.path + "/o.json", "--out", dir.path + "/g.json"]
        let addr = KeyPair.deterministic("x").address.text
        var typo = Array(addr)
        typo[10] = typo[10] == "a" ? "b" : "a"
        for extra in [["--fund", "\(String(typo))=5"], ["--fund", "\(addr)=-5"], ["--param", "unbondingBlocks=0"], ["--param", "bogus=1"]] {
            let (s, out) = try await PlexusProcess.run(base + extra, logDirectory: dir.path)
            #expect(s != 0, "accepted \(extra): \(out)")
        }
        let (ok, _) = try await PlexusProcess.run(base + ["--fund", "\(addr)=5"], logDirectory: dir.path)
        #expect(ok == 0)
        let g = try Genesis.read(dir.path + "/g.json")
        #expect(g.accounts.first?.balance == Amount(units: 5 * Amount.unitsPerPLX))
    }

    /// The gateway benchmark runs end to end on a small scale and reports its figures
    /// (not judged here: benchmarks are for a quiet machine, tests for any).
    @Test func gatewayBenchReportsItsFigures() async throws {
        let dir = try TemporaryDirectory("plexus-cli")
        defer { dir.remove() }
        let (status, out) = try await PlexusProcess.run(["bench", "gateway", "--requests", "20", "--seconds", "1", "--concurrency", "4", "--json"],
                                                  logDirectory: dir.path)
        #expect(status == 0, "\(out.suffix(2_000))")
        let start = try #require(out.range(of: "{", options: .backwards, range: out.startIndex..<(out.range(of: "\"benchmark\"")?.lowerBound ?? out.endIndex)))
        let d = try #require(try JSONSerialization.jsonObject(with: Data(out[start.lowerBound...].utf8)) as? [String: Any])
        #expect(d["errors"] as? Int == 0)
        #expect((d["receipts_stored"] as? Int ?? 0) > 0)
        #expect((d["requests_per_s"] as? Double ?? 0) > 0)
        #expect((d["gateway_p50_ms"] as? Double ?? 0) > 0 && (d["direct_p50_ms"] as? Double ?? 0) > 0)
        #expect((d["disk_sync_p50_ms"] as? Double ?? 0) > 0)
        #expect(d["settled_after_s"] is Double)
    }
}
