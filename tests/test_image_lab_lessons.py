"""The image lab's teaching views, without a kernel, on real torch models: the latent map sends the decoder's
real weights (what the browser computes from them is the VAE's own decode), the denoising steps are the DDIM
trace of one sample, the diversity view reads the training history; wrong kinds fail with a fix."""

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from jupyter_aigc.core.errors import AigcError
from jupyter_aigc.engines.lab_models import LabInfo, LabModel
from jupyter_aigc.engines.lab_training import grid_png
from jupyter_aigc.tasks import lab_lessons
from jupyter_aigc.tasks.lab_lessons import denoising, diversity, latent_map
from jupyter_aigc.views.widgets.image_lab_lessons import DenoiseView, GanDiversityView, LatentMapView

DIGITS = [str(i) for i in range(10)]


def new_model(kind: str, classes=DIGITS, name: str = "t") -> LabModel:
    torch.manual_seed(0)
    return LabModel.new(LabInfo(kind=kind, name=name, shape=(8, 8), classes=list(classes)))


class FakeSession:
    """What the builders need of a session: ``image_lab.use(name)`` lends a model or raises."""

    def __init__(self, **models):
        self.image_lab = self
        self.models = models

    @contextmanager
    def use(self, name):
        if name not in self.models:
            raise AigcError(f"No image-lab model is called '{name}'.", "Train it with %aigc_train_image.")
        yield self.models[name]


def js_decode(view: LatentMapView, z, label: int) -> np.ndarray:
    """What latent_map.js computes: unpack the float32 buffer by layer_sizes, then Linear, ReLU, Linear, ReLU,
    Linear, sigmoid on [z₁, z₂, one-hot class], accumulating in float64."""
    flat = np.frombuffer(view.decoder, dtype=np.float32)
    sizes, offset, layers = view.layer_sizes, 0, []
    for n_in, n_out in zip(sizes, sizes[1:]):
        weight = flat[offset:offset + n_in * n_out].reshape(n_out, n_in)
        offset += n_in * n_out
        layers.append((weight.astype(np.float64), flat[offset:offset + n_out].astype(np.float64)))
        offset += n_out
    assert offset == len(flat), "the buffer holds exactly the decoder's weights"
    x = np.zeros(sizes[0])
    x[:2] = z
    if view.classes:
        x[2 + label] = 1
    for index, (weight, bias) in enumerate(layers):
        x = weight @ x + bias
        x = np.maximum(x, 0) if index < len(layers) - 1 else 1 / (1 + np.exp(-x))
    return x


def vae_decode(model: LabModel, z, label: int) -> np.ndarray:
    with torch.no_grad():
        out = model.modules["vae"].decode(torch.tensor([z], dtype=torch.float32), torch.tensor([label]))
    return out[0].numpy().astype(np.float64)


