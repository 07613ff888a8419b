//! ijson: the one I-JSON (RFC 7493) check every JSON input passes before
//! anything else reads it. It only looks: it never repairs, rounds or
//! rewrites input, and it never decides anything beyond "refuse, and why".
//!
//! The rules, each chosen so that every conforming parser (a double-based one
//! such as JavaScript's, an exact one such as Python's or Go's `json.Number`,
//! and this host's `serde_json`) reads the same document, and so computes the
//! same RFC 8785 canonical form and digest:
//!
//! * **No duplicate keys** in any object. Parsers keep the first or the last.
//! * **Numbers within ±(2^53−1)** (9007199254740991), whatever their spelling
//!   (`9007199254740993`, `18446744073709551615`, `1e19`, `1e400`): integers
//!   past that are read exactly by some parsers and rounded by others, and a
//!   double that large prints, canonically, as an integer past that.
//! * **Non-integers are exactly what a double prints back as**: the literal
//!   must have the value of what JavaScript prints (RFC 8785's form of a
//!   number) for the double it parses to (`0.1`, `4.50`, `1e-7`, `5e-324`
//!   pass; `3.141592653589793238`, `0.30000000000000001` and `1e-400` do
//!   not). More digits than a double keeps would be dropped by double-based
//!   parsers and kept by exact ones.
//! * **Valid Unicode**: UTF-8, no lone surrogate escapes, and no
//!   noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF) in keys or strings.
//!
//! Whatever fails these is meant to be sent as a string instead; each error
//! names the field path (`params.rows`, `params.tables[1]`) and what to send.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The largest magnitude every IEEE-double-based parser reads exactly, and
/// tells apart from its neighbours (RFC 7493 section 2.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Input that is not I-JSON: where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {violation}")]
pub struct IJsonError {
    /// Where: `body` for the document itself, else `params.rows`,
    /// `params.tables[1]`; unusual keys are quoted (`params."a.b"`).
    pub path: String,
    pub violation: Violation,
}

impl IJsonError {
    /// True when the input is not JSON at all (as opposed to JSON that
    /// parsers would read differently).
    pub fn is_syntax(&self) -> bool {
        matches!(self.violation, Violation::NotJson(_))
    }

    /// The same error for a document that is the value of `field`
    /// (`--params`, one chat input): `body` becomes `field`, `rows` becomes
    /// `field.rows`.
    pub fn within(self, field: &str) -> IJsonError {
        let path = if self.path == "body" {
            field.to_string()
        } else if self.path.starts_with('[') {
            format!("{field}{}", self.path)
        } else {
            format!("{field}.{}", self.path)
        };
        IJsonError { path, ..self }
    }
}

/// What is wrong, with what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("{0}")]
    NotJson(String),
    #[error("the key appears more than once in this object, and parsers disagree about which one counts; send each key once")]
    DuplicateKey,
    #[error("the number {literal} is beyond ±9007199254740991 (2^53−1), where parsers that read numbers as IEEE doubles round it and others do not; send it as a string (\"{literal}\")")]
    BeyondSafeRange { literal: String },
    #[error("the number {literal} has more precision than an IEEE double holds, so parsers that read doubles see {nearest}; send {nearest}, or the number as a string (\"{literal}\")")]
    Imprecise { literal: String, nearest: String },
    #[error("the string is not valid Unicode ({0}); send valid UTF-8, escaping a character beyond U+FFFF only as a surrogate pair")]
    InvalidString(String),
    #[error("the text contains the Unicode noncharacter U+{code_point:04X}, which I-JSON forbids; leave it out, or send the data another way (e.g. base64)")]
    Noncharacter { code_point: u32 },
}

