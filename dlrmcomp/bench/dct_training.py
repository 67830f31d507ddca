"""Training on DCT+Chop-compressed inputs, as the seed does for its SciML benchmarks.

Inputs are compressed on the host once (:class:`~dlrmcomp.codecs.dct.DctChop`, bf16 coefficients
as the seed's ``compress_entry``, the 0-255 mapping of its ``x * 255 - 128``); the model's first
step (:class:`Decompress`) turns a batch of coefficients back into images on the training device.
Targets are never compressed. Each task trains uncompressed and at every chop factor from the
same seed, and reports its test metric and the degradation against the uncompressed run (the
paper's claim: 3% or less).

- ``denoise``, in the spirit of EMDenoise: patches of the real scientific fields, each scaled
  to 0..1, plus Gaussian noise as input, the clean patch as target; a small residual CNN;
  test MSE and PSNR on held-out patches.
- ``digits``, classification on scikit-learn's 8x8 digits (shipped with the package; 0..16
  scaled to 0..255): one DCT block per image; a small MLP; test accuracy.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .fields import generated_field, scifloat_fields

#: sizes per profile: patches, epochs, widths
PROFILES = {
    "smoke": {"patch": 32, "train": 256, "test": 64, "epochs": 2, "width": 8, "digit_epochs": 5},
    "demo": {"patch": 32, "train": 1024, "test": 256, "epochs": 5, "width": 16, "digit_epochs": 40},
    "full": {"patch": 64, "train": None, "test": None, "epochs": 20, "width": 32, "digit_epochs": 100},
}
NOISE = 0.1  # noise sigma on fields scaled to 0..1
#: the seed's mapping of 0..1 data: x * 255 - 128, i.e. offset 128/255, scale 1/255
SEED_OFFSET, SEED_SCALE = 128 / 255, 1 / 255


def _torch():
    import torch

    return torch


@dataclass
class Decompress:
    """The model's first step: coefficients (B, C, hc, wc) on the device -> images (B, C, H, W)."""

    chop: object  # DctChop
    image: tuple[int, int, int]  # (C, H, W)
    padded: tuple[int, int]
    offset: float
    scale: float

    def __call__(self, coeffs):
        from ..codecs.dct import Chopped

        chopped = Chopped(coeffs, (coeffs.shape[0], *self.image), self.padded, self.offset, self.scale)
        return self.chop.decompress(chopped, _torch().float32)


def compress_inputs(x: np.ndarray, cf: int | None) -> tuple[object, callable, float]:
    """(stored inputs, first step, ratio over fp32): the coefficients and :class:`Decompress`,
    or the raw tensor and the identity when ``cf`` is None."""
    torch = _torch()
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if cf is None:
        return t, (lambda b: b), 1.0
    from ..codecs.dct import DctChop

    chop = DctChop(cf=cf, dtype="bfloat16")
    chopped = chop.compress(t, SEED_OFFSET, SEED_SCALE)
    return chopped.coeffs, Decompress(chop, tuple(x.shape[1:]), chopped.padded, SEED_OFFSET, SEED_SCALE), t.nbytes / chopped.nbytes


