import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

@Suite struct KernelTests {
    /// The integer kernels agree with dequantize-then-float-dot on every real weight type.
    @Test func quantizedMatmulMatchesFloatReference() throws {
        let model = try LlamaModel(path: TestModels.smolLM2())
        var rng = SeededGenerator(seed: 3)
        for w in [model.layers[0].wq, model.layers[3].down, model.embedding] {
            let x = (0..<w.cols).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 }
            var out = [Float](repeating: 0, count: w.rows)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { w.multiply(xp.baseAddress!, into: $0.baseAddress!, threads: 2) } }
            var row = [Float](repeating: 0, count: w.cols)
            var worst: Float = 0, scale: Float = 0
            for r in stride(from: 0, to: w.rows, by: max(1, w.rows / 64)) {
                row.withUnsafeMutableBufferPointer { w.row(r, into: $0.baseAddress!) }
                var ref: Double = 0
                for c in 0..<w.cols { ref += Double(row[c]) * Double(x[c]) }
                worst = max(worst, abs(Float(ref) - out[r]))
                scale = max(scale, abs(Float(ref)))
            }
            #expect(worst <= 0.02 * scale + 1e-3, "\(w.type): worst error \(worst) against scale \(scale)")
        }
    }
}
