//! Per-example labels as one character each, so a run record keeps every dev example's predicted
//! label (and the split's gold labels) in about one byte an example: label `k` is the `k`-th
//! character of `0-9`, `a-z`, `A-Z` (62 labels; every task of the suite has at most 3).

const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The labels as a string, `None` when one is beyond the alphabet (such a run keeps only counts).
pub fn encode(labels: impl IntoIterator<Item = usize>) -> Option<String> {
    labels.into_iter().map(|label| ALPHABET.get(label).map(|&byte| byte as char)).collect()
}

/// The labels of [`encode`]'s string, `None` when a character is not one it writes.
pub fn decode(text: &str) -> Option<Vec<usize>> {
    text.bytes().map(|byte| ALPHABET.iter().position(|&known| known == byte)).collect()
}

/// The first 16 hex digits of the sha256 of `ids`, one per line: the identity of a split's examples
/// in their order.
pub fn ids_sha256<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_refuse_what_they_cannot_hold() {
        let labels = vec![0, 1, 2, 9, 10, 35, 36, 61];
        let text = encode(labels.clone()).unwrap();
        assert_eq!(text, "0129azAZ");
        assert_eq!(decode(&text), Some(labels));
        assert_eq!(encode([62]), None);
        assert_eq!(decode("01-"), None);
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(ids_sha256(["a", "b"]).len(), 16);
        assert_ne!(ids_sha256(["a", "b"]), ids_sha256(["b", "a"]));
        assert_ne!(ids_sha256(["ab"]), ids_sha256(["a", "b"]));
    }
}
