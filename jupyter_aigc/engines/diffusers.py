"""DiffusersEngine: any diffusers text-to-image pipeline, held in the same ModelCache as text models."""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..core.cache import Loaded, ModelCache, module_bytes, pick_device, pick_dtype
from ..core.errors import AigcError
from ..core.models import ModelRef
from .base import IMAGES

PREVIEW_EVERY = 5
PREVIEW_SIZE = 96


@dataclass
class ImageRequest:
    prompt: str
    model: str
    width: int = 512
    height: int = 512
    steps: int = 25
    guidance: float = 7.5
    seed: int | None = None
    n: int = 1
    negative: str | None = None
    key_env: str | None = field(default=None, repr=False)


def load_pipeline(source: str, device: str, dtype):
    """A diffusers pipeline that turns a prompt into images, on ``device``."""
    try:
        import diffusers
    except ImportError:
        raise AigcError("Local image models need the package diffusers.",
                        "Run: pip install 'jupyter-aigc[image]'.") from None

    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise AigcError(f"Could not load the diffusers pipeline '{source}': {str(exc).splitlines()[0]}",
                        "Give a folder saved with pipeline.save_pretrained, or a reachable Hub id.") from None
    parameters = inspect.signature(pipe.__call__).parameters
    if "prompt" not in parameters or "image" in parameters or not hasattr(pipe, "vae"):
        raise AigcError(f"'{source}' is a {type(pipe).__name__}, not a text-to-image pipeline.",
                        "Pass a text-to-image pipeline (Stable Diffusion style) to %%aigc_image.")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def latent_preview(latents):
    """A cheap RGB preview of the current latents (first three channels, scaled), no VAE decode."""
    import numpy as np
    from PIL import Image

    array = latents[0, :3].float().cpu().numpy()
    low, high = float(array.min()), float(array.max())
    array = (array - low) / ((high - low) or 1.0)
    image = Image.fromarray((np.moveaxis(array, 0, -1) * 255).astype("uint8"))
    return image.resize((PREVIEW_SIZE, PREVIEW_SIZE))


class DiffusersEngine:
    """Generates one image per seed with progress callbacks; out of memory evicts the LRU model and retries."""

    name = "diffusers"
    capabilities = frozenset({IMAGES})

    def __init__(self, cache: ModelCache, device: str = "", dtype: str = ""):
        self.cache = cache
        self.device = device
        self.dtype = dtype

    def key(self, ref: ModelRef) -> str:
        return f"diffusers:{ref.source}"

    def load(self, ref: ModelRef):
        def loader() -> Loaded:
            device = pick_device(self.device)
            dtype = pick_dtype(device, self.dtype)
            pipe = load_pipeline(ref.source, device, dtype)
            return Loaded(pipe, module_bytes(pipe), device, str(dtype).removeprefix("torch."), self.name)

        return self.cache.get(self.key(ref), loader, name=ref.name)

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
        self.load(ref)

    def generate(self, request: ImageRequest, spec: ModelRef, cancel: threading.Event,
                 on_step: Callable[[int, int, int, object], None], collected: list | None = None) -> list:
        """PIL images, image ``i`` seeded ``seed + i``; ``on_step(i, step, steps, preview)`` after each step.

        Finished images are appended to ``collected`` as they come, so an interrupt keeps them.
        """
        import torch

        pipe = self.load(spec)
        scale = getattr(pipe, "vae_scale_factor", 8)
        if request.width % scale or request.height % scale:
            raise AigcError(f"--size {request.width}x{request.height} is not a multiple of {scale}.",
                            f"Use sizes divisible by {scale}, e.g. 512x512.")
        images = collected if collected is not None else []
        for index in range(request.n):
            if cancel.is_set():
                break
            seed = request.seed + index if request.seed is not None else int(torch.seed() % 2**31)

            def step_end(pipeline, step, timestep, kwargs, index=index):
                if cancel.is_set():
                    pipeline._interrupt = True
                preview = latent_preview(kwargs["latents"]) if (step + 1) % PREVIEW_EVERY == 0 else None
                on_step(index, step + 1, request.steps, preview)
                return kwargs

            image = self._run(pipe, self.key(spec), request, seed, step_end)
            if cancel.is_set():
                break
            image.info["seed"] = seed
            images.append(image)
        return images

    def _run(self, pipe, key: str, request: ImageRequest, seed: int, step_end):
        import torch

        for attempt in range(2):
            try:
                generator = torch.Generator(device="cpu").manual_seed(seed)
                return pipe(request.prompt, negative_prompt=request.negative, width=request.width,
                            height=request.height, num_inference_steps=request.steps,
                            guidance_scale=request.guidance, generator=generator,
                            callback_on_step_end=step_end).images[0]
            except torch.OutOfMemoryError:
                if attempt or not self.cache.evict_lru(keep=key):
                    raise AigcError("Out of memory while generating the image, even after evicting other "
                                    "models.", "Try a smaller --size or fewer --steps, or "
                                    "`%aigc evict --all`.") from None
