//! An in-process CPU sampler for `saad bench --host-profile`: where the host's time goes on a
//! machine without `perf` (the lent GPU machines). Every millisecond of the process's CPU time
//! (`ITIMER_PROF`) the running thread is interrupted and its stack recorded; afterwards the
//! stacks are resolved to function names, attributed to a layer of the stack (saad, burn's
//! autodiff, cubecl, wgpu, the driver, ...) and written as folded stacks (`flamegraph.pl`,
//! inferno and speedscope read them).
//!
//! The same technique as the pprof crate (a signal handler that unwinds with the backtrace
//! crate), written here on crates the build already has: no new dependency. The handler
//! allocates nothing and takes no lock: it unwinds into a stack array and copies the frames
//! into a buffer reserved before the timer starts.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod sampler;

/// One sample with its frames named, innermost first (inlined functions included).
pub struct Stack {
    /// The name of the thread that was running (`prctl(PR_GET_NAME)`, at most 15 bytes).
    pub thread: String,
    pub frames: Vec<String>,
}

/// What sampling a piece of work recorded.
pub struct Sampled {
    pub stacks: Vec<Stack>,
    /// Samples that did not fit the sampler's buffer.
    pub dropped: usize,
    /// CPU seconds of the whole process over the sampled span.
    pub cpu_seconds: f64,
    /// Wall seconds of the sampled span.
    pub wall_seconds: f64,
}

/// Whether this build can sample (Linux with glibc), with an error that says what to use else.
pub fn supported() -> Result<()> {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        Ok(())
    } else {
        anyhow::bail!(
            "--host-profile needs Linux with glibc (a SIGPROF sampler); on this system use its own profiler (Instruments, Windows Performance Recorder)"
        )
    }
}

/// Runs `work` while sampling every thread of the process, and returns its result with the
/// stacks taken. One sampling at a time per process.
pub fn sample<T>(work: impl FnOnce() -> T) -> Result<(T, Sampled)> {
    supported()?;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let profiler = sampler::HostProfiler::start()?;
        let out = work();
        let sampled = profiler.finish();
        Ok((out, sampled))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    unreachable!("supported() failed above: {}", std::any::type_name_of_val(&work))
}

/// The part of the stack a frame belongs to. Samples are attributed to the innermost frame of a
/// named layer: time in the standard library, generic Rust crates or the C library counts for
/// the layer that called it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Saad,
    BurnAutodiff,
    BurnFusion,
    Burn,
    BurnCubecl,
    CubeclRuntime,
    CubeclWgpu,
    Wgpu,
    /// Shared objects other than the C library (the Vulkan loader, the GPU driver) and code in
    /// no object (lavapipe's compiled kernels).
    Driver,
    /// Threads of rayon's pool (flex) and other crates not named above.
    OtherRust,
    /// The C library, the kernel's entry points, or nothing named above on the whole stack.
    System,
}

impl Layer {
    /// Every layer, in the order the report prints them.
    pub const ALL: [Layer; 11] = [
        Layer::Saad,
        Layer::BurnAutodiff,
        Layer::BurnFusion,
        Layer::Burn,
        Layer::BurnCubecl,
        Layer::CubeclRuntime,
        Layer::CubeclWgpu,
        Layer::Wgpu,
        Layer::Driver,
        Layer::OtherRust,
        Layer::System,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Layer::Saad => "saad (core, command)",
            Layer::BurnAutodiff => "burn autodiff",
            Layer::BurnFusion => "burn fusion",
            Layer::Burn => "burn (tensor, dispatch, optim, nn)",
            Layer::BurnCubecl => "burn-cubecl (ops to kernels)",
            Layer::CubeclRuntime => "cubecl runtime (server, memory, streams)",
            Layer::CubeclWgpu => "cubecl-wgpu (launch, bind groups, submit)",
            Layer::Wgpu => "wgpu (core, hal, naga)",
            Layer::Driver => "Vulkan loader and driver",
            Layer::OtherRust => "other Rust crates (rayon, ...)",
            Layer::System => "C library, kernel entry",
        }
    }

    /// The layer of a resolved frame name; `None` for the standard library and the C library,
    /// whose time belongs to their caller.
    fn of_frame(frame: &str) -> Option<Layer> {
        if let Some(object) = frame.strip_prefix('[') {
            let object = object.split(']').next().unwrap_or("");
            let system =
                ["libc.so", "libc-", "ld-linux", "libgcc_s", "libm.so", "libpthread", "linux-vdso"];
            return if system.iter().any(|s| object.starts_with(s)) {
                None
            } else {
                Some(Layer::Driver)
            };
        }
        let krate = crate_of(frame);
        Some(match krate {
            "" | "std" | "core" | "alloc" | "hashbrown" | "backtrace" => return None,
            "saad" | "saad_core" | "saad_native" => Layer::Saad,
            "burn_autodiff" => Layer::BurnAutodiff,
            "burn_fusion" | "burn_cubecl_fusion" => Layer::BurnFusion,
            "burn_cubecl" => Layer::BurnCubecl,
            "cubecl_wgpu" => Layer::CubeclWgpu,
            k if k.starts_with("burn") => Layer::Burn,
            k if k.starts_with("cubecl") => Layer::CubeclRuntime,
            k if k.starts_with("wgpu") || k == "naga" => Layer::Wgpu,
            _ => Layer::OtherRust,
        })
    }
}

