//! An error and its causes on one line.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources (`a: b: c`).
///
/// factum's errors follow the convention of the Rust error-handling guidelines: an error's
/// message says what failed, and its cause is returned by [`Error::source`], not repeated
/// in the message, so a reporter that walks the chain (anyhow, eyre, `tracing`'s
/// `error.sources`) shows each cause once. Where one line must carry everything (a dead
/// letter's stored reason, a reply over the wire, a panic message), format the error with
/// this.
///
/// ```
/// use factum::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the disk is full")]
/// struct Disk;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot save the snapshot")]
/// struct Save(#[source] Disk);
///
/// assert_eq!(ErrorChain(&Save(Disk)).to_string(), "cannot save the snapshot: the disk is full");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
