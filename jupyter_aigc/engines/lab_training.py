"""Training the image lab's models: one plain torch loop, with one step function per kind.

Each step returns its losses by name (the chart's curves). Between steps the loop reports progress, and now and
then draws a grid of samples from fixed noise, so a class watches the images appear. Drawing takes at most about
3% of the time. ``cancel`` (Stop, Kernel → Interrupt) ends the loop after the step under way: the model keeps
the weights of the last finished step. The loop runs on the caller's thread (see ``core.cancel.SteppedJob``).
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .lab_models import LabModel, make_train_scheduler

PREVIEW_ROWS = 6  # samples per class in the grid (unconditional: 6 rows of 10)
PREVIEW_STEPS = 10  # DDIM steps of the diffusion model's preview
PREVIEW_SHARE = 30  # wait at least 30× what the last preview cost
SNAPSHOTS = 16
CURVE_POINTS = 200

DEFAULTS = {  # per kind: epochs, batch size, learning rate (each measured on the digits, 2 CPU cores)
    "vae": {"epochs": 60, "batch_size": 64, "lr": 1e-3},
    "gan": {"epochs": 200, "batch_size": 64, "lr": 2e-4},
    "diffusion": {"epochs": 40, "batch_size": 128, "lr": 2e-3},
}
KL_WEIGHT = 0.3  # below 1 the VAE's samples keep more of the digits' variety (a β-VAE)
CURVES = {"vae": ("reconstruction", "KL"), "gan": ("discriminator", "generator"), "diffusion": ("noise prediction",)}


@dataclass
class LabSettings:
    epochs: float
    batch_size: int
    lr: float
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0: the cores other work leaves free (AigcConfig.threads)


@dataclass
class LabProgress:
    """What the live view shows; ``curves`` maps a loss's name to ``[step, value]`` pairs."""

    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    curves: dict = field(default_factory=dict)
    samples_per_second: float | None = None
    seconds_left: float | None = None
    diversity: float | None = None
    classes: list = field(default_factory=list)  # the sample grid's columns
    threads: int = 0
    status: str = "running"


def vae_step(model: LabModel, optimizers, x, labels) -> dict:
    import torch.nn.functional as F

    (optimizer,) = optimizers
    decoded, mean, log_var = model.modules["vae"](x, labels)
    n = len(x)
    reconstruction = F.binary_cross_entropy(decoded, x.flatten(1), reduction="sum") / n
    kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum() / n
    optimizer.zero_grad()
    (reconstruction + KL_WEIGHT * kl).backward()
    optimizer.step()
    return {"reconstruction": reconstruction, "KL": kl}


def gan_step(model: LabModel, optimizers, x, labels) -> dict:
    import torch
    import torch.nn.functional as F

    generator, discriminator = model.modules["generator"], model.modules["discriminator"]
    g_optimizer, d_optimizer = optimizers
    n = len(x)
    fake = generator(torch.randn(n, generator.noise, device=x.device), labels)
    real_target = torch.full((n, 1), 0.9, device=x.device)  # one-sided label smoothing
    d_loss = (F.binary_cross_entropy_with_logits(discriminator(x, labels), real_target)
              + F.binary_cross_entropy_with_logits(discriminator(fake.detach(), labels), torch.zeros_like(real_target)))
    d_optimizer.zero_grad()
    d_loss.backward()
    d_optimizer.step()
    g_loss = F.binary_cross_entropy_with_logits(discriminator(fake, labels), torch.ones_like(real_target))
    g_optimizer.zero_grad()
    g_loss.backward()
    g_optimizer.step()
    return {"discriminator": d_loss, "generator": g_loss}


def diffusion_step(model: LabModel, optimizers, x, labels, scheduler=None) -> dict:
    import torch
    import torch.nn.functional as F

    (optimizer,) = optimizers
    x = x.unsqueeze(1) * 2 - 1
    noise = torch.randn_like(x)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(x),), device=x.device)
    class_labels = labels if model.info.classes else None
    predicted = model.modules["unet"](scheduler.add_noise(x, noise, timesteps), timesteps, class_labels=class_labels)
    loss = F.mse_loss(predicted.sample, noise)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"noise prediction": loss}


