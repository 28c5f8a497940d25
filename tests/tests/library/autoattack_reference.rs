//! Our standard AutoAttack against the reference implementation, point for point.
//!
//! tests/fixtures/autoattack/ holds a small robust model (`model.saad`: the page's SAAD student,
//! small-cnn-4 on 16x16 digits) and what the reference AutoAttack (pip `pyautoattack`, standard
//! version, eps 8/255, seed 0) did on it and the first n = 200 digits test images, made by
//! `make_fixture.py` there. The random streams differ, so the check is statistical: the final
//! robust verdicts must agree on at least 99% of the points and the robust accuracies within
//! one percentage point. Before that, the PyTorch twin the reference
//! attacked must be our model exactly (same clean logits; same logits on the reference's
//! adversarial images, which our model must misclassify too), or the comparison would be void.

use saad_core::attacks::autoattack::{AaAttack, AutoAttack, AutoAttackConfig};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::TensorData;
use saad_core::checkpoint::Checkpoint;
use saad_core::data::{DeviceSet, digits};
use saad_core::models::Net;
use saad_tests::{max_abs_diff, serial, to_vec};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;

const EPS: f32 = saad_core::attacks::STANDARD_EPS;
/// Largest logit difference allowed between our model and its PyTorch twin (float reordering).
const LOGIT_TOL: f32 = 1e-4;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/autoattack")
}

struct Fixture {
    json: Value,
    n: usize,
    model: Net,
    data: DeviceSet,
}

/// The reference record, the committed model on `device` and the same n images it attacked.
fn load(device: &Device) -> Fixture {
    let dir = fixture_dir();
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).expect("reference.json"))
            .expect("valid JSON");
    let bytes = std::fs::read(dir.join("model.saad")).expect("model.saad");
    let model =
        Checkpoint::decode(&bytes, "model.saad").unwrap().load_model(device, "model.saad").unwrap();
    let size = json["data"]["image_size"].as_u64().unwrap() as usize;
    let n = json["data"]["n"].as_u64().unwrap() as usize;
    assert_eq!(json["points"].as_array().unwrap().len(), n, "reference.json: one record per point");
    let (_, test) = digits::load(size).unwrap();
    let test = test.take(n);
    assert_eq!(test.len(), n);
    // The fixture hashed the CIFAR records (label byte, then the 3x32x32 pixels) it read.
    let mut records = Vec::with_capacity(n * (1 + test.image_len()));
    for i in 0..n {
        records.push(test.labels[i] as u8);
        records.extend_from_slice(&test.pixels[i * test.image_len()..(i + 1) * test.image_len()]);
    }
    assert_eq!(
        format!("{:016x}", fnv1a64(&records)),
        json["data"]["fnv1a64"].as_str().unwrap(),
        "the digits test images are not the ones the reference attacked"
    );
    Fixture { n, model, data: DeviceSet::upload(&test, device), json }
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// `z_y - max_{j != y} z_j`: positive means correctly classified.
fn margin(logits: &[f32], y: usize) -> f32 {
    let other = logits
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != y)
        .map(|(_, v)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    logits[y] - other
}

