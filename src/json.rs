//! A JSON object read once, strictly: member names unique, values kept as raw slices so that each
//! member is decoded only when it is asked for.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::claims::{DateOutOfRange, NumericDate};

mod scan;

use scan::{has_duplicate_name, has_nested_duplicate, scan_members};

/// Why a JSON object was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not valid JSON, not an object, or nested deeper than serde_json's recursion limit.
    Malformed,
    /// A member name appears twice. RFC 7515 §4 and RFC 7519 §4 let a parser reject this, and we
    /// do: two readers could otherwise disagree about which value counts.
    DuplicateMember,
}

/// The member names this crate reads, found once when an object is read so that asking for one
/// is an array index, not a search.
const KNOWN_NAMES: [&str; 17] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "cnf", "alg", "kid", "typ",
    "crit", "b64", "enc", "cty",
];

/// The slot of `name` in [`KNOWN_NAMES`]. The name (3 to 5 bytes) is read as one integer and
/// compared with the known ones' integers, which the compiler makes a binary search (measured:
/// a `match` on the text compared the 3-byte names one after another, ~36 instructions a call).
#[inline(always)]
fn known_slot(name: &str) -> Option<usize> {
    /// The bytes of a name of up to 7 bytes, and its length in the top byte.
    const fn word(name: &[u8]) -> u64 {
        let mut word = (name.len() as u64) << 56;
        let mut i = 0;
        while i < name.len() {
            word |= (name[i] as u64) << (8 * i);
            i += 1;
        }
        word
    }
    const WORDS: [u64; KNOWN_NAMES.len()] = {
        let mut words = [0; KNOWN_NAMES.len()];
        let mut i = 0;
        while i < words.len() {
            words[i] = word(KNOWN_NAMES[i].as_bytes());
            i += 1;
        }
        words
    };
    let key = match *name.as_bytes() {
        [a, b, c] => u64::from_le_bytes([a, b, c, 0, 0, 0, 0, 3]),
        [a, b, c, d] => u64::from_le_bytes([a, b, c, d, 0, 0, 0, 4]),
        [a, b, c, d, e] => u64::from_le_bytes([a, b, c, d, e, 0, 0, 5]),
        _ => return None,
    };
    // Unrolled into comparisons with constants, which the compiler turns into a switch.
    macro_rules! find {
        ($($slot:literal)*) => {
            $(if key == WORDS[$slot] {
                return Some($slot);
            })*
        };
    }
    find!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    None
}

/// The members as read. (Held inline in a `SmallVec`, they cost more in copies of the list,
/// moved out of serde and into the object, than the one allocation saved: measured.)
type MemberList<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// The members of a JSON object, in document order, each name once.
#[derive(Debug)]
pub(crate) struct JsonObject<'a> {
    text: &'a str,
    members: MemberList<'a>,
    /// For each of [`KNOWN_NAMES`], its member's index plus one; 0 when absent.
    known: [usize; KNOWN_NAMES.len()],
    /// Bit `i` set when member `i` is known to be a plain string (see [`scan_members`]), so that
    /// [`get_str`](Self::get_str) need not look at its bytes again. Empty after
    /// [`parse`](Self::parse).
    plain_strings: u64,
}

impl<'a> JsonObject<'a> {
    /// Reads `text`, which must be one JSON object, with serde_json: every byte is checked.
    pub(crate) fn parse(text: &'a str) -> Result<Self, ObjectError> {
        let Members(members) = serde_json::from_str(text).map_err(|_| ObjectError::Malformed)?;
        Self::index(text, members, 0)
    }

    /// Finds the members of `text` with a byte scan that checks the object's structure (braces,
    /// quotes, colons, commas) but not every value's syntax: for a payload that
    /// [`deserialize`](Self::deserialize) then reads in full, which refuses anything that is not
    /// JSON. On JSON text it finds exactly what [`parse`](Self::parse) finds. (Hand-written
    /// because a token's payload is otherwise read twice by serde: measured, the scan costs a
    /// third of serde's pass.)
    pub(crate) fn scan(text: &'a str) -> Result<Self, ObjectError> {
        let (members, plain_strings) = scan_members(text).ok_or(ObjectError::Malformed)?;
        Self::index(text, members, plain_strings)
    }