# -- data -----------------------------------------------------------------------------------------
def field_patches(patch: int, seed: int = 0) -> np.ndarray:
    """Non-overlapping ``patch x patch`` tiles of every 2-D slice of the real fields (each field
    scaled to 0..1 by its range), shuffled; a generated field stands in when none is present."""
    fields = [np.asarray(f, dtype=np.float64) for f in scifloat_fields().values()] or \
        [generated_field((512, 512), seed + i).astype(np.float64) for i in range(4)]
    tiles = []
    for f in fields:
        f = (f - f.min()) / max(float(np.ptp(f)), 1e-30)
        for img in f.reshape(-1, *f.shape[-2:]):
            h, w = (img.shape[0] // patch) * patch, (img.shape[1] // patch) * patch
            if h and w:
                t = img[:h, :w].reshape(h // patch, patch, w // patch, patch).swapaxes(1, 2).reshape(-1, patch, patch)
                tiles.append(t)
    tiles = np.concatenate(tiles).astype(np.float32)
    return tiles[np.random.default_rng(seed).permutation(len(tiles))]


def denoise_data(profile: str = "demo", seed: int = 0) -> dict[str, np.ndarray]:
    """Noisy inputs and clean targets (N, 1, P, P), split into held-out test patches and training."""
    size = PROFILES[profile]
    clean = field_patches(size["patch"], seed)[:, None]
    n_test = min(size["test"] or len(clean), len(clean) // 5)
    n_train = min(size["train"] or len(clean), len(clean) - n_test)
    clean = clean[:n_test + n_train]
    noisy = clean + NOISE * np.random.default_rng(seed + 1).standard_normal(clean.shape).astype(np.float32)
    return {"x_train": noisy[n_test:], "y_train": clean[n_test:], "x_test": noisy[:n_test], "y_test": clean[:n_test],
            "source": f"{n_train}+{n_test} patches of " + ("the real fields" if scifloat_fields() else "generated fields")}


def digits_data(seed: int = 0) -> dict[str, np.ndarray] | None:
    """scikit-learn's digits as 0..255 images (N, 1, 8, 8), a stratified 75/25 split; None without sklearn."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        return None
    d = load_digits()
    x = (d.images * (255 / 16)).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(x, d.target, test_size=0.25, stratify=d.target, random_state=seed)
    return {"x_train": x_train, "y_train": y_train.astype(np.int64), "x_test": x_test, "y_test": y_test.astype(np.int64),
            "source": f"sklearn digits {len(x_train)}+{len(x_test)}"}


# -- models ---------------------------------------------------------------------------------------
def denoiser(width: int = 16, depth: int = 4):
    """A small residual CNN (DnCNN-like): predicts the noise and subtracts it."""
    nn = _torch().nn
    layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    layers.append(nn.Conv2d(width, 1, 3, padding=1))
    body = nn.Sequential(*layers)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x - self.body(x)

    return Residual()


def classifier(pixels: int = 64, classes: int = 10, width: int = 64):
    nn = _torch().nn
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, classes))


# -- training -------------------------------------------------------------------------------------
def _fit(model, first, inputs, targets, loss_fn, epochs: int, batch: int, lr: float, device, seed: int) -> float:
    """Adam over shuffled batches; inputs stay where they are stored (host), each batch moves to
    the device and goes through ``first`` (decompression) before the model. Returns seconds."""
    torch = _torch()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(inputs), generator=g).split(batch):
            out = model(first(inputs[idx].to(device)))
            loss = loss_fn(out, targets[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def _predict(model, first, inputs, device, batch: int = 512):
    torch = _torch()
    model.eval()
    with torch.no_grad():
        return torch.cat([model(first(inputs[i:i + batch].to(device))).cpu() for i in range(0, len(inputs), batch)])


def _inputs(data: dict, cf: int | None, seed: int) -> tuple:
    """Seed torch; (training inputs as stored, their first step, test inputs, theirs, ratio)."""
    _torch().manual_seed(seed)
    x_train, first, ratio = compress_inputs(data["x_train"], cf)
    x_test, first_test, _ = compress_inputs(data["x_test"], cf)
    return x_train, first, x_test, first_test, ratio


def train_denoise(data: dict, cf: int | None, profile: str = "demo", device: str = "cpu", seed: int = 0) -> dict:
    """One denoising run; test MSE / PSNR (0..1 data) of the model, and of its (decompressed) input."""
    torch = _torch()
    size = PROFILES[profile]
    x_train, first, x_test, first_test, ratio = _inputs(data, cf, seed)
    model = denoiser(size["width"]).to(device)
    seconds = _fit(model, first, x_train, torch.from_numpy(data["y_train"]), torch.nn.functional.mse_loss,
                   size["epochs"], 32, 2e-3, device, seed)
    y = torch.from_numpy(data["y_test"])
    mse = float(torch.mean((_predict(model, first_test, x_test, device) - y) ** 2))
    seen = first_test(x_test.to(device)).cpu()  # what the model is given
    input_mse = float(torch.mean((seen - y) ** 2))
    return {"task": "denoise", "data": data["source"], "cf": cf, "ratio": ratio, "test_mse": mse,
            "test_psnr": -10 * math.log10(mse), "input_psnr": -10 * math.log10(input_mse), "seconds": seconds}


def train_digits(data: dict, cf: int | None, profile: str = "demo", device: str = "cpu", seed: int = 0) -> dict:
    """One classification run on the digits; test accuracy."""
    torch = _torch()
    size = PROFILES[profile]
    x_train, first, x_test, first_test, ratio = _inputs(data, cf, seed)

    def scaled(step):  # 0..255 -> about -1..1 for the network
        return lambda b: (step(b) - 127.5) / 127.5

    model = classifier().to(device)
    seconds = _fit(model, scaled(first), x_train, torch.from_numpy(data["y_train"]), torch.nn.functional.cross_entropy,
                   size["digit_epochs"], 64, 2e-3, device, seed)
    pred = _predict(model, scaled(first_test), x_test, device).argmax(1).numpy()
    return {"task": "digits", "data": data["source"], "cf": cf, "ratio": ratio, "test_accuracy": float(np.mean(pred == data["y_test"])),
            "seconds": seconds}


def compare(profile: str = "demo", cfs=(2, 4, 6), device: str = "cpu", seed: int = 0, tasks=("denoise", "digits"),
            threads: int = 1) -> pd.DataFrame:
    """Every task uncompressed (cf None) and at each cf; ``degradation_pct``: how much worse than
    uncompressed the task's metric is, in percent (PSNR for denoise, accuracy for digits).
    ``threads``: torch intra-op threads on the CPU (1 is fastest for these small models, and
    keeps runs beside other processes from stalling)."""
    torch = _torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _compare(profile, cfs, device, seed, tasks)
    finally:
        torch.set_num_threads(previous)


def _compare(profile, cfs, device, seed, tasks) -> pd.DataFrame:
    rows = []
    runs = {"denoise": (lambda: denoise_data(profile, seed), train_denoise, "test_psnr"),
            "digits": (lambda: digits_data(seed), train_digits, "test_accuracy")}
    for task in tasks:
        load, train, metric = runs[task]
        data = load()
        if data is None:
            continue
        part = [train(data, cf, profile, device, seed) for cf in (None, *cfs)]
        base = part[0][metric]
        for r in part:
            r["degradation_pct"] = 100 * (base - r[metric]) / abs(base)
        rows += part
    return pd.DataFrame(rows)
