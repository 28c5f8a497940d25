//! saad-web: the browser page's engine, a thin wasm-bindgen layer over saad-core. Every read of
//! a tensor is asynchronous (WebGPU has no synchronous reads); the attacks, models, losses and
//! the training loop are the core's own.
//!
//! `Lab` (main thread): models, images, one-image attacks with their iterates, batch transfer
//! views. `TrainingLab` (Web Worker): a short distillation with per-epoch statistics.

mod render;

use render::{delta_rgba, image_rgba};
use saad_core::attacks::{ObjectiveKind, Pgd};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::TensorData;
use saad_core::burn::tensor::activation::softmax;
use saad_core::checkpoint::{Checkpoint, DatasetInfo};
use saad_core::data::{DeviceSet, ImageSet, cifar, digits};
use saad_core::losses::{cross_entropy, cw_margin, entropy};
use saad_core::models::{ModelSpec, Net};
use saad_core::train::{
    EpochRun, LrSchedule, MethodKind, MethodParams, TrainConfig, Trainer, TransferStats,
};
use saad_core::transfer::{
    COLUMNS, TransferAttack, batch_columns, craft_traced, records_from_columns,
};
use serde_json::json;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
    type Error;
    #[wasm_bindgen(constructor)]
    fn new() -> Error;
    #[wasm_bindgen(method, getter)]
    fn stack(this: &Error) -> String;
}

/// Runs when the module is instantiated (page and worker): a Rust panic becomes a wasm trap
/// ("unreachable") with no message, so print the message first.
#[wasm_bindgen(start)]
pub fn on_start() {
    std::panic::set_hook(Box::new(|info| {
        console_error(&format!("saad-web panicked: {info}\n{}", Error::new().stack()))
    }));
}

fn err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A device for `backend`: "webgpu" (the browser's adapter) or "cpu" (flex in wasm).
async fn device_for(backend: &str) -> Result<(Device, String), JsError> {
    match backend {
        "cpu" => Ok((Device::flex(), "CPU (flex, wasm)".into())),
        "webgpu" => {
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| err(format!("WebGPU is not available: {e}")))?;
            // Browsers may hide the adapter's name.
            let name = device.identity().map(|i| i.name).unwrap_or_default();
            Ok((
                device,
                if name.trim().is_empty() { "WebGPU".into() } else { format!("WebGPU ({name})") },
            ))
        }
        other => Err(err(format!("unknown backend {other:?}: expected webgpu or cpu"))),
    }
}

async fn read(t: Tensor<1>) -> Result<Vec<f32>, JsError> {
    Ok(t.into_data_async().await.map_err(err)?.iter::<f32>().collect())
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) })
        .0
}

/// The page's attack names: fgsm, pgd (CE, uniform start) or saad (SAAD's inner maximisation).
fn transfer_attack(name: &str, steps: usize) -> Result<TransferAttack, JsError> {
    match name {
        "fgsm" => Ok(TransferAttack::Fgsm),
        "pgd" => Ok(TransferAttack::Pgd { steps }),
        "saad" => Ok(TransferAttack::Saad { steps }),
        other => Err(err(format!("unknown attack {other:?}: expected fgsm, pgd or saad"))),
    }
}

fn load_model(
    bytes: &[u8],
    name: &str,
    device: &Device,
) -> Result<(Net, ModelSpec, DatasetInfo), JsError> {
    let ckpt = Checkpoint::decode(bytes, name).map_err(err)?;
    let model = ckpt.load_model(device, name).map_err(err)?;
    Ok((model, ckpt.header.model.clone(), ckpt.header.dataset.clone()))
}

/// The page's state on the main thread.
#[wasm_bindgen]
pub struct Lab {
    device: Device,
    backend: String,
    teacher: Option<(Net, ModelSpec, DatasetInfo)>,
    student: Option<(Net, ModelSpec, DatasetInfo)>,
    images: Option<ImageSet>,
    data: Option<DeviceSet>,
}

#[wasm_bindgen]
impl Lab {
    /// A lab on "webgpu" or "cpu".
    pub async fn create(backend: String) -> Result<Lab, JsError> {
        let (device, backend) = device_for(&backend).await?;
        Ok(Lab { device, backend, teacher: None, student: None, images: None, data: None })
    }

    /// The backend in use, in words.
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Loads the teacher from a saad model file; returns a description.
    pub fn load_teacher(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let (m, spec, info) = load_model(bytes, name, &self.device)?;
        let d = format!("{spec}, trained on {}", info.name);
        self.teacher = Some((m, spec, info));
        Ok(d)
    }