/// Checks that `bytes` is one I-JSON document. Call it before parsing the
/// input for anything else. Linear in the input: three passes (grammar,
/// number literals, the walk), each without building a value.
pub fn check(bytes: &[u8]) -> Result<(), IJsonError> {
    let body = |violation| IJsonError {
        path: "body".into(),
        violation,
    };
    // 1. The grammar, the way serde_json always checks it (its skip does not
    //    bound nesting; the scan below does). After this, every error the
    //    walk meets is a rule of this module or a string's content.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|e| body(Violation::NotJson(e.to_string())))?;
    // 2. Each number as written: serde_json hands out only the parsed value
    //    (short of `arbitrary_precision`, which would change every `Number`
    //    in the workspace), and only the literal tells `1.00000000000000001`
    //    from `1`.
    let (first_bad_number, bad_number_at) = match scan(bytes).map_err(body)? {
        Some((index, at, violation)) => (Some((index, violation)), at),
        None => (None, 0),
    };
    // 3. The walk: keys, strings, and where each number is.
    let mut walk = Walk {
        first_bad_number,
        bad_number_at,
        ..Walk::default()
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match Node(&mut walk).deserialize(&mut de) {
        Ok(()) => match walk.first_bad_number.take() {
            // The walk met fewer numbers than the scan: never expected, so
            // refused rather than guessed at.
            Some((_, violation)) => Err(body(violation)),
            None => Ok(()),
        },
        Err(e) => {
            let violation = match (walk.found.take(), walk.first_bad_number.take()) {
                (Some(found), _) => found,
                // serde_json refused the number itself (beyond the double
                // range), rather than a string before it.
                (None, Some((index, violation)))
                    if index == walk.numbers && offset(bytes, &e) >= walk.bad_number_at =>
                {
                    violation
                }
                // serde_json decodes escapes and UTF-8 only when it reads a
                // string, so the grammar check lets lone surrogates through.
                _ => Violation::InvalidString(strip_position(&e.to_string())),
            };
            Err(IJsonError {
                path: walk.path(),
                violation,
            })
        }
    }
}

/// [`check`], then the document as a `serde_json::Value` (for inputs that
/// are JSON text inside something else: chat form fields, CLI arguments).
pub fn value(text: &str) -> Result<serde_json::Value, IJsonError> {
    check(text.as_bytes())?;
    serde_json::from_str(text).map_err(|e| IJsonError {
        path: "body".into(),
        violation: Violation::NotJson(e.to_string()),
    })
}

/// serde_json's own nesting limit: deeper input is not JSON to the host.
const MAX_DEPTH: usize = 127;

/// Over grammatical JSON: the index (in document order), byte offset and
/// violation of the first number literal that breaks a rule, if any; and the nesting
/// depth. Outside strings, a number is the only token that starts with `-`
/// or a digit, and it runs over `0-9 + - . e E`; inside, `\` escapes the
/// next byte and an unescaped `"` ends it.
fn scan(bytes: &[u8]) -> Result<Option<(usize, usize, Violation)>, Violation> {
    let (mut at, mut index, mut depth) = (0, 0, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at += 1;
                while bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Violation::NotJson(format!(
                        "nested more than {MAX_DEPTH} levels deep"
                    )));
                }
                at += 1;
            }
            b']' | b'}' => {
                depth -= 1;
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while at < bytes.len()
                    && matches!(bytes[at], b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E')
                {
                    at += 1;
                }
                let literal = std::str::from_utf8(&bytes[start..at]).expect("ASCII");
                if let Some(violation) = number(literal) {
                    return Ok(Some((index, start, violation)));
                }
                index += 1;
            }
            _ => at += 1,
        }
    }
    Ok(None)
}

