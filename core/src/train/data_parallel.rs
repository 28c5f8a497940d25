//! Data-parallel training in one process over several devices (local GPUs, or burn remote
//! devices on other machines), the pattern of burn-train's multi-device execution written for
//! this crate's own loop.
//!
//! One step of a global batch `B` on devices `0..K` (device 0 is the main one, which holds the
//! data, the optimizer and the model that is checkpointed):
//! 1. the batch is drawn and augmented on the main device exactly as on one device, then cut
//!    into `K` contiguous shards (sizes differ by at most one) that move to their devices;
//! 2. each device computes its shard's loss with its own replica of the student and the teacher,
//!    on its own thread; the loss is scaled by `n_k / B`, so the shards' gradients add up to the
//!    gradient of the global batch mean;
//! 3. values a method needs over the whole batch (SAAD's entropy range) are exchanged between
//!    the shards through [`ShardExchange`], in shard order;
//! 4. the gradients move to the main device and are added in shard order (deterministic), one
//!    optimizer step runs there, and the new weights are copied back to every replica.
//!
//! BatchNorm sees each shard's own batch statistics during training (as PyTorch's
//! DistributedDataParallel without SyncBatchNorm). After each step the running statistics of the
//! replicas are averaged in shard order into the main model's, so the running mean is the one of
//! the global batch when the shards are equal; the running variance misses the spread between
//! the shard means.

use crate::models::Net;
use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// One extra device of a data-parallel run: its student and teacher replicas.
pub struct Replica {
    /// The plain (non-autodiff) device.
    pub device: Device,
    /// The student, on the autodiff device, weights copied from the main model every step.
    pub model: Net,
    /// The frozen teacher in eval mode.
    pub teacher: Option<Net>,
}

/// The contiguous shard sizes of a batch of `n` over `k` devices (the first `n % k` one larger).
pub fn shard_sizes(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

/// `t` on `device`, through the host when it is elsewhere: one read where it is, one upload.
///
/// burn moves a tensor between two remote servers directly, and in 0.22.1 an operation queued
/// right after such a move sometimes finds the tensor missing on the server ("Should have
/// handle for tensor"; seen here in about one 2-device run in ten); through the host every
/// move is complete before anything uses it. Local devices (two GPUs) go through the host in
/// burn's own `to_device` too.
pub fn move_to<const D: usize, K: burn::tensor::kind::Basic>(
    t: Tensor<D, K>,
    device: &Device,
) -> Tensor<D, K> {
    if t.device() == *device {
        return t;
    }
    let data = t.into_data();
    BYTES_MOVED.fetch_add(data.bytes().len() as u64, Ordering::Relaxed);
    Tensor::from_data(data, device)
}

/// A panic's message (a device that fails mid-step panics inside burn).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
}

/// The message of a shard stopped because another one failed (see [`ShardExchange::fail`]).
pub(crate) const ABORTED: &str = "another device of this data-parallel step failed";

static BYTES_MOVED: AtomicU64 = AtomicU64::new(0);

/// Tensor bytes moved between devices by [`move_to`] so far in this process (each byte once:
/// read from one device, written to another).
pub fn bytes_moved() -> u64 {
    BYTES_MOVED.load(Ordering::Relaxed)
}

/// Lets the shards of one step exchange small per-sample vectors (on one device there is nothing
/// to exchange). Every shard must call [`all_gather`](Self::all_gather) the same number of times.
pub struct ShardExchange {
    state: Mutex<ExchangeState>,
    turn: Condvar,
}

struct ExchangeState {
    /// Per shard: its vector, for the round in progress.
    slots: Vec<Option<Vec<f32>>>,
    /// How many shards have taken the gathered result of the current round.
    taken: usize,
    /// The concatenation of the current round, once every shard has put its vector.
    gathered: Option<Vec<f32>>,
    /// Set when a shard failed: the others stop waiting.
    failed: bool,
}

impl ShardExchange {
    /// An exchange between `shards` shards.
    pub fn new(shards: usize) -> Self {
        Self {
            state: Mutex::new(ExchangeState {
                slots: vec![None; shards],
                taken: 0,
                gathered: None,
                failed: false,
            }),
            turn: Condvar::new(),
        }
    }