/// The crate a demangled Rust name starts in: `<burn_autodiff::Autodiff<B> as ..>::add` ->
/// `burn_autodiff`; a C symbol (no `::`) -> "".
fn crate_of(name: &str) -> &str {
    let name = name.trim_start_matches(['<', '&', '*', '(', '[']);
    let name = name.strip_prefix("dyn ").unwrap_or(name);
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let name = name.strip_prefix("const ").unwrap_or(name);
    match name.find("::") {
        Some(end) if name[..end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            &name[..end]
        }
        _ => "",
    }
}

/// Where the sampled CPU time went: per layer (the innermost frame of a named layer) and per
/// thread, as shares of the samples; the CPU seconds are those shares of the measured time.
pub struct Attribution {
    pub samples: usize,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub by_layer: Vec<(Layer, usize)>,
    pub by_thread: Vec<(String, usize)>,
    /// The frame each sample was attributed to (the innermost of a named layer), most first.
    pub by_function: Vec<(String, usize)>,
}

impl Attribution {
    pub fn of(sampled: &Sampled) -> Self {
        let stacks = &sampled.stacks;
        let mut layers: HashMap<Layer, usize> = HashMap::new();
        let mut threads: HashMap<String, usize> = HashMap::new();
        let mut functions: HashMap<&str, usize> = HashMap::new();
        for stack in stacks {
            let found = stack.frames.iter().find_map(|f| Some((Layer::of_frame(f)?, f.as_str())));
            let (layer, function) = found.unwrap_or((Layer::System, "(no named layer)"));
            *layers.entry(layer).or_default() += 1;
            *functions.entry(function).or_default() += 1;
            *threads.entry(thread_group(&stack.thread)).or_default() += 1;
        }
        let by_layer = Layer::ALL.iter().filter_map(|l| layers.get(l).map(|&n| (*l, n))).collect();
        let mut by_thread: Vec<_> = threads.into_iter().collect();
        by_thread.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut by_function: Vec<_> =
            functions.into_iter().map(|(f, n)| (f.to_string(), n)).collect();
        by_function.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Attribution {
            samples: stacks.len(),
            cpu_seconds: sampled.cpu_seconds,
            wall_seconds: sampled.wall_seconds,
            by_layer,
            by_thread,
            by_function,
        }
    }

    fn seconds(&self, samples: usize) -> f64 {
        self.cpu_seconds * samples as f64 / self.samples.max(1) as f64
    }

