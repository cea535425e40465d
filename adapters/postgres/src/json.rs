//! Which JSON payloads a `jsonb` column would not give back as they were written.
//!
//! `jsonb` keeps numbers as `numeric`, which holds every decimal exactly but has no
//! negative zero, writes an exponent out in full digits and holds at most 131,072 digits
//! before the point and 16,383 after it. Measured on PostgreSQL 15:
//!
//! | written | read back |
//! | --- | --- |
//! | `-0.0`, `-0`, `-0e5` | `0.0`, `0`, `0` (the sign of zero is lost) |
//! | `1e16`, `1e+300` | `10000000000000000`, `1` and 300 zeros (a float turned integer) |
//! | `1.5e-7` | `0.00000015` |
//! | `5e-16384`, or 16,384 digits after the point | an error: the insert fails |
//! | `1.5`, `100.50`, `-0.001`, `123456789012345678901` | the same text |
//! | `"\u0000"` | an error: `jsonb` cannot hold the NUL character |
//!
//! serde_json writes an `f64` in exponent form from 1e16 up and below 1e-5, so a payload
//! holding `f64::MAX`, `1e16` or `-0.0` would come back changed: a different float, an
//! integer where there was a float (a `serde_json::Value` or an untagged enum then reads
//! another thing), or not at all. Such payloads are kept in `payload_bytes` instead,
//! byte for byte (still codec "json"); every other JSON payload comes back from `jsonb`
//! as the same JSON value, every number with the same digits.

/// Most digits `numeric` holds before the decimal point.
const MAX_INTEGER_DIGITS: usize = 131_072;
/// Most digits `numeric` holds after the decimal point.
const MAX_FRACTION_DIGITS: usize = 16_383;

/// Whether `json` must be kept as bytes: it holds a number `jsonb` would rewrite or
/// refuse (an exponent, a negative zero, more digits than `numeric` holds), or a string
/// with the NUL character. Text that is not JSON gives an answer of no meaning: the
/// append checks the syntax before it gets here.
pub(crate) fn needs_bytes(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        at = match byte {
            b'"' => match string(bytes, at + 1) {
                Scanned::Keep(end) => end,
                Scanned::Bytes => return true,
            },
            b'-' | b'0'..=b'9' => match number(bytes, at) {
                Scanned::Keep(end) => end,
                Scanned::Bytes => return true,
            },
            _ => at + 1,
        };
    }
    false
}

/// What scanning one string or number found.
enum Scanned {
    /// `jsonb` keeps it; the scan goes on at this index.
    Keep(usize),
    /// The payload must be kept as bytes.
    Bytes,
}

/// Scans a string from just after its opening quote.
fn string(bytes: &[u8], mut at: usize) -> Scanned {
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => return Scanned::Keep(at + 1),
            b'\\' => match bytes.get(at + 1) {
                Some(b'u') => {
                    if bytes.get(at + 2..at + 6) == Some(b"0000") {
                        return Scanned::Bytes;
                    }
                    at += 6;
                }
                _ => at += 2,
            },
            _ => at += 1,
        }
    }
    Scanned::Keep(at)
}

/// Scans a number from its first character (a minus sign or a digit).
fn number(bytes: &[u8], start: usize) -> Scanned {
    let negative = bytes.get(start) == Some(&b'-');
    let digits = |from: usize| {
        bytes.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    let zeros = |from: usize, count: usize| bytes[from..from + count].iter().all(|&b| b == b'0');
    let integer_start = start + usize::from(negative);
    let integer = digits(integer_start);
    let mut at = integer_start + integer;
    let mut all_zero = zeros(integer_start, integer);
    let mut fraction = 0;
    if bytes.get(at) == Some(&b'.') {
        fraction = digits(at + 1);
        all_zero &= zeros(at + 1, fraction);
        at += 1 + fraction;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E'))
        || (negative && all_zero)
        || integer > MAX_INTEGER_DIGITS
        || fraction > MAX_FRACTION_DIGITS
    {
        return Scanned::Bytes;
    }
    // A lone minus sign (not JSON) must still move the scan on.
    Scanned::Keep(at.max(start + 1))
}

#[cfg(test)]
mod tests {
    use super::needs_bytes;

    #[test]
    fn numbers_jsonb_rewrites_or_refuses_need_bytes() {
        for json in [
            "[-0.0]",
            "[-0]",
            "{\"a\":-0.000}",
            "[-0e5]",
            "[1e16]",
            "[1E+2]",
            "[1.5e-7]",
            "[2.5E-308]",
            "{\"max\":1.7976931348623157e308}",
            "[1,2,{\"deep\":[3,-0.0]}]",
        ] {
            assert!(needs_bytes(json), "{json} must be kept as bytes");
        }
    }

    #[test]
    fn numbers_jsonb_gives_back_stay_jsonb() {
        for json in [
            "{}",
            "[1.5]",
            "[0]",
            "[0.0]",
            "[-0.001]",
            "[-10]",
            "[100.50]",
            "[123456789012345678901234567890]",
            "[1000000000000000.0]",
            "[0.00001]",
            "[true,false,null]",
            "{\"a\":[1,2,3],\"b\":-1.25}",
        ] {
            assert!(!needs_bytes(json), "{json} can stay jsonb");
        }
    }

    #[test]
    fn only_numbers_outside_strings_count() {
        assert!(!needs_bytes("{\"1e16\":\"-0.0\"}"));
        assert!(!needs_bytes("[\"a\\\"-0.0 1e5\"]"));
        assert!(!needs_bytes("[\"\\\\\",1]"));
        assert!(needs_bytes("[\"\\\\\",1e5]"));
        assert!(!needs_bytes("[\"\\u00e9\",2]"));
    }

    #[test]
    fn a_nul_character_needs_bytes_and_an_escaped_backslash_before_u0000_does_not() {
        assert!(needs_bytes("{\"text\":\"before\\u0000after\"}"));
        assert!(!needs_bytes("{\"text\":\"before\\\\u0000after\"}"));
    }

    #[test]
    fn digits_past_numerics_limits_need_bytes() {
        let fraction = |n: usize| format!("[0.{}1]", "0".repeat(n - 1));
        assert!(!needs_bytes(&fraction(16_383)));
        assert!(needs_bytes(&fraction(16_384)));
        let integer = |n: usize| format!("[{}]", "9".repeat(n));
        assert!(!needs_bytes(&integer(131_072)));
        assert!(needs_bytes(&integer(131_073)));
    }

    #[test]
    fn every_float_serde_json_writes_in_full_digits_stays_jsonb() {
        for value in [
            0.1,
            1.0,
            123.456,
            1e15,
            9_007_199_254_740_993.0,
            0.00001,
            -2.5,
        ] {
            let json = serde_json::to_string(&[value]).unwrap();
            assert!(!needs_bytes(&json), "{json}");
        }
        for value in [
            -0.0,
            1e16,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            1e-7,
        ] {
            let json = serde_json::to_string(&[value]).unwrap();
            assert!(needs_bytes(&json), "{json}");
        }
    }

    #[test]
    fn text_that_is_not_json_does_not_panic() {
        for text in ["-", "[-", "\"", "\"\\", "\"\\u00", "1.", "1e", "--", "-.e"] {
            let _ = needs_bytes(text);
        }
    }
}