def optimizers_for(model: LabModel, lr: float) -> tuple:
    import torch

    if model.kind == "gan":
        return tuple(torch.optim.Adam(model.modules[name].parameters(), lr, betas=(0.5, 0.999))
                     for name in ("generator", "discriminator"))
    if model.kind == "diffusion":
        return (torch.optim.AdamW(model.parameters(), lr),)
    return (torch.optim.Adam(model.parameters(), lr),)


def step_function(model: LabModel) -> Callable:
    if model.kind == "diffusion":
        scheduler = make_train_scheduler()
        return lambda m, o, x, y: diffusion_step(m, o, x, y, scheduler)
    return {"vae": vae_step, "gan": gan_step}[model.kind]


def grid_png(images, columns: int, scale: int = 4, gap: int = 1) -> bytes:
    """One PNG of grey images in 0..1 ([n, h, w] numpy), ``columns`` wide, scaled up without smoothing."""
    import numpy as np
    from PIL import Image

    n, height, width = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap), 90, dtype=np.uint8)
    for index, image in enumerate(images):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = np.clip(image * 255, 0, 255).astype(np.uint8)
    picture = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def spread(images, labels, classes: int) -> float:
    """Mean pairwise distance between images of the same class (all images when unconditional)."""
    import numpy as np

    flat = images.reshape(len(images), -1)
    groups = [flat[labels == k] for k in range(classes)] if classes else [flat]
    values = [np.linalg.norm(g[:, None] - g[None], axis=-1).sum() / (len(g) * (len(g) - 1))
              for g in groups if len(g) > 1]
    return float(np.mean(values)) if values else 0.0


class Preview:
    """The sample grid from fixed noise, and the samples' diversity against the real images'."""

    def __init__(self, model: LabModel, images, labels, device: str):
        import numpy as np
        import torch

        classes = len(model.info.classes)
        count = classes * PREVIEW_ROWS if classes else PREVIEW_ROWS * 10
        generator = torch.Generator().manual_seed(1234)
        self.labels = (torch.arange(count) % classes if classes else torch.zeros(count, dtype=torch.long)).to(device)
        self.noise = model.noise(count, generator).to(device)
        self.columns = classes or 10
        pick = np.random.default_rng(0).permutation(len(images))[:100 * max(classes, 1)]
        self.real = spread(images[pick].cpu().numpy(), labels[pick].cpu().numpy(), classes)

    def draw(self, model: LabModel, cancel: threading.Event) -> tuple[bytes, float] | tuple[None, None]:
        """The grid and the diversity; (None, None) when Stop came while drawing."""
        for module in model.modules.values():
            module.eval()
        try:
            samples = model.sample(self.labels, self.noise, steps=PREVIEW_STEPS, cancel=cancel).cpu().numpy()
        finally:
            for module in model.modules.values():
                module.train()
        if cancel.is_set():
            return None, None
        ratio = spread(samples, self.labels.cpu().numpy(), len(model.info.classes)) / (self.real or 1.0)
        return grid_png(samples, self.columns), ratio


def train(model: LabModel, images, labels, settings: LabSettings, cancel: threading.Event, progress: LabProgress,
          report: Callable[[LabProgress, bytes | None], None], device: str = "cpu") -> Iterator[None]:
    """Train ``model`` on ``images`` ([n, h, w] in 0..1) and ``labels`` ([n] class indices), in place: a generator
    that yields after each step, so the caller's thread can serve Stop meanwhile (``core.cancel.SteppedJob``)."""
    import torch

    from ..core.machine import busy_threads, choose_threads, machine_cores

    # torch's thread pools spin while they wait: beside other busy work, two of them trained the GAN at 507 images/s
    # (14,500 on a quiet machine). Take the cores other work leaves free, as the llama.cpp engine does.
    progress.threads = settings.threads or choose_threads(machine_cores(), 1, busy_threads())
    previous = torch.get_num_threads()
    torch.set_num_threads(progress.threads)
    try:
        yield from _train(model, images, labels, settings, cancel, progress, report, device)
    finally:
        torch.set_num_threads(previous)