    /// Loads the student from a saad model file; returns a description.
    pub fn load_student(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let (m, spec, info) = load_model(bytes, name, &self.device)?;
        let d =
            format!("{spec}, trained on {} ({}x{})", info.name, info.image_size, info.image_size);
        self.student = Some((m, spec, info));
        Ok(d)
    }

    /// The built-in digits test split rendered at `size`; returns the number of images.
    pub fn use_digits(&mut self, size: usize) -> Result<usize, JsError> {
        let (_, test) = digits::load(size).map_err(err)?;
        self.set_images(test)
    }

    /// A CIFAR-10 binary batch (e.g. `test_batch.bin`); returns the number of images.
    pub fn use_cifar10(&mut self, bytes: &[u8], name: &str) -> Result<usize, JsError> {
        let set = cifar::parse(bytes, cifar::CifarKind::Cifar10, name).map_err(err)?;
        self.set_images(set)
    }

    fn set_images(&mut self, set: ImageSet) -> Result<usize, JsError> {
        if let Some((_, spec, info)) = &self.student
            && (set.num_classes != spec.num_classes || set.height != info.image_size)
        {
            return Err(err(format!(
                "these images ({} classes, {}x{}) do not fit the student ({} classes, {}x{}): load matching models first",
                set.num_classes,
                set.height,
                set.width,
                spec.num_classes,
                info.image_size,
                info.image_size
            )));
        }
        let n = set.len();
        self.data = Some(DeviceSet::upload(&set, &self.device));
        self.images = Some(set);
        Ok(n)
    }

    /// The image size the student was trained at (0 without a student).
    pub fn student_image_size(&self) -> usize {
        self.student.as_ref().map_or(0, |s| s.2.image_size)
    }

    pub fn image_size(&self) -> usize {
        self.images.as_ref().map_or(0, |s| s.height)
    }

    pub fn label(&self, index: usize) -> u32 {
        self.images.as_ref().map_or(0, |s| s.labels[index])
    }

    /// Class names as JSON.
    pub fn class_names(&self) -> String {
        json!(self.images.as_ref().map(|s| s.class_names.clone()).unwrap_or_default()).to_string()
    }

    /// RGBA pixels of image `index` (for a canvas).
    pub fn thumbnail(&self, index: usize) -> Vec<u8> {
        let s = self.images.as_ref().expect("images loaded");
        let len = s.image_len();
        let px: Vec<f32> =
            s.pixels[index * len..(index + 1) * len].iter().map(|&p| p as f32 / 255.0).collect();
        image_rgba(&px, s.height, s.width)
    }

    /// The teacher and the student, once they fit each other and the images: a mismatch is
    /// a message, not a shape error inside a forward pass.
    fn models(&self) -> Result<(&Net, &Net), JsError> {
        let t = self.teacher.as_ref().ok_or_else(|| err("load a teacher first"))?;
        let s = self.student.as_ref().ok_or_else(|| err("load a student first"))?;
        let (ti, si) = (&t.2, &s.2);
        if t.1.num_classes != s.1.num_classes || ti.image_size != si.image_size {
            return Err(err(format!(
                "the teacher ({}, {} classes, {}x{} {}) and the student ({}, {} classes, {}x{} {}) do not match: load a pair trained on the same data",
                t.1,
                t.1.num_classes,
                ti.image_size,
                ti.image_size,
                ti.name,
                s.1,
                s.1.num_classes,
                si.image_size,
                si.image_size,
                si.name
            )));
        }
        if let Some(set) = &self.images
            && (set.num_classes != s.1.num_classes || set.height != si.image_size)
        {
            return Err(err(format!(
                "the images ({} classes, {}x{}) do not fit the models ({} classes, {}x{}): load matching images",
                set.num_classes,
                set.height,
                set.width,
                s.1.num_classes,
                si.image_size,
                si.image_size
            )));
        }
        Ok((&t.0, &s.0))
    }

    fn example(&self, index: usize) -> Result<(Tensor<4>, Tensor<1, Int>), JsError> {
        let data = self.data.as_ref().ok_or_else(|| err("load images first"))?;
        if index >= data.len {
            return Err(err(format!("image {index} out of range (0..{})", data.len)));
        }
        let ix =
            Tensor::<1, Int>::from_data(TensorData::new(vec![index as i64], [1]), &self.device);
        Ok(data.gather(ix))
    }

