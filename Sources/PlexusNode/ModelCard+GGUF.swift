import PlexusCore
import PlexusEngine
import PlexusLedger

extension ModelCard {
    /// A card describing a GGUF file from its own metadata: architecture, context
    /// length, quantization (llama.cpp's `general.file_type`, else the most common
    /// type of its matrices), capabilities (chat when it carries a chat template).
    /// The licence defaults to `general.license`; a file that names none needs one.
    public static func describing(_ file: GGUFFile, weightsHash: Hash256, id: String, license: String?, creator: Address,
                                  royaltyBps: UInt16) throws -> ModelCard {
        let m = file.metadata
        guard let arch = m["general.architecture"]?.string, !arch.isEmpty else {
            throw PlexusError(.badModel, "general.architecture is missing: not a model file")
        }
        guard let context = m[arch + ".context_length"]?.int, (1...Int(UInt32.max)).contains(context) else {
            throw PlexusError(.badModel, "\(arch).context_length is missing or out of range")
        }
        guard let license = license ?? m["general.license"]?.string, !license.isEmpty else {
            throw PlexusError(.malformed, "the file names no licence (general.license): give one with --license")
        }
        var capabilities = ["completion"]
        if m["tokenizer.chat_template"]?.string != nil { capabilities.insert("chat", at: 0) }
        return ModelCard(id: id, weightsHash: weightsHash, architecture: arch, quantization: quantization(of: file),
                         contextLength: UInt32(context), license: license, capabilities: capabilities, creator: creator,
                         royaltyBps: royaltyBps)
    }

    /// llama.cpp's names for `general.file_type`.
    static let fileTypes: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
        13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
    ]

    static func quantization(of file: GGUFFile) -> String {
        if let t = file.metadata["general.file_type"]?.int, let name = fileTypes[t] { return name }
        // The type holding the most weights among the matrices (norms are F32 whatever the file).
        var bytes: [String: Int] = [:]
        for t in file.tensors where t.shape.count >= 2 {
            bytes[t.type.map { "\($0)".uppercased() } ?? "type \(t.typeCode)", default: 0] += t.byteCount
        }
        return bytes.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key ?? "unknown"
    }

    /// The default model's card (SmolLM2-135M-Instruct, Q4_1, as `plexus models pull`
    /// fetches it), as a development chain lists it from genesis.
    public static func defaultModel(creator: Address, royaltyBps: UInt16 = 200) throws -> ModelCard {
        ModelCard(id: ModelStore.smolLM2.name, weightsHash: try Hash256(hex: ModelStore.smolLM2.sha256), architecture: "llama",
                  quantization: "Q4_1", contextLength: 8192, license: "apache-2.0", capabilities: ["chat", "completion"],
                  creator: creator, royaltyBps: royaltyBps)
    }
}
