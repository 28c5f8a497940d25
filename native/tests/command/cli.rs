//! The `saad` command line end to end: dataset readers on files in the official formats, clear
//! errors on bad input, interrupted-and-resumed training, evaluation and export.

use std::path::Path;

use crate::common::{cifar_records, fails, ok_stdout as ok, s, tempdir};

#[test]
fn cifar_readers_accept_official_files_and_name_broken_ones() {
    let dir = tempdir("cifar");
    let c10 = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&c10).unwrap();
    fails(
        &["data", "check", "--data", "cifar10", "--data-dir", s(&dir)],
        &["data_batch_1.bin is missing", "cifar-10-binary.tar.gz"],
    );
    for b in 1..=5 {
        std::fs::write(c10.join(format!("data_batch_{b}.bin")), cifar_records(&[0, 1, 9], 1))
            .unwrap();
    }
    std::fs::write(c10.join("test_batch.bin"), cifar_records(&[2, 3], 1)).unwrap();
    let out = ok(&["data", "check", "--data", "cifar10", "--data-dir", s(&dir)]);
    assert!(out.contains("15 train and 2 test images, 3x32x32, 10 classes"), "{out}");

    let mut truncated = cifar_records(&[1, 2], 1);
    truncated.truncate(4000);
    std::fs::write(c10.join("data_batch_3.bin"), truncated).unwrap();
    fails(
        &["data", "check", "--data", "cifar10", "--data-dir", s(&dir)],
        &["data_batch_3.bin", "truncated"],
    );
    std::fs::write(c10.join("data_batch_3.bin"), cifar_records(&[1, 12], 1)).unwrap();
    fails(
        &["data", "check", "--data", "cifar10", "--data-dir", s(&dir)],
        &["data_batch_3.bin", "record 1", "label 12"],
    );

    let c100 = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&c100).unwrap();
    std::fs::write(c100.join("train.bin"), cifar_records(&[0, 50, 99], 2)).unwrap();
    std::fs::write(c100.join("test.bin"), cifar_records(&[7], 2)).unwrap();
    let out = ok(&["data", "check", "--data", "cifar100", "--data-dir", s(&dir)]);
    assert!(out.contains("3 train and 1 test images, 3x32x32, 100 classes"), "{out}");
}

/// `saad data export` writes the digits as CIFAR-10 records (a label byte, 3x32x32 pixels), and
/// at another `--image-size` the same layout at that size; the record count is the split's.
#[test]
fn digits_export_as_cifar_records_at_their_size() {
    let dir = tempdir("export");
    for (size, record) in [(32usize, 3073usize), (16, 769)] {
        let out = dir.join(format!("digits{size}.bin"));
        let size_arg = size.to_string();
        let printed = ok(&[
            "data",
            "export",
            "--data",
            "digits",
            "--image-size",
            &size_arg,
            "--split",
            "test",
            "--out",
            s(&out),
        ]);
        let images: usize = printed.split_whitespace().next().unwrap().parse().unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), images * record, "{size}x{size}: {images} records of {record}");
        assert!(bytes.iter().step_by(record).all(|&label| label < 10), "labels first");
    }
}

