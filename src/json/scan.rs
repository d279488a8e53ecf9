//! The structure of a JSON object read by a byte scan: its members, and duplicate names at any
//! depth.

use std::borrow::Cow;

use super::MemberList;

/// The members of a JSON object text: names (unescaped) and raw value slices, in order, and a
/// mask of the first 64 members whose value is a plain string (quoted, with no escape and no
/// control character: its text between the quotes is its value). `None` when the text is not an
/// object in structure: an unclosed string or container, a missing colon or comma, anything after
/// the closing brace.
pub(super) fn scan_members(text: &str) -> Option<(MemberList<'_>, u64)> {
    let bytes = text.as_bytes();
    let mut members = MemberList::with_capacity(12);
    let mut plain_strings = 0u64;
    let mut i = skip_whitespace(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_whitespace(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return (skip_whitespace(bytes, i + 1) == bytes.len()).then_some((members, 0));
    }
    loop {
        // A name.
        let (end, plain) = string_end(bytes, i)?;
        let quoted = &text[i..end];
        let name = if plain {
            Cow::Borrowed(&quoted[1..quoted.len() - 1])
        } else {
            Cow::Owned(serde_json::from_str::<String>(quoted).ok()?)
        };
        i = skip_whitespace(bytes, end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        // Its value.
        let start = skip_whitespace(bytes, i + 1);
        let end = if bytes.get(start) == Some(&b'"') {
            let (end, plain) = string_end(bytes, start)?;
            if plain && members.len() < 64 {
                plain_strings |= 1 << members.len();
            }
            end
        } else {
            value_end(bytes, start)?
        };
        members.push((name, &text[start..end]));
        i = skip_whitespace(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_whitespace(bytes, i + 1),
            Some(b'}') => {
                return (skip_whitespace(bytes, i + 1) == bytes.len())
                    .then_some((members, plain_strings));
            }
            _ => return None,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string starting at `start`, and whether it is plain:
/// no escape and no control character. `None` when `start` is not a quote or the string is not
/// closed.
fn string_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut plain = true;
    let mut i = start + 1;
    loop {
        i = skip_plain(bytes, i);
        match bytes.get(i)? {
            b'"' => return Some((i + 1, plain)),
            b'\\' => {
                plain = false;
                i += 2;
            }
            // A control character: not JSON, which the full read refuses; not plain meanwhile.
            _ => {
                plain = false;
                i += 1;
            }
        }
    }
}

/// The index of the first quote, backslash or control character at or after `i`, or
/// `bytes.len()`. Eight bytes at a time, with the usual bit tricks for finding a byte in a word:
/// a string's text is most of a payload, and this is most of the scan's time (measured: a byte
/// at a time took 3–4 instructions a byte).
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of each byte that is zero. A false positive can only sit above a true one
    // (a borrow runs upwards), so the lowest bit set is exact.
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let special = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            // Bytes below 0x20 (bytes of 0x80 and more have their high bit set, so `!word`
            // excludes them).
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if special != 0 {
            return i + special.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&byte) = bytes.get(i) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// The end of the value starting at `start`: a string, a container (skipped with its nesting,
/// iteratively), or a literal or number (its run of characters, checked by whoever reads it).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let length = bytes[start..]
                .iter()
                .take_while(
                    |b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.'),
                )
                .count();
            (length > 0).then_some(start + length)
        }
    }
}

/// Whether two members share a name. Small objects compare each pair (no allocation); larger
/// ones sort the names.
pub(super) fn has_duplicate_name(members: &[(Cow<'_, str>, &str)]) -> bool {
    if members.len() <= 32 {
        return members
            .iter()
            .enumerate()
            .any(|(i, (name, _))| members[i + 1..].iter().any(|(other, _)| other == name));
    }
    let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
}

/// Whether any object inside `json` (valid JSON, as the parser already checked) has a member name
/// twice. One pass with an explicit stack, so that depth costs heap, not call stack.
pub(super) fn has_nested_duplicate(json: &str) -> bool {
    /// An open container: the names of an object's members so far, or `None` for an array.
    type Open<'a> = Option<Vec<Cow<'a, str>>>;
    let bytes = json.as_bytes();
    let mut open: Vec<Open<'_>> = Vec::new();
    // Whether the next string is a member name (right after `{` or after `,` inside an object).
    let mut name_next = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                open.push(Some(Vec::new()));
                name_next = true;
            }
            b'[' => {
                open.push(None);
                name_next = false;
            }
            b'}' | b']' => {
                if let Some(Some(mut names)) = open.pop() {
                    names.sort_unstable();
                    if names.windows(2).any(|pair| pair[0] == pair[1]) {
                        return true;
                    }
                }
                name_next = false;
            }
            b',' => name_next = matches!(open.last(), Some(Some(_))),
            b'"' => {
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        escaped = true;
                        i += 1;
                    }
                    i += 1;
                }
                if name_next && let Some(Some(names)) = open.last_mut() {
                    let quoted = &json[start..=i.min(json.len() - 1)];
                    let name = if escaped {
                        // `\u0061` and `a` are the same name.
                        match serde_json::from_str::<String>(quoted) {
                            Ok(name) => Cow::Owned(name),
                            Err(_) => return true,
                        }
                    } else {
                        Cow::Borrowed(&quoted[1..quoted.len() - 1])
                    };
                    names.push(name);
                }
                name_next = false;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{JsonObject, ObjectError};

    #[test]
    fn nested_duplicate_scan_is_iterative() {
        let depth = 100_000;
        let text = format!(
            "{{\"a\":{}{{\"x\":1,\"x\":2}}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(has_nested_duplicate(&text));
    }

    #[test]
    fn the_scan_finds_what_serde_finds_in_json() {
        for text in [
            "{}",
            " { } ",
            r#"{"iss":"https://a/","sub":"u","aud":["x","y"],"exp":1700000000,"nbf":-1.5e3}"#,
            r#"{ "a" : { "b" : [1, {"c": "}]\"{["}, [] ] } , "d":null,"e":true,"f":false }"#,
            r#"{"\u0069ss":"x","k\"ey":"v\\","emoji":"\ud83d\ude00","n":-0.0e-1}"#,
            "{\"a\":\n\t1\r,\"b\":\"\"}",
            r#"{"cnf":{"jkt":"abc"},"scope":"a b","realm_access":{"roles":["r"]}}"#,
        ] {
            let parsed = JsonObject::parse(text).unwrap();
            let scanned = JsonObject::scan(text).unwrap();
            assert_eq!(parsed.members, scanned.members, "{text}");
            assert_eq!(parsed.known, scanned.known, "{text}");
            assert_same_strings(&parsed, &scanned, text);
            assert!(scanned.is_json());
        }
        // Duplicates are found by both, at any depth and through escapes.
        for text in [
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"x":1,"\u0078":2}"#,
            r#"{"a":{"r":1,"r":2}}"#,
        ] {
            assert_eq!(
                JsonObject::scan(text).unwrap_err(),
                ObjectError::DuplicateMember
            );
        }
    }

    #[test]
    fn the_scan_refuses_what_is_not_an_object_in_structure() {
        for text in [
            "",
            "[]",
            "1",
            "\"x\"",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{a:1}",
            "{\"a\":\"x}",
            "{\"a\":[1,2}",
            "{\"a\":{\"b\":1}",
            "{\"a\\u00\":1}",
        ] {
            assert!(JsonObject::scan(text).is_err(), "{text}");
        }
        // Structure right, a value wrong: found by the scan, refused by the full read.
        for text in [
            r#"{"a":tru}"#,
            r#"{"a":01}"#,
            "{\"a\":\"x\u{1}\"}",
            r#"{"a":[1,,2]}"#,
        ] {
            let object = JsonObject::scan(text).unwrap();
            assert!(!object.is_json(), "{text}");
            assert!(object.deserialize::<serde_json::Value>().is_err(), "{text}");
        }
    }

    #[test]
    fn the_scan_agrees_with_serde_on_mutated_payloads_and_never_panics() {
        let seed = r#"{"iss":"https://a/","aud":["x","y"],"n":{"k":[1,{"j":"\u00e9\"}"}]},"exp":17,"é":"ü"}"#;
        let pieces = [
            "{", "}", "[", "]", "\"", "\\", ":", ",", " ", "1", "é", "\"a\"", "\\u0061",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100_000 {
            let mut text = seed.to_owned();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..=text.len());
                if !text.is_char_boundary(at) {
                    continue;
                }
                if rng.bool() {
                    text.insert_str(at, pieces[rng.usize(0..pieces.len())]);
                } else if let Some(c) = text[at..].chars().next() {
                    text.replace_range(at..at + c.len_utf8(), "");
                }
            }
            let scanned = JsonObject::scan(&text);
            match JsonObject::parse(&text) {
                Ok(parsed) => {
                    let scanned = scanned.unwrap_or_else(|_| panic!("{text}"));
                    assert_eq!(parsed.members, scanned.members, "{text}");
                    assert_same_strings(&parsed, &scanned, &text);
                }
                // Not JSON: the scan may find a structure, but the full read refuses it.
                Err(ObjectError::Malformed) => {
                    if let Ok(scanned) = scanned {
                        assert!(!scanned.is_json(), "{text}");
                    }
                }
                Err(ObjectError::DuplicateMember) => {
                    assert_eq!(scanned.unwrap_err(), ObjectError::DuplicateMember, "{text}");
                }
            }
        }
    }

    /// Every member read as a string the same way, whether its plainness came from the scan or
    /// from looking at its bytes.
    fn assert_same_strings(parsed: &JsonObject<'_>, scanned: &JsonObject<'_>, text: &str) {
        for (name, _) in &parsed.members {
            assert_eq!(
                parsed.get_str(name),
                scanned.get_str(name),
                "{name} in {text}"
            );
        }
    }

    #[test]
    fn plain_strings_are_marked_exactly() {
        let text = "{\"a\":\"plain é\",\"b\":\"tab\t\",\"c\":\"esc\\\\\",\"d\":1,\"e\":\"\"}";
        let (members, plain) = scan_members(text).unwrap();
        assert_eq!(members.len(), 5);
        // `a` and `e` only: `b` has a control character, `c` an escape, `d` is no string.
        assert_eq!(plain, 0b10001, "{text}");
    }

    #[test]
    fn skip_plain_finds_the_first_special_byte_at_any_offset() {
        let naive = |bytes: &[u8], i: usize| {
            bytes[i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map_or(bytes.len(), |at| i + at)
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xe9, 0xff, b'!', b'#',
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.u8(..) < 200 {
                        b'x'
                    } else {
                        alphabet[rng.usize(0..alphabet.len())]
                    }
                })
                .collect();
            let start = rng.usize(0..=len);
            assert_eq!(
                skip_plain(&bytes, start),
                naive(&bytes, start),
                "{bytes:?} from {start}"
            );
        }
    }
}
