//! Progress bars on stderr (images/s and ETA), silent with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` items (images, batches) named `what`.
    pub fn new(quiet: bool, total: u64, what: &str, unit: &str) -> Self {
        if quiet {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(total);
        let template =
            format!("{{msg:>14}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}");
        bar.set_style(
            ProgressStyle::with_template(&template).expect("template").progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Self { bar: Some(bar) }
    }

    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Prints a line unless quiet (status messages go to stderr; results to stdout).
pub fn note(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", msg.as_ref());
    }
}
