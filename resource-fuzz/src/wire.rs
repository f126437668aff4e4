//! Toil's wire form (`JTRES_…` values).

use resource_core::wire;

/// Decoding never panics; what decodes encodes to what Python's `json.dumps` prints for it, and
/// that decodes back to the same resource.
pub fn wire(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(resource) = wire::decode(&text) else {
        return;
    };
    let encoded = wire::encode(&resource);
    let fields = [
        resource.name.as_str(),
        resource.path_hash.as_str(),
        resource.url.as_str(),
        resource.content_hash.as_str(),
    ];
    let expected = format!(
        "{}:[{}]",
        resource.kind.toil_class(),
        fields.map(json_dumps).join(", ")
    );
    assert_eq!(encoded, expected, "the encoding of {text:?}");
    let again = wire::decode(&encoded).map_err(|error| error.to_string());
    assert_eq!(again.as_ref(), Ok(&resource), "decoding {encoded:?}");
}

/// Python's `json.dumps(text)` (`ensure_ascii=True`), written independently of the encoder
/// under test: `serde_json`'s escaping, then every character outside printable ASCII as
/// `\uXXXX` (UTF-16 units, lower-case hex), as Python's `ESCAPE_ASCII` does.
fn json_dumps(text: &str) -> String {
    let escaped = serde_json::to_string(text).unwrap_or_default();
    let mut out = String::with_capacity(escaped.len());
    for ch in escaped.chars() {
        if (' '..='~').contains(&ch) {
            out.push(ch);
        } else {
            for unit in ch.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}
