"""The image lab's three models over small grey images: a conditional VAE and GAN (small torch modules written
out here), and a diffusion model made of diffusers' own pieces (``UNet2DModel``, DDPM to train, DDIM to draw).

A ``LabModel`` holds the modules, what the images look like (``shape``) and the class names it learned
(``classes``: empty for an unconditional model). It draws images in 0..1 and saves itself to a folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

KINDS = ("vae", "gan", "diffusion")
LAB_INFO = "image_lab.json"
TRAIN_TIMESTEPS = 1000


@dataclass
class LabInfo:
    """What is saved beside the weights, and what ``%aigc cache`` and the views read."""

    kind: str
    name: str
    shape: tuple[int, int]
    classes: list[str] = field(default_factory=list)
    data: str = ""
    settings: dict = field(default_factory=dict)
    status: str = "new"
    epochs_done: float = 0.0
    seconds: float = 0.0
    history: dict = field(default_factory=dict)  # losses, diversity over epochs, sample snapshots


def _torch():
    import torch

    return torch


def _nn():
    return _torch().nn


def _label_input(classes: int):
    """One-hot class labels (nothing for an unconditional model)."""
    torch = _torch()

    def encode(labels, n: int):
        if not classes:
            return torch.zeros(n, 0)
        return torch.nn.functional.one_hot(labels, classes).float()

    return encode


def make_vae(pixels: int, classes: int, latent: int = 2, hidden: int = 256):
    """A conditional VAE: encoder (image, label) → mean and log-variance of a 2-D latent; decoder (latent,
    label) → pixel probabilities."""
    nn = _nn()
    torch = _torch()

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.classes, self.latent = classes, latent
            self.encoder = nn.Sequential(nn.Linear(pixels + classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                         nn.ReLU())
            self.mean = nn.Linear(hidden, latent)
            self.log_var = nn.Linear(hidden, latent)
            self.decoder = nn.Sequential(nn.Linear(latent + classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                         nn.ReLU(), nn.Linear(hidden, pixels))
            self.label = _label_input(classes)

        def encode(self, x, labels):
            h = self.encoder(torch.cat([x.flatten(1), self.label(labels, len(x))], 1))
            return self.mean(h), self.log_var(h)

        def decode(self, z, labels):
            return torch.sigmoid(self.decoder(torch.cat([z, self.label(labels, len(z))], 1)))

        def forward(self, x, labels):
            mean, log_var = self.encode(x, labels)
            z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            return self.decode(z, labels), mean, log_var

    return VAE()


def make_gan(pixels: int, classes: int, noise: int = 16):
    """A conditional GAN: generator (noise, label) → pixels in 0..1; discriminator (image, label) → a logit."""
    nn = _nn()
    torch = _torch()
    width = max(classes, 1)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.noise = noise
            self.embed = nn.Embedding(width, 10)
            self.net = nn.Sequential(nn.Linear(noise + 10, 128), nn.LeakyReLU(0.2), nn.Linear(128, 256),
                                     nn.LeakyReLU(0.2), nn.Linear(256, pixels), nn.Sigmoid())

        def forward(self, z, labels):
            return self.net(torch.cat([z, self.embed(labels)], 1))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(width, 10)
            self.net = nn.Sequential(nn.Linear(pixels + 10, 256), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                                     nn.Linear(256, 128), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(128, 1))

        def forward(self, x, labels):
            return self.net(torch.cat([x.flatten(1), self.embed(labels)], 1))

    return Generator(), Discriminator()


def make_unet(shape: tuple[int, int], classes: int):
    """diffusers' UNet2DModel, small enough for a CPU: two resolutions, no attention blocks (at 8×8 they cost
    five times as much per step and taught nothing more), one class embedding per label."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=shape, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(32, 64), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       num_class_embeds=classes or None)


def make_train_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2")


