//! What a JetStream stream name and a subject prefix may be, checked by every options
//! struct of the crate with the same words.

/// Why `stream` cannot name a stream, if it cannot.
pub(crate) fn stream_name_problem(stream: &str) -> Option<String> {
    let valid = !stream.is_empty()
        && stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (!valid).then(|| format!("stream name {stream:?}: use letters, digits, `-` and `_`"))
}

/// Why `prefix` cannot start subjects, if it cannot.
pub(crate) fn subject_prefix_problem(prefix: &str) -> Option<String> {
    (!is_subject(prefix)).then(|| {
        format!("subject prefix {prefix:?}: use dot-separated tokens without wildcards or spaces")
    })
}

/// Whether `subject` is a literal subject: dot-separated, non-empty tokens without
/// wildcards or whitespace.
pub(crate) fn is_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty() && !token.contains(['*', '>']) && !token.contains(char::is_whitespace)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(is_subject("a.b.C_1-x"));
        assert!(!is_subject("a b"));
        assert!(!is_subject("a.>"));
        assert!(!is_subject(".a"));
        assert!(!is_subject("a."));
    }
}
