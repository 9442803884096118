import Foundation
import PlexusEngine

/// Real models for tests, fetched through the same code path as `plexus models pull`.
public enum TestModels {
    /// The default model's GGUF path, pulled into the store on first use.
    public static func smolLM2() throws -> String {
        try ModelStore().pull(ModelStore.smolLM2)
    }
}
