//! Errors that name the file (or input) and the problem.

use std::fmt;

/// A problem with input data: which input, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub source: String,
    pub message: String,
}

impl DataError {
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: source.into(), message: message.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for DataError {}
