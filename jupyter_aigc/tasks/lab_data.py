"""The image lab's data: scikit-learn's digits, an array in the notebook, or a folder of small grey images.

Every source becomes ``LabData``: images as a float tensor [n, height, width] in 0..1, a class index per image,
and the class names (none for an unconditional model). Anything else gets a one-line message with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import AigcError

MIN_IMAGES = 20
MAX_SIDE = 32
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass
class LabData:
    images: object  # torch.Tensor [n, h, w], float32 in 0..1
    labels: object  # torch.Tensor [n], long
    classes: list[str]
    label: str  # what the data was, for the record

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])


def load_lab_data(source: str, namespace: dict, conditional: bool | None) -> LabData:
    """``source``: 'digits', a variable's name, or a folder. ``conditional`` None: learn classes when there are."""
    import numpy as np

    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels, label = digits.images / 16.0, [str(t) for t in digits.target], "digits"
    elif source in namespace:
        images, labels = _from_value(namespace[source], source)
        label = f"variable {source}"
    elif Path(source).expanduser().is_dir():
        images, labels = _from_folder(Path(source).expanduser())
        label = f"folder {Path(source).expanduser().resolve()}"
    else:
        raise AigcError(f"--data {source} is not 'digits', a variable of this notebook or a folder.",
                        "Use --data digits, the name of an array of grey images, or a folder of image files.")
    images = _check_images(images, label)
    if conditional is True and labels is None:
        raise AigcError(f"--conditional needs a class for each image, and {label} has none.",
                        "Pass (images, labels), {'images': …, 'labels': …}, or a folder with one subfolder "
                        "per class; or drop --conditional.")
    if labels is not None and len(labels) != len(images):
        raise AigcError(f"{label} has {len(images)} images but {len(labels)} labels.", "Give one label per image.")
    return _labelled(images, labels if conditional is not False else None, label, np)


def _labelled(images, labels, label: str, np) -> LabData:
    import torch

    if labels is None:
        indices, classes = np.zeros(len(images), dtype=np.int64), []
    else:
        names = [str(v) for v in labels]
        classes = sorted(set(names), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
        if len(classes) < 2:
            raise AigcError(f"{label} has one class only ({classes[0]}).",
                            "A conditional model needs two classes or more; drop --conditional to learn one kind.")
        position = {c: i for i, c in enumerate(classes)}
        indices = np.array([position[n] for n in names], dtype=np.int64)
    return LabData(torch.tensor(np.asarray(images), dtype=torch.float32), torch.tensor(indices), classes, label)


def _from_value(value, name: str):
    """(images, labels or None) from an array, (images, labels), a dict or a list of PIL images."""
    labels = None
    if isinstance(value, dict) and "images" in value:
        value, labels = value["images"], value.get("labels")
    elif isinstance(value, tuple) and len(value) == 2:
        value, labels = value
    if isinstance(value, list) and value and hasattr(value[0], "convert"):  # PIL images
        return _pictures(value, [f"{name}[{i}]" for i in range(len(value))]), labels
    return value, (list(labels) if labels is not None else None)


def _from_folder(folder: Path):
    """Images in ``folder``; with subfolders of images, each subfolder is a class (as torchvision's ImageFolder)."""
    from PIL import Image

    def files(path: Path) -> list[Path]:
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)

    classes = sorted(p for p in folder.iterdir() if p.is_dir() and files(p))
    paths, labels = (files(folder), None) if not classes else ([], [])
    for sub in classes:
        found = files(sub)
        paths += found
        labels += [sub.name] * len(found)
    if not paths:
        raise AigcError(f"{folder} holds no image files ({', '.join(sorted(SUFFIXES))}).",
                        "Put the images in the folder, or one subfolder of images per class.")
    pictures = []
    for path in paths:
        try:
            with Image.open(path) as picture:
                picture.load()
                pictures.append(picture)
        except OSError:
            raise AigcError(f"{path} is not an image that can be read.", "Remove it from the folder.") from None
    return _pictures(pictures, [str(p) for p in paths]), labels


def _pictures(pictures: list, names: list[str]):
    import numpy as np

    colour = [n for p, n in zip(pictures, names) if p.mode not in ("L", "1", "I", "I;16", "F")
              and not (p.mode in ("RGB", "RGBA") and _grey(np.asarray(p.convert("RGB"))))]
    if colour:
        raise AigcError(f"{len(colour)} image(s) are in colour, e.g. {colour[0]}.",
                        "The lab learns grey images: convert them, e.g. PIL's image.convert('L').")
    sizes = {p.size for p in pictures}
    if len(sizes) > 1:
        raise AigcError(f"The images have {len(sizes)} sizes ({', '.join(f'{w}×{h}' for w, h in sorted(sizes)[:4])}).",
                        "Give images of one size: resize them first.")
    return np.stack([np.asarray(p.convert("L"), dtype=np.float32) / 255.0 for p in pictures])


def _grey(array) -> bool:
    return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())


def _check_images(images, label: str):
    import numpy as np

    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError):
        raise AigcError(f"{label} is not an array of images of one size.",
                        "Give a numpy array shaped [n, height, width] (grey), or a folder.") from None
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 4 and array.shape[-1] in (3, 4):
        raise AigcError(f"{label} holds colour images (shape {array.shape}).",
                        "The lab learns grey images: pass [n, height, width], e.g. the mean over the colours.")
    if array.ndim == 2 and round(array.shape[1] ** 0.5) ** 2 == array.shape[1]:
        side = round(array.shape[1] ** 0.5)
        array = array.reshape(len(array), side, side)
    if array.ndim != 3:
        raise AigcError(f"{label} has shape {array.shape}, not [n, height, width].",
                        "Give a numpy array of grey images shaped [n, height, width].")
    n, height, width = array.shape
    if n < MIN_IMAGES:
        raise AigcError(f"{label} has {n} images; the lab needs at least {MIN_IMAGES}.", "Add more images.")
    if max(height, width) > MAX_SIDE or min(height, width) < 4:
        raise AigcError(f"{label}'s images are {width}×{height}; the lab trains images of 4 to {MAX_SIDE} pixels "
                        "a side on a CPU.", "Resize them, e.g. to 16×16.")
    if not np.isfinite(array).all():
        raise AigcError(f"{label} holds NaN or infinite values.", "Clean the array first.")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise AigcError(f"{label} has values from {low:g} to {high:g}.", "Give pixels in 0..1 or 0..255.")
    return array / 255.0 if high > 1 else array
