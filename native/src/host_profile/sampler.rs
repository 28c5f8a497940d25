//! The SIGPROF sampler behind [`super::sample`] (Linux with glibc).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::Path;

use super::{Sampled, Stack};

/// Frames kept per sample, innermost first (deeper stacks are cut at their outer end).
const MAX_FRAMES: usize = 128;
/// Buffer words reserved per profile: 64 MiB, ~190,000 samples of 40 frames (190 CPU-seconds
/// at the sampling rate). Samples past it are counted as dropped.
const BUFFER_WORDS: usize = 8 << 20;
/// Requested sampling period of the process's CPU time. The kernel checks process CPU timers
/// at its scheduler tick, so the rate actually reached may be lower (250 Hz at HZ=250); the
/// report scales by the measured CPU time, not by this period.
const PERIOD_MICROS: i64 = 1000;

/// A running sampler; [`HostProfiler::finish`] stops it and returns the stacks it took.
pub struct HostProfiler {
    started: std::time::Instant,
    cpu_at_start: f64,
}

/// One sample as recorded: the thread's name and instruction addresses, innermost first.
struct RawSample {
    thread: String,
    addresses: Vec<usize>,
}

/// The process's CPU time (all threads), in seconds.
fn process_cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The recording state the signal handler writes to. One profile runs at a time.
mod recorder {
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};

    pub static ACTIVE: AtomicBool = AtomicBool::new(false);
    /// Handlers between their first and last step: [`stop`] waits for none.
    static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
    static BUFFER: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
    static CAPACITY: AtomicUsize = AtomicUsize::new(0);
    /// Words reserved so far; a sample is `[frame count, thread name (2 words), frames...]`.
    static CURSOR: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);

    /// Hands `buffer` (zeroed) to the handler and starts recording.
    pub fn begin(buffer: Vec<u64>) {
        let mut buffer = std::mem::ManuallyDrop::new(buffer);
        CAPACITY.store(buffer.len(), SeqCst);
        CURSOR.store(0, SeqCst);
        DROPPED.store(0, SeqCst);
        BUFFER.store(buffer.as_mut_ptr(), SeqCst);
        ACTIVE.store(true, SeqCst);
    }

    /// Stops recording, waits for handlers still running, and returns the buffer, the words
    /// written and the samples dropped.
    pub fn end() -> (Vec<u64>, usize, usize) {
        ACTIVE.store(false, SeqCst);
        while IN_HANDLER.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        let capacity = CAPACITY.load(SeqCst);
        let pointer = BUFFER.swap(std::ptr::null_mut(), SeqCst);
        // SAFETY: `pointer` and `capacity` come from the Vec given to `begin`, forgotten there,
        // and no handler can reach it any more (ACTIVE is false and none is running).
        let buffer = unsafe { Vec::from_raw_parts(pointer, capacity, capacity) };
        (buffer, CURSOR.load(SeqCst).min(capacity), DROPPED.load(SeqCst))
    }

    /// The SIGPROF handler. Async-signal-safe: atomics, `prctl`, the unwinder (libgcc's, which
    /// finds frames without the loader's lock since glibc 2.35 / GCC 12) and stores into the
    /// reserved buffer; no allocation, no lock.
    pub extern "C" fn on_profiling_signal(_signal: libc::c_int) {
        IN_HANDLER.fetch_add(1, SeqCst);
        if ACTIVE.load(SeqCst) {
            // SAFETY: errno is thread-local; the handler must leave it as it found it.
            let errno = unsafe { *libc::__errno_location() };
            record();
            unsafe { *libc::__errno_location() = errno };
        }
        IN_HANDLER.fetch_sub(1, SeqCst);
    }

    fn record() {
        let mut frames = [0u64; super::MAX_FRAMES];
        let mut count = 0;
        // SAFETY: the closure only writes into `frames`; unwinding the interrupted thread's own
        // stack from its signal handler is what the unwinder's signal-frame support is for.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                frames[count] = frame.ip() as u64;
                count += 1;
                count < super::MAX_FRAMES
            })
        };
        if count == 0 {
            return;
        }
        let mut name = [0u8; 16];
        // SAFETY: PR_GET_NAME writes at most 16 bytes into `name`.
        unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
        let words = 3 + count;
        let start = CURSOR.fetch_add(words, SeqCst);
        if start + words > CAPACITY.load(SeqCst) {
            DROPPED.fetch_add(1, SeqCst);
            return;
        }
        let buffer = BUFFER.load(SeqCst);
        // SAFETY: words start..start + words lie inside the buffer and were reserved by this
        // handler alone (fetch_add above); the buffer lives until `end` has seen no handler.
        unsafe {
            let slot = std::slice::from_raw_parts_mut(buffer.add(start), words);
            slot[1] = u64::from_le_bytes(name[..8].try_into().unwrap());
            slot[2] = u64::from_le_bytes(name[8..].try_into().unwrap());
            slot[3..].copy_from_slice(&frames[..count]);
            // The count last: a reader stops at the first zero count.
            slot[0] = count as u64;
        }
    }
}

