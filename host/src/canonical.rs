//! RFC 8785 (JCS) canonical JSON for evidence leaves and action digests.
//! Refuses what JCS cannot represent exactly (non-finite numbers, integers
//! beyond 2^53) rather than silently rounding them. Depends on nothing of
//! the host's, so every layer can digest.
//!
//! Every event is canonicalized on the decision path, so this writes a
//! `serde_json::Value` directly: strings with serde_json's escaping (which is
//! JCS's), numbers with `ryu-js` (ECMAScript's Number-to-String, as JCS
//! requires), object keys sorted by UTF-16 code units. The
//! `serde_json_canonicalizer` crate, which does the same through a buffering
//! formatter at several times the cost, is the oracle in the tests below.

use serde::Serialize;
use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CanonicalError(pub String);

/// Largest integer magnitude an IEEE 754 double holds exactly (I-JSON, RFC 7493).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Canonical JSON of `value`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let v = serde_json::to_value(value).map_err(|e| CanonicalError(format!("not JSON: {e}")))?;
    value_to_string(&v)
}

/// Canonical bytes to hash (action digests, request hashes): the same bytes as
/// the `serde_json_canonicalizer` crate always produced for them, including for
/// what [`to_string`] refuses (integers beyond 2^53, which that crate rounds
/// through a double), so no digest ever recorded changes.
pub fn digest_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    match to_string(value) {
        Ok(s) => s.into_bytes(),
        Err(_) => serde_json_canonicalizer::to_vec(value).unwrap_or_default(),
    }
}

/// Canonical JSON of a JSON value, without copying it first.
pub fn value_to_string(v: &Value) -> Result<String, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v)?;
    // serde_json writes strings as UTF-8 and everything else is ASCII.
    String::from_utf8(out).map_err(|e| CanonicalError(format!("not UTF-8: {e}")))
}

fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| utf16_order(a.0, b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, value)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), CanonicalError> {
    // Integers within 2^53 print the same as ECMAScript prints the double.
    if let Some(u) = n.as_u64() {
        check_safe(u, n)?;
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64() {
        check_safe(i.unsigned_abs(), n)?;
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() => {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes())
            }
            _ => {
                return Err(CanonicalError(format!(
                    "cannot canonicalize the number {n}"
                )))
            }
        }
    }
    Ok(())
}

fn check_safe(magnitude: u64, n: &serde_json::Number) -> Result<(), CanonicalError> {
    if magnitude > MAX_SAFE_INTEGER {
        return Err(CanonicalError(format!(
            "integer {n} is beyond 2^53 and would lose precision; send it as a string"
        )));
    }
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly what JCS escapes (", \, controls; \u00xx in
    // lowercase hex) and never '/'. Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// JCS orders properties by their names' UTF-16 code units. Byte order
/// (code point order) agrees except between U+E000..U+FFFF and astral
/// characters, so only non-ASCII names pay for the UTF-16 comparison.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// Whether `text` is already in canonical form (used by `audit verify`).
pub fn is_canonical(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| to_string(&v).ok())
        .is_some_and(|c| c == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8785 Appendix B: IEEE 754 bit patterns and their serialization.
    const APPENDIX_B: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];

    #[test]
    fn rfc8785_appendix_b_numbers() {
        for &(bits, want) in APPENDIX_B {
            let f = f64::from_bits(bits);
            assert_eq!(to_string(&f).unwrap(), want, "bits {bits:016x}");
        }
    }

    #[test]
    fn rfc8785_appendix_b_non_finite_are_errors() {
        for bits in [0x7fffffffffffffff_u64, 0x7ff0000000000000] {
            let f = f64::from_bits(bits);
            assert!(
                serde_json_canonicalizer::to_string(&f).is_err(),
                "bits {bits:016x}"
            );
        }
    }

    /// RFC 8785 section 3.2.2 input and section 3.2.3 (sorting) example output.
    #[test]
    fn rfc8785_sample_object() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(to_string(&v).unwrap(), want);
        // RFC 8785 section 3.2.4: the same output as UTF-8 bytes.
        let hex = "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 \
                   75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a \
                   5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 \
                   65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 \
                   5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 \
                   30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(to_string(&v).unwrap().as_bytes(), bytes.as_slice());
    }

    /// RFC 8785 section 3.2.3: properties sort by UTF-16 code units, not bytes.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                    \"\u{1f600}\":\"Emoji: Grinning Face\",\
                    \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(to_string(&v).unwrap(), want);
    }

    /// The crate canonicalizer as an oracle over varied values: nested
    /// containers, escapes, non-ASCII and astral keys, and many numbers.
    #[test]
    fn agrees_with_the_reference_canonicalizer() {
        let mut values = vec![
            serde_json::json!({"b": [1, -2, 3.5, 1e-7, 1e21, 123456789.125], "a": {"y": null, "x": true}}),
            serde_json::json!({"\u{e000}": 1, "\u{1f600}": 2, "\u{ffff}": 3, "a\u{0}b": "\u{7f}\u{2028}</script>\\/"}),
            serde_json::json!(["", "\t\r\n\u{8}\u{c}\u{1f}", {"": []}, [[[]]], -0.0, 0.1, 5e-324]),
        ];
        // Deterministic pseudo-random doubles across the whole range.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                values.push(serde_json::json!({ "n": f, "i": (x >> 11) as i64 - (1 << 52) }));
            }
        }
        for v in values {
            let want = serde_json_canonicalizer::to_string(&v).unwrap();
            assert_eq!(value_to_string(&v).unwrap(), want, "{v:?}");
        }
    }

    #[test]
    fn digest_bytes_match_the_crate_even_where_to_string_refuses() {
        for v in [
            serde_json::json!({"rows": u64::MAX, "b": [1, 2.5]}),
            serde_json::json!({"a": "x", "n": -(1i64 << 60)}),
            serde_json::json!({"z": {"\u{1f600}": 1, "\u{e000}": 2}}),
        ] {
            let want = serde_json_canonicalizer::to_vec(&v).unwrap();
            assert_eq!(digest_bytes(&v), want, "{v}");
        }
    }

    #[test]
    fn unsafe_integers_are_refused() {
        assert!(to_string(&(1u64 << 53)).is_err());
        assert!(to_string(&-(1i64 << 53)).is_err());
        assert_eq!(to_string(&((1u64 << 53) - 1)).unwrap(), "9007199254740991");
        assert!(to_string(&serde_json::json!({"a": [1, {"b": u64::MAX}]})).is_err());
    }

    #[test]
    fn is_canonical_detects_reformatting() {
        assert!(is_canonical(r#"{"a":1,"b":[true]}"#));
        assert!(!is_canonical(r#"{"b":[true],"a":1}"#));
        assert!(!is_canonical(r#"{"a": 1}"#));
        assert!(!is_canonical(r#"{"a":1.0}"#));
    }
}