    /// Attacks image `index` with the student as the attacked model: `attack` is fgsm, pgd or
    /// saad (SAAD's inner maximisation against the teacher surrogate). Returns JSON with the
    /// clean, adversarial and perturbation images (RGBA), every iterate and the loss / margin
    /// trace, teacher and student probabilities on both inputs, whether the example transfers,
    /// the teacher's entropy and the Linf norm.
    pub async fn attack(
        &self,
        index: usize,
        attack: String,
        eps: f32,
        alpha: f32,
        steps: usize,
        seed: u32,
    ) -> Result<String, JsError> {
        let (teacher, student) = self.models()?;
        let (x, y) = self.example(index)?;
        self.device.seed(seed as u64);
        let kind = transfer_attack(&attack, steps)?;
        let (x_adv, iterates) = craft_traced(
            kind,
            student,
            teacher,
            &x,
            &y,
            eps,
            alpha,
            &MethodParams::default(),
            true,
        );
        // One read: the student's loss and margin along the way, the clean image and every
        // iterate (the iterates start from a random point, so the perturbation is measured
        // against x itself), both models' probabilities on x and x', the teacher's entropy on x'.
        let k = iterates.len();
        let logits = student.forward(Tensor::cat(iterates.clone(), 0));
        let yk = y.clone().expand([k]);
        let frames = Tensor::cat([vec![x.clone()], iterates].concat(), 0);
        let probe = Tensor::cat(vec![x.clone(), x_adv], 0);
        let t_logits = teacher.forward(probe.clone());
        let [_, c] = t_logits.dims();
        let v = read(Tensor::cat(
            vec![
                cross_entropy(logits.clone(), yk.clone()),
                cw_margin(logits, yk).neg(),
                frames.reshape([-1]),
                softmax(t_logits.clone(), 1).reshape([-1]),
                softmax(student.forward(probe), 1).reshape([-1]),
                entropy(t_logits.slice(1..2)),
            ],
            0,
        ))
        .await?;
        let (h, w) = (self.image_size(), self.image_size());
        let per = 3 * h * w;
        let (trace, rest) = v.split_at(2 * k);
        let (frames, rest) = rest.split_at((k + 1) * per);
        let (pt, rest) = rest.split_at(2 * c);
        let (ps, rest) = rest.split_at(2 * c);
        let teacher_entropy = rest[0];
        let clean = &frames[..per];
        let frame = |i: usize| &frames[(i + 1) * per..(i + 2) * per];
        let adv = frame(k - 1);
        let linf = clean.iter().zip(adv).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let (pt_clean, pt_adv) = pt.split_at(c);
        let (ps_clean, ps_adv) = ps.split_at(c);
        let label = self.label(index) as usize;
        Ok(json!({
            "index": index, "label": label, "attack": attack, "eps": eps, "alpha": alpha, "steps": steps,
            "linf": linf,
            "clean": image_rgba(clean, h, w), "adv": image_rgba(adv, h, w),
            "frames": (0..k).map(|i| image_rgba(frame(i), h, w)).collect::<Vec<_>>(),
            // Pixel values, for `perturbation_rgba` at whatever gain the page shows.
            "clean_values": clean, "frame_values": (0..k).map(frame).collect::<Vec<_>>(),
            "loss": trace[..k], "margin": trace[k..],
            "teacher_clean": pt_clean, "teacher_adv": pt_adv, "student_clean": ps_clean, "student_adv": ps_adv,
            "teacher_pred_clean": argmax(pt_clean), "teacher_pred_adv": argmax(pt_adv),
            "student_pred_clean": argmax(ps_clean), "student_pred_adv": argmax(ps_adv),
            "transfers": argmax(pt_adv) != label, "student_fooled": argmax(ps_adv) != label,
            "teacher_entropy": teacher_entropy,
        })
        .to_string())
    }

    /// The batch view: images `start..start + count` attacked together; per-sample transfer
    /// records (with SAAD weights relative to this batch), TAS and the weight histogram.
    #[allow(clippy::too_many_arguments)] // one argument per control of the page
    pub async fn batch(
        &self,
        start: usize,
        count: usize,
        attack: String,
        eps: f32,
        alpha: f32,
        steps: usize,
        seed: u32,
    ) -> Result<String, JsError> {
        let (teacher, student) = self.models()?;
        let data = self.data.as_ref().ok_or_else(|| err("load images first"))?;
        let end = (start + count).min(data.len);
        if start >= end {
            return Err(err("empty batch"));
        }
        let attack = transfer_attack(&attack, steps)?;
        self.device.seed(seed as u64);
        let x = data.images.clone().slice(start..end);
        let y = data.labels.clone().slice(start..end);
        let params = MethodParams::default();
        let (cols, sums, _) = batch_columns(teacher, student, &x, &y, attack, eps, alpha, &params);
        let n = end - start;
        let v = read(Tensor::cat(vec![cols.reshape([n * COLUMNS]), sums], 0)).await?;
        let records = records_from_columns(&v[..n * COLUMNS], start);
        let stats = TransferStats::from_sums(&v[n * COLUMNS..]).ok_or_else(|| err("no samples"))?;
        Ok(json!({"records": records, "stats": stats}).to_string())
    }
}

