"""The image lab's teaching views: a VAE's latent map, a diffusion sample's denoising steps, a GAN's diversity.

Each sends its numbers once as binary buffers; dragging, the class picker and the sliders redraw in the browser
and send nothing to the kernel (the latent map runs the VAE decoder's own weights in JavaScript). The static
copy for saved notebooks and nbconvert is sanitised text plus PNG pictures this module encoded itself.
"""

from __future__ import annotations


import numpy as np
from traitlets import Bytes, Dict, Float, Int, List, Unicode

from ...tasks.lab_lessons import Denoising, GanDiversity, LatentMap
from ..markdown import sanitize
from ..outside import html as outside_html
from .charts import png_img
from .static_copy import css
from .teaching import TeachingWidget, esm, f32


def png(images: np.ndarray, columns: int, scale: int = 4, gap: int = 1) -> bytes:
    """A PNG of grey images in 0..1 ([n, h, w]), scaled up without smoothing."""
    from ...engines.lab_training import grid_png

    return grid_png(np.clip(np.asarray(images, np.float32), 0, 1), columns, scale, gap)


class LabLessonWidget(TeachingWidget):
    """A teaching widget whose static copy holds pictures: ``static_parts`` gives sanitised HTML and PNGs."""

    _css = css("teaching.css", "image_lab_lessons.css")   # teaching.css: the caption and save buttons

    def static_parts(self) -> list:
        """HTML strings (sanitised on the way out) and (png bytes, alt text) pairs, in order."""
        return []

    def static_html(self) -> str:
        return "".join(png_img(*part) if isinstance(part, tuple) else sanitize(part) for part in self.static_parts())

    def safe_html(self) -> str:
        return self.static_html()


class LatentMapView(LabLessonWidget):
    """A conditional VAE's 2-D latent plane for one class: decoded images laid over it, the encoded training
    points, and a point to drag whose image the browser decodes with the decoder's own weights."""

    _esm = esm("latent_map.js")
    caption_text = ("Every point of this plane decodes to an image. Nearby points give similar images: moving across the "
                    "plane changes the style (slant, thickness), not the class.")

    model_name = Unicode("").tag(sync=True)
    classes = List(Unicode()).tag(sync=True)
    label = Int(0).tag(sync=True)
    shape = List(Int()).tag(sync=True)           # [height, width]
    extent = Float(3.0).tag(sync=True)           # the plane is [-extent, extent]²
    grid_size = Int(15).tag(sync=True)           # tiles per side
    layer_sizes = List(Int()).tag(sync=True)     # [in, hidden, hidden, pixels]
    decoder = Bytes(b"").tag(sync=True)          # float32: W1 [out, in], b1, W2, b2, W3, b3
    points = Bytes(b"").tag(sync=True)           # float32 [n, 2]: encoded means of training images
    point_labels = Bytes(b"").tag(sync=True)     # float32 [n]: their classes

    def __init__(self, data: LatentMap, **kwargs):
        sizes = [data.layers[0][0].shape[1]] + [weight.shape[0] for weight, _ in data.layers]
        flat = np.concatenate([a.ravel() for layer in data.layers for a in layer])
        super().__init__(model_name=data.name, classes=data.classes, label=data.label, shape=list(data.shape),
                         extent=data.extent, grid_size=data.size, layer_sizes=sizes, decoder=f32(flat),
                         points=f32(data.points), point_labels=f32(data.point_labels), **kwargs)
        self.data = data

    @property
    def grid(self) -> np.ndarray:
        return self.data.grid

    def figure(self):
        from . import pictures

        return pictures.latent_map(self)

    def static_parts(self) -> list:
        data = self.data
        which = f" for class <code>{outside_html(data.classes[data.label])}</code>" if data.classes else ""
        size, height, width = data.size, *data.shape
        picture = png(data.grid.reshape(size * size, height, width), size, scale=3, gap=0)
        return [f"<p><strong>Latent map</strong> of {outside_html(data.name)}{which}: the decoder's image at each point "
                f"of the plane z ∈ [−{data.extent:g}, {data.extent:g}]² ({size}×{size} points; z₁ across, z₂ "
                f"up). {len(data.points)} training images were encoded onto it.</p>",
                (picture, "images decoded over the latent plane")]


