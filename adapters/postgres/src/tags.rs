//! How a tag is stored: one `text` element `<byte length of key>:<key>:<value>`.
//!
//! The length prefix keeps key and value apart whatever they hold (`note:a` = `b` is
//! `6:note:a:b`, `note` = `a:b` is `4:note:a:b`), so a `text[]` column with a GIN index
//! answers "carries all these tags" with `tags @> ARRAY[...]`, exactly, and a tag is one
//! key of `event_tags`.

use factum::Tag;

/// The stored form of `key:value`.
pub(crate) fn encode(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 6);
    out.push_str(&key.len().to_string());
    out.push(':');
    out.push_str(key);
    out.push(':');
    out.push_str(value);
    out
}

/// The stored form of `tag`.
pub(crate) fn encode_tag(tag: &Tag) -> String {
    encode(&tag.key, &tag.value)
}

/// `tags` in their stored form as one PostgreSQL array literal (`{"1:a:x","1:b:y"}`),
/// which `::text[]` parses back element for element: every element quoted, with `"` and
/// `\` escaped by a backslash, so that commas, braces, spaces and the word NULL stay
/// text.
pub(crate) fn array_literal(tags: &[Tag]) -> String {
    let mut out = String::with_capacity(2 + tags.len() * 24);
    out.push('{');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in encode_tag(tag).chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The tag a stored element holds, or why it holds none.
pub(crate) fn decode(text: &str) -> Result<Tag, String> {
    let corrupt = || format!("corrupt tag {text:?}: expected <key length>:<key>:<value>");
    let (length, rest) = text.split_once(':').ok_or_else(corrupt)?;
    if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
        return Err(corrupt());
    }
    let length: usize = length.parse().map_err(|_| corrupt())?;
    let key = rest.get(..length).ok_or_else(corrupt)?;
    let value = rest
        .get(length..)
        .and_then(|v| v.strip_prefix(':'))
        .ok_or_else(corrupt)?;
    Ok(Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_blurs_key_and_value() {
        for (k, v) in [
            ("course", "c1"),
            ("note", "a:b c/d"),
            ("note:a", "b c/d"),
            ("", ""),
            ("empty", ""),
            ("ü", "✓:"),
            ("12", "3"),
        ] {
            let stored = encode(k, v);
            assert_eq!(decode(&stored), Ok(Tag::new(k, v)), "{stored}");
        }
        assert_ne!(encode("note:a", "b"), encode("note", "a:b"));
        assert_eq!(encode("course", "c1"), "6:course:c1");
    }

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(
            array_literal(&[Tag::new("a", "x"), Tag::new("b\"", "{1,\\ NULL}")]),
            r#"{"1:a:x","2:b\":{1,\\ NULL}"}"#
        );
    }

    #[test]
    fn corrupt_elements_are_errors() {
        for bad in [
            "",
            "course:c1",
            "x:course:c1",
            "7:course:c1",
            "6:coursec1",
            "-1::",
            "6",
            "1:ü:x",
        ] {
            assert!(decode(bad).is_err(), "{bad:?} must not decode");
        }
    }
}