/// A short distillation run for the page's training lab (meant for a Web Worker).
#[wasm_bindgen]
pub struct TrainingLab {
    trainer: Trainer,
    /// The teacher file's model, evaluated once for the page's comparison of teachers.
    teacher: Net,
    train: DeviceSet,
    test: DeviceSet,
    backend: String,
    /// The epoch in progress, trained one batch per call.
    run: Option<EpochRun>,
}

#[wasm_bindgen]
impl TrainingLab {
    /// A run on `backend` ("webgpu" or "cpu"): `method` (saad, rslad, adaad, pgd-at, ...) of a
    /// fresh `arch` student on the digits at the teacher's image size, distilled from the
    /// teacher file (ignored by pgd-at), `epochs` epochs, attack of `steps` steps.
    pub async fn create(
        backend: String,
        teacher: Vec<u8>,
        method: String,
        arch: String,
        epochs: usize,
        steps: usize,
        seed: u32,
    ) -> Result<TrainingLab, JsError> {
        let (device, backend) = device_for(&backend).await?;
        let (t, tspec, info) = load_model(&teacher, "teacher", &device)?;
        let method: MethodKind = method.parse().map_err(err)?;
        let arch = arch.parse().map_err(err)?;
        let (train_set, test_set) = digits::load(info.image_size).map_err(err)?;
        let mut config = TrainConfig::reference(method);
        config.epochs = epochs.max(1);
        config.batch_size = 64;
        config.lr = 0.05;
        config.schedule = LrSchedule::Cosine;
        config.seed = seed as u64;
        config.attack.steps = steps.max(1);
        config.augment = None;
        config.swa_start = None;
        let data_info = DatasetInfo {
            name: "digits".into(),
            image_size: info.image_size,
            num_classes: tspec.num_classes,
        };
        let mut trainer =
            Trainer::new(ModelSpec::new(arch, tspec.num_classes), config, data_info, &device);
        if method.needs_teacher() {
            trainer = trainer.with_teacher(&t);
        }
        Ok(TrainingLab {
            teacher: t,
            train: DeviceSet::upload(&train_set, &device),
            test: DeviceSet::upload(&test_set.take(200), &device),
            trainer,
            backend,
            run: None,
        })
    }

    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    pub fn is_done(&self) -> bool {
        self.trainer.is_done()
    }

    /// Trains the next batch (starting an epoch when none is in progress) and reads the
    /// epoch's running sums, the one read per batch; returns JSON: epoch (1-based), batch,
    /// batches, running loss and training accuracy. The worker awaits between batches, so a
    /// Stop gets in and the charts move on every step.
    pub async fn train_batch(&mut self) -> Result<String, JsError> {
        let mut run = match self.run.take() {
            Some(run) => run,
            None => self.trainer.start_epoch(&self.train),
        };
        self.trainer.train_next_batch(&mut run, &self.train);
        let v = read(run.sums.clone().slice(0..2)).await?;
        let images = run.images().max(1) as f32;
        let out = json!({
            "epoch": self.trainer.epochs_done + 1, "epochs": self.trainer.config.epochs,
            "batch": run.batches_done(), "batches": run.num_batches(),
            "loss": v[0] / images, "train_acc": v[1] / images,
        });
        self.run = Some(run);
        Ok(out.to_string())
    }

