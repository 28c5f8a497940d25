#!/usr/bin/env python3
"""PyTorch twin of saad's training-step benchmarks (`saad bench`): the same models (same
parameter names and shapes as our exports), the same synthetic batch, the same op sequence per
training step for natural training, PGD-AT and SAAD, timed the same way; and the reference
AutoAttack on an exported model. Not part of the tests.

    python3 bench/torch_reference.py --workload natural|pgd-at|saad|autoattack|passes|all \
        --device cpu|cuda [--threads 2] [--batch-size 128] [--steps 3] [--attack-steps 10] \
        [--image-size 32] [--classes 10] [--arch resnet18] [--teacher-arch dm-wrn-28-10] \
        [--augment] [--seed 0] [--json OUT.json]

    # AutoAttack (standard, Linf, eps 8/255, seed 0) on the first N test images:
    saad export --checkpoint M.saad --format safetensors --out m.safetensors
    saad data export --data cifar10 --split test --out test.bin
    python3 bench/torch_reference.py --workload autoattack --device cuda \
        --model m.safetensors --images test.bin --n 1000 [--aa-batch-size 500] [--arch resnet18]

Conventions (kept equal to the Rust side so that the numbers compare):
  * eager PyTorch, fp32, TF32 off (our wgpu path is fp32), cudnn.benchmark on;
  * synthetic data as in native/src/commands/bench.rs: images U[0,1) of shape [B,3,S,S],
    labels i % classes, random weights (PyTorch's default init), a random-weight teacher;
  * each step is what Trainer::train_next_batch does (core/src/train/trainer.rs): gather the
    batch in a fresh random order, the method's loss, the epoch sums (loss, accuracy and, with a
    teacher, the transfer statistics), backward, SGD step (lr 0.1 constant, momentum 0.9,
    dampening 0, weight decay 2e-4, PyTorch semantics), then a read of the sums (the trainer
    reads once per epoch; here once per step, which also synchronises). No augmentation, as the
    Rust bench sets `augment = None`; --augment adds the crop-4 + flip of TrainConfig::reference;
  * one untimed warm-up step, then --steps timed steps, each bracketed by a device
    synchronisation; the median is reported (the mean too: `saad bench` now reports the mean of
    one epoch of --steps batches after an untimed epoch of as many). SAAD's ramp e/E is 1/2 in
    the warm-up and 1 in the timed steps, as in the Rust bench (epochs = 2).
"""
import argparse
import gc
import inspect
import json
import resource
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
CIFAR10_TRAIN_IMAGES = 50000

# MethodParams / AttackSettings defaults (core/src/train/methods/mod.rs).
EPS = 8.0 / 255.0
ALPHA = 2.0 / 255.0
INIT_SIGMA = 0.001
ALPHA_IG = 1.0
SAAD_SCALE = 5.0
SAAD_GAMMA = 1.0
SAAD_BETA = 0.0
SAAD_LAMBDA = 1.0
WEIGHT_BINS = 10  # core/src/train/transfer_stats.rs
# TrainConfig::reference (core/src/train/config.rs) with LrSchedule::Constant (bench.rs).
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 2e-4
AUGMENT_PAD = 4


# --------------------------------------------------------------------------------------------
# Models: parameter names and shapes as in core/src/models/*.rs (our export writes these keys).
# --------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """core/src/models/resnet.rs BasicBlock (kuangliu layout)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=0.1)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout, momentum=0.1))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18 at base width `width` (64: 11,173,962 parameters for 10 classes)."""

    def __init__(self, classes=10, width=64):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w, momentum=0.1)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
        self.linear = nn.Linear(8 * w, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # Global average pooling, as layers.rs global_avg_pool (= avg_pool2d(4) at 32x32).
        return self.linear(x.mean((2, 3)))


class DmBlock(nn.Module):
    """core/src/models/dm_wide_resnet.rs DmBlock: pre-activation, manual SAME padding."""

    def __init__(self, cin, cout, stride, silu):
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(cin, momentum=0.01)
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(cout, momentum=0.01)
        self.conv_1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout else None
        self.stride = stride
        self.act = F.silu if silu else F.relu

    def forward(self, x):
        a = self.act(self.batchnorm_0(x))
        # (1,1,1,1) at stride 1, right/bottom only at stride 2.
        padded = F.pad(a, (1, 1, 1, 1)) if self.stride == 1 else F.pad(a, (0, 1, 0, 1))
        out = self.conv_0(padded)
        out = self.conv_1(self.act(self.batchnorm_1(out)))
        return (self.shortcut(a) if self.shortcut is not None else x) + out


class DmBlockGroup(nn.Module):
    def __init__(self, cin, cout, stride, n, silu):
        super().__init__()
        self.block = nn.Sequential(*[DmBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, silu) for i in range(n)])

    def forward(self, x):
        return self.block(x)


