//! The error a scenario load gives: the file, and the line and column when the problem
//! has a place in it. It only describes failures; finding the place is the loaders' job.

/// A scenario that could not be loaded. Each variant names the file; where the problem has
/// a place in the file, the line and column too.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file (or a data file it names) could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A problem at a known place in the file.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A problem without a place (a value set from the command line, say).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}