def train_a_little(model: LabModel, steps: int = 30) -> None:
    """A few real optimisation steps, so the weights are not the initial ones."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:256] / 16, dtype=torch.float32)
    labels = torch.tensor(digits.target[:256])
    vae = model.modules["vae"]
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(steps):
        recon, mean, log_var = vae(x, labels)
        loss = torch.nn.functional.binary_cross_entropy(recon, x.flatten(1), reduction="sum") \
            - 0.5 * torch.sum(1 + log_var - mean ** 2 - log_var.exp())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_latent_map_sends_the_decoders_real_weights():
    model = new_model("vae")
    train_a_little(model)
    rng = np.random.default_rng(1)
    model.info.history["latent_points"] = {"x": rng.normal(size=50).round(4).tolist(),
                                           "y": rng.normal(size=50).round(4).tolist(),
                                           "label": rng.integers(0, 10, 50).tolist()}
    data = latent_map(model, label=7)
    view = LatentMapView(data)
    assert view.layer_sizes == [12, 256, 256, 64]
    assert view.label == 7 and view.classes == DIGITS and view.shape == [8, 8]
    decoder = [m for m in model.modules["vae"].decoder if isinstance(m, torch.nn.Linear)]
    for (weight, bias), linear in zip(data.layers, decoder):
        assert np.array_equal(weight, linear.weight.detach().numpy())
        assert np.array_equal(bias, linear.bias.detach().numpy())
    for z in ([0.0, 0.0], [1.3, -2.2], [-3.0, 3.0], [2.71, 0.05]):
        for label in (0, 3, 7, 9):
            assert np.abs(js_decode(view, z, label) - vae_decode(model, z, label)).max() < 1e-5
    points = np.frombuffer(view.points, dtype=np.float32).reshape(-1, 2)
    assert points.shape == (50, 2)
    assert np.allclose(points[:, 0], model.info.history["latent_points"]["x"])
    assert np.frombuffer(view.point_labels, dtype=np.float32).tolist() == model.info.history["latent_points"]["label"]


def test_latent_grid_lies_over_the_plane_as_drawn():
    model = new_model("vae")
    data = latent_map(model, label=2, size=5, extent=2.0)
    assert data.grid.shape == (5, 5, 8, 8)
    centres = data.centres()
    assert centres[0, 0].tolist() == pytest.approx([-1.6, 1.6]), "row 0 is the top of the plane (z₂ = +extent)"
    assert centres[4, 4].tolist() == pytest.approx([1.6, -1.6])
    for r, c in ((0, 0), (1, 3), (4, 2)):
        expected = vae_decode(model, centres[r, c].tolist(), 2).reshape(8, 8)
        assert np.abs(data.grid[r, c] - expected).max() < 1e-6
    assert len(data.points) == 0, "no training yet: no encoded points"


def test_unconditional_vae_has_one_plane():
    model = new_model("vae", classes=[])
    view = LatentMapView(latent_map(model))
    assert view.layer_sizes[0] == 2 and view.classes == []
    z = [0.4, -0.9]
    with torch.no_grad():
        expected = model.modules["vae"].decode(torch.tensor([z]), torch.zeros(1, dtype=torch.long))[0].numpy()
    assert np.abs(js_decode(view, z, 0) - expected).max() < 1e-5


def test_denoising_is_the_ddim_trace_of_one_sample():
    model = new_model("diffusion").eval()
    data = denoising(model, label=7, seed=3, steps=6)
    assert data.steps == 6 and data.class_name == "7"
    assert data.xt.shape == (7, 8, 8) and data.x0.shape == (6, 8, 8)
    assert data.timesteps == sorted(data.timesteps, reverse=True) and data.timesteps[-1] == 0
    start = model.noise(1, torch.Generator().manual_seed(3))
    assert np.allclose(data.xt[0], ((start + 1) / 2).reshape(8, 8).numpy())
    final = model.sample(torch.tensor([7]), model.noise(1, torch.Generator().manual_seed(3)), steps=6)
    assert np.allclose(np.clip(data.xt[-1], 0, 1), final[0].numpy(), atol=1e-6), "the last x_t is the sample"
    assert data.noise[0] > 0.9 and data.noise[-1] == 0 and data.noise == sorted(data.noise, reverse=True)
    again = denoising(model, label=7, seed=3, steps=6)
    assert np.array_equal(again.xt, data.xt), "the seed reproduces"
    view = DenoiseView(data)
    assert np.array_equal(np.frombuffer(view.xt, np.float32).reshape(7, 8, 8), data.xt)
    assert np.array_equal(np.frombuffer(view.x0, np.float32).reshape(6, 8, 8), data.x0)
    assert view.timesteps == data.timesteps and view.shape == [8, 8]
    html = view.static_html()
    assert html.count(' src="data:image/png;base64,') == 1 and "6 DDIM steps" in html


def history_with(ratios, good_png: bytes):
    import base64

    epochs = [float(i + 1) for i in range(len(ratios))]
    return {"diversity": [[e, r] for e, r in zip(epochs, ratios)], "real_diversity": 5.2,
            "snapshots": [[1.0, base64.b64encode(good_png).decode()], [2.0, "not base64!"],
                          [3.0, base64.b64encode(b"GIF89a...").decode()], [float(len(ratios)),
                                                                            base64.b64encode(good_png).decode()]]}


def test_gan_diversity_reads_the_history():
    model = new_model("gan")
    picture = grid_png(np.random.default_rng(0).random((20, 8, 8)), 10)
    model.info.history = history_with([0.9, 0.85, 0.6, 0.3, 0.2], picture)
    data = diversity(model)
    assert data.epochs == [1, 2, 3, 4, 5] and data.ratios == [0.9, 0.85, 0.6, 0.3, 0.2] and data.real == 5.2
    assert [e for e, _ in data.snapshots] == [1.0, 5.0], "snapshots that are not PNG are left out"
    assert "Mode collapse: diversity fell from 0.90 to 0.20 by epoch 5" in data.verdict
    view = GanDiversityView(data)
    assert [s["png"] for s in view.snapshots] == [picture, picture]
    html = view.static_html()
    assert "mode collapse" in html and "<td>0.200</td>" in html
    assert html.count(' src="data:image/png;base64,') == 1
    model.info.history = history_with([0.1, 0.15, 0.3], picture)
    assert "low (0.30 at epoch 3, rising" in diversity(model).verdict
    model.info.history = history_with([0.3, 0.3, 0.29], picture)
    assert "not rising" in diversity(model).verdict
    model.info.history = history_with([0.95, 1.02, 0.98], picture)
    assert "no mode collapse" in diversity(model).verdict
    model.info.history = history_with([1.0, 0.9, 0.65], picture)
    assert "falling" in diversity(model).verdict


def test_wrong_kind_and_missing_history_say_how_to_fix():
    gan, vae, diffusion = new_model("gan"), new_model("vae"), new_model("diffusion")
    with pytest.raises(AigcError, match=r"'t' is a gan model; the latent map needs a vae") as error:
        latent_map(gan)
    assert "%aigc_train_image --kind vae" in error.value.fix
    with pytest.raises(AigcError, match="needs a diffusion"):
        denoising(vae)
    with pytest.raises(AigcError, match="needs a gan"):
        diversity(diffusion)
    with pytest.raises(AigcError, match="no diversity history") as error:
        diversity(gan)
    assert "--kind gan" in error.value.fix
    with pytest.raises(AigcError, match="Class 12"):
        latent_map(vae, label=12)
    with pytest.raises(AigcError, match="steps=0"):
        denoising(diffusion, label=1, steps=0)
    assert "\n" not in str(error.value)


def test_builders_look_the_model_up_by_name():
    vae, diffusion, gan = new_model("vae"), new_model("diffusion").eval(), new_model("gan")
    gan.info.history = history_with([0.9, 0.8], grid_png(np.zeros((10, 8, 8)), 10))
    session = FakeSession(v=vae, d=diffusion, g=gan)
    assert lab_lessons.latent_map_view(session, "v").label == 0
    assert lab_lessons.latent_map_view(session, "v", digit="seven").label == 7
    assert lab_lessons.latent_map_view(session, "v", digit=3).label == 3
    view = lab_lessons.denoising_view(session, "d", prompt="a handwritten 4", seed=1, steps=3)
    assert view.class_name == "4" and len(view.timesteps) == 3
    assert lab_lessons.gan_diversity_view(session, "g").ratios == [0.9, 0.8]
    with pytest.raises(AigcError, match="names none of the classes"):
        lab_lessons.denoising_view(session, "d", prompt="a cat", steps=2)
    with pytest.raises(AigcError, match="No image-lab model"):
        lab_lessons.gan_diversity_view(session, "nope")
    with pytest.raises(AigcError, match="needs a vae"):
        lab_lessons.latent_map_view(session, "g")


def test_static_copy_is_text_and_our_own_pictures():
    hostile = ['<img src=x onerror="alert(1)">', "<script>alert(2)</script>"] + DIGITS[2:]
    model = new_model("vae", classes=hostile, name="<b>lab</b>")
    view = LatentMapView(latent_map(model, label=0))
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in (bundle[0] if isinstance(bundle, tuple) else bundle)
    html = view.static_bundle()["text/html"]  # the static copy, shown after the widget
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;b&gt;lab&lt;/b&gt;" in html and "&lt;img src=x" in html
    assert html.count("<img ") == 1 and 'alt="images decoded over the latent plane"' in html
    import base64
    import io

    from PIL import Image

    uri = html.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    picture = Image.open(io.BytesIO(base64.b64decode(uri)))
    assert picture.size == (15 * 8 * 3, 15 * 8 * 3), "15×15 tiles of 8×8 pixels, each pixel 3×3"
