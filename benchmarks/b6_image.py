"""B6: %%aigc_image with a local pipeline ÷ calling the same diffusers pipeline directly (same seed, steps).

No pretrained image model can be fetched here, so this uses the tiny random pipeline of
examples/04_images.ipynb, at 256×256 and 20 steps: the figure is the overhead of the magic (progress
callbacks, previews, gallery), which a bigger model would only make smaller in relative terms."""

import os
import tempfile
import time
from pathlib import Path

from _common import alternate, report

ROOT = Path(__file__).resolve().parents[1]


def build_pipeline(folder: Path) -> None:
    import json

    source = json.loads((ROOT / "examples" / "04_images.ipynb").read_text())
    code = next("".join(c["source"]) for c in source["cells"] if "save_pretrained" in "".join(c["source"]))
    exec(code.replace('"tiny-sd"', repr(str(folder))), {})


def main() -> None:
    import torch
    from IPython.core.interactiveshell import InteractiveShell

    folder = Path(tempfile.mkdtemp()) / "tiny-sd"
    build_pipeline(folder)
    os.chdir(folder.parent)  # the terminal shell saves each image to ./aigc-images
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_aigc")
    session = shell._jupyter_aigc_session
    line = f"-m {folder} --size 256x256 --steps 20 --seed 1 -o images"
    shell.run_cell_magic("aigc_image", line, "a lighthouse")
    pipe = session.engines["diffusers"].load(session.resolve(str(folder), kind="image"))

    def direct() -> float:
        start = time.perf_counter()
        pipe("a lighthouse", width=256, height=256, num_inference_steps=20,
             generator=torch.Generator().manual_seed(1)).images[0]
        return time.perf_counter() - start

    def magic() -> float:
        start = time.perf_counter()
        shell.run_cell_magic("aigc_image", line, "a lighthouse")
        return time.perf_counter() - start

    a, b = alternate(direct, magic)
    direct_s = report("direct pipeline call s", a)
    magic_s = report("%%aigc_image s", b)
    print(f"ratio: {direct_s / magic_s:.3f}")


if __name__ == "__main__":
    main()