class DmWideResNet(nn.Module):
    """DM WideResNet-D-W (Gowal/Rebuffi, RobustBench layout), normalisation inside the model
    (mean/std are non-persistent buffers: not in the state dict, as in ours).
    dm-wrn-28-10: 36,479,194 parameters for 10 classes."""

    def __init__(self, depth=28, width=10, classes=10, silu=True, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        n = (depth - 4) // 6
        c = [16, 16 * width, 32 * width, 64 * width]
        self.init_conv = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            DmBlockGroup(c[0], c[1], 1, n, silu),
            DmBlockGroup(c[1], c[2], 2, n, silu),
            DmBlockGroup(c[2], c[3], 2, n, silu),
        )
        self.batchnorm = nn.BatchNorm2d(c[3], momentum=0.01)
        self.logits = nn.Linear(c[3], classes)
        self.act = F.silu if silu else F.relu
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        x = self.init_conv((x - self.mean) / self.std)
        x = self.layer(x)
        x = self.act(self.batchnorm(x))
        return self.logits(x.mean((2, 3)))


class SmallCnn(nn.Module):
    """core/src/models/small_cnn.rs (small-cnn-W)."""

    def __init__(self, classes=10, width=32):
        super().__init__()
        w = width
        self.conv1, self.bn1 = nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)
        self.conv2, self.bn2 = nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w)
        self.conv3, self.bn3 = nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * w)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean((2, 3)))


ARCH_HELP = "resnet18[-wW], dm-wrn-D-W[-relu] (e.g. dm-wrn-28-10, dm-wrn-10-1), small-cnn[-W]"


def build_model(arch, classes):
    """A model from an architecture id as our Arch parser reads it (core/src/models/mod.rs)."""
    parts = arch.strip().lower().split("-")

    def positive(s):
        if not s.isdigit() or int(s) <= 0:
            raise SystemExit(f"unknown architecture {arch!r}; expected one of: {ARCH_HELP}")
        return int(s)

    if parts == ["resnet18"]:
        return ResNet18(classes, 64)
    if len(parts) == 2 and parts[0] == "resnet18" and parts[1].startswith("w"):
        return ResNet18(classes, positive(parts[1][1:]))
    if parts[:2] == ["dm", "wrn"] and len(parts) in (4, 5):
        depth, width = positive(parts[2]), positive(parts[3])
        if depth < 10 or (depth - 4) % 6:
            raise SystemExit(f"{arch!r}: WideResNet depth must be 6n+4 (16, 22, 28, 34, ...)")
        if len(parts) == 5 and parts[4] not in ("relu", "silu"):
            raise SystemExit(f"unknown architecture {arch!r}; expected one of: {ARCH_HELP}")
        return DmWideResNet(depth, width, classes, silu=(len(parts) == 4 or parts[4] == "silu"))
    if parts == ["small", "cnn"]:
        return SmallCnn(classes, 32)
    if len(parts) == 3 and parts[:2] == ["small", "cnn"]:
        return SmallCnn(classes, positive(parts[2]))
    raise SystemExit(f"unknown architecture {arch!r}; expected one of: {ARCH_HELP}")


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def freeze(model, frozen):
    """Parameter gradients off (`Module::valid()` in burn: no parameter is tracked) or back on."""
    for p in model.parameters():
        p.requires_grad_(not frozen)


# --------------------------------------------------------------------------------------------
# Per-sample losses (core/src/losses.rs). Reductions are the caller's.
# --------------------------------------------------------------------------------------------