    /// The vectors of every shard concatenated in shard order, on the device of `values`
    /// (`shard`'s own contribution). Blocks until every shard has given its own. The vectors
    /// meet on the host: one small read per shard and call.
    ///
    /// # Panics
    /// If another shard failed meanwhile (the step is lost either way).
    pub fn all_gather(&self, shard: usize, values: Tensor<1>) -> Tensor<1> {
        let device = values.device();
        let values: Vec<f32> = crate::host_copy::read_f32(values);
        BYTES_MOVED.fetch_add(4 * values.len() as u64, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A shard that is quick may arrive while the previous round is still being taken.
        while state.gathered.is_some() && !state.failed {
            state = self.turn.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        assert!(!state.failed, "{}", ABORTED);
        assert!(state.slots[shard].is_none(), "shard {shard} gave two vectors to one exchange");
        state.slots[shard] = Some(values);
        if state.slots.iter().all(Option::is_some) {
            let all: Vec<f32> = state.slots.iter_mut().flat_map(|s| s.take().unwrap()).collect();
            state.gathered = Some(all);
            self.turn.notify_all();
        }
        while state.gathered.is_none() && !state.failed {
            state = self.turn.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        assert!(!state.failed, "{}", ABORTED);
        let out = state.gathered.clone().unwrap();
        state.taken += 1;
        if state.taken == state.slots.len() {
            state.taken = 0;
            state.gathered = None;
            self.turn.notify_all();
        }
        drop(state);
        let n = out.len();
        Tensor::from_data(TensorData::new(out, [n]), &device)
    }

    /// Marks the step as failed, releasing every shard waiting in [`all_gather`](Self::all_gather).
    pub fn fail(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).failed = true;
        self.turn.notify_all();
    }
}

/// Every float tensor of a module (parameters and running statistics) in visit order, with its
/// id, flattened.
#[derive(Default)]
pub(crate) struct Floats {
    pub(crate) ids: Vec<ParamId>,
    pub(crate) shapes: Vec<Vec<usize>>,
    pub(crate) values: Vec<Tensor<1>>,
}

impl ModuleVisitor for Floats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().detach().without_autodiff();
        self.ids.push(param.id);
        self.shapes.push(value.dims().to_vec());
        self.values.push(value.reshape([-1]));
    }
}

impl Floats {
    /// The floats of `module`.
    pub(crate) fn of<M: Module>(module: &M) -> Self {
        let mut floats = Self::default();
        module.visit(&mut floats);
        floats
    }

    /// The element count of each float.
    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.shapes.iter().map(|s| s.iter().product()).collect()
    }
}

/// `parts` as one vector moved to `device` (one transfer) and cut back into the parts there.
pub(crate) fn move_all(parts: Vec<Tensor<1>>, device: &Device) -> Vec<Tensor<1>> {
    if parts.is_empty() {
        return parts;
    }
    let sizes: Vec<usize> = parts.iter().map(|p| p.dims()[0]).collect();
    let flat = move_to(Tensor::cat(parts, 0), device);
    let mut from = 0;
    sizes
        .into_iter()
        .map(|n| {
            from += n;
            flat.clone().slice(from - n..from)
        })
        .collect()
}

/// Replaces float tensors of a module, in visit order, by the given values (`None`: kept), moved
/// to the tensor's device, keeping whether it is on autodiff and requires a gradient.
struct LoadFloats {
    values: std::vec::IntoIter<Option<Tensor<1>>>,
}

impl ModuleMapper for LoadFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(new) =
            self.values.next().expect("modules of one architecture have the same floats")
        else {
            return param;
        };
        param.map(|old| {
            let shape: [usize; D] = old.dims();
            let autodiff = old.is_autodiff();
            let require_grad = old.is_require_grad();
            let plain = old.device().without_autodiff();
            let new = move_to(new, &plain).reshape(shape);
            let new = if autodiff { new.autodiff() } else { new };
            new.set_require_grad(require_grad)
        })
    }
}

/// `to` with the training flags (such as BatchNorm's) of `from`, a module of the same
/// architecture, in visit order.
pub(crate) fn copy_flags<M: Module>(to: M, from: &M) -> M {
    struct Flags(Vec<Param<Flag>>);
    impl ModuleVisitor for Flags {
        fn visit_flag(&mut self, flag: &Param<Flag>) {
            self.0.push(flag.clone());
        }
    }
    struct Set(std::vec::IntoIter<Param<Flag>>);
    impl ModuleMapper for Set {
        fn map_flag(&mut self, _flag: Param<Flag>) -> Param<Flag> {
            self.0.next().expect("modules of one architecture have the same flags")
        }
    }
    let mut flags = Flags(Vec::new());
    from.visit(&mut flags);
    to.map(&mut Set(flags.0.into_iter()))
}

/// `module` with its float tensors replaced, in visit order, by `values` (`None`: kept).
pub(crate) fn load_floats<M: Module>(module: M, values: Vec<Option<Tensor<1>>>) -> M {
    module.map(&mut LoadFloats { values: values.into_iter() })
}

