"""ImageLabEngine: draws with the image lab's trained models, held in the same ModelCache as every model.

The prompt names the class ("7", "seven", "a handwritten 3"); image ``i`` is seeded ``seed + i``. The small
images are scaled up to the asked size without smoothing, so each pixel stays a crisp square.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Callable

from ..core.cache import Loaded, ModelCache, module_bytes, pick_device
from ..core.errors import AigcError
from ..core.models import ModelRef
from .base import IMAGES
from .lab_models import LabModel

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def class_for(prompt: str, classes: list[str]) -> int | None:
    """The index of the one class the prompt names; None for an unconditional model."""
    if not classes:
        return None
    text = prompt.lower()
    named = set()
    for index, name in enumerate(classes):
        spellings = {name.lower()}
        if name.isdigit() and int(name) < len(NUMBER_WORDS):
            spellings.add(NUMBER_WORDS[int(name)])
        if any(re.search(rf"(?<![\w]){re.escape(s)}(?![\w])", text) for s in spellings):
            named.add(index)
    if len(named) == 1:
        return named.pop()
    listed = ", ".join(classes[:20]) + (", …" if len(classes) > 20 else "")
    if named:
        several = ", ".join(classes[i] for i in sorted(named))
        raise AigcError(f"The prompt names several classes ({several}).", f"Name one of: {listed}.")
    raise AigcError("The prompt names none of the classes this model learned.",
                    f"Name one of: {listed} (e.g. 'a handwritten {classes[-1]}').")


class ImageLabEngine:
    name = "image-lab"
    capabilities = frozenset({IMAGES})

    def __init__(self, cache: ModelCache, device: str = ""):
        self.cache = cache
        self.device = device

    def key(self, ref: ModelRef) -> str:
        return f"image-lab:{ref.source}"

    def loader(self, ref: ModelRef) -> Callable[[], Loaded]:
        def load() -> Loaded:
            folder = Path(ref.source)
            try:
                model = LabModel.load(folder)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AigcError(f"The image-lab model in {folder} cannot be read ({type(exc).__name__}).",
                                "Train it again with %aigc_train_image.") from None
            device = pick_device(self.device)
            for module in model.modules.values():
                module.to(device)
            return Loaded(model, sum(module_bytes(m) for m in model.modules.values()), device, "float32", self.name)

        return load

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
        self.cache.get(self.key(ref), self.loader(ref), name=ref.name)

    def generate(self, request, spec: ModelRef, cancel: threading.Event,
                 on_step: Callable[[int, int, int, object], None], collected: list | None = None) -> list:
        """PIL images of the class the prompt names; finished ones go to ``collected`` as they come."""
        import torch
        from PIL import Image

        images = collected if collected is not None else []
        with self.cache.use(self.key(spec), self.loader(spec), name=spec.name) as model:
            index = class_for(request.prompt, model.info.classes)
            steps = request.steps if model.kind == "diffusion" else 1
            device = next(iter(model.parameters())).device
            for number in range(request.n):
                if cancel.is_set():
                    break
                seed = request.seed + number if request.seed is not None else int(torch.seed() % 2**31)
                noise = model.noise(1, torch.Generator().manual_seed(seed)).to(device)
                labels = torch.tensor([index or 0], device=device)
                if model.kind != "diffusion":
                    on_step(number, 0, steps, None)
                pixels = model.sample(labels, noise, steps, cancel=cancel,
                                      on_step=lambda step, total, number=number: on_step(number, step, total, None))
                if cancel.is_set():
                    break
                if model.kind != "diffusion":
                    on_step(number, 1, 1, None)
                grey = (pixels[0].cpu().numpy() * 255).round().clip(0, 255).astype("uint8")  # as the data had it
                image = Image.fromarray(grey).resize((request.width, request.height), Image.NEAREST)
                image.info.update(seed=seed, label=model.info.classes[index] if index is not None else "")
                images.append(image)
        return images
