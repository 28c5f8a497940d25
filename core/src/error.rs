//! Errors that name the file (or input) and the problem.

use std::fmt;

/// A problem with an input (a dataset file, a checkpoint, a PyTorch state dict, an optimizer
/// state): which input, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The input: a file name, or a description where there is no file.
    pub source: String,
    /// What is wrong, and what to do about it where that is known.
    pub message: String,
}

impl InputError {
    /// An error about `source`.
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: source.into(), message: message.into() }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for InputError {}