    fn index(
        text: &'a str,
        members: MemberList<'a>,
        plain_strings: u64,
    ) -> Result<Self, ObjectError> {
        let mut known = [0usize; KNOWN_NAMES.len()];
        // Names outside the known ones, checked for repeats below.
        let mut others = 0usize;
        for (index, (name, _)) in members.iter().enumerate() {
            match known_slot(name) {
                Some(slot) if known[slot] != 0 => return Err(ObjectError::DuplicateMember),
                Some(slot) => known[slot] = index + 1,
                None => others += 1,
            }
        }
        if others > 1 && has_duplicate_name(&members) {
            return Err(ObjectError::DuplicateMember);
        }
        // Nested objects (`realm_access`, `cnf` …) are held to the same rule, so that a claim deep
        // inside has one meaning for every reader. Only values that can hold an object are scanned.
        if members.iter().any(|(_, value)| {
            matches!(value.as_bytes().first(), Some(b'{' | b'[')) && has_nested_duplicate(value)
        }) {
            return Err(ObjectError::DuplicateMember);
        }
        Ok(Self {
            text,
            members,
            known,
            plain_strings,
        })
    }

    /// Decodes the whole object into `T`. The text is known to be one object with unique member
    /// names at every depth, so serde reads exactly the members found here.
    pub(crate) fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.text)
    }

    /// Whether the whole text is JSON (for an object read by [`scan`](Self::scan), whose values
    /// were not all checked).
    pub(crate) fn is_json(&self) -> bool {
        serde_json::from_str::<de::IgnoredAny>(self.text).is_ok()
    }

    /// The raw value of a member, if present.
    #[inline(always)]
    pub(crate) fn raw(&self, name: &str) -> Option<&'a str> {
        self.position(name).map(|index| self.members[index].1)
    }

    // Inlined, so that a literal name's slot is found at compile time.
    #[inline(always)]
    fn position(&self, name: &str) -> Option<usize> {
        match known_slot(name) {
            Some(slot) => self.known[slot].checked_sub(1),
            None => self.members.iter().position(|(key, _)| key == name),
        }
    }

    /// Whether a member is present with a value other than `null`.
    #[inline]
    pub(crate) fn has(&self, name: &str) -> bool {
        self.raw(name).is_some_and(|raw| raw != "null")
    }

    /// Decodes a member. `Ok(None)` when absent; `Err` when present but of the wrong type
    /// (including `null`: a member that is there must be meaningful).
    pub(crate) fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ()> {
        match self.raw(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str(raw).map(Some).map_err(|_| ()),
        }
    }

    /// Decodes a string member without copying it when it has no escapes.
    #[inline(always)]
    pub(crate) fn get_str(&self, name: &str) -> Result<Option<Cow<'a, str>>, ()> {
        let Some(index) = self.position(name) else {
            return Ok(None);
        };
        let raw = self.members[index].1;
        if index < 64 && self.plain_strings & (1 << index) != 0 {
            return Ok(Some(Cow::Borrowed(&raw[1..raw.len() - 1])));
        }
        string_value(raw)
    }

    /// Reads a `NumericDate` member: plain integers directly, any other number through serde,
    /// anything out of [`NumericDate`]'s range refused.
    #[inline(always)]
    pub(crate) fn get_date(&self, name: &str) -> Result<Option<NumericDate>, DateError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        let date = match plain_integer(raw) {
            Some(seconds) => NumericDate::from_seconds(seconds),
            None => number_date(raw)?,
        };
        date.map(Some)
            .map_err(|DateOutOfRange| DateError::OutOfRange)
    }
}

/// A `NumericDate` that is not a plain integer, read through serde (out of line: the fast paths
/// above are inlined where a literal name makes the member's slot a constant).
#[inline(never)]
fn number_date(raw: &str) -> Result<Result<NumericDate, DateOutOfRange>, DateError> {
    let number: serde_json::Number =
        serde_json::from_str(raw).map_err(|_| DateError::NotANumber)?;
    Ok(match (number.as_i64(), number.as_f64()) {
        (Some(seconds), _) => NumericDate::from_seconds(seconds),
        // Integers past i64 (u64 or arbitrary) are out of range whatever their f64.
        (None, Some(seconds)) if !number.is_u64() => NumericDate::from_f64(seconds),
        _ => Err(DateOutOfRange),
    })
}

/// A string member not known to be plain: taken as it is when it is, decoded by serde when it
/// has escapes (out of line, as [`number_date`]).
#[inline(never)]
fn string_value(raw: &str) -> Result<Option<Cow<'_, str>>, ()> {
    if let Some(plain) = plain_string(raw) {
        return Ok(Some(Cow::Borrowed(plain)));
    }
    let BorrowedStr(value) = serde_json::from_str(raw).map_err(|_| ())?;
    Ok(Some(value))
}

