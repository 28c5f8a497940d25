//! Runs that meet the real world: SIGKILL at random moments and in the middle of checkpoint
//! writes, a diverging run, a full disk, a read-only folder, a file size limit, two runs in one
//! folder, and teachers that are not what they claim. Nothing may be lost: the newest checkpoint
//! always loads and resuming ends with the weights of an uninterrupted run.

use saad_core::burn::module::{Module, ModuleMapper, Param};
use saad_core::burn::prelude::*;
use saad_core::checkpoint::{Checkpoint, DatasetInfo, load_weights};
use saad_core::export::{state_dict, to_safetensors};
use saad_core::models::ModelSpec;
use saad_core::train::Trainer;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{command, fails, ok_stderr as ok, s, tempdir};

/// A short PGD-AT run on the digits with a weight average from epoch 3, so that checkpoints hold
/// model, optimizer state and average; `set` replaces flags (or adds them).
fn train_args_with(out: &Path, epochs: usize, set: &[(&str, &str)]) -> Vec<String> {
    let mut flags: Vec<(String, Option<String>)> = vec![];
    let base = [
        ("--data", "digits"),
        ("--image-size", "16"),
        ("--arch", "small-cnn-4"),
        ("--method", "pgd-at"),
        ("--attack-steps", "2"),
        ("--batch-size", "64"),
        ("--schedule", "cosine"),
        ("--seed", "11"),
        ("--swa-start", "3"),
        ("--eval-every", "0"),
        ("--eval-n", "32"),
        ("--device", "flex"),
    ];
    for (k, v) in base.iter().chain(set) {
        match flags.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = Some(v.to_string()),
            None => flags.push((k.to_string(), Some(v.to_string()))),
        }
    }
    let mut args = vec![
        "train".to_string(),
        "--quiet".into(),
        "--epochs".into(),
        epochs.to_string(),
        "--out".into(),
        s(out).into(),
    ];
    for (k, v) in flags {
        args.push(k);
        args.extend(v);
    }
    args
}

fn train_args(out: &Path, epochs: usize) -> Vec<String> {
    train_args_with(out, epochs, &[])
}

/// The weights of a checkpoint section in a canonical form (the PyTorch state dict): burn's
/// records carry per-process parameter ids, so equal weights need not be equal bytes.
fn canonical(spec: &ModelSpec, section: &[u8]) -> Vec<u8> {
    let model = load_weights(spec, section, &Device::flex(), "checkpoint").unwrap();
    to_safetensors(&state_dict(&model), &[])
}