/// The rules for one number literal (see the module's top).
fn number(literal: &str) -> Option<Violation> {
    let beyond = || Violation::BeyondSafeRange {
        literal: shorten(literal, 48),
    };
    if !literal.contains(['.', 'e', 'E']) {
        // An integer literal: exact, so only its size matters. (JSON has
        // no leading zeros, so more than 16 digits is past 2^53.)
        let digits = literal.trim_start_matches('-');
        let safe = digits.len() <= 16 && digits.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
        return (!safe).then(beyond);
    }
    // Correctly rounded, as serde_json reads it with `float_roundtrip` (and
    // as every other conforming parser does); past the double range, infinite.
    let Ok(double) = literal.parse::<f64>() else {
        return Some(beyond()); // never for a grammatical literal; refused all the same
    };
    if !double.is_finite() || double.abs() > MAX_SAFE_INTEGER as f64 {
        return Some(beyond());
    }
    // Compared with what JavaScript prints back (RFC 8785's form, which
    // also settles ties at the 17th digit).
    let mut buffer = ryu_js::Buffer::new();
    let nearest = buffer.format_finite(double);
    if Decimal::of(literal) != Decimal::of(nearest) {
        return Some(Violation::Imprecise {
            literal: shorten(literal, 48),
            nearest: nearest.to_string(),
        });
    }
    None
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The walk over one document: where it is, and the first rule broken.
#[derive(Default)]
struct Walk {
    path: Vec<Segment>,
    found: Option<Violation>,
    /// Numbers met so far, in document order.
    numbers: usize,
    /// From the scan: the index of the first number that breaks a rule,
    /// and where it starts in the text.
    first_bad_number: Option<(usize, Violation)>,
    bad_number_at: usize,
}

/// Where in `text` serde_json stopped with `e` (lines and columns count
/// bytes), to tell a number it refused from a string before it.
fn offset(bytes: &[u8], e: &serde_json::Error) -> usize {
    let line_start: usize = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    line_start + e.column()
}

impl Walk {
    /// Records `violation` (the first one wins) and an error that stops the parse.
    fn fail<E: de::Error>(&mut self, violation: Violation) -> E {
        self.found.get_or_insert(violation);
        E::custom("not I-JSON")
    }

    fn text<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        if s.is_ascii() {
            return Ok(());
        }
        match s.chars().find(|&c| is_noncharacter(c)) {
            Some(c) => Err(self.fail(Violation::Noncharacter {
                code_point: c as u32,
            })),
            None => Ok(()),
        }
    }

    fn number<E: de::Error>(&mut self) -> Result<(), E> {
        if self
            .first_bad_number
            .as_ref()
            .is_some_and(|(index, _)| *index == self.numbers)
        {
            let (_, violation) = self.first_bad_number.take().expect("just checked");
            return Err(self.fail(violation));
        }
        self.numbers += 1;
        Ok(())
    }

    fn path(&self) -> String {
        if self.path.is_empty() {
            return "body".into();
        }
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        out.push_str(&shorten(k, 64));
                    } else {
                        let quoted = serde_json::to_string(k).unwrap_or_default();
                        out.push_str(&shorten(&quoted, 64));
                    }
                }
            }
        }
        shorten(&out, 200)
    }
}

/// One value anywhere in the document.
struct Node<'w>(&'w mut Walk);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.number()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.number()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.number()
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.text(s)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.0;
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let first = keys.insert(key.clone());
            walk.path.push(Segment::Key(key));
            if !first {
                return Err(walk.fail(Violation::DuplicateKey));
            }
            if let Some(Segment::Key(key)) = walk.path.last() {
                let key = key.clone();
                walk.text::<A::Error>(&key)?;
            }
            map.next_value_seed(Node(walk))?;
            walk.path.pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.0;
        let mut index = 0;
        loop {
            walk.path.push(Segment::Index(index));
            if seq.next_element_seed(Node(walk))?.is_none() {
                walk.path.pop();
                return Ok(());
            }
            walk.path.pop();
            index += 1;
        }
    }
}

/// A finite decimal literal by its value: sign, significant digits and
/// exponent, so `4.50`, `45e-1` and `4.5e0` are equal, and every zero is
/// equal to every other (without allocating: this runs for every number).
struct Decimal<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
    exponent: i64,
}

