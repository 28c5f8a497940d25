"""The reference AutoAttack (pip package `pyautoattack`, CPU PyTorch) on the same weights and
images as `saad eval --attacks autoattack`, for the benchmark of issue 5. Not part of the tests.

    saad export --checkpoint M.saad --format safetensors --out m.safetensors   # a small-cnn-W model
    saad data export --data digits --split test --out digits_test.bin
    python3 bench/autoattack_reference.py m.safetensors digits_test.bin WIDTH N [version [SIZE]]

SIZE: the images' side (default 32; `saad data export --image-size 16` writes the demo's 16x16
digits in the same record layout).

Prints clean and robust accuracy, the time of each attack and in all.
"""
import sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file
from pyautoattack import AutoAttack


class SmallCnn(nn.Module):
    """saad's small-cnn-W (core/src/models/small_cnn.rs) in PyTorch."""

    def __init__(self, w, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)
        self.conv2, self.bn2 = nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w)
        self.conv3, self.bn3 = nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * w)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean((2, 3)))


def main():
    weights, images, width, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    version = sys.argv[5] if len(sys.argv) > 5 else "standard"
    size = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    model = SmallCnn(width).eval()
    model.load_state_dict(load_file(weights), strict=True)
    raw = np.fromfile(images, dtype=np.uint8).reshape(-1, 1 + 3 * size * size)[:n]
    y = torch.tensor(raw[:, 0].astype(np.int64))
    x = torch.tensor(raw[:, 1:].astype(np.float32).reshape(-1, 3, size, size) / 255.0)
    torch.set_num_threads(2)
    adversary = AutoAttack(model, norm="Linf", eps=8 / 255, version=version, device="cpu", seed=0)
    start = time.time()
    x_adv = adversary.run_standard_evaluation(x, y, batch_size=256)
    if isinstance(x_adv, tuple):  # pyautoattack 0.2 returns (x_adv, y_adv)
        x_adv = x_adv[0]
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    print(f"reference AutoAttack {version}: robust accuracy {robust:.4f} on {n} points in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