fn jpeg(path: &Path, size: u16, gray: bool) {
    let n = size as usize * size as usize;
    let (data, ct) = if gray {
        ((0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>(), jpeg_encoder::ColorType::Luma)
    } else {
        ((0..3 * n).map(|i| (i % 253) as u8).collect::<Vec<_>>(), jpeg_encoder::ColorType::Rgb)
    };
    jpeg_encoder::Encoder::new_file(path, 90).unwrap().encode(&data, size, size, ct).unwrap();
}

#[test]
fn tiny_imagenet_reader_accepts_the_official_layout() {
    let dir = tempdir("tiny");
    let root = dir.join("tiny-imagenet-200");
    let wnids = ["n01443537", "n01629819"];
    std::fs::create_dir_all(root.join("val/images")).unwrap();
    std::fs::write(root.join("wnids.txt"), wnids.join("\n") + "\n").unwrap();
    for (k, w) in wnids.iter().enumerate() {
        let folder = root.join("train").join(w).join("images");
        std::fs::create_dir_all(&folder).unwrap();
        jpeg(&folder.join(format!("{w}_0.JPEG")), 64, false);
        jpeg(&folder.join(format!("{w}_1.JPEG")), 64, k == 1); // a grayscale image, as in the real set
    }
    jpeg(&root.join("val/images/val_0.JPEG"), 64, false);
    std::fs::write(root.join("val/val_annotations.txt"), "val_0.JPEG\tn01629819\t0\t0\t63\t63\n")
        .unwrap();
    let out = ok(&["data", "check", "--data", "tiny-imagenet", "--data-dir", s(&dir)]);
    assert!(out.contains("4 train and 1 test images, 3x64x64, 2 classes"), "{out}");

    jpeg(&root.join("train/n01443537/images/n01443537_1.JPEG"), 32, false);
    fails(
        &["data", "check", "--data", "tiny-imagenet", "--data-dir", s(&dir)],
        &["n01443537_1.JPEG", "32x32"],
    );
    std::fs::write(root.join("train/n01443537/images/n01443537_1.JPEG"), b"not a jpeg").unwrap();
    fails(
        &["data", "check", "--data", "tiny-imagenet", "--data-dir", s(&dir)],
        &["n01443537_1.JPEG", "JPEG"],
    );
    std::fs::remove_file(root.join("val/val_annotations.txt")).unwrap();
    jpeg(&root.join("train/n01443537/images/n01443537_1.JPEG"), 64, false);
    fails(
        &["data", "check", "--data", "tiny-imagenet", "--data-dir", s(&dir)],
        &["val_annotations.txt is missing", "tiny-imagenet-200.zip"],
    );
}

/// An interrupted run (stopped after epoch 1) resumed with `--resume` ends with exactly the
/// weights of the uninterrupted run: the exported state dicts are byte-identical.
#[test]
fn interrupted_training_resumes_to_identical_weights() {
    let dir = tempdir("resume");
    let common = [
        "train",
        "--data",
        "digits",
        "--image-size",
        "16",
        "--arch",
        "small-cnn-4",
        "--method",
        "pgd-at",
        "--attack-steps",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--schedule",
        "cosine",
        "--seed",
        "3",
        "--eval-every",
        "0",
        "--eval-n",
        "64",
        "--device",
        "flex",
        "--quiet",
    ];
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok(&[&common[..], &["--out", s(&a)]].concat());
    ok(&[&common[..], &["--out", s(&b), "--stop-after-epochs", "1"]].concat());
    let log = std::fs::read_to_string(b.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "stopped after one epoch");
    fails(&[&common[..], &["--out", s(&b)]].concat(), &["already exists", "--resume"]);
    ok(&[&common[..], &["--out", s(&b), "--resume"]].concat());
    assert_eq!(std::fs::read_to_string(b.join("log.jsonl")).unwrap().lines().count(), 2);
    let export = |run: &Path| {
        let out = run.join("model.safetensors");
        ok(&[
            "export",
            "--checkpoint",
            s(&run.join("checkpoint.saad")),
            "--format",
            "safetensors",
            "--out",
            s(&out),
        ]);
        std::fs::read(out).unwrap()
    };
    assert!(export(&a) == export(&b), "resumed weights differ from the uninterrupted run");

    // Evaluation of the result, as JSON.
    let out = ok(&[
        "eval",
        "--checkpoint",
        s(&b.join("checkpoint.saad")),
        "--attacks",
        "clean,fgsm,pgd3",
        "--n",
        "40",
        "--json",
        "--device",
        "flex",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[2]["attack"], "pgd3");
    assert_eq!(results[0]["total"], 40);

    // Bad input: a foreign file as checkpoint, a missing checkpoint, a bad architecture.
    let junk = dir.join("junk.pt");
    std::fs::write(&junk, b"PK\x03\x04not ours").unwrap();
    fails(&["eval", "--checkpoint", s(&junk)], &["junk.pt", "not a saad checkpoint"]);
    fails(&["eval", "--checkpoint", s(&dir.join("nope.saad"))], &["nope.saad"]);
    fails(&["train", "--arch", "vgg11", "--out", s(&dir.join("c"))], &["vgg11", "expected one of"]);
    let half = dir.join("half.saad");
    let bytes = std::fs::read(b.join("checkpoint.saad")).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    fails(&["eval", "--checkpoint", s(&half)], &["half.saad", "truncated"]);
}

fn accuracy(report: &serde_json::Value, attack: &str) -> f64 {
    report["results"].as_array().unwrap().iter().find(|r| r["attack"] == attack).unwrap()["accuracy"].as_f64().unwrap()
}

/// On the built-in digits at 32x32: natural training reaches >= 95% clean test accuracy while
/// PGD-20 (eps 8/255) breaks it; PGD-AT lifts PGD-20 accuracy far above the natural model's.
#[test]
fn digits_natural_is_accurate_but_fragile_and_pgd_at_is_robust() {
    let dir = tempdir("digits");
    let run = |method: &str, epochs: &str, batch: &str, extra: &[&str]| {
        let out = dir.join(method);
        let base = [
            "train",
            "--data",
            "digits",
            "--arch",
            "small-cnn-16",
            "--method",
            method,
            "--epochs",
            epochs,
            "--batch-size",
            batch,
            "--lr",
            "0.05",
            "--schedule",
            "cosine",
            "--no-augment",
            "--eval-every",
            "0",
            "--device",
            "flex",
            "--quiet",
            "--out",
            s(&out),
        ];
        ok(&[&base[..], extra].concat());
        let report = ok(&[
            "eval",
            "--checkpoint",
            s(&out.join("checkpoint.saad")),
            "--attacks",
            "clean,pgd20",
            "--json",
            "--device",
            "flex",
        ]);
        let v: serde_json::Value = serde_json::from_str(&report).unwrap();
        (accuracy(&v, "clean"), accuracy(&v, "pgd20"))
    };
    let (nat_clean, nat_pgd) = run("natural", "20", "32", &[]);
    eprintln!("natural: clean {nat_clean:.4}, PGD-20 {nat_pgd:.4}");
    assert!(nat_clean >= 0.95, "natural clean accuracy {nat_clean}");
    assert!(nat_pgd < 0.2, "natural PGD-20 accuracy {nat_pgd} is not far below clean {nat_clean}");
    let (at_clean, at_pgd) = run("pgd-at", "10", "64", &["--attack-steps", "5"]);
    eprintln!("pgd-at: clean {at_clean:.4}, PGD-20 {at_pgd:.4}");
    assert!(at_pgd >= nat_pgd + 0.3, "PGD-AT PGD-20 accuracy {at_pgd} vs natural {nat_pgd}");
    assert!(at_clean >= 0.6, "PGD-AT clean accuracy {at_clean}");
}