#[test]
fn the_pytorch_twin_the_reference_attacked_is_our_model() {
    let _g = serial();
    let device = Device::flex();
    let f = load(&device);
    let points = f.json["points"].as_array().unwrap();
    let ours = to_vec(f.model.forward(f.data.images.clone()));
    let k = ours.len() / f.n;
    let theirs: Vec<f32> = points.iter().flat_map(|p| floats(&p["clean_logits"])).collect();
    let d = max_abs_diff(&ours, &theirs);
    assert!(d <= LOGIT_TOL, "clean logits differ from the PyTorch twin's by {d}");

    // The reference's adversarial images: same logits here, so misclassified here as well.
    let adv_points: Vec<usize> = f.json["adv_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let bytes = std::fs::read(fixture_dir().join("reference_adv.bin")).expect("reference_adv.bin");
    let [_, c, h, w] = f.data.images.dims();
    assert_eq!(
        bytes.len(),
        adv_points.len() * c * h * w * 4,
        "reference_adv.bin does not hold one image per adversarial point"
    );
    if adv_points.is_empty() {
        return;
    }
    let pixels: Vec<f32> =
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let x_adv =
        Tensor::<4>::from_data(TensorData::new(pixels, [adv_points.len(), c, h, w]), &device);
    let idx = Tensor::<1, Int>::from_data(
        TensorData::new(
            adv_points.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [adv_points.len()],
        ),
        &device,
    );
    let linf = to_vec((x_adv.clone() - f.data.images.clone().select(0, idx)).abs().max())[0];
    assert!(linf <= EPS + 1e-6, "the reference's examples leave the eps-ball: {linf}");
    let ours = to_vec(f.model.forward(x_adv));
    let mut worst = 0f32;
    for (j, &i) in adv_points.iter().enumerate() {
        let p = &points[i];
        let y = p["label"].as_u64().unwrap() as usize;
        let (mine, theirs) = (&ours[j * k..(j + 1) * k], floats(&p["adv_logits"]));
        let d = max_abs_diff(mine, &theirs);
        assert!(
            d <= LOGIT_TOL,
            "point {i}: logits on the reference's adversarial image differ by {d}"
        );
        worst = worst.max(d);
        // FAB stops just past the boundary; a margin inside the tolerance proves nothing either way.
        if margin(&theirs, y) < -LOGIT_TOL {
            assert!(
                margin(mine, y) < 0.0,
                "point {i}: the reference's adversarial image does not fool our model (margin {})",
                margin(mine, y)
            );
        }
    }
    eprintln!(
        "twin: clean logits within {d:.2e}, logits on the reference's {} adversarial images within {worst:.2e}",
        adv_points.len()
    );
}

#[test]
fn standard_autoattack_agrees_with_the_reference_point_for_point() {
    let _g = serial();
    let device = Device::flex();
    let f = load(&device);
    let points = f.json["points"].as_array().unwrap();
    let forward = |x| f.model.forward(x);
    // As `saad eval --attacks autoattack` runs it (native/src/commands/eval.rs).
    let config = AutoAttackConfig { seed: 0, batch: 256, ..AutoAttackConfig::standard(EPS) };
    let start = Instant::now();
    let mut aa = AutoAttack::new(&forward, f.data.images.clone(), f.data.labels.clone(), config);
    let mut broken_by: Vec<Option<&str>> =
        aa.robust.iter().map(|r| if *r { None } else { Some("clean") }).collect();
    let mut trail = Vec::new();
    for attack in AaAttack::STANDARD {
        if aa.robust_count() == 0 {
            break;
        }
        let before = aa.robust.clone();
        let t0 = Instant::now();
        let step = aa.run_attack(attack, &mut |_, _| {});
        for i in 0..f.n {
            if before[i] && !aa.robust[i] {
                broken_by[i] = Some(attack.name());
            }
        }
        trail.push(format!(
            "{} -> {} ({:.1} s)",
            attack.name(),
            step.robust,
            t0.elapsed().as_secs_f64()
        ));
    }
    let seconds = start.elapsed().as_secs_f64();
    let (recheck, _) = aa.recheck();
    assert_eq!(
        recheck,
        aa.robust_count(),
        "our reported robust accuracy is not the one of the returned examples"
    );

    let ref_trail: Vec<String> = f.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} -> {}", s["attack"].as_str().unwrap(), s["robust"]))
        .collect();
    let ref_clean = f.json["clean_correct"].as_u64().unwrap() as usize;
    let ref_robust = f.json["robust"].as_u64().unwrap() as usize;
    let ours_robust = aa.robust_count();
    eprintln!(
        "n = {}: clean {} (reference {ref_clean}); robust {ours_robust} (reference {ref_robust}); ours {seconds:.1} s",
        f.n, aa.clean_correct
    );
    eprintln!("  ours:      {}", trail.join(", "));
    eprintln!("  reference: {}", ref_trail.join(", "));

    let mut disagree = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if p["robust"].as_bool().unwrap() != aa.robust[i] {
            let by = |b: Option<&str>| b.unwrap_or("-").to_string();
            eprintln!(
                "  point {i} (label {}): reference {} (broken by {}), ours {} (broken by {})",
                p["label"],
                if p["robust"].as_bool().unwrap() { "robust" } else { "broken" },
                by(p["broken_by"].as_str()),
                if aa.robust[i] { "robust" } else { "broken" },
                by(broken_by[i]),
            );
            disagree.push(i);
        }
    }
    assert_eq!(
        aa.clean_correct, ref_clean,
        "clean accuracy differs: the twin or the images are not the reference's"
    );
    let agreement = 1.0 - disagree.len() as f64 / f.n as f64;
    let gap = 100.0 * (ours_robust as f64 - ref_robust as f64).abs() / f.n as f64;
    eprintln!(
        "  per-point agreement {:.2}% ({} of {} differ), robust accuracy gap {gap:.2} points",
        100.0 * agreement,
        disagree.len(),
        f.n
    );
    assert!(
        agreement >= 0.99,
        "verdicts agree on only {:.2}% of the points (differ: {disagree:?})",
        100.0 * agreement
    );
    assert!(
        gap <= 1.0,
        "robust accuracy {ours_robust}/{} vs the reference's {ref_robust}/{}: {gap:.2} points apart",
        f.n,
        f.n
    );
}
