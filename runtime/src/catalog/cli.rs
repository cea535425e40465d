//! `describe` as a command an application's binary can mount.
//!
//! ```no_run
//! # fn catalog() -> factum::Catalog { factum::Catalog::new() }
//! fn main() -> std::process::ExitCode {
//!     // `my-app describe [--mermaid | --doc | --warnings] [--deny-warnings]`
//!     if let Some(code) = factum::catalog::cli::run(&catalog(), std::env::args().skip(1)) {
//!         return code;
//!     }
//!     // ... the application itself
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use super::Catalog;

/// The usage text of the `describe` command.
pub const USAGE: &str = "\
usage: describe [--mermaid | --doc | --warnings] [--deny-warnings]

Prints the model: every event type, state and decision with its concurrency metadata,
which decisions can invalidate which, and warnings.

  (no flag)        Markdown tables
  --mermaid        the Mermaid graph of decisions and event types
  --doc            a Markdown page: the graph in a mermaid block, then the tables
  --warnings       only the warnings, one per line
  --deny-warnings  exit with status 1 when there is a warning (for CI)
";

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// [`Catalog::describe`].
    Tables,
    /// [`Catalog::mermaid`].
    Mermaid,
    /// [`Catalog::document`].
    Doc,
    /// The warnings of [`Catalog::analyze`], one per line.
    Warnings,
}

/// A parsed `describe` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// What to print.
    pub format: Format,
    /// Whether a warning makes the command fail.
    pub deny_warnings: bool,
}

/// A `describe` command line that cannot be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}\n\n{USAGE}")]
pub struct UsageError(String);

impl Command {
    /// Parses the arguments after the program name: `None` when the first is not
    /// `describe` (the application handles them), an error for a flag it does not know.
    pub fn parse<I, S>(args: I) -> Result<Option<Command>, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut args = args.into_iter();
        match args.next() {
            Some(first) if first.as_ref() == "describe" => {}
            _ => return Ok(None),
        }
        let mut command = Command {
            format: Format::Tables,
            deny_warnings: false,
        };
        let mut format_flag: Option<String> = None;
        for arg in args {
            let arg = arg.as_ref();
            let format = match arg {
                "--mermaid" => Format::Mermaid,
                "--doc" => Format::Doc,
                "--warnings" => Format::Warnings,
                "--deny-warnings" => {
                    command.deny_warnings = true;
                    continue;
                }
                other => {
                    return Err(UsageError(format!("describe: unknown argument `{other}`")));
                }
            };
            if let Some(earlier) = &format_flag {
                return Err(UsageError(format!(
                    "describe: `{earlier}` and `{arg}` both choose what to print; pass one"
                )));
            }
            format_flag = Some(arg.to_owned());
            command.format = format;
        }
        Ok(Some(command))
    }

    /// What the command prints for `catalog`, and whether it fails.
    pub fn render(&self, catalog: &Catalog, title: &str) -> (String, ExitCode) {
        let warnings = catalog.analyze().warnings;
        let text = match self.format {
            Format::Tables => catalog.describe(),
            Format::Mermaid => catalog.mermaid(),
            Format::Doc => catalog.document(title),
            Format::Warnings => warnings
                .iter()
                .map(|w| format!("warning: {}: {w}\n", w.kind()))
                .collect(),
        };
        let code = if self.deny_warnings && !warnings.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
        (text, code)
    }
}

/// Runs `describe` when `args` (the arguments after the program name) start with it:
/// prints to standard output and returns the exit code; returns `None` otherwise, so
/// the application goes on. A malformed command prints the usage to standard error and
/// returns status 2. With `--deny-warnings`, the warnings also go to standard error.
pub fn run<I, S>(catalog: &Catalog, args: I) -> Option<ExitCode>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let command = match Command::parse(args) {
        Ok(Some(command)) => command,
        Ok(None) => return None,
        Err(error) => {
            eprintln!("{error}");
            return Some(ExitCode::from(2));
        }
    };
    let title = std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "model".to_owned());
    let (text, code) = command.render(catalog, &title);
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // A closed pipe (`describe | head`) is not the model's fault.
        return Some(code);
    }
    if command.deny_warnings && code != ExitCode::SUCCESS {
        for w in catalog.analyze().warnings {
            eprintln!("warning: {}: {w}", w.kind());
        }
    }
    Some(code)
}