def kl_rows(target_logits, input_logits):
    """KL(softmax(target) || softmax(input)) summed over classes, per sample (losses.rs kl_div).
    The target is NOT detached here: SAAD's inner objective differentiates through it."""
    log_p = F.log_softmax(target_logits, 1)
    log_q = F.log_softmax(input_logits, 1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def entropy_rows(logits, gamma):
    """Rényi entropy of order gamma of softmax(z), log(sum p^gamma + 1e-12) / (1 - gamma), and
    Shannon -sum p log(p + 1e-12) when |gamma - 1| < 1e-6 (losses.rs renyi_entropy, entropy)."""
    p = F.softmax(logits, 1)
    if abs(gamma - 1.0) < 1e-6:
        return -(p * (p + 1e-12).log()).sum(1)
    return (p.pow(gamma).sum(1) + 1e-12).log() / (1.0 - gamma)


def saad_weights(h, scale):
    """w = scale (H - min H) (not renormalised), w^ = w / (max w + 1e-8); no gradient."""
    h = h.detach()
    w = (h - h.min()) * scale
    return w, w / (w.max() + 1e-8)


def correct_rows(logits, y):
    return (logits.argmax(1) == y).float()


# --------------------------------------------------------------------------------------------
# The attack (core/src/attacks/pgd.rs, step.rs, mod.rs input_gradient).
# --------------------------------------------------------------------------------------------


def pgd_inner_max(model, x, objective, steps, start, eps=EPS, alpha=ALPHA, sigma=INIT_SIGMA):
    """`BatchContext::inner_max`: `steps` signed-gradient ascent steps on sum_i objective_i
    against `model` in eval mode (BatchNorm running statistics) without parameter gradients.
    Start: 'uniform' = clip_[0,1](x + U(-eps, eps)); 'gaussian' = x + sigma N(0, I), not clipped.
    Step: clip_[0,1](clip_[x-eps, x+eps](x' + alpha sign(grad)))."""
    was_training = model.training
    model.eval()
    freeze(model, True)
    if start == "uniform":
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp_(0.0, 1.0)
    else:
        x_adv = x + sigma * torch.randn_like(x)
    lo, hi = x - eps, x + eps
    for _ in range(steps):
        leaf = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = objective(leaf, model(leaf)).sum()  # attacks/mod.rs: loss.sum().backward()
            (grad,) = torch.autograd.grad(loss, leaf)
        x_adv = torch.clamp(x_adv + alpha * grad.sign(), lo, hi).clamp_(0.0, 1.0)
    freeze(model, False)
    model.train(was_training)
    return x_adv.detach()


# --------------------------------------------------------------------------------------------
# One training step per method.
# --------------------------------------------------------------------------------------------


class Workload:
    """The student, its optimizer, the synthetic data set and (for SAAD) the frozen teacher."""

    def __init__(self, args, device, with_teacher):
        b, s, c = args.batch_size, args.image_size, args.classes
        self.args, self.device = args, device
        self.student = build_model(args.arch, c).to(device).train()
        self.teacher = None
        if with_teacher:
            # Trainer::with_teacher: eval mode, no parameter gradients.
            self.teacher = build_model(args.teacher_arch, c).to(device).eval()
            freeze(self.teacher, True)
        self.opt = torch.optim.SGD(self.student.parameters(), lr=LR, momentum=MOMENTUM, dampening=0.0, weight_decay=WEIGHT_DECAY, nesterov=False)
        # Images U[0,1), labels i % classes (bench.rs draws --steps such batches; one suffices here).
        self.images = torch.rand(b, 3, s, s, device=device)
        self.labels = torch.arange(b, device=device) % c
        self.sums = torch.zeros(2 + 7 + WEIGHT_BINS, device=device)

    def next_batch(self):
        """EpochOrder (a host permutation, uploaded) + DeviceSet::gather + random_crop_flip."""
        order = torch.randperm(self.images.shape[0]).to(self.device)
        x, y = self.images.index_select(0, order), self.labels.index_select(0, order)
        if self.args.augment:
            x = random_crop_flip(x, AUGMENT_PAD, True)
        return x, y

    def finish(self, loss, logits, y, transfer):
        """trainer.rs 257-273: epoch sums, backward, SGD step; then the epoch's one read."""
        n = y.shape[0]
        parts = [(loss.detach() * n).view(1), correct_rows(logits.detach(), y).sum().view(1)]
        parts.append(transfer if transfer is not None else torch.zeros(7 + WEIGHT_BINS, device=self.device))
        self.sums = self.sums + torch.cat(parts)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return self.sums.tolist()  # the trainer's read of the sums (per epoch there); synchronises

    def natural(self, ramp):
        """natural.rs: CE(S(x), y), mean; student in train mode. 1 forward + 1 backward."""
        x, y = self.next_batch()
        logits = self.student(x)
        return self.finish(F.cross_entropy(logits, y), logits, y, None)

    def pgd_at(self, ramp):
        """pgd_at.rs: x' = PGD-K on summed CE from a uniform start, student in eval mode without
        parameter gradients (K forward + K input-only backward); then CE(S(x'), y), mean, student
        in train mode (1 forward + 1 backward)."""
        x, y = self.next_batch()
        x_adv = pgd_inner_max(self.student, x, lambda _x, z: F.cross_entropy(z, y, reduction="none"), self.args.attack_steps, "uniform")
        logits = self.student(x_adv)
        return self.finish(F.cross_entropy(logits, y), logits, y, None)

    def saad(self, ramp):
        """SAAD (saad.rs Saad::batch_loss). Passes per training step, K = --attack-steps (10):

        teacher: 3 forwards, 1 backward (input gradient only, no parameter gradients)
          - 1 forward + 1 backward on clean x for z_T(x) and g = d z_T,y / dx:
            saad.rs:35 (teacher.forward on the leaf) and saad.rs:38 (true_logits.backward()),
            called once per step by SaadObjective::new (saad.rs:77) in saad_inner_max, which
            Saad::batch_loss calls at saad.rs:88;
            z_T(x) of that pass is reused as T(x) in the outer loss (no separate T(x) forward);
          - 2 forwards without graph, T(x+d) and T(x-d): saad.rs:91;
          - no further one in the trainer: SAAD hands back teacher_adv = T(x+d), so
            trainer.rs:264 does not run its extra teacher forward.
        student: 13 forwards, 11 backwards
          - K forwards + K input-only backwards in eval mode (inner maximisation): the loop at
            pgd.rs:70-71 -> input_gradient (attacks/mod.rs:36 forward, :42 backward);
          - 3 forwards in train mode, S(x+d), S(x-d), S(x): saad.rs:92-94 (in that order; each
            updates the BatchNorm running statistics);
          - 1 backward of the outer loss through all three: trainer.rs:272 (then the SGD step, :273).
            It is one backward call, but it back-propagates through three forward graphs (S(x)'s
            too, although beta = 0 gives it a zero gradient), computing parameter gradients.
        Measured here with hooks: teacher 3 fwd (1 with graph) / 1 bwd; student 13 fwd (10 eval,
        3 train) / 11 backward calls covering 13 forward graphs.
        """
        a = self.args
        x, y = self.next_batch()
        teacher, student = self.teacher, self.student
        c = a.classes
        # teacher_true_class_gradient (saad.rs:33-40).
        leaf = x.detach().requires_grad_(True)
        with torch.enable_grad():
            z = teacher(leaf)
            (g,) = torch.autograd.grad(z.gather(1, y.view(-1, 1)).sum(), leaf)
        t0 = z.detach()
        del z
        onehot = F.one_hot(y, c).float()

        def objective(x_adv, s_logits):
            # SaadObjective::loss: KL(surrogate || S(x')), the surrogate
            # z_T(x) + lambda <g, x' - x> onehot(y) carrying the gradient through <g, x' - x>.
            dot = (g * (x_adv - x)).sum((1, 2, 3)).view(-1, 1)
            return kl_rows(t0 + onehot * (dot * SAAD_LAMBDA), s_logits)

        x_plus = pgd_inner_max(student, x, objective, a.attack_steps, "gaussian")
        x_minus = x * 2.0 - x_plus  # not clipped
        with torch.no_grad():
            t_plus = teacher(x_plus)
            t_minus = teacher(x_minus)
        s_plus = student(x_plus)
        s_minus = student(x_minus)
        s0 = student(x)
        # saad_outer_loss (saad.rs:120-126), batch mean (kernels/mod.rs saad_loss, tensor-op twin).
        w, w_hat = saad_weights(entropy_rows(t_plus, SAAD_GAMMA), SAAD_SCALE)
        l_adv = kl_rows(t_plus, s_plus)
        l_ig = kl_rows(t_plus - t_minus, s_plus - s_minus) * (ALPHA_IG * ramp)
        l_nat = kl_rows(t0, s0)
        # beta = 0 by default: the term is still built, as in Rust, so S(x) is back-propagated.
        loss = (w * (l_adv + l_ig) + (1.0 - w_hat) * SAAD_BETA * l_nat).mean()
        # Transfer statistics of x' (trainer.rs:261-268, TransferBatch::sums).
        transfer = transfer_sums(t_plus, s_plus.detach(), y)
        return self.finish(loss, s_plus, y, transfer)


def transfer_sums(teacher_adv, student_adv, y):
    """TransferBatch::new + sums (core/src/train/transfer_stats.rs)."""
    n = y.shape[0]
    dev = teacher_adv.device
    h = entropy_rows(teacher_adv, SAAD_GAMMA)
    w, w_hat = saad_weights(h, SAAD_SCALE)
    teacher_fooled = 1.0 - correct_rows(teacher_adv, y)
    student_fooled = (1.0 - correct_rows(student_adv, y)).sum()
    bins = (w_hat * WEIGHT_BINS).floor().clamp(0, WEIGHT_BINS - 1).long()
    hist = F.one_hot(bins, WEIGHT_BINS).float().sum(0)
    head = torch.stack([
        torch.tensor(float(n), device=dev), teacher_fooled.sum(), student_fooled, torch.tensor(float(n), device=dev),
        h.sum(), h.square().sum(), w.sum(),
    ])
    return torch.cat([head, hist])


def random_crop_flip(x, pad, flip):
    """Random crop with zero padding `pad` and horizontal flip p = 0.5, per sample, on the device
    (data/device_set.rs random_crop_flip: pad, then two gathers)."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    mirror = torch.rand(b, device=dev) < (0.5 if flip else -1.0)
    rows = (oy.view(b, 1, 1, 1) + torch.arange(h, device=dev).view(1, 1, h, 1)).expand(b, c, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = torch.arange(w, device=dev).view(1, 1, 1, w).expand(b, 1, 1, w)
    cols = torch.where(mirror.view(b, 1, 1, 1), (w - 1) - cols, cols) + ox.view(b, 1, 1, 1)
    return cropped.gather(3, cols.expand(b, c, h, w))


# --------------------------------------------------------------------------------------------
# Timing and memory.
# --------------------------------------------------------------------------------------------


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def memory_fields(device):
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_reserved_bytes": torch.cuda.max_memory_reserved(device)}
    # ru_maxrss is in KiB on Linux; it is the whole process's peak so far, not this workload's.
    return {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


PASSES = {
    # per training step, K = attack steps: (teacher fwd, teacher bwd, student fwd, student bwd)
    "natural": lambda k: {"teacher_forward": 0, "teacher_backward": 0, "student_forward": 1, "student_backward": 1},
    "pgd-at": lambda k: {"teacher_forward": 0, "teacher_backward": 0, "student_forward": k + 1, "student_backward": k + 1},
    # student_backward counts backward calls; the last one runs through the 3 train-mode forwards.
    "saad": lambda k: {"teacher_forward": 3, "teacher_backward": 1, "student_forward": k + 3, "student_backward": k + 1},
}


def time_training(name, args, device):
    reset_memory(device)
    torch.manual_seed(args.seed)
    wl = Workload(args, device, with_teacher=(name == "saad"))
    step = {"natural": wl.natural, "pgd-at": wl.pgd_at, "saad": wl.saad}[name]
    times = []
    for k in range(args.steps + 1):
        ramp = 0.5 if k == 0 else 1.0  # BatchContext::ramp: bench.rs trains epochs 1 and 2 of 2
        sync(device)
        start = time.perf_counter()
        step(ramp)
        sync(device)
        if k > 0:  # the first step is the untimed warm-up
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    b = args.batch_size
    out = {
        "seconds_per_step": med,
        "seconds_per_step_mean": statistics.fmean(times),
        "images_per_sec": b / med,
        "seconds_per_cifar10_epoch": CIFAR10_TRAIN_IMAGES / b * med,
        **memory_fields(device),
        "batch_size": b,
        "image_size": args.image_size,
        "classes": args.classes,
        "attack_steps": args.attack_steps if name != "natural" else 0,
        "timed_steps": args.steps,
        "step_seconds": times,
        "arch": args.arch,
        "student_params": num_params(wl.student),
        "augment": bool(args.augment),
        "passes_per_step": PASSES[name](args.attack_steps),
    }
    if wl.teacher is not None:
        out["teacher_arch"] = args.teacher_arch
        out["teacher_params"] = num_params(wl.teacher)
    del wl, step
    return out


def time_passes(args, device):
    """`saad bench --passes` (native/src/commands/bench_passes.rs): the student's pass kinds one
    at a time, --steps calls each after one untimed call, seconds per call. PyTorch has no
    BatchNorm fold (its eval forward runs BatchNorm as it is), so that row is 0 here."""
    torch.manual_seed(args.seed)
    b, s, c = args.batch_size, args.image_size, args.classes
    model = build_model(args.arch, c).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, dampening=0.0, weight_decay=WEIGHT_DECAY, nesterov=False)
    x = torch.rand(b, 3, s, s, device=device)
    y = torch.arange(b, device=device) % c
    model(x)  # train-mode statistics that are not the initial ones, as in a run

    def per_call(f):
        f()
        sync(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            f()
        sync(device)
        return (time.perf_counter() - start) / args.steps

    def eval_forward():
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()

    def attack_iteration():
        # pgd_inner_max's loop body: eval mode, parameters frozen, summed CE, input gradient.
        model.eval()
        freeze(model, True)
        leaf = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(leaf), y, reduction="none").sum()
        torch.autograd.grad(loss, leaf)
        freeze(model, False)
        model.train()

    def training_forward():
        model(x)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def forward_backward_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    rows = [
        ("fold (BatchNorm into the eval copy)", None),
        ("eval forward", eval_forward),
        ("attack iteration (eval forward + input gradient)", attack_iteration),
        ("training forward", training_forward),
        ("training forward + backward", forward_backward),
        ("training forward + backward + SGD step", forward_backward_step),
    ]
    passes = [{"pass": name, "seconds": per_call(f) if f else 0.0} for name, f in rows]
    return {"arch": args.arch, "batch_size": b, "image_size": s, "calls": args.steps, "passes": passes}


# --------------------------------------------------------------------------------------------
# AutoAttack (the reference implementation) on an exported model.
# --------------------------------------------------------------------------------------------


def load_cifar_binary(path, n, image_size):
    """Rows of 1 label byte + 3*S*S bytes (CHW, uint8): CIFAR-10 binary, `saad data export`."""
    import numpy as np

    row = 1 + 3 * image_size * image_size
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % row:
        raise SystemExit(f"{path}: {raw.size} bytes is not a whole number of {row}-byte rows (image size {image_size})")
    raw = raw.reshape(-1, row)[:n]
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    x = torch.from_numpy(raw[:, 1:].astype(np.float32).reshape(-1, 3, image_size, image_size) / 255.0)
    return x, y


def accuracy(model, x, y, batch, device):
    hits = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            hits += (model(xb).argmax(1) == yb).sum().item()
    return hits / max(1, x.shape[0])


def run_autoattack(args, device):
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        return {"skipped": "pyautoattack not installed"}
    if not args.model or not args.images:
        raise SystemExit("--workload autoattack needs --model M.safetensors and --images X.bin")
    from safetensors.torch import load_file

    reset_memory(device)
    model = build_model(args.arch, args.classes)
    model.load_state_dict(load_file(args.model), strict=True)
    model = model.to(device).eval()
    freeze(model, True)  # evaluated as `model.valid()`: no parameter gradients
    x, y = load_cifar_binary(args.images, args.n, args.image_size)
    n = x.shape[0]
    clean = accuracy(model, x, y, args.aa_batch_size, device)
    if args.aa_verbose:  # pyautoattack logs progress and per-attack times on the 'auto-attack' logger
        import logging

        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        logging.getLogger("auto-attack").setLevel(logging.DEBUG)
    adversary = AutoAttack(model, norm="Linf", eps=EPS, version="standard", device=str(device), seed=0)
    sync(device)
    start = time.perf_counter()
    # pyautoattack 0.2 names the batch size `batch_size` (keyword-only); the original autoattack `bs`.
    params = inspect.signature(adversary.run_standard_evaluation).parameters
    batch_kw = "batch_size" if "batch_size" in params else "bs"
    x_adv = adversary.run_standard_evaluation(x, y, **{batch_kw: args.aa_batch_size})
    sync(device)
    seconds = time.perf_counter() - start
    if isinstance(x_adv, tuple):  # pyautoattack 0.2 returns (x_adv, y_adv)
        x_adv = x_adv[0]
    robust = accuracy(model, x_adv.cpu(), y, args.aa_batch_size, device)
    return {
        "clean_accuracy": clean,
        "robust_accuracy": robust,
        "seconds_total": seconds,
        "seconds": seconds,
        "seconds_per_image": seconds / max(1, n),
        "n": n,
        "aa_batch_size": args.aa_batch_size,
        "version": "standard",
        "norm": "Linf",
        "eps": EPS,
        "arch": args.arch,
        "model": args.model,
        "images": args.images,
        **memory_fields(device),
    }


# --------------------------------------------------------------------------------------------


def human_bytes(v):
    return f"{v / 1048576:.0f} MiB"


def print_table(device_name, results):
    print(f"device {device_name}, torch {torch.__version__}")
    print(f"{'workload':<11} {'s/step':>9} {'images/s':>10} {'s/epoch':>10} {'peak memory':>24}")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<11} skipped: {r['skipped']}")
            continue
        if name == "passes":
            for row in r["passes"]:
                print(f"  {row['pass']:<52} {row['seconds']:>9.4f} s/call")
            continue
        if name == "autoattack":
            mem = human_bytes(r.get("peak_memory_bytes", r.get("peak_rss_bytes", 0)))
            print(
                f"{name:<11} {r['seconds_total']:>8.1f}s total on {r['n']} images: clean {r['clean_accuracy']:.4f}, "
                f"robust {r['robust_accuracy']:.4f}, peak {mem}"
            )
            continue
        if "peak_memory_bytes" in r:
            mem = f"{human_bytes(r['peak_memory_bytes'])} alloc / {human_bytes(r['peak_memory_reserved_bytes'])} rsv"
        else:
            mem = f"{human_bytes(r['peak_rss_bytes'])} RSS (process)"
        print(f"{name:<11} {r['seconds_per_step']:>9.3f} {r['images_per_sec']:>10.1f} {r['seconds_per_cifar10_epoch']:>10.1f} {mem:>24}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["natural", "pgd-at", "saad", "autoattack", "passes", "all"], default="all")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (0 = leave PyTorch's default)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one untimed warm-up step")
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--arch", default="resnet18", help=f"student (or AutoAttack model): {ARCH_HELP}")
    p.add_argument("--teacher-arch", default="dm-wrn-28-10", help="SAAD's teacher")
    p.add_argument("--augment", action="store_true", help="add the crop-4 + flip augmentation of TrainConfig::reference (off in the Rust bench)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT.json")
    p.add_argument("--model", help="autoattack: safetensors state dict from `saad export --format safetensors`")
    p.add_argument("--images", help="autoattack: CIFAR-10 binary rows from `saad data export`")
    p.add_argument("--n", type=int, default=1000, help="autoattack: first N images")
    p.add_argument("--aa-batch-size", type=int, default=500)
    p.add_argument("--aa-verbose", action="store_true", help="autoattack: log each attack's progress and time to stderr")
    args = p.parse_args()
    if args.steps < 1 or args.batch_size < 1:
        raise SystemExit("--steps and --batch-size must be at least 1")

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to PyTorch")
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    # fp32 against fp32: TF32 off; cuDNN autotuning on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        tf32 = bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"

    names = ["natural", "pgd-at", "saad"] if args.workload == "all" else [args.workload]
    results = {}
    for name in names:
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        if name == "autoattack":
            results[name] = run_autoattack(args, device)
        elif name == "passes":
            results[name] = time_passes(args, device)
        else:
            results[name] = time_training(name, args, device)

    print_table(device_name, results)
    if args.json:
        doc = {
            "device": device_name,
            "torch": torch.__version__,
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "tf32": tf32,
            "threads": torch.get_num_threads(),
            "workloads": results,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
