import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file whole or not at all: to a temporary name beside it, flushed,
/// then renamed over it. (Foundation's atomic writes, `createFile` included,
/// leave a directory behind in /tmp on Linux for every write.)
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, permissions: Int = 0o644) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode_t(permissions))
        guard fd >= 0 else { throw PlexusError(.io, "cannot create \(tmp) (errno \(errno))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            guard n > 0 else {
                let e = errno
                close(fd)
                unlink(tmp)
                throw PlexusError(.io, "cannot write \(tmp) (errno \(e))")
            }
            written += n
        }
        fsync(fd)
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw PlexusError(.io, "cannot rename \(tmp) to \(path) (errno \(e))")
        }
    }
}
