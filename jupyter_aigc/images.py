"""The %%aigc_image flow: parse, pick a backend, show progress, store and save the images."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

from .backends.local_image import ImageRequest
from .errors import AigcError
from .models import resolve
from .render import MIN_UPDATE_INTERVAL


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
                            "backend": spec.backend, "params": params, "finish_reason": status,
                            "elapsed": time.time() - started, "seeds": [im.info.get("seed") for im in images],
                            "paths": [str(p) for p in paths]})


def run_image(session, args, cell: str) -> None:
    """One %%aigc_image cell: the images appear in a gallery (Jupyter) or as saved files (terminal)."""
    from IPython.display import display

    from .prompts import interpolate

    prompt = interpolate(cell.strip(), session.shell.user_ns)
    if not prompt:
        raise AigcError("The cell has no prompt.", "Describe the image in the cell body.")
    model = args.model or session.config.default_image_model
    if not model:
        raise AigcError("No image model is configured.", "Pass -m (a diffusers folder, Hub id or "
                        "openai:gpt-image-1), or `%config AigcConfig.default_image_model = '…'`.")
    if not 1 <= args.n <= 16 or args.steps < 1:
        raise AigcError("-n must be 1 to 16 and --steps at least 1.", "Use e.g. -n 2 --steps 25.")
    width, height = parse_size(args.size)
    spec = resolve(model, session.all_aliases())
    request = ImageRequest(prompt=prompt, model=spec.name, width=width, height=height, steps=args.steps,
                           guidance=args.guidance, seed=args.seed, n=args.n, negative=args.negative,
                           key_env=args.key_env)
    jupyter = type(session.shell).__name__ == "ZMQInteractiveShell"
    gallery = None
    if jupyter:
        from .widgets.image_gallery import ImageGallery

        gallery = ImageGallery(caption=f"{spec.name} · {width}×{height} · {args.steps} steps")
        display(gallery)
    progress = ImageProgress(gallery, args.n, args.steps)
    progress.push()
    cancel = threading.Event()
    images: list = []
    status = "done"
    started = time.time()
    session.generating = True
    try:
        if spec.backend == "openai":
            images = session.openai_images.generate(request, spec, cancel)
        else:
            images = session.local_images.generate(request, spec, cancel, progress.step, collected=images)
    except KeyboardInterrupt:
        cancel.set()
        status = "stopped"
    finally:
        session.generating = False
        progress.finish(images, status)
    if args.output:
        session.shell.user_ns[args.output] = images
    paths = save_images(images, args.save, request, spec.name) if args.save else []
    _record(session, request, spec, images, status, started, paths)
    if not jupyter:
        if not paths and images:
            paths = save_images(images, Path.cwd() / "aigc-images", request, spec.name)
        from rich.console import Console

        console = Console()
        for path, image in zip(paths, images):
            console.print(f"[green]saved[/green] {path}  (seed {image.info.get('seed')}, {image.width}×{image.height})")
    elif paths:
        print("Saved: " + ", ".join(str(p) for p in paths))
    if status == "stopped":
        print(f"Stopped: kept {len(images)} finished image(s).")