impl<'a> Decimal<'a> {
    /// `text` is a grammatical JSON number.
    fn of(text: &'a str) -> Decimal<'a> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], saturating_exponent(&rest[at + 1..])),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        Decimal {
            negative,
            int,
            frac,
            exponent,
        }
    }

    fn digits(&self) -> impl Iterator<Item = u8> + Clone + 'a {
        self.int.bytes().chain(self.frac.bytes())
    }

    /// The significant digits, and the power of ten of the last one; `None`
    /// for zero.
    fn significand(&self) -> Option<(impl Iterator<Item = u8> + 'a, i64)> {
        let total = self.int.len() + self.frac.len();
        let leading = self.digits().take_while(|&d| d == b'0').count();
        if leading == total {
            return None;
        }
        let trailing = self
            .frac
            .bytes()
            .rev()
            .chain(self.int.bytes().rev())
            .take_while(|&d| d == b'0')
            .count();
        let digits = self.digits().skip(leading).take(total - leading - trailing);
        Some((
            digits,
            self.exponent - self.frac.len() as i64 + trailing as i64,
        ))
    }
}

impl PartialEq for Decimal<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.significand(), other.significand()) {
            (None, None) => true,
            (Some((a, ea)), Some((b, eb))) => {
                self.negative == other.negative && ea == eb && a.eq(b)
            }
            _ => false,
        }
    }
}

