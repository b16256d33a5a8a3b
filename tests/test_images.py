"""%%aigc_image through the real loading code.

No pretrained image model can be fetched here (no Hub), so the tests build a tiny Stable-Diffusion-style
pipeline from small configs with random weights, save it to a folder and load it with `-m folder`: they
check shapes, progress, seeds and caching, not beauty. The OpenAI Images endpoint has no offline server,
so it is tested against an HTTP-level fake on 127.0.0.1 that returns a real PNG as b64_json.
"""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from conftest import run_cell, make_tokenizer


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    tokenizer.model_max_length = 16
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                                num_hidden_layers=2, vocab_size=len(tokenizer),
                                                max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
                                                bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=EulerDiscreteScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    folder = tmp_path_factory.mktemp("images") / "tiny-sd"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """The terminal shell saves images to ./aigc-images: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def run_image(ip, line, body="a lighthouse at dusk"):
    return run_cell(ip, "aigc_image", line, body)


def test_count_size_seed_and_cache(shell, tiny_sd, tmp_path, capsys):
    run_image(shell, f"-m {tiny_sd} --size 32x48 --steps 3 --seed 5 -n 2 -o images --save {tmp_path}")
    images = shell.user_ns["images"]
    assert len(images) == 2 and all(im.size == (32, 48) for im in images)
    assert [im.info["seed"] for im in images] == [5, 6]
    saved = sorted(tmp_path.glob("*.png"))
    assert len(saved) == 2
    meta = Image.open(saved[0]).text
    assert meta["prompt"] == "a lighthouse at dusk" and meta["seed"] == "5" and meta["steps"] == "3"
    assert meta["model"] == "tiny-sd"
    run_image(shell, f"-m {tiny_sd} --size 32x48 --steps 3 --seed 5 -o again")
    assert np.array_equal(np.asarray(shell.user_ns["again"][0]), np.asarray(images[0])), "same seed, same pixels"
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1])), "another seed, other pixels"
    (entry,) = [s for s in shell._jupyter_aigc_session.cache.stats() if s["name"] == "tiny-sd"]
    assert entry["hits"] >= 1, "the second cell hit the cache"
    assert "saved" in capsys.readouterr().out
    entry = shell._jupyter_aigc_session.history[-1]
    assert entry["kind"] == "image" and entry["prompt"] == "a lighthouse at dusk" and entry["model"] == "tiny-sd"
    assert entry["seeds"] == [5] and entry["params"]["size"] == "32x48" and entry["finish_reason"] == "done"
    shell.run_line_magic("aigc", "history 5")
    assert "1 image(s)" in capsys.readouterr().out


def test_progress_fires_once_per_step(shell, tiny_sd):
    from jupyter_aigc.engines.diffusers import ImageRequest

    steps = []
    backend = shell._jupyter_aigc_session.engines['diffusers']
    request = ImageRequest(prompt="x", model="tiny", width=32, height=32, steps=6, seed=1, n=2)
    images = backend.generate(request, shell._jupyter_aigc_session.resolve(str(tiny_sd), kind='image'), threading.Event(),
                              lambda i, step, total, preview: steps.append((i, step, total, preview is not None)))
    assert [(i, s) for i, s, _, _ in steps] == [(i, s) for i in range(2) for s in range(1, 7)]
    assert [p for i, s, _, p in steps if i == 0] == [False] * 4 + [True, False], "a preview every 5 steps"
    assert len(images) == 2


def test_errors_are_clear(shell, tiny_sd, tiny_model, capsys):
    run_image(shell, "")
    assert "No image model is configured" in capsys.readouterr().err
    run_image(shell, f"-m {tiny_sd} --size big")
    assert "--size 'big' is not WIDTHxHEIGHT" in capsys.readouterr().err
    run_image(shell, f"-m {tiny_sd} --size 33x32 --steps 1")
    assert "is not a multiple of 2" in capsys.readouterr().err
    run_image(shell, f"-m {tiny_model} --steps 1")
    err = capsys.readouterr().err
    assert "tiny-llama" in err and "Traceback" not in err
    assert len(shell._jupyter_aigc_session.cache) == 0 or all(
        s["name"] != "tiny-llama" for s in shell._jupyter_aigc_session.cache.stats())


def test_default_image_model_from_config(shell, tiny_sd):
    shell.run_line_magic("config", f"AigcConfig.default_image_model = '{tiny_sd}'")
    run_image(shell, "--size 32x32 --steps 2 --seed 1 -o images")
    assert len(shell.user_ns["images"]) == 1


class FakeImages(BaseHTTPRequestHandler):
    """Stands in for /v1/images/generations (no offline server implements it): real PNGs as b64_json."""

    requests: list = []
    files: dict = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeImages.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        if "forbidden" in body["prompt"]:
            self.reply(400, {"error": {"message": "Your request was rejected by the safety system.",
                                       "type": "invalid_request_error", "code": "content_policy_violation"}})
            return
        if self.headers.get("Authorization") != "Bearer sk-good-key-1234567890":
            self.reply(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
            return
        width, height = map(int, body["size"].split("x"))
        data = []
        for i in range(body.get("n", 1)):
            buffer = io.BytesIO()
            Image.new("RGB", (width, height), (40 * i, 100, 200)).save(buffer, format="PNG")
            if "as url" in body["prompt"]:  # as some servers do, whatever response_format asked for
                FakeImages.files[f"/files/{i}.png"] = buffer.getvalue()
                data.append({"url": f"http://{self.headers['Host']}/files/{i}.png"})
            else:
                data.append({"b64_json": base64.b64encode(buffer.getvalue()).decode()})
        self.reply(200, {"created": 1, "data": data})

    def do_GET(self):
        raw = FakeImages.files.get(self.path)
        if raw is None:
            return self.reply(404, {"error": {"message": "no such file"}})
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def reply(self, status, payload):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_images_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeImages.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_images_path(shell, fake_images_server, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-good-key-1234567890")
    shell.run_line_magic("config", f"AigcConfig.base_url = '{fake_images_server}'")
    run_image(shell, "-m openai:dall-e-2 --size 256x256 -n 2 -o images")
    images = shell.user_ns["images"]
    assert [im.size for im in images] == [(256, 256), (256, 256)]
    sent = FakeImages.requests[-1]["body"]
    assert sent["model"] == "dall-e-2" and sent["n"] == 2 and sent["response_format"] == "b64_json"
    run_image(shell, "-m openai:dall-e-3 --size 300x300")
    assert "dall-e-3 does not make 300x300 images" in capsys.readouterr().err
    run_image(shell, "-m openai:gpt-image-1 --size 1024x1024", "something forbidden")
    assert "refused this prompt under its content policy" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0987654321")
    run_image(shell, "-m openai:gpt-image-1 --size 1024x1024")
    err = capsys.readouterr().err
    assert "rejected the API key (401)" in err and "sk-wrong-key-0987654321" not in err


def test_openai_images_sent_as_urls_are_fetched(shell, fake_images_server, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-good-key-1234567890")
    shell.run_line_magic("config", f"AigcConfig.base_url = '{fake_images_server}'")
    run_image(shell, "-m openai:dall-e-2 --size 256x256 -n 2 -o images", "a lighthouse, as url")
    assert [im.size for im in shell.user_ns["images"]] == [(256, 256), (256, 256)]
    assert "Traceback" not in capsys.readouterr().err


def test_the_gallery_leaves_a_static_copy_of_the_finished_images():
    """A saved notebook or nbconvert shows the images (PNGs this package encoded) with their seeds."""
    from jupyter_aigc.tasks.image import ImageProgress
    from jupyter_aigc.views.widgets.image_gallery import ImageGallery

    gallery = ImageGallery(caption='tiny-sd <img src=x onerror="alert(1)"> · 64×64')
    progress = ImageProgress(gallery, 3, 4)
    images = []
    for seed in (11, 12):
        image = Image.fromarray((np.random.default_rng(seed).random((8, 8, 3)) * 255).astype("uint8"))
        image.info["seed"] = seed
        images.append(image)
    progress.finish(images, "stopped")
    copy = gallery.static_bundle()
    assert copy["text/html"].count('<img alt="seed ') == 2 and "seeds 11, 12" in copy["text/html"]
    assert "&lt;img src=x" in copy["text/html"] and "<img src=x" not in copy["text/html"]
    assert copy["text/plain"].endswith(": 2 image(s)")
    data = copy["text/html"].split('base64,')[1].split('"')[0]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (8, 8)
