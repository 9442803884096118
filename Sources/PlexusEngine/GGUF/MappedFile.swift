import Foundation
import PlexusCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file.
public final class MappedFile: @unchecked Sendable {
    // Invariant: the mapping is created in init, never written, and unmapped
    // only in deinit, so concurrent readers are safe.
    public let bytes: UnsafeRawBufferPointer
    public let path: String

    /// Maps `path`; throws `notFound` or `io`.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw PlexusError(.notFound, "cannot open \(path) (errno \(errno))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PlexusError(.io, "cannot stat \(path)") }
        let size = Int(st.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw PlexusError(.io, "cannot map \(path) (errno \(errno))") }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress, bytes.count > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