    /// The table `saad bench` prints; with `launches` > 0, CPU microseconds per launch too.
    pub fn table(&self, launches: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {} samples, {:.2} CPU-s over {:.2} s wall{}",
            self.samples,
            self.cpu_seconds,
            self.wall_seconds,
            if launches > 0 { format!(", {launches} launches") } else { String::new() }
        );
        let layers: Vec<(String, usize)> =
            self.by_layer.iter().map(|(l, n)| (l.label().to_string(), *n)).collect();
        let sections = [
            ("layer (the innermost frame of one)", &layers),
            ("thread", &self.by_thread),
            ("function (the frame attributed)", &self.by_function),
        ];
        for (heading, rows) in sections {
            let per_launch = if launches > 0 { " µs/launch" } else { "" };
            let _ = writeln!(out, "  {:>7} {:>8}{per_launch}  {heading}", "share", "CPU-s");
            for (name, n) in rows.iter().take(8) {
                let s = self.seconds(*n);
                let per_launch = if launches > 0 {
                    format!(" {:>9.1}", s * 1e6 / launches as f64)
                } else {
                    String::new()
                };
                let name: String = name.chars().take(100).collect();
                let share = 100.0 * *n as f64 / self.samples.max(1) as f64;
                let _ = writeln!(out, "  {share:>6.1}% {s:>8.3}{per_launch}  {name}");
            }
        }
        out
    }

    pub fn to_json(&self, launches: u64) -> Value {
        let rows = |rows: Vec<(String, usize)>| -> Vec<Value> {
            rows.into_iter()
                .map(|(name, n)| {
                    let s = self.seconds(n);
                    json!({
                        "name": name,
                        "samples": n,
                        "cpu_seconds": s,
                        "micros_per_launch": (launches > 0).then(|| s * 1e6 / launches as f64),
                    })
                })
                .collect()
        };
        json!({
            "samples": self.samples,
            "cpu_seconds": self.cpu_seconds,
            "wall_seconds": self.wall_seconds,
            "launches": launches,
            "by_layer": rows(self.by_layer.iter().map(|(l, n)| (l.label().to_string(), *n)).collect()),
            "by_thread": rows(self.by_thread.clone()),
            "by_function": rows(self.by_function.iter().take(20).cloned().collect()),
        })
    }
}

/// Threads of one pool under one name: trailing digits and separators dropped
/// (`rayon-worker-3` -> `rayon-worker`), so a pool's samples add up in the table.
fn thread_group(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_');
    if trimmed.is_empty() { name.to_string() } else { trimmed.to_string() }
}

/// Appends `stacks` to `out` as folded stacks, one line per distinct stack, outermost frame
/// first: `label;thread;outer;...;inner count`.
pub fn fold(label: &str, stacks: &[Stack], out: &mut String) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for stack in stacks {
        let mut line = format!("{};{}", clean(label), clean(&stack.thread));
        for frame in stack.frames.iter().rev() {
            line.push(';');
            line.push_str(&clean(frame));
        }
        *counts.entry(line).or_default() += 1;
    }
    let mut lines: Vec<_> = counts.into_iter().collect();
    lines.sort();
    for (line, n) in lines {
        let _ = writeln!(out, "{line} {n}");
    }
}

/// A frame name as one field of a folded line: no `;` (the separator) or newline.
fn clean(name: &str) -> String {
    name.replace([';', '\n'], ",")
}

/// Writes folded stacks to `path` (whole file, atomically).
pub fn write_folded(path: &Path, folded: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, folded.as_bytes())
        .with_context(|| format!("cannot write the host profile to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_attributed_to_the_crate_they_start_in() {
        let layer = |name: &str| Layer::of_frame(name);
        assert_eq!(
            layer("<burn_autodiff::backend::Autodiff<B> as burn_backend::X>::add"),
            Some(Layer::BurnAutodiff)
        );
        assert_eq!(
            layer("cubecl_wgpu::compute::server::WgpuServer::launch"),
            Some(Layer::CubeclWgpu)
        );
        assert_eq!(layer("cubecl_runtime::memory_management::alloc"), Some(Layer::CubeclRuntime));
        assert_eq!(layer("wgpu_core::command::compute::encode"), Some(Layer::Wgpu));
        assert_eq!(layer("saad_core::attacks::pgd::Pgd::perturb"), Some(Layer::Saad));
        assert_eq!(layer("core::ptr::drop_in_place<burn_fusion::X>"), None);
        assert_eq!(layer("<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"), None);
        assert_eq!(layer("[libc.so.6] __memmove_avx_unaligned"), None);
        assert_eq!(layer("[libnvidia-glcore.so.550.54.15]"), Some(Layer::Driver));
        assert_eq!(layer("[libvulkan_lvp.so]"), Some(Layer::Driver));
        assert_eq!(layer("[anonymous code]"), Some(Layer::Driver));
        assert_eq!(layer("saad-1f2e3d+0x4a0"), None);
        assert_eq!(layer("memcpy"), None);
        assert_eq!(thread_group("rayon-worker-12"), "rayon-worker");
        assert_eq!(thread_group("DSD-3-0"), "DSD");
    }
}