impl HostProfiler {
    /// Starts sampling the whole process (every thread's CPU time). Fails if a profile is
    /// already running.
    pub fn start() -> Result<Self> {
        if recorder::ACTIVE.load(std::sync::atomic::Ordering::SeqCst) {
            bail!("a host profile is already running in this process");
        }
        // SAFETY: installs a handler that only touches async-signal-safe state (see
        // `on_profiling_signal`); SA_RESTART restarts the system calls it interrupts.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = recorder::on_profiling_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()) != 0 {
                bail!("cannot install the SIGPROF handler: {}", std::io::Error::last_os_error());
            }
        }
        recorder::begin(vec![0u64; BUFFER_WORDS]);
        set_timer(PERIOD_MICROS).context("cannot start the profiling timer (setitimer)")?;
        Ok(Self { started: std::time::Instant::now(), cpu_at_start: process_cpu_seconds() })
    }

    /// Stops sampling and names the stacks' frames. The SIGPROF handler stays installed (a
    /// signal already pending would otherwise end the process) and ignores what arrives after.
    pub fn finish(self) -> Sampled {
        let _ = set_timer(0);
        let wall_seconds = self.started.elapsed().as_secs_f64();
        let cpu_seconds = process_cpu_seconds() - self.cpu_at_start;
        let (buffer, written, dropped) = recorder::end();
        let mut samples = Vec::new();
        let mut at = 0;
        while at + 3 <= written {
            let count = buffer[at] as usize;
            if count == 0 || at + 3 + count > written {
                break;
            }
            let mut name = [0u8; 16];
            name[..8].copy_from_slice(&buffer[at + 1].to_le_bytes());
            name[8..].copy_from_slice(&buffer[at + 2].to_le_bytes());
            let len = name.iter().position(|&b| b == 0).unwrap_or(16);
            samples.push(RawSample {
                thread: String::from_utf8_lossy(&name[..len]).into_owned(),
                addresses: buffer[at + 3..at + 3 + count].iter().map(|&a| a as usize).collect(),
            });
            at += 3 + count;
        }
        Sampled { stacks: stacks(&samples), dropped, cpu_seconds, wall_seconds }
    }
}

