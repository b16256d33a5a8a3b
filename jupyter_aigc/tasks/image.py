"""The image task behind %%aigc_image: pick an engine, report progress, store and save the images."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

from ..core.errors import AigcError
from ..engines.base import IMAGES
from ..engines.diffusers import ImageRequest
from ..options import check

MIN_UPDATE_INTERVAL = 0.05


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not match:
        raise AigcError(f"--size '{text}' is not WIDTHxHEIGHT.", "Use e.g. --size 512x512.")
    return int(match.group(1)), int(match.group(2))


def png_bytes(image, size: int | None = None) -> bytes:
    if size:
        image = image.copy()
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_images(images: list, folder: str, request: ImageRequest, model: str) -> list[Path]:
    """PNG files whose text chunks hold prompt, model, seed and steps."""
    from PIL.PngImagePlugin import PngInfo

    target = Path(folder).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = []
    for index, image in enumerate(images):
        info = PngInfo()
        for key, value in (("prompt", request.prompt), ("model", model), ("seed", image.info.get("seed", "")),
                           ("steps", request.steps), ("guidance", request.guidance)):
            info.add_text(key, str(value))
        path = target / f"aigc-{stamp}-{index}.png"
        copy = 1
        while path.exists():  # a cell of the same second saved there already
            path, copy = target / f"aigc-{stamp}-{index}-{copy}.png", copy + 1
        image.save(path, pnginfo=info)
        paths.append(path)
    return paths


class ImageProgress:
    """Feeds per-step progress to the gallery widget, at most 20 updates a second."""

    def __init__(self, gallery, n: int, steps: int):
        self.gallery = gallery
        self.items = [{"status": "waiting", "step": 0, "steps": steps, "seed": None, "png": b""} for _ in range(n)]
        self.last = 0.0
        self.lock = threading.Lock()

    def step(self, index: int, step: int, steps: int, preview) -> None:
        with self.lock:
            item = self.items[index]
            item.update(status="running", step=step, steps=steps)
            if preview is not None:
                item["png"] = png_bytes(preview)
            now = time.monotonic()
            if step == steps or now - self.last >= MIN_UPDATE_INTERVAL:
                self.last = now
                self.push()

    def finish(self, images: list, status: str = "done") -> None:
        for index, item in enumerate(self.items):
            if index < len(images):
                item.update(status="done", png=png_bytes(images[index]), seed=images[index].info.get("seed"),
                            step=item["steps"])
            elif item["status"] != "done":
                item["status"] = status
        self.push()

    def push(self) -> None:
        if self.gallery is not None:
            self.gallery.items = [dict(item) for item in self.items]


def _record(session, request: ImageRequest, spec, images: list, status: str, started: float, paths: list) -> None:
    """An image cell in %aigc history: prompt, model, settings, the seed of each image, files saved."""
    params = {"size": f"{request.width}x{request.height}", "steps": request.steps, "guidance": request.guidance,
              "seed": request.seed, "n": request.n, "negative": request.negative}
    session.history.append({"time": started, "kind": "image", "prompt": request.prompt, "model": spec.name,
                            "engine": spec.engine, "params": params, "finish_reason": status,
                            "elapsed": time.time() - started, "seeds": [im.info.get("seed") for im in images],
                            "paths": [str(p) for p in paths]})


def run_image(session, args, prompt: str, cancel: threading.Event, gallery=None,
              store=None, report=print) -> list:
    """One %%aigc_image cell; ``gallery`` (a widget, or None in a terminal) shows progress and the images."""
    if not prompt:
        raise AigcError("The cell has no prompt.", "Describe the image in the cell body.")
    if not (args.model or session.config.default_image_model):
        raise AigcError("No image model is configured.", "Pass -m (a diffusers folder, Hub id or "
                        "openai:gpt-image-1), or `%config AigcConfig.default_image_model = '…'`.")
    n = check("image_n", args.n, "-n")
    steps = check("steps", args.steps, "--steps")
    guidance = check("guidance", args.guidance, "--guidance")
    seed = check("seed", args.seed) if args.seed is not None else None
    width, height = parse_size(args.size)
    spec = session.resolve(args.model, kind="image")
    engine, spec = session.registry.serving(spec, IMAGES)
    request = ImageRequest(prompt=prompt, model=spec.name, width=width, height=height, steps=steps,
                           guidance=guidance, seed=seed, n=n, negative=args.negative, key_env=args.key_env)
    engine.prepare(spec, args.key_env)
    if gallery is not None:
        gallery.caption = f"{spec.name} · {width}×{height} · {steps} steps"
    progress = ImageProgress(gallery, n, steps)
    progress.push()
    images: list = []
    started = time.time()
    session.begin()
    try:
        images = engine.generate(request, spec, cancel, progress.step, collected=images)
    finally:
        session.end()
        status = "stopped" if cancel.is_set() else "done"
        progress.finish(images, status)
    if args.output and store is not None:
        store(args.output, images)
    paths = save_images(images, args.save, request, spec.name) if args.save else []
    _record(session, request, spec, images, status, started, paths)
    if gallery is None:
        if not paths and images:
            paths = save_images(images, Path.cwd() / "aigc-images", request, spec.name)
        for path, image in zip(paths, images):
            report(f"saved {path}  (seed {image.info.get('seed')}, {image.width}×{image.height})")
    elif paths:
        report("Saved: " + ", ".join(str(p) for p in paths))
    if status == "stopped":
        report(f"Stopped: kept {len(images)} finished image(s).")
    return images