def _train(model, images, labels, settings, cancel, progress, report, device):
    import torch

    images, labels = images.to(device), labels.to(device)
    for module in model.modules.values():
        module.to(device).train()
    optimizers = optimizers_for(model, settings.lr)
    step_fn = step_function(model)
    batches = -(-len(images) // settings.batch_size)
    progress.total_steps = max(1, round(settings.epochs * batches))
    every = max(1, progress.total_steps // CURVE_POINTS)
    names = CURVES[model.kind]
    progress.curves = {name: [] for name in names}
    sums = dict.fromkeys(names, 0.0)
    history = model.info.history
    history.setdefault("diversity", [])
    history.setdefault("snapshots", [])
    preview = Preview(model, images, labels, device)
    history["real_diversity"] = preview.real
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.monotonic()
    next_preview, snapshot_every = started, progress.total_steps / SNAPSHOTS
    order, position = torch.randperm(len(images), generator=generator).to(device), 0
    yield  # set up: from here an interrupt ends training after a step, keeping what was learned
    while progress.step < progress.total_steps and not cancel.is_set():
        if position >= len(images):
            order, position = torch.randperm(len(images), generator=generator).to(device), 0
        batch = order[position:position + settings.batch_size]
        position += settings.batch_size
        losses = step_fn(model, optimizers, images[batch], labels[batch])
        progress.step += 1
        for name in names:
            sums[name] += losses[name].item()
        if progress.step % every == 0 or progress.step == progress.total_steps:
            taken = progress.step % every or every
            for name in names:
                progress.curves[name].append([progress.step, sums[name] / taken])
            sums = dict.fromkeys(names, 0.0)
        _timing(progress, started, batches, settings.batch_size)
        grid = None
        now = time.monotonic()
        last = progress.step == progress.total_steps
        if (now >= next_preview or last) and not cancel.is_set():
            grid, diversity = preview.draw(model, cancel)
        if grid is not None:
            progress.diversity = diversity
            next_preview = time.monotonic() + max(1.0, PREVIEW_SHARE * (time.monotonic() - now))
            history["diversity"].append([round(progress.epoch, 3), round(progress.diversity, 4)])
            if last or progress.step >= len(history["snapshots"]) * snapshot_every:
                history["snapshots"].append([round(progress.epoch, 3), base64.b64encode(grid).decode()])
        report(progress, grid)
        yield
    progress.status = "stopped" if progress.step < progress.total_steps else "done"
    progress.seconds_left = None
    for module in model.modules.values():
        module.eval()
    report(progress, None)


def _timing(progress: LabProgress, started: float, batches: int, batch_size: int) -> None:
    elapsed = max(time.monotonic() - started, 1e-6)
    progress.epoch = progress.step / batches
    progress.samples_per_second = progress.step * batch_size / elapsed
    progress.seconds_left = elapsed / progress.step * (progress.total_steps - progress.step)


def encoded_points(model: LabModel, images, labels, limit: int = 600) -> dict:
    """The VAE's encoded means of up to ``limit`` training images, for the latent map."""
    import torch

    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:limit]
    with torch.no_grad():
        vae = model.modules["vae"]
        device = next(vae.parameters()).device
        mean, _ = vae.encode(images[pick].to(device), labels[pick].to(device))
    mean = mean.cpu()
    return {"x": [round(float(v), 4) for v in mean[:, 0]], "y": [round(float(v), 4) for v in mean[:, 1]],
            "label": [int(v) for v in labels[pick]]}
