"""The image-lab task behind %aigc_train_image: check, train a VAE, a GAN or a diffusion model on small grey
images, save it, and make it a model %%aigc_image draws with (``-m NAME``).

The model joins the model cache and the session's names when training starts, so Stop or an interrupt keeps
it as trained so far. It is saved in the cache folder's ``image_lab/NAME``, where a later kernel finds it by
name. Training again under the same name replaces it; a name another model already answers to is refused.
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

from ..core.cache import Loaded, module_bytes, pick_device
from ..core.config import cache_dir
from ..core.errors import AigcError
from ..core.models import DEFAULT_NAMES, ModelRef
from ..engines.lab_models import KINDS, LAB_INFO, LabInfo, LabModel, read_info
from ..engines.lab_training import DEFAULTS, LabProgress, LabSettings, encoded_points, train
from .lab_data import load_lab_data
from .finetune import saving

LAB_FOLDER = "image_lab"


@dataclass
class LabResult:
    """One training run: ``name`` draws with %%aigc_image -m NAME; ``folder`` holds it once ``saved``."""

    name: str
    kind: str
    folder: Path
    progress: LabProgress
    info: LabInfo
    saved: bool = False


def lab_folder(name: str) -> Path:
    return cache_dir() / LAB_FOLDER / name


def lab_ref(text: str) -> ModelRef | None:
    """A folder an image-lab model was saved in (``-m FOLDER``), or None."""
    folder = Path(text.strip()).expanduser()
    if not (folder / LAB_INFO).is_file():
        return None
    try:
        name = read_info(folder).name
    except (OSError, ValueError, TypeError, KeyError):
        raise AigcError(f"{folder} holds an image-lab model whose {LAB_INFO} cannot be read.",
                        "Train it again with %aigc_train_image.") from None
    return ModelRef("image-lab", str(folder.resolve()), name)


def check_kind(kind: str | None) -> str:
    if kind not in KINDS:
        raise AigcError(f"--kind {kind} is not a kind the lab trains." if kind else "%aigc_train_image needs --kind.",
                        f"Use --kind {', --kind '.join(KINDS)}.")
    return kind


def check_settings(kind: str, args) -> LabSettings:
    defaults = DEFAULTS[kind]
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    batch_size = defaults["batch_size"] if args.batch_size is None else args.batch_size
    lr = defaults["lr"] if args.lr is None else args.lr
    problems = []
    if not 0 < epochs <= 10000:
        problems.append(f"--epochs {epochs:g} (use 1 to 10000)")
    if not 1 <= batch_size <= 4096:
        problems.append(f"--batch-size {batch_size} (use 16 to 256)")
    if not 0 < lr < 1:
        problems.append(f"--lr {lr:g} (use a small positive number such as 1e-3)")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        problems.append(f"--seed {args.seed}")
    if problems:
        raise AigcError(f"These settings make no sense: {'; '.join(problems)}.",
                        f"Change them, or leave them out for the {kind} defaults.")
    return LabSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=args.seed or 0)


class ImageLabTask:
    def __init__(self, session):
        self.session = session
        self.models: dict[str, ModelRef] = {}  # trained or found in this kernel, by name
        self.results: dict[str, LabResult] = {}

    def find(self, name: str) -> ModelRef | None:
        """The image-lab model called ``name``: trained in this kernel, or saved by an earlier one."""
        if name in self.models:
            return self.models[name]
        folder = lab_folder(name)
        if name and "/" not in name and (folder / LAB_INFO).is_file():
            self.models[name] = ModelRef("image-lab", str(folder.resolve()), name)
            return self.models[name]
        return None

    @contextmanager
    def use(self, name: str):
        """The trained ``LabModel`` called ``name``, lent for the ``with`` block."""
        ref = self.find(name)
        if ref is None:
            raise AigcError(f"No image-lab model is called {name}.",
                            "Train one first: %aigc_train_image --kind vae --name NAME.")
        engine = self.session.engines["image-lab"]
        with self.session.cache.use(engine.key(ref), engine.loader(ref), name=name) as model:
            yield model

    def check_name(self, name: str | None) -> str:
        if not name or not name.strip():
            raise AigcError("%aigc_train_image needs --name.", "Name the model, e.g. --name digits; then "
                            "%%aigc_image -m digits.")
        name = name.strip()
        if "/" in name or "\\" in name or name.startswith(".") or len(name) > 100:
            raise AigcError(f"--name {name} cannot be a folder name.", "Use letters, digits, - and _.")
        session = self.session
        held = {s["name"] for s in session.cache.stats() if s["engine"] != "image-lab"}
        if (name.lower() in DEFAULT_NAMES or name in session.all_aliases() or name in session.adapters
                or name in held or name.startswith("openai:") or Path(name).exists()):
            raise AigcError(f"--name {name} is already another model's name here.",
                            "Pick another name, so -m keeps meaning what it meant.")
        return name

    def run(self, args, namespace: dict, cancel: threading.Event, view=None) -> Iterator[None]:
        """A generator (run it with ``core.cancel.SteppedJob``) that yields between training steps and returns
        the ``LabResult``."""
        session = self.session
        kind = check_kind(args.kind)
        settings = replace(check_settings(kind, args), threads=session.config.threads)
        name = self.check_name(args.name)
        conditional = True if args.conditional else (False if args.unconditional else None)
        data = load_lab_data(args.data or "digits", namespace, conditional)
        if kind == "diffusion" and any(side % 2 for side in data.shape):
            raise AigcError(f"The diffusion model halves the image once, and {data.label}'s images are "
                            f"{data.shape[1]}×{data.shape[0]}.", "Give images with even sides (pad or resize).")
        folder = lab_folder(name)
        info = LabInfo(kind=kind, name=name, shape=data.shape, classes=data.classes, data=data.label,
                       settings=asdict(settings), status="running")
        import torch

        result = LabResult(name, kind, folder, LabProgress(classes=data.classes[:40]), info)
        report = view.update if view is not None else (lambda progress, grid: None)
        started = time.time()
        session.begin()
        try:
            with torch.random.fork_rng(devices=[]):  # seeded, and the notebook's own random state left alone
                torch.manual_seed(settings.seed)
                model = LabModel.new(info)
                yield from self._train(result, model, data, settings, cancel, report)
        finally:
            session.end()
        progress = result.progress
        info.status, info.seconds = progress.status, time.time() - started
        info.epochs_done = round(progress.epoch, 3)
        info.history["losses"] = progress.curves
        if kind == "vae":
            info.history["latent_points"] = encoded_points(model, data.images, data.labels)
        session.history.append({"time": started, "kind": "image-lab", "prompt": f"--kind {kind} --name {name}",
                                "model": name, "engine": "image-lab", "finish_reason": progress.status,
                                "params": {**asdict(settings), "data": data.label, "classes": len(data.classes)},
                                "elapsed": info.seconds})
        with saving(folder, f"{name} is trained (it draws with %%aigc_image -m {name} in this kernel) but",
                    "Free some space, or set JUPYTER_AIGC_CACHE to a writable folder, and train again."):
            if (folder / LAB_INFO).is_file():
                shutil.rmtree(folder)  # the model this name meant before, perhaps of another kind
            model.save(folder)
        result.saved = True
        return result

    def _train(self, result: LabResult, model: LabModel, data, settings, cancel, report) -> Iterator[None]:
        """Train with the model registered under its name first, held exclusively while it changes."""
        session, name = self.session, result.name
        engine = session.engines["image-lab"]
        ref = ModelRef("image-lab", str(result.folder.resolve()), name)
        key = engine.key(ref)
        session.cache.evict(key)  # what this name meant before
        device = pick_device(engine.device)
        loaded = Loaded(model, sum(module_bytes(m) for m in model.modules.values()), device, "float32", engine.name)
        self.models[name], self.results[name] = ref, result
        with session.cache.use(key, lambda: loaded, name=name, exclusive=True):
            try:
                yield from train(model, data.images, data.labels, settings, cancel, result.progress, report, device)
            except BaseException as exc:  # failed or interrupted while setting up: the name no longer means it
                self.models.pop(name, None)
                self.results.pop(name, None)
                session.cache.evict(key)
                if "out of memory" not in str(exc).lower():
                    raise
                raise AigcError("Out of memory while training the image model.",
                                "Try a smaller --batch-size, or free memory with `%aigc evict --all`.") from None