/// Why a `NumericDate` member was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateError {
    /// Not a JSON number (a string, `null` …).
    NotANumber,
    /// A number outside [`NumericDate::MIN`] and [`NumericDate::MAX`].
    OutOfRange,
}

/// The text of a raw JSON string value that has no escape (and no control character, which JSON
/// forbids unescaped), without its quotes. Such a value, already delimited by the parser, means
/// exactly its text; anything else is left to serde.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    inner
        .bytes()
        .all(|byte| byte != b'\\' && byte >= 0x20)
        .then_some(inner)
}

/// A raw JSON number that is a plain integer fitting an `i64` (at most 18 digits, so that it can't
/// overflow), read without serde.
fn plain_integer(raw: &str) -> Option<i64> {
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, raw),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    // Read as the digits are checked: at most 18 digits can't overflow.
    let mut value = 0i64;
    for byte in digits.bytes() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(if negative { -value } else { value })
}

/// The members in document order, duplicates included (they are detected afterwards).
struct Members<'a>(MemberList<'a>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = MemberList::with_capacity(12);
                while let Some(BorrowedStr(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value.get()));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A JSON string, borrowed from the input unless it had escapes.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;

        impl<'de> Visitor<'de> for StrVisitor {
            type Value = BorrowedStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(StrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_by_name() {
        let object = JsonObject::parse(r#"{"b":2,"a":"x","c":null}"#).unwrap();
        assert_eq!(object.get::<u32>("b"), Ok(Some(2)));
        assert_eq!(object.get_str("a").unwrap().as_deref(), Some("x"));
        assert_eq!(object.get::<u32>("missing"), Ok(None));
        assert!(object.has("a"));
        assert!(!object.has("c"));
        assert!(!object.has("missing"));
    }

    #[test]
    fn wrong_member_type_is_an_error_not_a_default() {
        let object = JsonObject::parse(r#"{"exp":"1700000000","n":null}"#).unwrap();
        assert_eq!(object.get::<i64>("exp"), Err(()));
        assert_eq!(object.get::<i64>("n"), Err(()));
    }

    #[test]
    fn rejects_duplicate_member_names() {
        assert_eq!(
            JsonObject::parse(r#"{"alg":"RS256","alg":"none"}"#).unwrap_err(),
            ObjectError::DuplicateMember
        );
        // The same name spelt with an escape is still the same name.
        assert_eq!(
            JsonObject::parse(r#"{"alg":"RS256","\u0061lg":"none"}"#).unwrap_err(),
            ObjectError::DuplicateMember
        );
    }

    #[test]
    fn rejects_duplicate_member_names_at_any_depth() {
        for text in [
            r#"{"realm_access":{"roles":["user"],"roles":["admin"]}}"#,
            r#"{"a":[{"b":1},{"c":{"d":1,"\u0064":2}}]}"#,
            r#"{"a":[[[{"x":1,"y":{"z":1},"x":2}]]]}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
        ] {
            assert_eq!(
                JsonObject::parse(text).unwrap_err(),
                ObjectError::DuplicateMember,
                "{text}"
            );
        }
        // The same name in sibling or nested objects is not a duplicate; nor are strings that
        // look like names inside arrays or values.
        for text in [
            r#"{"a":{"x":1},"b":{"x":1,"y":{"x":[{"x":2}]}}}"#,
            r#"{"a":["x","x"],"b":{"k":"x","l":"x"}}"#,
            r#"{"a":{"s":"}{\"x\":1,\"x\":2","t":"[,\"x\""}}"#,
            r#"{"a":{}, "b":[], "c":[{}], "d":{"e":{}}}"#,
        ] {
            assert!(JsonObject::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        for text in ["[]", "1", "\"x\"", "{", "{}{}", "{\"a\":1} x", "", "null"] {
            assert_eq!(
                JsonObject::parse(text).unwrap_err(),
                ObjectError::Malformed,
                "{text}"
            );
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Raw member values are skipped without recursion; decoding one is bounded by
        // serde_json's recursion limit.
        let text = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let object = JsonObject::parse(&text).expect("skipping nested arrays is iterative");
        assert!(object.get::<serde_json::Value>("a").is_err());
        let deep_top = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(JsonObject::parse(&deep_top).is_err());
    }

    #[test]
    fn fast_paths_read_what_serde_would() {
        let text = r#"{"a":"plain","b":"esc\u0061ped","c":1700000000,"d":-5,"e":1.5e3,"f":"1","g":12345678901234567890,"h":null,"i":007}"#;
        let object = JsonObject::parse(text);
        // A leading zero is not JSON: the whole object is refused before any member is read.
        assert!(object.is_err());
        let text = text.replace(r#","i":007"#, "");
        let object = JsonObject::parse(&text).unwrap();
        assert!(matches!(
            object.get_str("a"),
            Ok(Some(Cow::Borrowed("plain")))
        ));
        assert_eq!(object.get_str("b").unwrap().as_deref(), Some("escaped"));
        assert_eq!(object.get_str("c"), Err(()));
        assert_eq!(object.get_str("h"), Err(()));
        let date = |name| object.get_date(name);
        assert_eq!(date("c"), Ok(Some(NumericDate(1_700_000_000))));
        assert_eq!(date("d"), Ok(Some(NumericDate(-5))));
        // Not plain integers: serde reads the number, as it would without the fast path.
        assert_eq!(date("e"), Ok(Some(NumericDate(1500))));
        assert_eq!(date("f"), Err(DateError::NotANumber));
        assert_eq!(date("g"), Err(DateError::OutOfRange));
        assert_eq!(date("h"), Err(DateError::NotANumber));
        assert_eq!(date("missing"), Ok(None));
        for raw in [
            "0",
            "-0",
            "123",
            "999999999999999999",
            "-999999999999999999",
        ] {
            // As serde reads it (`-0` is a float there, which is 0).
            let serde = serde_json::from_str::<f64>(raw).unwrap();
            assert_eq!(plain_integer(raw).map(|v| v as f64), Some(serde), "{raw}");
        }
        // A raw control character is not JSON: refused when the object is read, and never
        // passed through by the fast path.
        assert!(JsonObject::parse("{\"a\":\"x\u{1}y\"}").is_err());
        assert_eq!(plain_string("\"x\u{1}y\""), None);
        assert_eq!(plain_string("\"x\\\"y\""), None);
        assert_eq!(plain_string("\"xy\""), Some("xy"));
        for raw in ["", "-", "1e3", "1.0", "+1", "9999999999999999999", " 1"] {
            assert_eq!(plain_integer(raw), None, "{raw}");
        }
    }

    #[test]
    fn dates_out_of_range_are_refused_on_every_path() {
        for raw in [
            "253402300800",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e300",
            "-1e300",
            "2.6e11",
            "-62135596801",
        ] {
            let text = format!(r#"{{"exp":{raw}}}"#);
            let object = JsonObject::parse(&text).unwrap();
            assert_eq!(object.get_date("exp"), Err(DateError::OutOfRange), "{raw}");
        }
        let object = JsonObject::parse(r#"{"exp":253402300799,"nbf":1.5}"#).unwrap();
        assert_eq!(object.get_date("exp"), Ok(Some(NumericDate::MAX)));
        assert_eq!(object.get_date("nbf"), Ok(Some(NumericDate(1))));
    }

    #[test]
    fn known_slots_are_exactly_the_known_names() {
        for (slot, name) in KNOWN_NAMES.iter().enumerate() {
            assert_eq!(known_slot(name), Some(slot), "{name}");
        }
        for other in [
            "", "i", "is", "iss\0", "issx", "ISS", "Iss", "sco", "scopes", "scope ", "crits", "au",
            "exp\u{0}", "é", "ssi", "jtii", "\0\0\0",
        ] {
            assert_eq!(known_slot(other), None, "{other:?}");
        }
    }

    #[test]
    fn known_names_repeated_past_any_member_count_are_duplicates() {
        let filler: String = (0..300).map(|i| format!("\"m{i}\":{i},")).collect();
        let twice = format!(r#"{{{filler}"iss":"a","iss":"b"}}"#);
        let once = format!(r#"{{{filler}"iss":"a"}}"#);
        assert_eq!(
            JsonObject::parse(&twice).unwrap_err(),
            ObjectError::DuplicateMember
        );
        assert_eq!(
            JsonObject::scan(&twice).unwrap_err(),
            ObjectError::DuplicateMember
        );
        for object in [JsonObject::parse(&once), JsonObject::scan(&once)] {
            assert_eq!(object.unwrap().get_str("iss"), Ok(Some(Cow::Borrowed("a"))));
        }
    }

    #[test]
    fn decodes_escaped_strings() {
        let object = JsonObject::parse(r#"{"kid":"a\"b"}"#).unwrap();
        assert_eq!(object.get_str("kid").unwrap().as_deref(), Some("a\"b"));
    }
}