/// An exponent's value, clamped far beyond any double's (whose decimal
/// exponents lie within ±400), so an absurd exponent still compares unequal.
fn saturating_exponent(text: &str) -> i64 {
    const CLAMP: i64 = 1 << 40;
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = digits.trim_start_matches('0');
    let magnitude = if digits.len() > 12 {
        CLAMP
    } else {
        digits.parse::<i64>().unwrap_or(0).min(CLAMP)
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Unicode noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// At most `max` characters of `s` (an over-long literal or key is echoed cut).
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A serde_json message without its " at line L column C": positions inside
/// a re-parsed value would not be the input's.
fn strip_position(message: &str) -> String {
    match message.split_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> IJsonError {
        check(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn accepts_ordinary_documents() {
        for text in [
            r#"{"kind":"db.export","params":{"rows":250000,"tables":["a","b"],"ok":true,"x":null}}"#,
            r#"[1, -2, 0, -0, 9007199254740991, -9007199254740991, [], {}]"#,
            r#"{"f":[0.1, 4.50, 2e-3, 1E-7, 5e-324, -0.0, 1.5, 333333333.3333333, 0.30000000000000004]}"#,
            r#"{"s":"\u20ac $ \ud83d\ude00 \n \" \\ \/ é 😀", "a":{"a":{"a":1}}, "b":{"a":1}}"#,
            r#""just a string""#,
            "42",
            "  {\"a\" : 1 }  ",
        ] {
            assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
        }
    }

    #[test]
    fn duplicate_keys_are_named() {
        let e = refused(r#"{"params":{"rows":250000,"rows":1}}"#);
        assert_eq!(e.path, "params.rows");
        assert_eq!(e.violation, Violation::DuplicateKey);
        // Equal once unescaped is equal.
        assert_eq!(refused(r#"{"a":1,"\u0061":2}"#).path, "a");
        // Only within one object: the same key in siblings is fine.
        assert!(check(br#"[{"a":1},{"a":2}]"#).is_ok());
        assert_eq!(refused(r#"{"x":[{"a":1},{"b":1,"b":2}]}"#).path, "x[1].b");
    }

    #[test]
    fn integers_beyond_2_53_are_refused_with_advice() {
        for (text, literal) in [
            (
                r#"{"params":{"rows":9007199254740993}}"#,
                "9007199254740993",
            ),
            (
                r#"{"params":{"rows":9007199254740992}}"#,
                "9007199254740992",
            ),
            (
                r#"{"params":{"rows":18446744073709551615}}"#,
                "18446744073709551615",
            ),
            (
                r#"{"params":{"rows":-9007199254740992}}"#,
                "-9007199254740992",
            ),
            (
                r#"{"params":{"rows":123456789012345678901234567890}}"#,
                "123456789012345678901234567890",
            ),
            (r#"{"params":{"rows":1e19}}"#, "1e19"),
            (
                r#"{"params":{"rows":9.007199254740992e15}}"#,
                "9.007199254740992e15",
            ),
            (r#"{"params":{"rows":1e400}}"#, "1e400"),
            (
                r#"{"params":{"rows":-1.7976931348623157e308}}"#,
                "-1.7976931348623157e308",
            ),
        ] {
            let e = refused(text);
            assert_eq!(e.path, "params.rows", "{text}");
            assert_eq!(
                e.violation,
                Violation::BeyondSafeRange {
                    literal: literal.into()
                },
                "{text}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("send it as a string (\"{literal}\")")),
                "{e}"
            );
        }
    }

    #[test]
    fn non_integers_must_be_what_a_double_prints_back() {
        for (text, nearest) in [
            ("3.141592653589793238462643383279", "3.141592653589793"),
            ("0.30000000000000001", "0.3"),
            ("333333333.33333329", "333333333.3333333"),
            ("1e-400", "0"),
            ("9007199254740990.5", "9007199254740990"),
            ("1.00000000000000000001", "1"),
        ] {
            let e = refused(&format!("{{\"p\":[1,{text}]}}"));
            assert_eq!(e.path, "p[1]");
            assert_eq!(
                e.violation,
                Violation::Imprecise {
                    literal: text.into(),
                    nearest: nearest.into()
                }
            );
        }
        // Every double's shortest form passes, in either notation.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() || f.abs() > MAX_SAFE_INTEGER as f64 {
                continue;
            }
            for text in [
                ryu_js::Buffer::new().format_finite(f).to_string(),
                serde_json::to_string(&f).unwrap(),
            ] {
                assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
            }
        }
    }

    #[test]
    fn unicode_must_be_valid() {
        let e = refused(r#"{"s":"a\ud800b"}"#);
        assert_eq!(e.path, "s");
        assert!(matches!(e.violation, Violation::InvalidString(_)), "{e}");
        let e = refused(r#"["\udc00"]"#);
        assert!(
            e.to_string()
                .starts_with("[0]: the string is not valid Unicode"),
            "{e}"
        );
        let e = refused(r#"{"a":{"\udc00":1}}"#);
        assert_eq!(e.path, "a");
        assert!(matches!(e.violation, Violation::InvalidString(_)), "{e}");
        let e = refused("{\"s\":[\"ok\",\"x\u{fdd0}\"]}");
        assert_eq!(e.path, "s[1]");
        assert_eq!(e.violation, Violation::Noncharacter { code_point: 0xFDD0 });
        let e = refused(r#"{"k\uffff":1}"#);
        assert_eq!(e.path, "\"k\u{ffff}\"");
        assert_eq!(e.violation, Violation::Noncharacter { code_point: 0xFFFF });
        assert_eq!(
            refused("[\"\u{10fffe}\"]").violation,
            Violation::Noncharacter {
                code_point: 0x10FFFE
            }
        );
        // Bytes that are not UTF-8, in a string: named like the rest.
        let e = refused_bytes(b"{\"s\":\"\xff\"}");
        assert_eq!(e.path, "s");
        assert!(matches!(e.violation, Violation::InvalidString(_)), "{e}");
    }

    fn refused_bytes(bytes: &[u8]) -> IJsonError {
        check(bytes).expect_err("refused")
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = refused(r#"{"kind": "db.export","#);
        assert!(e.is_syntax());
        assert_eq!(e.path, "body");
        assert!(e.to_string().starts_with("body: EOF while parsing"), "{e}");
        assert!(refused("{} {}").is_syntax());
        assert!(refused("").is_syntax());
        assert!(refused("[01]").is_syntax());
        assert!(refused("NaN").is_syntax());
    }

    /// As deep as serde_json reads and no deeper; far deeper input is
    /// refused without exhausting the stack.
    #[test]
    fn nesting_is_bounded_like_serde_json() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for n in [1, MAX_DEPTH] {
            assert!(serde_json::from_str::<serde_json::Value>(&nested(n)).is_ok());
            assert_eq!(check(nested(n).as_bytes()), Ok(()), "{n}");
        }
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1)).is_err());
        for n in [MAX_DEPTH + 1, 100_000] {
            let e = check(nested(n).as_bytes()).unwrap_err();
            assert!(e.is_syntax(), "{e}");
            assert_eq!(e.to_string(), "body: nested more than 127 levels deep");
        }
        let objects = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
        assert!(check(objects.as_bytes()).unwrap_err().is_syntax());
    }

    /// The literal scan and the walk count the same numbers: digits in
    /// strings and keys are not numbers, escaped quotes do not end strings,
    /// and the first violation in document order is the one reported.
    #[test]
    fn the_scan_and_the_walk_agree_on_each_number() {
        assert_eq!(
            check(br#"{"9007199254740993":"1e400","s":"a\"1e400\\","t":[1,-2.5e-3]}"#),
            Ok(())
        );
        let e = refused(r#"{"s":"x\\","n":[1,2,{"m":"\"3","o":1e400}],"p":1e400}"#);
        assert_eq!(e.path, "n[2].o");
        assert!(matches!(e.violation, Violation::BeyondSafeRange { .. }));
        let e = refused(r#"{"a":1,"b":[2,3],"c":0.10000000000000001}"#);
        assert_eq!((e.path.as_str(), e.is_syntax()), ("c", false));
        assert!(matches!(e.violation, Violation::Imprecise { .. }));
        assert!(matches!(
            refused(r#"["\ud800",1e400]"#).violation,
            Violation::InvalidString(_)
        ));
        assert!(matches!(
            refused(r#"[1e400,"\ud800"]"#).violation,
            Violation::BeyondSafeRange { .. }
        ));
        assert_eq!(
            refused(r#"[{"a":1,"a":2},9007199254740993]"#).violation,
            Violation::DuplicateKey
        );
        assert_eq!(refused(r#"[9007199254740993,{"a":1,"a":2}]"#).path, "[0]");
        // Across lines too (serde_json reports lines and columns).
        assert!(matches!(
            refused("[\n\"\\ud800\",\n  1e400]").violation,
            Violation::InvalidString(_)
        ));
        let e = refused("[\n1,\n  1e400, \"\\ud800\"]");
        assert_eq!(e.path, "[1]");
        assert!(matches!(e.violation, Violation::BeyondSafeRange { .. }));
    }

    #[test]
    fn unusual_keys_are_quoted_in_paths() {
        assert_eq!(refused(r#"{"a.b":{"x":1,"x":1}}"#).path, "\"a.b\".x");
        assert_eq!(refused(r#"{"":[1e400]}"#).path, "\"\"[0]");
    }

    #[test]
    fn within_prefixes_the_field() {
        let e = refused("9007199254740993").within("rows");
        assert_eq!(e.path, "rows");
        assert_eq!(
            refused(r#"{"a":1,"a":1}"#).within("params").path,
            "params.a"
        );
        assert_eq!(refused("[1e400]").within("tables").path, "tables[0]");
    }

    #[test]
    fn value_checks_then_parses() {
        assert_eq!(value("[1, 2.5]").unwrap(), serde_json::json!([1, 2.5]));
        assert!(value("[9007199254740993]").is_err());
        assert!(value("not json").unwrap_err().is_syntax());
    }

    /// The host's parse of every accepted number is the correctly rounded
    /// double (what `str::parse` gives), so its canonical form is everyone's.
    #[test]
    fn accepted_floats_parse_correctly_rounded() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let text = ryu_js::Buffer::new().format_finite(f).to_string();
            let host: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(
                host.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
    }
}
