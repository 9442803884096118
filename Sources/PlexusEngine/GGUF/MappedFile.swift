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

    /// Drops the pages wholly inside `range` from memory; they are read back
    /// from the file if touched again. For data that has been copied elsewhere.
    public func release(_ range: UnsafeRawBufferPointer) {
        guard let start = range.baseAddress, range.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + range.count) / page * page
        guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(p, hi - lo, Int32(MADV_DONTNEED))
    }

    deinit {
        if let base = bytes.baseAddress, bytes.count > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
