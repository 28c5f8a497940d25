//! `saad`: adversarially robust training and adversarial distillation on any GPU (wgpu) or CPU.

use clap::{Parser, Subcommand};
use saad_native::commands;

#[derive(Parser)]
#[command(
    name = "saad",
    version,
    about = "Adversarial distillation (SAAD) and robust training on any GPU vendor or CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The whole story on the built-in digits: a robust teacher, students distilled with SAAD and
    /// baselines, evaluation, transfer statistics, plots.
    Demo(commands::demo::DemoArgs),
    /// Train a model (natural, PGD-AT, TRADES, or distillation: ARD, IAD, RSLAD, AdaAD, IGDM, SAAD).
    Train(commands::train::TrainArgs),
    /// Per-sample transfer of student-crafted adversarial examples to a teacher (CSV/JSON).
    Transfer(commands::transfer::TransferArgs),
    /// Evaluate a checkpoint: clean, FGSM, PGD-20, CW-inf accuracy.
    Eval(commands::eval::EvalArgs),
    /// Import a PyTorch checkpoint (.pt/.safetensors; RobustBench ids) as a saad model.
    Import(commands::import::ImportArgs),
    /// Export a checkpoint (PyTorch safetensors state dict, or weights only).
    Export(commands::export::ExportArgs),
    /// List the compute devices (flex CPU and wgpu adapters, numbered for --devices).
    Devices,
    /// Host this machine's devices for `saad train --remote` on another machine.
    Serve(commands::serve::ServeArgs),
    /// Datasets: check local files, or download an official archive.
    Data(commands::data::DataCommand),
    /// Benchmark training steps (natural, PGD-AT, SAAD, ...) or the WGSL kernels.
    Bench(commands::bench::BenchArgs),
    /// Check a device (a new GPU first): kernels against their twins, logits and gradients
    /// against flex, training with and without kernels. Exit 1 on a failure.
    Selftest(commands::selftest::SelftestArgs),
}

/// glibc serves an allocation above its mmap threshold (which never rises past 32 MiB) with a
/// fresh mapping that the kernel zero-fills page by page, and unmaps it when it is freed. On flex
/// every tensor operation allocates its output, and a ResNet-18 at batch 128 has 33 MiB
/// activations: perf put 14% of its passes in the kernel's page clearing (bench/NOTES.md section
/// 13). Serving every allocation from the heap and keeping what is freed lets the next operation
/// reuse the memory instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reuse_freed_memory() {
    // SAFETY: called first in `main`, before any other thread exists; mallopt changes only the
    // allocator's settings.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    reuse_freed_memory();
    // The Vulkan loader's window-system probing (libwayland) prints "error: XDG_RUNTIME_DIR is
    // invalid or not set" on machines without a session (containers, CI, SSH) although nothing
    // is wrong; a private temporary folder keeps the GPU probe quiet. Set before any thread runs.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("saad-xdg-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            let _ =
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
            // SAFETY: the process is still single-threaded here.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Train(a) => a.job().and_then(commands::train::run).map(|_| ()),
        Command::Eval(a) => commands::eval::run(a),
        Command::Transfer(a) => commands::transfer::run(a).and_then(|s| {
            println!("{}", serde_json::to_string(&s)?);
            Ok(())
        }),
        Command::Export(a) => commands::export::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Devices => commands::devices(),
        Command::Serve(a) => commands::serve::run(a),
        Command::Data(a) => commands::data::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Selftest(a) => commands::selftest::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
