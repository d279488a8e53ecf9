//! Strict base64url (RFC 4648 §5 without padding, RFC 7515 §2): one spelling per byte string.

use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Decodes base64url strictly: no padding, no `+` or `/`, no whitespace, no non-zero trailing
/// bits, so that each token has exactly one encoding (caches and replay checks keyed on the text
/// can't be fooled by a second spelling).
///
/// With `base64-simd`, which is as strict (the tests below and the Wycheproof vectors hold it to
/// that) and decodes with vector instructions: the payload is most of what a miss decodes, and
/// the `base64` crate took ~7 instructions a byte (measured).
pub(crate) fn decode(input: &(impl AsRef<[u8]> + ?Sized)) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(input.as_ref())
        .ok()
}

/// [`decode`] into `buffer` when the bytes fit, else onto the heap: a signature is read once and
/// dropped, so a miss decodes it into a buffer of the caller's stack frame instead of allocating
/// (measured: one allocation and free of the dozen a miss makes). The buffer is borrowed, not
/// returned, so that it is never moved.
///
/// The buffer may be uninitialized: only the decoded bytes are written and returned.
pub(crate) fn decode_into<'a>(
    input: &[u8],
    buffer: &'a mut [MaybeUninit<u8>],
) -> Option<Cow<'a, [u8]>> {
    let engine = base64_simd::URL_SAFE_NO_PAD;
    let length = engine.decoded_length(input).ok()?;
    match buffer.get_mut(..length) {
        Some(room) => {
            let decoded = engine
                .decode(input, base64_simd::Out::from_uninit_slice(room))
                .ok()?;
            Some(Cow::Borrowed(decoded))
        }
        None => decode(input).map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_decodes() {
        assert_eq!(decode("c2k").as_deref(), Some(&b"si"[..]));
        assert_eq!(
            decode_into(b"c2k", &mut [MaybeUninit::uninit(); 8]).as_deref(),
            Some(&b"si"[..])
        );
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
        // Two non-zero trailing bits: "c2l" is not a spelling of any byte string.
        for other in [
            "c2l", "c2k=", "c2k==", "c2+k", "c2/k", " c2k", "c2k\n", "c", "c2ln=",
        ] {
            assert_eq!(decode(other), None, "{other:?}");
            assert_eq!(
                decode_into(other.as_bytes(), &mut [MaybeUninit::uninit(); 8]),
                None,
                "{other:?}"
            );
            assert_eq!(decode_into(other.as_bytes(), &mut []), None, "{other:?}");
        }
    }

    #[test]
    fn bytes_longer_than_the_buffer_decode_onto_the_heap() {
        use base64::Engine as _;
        // RSA-8192's 1,024 bytes: twice the room a miss gives a signature.
        let bytes: Vec<u8> = (0..1024u32).map(|n| (n * 7 % 251) as u8).collect();
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        let mut buffer = [MaybeUninit::uninit(); 512];
        let decoded = decode_into(text.as_bytes(), &mut buffer).expect("valid base64url");
        assert!(matches!(decoded, Cow::Owned(_)));
        assert_eq!(&decoded[..], &bytes[..]);
        // 684 characters are 513 bytes; 680 are 510.
        let over = decode_into(&text.as_bytes()[..684], &mut buffer).expect("valid base64url");
        assert!(matches!(over, Cow::Owned(_)));
        assert_eq!(&over[..], &bytes[..513]);
        let fits = decode_into(&text.as_bytes()[..680], &mut buffer).expect("valid base64url");
        assert!(matches!(fits, Cow::Borrowed(_)));
        assert_eq!(&fits[..], &bytes[..510]);
    }
}