/// Arms (or, with 0, disarms) the process CPU-time timer.
fn set_timer(period_micros: i64) -> Result<()> {
    let period = libc::timeval { tv_sec: 0, tv_usec: period_micros as libc::suseconds_t };
    let timer = libc::itimerval { it_interval: period, it_value: period };
    // SAFETY: `timer` is a valid itimerval; the old value is not asked for.
    if unsafe { libc::setitimer(libc::ITIMER_PROF, &timer, std::ptr::null_mut()) } != 0 {
        bail!("{}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A function name for an address: the symbol (demangled, inlined frames innermost first) from
/// the object's symbol table or debug information, else `[object]` or `[object] symbol` from
/// the dynamic loader (stripped shared objects such as a GPU driver).
/// `main` is this executable's file name.
fn names_at(address: usize, exact: bool, main: Option<&std::ffi::OsStr>) -> Vec<String> {
    // A return address points after the call: look up the call itself. The interrupted
    // instruction (the innermost frame) is exact.
    let lookup = if exact { address } else { address.saturating_sub(1) };
    let mut names = Vec::new();
    // `backtrace::resolve` takes every address for a return address and looks up the byte
    // before it: given `lookup + 1`, it looks up `lookup`. (Given `lookup`, a sample taken on a
    // function's first instruction was named after the function before it in the binary.)
    backtrace::resolve((lookup + 1) as *mut std::ffi::c_void, |symbol| {
        let Some(name) = symbol.name() else { return };
        let name = format!("{name:#}");
        // Debug information names a function without its path (`busy_loop`, `{closure#0}`);
        // the symbol table with it. The source file says the crate, and its name which of a
        // crate's `{closure#0}`s it is.
        let file = symbol.filename();
        match file.and_then(crate_of_source) {
            Some(krate) if !name.contains("::") => {
                let file = file.and_then(Path::file_name).unwrap_or_default().to_string_lossy();
                names.push(format!("{krate}::{name} ({file})"))
            }
            _ => names.push(name),
        }
    });
    if names.is_empty() {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables and fills `info`.
        let found = unsafe { libc::dladdr(lookup as *const libc::c_void, &mut info) } != 0;
        let text = |p: *const libc::c_char| {
            (!p.is_null())
                // SAFETY: the loader's strings are NUL-terminated and live as long as the object.
                .then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        let object = found.then(|| text(info.dli_fname)).flatten().map(|f| {
            Path::new(&f).file_name().map_or(f.clone(), |n| n.to_string_lossy().into_owned())
        });
        let symbol = found.then(|| text(info.dli_sname)).flatten();
        names.push(match (object, symbol) {
            // An address of this executable without a name (a linker stub, a gap): unbracketed,
            // so that it counts for its caller's layer.
            (Some(o), _) if main.is_some_and(|m| m.to_string_lossy() == o) => {
                format!("{o}+{:#x}", lookup - info.dli_fbase as usize)
            }
            (Some(o), Some(s)) => format!("[{o}] {s}"),
            (Some(o), None) => format!("[{o}]"),
            // In no loaded object: code generated at run time (lavapipe's compiled kernels).
            _ => "[anonymous code]".to_string(),
        });
    }
    names
}

/// The crate a source file belongs to: `.../registry/src/<index>/burn-autodiff-0.22.1/src/..`
/// -> `burn_autodiff`; the standard library's `/library/core/..` -> `core`; a file of this
/// workspace (the path it was built from) -> `saad`. Other files (the C library's) say nothing.
fn crate_of_source(path: &Path) -> Option<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    if path.starts_with(workspace) && !path.components().any(|c| c.as_os_str() == "target") {
        return Some("saad".into());
    }
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    if let Some(i) = parts.iter().position(|&p| p == "registry") {
        // registry/src/<index>/<crate>-<version>/...
        let folder = parts.get(i + 3)?;
        let (krate, _) = folder.rsplit_once('-')?;
        return Some(krate.replace('-', "_"));
    }
    let i = parts.iter().position(|&p| p == "library")?;
    parts.first().is_some_and(|&p| p == "/").then(|| parts.get(i + 1).map(|k| k.to_string()))?
}

/// The stacks with their frames named, the sampler's own frames (the signal handler, the
/// unwinder, the signal trampoline) left out.
fn stacks(samples: &[RawSample]) -> Vec<Stack> {
    let exe = std::env::current_exe().ok();
    let main = exe.as_deref().and_then(Path::file_name);
    let mut cache: HashMap<(usize, bool), Vec<String>> = HashMap::new();
    // Each address is looked up once.
    let mut named = |address: usize, exact: bool| -> Vec<String> {
        cache.entry((address, exact)).or_insert_with(|| names_at(address, exact, main)).clone()
    };
    samples
        .iter()
        .map(|sample| {
            // The handler's frame, then the kernel's signal trampoline, then the interrupted
            // instruction.
            let handler = sample
                .addresses
                .iter()
                .position(|&a| named(a, false).iter().any(|n| n.contains("on_profiling_signal")));
            let first = handler.map_or(0, |h| h + 2);
            let mut frames = Vec::new();
            for (i, &address) in sample.addresses.iter().enumerate().skip(first) {
                // The outermost "return address" of a thread's stack.
                if address == 0 {
                    continue;
                }
                frames.extend(named(address, i == first && handler.is_some()));
            }
            Stack { thread: sample.thread.clone(), frames }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Attribution, Layer, fold};
    use super::*;

    #[inline(never)]
    fn busy_loop_for_host_profile(seconds: f64) -> u64 {
        let start = std::time::Instant::now();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while start.elapsed().as_secs_f64() < seconds {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.rotate_left(7) ^ x.wrapping_mul(0x2545_f491_4f6c_dd1d));
            }
        }
        x
    }

    /// A sample interrupted on a function's first instruction names that function, not the
    /// one laid out before it; a return address names its call.
    #[test]
    fn an_address_is_named_after_the_function_it_is_in() {
        let entry = busy_loop_for_host_profile as *const () as usize;
        let names = names_at(entry, true, None);
        assert!(names.iter().any(|n| n.contains("busy_loop_for_host_profile")), "{names:?}");
        let names = names_at(entry + 1, false, None);
        assert!(names.iter().any(|n| n.contains("busy_loop_for_host_profile")), "{names:?}");
    }

    /// Two named threads spin in one known function: the sampler must find it on (nearly)
    /// every stack it took of them, name the threads, and fold the stacks into lines that end
    /// in a count. Other tests of this executable may run at the same time; only the two
    /// threads' samples are checked.
    #[test]
    fn samples_name_the_function_and_thread_that_spent_the_time() {
        let profiler = HostProfiler::start().unwrap();
        let threads: Vec<_> = ["profiled-a", "profiled-b"]
            .into_iter()
            .map(|name| {
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(|| busy_loop_for_host_profile(0.6))
                    .unwrap()
            })
            .collect();
        threads.into_iter().for_each(|t| drop(t.join()));
        let sampled = profiler.finish();
        let (stacks, cpu_seconds) = (&sampled.stacks, sampled.cpu_seconds);
        let ours: Vec<&Stack> =
            stacks.iter().filter(|s| s.thread.starts_with("profiled-")).collect();
        // 1.2 CPU-s at most 1 kHz; at least a 4 ms tick even on a loaded 2-core machine.
        assert!(ours.len() >= 20, "{} samples of the profiled threads", ours.len());
        let inside = ours
            .iter()
            .filter(|s| s.frames.iter().any(|f| f.contains("busy_loop_for_host_profile")))
            .count();
        assert!(
            inside * 10 >= ours.len() * 9,
            "{inside} of {} stacks in the busy loop",
            ours.len()
        );
        // The sampler's own frames are cut: no stack shows the handler.
        assert!(stacks.iter().all(|s| s.frames.iter().all(|f| !f.contains("on_profiling_signal"))));
        assert!(cpu_seconds > 0.5, "{cpu_seconds} CPU-s");
        let mut folded = String::new();
        fold("test", stacks, &mut folded);
        let attribution = Attribution::of(&sampled);
        assert_eq!(
            attribution.by_layer.iter().map(|(_, n)| n).sum::<usize>(),
            sampled.stacks.len()
        );
        let saad = attribution.by_layer.iter().find(|(l, _)| *l == Layer::Saad).map_or(0, |x| x.1);
        assert!(saad >= inside, "the busy loop is saad_native's: {saad} < {inside}");
        assert!(attribution.by_thread.iter().any(|(t, _)| t == "profiled-a"));
        for line in folded.lines() {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            assert!(stack.starts_with("test;"), "{line}");
            assert!(count.parse::<usize>().unwrap() >= 1);
        }
        assert!(folded.contains("busy_loop_for_host_profile"));
        // A second profile may start once the first has finished.
        HostProfiler::start().unwrap().finish();
    }
}