class LabModel:
    """The modules of one kind, with ``sample`` (what %%aigc_image draws) and ``save``/``load``."""

    def __init__(self, info: LabInfo, modules: dict):
        self.info = info
        self.modules = modules

    @classmethod
    def new(cls, info: LabInfo) -> "LabModel":
        height, width = info.shape
        pixels, classes = height * width, len(info.classes)
        if info.kind == "vae":
            modules = {"vae": make_vae(pixels, classes)}
        elif info.kind == "gan":
            generator, discriminator = make_gan(pixels, classes)
            modules = {"generator": generator, "discriminator": discriminator}
        else:
            modules = {"unet": make_unet((height, width), classes)}
        return cls(info, modules)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.info.shape)

    def parameters(self):
        return [p for module in self.modules.values() for p in module.parameters()]

    def eval(self) -> "LabModel":
        for module in self.modules.values():
            module.eval()
        return self

    def noise(self, n: int, generator) -> "object":
        """The fixed noise a sample starts from: latents (VAE), generator input (GAN), x_T (diffusion)."""
        torch = _torch()
        size = {"vae": (n, 2), "gan": (n, 16)}.get(self.kind, (n, 1, *self.shape))
        return torch.randn(size, generator=generator)

    def sample(self, labels, noise, steps: int = 25, on_step: Callable[[int, int], None] | None = None,
               cancel=None, trace: list | None = None):
        """Images in 0..1 as a tensor [n, height, width], one per label, from ``noise`` (``self.noise``).

        Diffusion runs ``steps`` DDIM steps, calling ``on_step(step, steps)``; ``trace`` collects (timestep,
        x_t, predicted x_0) after each step for the denoising view.
        """
        torch = _torch()
        n = len(labels)
        height, width = self.shape
        with torch.no_grad():
            if self.kind == "vae":
                images = self.modules["vae"].decode(noise, labels)
            elif self.kind == "gan":
                images = self.modules["generator"](noise, labels)
            else:
                images = self._denoise(labels, noise, steps, on_step, cancel, trace)
        return images.reshape(n, height, width).clamp(0, 1)

    def _denoise(self, labels, x, steps, on_step, cancel, trace):
        from diffusers import DDIMScheduler

        unet = self.modules["unet"]
        scheduler = DDIMScheduler.from_config(make_train_scheduler().config)
        scheduler.set_timesteps(steps)
        class_labels = labels if self.info.classes else None
        for index, timestep in enumerate(scheduler.timesteps):
            if cancel is not None and cancel.is_set():
                break
            out = scheduler.step(unet(x, timestep, class_labels=class_labels).sample, timestep, x)
            x = out.prev_sample
            if trace is not None:
                trace.append((int(timestep), (x.squeeze(1) + 1) / 2, (out.pred_original_sample.squeeze(1) + 1) / 2))
            if on_step is not None:
                on_step(index + 1, steps)
        return (x + 1) / 2

    def save(self, folder: Path) -> None:
        """Weights as safetensors (the UNet through diffusers' ``save_pretrained``) and ``image_lab.json``."""
        from safetensors.torch import save_model

        folder.mkdir(parents=True, exist_ok=True)
        for name, module in self.modules.items():
            if self.kind == "diffusion":
                module.save_pretrained(folder / name)
            else:
                save_model(module, str(folder / f"{name}.safetensors"))
        (folder / LAB_INFO).write_text(json.dumps(asdict(self.info)))

    @classmethod
    def load(cls, folder: Path) -> "LabModel":
        from safetensors.torch import load_model

        info = read_info(folder)
        if info.kind == "diffusion":
            from diffusers import UNet2DModel

            return cls(info, {"unet": UNet2DModel.from_pretrained(folder / "unet")}).eval()
        model = cls.new(info)
        for name, module in model.modules.items():
            load_model(module, str(folder / f"{name}.safetensors"))
        return model.eval()


def read_info(folder: Path) -> LabInfo:
    data = json.loads((Path(folder) / LAB_INFO).read_text())
    data["shape"] = tuple(data["shape"])
    return LabInfo(**data)
