"""The numbers behind the image lab's three teaching views, computed from a trained ``LabModel``.

``latent_map``: a VAE decoder's own weights (the browser runs the same small MLP as the point is dragged), the
decoded grid over the latent plane and the encoded training points. ``denoising``: every DDIM step of one
diffusion sample, x_t and the model's guess of x_0. ``diversity``: a GAN's sample diversity over epochs and its
sample grids. The public builders look the model up by name and return the widget.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import AigcError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLLAPSE = 0.5  # below half of the real images' diversity the samples of one class are nearly all alike


@dataclass
class LatentMap:
    """A VAE's decoder as plain arrays, and the latent plane [-extent, extent]² cut into ``size``² tiles."""

    name: str
    classes: list[str]
    label: int
    shape: tuple[int, int]
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight [out, in], bias [out]) of each Linear, float32
    grid: np.ndarray                             # [size, size, height, width]: row 0 at the top (z₂ = +extent)
    points: np.ndarray                           # [n, 2] encoded means of training images
    point_labels: np.ndarray                     # [n] their classes
    extent: float = 3.0
    size: int = 15

    def centres(self) -> np.ndarray:
        """z of each tile's centre, [size, size, 2], in the grid's order."""
        step = 2 * self.extent / self.size
        across = -self.extent + (np.arange(self.size) + 0.5) * step
        x, y = np.meshgrid(across, across[::-1])
        return np.stack([x, y], -1)


@dataclass
class Denoising:
    """One diffusion sample, step by step. Position k < steps: x_t at ``timesteps[k]`` (k = 0: pure noise)
    and the x_0 the model predicts from it; position ``steps``: the finished sample."""

    name: str
    class_name: str
    seed: int
    timesteps: list[int]
    xt: np.ndarray       # [steps + 1, height, width], (x + 1) / 2, not clipped
    x0: np.ndarray       # [steps, height, width], (x̂₀ + 1) / 2, not clipped
    noise: list[float]   # √(1 − ᾱ_t) at each position: how much of x_t is noise (0 at the end)

    @property
    def steps(self) -> int:
        return len(self.timesteps)


@dataclass
class GanDiversity:
    """Samples' diversity (÷ the real images') over epochs, and the sample grid at some of them."""

    name: str
    classes: list[str]
    epochs: list[float]
    ratios: list[float]
    real: float
    snapshots: list[tuple[float, bytes]] = field(default_factory=list)  # (epoch, PNG)

    @property
    def verdict(self) -> str:
        if not self.ratios:
            return "No diversity was measured: train for at least one epoch."
        first, last, peak = self.ratios[0], self.ratios[-1], max(self.ratios)
        at = f"epoch {self.epochs[-1]:g}"
        if last < COLLAPSE and peak - last > 0.15:
            return (f"Mode collapse: diversity fell from {peak:.2f} to {last:.2f} by {at}: the generator draws "
                    "nearly the same picture of each class whatever the noise.")
        if last < COLLAPSE:
            trend = "rising, so training more may help" if last > first + 0.05 else "not rising"
            return (f"Diversity is low ({last:.2f} at {at}, {trend}): the samples of one class look much alike. "
                    "If it stays low as training goes on, the generator has collapsed onto a few images "
                    "(mode collapse).")
        if peak - last > 0.25:
            return (f"Diversity is falling ({peak:.2f} at best, {last:.2f} at {at}): the samples are growing alike, "
                    "the start of mode collapse.")
        return f"Diversity {last:.2f} at {at}: the samples vary about as much as the real images, no mode collapse."


def _check_kind(model, kind: str, view: str, call: str) -> None:
    if model.kind != kind:
        raise AigcError(f"'{model.info.name}' is a {model.kind} model; the {view} needs a {kind}.",
                        f"Train one with %aigc_train_image --kind {kind} --data digits --name NAME, then {call}.")


def _label(model, label: int | None) -> int:
    classes = model.info.classes
    if not classes:
        return 0
    if label is None:
        return 0
    if not 0 <= label < len(classes):
        raise AigcError(f"Class {label} is not one of the {len(classes)} classes.",
                        f"Use 0…{len(classes) - 1} ({', '.join(classes[:20])}).")
    return label


def decoder_layers(vae) -> list[tuple[np.ndarray, np.ndarray]]:
    """The decoder's Linear layers in order, checked to be Linear, ReLU, Linear, ReLU, Linear (as the view runs)."""
    import torch

    kinds = [type(m).__name__ for m in vae.decoder]
    if kinds != ["Linear", "ReLU", "Linear", "ReLU", "Linear"]:
        raise AigcError(f"This VAE's decoder ({', '.join(kinds)}) is not the one the latent map can run.",
                        "Train it again with %aigc_train_image --kind vae.")
    return [(m.weight.detach().to("cpu", torch.float32).numpy().copy(),
             m.bias.detach().to("cpu", torch.float32).numpy().copy())
            for m in vae.decoder if isinstance(m, torch.nn.Linear)]


