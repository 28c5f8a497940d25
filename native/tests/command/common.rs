//! Helpers shared by the command-line tests: running the `saad` binary, expecting success or a
//! clean failure, scratch folders, CIFAR records.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `saad` binary, quiet about a missing desktop session.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_saad"));
    c.env("XDG_RUNTIME_DIR", "/tmp");
    c
}

pub fn saad(args: &[&str]) -> Output {
    command().args(args).output().expect("saad runs")
}

/// Runs a command that must succeed.
pub fn ok(args: &[&str]) -> Output {
    let out = saad(args);
    assert!(
        out.status.success(),
        "saad {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn ok_stdout(args: &[&str]) -> String {
    String::from_utf8(ok(args).stdout).unwrap()
}

pub fn ok_stderr(args: &[&str]) -> String {
    String::from_utf8_lossy(&ok(args).stderr).into_owned()
}

/// Runs a command that must fail cleanly (non-zero exit, no panic) with `needles` in its stderr,
/// and returns the stderr.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = saad(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "saad {args:?} should fail:\n{err}");
    assert!(!err.contains("panicked"), "saad {args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "saad {args:?}: stderr lacks {n:?}:\n{err}");
    }
    err
}

/// A fresh folder under the target folder (a disk, where a checkpoint's flush takes a while;
/// /tmp may be a tmpfs).
pub fn tempdir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("saad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// CIFAR records with the given labels (label bytes first, then 3072 pixel bytes).
pub fn cifar_records(labels: &[u8], label_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if label_bytes == 2 {
            out.push(3); // coarse label
        }
        out.push(l);
        out.extend((0..3072).map(|p| ((p * 7 + i * 13) % 256) as u8));
    }
    out
}
