import CPlexusKernels
import Foundation
import Synchronization

/// Which instruction-set path the packed kernels take: 0 portable, 1 AVX2, 2 VNNI (AVX-VNNI, or AVX-512 VNNI)
/// (capped by what the processor has). Every path gives the same bits; a node and a
/// verifier can be held to different ones (`PLEXUS_KERNELS=portable|avx2|vnni` for a
/// process, `level` within one) to show it.
public enum KernelPath {
    private static let storage = Atomic<Int32>(fromEnvironment(ProcessInfo.processInfo.environment["PLEXUS_KERNELS"]))

    static func fromEnvironment(_ value: String?) -> Int32 {
        switch value?.lowercased() {
        case "portable": 0
        case "avx2": 1
        default: 2
        }
    }

    /// The highest path allowed.
    public static var level: Int32 {
        get { storage.load(ordering: .relaxed) }
        set { storage.store(max(0, min(2, newValue)), ordering: .relaxed) }
    }

    /// The path the processor allows at most.
    public static var processorLevel: Int32 { Int32(plx_cpu_level()) }

    /// The name of the path in use.
    public static var name: String { ["portable", "avx2", "vnni"][Int(min(level, processorLevel))] }
}
