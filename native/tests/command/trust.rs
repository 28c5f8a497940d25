//! Issue 11's fixes through the command line: the demo never silently reuses a finished run,
//! evaluation reads only the test files and writes a result card, `train --help` names every
//! method, and a missing dataset is reported without a GPU probe's noise.

use crate::common::{cifar_records, s, saad, tempdir};

#[test]
fn demo_refuses_a_folder_that_holds_a_run_unless_resumed() {
    let dir = tempdir("demo");
    std::fs::write(dir.join("summary.json"), "{}").unwrap();
    let out = saad(&["demo", "--out", s(&dir), "--device", "flex", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the demo reused a folder holding a run");
    assert!(err.contains("already holds a demo run") && err.contains("--resume"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn eval_reads_only_the_test_file_and_writes_a_result_card() {
    let dir = tempdir("eval");
    let c10 = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&c10).unwrap();
    for b in 1..=5 {
        std::fs::write(c10.join(format!("data_batch_{b}.bin")), cifar_records(&[0, 1, 2, 3], 1))
            .unwrap();
    }
    std::fs::write(c10.join("test_batch.bin"), cifar_records(&[4, 5, 6], 1)).unwrap();
    let run = dir.join("run");
    let out = saad(&[
        "train",
        "--data",
        "cifar10",
        "--data-dir",
        s(&dir),
        "--arch",
        "small-cnn-4",
        "--method",
        "natural",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--eval-n",
        "3",
        "--device",
        "flex",
        "--quiet",
        "--out",
        s(&run),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Only the test file is left: evaluation must not need the training files.
    for b in 1..=5 {
        std::fs::remove_file(c10.join(format!("data_batch_{b}.bin"))).unwrap();
    }
    let card = dir.join("card.json");
    let model = run.join("model.saad");
    let out = saad(&[
        "eval",
        "--checkpoint",
        s(&model),
        "--data-dir",
        s(&dir),
        "--attacks",
        "clean,pgd20",
        "--device",
        "flex",
        "--json",
        "--card",
        s(&card),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card).unwrap()).unwrap();
    assert_eq!(report["card"], written);
    assert_eq!(written["dataset"], "cifar10");
    assert_eq!(written["architecture"], "small-cnn-4");
    assert_eq!(written["threat_model"], "Linf");
    assert_eq!(written["eps_fraction"], "8/255");
    assert_eq!(written["n"], 3);
    assert!(written["clean_acc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{written}");
    assert!(written["autoattack_acc"].is_null(), "no AutoAttack was run: {written}");
    assert_eq!(written["other_attacks"][0]["attack"], "pgd20");
}

#[test]
fn train_help_names_every_method() {
    let out = saad(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for m in ["natural", "pgd-at", "trades", "ard", "iad", "rslad", "adaad", "igdm", "saad"] {
        assert!(help.contains(m), "train --help does not name {m}:\n{help}");
    }
    assert!(help.contains("--swa-start") && help.contains("none"), "{help}");
}

#[test]
fn a_missing_dataset_is_reported_without_gpu_probe_noise() {
    let dir = tempdir("quiet");
    // No XDG_RUNTIME_DIR at all, as in containers and CI; --device auto would probe for a GPU.
    let out = crate::common::command()
        .args([
            "train",
            "--data",
            "cifar10",
            "--data-dir",
            s(&dir),
            "--out",
            s(&dir.join("run")),
            "--device",
            "auto",
        ])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("data_batch_1.bin is missing"), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}
