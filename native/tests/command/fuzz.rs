//! Fuzzing of every parser of outside bytes: CIFAR-10/100 batches, Tiny-ImageNet's wnids,
//! annotations and JPEGs, PyTorch `.pt` (zip and legacy pickle), `.safetensors`, and our `.saad`
//! checkpoints (the same functions read the page's uploads: `cifar::parse`,
//! `Checkpoint::decode` and `Checkpoint::load_model`).
//!
//! proptest mutates valid seed files (bit flips, overwritten bytes, extreme integers at
//! random offsets, truncation, insertion, deletion, duplicated chunks), biased towards the
//! headers and trailers where the structure lives. Every input must give `Ok` or an error that
//! names the file: a panic fails the case (and proptest shrinks it to a small reproducer), an
//! allocation above 1 GiB aborts the process, the largest single allocation of a case must stay
//! within a bound proportional to the input, and a case running over 60 s aborts with its name.
//!
//! Cases per parser: `SAAD_FUZZ_CASES` (default 300, the CI run); the longer local run is
//! `SAAD_FUZZ_CASES=20000 cargo test -p saad-native --test command fuzz:: -- --nocapture` (seed:
//! `SAAD_FUZZ_SEED`).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use saad_core::burn::prelude::*;
use saad_core::checkpoint::{Checkpoint, DatasetInfo};
use saad_core::data::{DeviceSet, cifar, digits, tiny_imagenet};
use saad_core::import::{load_state_dict, parse_safetensors, strip_prefixes};
use saad_core::models::ModelSpec;
use saad_core::train::{MethodKind, TrainConfig, Trainer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- allocation guard ----------------------------------------------------------------------

/// No single allocation of a parser may come near this: a length read from a header.
const HARD_CAP: usize = 1 << 30;

struct Guarded;

thread_local! {
    /// Largest single allocation on this thread since the last reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            // Returning null makes the allocating code abort the process with the size.
            return std::ptr::null_mut();
        }
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_CAP {
            return std::ptr::null_mut();
        }
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Guarded = Guarded;

// ---- watchdog --------------------------------------------------------------------------------

/// Cases in progress: (parser, started). A case over [`CASE_LIMIT`] means an endless loop.
static RUNNING: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
const CASE_LIMIT: Duration = Duration::from_secs(60);

fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((name, t)) = running.iter().find(|(_, t)| t.elapsed() > CASE_LIMIT) {
                    eprintln!("fuzz: a {name} case has run for {:?}: endless loop", t.elapsed());
                    std::process::abort();
                }
            }
        });
    });
}

// ---- mutations -------------------------------------------------------------------------------

/// Where a mutation lands: the first or last 4 KiB (headers, zip directories, pickles) or
/// anywhere.
#[derive(Clone, Debug)]
enum Pos {
    Head(u16),
    Tail(u16),
    Anywhere(u32),
}

