//! Printing for people: results on stdout (`say!`, `say_raw!`), warnings, notes and the
//! live view's lines on stderr (`note!`). A closed pipe (`wsoak check … | head`, a log
//! tool that went away) is never an error here and never costs a run its report.
//!
//! It sits below every other module (it imports nothing of the crate), so every module
//! can print without reaching up into the crate's face.

/// Prints a line to stdout; a closed pipe (`wsoak check … | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints a line to stderr (warnings, notes, the live view's lines); a closed stderr (a
/// log tool that went away, `2>&1 | head`) is not an error, and never costs the report.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::out::note_line(format_args!($($arg)*))
    };
}

/// Prints to stdout without a newline; a closed pipe is not an error.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Writes one line to stderr, ignoring a closed pipe: what `note!` expands to, and what
/// the binary uses for its last word.
pub fn note_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{args}");
}
