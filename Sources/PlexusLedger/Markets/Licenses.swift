/// What a licence lets its user do, by use class — as the Data Provenance Initiative classes
/// licences: commercial use, non-commercial use, academic (research) use. A licence that allows
/// commercial use allows the others; one unknown here allows nothing that a caller can rely on.
public enum Licenses {
    public enum Use: String, Sendable, CaseIterable, Codable {
        case commercial
        case nonCommercial = "non-commercial"
        case academic
    }

    static let commercial: Set<String> = [
        "mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "isc", "zlib", "unlicense", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
        "mpl-2.0", "lgpl-3.0", "gpl-3.0", "agpl-3.0", "odc-by", "odbl", "pddl", "openrail", "openrail++", "bigscience-openrail-m",
        "creativeml-openrail-m", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "gemma",
    ]
    static let nonCommercial: Set<String> = ["cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0"]
    static let academic: Set<String> = ["research-only", "academic-only"]

    /// The uses `license` (an SPDX id or a model hub's licence name, any case) allows.
    public static func uses(_ license: String) -> Set<Use> {
        let id = license.lowercased()
        if commercial.contains(id) { return Set(Use.allCases) }
        if nonCommercial.contains(id) { return [.nonCommercial, .academic] }
        if academic.contains(id) { return [.academic] }
        return []
    }
}