    /// True when the epoch in progress has no batches left (call `end_epoch`).
    pub fn epoch_complete(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.is_complete())
    }

    /// Closes the epoch trained by `train_batch`; returns JSON: epoch, batches, loss, training
    /// accuracy, TAS of the epoch.
    pub async fn end_epoch(&mut self) -> Result<String, JsError> {
        let run = self.run.take().ok_or_else(|| err("no epoch in progress"))?;
        if !run.is_complete() {
            let left = run.num_batches() - run.batches_done();
            self.run = Some(run);
            return Err(err(format!("the epoch has {left} batches left")));
        }
        let batches = run.num_batches();
        let pending = self.trainer.end_epoch(run, &self.train);
        let stats = pending.finish(&read(pending.sums.clone()).await?);
        if let Some(d) = &stats.divergence {
            let at = d
                .first_batch
                .map(|b| format!(" at batch {b} of {}", d.batches))
                .unwrap_or_default();
            return Err(err(format!(
                "training diverged in epoch {}{at}: the loss or the weights became NaN or infinite; start again with a lower learning rate",
                stats.epoch
            )));
        }
        Ok(json!({
            "epoch": stats.epoch, "epochs": self.trainer.config.epochs, "batches": batches,
            "loss": stats.loss, "train_acc": stats.accuracy, "tas": stats.transfer.as_ref().map(|t| t.tas),
        })
        .to_string())
    }

    /// Clean and PGD-10 accuracy of the student on 200 test images; JSON.
    pub async fn evaluate(&self) -> Result<String, JsError> {
        self.accuracy(&self.trainer.eval_model()).await
    }

    /// The same for the teacher (the page shows how strong each teacher is).
    pub async fn evaluate_teacher(&self) -> Result<String, JsError> {
        self.accuracy(&self.teacher).await
    }

    /// Clean and PGD-10 accuracy of `model` on the 200 test images at the run's eps, one read.
    async fn accuracy(&self, model: &Net) -> Result<String, JsError> {
        let forward = |t| model.forward(t);
        let (x, y) = (self.test.images.clone(), self.test.labels.clone());
        let eps = self.trainer.config.attack.eps;
        let x_adv = Pgd { steps: 10, ..Pgd::pgd20(eps) }.run(
            &forward,
            &ObjectiveKind::CrossEntropy { labels: y.clone() },
            &x,
        );
        let correct = |logits: Tensor<2>| saad_core::losses::correct(logits, y.clone()).mean();
        let acc =
            read(Tensor::cat(vec![correct(model.forward(x)), correct(model.forward(x_adv))], 0))
                .await?;
        Ok(json!({"test_clean_acc": acc[0], "test_pgd10_acc": acc[1]}).to_string())
    }

    /// The student as a saad model file (weights only), for download.
    pub async fn save_student(&self) -> Result<Vec<u8>, JsError> {
        let host =
            saad_core::host_copy::model_on_host(&self.trainer.eval_model()).await.map_err(err)?;
        Ok(self.trainer.model_file(&host, false).encode())
    }
}

/// The registered training methods as JSON `[{name, title, summary, needs_teacher}]`, in the
/// core's order: the page lists these.
#[wasm_bindgen]
pub fn methods() -> String {
    let list: Vec<_> = MethodKind::all()
        .map(|m| {
            let info = m.info();
            json!({"name": info.name, "title": info.title, "summary": info.summary,
                   "needs_teacher": info.needs_teacher})
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The SAAD weights `[w, w^]` an image of teacher entropy `entropy` would get in a batch whose
/// other entropies range over `[batch_min, batch_max]`, with the default constants
/// (`saad_core::losses::saad::saad_weight_in_batch`).
#[wasm_bindgen]
pub fn saad_weight_in_batch(entropy: f64, batch_min: f64, batch_max: f64) -> Vec<f64> {
    let scale = MethodParams::default().saad_scale;
    let (w, w_hat) =
        saad_core::losses::saad::saad_weight_in_batch(entropy, batch_min, batch_max, scale);
    vec![w, w_hat]
}

/// The perturbation `adv - clean` of two CHW images (3 channels, `size` x `size`, values in
/// [0,1]) as RGBA for a canvas: white at zero, blue towards `-range`, orange towards `+range`.
#[wasm_bindgen]
pub fn perturbation_rgba(clean: &[f32], adv: &[f32], size: usize, range: f32) -> Vec<u8> {
    delta_rgba(clean, adv, size, size, range)
}

/// The colour scale of [`perturbation_rgba`] as a `width` x 1 RGBA strip from `-range` to
/// `+range` (the page's legend under the perturbation).
#[wasm_bindgen]
pub fn perturbation_scale_rgba(width: usize, range: f32) -> Vec<u8> {
    let width = width.max(2);
    let step: Vec<f32> =
        (0..width).map(|i| range * (2.0 * i as f32 / (width - 1) as f32 - 1.0)).collect();
    let adv = [step.as_slice(), &step, &step].concat();
    delta_rgba(&vec![0.0; 3 * width], &adv, 1, width, range)
}

/// The number of trainable parameters of an architecture id (e.g. `resnet18`), or 0 for an
/// unknown id.
#[wasm_bindgen]
pub fn param_count(arch: &str, classes: usize) -> usize {
    match arch.parse::<saad_core::models::Arch>() {
        Ok(arch) => ModelSpec::new(arch, classes).init(&Device::flex()).num_trainable_params(),
        Err(_) => 0,
    }
}
