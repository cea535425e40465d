//! Collects every error of one macro call, so the user sees all mistakes at once.

use std::cell::Cell;

use proc_macro2::TokenStream;

/// An accumulator of spanned errors, in the spirit of serde_derive's `Ctxt`: dropping it
/// with errors never turned into output ([`Errors::to_compile_errors`]) panics, so a code
/// path that collects an error and then forgets to emit it fails loudly (the compiler
/// reports the macro's panic) instead of compiling the user's mistake away.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
    /// How many of `errors` some output holds.
    emitted: Cell<usize>,
}

impl Errors {
    pub fn new() -> Self {
        Errors::default()
    }

    /// Records an error at the span of `at`.
    pub fn at<T: quote::ToTokens>(&mut self, at: T, message: impl std::fmt::Display) {
        self.errors.push(syn::Error::new_spanned(at, message));
    }

    /// Records an error already built.
    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records a darling error (it may hold several).
    pub fn darling(&mut self, error: darling::Error) {
        for e in error.flatten() {
            self.errors.push(e.into());
        }
    }

    /// Keeps the value of `result`, recording its error.
    pub fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Keeps the value of a darling `result`, recording its errors.
    pub fn ok_darling<T>(&mut self, result: darling::Result<T>) -> Option<T> {
        result.map_err(|e| self.darling(e)).ok()
    }

    /// How many errors are recorded so far.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every error as `compile_error!` invocations.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.emitted.set(self.errors.len());
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        let forgotten = self.errors.len() > self.emitted.get();
        if forgotten && !std::thread::panicking() {
            panic!(
                "factum-macros: {} error(s) collected but never emitted, the first: {}",
                self.errors.len() - self.emitted.get(),
                self.errors[self.emitted.get()]
            );
        }
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        // Optimal string alignment: a transposition of adjacent characters is one step
        // (`nmae` is one step from `name`).
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|&(d, c)| d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" or nothing.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_forgive_one_typo_in_three_characters() {
        let names = ["name", "age", "coupon"];
        assert_eq!(did_you_mean("nmae", names), Some("name"));
        assert_eq!(did_you_mean("cuopon", names), Some("coupon"));
        assert_eq!(did_you_mean("zzz", names), None);
        assert_eq!(suggestion("agee", names), " (did you mean `age`?)");
    }

    #[test]
    fn emitted_errors_drop_quietly() {
        let mut errors = Errors::new();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "first"));
        assert!(!errors.to_compile_errors().is_empty());
    }

    #[test]
    #[should_panic(expected = "1 error(s) collected but never emitted, the first: late")]
    fn an_error_never_emitted_panics() {
        let mut errors = Errors::new();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "early"));
        let _ = errors.to_compile_errors();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "late"));
    }
}