/// `module` (eval mode, e.g. the teacher) on `device`, its floats moved in one transfer. Its
/// running statistics are its own (`valid` makes new ones), so the original stays where it is.
pub(crate) fn eval_copy_on(module: &Net, device: &Device) -> Net {
    // The values are on `device` already: each replaces its parameter's value, reshaped.
    struct Replace(std::vec::IntoIter<Tensor<1>>);
    impl ModuleMapper for Replace {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let new = self.0.next().expect("the same module");
            param.map(|old| new.reshape(old.dims()))
        }
    }
    let copy = module.valid();
    let values = move_all(Floats::of(&copy).values, device);
    copy.map(&mut Replace(values.into_iter()))
}

/// One shard's gradients: every float's gradient of a replica, flattened and concatenated in
/// visit order (the running statistics have none), still on the shard's device.
pub(crate) struct ShardGrads {
    /// The concatenated gradients.
    pub(crate) flat: Tensor<1>,
    /// Per float in visit order: whether it has a gradient (it is trained).
    pub(crate) trained: Vec<bool>,
}

impl ShardGrads {
    /// The gradients of `model` (a replica on any device) in `grads`.
    pub(crate) fn collect(model: &Net, mut grads: GradientsParams) -> Self {
        struct Collect<'a> {
            grads: &'a mut GradientsParams,
            parts: Vec<Tensor<1>>,
            trained: Vec<bool>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let grad = self.grads.remove::<D>(param.id);
                self.trained.push(grad.is_some());
                self.parts.extend(grad.map(|g| g.reshape([-1])));
            }
        }
        let mut c = Collect { grads: &mut grads, parts: Vec::new(), trained: Vec::new() };
        model.visit(&mut c);
        Self { flat: Tensor::cat(c.parts, 0), trained: c.trained }
    }
}

/// The gradients of the shards added in shard order on `device` (one transfer per shard), keyed
/// by the main model's parameter ids.
pub(crate) fn combine_grads(
    main: &Floats,
    shards: Vec<ShardGrads>,
    device: &Device,
) -> GradientsParams {
    let trained = shards[0].trained.clone();
    let total = shards
        .into_iter()
        .map(|s| move_to(s.flat, device))
        .reduce(|acc, g| acc + g)
        .expect("at least one shard");
    let mut out = GradientsParams::new();
    let mut from = 0;
    for (i, size) in main.sizes().into_iter().enumerate() {
        if trained[i] {
            let flat = total.clone().slice(from..from + size);
            register(&mut out, main.ids[i], &main.shapes[i], flat);
            from += size;
        }
    }
    out
}

fn register(grads: &mut GradientsParams, id: ParamId, shape: &[usize], flat: Tensor<1>) {
    match shape.len() {
        1 => grads.register::<1>(id, flat),
        2 => grads.register::<2>(id, flat.reshape([shape[0], shape[1]])),
        3 => grads.register::<3>(id, flat.reshape([shape[0], shape[1], shape[2]])),
        4 => grads.register::<4>(id, flat.reshape([shape[0], shape[1], shape[2], shape[3]])),
        r => panic!("no model here has a rank-{r} parameter"),
    }
}

/// After the optimizer step: the running statistics (the floats without a gradient) of the main
/// model become the mean of every shard's, in shard order; then every replica gets the main
/// model's floats (one transfer each way per replica). Returns the new main model.
pub(crate) fn sync_replicas(
    main: Net,
    replicas: &mut [Replica],
    trained: &[bool],
    device: &Device,
) -> Net {
    let mut floats = Floats::of(&main).values;
    let running: Vec<usize> = (0..trained.len()).filter(|&i| !trained[i]).collect();
    let k = (replicas.len() + 1) as f64;
    for replica in replicas.iter() {
        let theirs = Floats::of(&replica.model).values;
        let parts = running.iter().map(|&i| theirs[i].clone()).collect();
        for (&i, value) in running.iter().zip(move_all(parts, device)) {
            floats[i] = floats[i].clone() + value;
        }
    }
    let mut averaged: Vec<Option<Tensor<1>>> = vec![None; floats.len()];
    for &i in &running {
        floats[i] = floats[i].clone().div_scalar(k);
        averaged[i] = Some(floats[i].clone());
    }
    let main = load_floats(main, averaged);
    for replica in replicas.iter_mut() {
        let moved = move_all(floats.clone(), &replica.device);
        replica.model = load_floats(replica.model.clone(), moved.into_iter().map(Some).collect());
    }
    main
}