impl Pos {
    fn at(&self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        match *self {
            Pos::Head(p) => (p as usize % 4096).min(len - 1),
            Pos::Tail(p) => len - 1 - (p as usize % 4096).min(len - 1),
            Pos::Anywhere(p) => p as usize % len,
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Pos, u8),
    SetByte(Pos, u8),
    /// An extreme little-endian integer (as a length or a count would be read).
    SetInt(Pos, u64, u8),
    Truncate(Pos),
    Insert(Pos, Vec<u8>),
    Delete(Pos, u16),
    /// Copies `len` bytes from the first position over the second.
    Duplicate(Pos, Pos, u16),
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        any::<u16>().prop_map(Pos::Head),
        any::<u16>().prop_map(Pos::Tail),
        any::<u32>().prop_map(Pos::Anywhere)
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        Just(0u64),
        Just(1),
        Just(0x7f),
        Just(0xff),
        Just(0x7fff_ffff),
        Just(0xffff_ffff),
        Just(1 << 40),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        any::<u64>()
    ];
    prop_oneof![
        3 => (pos(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        3 => (pos(), any::<u8>()).prop_map(|(p, v)| Mutation::SetByte(p, v)),
        3 => (pos(), extreme, prop_oneof![Just(1u8), Just(2), Just(4), Just(8)]).prop_map(|(p, v, w)| Mutation::SetInt(p, v, w)),
        1 => pos().prop_map(Mutation::Truncate),
        1 => (pos(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => (pos(), 1u16..256).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (pos(), pos(), 1u16..512).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        let len = b.len();
        match m {
            Mutation::FlipBit(p, bit) if len > 0 => b[p.at(len)] ^= 1 << bit,
            Mutation::SetByte(p, v) if len > 0 => b[p.at(len)] = *v,
            Mutation::SetInt(p, v, width) if len > 0 => {
                let at = p.at(len);
                for (i, byte) in v.to_le_bytes().iter().take(*width as usize).enumerate() {
                    if at + i < len {
                        b[at + i] = *byte;
                    }
                }
            }
            Mutation::Truncate(p) => b.truncate(p.at(len)),
            Mutation::Insert(p, v) => {
                let at = p.at(len + 1).min(len);
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(p, n) if len > 0 => {
                let at = p.at(len);
                b.drain(at..(at + *n as usize).min(len));
            }
            Mutation::Duplicate(from, to, n) if len > 0 => {
                let (f, t) = (from.at(len), to.at(len));
                let n = (*n as usize).min(len - f).min(len - t);
                let chunk = b[f..f + n].to_vec();
                b[t..t + n].copy_from_slice(&chunk);
            }
            _ => {}
        }
    }
    b
}

/// Cases per parser.
fn cases() -> u32 {
    std::env::var("SAAD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// Runs `parse` on mutations of `seeds`. `parse` returns the error text (or `None` for `Ok`);
/// an error must name `source`. `budget(len)`: the largest single allocation allowed for an
/// input of `len` bytes.
fn fuzz(
    name: &'static str,
    seeds: &[Vec<u8>],
    source: &str,
    budget: impl Fn(usize) -> usize,
    parse: impl Fn(&[u8]) -> Option<String>,
) {
    // The seeds themselves must parse: otherwise every mutation is trivially an error.
    for (i, s) in seeds.iter().enumerate() {
        assert_eq!(parse(s), None, "{name}: seed {i} does not parse");
    }
    fuzz_with(name, seeds.len(), |which, m| apply(&seeds[which], m), source, budget, parse);
}

/// [`fuzz`] with the inputs made by `make(seed index, mutations)` (structure-aware fuzzing).
fn fuzz_with(
    name: &'static str,
    seeds: usize,
    make: impl Fn(usize, &[Mutation]) -> Vec<u8>,
    source: &str,
    budget: impl Fn(usize) -> usize,
    parse: impl Fn(&[u8]) -> Option<String>,
) {
    start_watchdog();
    // The parsers that build models draw from the process-wide device RNG: one target at a
    // time keeps every run of this file identical.
    let _g = saad_tests::serial();
    let seed: u64 = std::env::var("SAAD_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let strategy = (0..seeds, prop::collection::vec(mutation(), 1..6));
    let (ok, errors) = (Cell::new(0u64), Cell::new(0u64));
    let outcome = runner.run(&strategy, |(which, mutations)| {
        let input = make(which, &mutations);
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push((name, Instant::now()));
        LARGEST.with(|l| l.set(0));
        let result = parse(&input);
        let largest = LARGEST.with(|l| l.get());
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).retain(|(n, _)| *n != name);
        match &result {
            None => ok.set(ok.get() + 1),
            Some(e) => {
                errors.set(errors.get() + 1);
                if !e.contains(source) {
                    return Err(TestCaseError::fail(format!(
                        "{name}: the error does not name the file {source:?}: {e}"
                    )));
                }
            }
        }
        if largest > budget(input.len()) {
            return Err(TestCaseError::fail(format!(
                "{name}: a {}-byte input made a single allocation of {largest} bytes (bound {})",
                input.len(),
                budget(input.len())
            )));
        }
        Ok(())
    });
    let (ok, errors) = (ok.get(), errors.get());
    eprintln!(
        "fuzz {name}: {} inputs, {ok} parsed, {errors} rejected with a message naming the file",
        ok + errors
    );
    if let Err(e) = outcome {
        panic!("{name}: {e}");
    }
}

fn mib(n: usize) -> usize {
    n << 20
}

// ---- seeds -----------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pytorch")
}

fn cifar_seed(kind: cifar::CifarKind) -> Vec<u8> {
    let (_, test) = digits::load(32).unwrap();
    let mut set = test.take(3);
    set.num_classes = kind.num_classes();
    cifar::encode(&set, kind)
}

fn jpeg(size: u16, gray: bool, progressive: bool) -> Vec<u8> {
    let n = size as usize * size as usize;
    let (data, ct) = if gray {
        ((0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>(), jpeg_encoder::ColorType::Luma)
    } else {
        (
            (0..3 * n).map(|i| ((i * 7) % 253) as u8).collect::<Vec<_>>(),
            jpeg_encoder::ColorType::Rgb,
        )
    };
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_progressive(progressive);
    enc.encode(&data, size, size, ct).unwrap();
    out
}

/// A checkpoint with optimizer state and a weight average: one natural epoch of a tiny model on
/// 64 digits.
fn trained_checkpoint() -> Vec<u8> {
    // The device RNG is process-wide: hold the lock while this seeds and draws from it.
    let _g = saad_tests::serial();
    let device = Device::flex();
    let (train, _) = digits::load(16).unwrap();
    let train = train.take(64);
    let mut config = TrainConfig::reference(MethodKind::NATURAL);
    config.epochs = 1;
    config.batch_size = 32;
    config.augment = None;
    config.swa_start = Some(1);
    let info = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
    let spec = ModelSpec::new("small-cnn-2".parse().unwrap(), 10);
    let mut t = Trainer::new(spec, config, info, &device);
    let data = DeviceSet::upload(&train, &device);
    t.train_epoch(&data, &mut |_, _| {});
    t.checkpoint().encode()
}

// ---- the parsers -----------------------------------------------------------------------------

fn err(e: impl std::fmt::Display) -> Option<String> {
    Some(e.to_string())
}

/// `None` for `Ok`, the message for an error.
fn msg<T, E: std::fmt::Display>(r: Result<T, E>) -> Option<String> {
    r.err().map(|e| e.to_string())
}

#[test]
fn cifar_batches() {
    for kind in [cifar::CifarKind::Cifar10, cifar::CifarKind::Cifar100] {
        let name = if kind == cifar::CifarKind::Cifar10 { "cifar10" } else { "cifar100" };
        fuzz(
            name,
            &[cifar_seed(kind)],
            "data_batch_1.bin",
            |len| 2 * len + mib(1),
            |b| msg(cifar::parse(b, kind, "data_batch_1.bin")),
        );
    }
}

#[test]
fn tiny_imagenet_text_files() {
    let wnids = b"n01443537\nn01629819\nn01641577\n".to_vec();
    fuzz(
        "wnids",
        std::slice::from_ref(&wnids),
        "wnids.txt",
        |len| 4 * len + mib(1),
        |b| {
            // The reader takes text: bytes that are not UTF-8 are an I/O error naming the file.
            let text = std::str::from_utf8(b).ok()?;
            msg(tiny_imagenet::parse_wnids(text, "wnids.txt"))
        },
    );
    let ids: Vec<String> =
        tiny_imagenet::parse_wnids(std::str::from_utf8(&wnids).unwrap(), "w").unwrap();
    let ann =
        b"val_0.JPEG\tn01629819\t0\t0\t63\t63\nval_1.JPEG\tn01443537\t2\t3\t40\t50\n".to_vec();
    fuzz(
        "val_annotations",
        &[ann],
        "val_annotations.txt",
        |len| 4 * len + mib(1),
        |b| {
            let text = std::str::from_utf8(b).ok()?;
            msg(tiny_imagenet::parse_val_annotations(text, &ids, "val_annotations.txt"))
        },
    );
}

#[test]
fn tiny_imagenet_jpegs() {
    let seeds = vec![jpeg(64, false, false), jpeg(64, true, false), jpeg(64, false, true)];
    fuzz(
        "jpeg",
        &seeds,
        "n01443537_0.JPEG",
        |len| 64 * len + mib(2),
        |b| msg(tiny_imagenet::decode_image(b, "n01443537_0.JPEG")),
    );
}

#[test]
fn pytorch_pt_files() {
    let dir = std::env::temp_dir().join(format!("saad-fuzz-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("teacher.pt");
    let source = path.display().to_string();
    // A zip checkpoint and a legacy (pickle stream) one, both resnet18-w4.
    let seeds: Vec<Vec<u8>> = ["resnet18_w4.pt", "preact_resnet18_w4.pt"]
        .iter()
        .map(|f| std::fs::read(fixtures().join(f)).unwrap())
        .collect();
    let device = Device::flex();
    fuzz(
        "pt",
        &seeds,
        &source,
        |len| 8 * len + mib(16),
        |b| {
            std::fs::write(&path, b).unwrap();
            let dict = match saad_native::pytorch::read_pt(&path) {
                Ok(d) => d,
                Err(e) => return Some(format!("{e:#}")),
            };
            // What `saad import` does next: the state dict into the architecture it names.
            let spec = ModelSpec::new("resnet18-w4".parse().unwrap(), 10);
            let spec2 = ModelSpec::new("preact-resnet18-w4".parse().unwrap(), 10);
            let first = load_state_dict(&spec, strip_prefixes(dict.clone()), &device, &source);
            match first {
                Ok(_) => None,
                Err(_) => msg(load_state_dict(&spec2, strip_prefixes(dict), &device, &source)),
            }
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn safetensors_files() {
    let device = Device::flex();
    let model = {
        let _g = saad_tests::serial();
        device.seed(5);
        ModelSpec::new("small-cnn-2".parse().unwrap(), 10).init(&device)
    };
    let spec = ModelSpec::new("small-cnn-2".parse().unwrap(), 10);
    let seed = saad_core::export::to_safetensors(
        &saad_core::export::state_dict(&model),
        &[("format", "pt".into())],
    );
    fuzz(
        "safetensors",
        &[seed],
        "teacher.safetensors",
        |len| 8 * len + mib(1),
        |b| {
            let dict = match parse_safetensors(b, "teacher.safetensors") {
                Ok(d) => d,
                Err(e) => return err(e),
            };
            msg(load_state_dict(&spec, strip_prefixes(dict), &device, "teacher.safetensors"))
        },
    );
}

#[test]
fn saad_checkpoints() {
    let device = Device::flex();
    let seeds =
        vec![trained_checkpoint(), std::fs::read(fixtures().join("roundtrip.saad")).unwrap()];
    let parse = |b: &[u8]| {
        let ckpt = match Checkpoint::decode(b, "checkpoint.saad") {
            Ok(c) => c,
            Err(e) => return err(e),
        };
        // The page's upload path and the command line's resume path.
        if let Err(e) = ckpt.load_model(&device, "checkpoint.saad") {
            return err(e);
        }
        if ckpt.optimizer.is_empty() {
            return None;
        }
        msg(Trainer::resume(&ckpt, &device, "checkpoint.saad"))
    };
    // Whole files: damage is caught by the section checksums (and the framing).
    fuzz("saad", &seeds, "checkpoint.saad", |len| 8 * len + mib(1), parse);
    // One section mutated and the file re-sealed with valid checksums: what a file written by
    // something else, or crafted, would present to the header, weight and optimizer readers.
    let decoded: Vec<Checkpoint> =
        seeds.iter().map(|b| Checkpoint::decode(b, "seed").unwrap()).collect();
    let make = |k: usize, m: &[Mutation]| {
        let c = &decoded[k / 4];
        let header = serde_json::to_vec(&c.header).unwrap();
        let mut parts = [header, c.model.clone(), c.optimizer.clone(), c.averaged.clone()];
        parts[k % 4] = apply(&parts[k % 4], m);
        sealed(&parts)
    };
    fuzz_with(
        "saad-sections",
        4 * decoded.len(),
        make,
        "checkpoint.saad",
        |len| 8 * len + mib(1),
        parse,
    );
}

/// A version-2 `.saad` file of the given sections (header JSON, model, optimizer, average),
/// with valid checksums: written here from the format's description so that the checksum is
/// not what rejects the mutation.
fn sealed(sections: &[Vec<u8>; 4]) -> Vec<u8> {
    let mut out = b"SAADCKPT".to_vec();
    out.extend_from_slice(&2u32.to_le_bytes());
    for s in sections {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
        let mut crc = flate2::Crc::new();
        crc.update(s);
        out.extend_from_slice(&crc.sum().to_le_bytes());
    }
    out
}

/// A header naming a model far larger than the file (or absurd sizes) is refused before any
/// memory is taken for that model.
#[test]
fn headers_naming_huge_models_are_refused_before_allocating() {
    let seed = trained_checkpoint();
    let c = Checkpoint::decode(&seed, "seed").unwrap();
    let device = Device::flex();
    let header = |arch: &str, classes: u64| {
        let mut h = serde_json::to_value(&c.header).unwrap();
        h["model"]["arch"] = arch.into();
        h["model"]["num_classes"] = classes.into();
        serde_json::to_vec(&h).unwrap()
    };
    let cases = [
        (header("wrn-202-64", 10), "too few for a wrn-202-64"),
        (header("small-cnn-2", 1_000_000_000_000), "classes"),
        (header("wrn-202-4096", 10), "width 4096"),
        (header("resnet18-w100000", 10), "width 100000"),
        (header("wrn-10000-10", 10), "depth 10000"),
    ];
    for (h, needle) in cases {
        let bytes = sealed(&[h, c.model.clone(), c.optimizer.clone(), c.averaged.clone()]);
        LARGEST.with(|l| l.set(0));
        let e = Checkpoint::decode(&bytes, "checkpoint.saad")
            .and_then(|c| c.load_model(&device, "checkpoint.saad").map(|_| ()));
        let largest = LARGEST.with(|l| l.get());
        let e = e.expect_err(needle).to_string();
        assert!(e.contains("checkpoint.saad") && e.contains(needle), "{e}");
        assert!(largest < mib(4), "{needle}: allocated {largest} bytes before refusing");
    }
}