fn args_ref(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn read_ckpt(path: &Path) -> Checkpoint {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Checkpoint::decode(&bytes, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// Temporary files of interrupted atomic writes in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A deterministic generator for the kill times (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

/// Kills per run of [`killed_at_random_moments_and_mid_write_a_run_resumes_to_the_uninterrupted_weights`].
const KILLS: usize = 24;

#[test]
fn killed_at_random_moments_and_mid_write_a_run_resumes_to_the_uninterrupted_weights() {
    let dir = tempdir("kill");
    let epochs = 16;
    let reference = dir.join("reference");
    let t0 = Instant::now();
    ok(&args_ref(&train_args(&reference, epochs)));
    let full_run = t0.elapsed();
    let want = read_ckpt(&reference.join("checkpoint.saad"));
    let want_model = read_ckpt(&reference.join("model.saad"));

    let out = dir.join("killed");
    let ckpt = out.join("checkpoint.saad");
    let mut rng = Rng(0x5aad_c0de);
    let (mut kills, mut mid_write, mut last_epochs) = (0, 0, 0);
    // Kill windows short enough that the run needs many starts to finish.
    // (A twelfth: with a sixth, a run timed on a busy machine and resumed on an idle one
    // finished after 11 kills.)
    let window = full_run.as_millis() as u64 / 12;
    let mut finished = false;
    for attempt in 0..=KILLS {
        let mut args = train_args(&out, epochs);
        if ckpt.exists() {
            args.push("--resume".into());
        }
        let mut child =
            command().args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let tmp = out.join(format!(".checkpoint.saad.tmp-{pid}"));
        let started = Instant::now();
        // The last start runs to the end. Of the others, every second one is killed at a
        // random moment, the rest as soon as a checkpoint write has begun after a random delay.
        let kill_after =
            (attempt < KILLS).then(|| Duration::from_millis(rng.below(window.max(200))));
        let at_write = attempt % 2 == 1;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            match kill_after {
                Some(d)
                    if started.elapsed() >= d
                        && (!at_write || tmp.exists() || started.elapsed() >= d + full_run) =>
                {
                    break None;
                }
                Some(d) if at_write && started.elapsed() >= d => {} // spin: the write lasts milliseconds
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        match status {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "saad {args:?} failed after {kills} kills:\n{err}");
                finished = true;
            }
            None => {
                kill(&mut child);
                kills += 1;
                if temporaries(&out).iter().any(|n| n.ends_with(&format!("tmp-{pid}"))) {
                    mid_write += 1;
                }
            }
        }
        // After every kill the newest checkpoint loads, with its optimizer state and average.
        if ckpt.exists() {
            let c = read_ckpt(&ckpt);
            Trainer::resume(&c, &Device::flex(), "checkpoint.saad")
                .unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
            assert!(
                c.header.epochs_done >= last_epochs,
                "the checkpoint went back from epoch {last_epochs}"
            );
            last_epochs = c.header.epochs_done;
            let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap_or_default();
            for line in log.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("log line {line:?}: {e}"));
            }
        }
        if finished {
            break;
        }
    }
    assert!(finished, "the run did not finish");
    let got = read_ckpt(&ckpt);
    assert_eq!(got.header.epochs_done, epochs);
    // Equal final weights after resumes at many points also prove the optimizer state (the
    // momentum shapes every later step) came back exactly.
    let spec = &want.header.model;
    assert!(
        canonical(spec, &got.model) == canonical(spec, &want.model),
        "weights differ from the uninterrupted run after {kills} kills"
    );
    assert!(
        canonical(spec, &got.averaged) == canonical(spec, &want.averaged),
        "the weight average differs from the uninterrupted run"
    );
    let got_model = read_ckpt(&out.join("model.saad"));
    assert!(
        canonical(spec, &got_model.model) == canonical(spec, &want_model.model),
        "the reported model differs"
    );
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), epochs, "{log}");
    assert!(temporaries(&out).is_empty(), "temporary files left: {:?}", temporaries(&out));
    eprintln!(
        "{kills} kills ({mid_write} while a checkpoint write was in progress); uninterrupted run {full_run:?}; final weights identical"
    );
    assert!(kills >= KILLS / 2, "only {kills} kills: the run is too short for this test");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diverging_run_stops_naming_epoch_and_batch_and_keeps_the_last_good_checkpoint() {
    let dir = tempdir("diverge");
    let out = dir.join("run");
    // Epoch 1 at lr 0.05, then x1e12: the weights blow up in epoch 2.
    let diverging = [("--lr", "0.05"), ("--schedule", "multistep:1:1e12"), ("--swa-start", "none")];
    let args = train_args_with(&out, 3, &diverging);
    let err = fails(
        &args_ref(&args),
        &[
            "diverged in epoch 2 of 3",
            "at batch",
            "NaN or infinite",
            "holds epoch 1",
            "lower learning rate",
        ],
    );
    eprintln!("{err}");
    let c = read_ckpt(&out.join("checkpoint.saad"));
    assert_eq!(c.header.epochs_done, 1);
    Trainer::resume(&c, &Device::flex(), "checkpoint.saad").unwrap();
    assert_eq!(std::fs::read_to_string(out.join("log.jsonl")).unwrap().lines().count(), 1);
    assert!(!out.join("model.saad").exists());
    // The same epoch 1 as a run that stopped there by itself: nothing of epoch 2 was written.
    let mut one = train_args_with(&dir.join("one"), 3, &diverging);
    one.extend(["--stop-after-epochs", "1"].map(String::from));
    ok(&args_ref(&one));
    let spec = &c.header.model;
    assert!(
        canonical(spec, &read_ckpt(&dir.join("one/checkpoint.saad")).model)
            == canonical(spec, &c.model)
    );

    // Diverging in the first epoch: no checkpoint yet, said so.
    let first =
        train_args_with(&dir.join("first"), 2, &[("--lr", "1e12"), ("--schedule", "constant")]);
    fails(&args_ref(&first), &["diverged in epoch 1 of 2", "no checkpoint had been written yet"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs of `bytes` mounted at `dir` (root only; `None` where mounting is not allowed).
struct Mount(PathBuf);
impl Mount {
    fn tmpfs(dir: &Path, bytes: usize) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", s(dir)])
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Mount(dir.to_path_buf()))
    }
    fn read_only(&self) {
        let st = Command::new("mount").args(["-o", "remount,ro", s(&self.0)]).status().unwrap();
        assert!(st.success(), "remount read-only");
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `saad args` with the file size limit (`ulimit -f`) at `limit` bytes; exceeding it then
/// fails the write (EFBIG) instead of killing the process.
fn run_with_file_limit(args: &[&str], limit: u64) -> Output {
    let mut c = command();
    c.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim =
                libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

/// Trains the first of 3 epochs into `out`; returns that checkpoint's bytes and the arguments
/// that resume the run.
fn one_epoch_then_resume(out: &Path) -> (Vec<u8>, Vec<String>) {
    ok(&args_ref(&train_args_with(out, 3, &[("--stop-after-epochs", "1")])));
    let before = std::fs::read(out.join("checkpoint.saad")).unwrap();
    let mut resume = train_args(out, 3);
    resume.push("--resume".into());
    (before, resume)
}

#[test]
fn disk_faults_give_clear_errors_and_leave_the_previous_checkpoint_intact() {
    let dir = tempdir("disk");
    let check_intact = |out: &Path, before: &[u8], err: &str| {
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            std::fs::read(out.join("checkpoint.saad")).unwrap(),
            before,
            "the previous checkpoint changed"
        );
        assert!(temporaries(out).is_empty(), "temporary files left: {:?}", temporaries(out));
    };

    // 1. A file size limit below the checkpoint's size (an injected write failure, no root needed).
    let out = dir.join("limit");
    let (before, resume) = one_epoch_then_resume(&out);
    let res = run_with_file_limit(&args_ref(&resume), before.len() as u64 / 2);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "a write over the size limit must fail");
    assert!(
        err.contains("cannot write")
            && err.contains("checkpoint.saad")
            && err.contains("is intact"),
        "{err}"
    );
    check_intact(&out, &before, &err);
    eprintln!("file size limit: {}", err.trim());

    // 2. A full disk and 3. a read-only folder, on a small tmpfs (needs root).
    let small = dir.join("tmpfs");
    let ckpt_len = before.len();
    match Mount::tmpfs(&small, (ckpt_len * 3 / 2).next_multiple_of(4096) + 8192) {
        None => eprintln!(
            "note: cannot mount a tmpfs here (not root?): the full-disk and read-only cases are skipped"
        ),
        Some(mount) => {
            let out = small.join("run");
            let (before, resume) = one_epoch_then_resume(&out);
            let err = fails(
                &args_ref(&resume),
                &["cannot write", "checkpoint.saad", "disk is full", "is intact"],
            );
            check_intact(&out, &before, &err);
            eprintln!("full disk: {}", err.trim());
            mount.read_only();
            let err = fails(&args_ref(&resume), &["read-only", s(&out)]);
            check_intact(&out, &before, &err);
            eprintln!("read-only: {}", err.trim());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_runs_in_one_folder_do_not_interleave() {
    let dir = tempdir("lock");
    let out = dir.join("run");
    let first = train_args(&out, 200);
    let mut a = command().args(&first).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let lock = out.join(".lock");
    let t = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|l| l.contains("process")) {
        assert!(t.elapsed() < Duration::from_secs(60), "the first run never took its folder");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = a.id().to_string();
    let mut second = train_args(&out, 200);
    second.push("--resume".into());
    // Whether or not the first run has written a checkpoint yet, a second run is refused.
    let fresh = fails(
        &args_ref(&first),
        &["in use by another saad run", &format!("process {pid}"), "--out"],
    );
    eprintln!("{}", fresh.trim());
    kill(&mut a);
    // Killed, the first run holds nothing: the folder can be used again (resumed if the run got
    // as far as a checkpoint).
    let mut again = if out.join("checkpoint.saad").exists() { second } else { first };
    again.extend(["--stop-after-epochs", "1"].map(String::from));
    ok(&args_ref(&again));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sets float parameters to a value: all of them, or (flag) only the first tensor.
struct Fill(f32, bool);
impl ModuleMapper for Fill {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let v = param.val();
        let filled = if self.1 {
            // Only the first parameter tensor gets the value (one poisoned layer).
            self.1 = false;
            v.ones_like().mul_scalar(self.0)
        } else if self.0 == 0.0 {
            v.zeros_like()
        } else {
            v
        };
        param.map(|_| filled)
    }
}

fn teacher_file(path: &Path, value: f32, only_first: bool) {
    let device = Device::flex();
    device.seed(1);
    let spec = ModelSpec::new("small-cnn-4".parse().unwrap(), 10);
    let model = spec.init(&device).map(&mut Fill(value, only_first));
    let dataset = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
    let ckpt = Checkpoint::of_model(&model, spec, dataset, Default::default());
    std::fs::write(path, ckpt.encode()).unwrap();
}

#[test]
fn teachers_with_broken_weights_are_refused_before_the_run() {
    let dir = tempdir("teacher");
    let student = |teacher: &Path, out: &str| {
        train_args_with(&dir.join(out), 1, &[("--method", "saad"), ("--teacher", s(teacher))])
    };
    let zero = dir.join("zero.saad");
    teacher_file(&zero, 0.0, false);
    fails(&args_ref(&student(&zero, "a")), &["zero.saad", "not usable", "same logits"]);
    let nan = dir.join("nan.saad");
    teacher_file(&nan, f32::NAN, true);
    fails(&args_ref(&student(&nan, "b")), &["nan.saad", "not usable", "NaN or infinite"]);
    let inf = dir.join("inf.saad");
    teacher_file(&inf, f32::INFINITY, true);
    fails(&args_ref(&student(&inf, "c")), &["inf.saad", "NaN or infinite"]);
    assert!(!dir.join("a/checkpoint.saad").exists(), "a refused teacher must not start a run");
    // An untrained (random) teacher is usable but warned about.
    let random = dir.join("random.saad");
    teacher_file(&random, 1.0, false);
    let err = ok(&args_ref(&student(&random, "d")));
    assert!(
        err.contains("warning") && err.contains("random.saad") && err.contains("chance"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