class DenoiseView(LabLessonWidget):
    """One diffusion sample from pure noise to the finished image: x_t and the predicted x_0 at every DDIM step,
    with a slider over the steps and a strip of thumbnails."""

    _esm = esm("denoise_steps.js")
    caption_text = ("From pure noise to a digit: at each step the model guesses the finished image (bottom) and removes "
                    "part of the noise. The shape is settled long before the noise is gone.")

    model_name = Unicode("").tag(sync=True)
    class_name = Unicode("").tag(sync=True)
    seed = Int(0).tag(sync=True)
    shape = List(Int()).tag(sync=True)
    timesteps = List(Int()).tag(sync=True)
    noise = List(Float()).tag(sync=True)   # √(1 − ᾱ_t) at each position
    xt = Bytes(b"").tag(sync=True)         # float32 [steps + 1, h, w]
    x0 = Bytes(b"").tag(sync=True)         # float32 [steps, h, w]

    def __init__(self, data: Denoising, **kwargs):
        super().__init__(model_name=data.name, class_name=data.class_name, seed=data.seed,
                         shape=list(data.xt.shape[1:]), timesteps=data.timesteps, noise=data.noise,
                         xt=f32(data.xt), x0=f32(data.x0), **kwargs)
        self.data = data

    def figure(self):
        from . import pictures

        return pictures.denoising(self)

    def static_parts(self) -> list:
        data = self.data
        picks = sorted(set(np.linspace(0, data.steps, min(11, data.steps + 1)).round().astype(int).tolist()))
        which = f" of <code>{outside_html(data.class_name)}</code>" if data.class_name else ""
        labels = ", ".join(f"t={data.timesteps[k]}" if k < data.steps else "done" for k in picks)
        guesses = data.x0[[min(k, data.steps - 1) for k in picks]] if data.steps else data.xt[picks]
        return [f"<p><strong>Denoising</strong>: one sample{which} by {outside_html(data.name)} (seed {data.seed}), "
                f"{data.steps} DDIM steps from pure noise to the image. Top: x<sub>t</sub> ({labels}); bottom: the "
                "model's guess of the finished image x<sub>0</sub> at each of those steps.</p>",
                (png(np.concatenate([data.xt[picks], guesses]), len(picks), scale=5), "denoising steps")]


class GanDiversityView(LabLessonWidget):
    """A GAN's samples' diversity over the epochs (÷ the real images'), with the sample grid at each snapshot."""

    _esm = esm("gan_diversity.js")
    caption_text = ("1 = the samples are as varied as the real images. A line falling towards 0 is mode collapse: the "
                    "generator draws the same few images again and again.")

    model_name = Unicode("").tag(sync=True)
    classes = List(Unicode()).tag(sync=True)
    epochs = List(Float()).tag(sync=True)
    ratios = List(Float()).tag(sync=True)
    real = Float(0.0).tag(sync=True)
    verdict = Unicode("").tag(sync=True)
    snapshots = List(Dict()).tag(sync=True)   # {epoch, png}: PNG bytes travel as binary buffers

    def __init__(self, data: GanDiversity, **kwargs):
        super().__init__(model_name=data.name, classes=data.classes, epochs=data.epochs, ratios=data.ratios,
                         real=data.real, verdict=data.verdict,
                         snapshots=[{"epoch": e, "png": p} for e, p in data.snapshots], **kwargs)
        self.data = data

    def figure(self):
        from . import pictures

        return pictures.gan_diversity(self)

    def static_parts(self) -> list:
        data = self.data
        rows = "".join(f"<tr><td>{e:g}</td><td>{r:.3f}</td></tr>" for e, r in zip(data.epochs, data.ratios))
        parts = [f"<p><strong>Diversity over epochs</strong> of {outside_html(data.name)}: the mean distance between "
                 "samples of one class, divided by the same for the real images (1 = as varied as the real data; "
                 f"near 0 = every sample alike, mode collapse). {outside_html(data.verdict)}</p>"]
        if data.snapshots:
            epoch, picture = data.snapshots[-1]
            parts += [f"<p>Samples at epoch {epoch:g}:</p>", (picture, f"samples at epoch {epoch:g}")]
        return parts + [f"<table><thead><tr><th>epoch</th><th>diversity ÷ real</th></tr></thead><tbody>{rows}"
                        "</tbody></table>"]
