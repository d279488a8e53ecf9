//! Strict base64url (RFC 4648 §5 without padding, RFC 7515 §2): one spelling per byte string.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes base64url strictly: no padding, no `+` or `/`, no whitespace, no non-zero trailing
/// bits, so that each token has exactly one encoding (caches and replay checks keyed on the text
/// can't be fooled by a second spelling).
pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_decodes() {
        assert_eq!(decode("c2k").as_deref(), Some(&b"si"[..]));
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
        // Two non-zero trailing bits: "c2l" is not a spelling of any byte string.
        for other in [
            "c2l", "c2k=", "c2k==", "c2+k", "c2/k", " c2k", "c2k\n", "c", "c2ln=",
        ] {
            assert_eq!(decode(other), None, "{other:?}");
        }
    }
}