def latent_map(model, label: int | None = None, size: int = 15, extent: float = 3.0) -> LatentMap:
    import torch

    _check_kind(model, "vae", "latent map", "latent_map(NAME)")
    label = _label(model, label)
    vae = model.modules["vae"]
    layers = decoder_layers(vae)
    height, width = model.shape
    empty = LatentMap(model.info.name, list(model.info.classes), label, (height, width), layers,
                      np.zeros((size, size, height, width), np.float32), np.zeros((0, 2), np.float32),
                      np.zeros(0, np.int64), extent, size)
    z = torch.from_numpy(empty.centres().reshape(-1, 2).astype(np.float32))
    device = next(vae.parameters()).device
    with torch.no_grad():
        labels = torch.full((len(z),), label, dtype=torch.long, device=device)
        images = vae.decode(z.to(device), labels).reshape(size, size, height, width)
    empty.grid = images.to("cpu", torch.float32).numpy()
    points = model.info.history.get("latent_points") or {}
    xs, ys, ks = (points.get(key) or [] for key in ("x", "y", "label"))
    n = min(len(xs), len(ys), len(ks) if model.info.classes else len(xs))
    empty.points = np.stack([np.asarray(xs[:n], np.float32), np.asarray(ys[:n], np.float32)], -1).reshape(n, 2)
    empty.point_labels = np.asarray(ks[:n] if model.info.classes else [0] * n, np.int64)
    return empty


def denoising(model, label: int | None = None, seed: int = 0, steps: int = 50) -> Denoising:
    import torch

    from ..engines.lab_models import make_train_scheduler

    _check_kind(model, "diffusion", "denoising view", "denoising_view(NAME)")
    if not 1 <= steps <= 1000:
        raise AigcError(f"steps={steps} is out of range.", "Use 1…1000 denoising steps (50 is plenty).")
    label = _label(model, label)
    unet = model.modules["unet"]
    device = next(unet.parameters()).device
    start = model.noise(1, torch.Generator().manual_seed(int(seed))).to(device)
    trace: list = []
    model.sample(torch.tensor([label], device=device), start, steps=steps, trace=trace)
    height, width = model.shape
    as_array = lambda t: t.reshape(height, width).to("cpu", torch.float32).numpy()  # noqa: E731
    xt = np.stack([as_array((start + 1) / 2)] + [as_array(x) for _, x, _ in trace])
    x0 = np.stack([as_array(pred) for _, _, pred in trace]) if trace else np.zeros((0, height, width), np.float32)
    timesteps = [t for t, _, _ in trace]
    cumprod = make_train_scheduler().alphas_cumprod.numpy()
    noise = [float(np.sqrt(1 - cumprod[t])) for t in timesteps] + [0.0]
    classes = model.info.classes
    return Denoising(model.info.name, classes[label] if classes else "", int(seed), timesteps, xt, x0, noise)


def _png(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        return None
    return data if data.startswith(PNG_SIGNATURE) else None


def diversity(model) -> GanDiversity:
    _check_kind(model, "gan", "diversity view", "gan_diversity(NAME)")
    history = model.info.history
    points = [(float(e), float(r)) for e, r in history.get("diversity") or []]
    if not points:
        raise AigcError(f"'{model.info.name}' has no diversity history yet.",
                        f"Train it with %aigc_train_image --kind gan --data digits --name {model.info.name}.")
    snapshots = [(float(e), png) for e, text in history.get("snapshots") or [] if (png := _png(text))]
    return GanDiversity(model.info.name, list(model.info.classes), [e for e, _ in points], [r for _, r in points],
                        float(history.get("real_diversity") or 0.0), snapshots)


def _class_index(model, prompt) -> int | None:
    from ..engines.image_lab import class_for

    return None if prompt is None else class_for(str(prompt), model.info.classes)


def latent_map_view(session, name: str, digit=None):
    """A LatentMapView of the VAE ``name``; ``digit`` names the class shown first (e.g. 7 or "seven")."""
    from ..views.widgets.image_lab_lessons import LatentMapView

    with session.image_lab.use(name) as model:
        data = latent_map(model, _class_index(model, digit))
    return LatentMapView(data)


def denoising_view(session, name: str, prompt: str = "7", seed: int = 0, steps: int = 50):
    """A DenoiseView of one sample of the class ``prompt`` names, drawn by the diffusion model ``name``."""
    from ..views.widgets.image_lab_lessons import DenoiseView

    with session.image_lab.use(name) as model:
        data = denoising(model, _class_index(model, prompt), seed, steps)
    return DenoiseView(data)


def gan_diversity_view(session, name: str):
    """A GanDiversityView of the GAN ``name``'s training: diversity over epochs and its sample grids."""
    from ..views.widgets.image_lab_lessons import GanDiversityView

    with session.image_lab.use(name) as model:
        data = diversity(model)
    return GanDiversityView(data)
