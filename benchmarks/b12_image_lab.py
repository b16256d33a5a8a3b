"""B12: the image lab. Per kind (vae, gan, diffusion) on scikit-learn's digits:

- the default training through %aigc_train_image: its time, and the share of 20 samples per digit that a
  classifier fitted on the real digits (SVC, as the tests use) recognises as the asked digit;
- images/s of %aigc_train_image ÷ images/s of the same training written as a plain torch/diffusers loop (the
  same modules, optimiser, batch size and losses; no chart, no sample grid), in alternating pairs.

The last line is the lowest of the three ratios (`ratio: X`; target ≥ 0.95).
"""

import os
import statistics
import tempfile
import time

import numpy as np
from _common import report

PAIR_EPOCHS = {"vae": 20, "gan": 30, "diffusion": 3}


def plain_loop(kind: str, epochs: float) -> float:
    """The training loop a person would write by hand; returns images/s."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from sklearn.datasets import load_digits

    from jupyter_aigc.engines.lab_models import LabInfo, LabModel
    from jupyter_aigc.engines.lab_training import DEFAULTS, KL_WEIGHT

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    labels = torch.tensor(digits.target)
    settings = DEFAULTS[kind]
    torch.manual_seed(0)
    model = LabModel.new(LabInfo(kind=kind, name="plain", shape=(8, 8), classes=[str(i) for i in range(10)]))
    batch = settings["batch_size"]
    steps = round(epochs * -(-len(images) // batch))
    if kind == "gan":
        g, d = model.modules["generator"], model.modules["discriminator"]
        g_opt = torch.optim.Adam(g.parameters(), settings["lr"], betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(d.parameters(), settings["lr"], betas=(0.5, 0.999))
    elif kind == "diffusion":
        unet = model.modules["unet"]
        opt = torch.optim.AdamW(unet.parameters(), settings["lr"])
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    else:
        vae = model.modules["vae"]
        opt = torch.optim.Adam(vae.parameters(), settings["lr"])
    start = time.perf_counter()
    order, position = torch.randperm(len(images)), 0
    for _ in range(steps):
        if position >= len(images):
            order, position = torch.randperm(len(images)), 0
        pick = order[position:position + batch]
        position += batch
        x, y = images[pick], labels[pick]
        if kind == "vae":
            decoded, mean, log_var = vae(x, y)
            rec = F.binary_cross_entropy(decoded, x.flatten(1), reduction="sum") / len(x)
            kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum() / len(x)
            opt.zero_grad()
            (rec + KL_WEIGHT * kl).backward()
            opt.step()
        elif kind == "gan":
            fake = g(torch.randn(len(x), g.noise), y)
            real = torch.full((len(x), 1), 0.9)
            d_loss = (F.binary_cross_entropy_with_logits(d(x, y), real)
                      + F.binary_cross_entropy_with_logits(d(fake.detach(), y), torch.zeros_like(real)))
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = F.binary_cross_entropy_with_logits(d(fake, y), torch.ones_like(real))
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
        else:
            x = x.unsqueeze(1) * 2 - 1
            noise = torch.randn_like(x)
            t = torch.randint(0, 1000, (len(x),))
            loss = F.mse_loss(unet(scheduler.add_noise(x, noise, t), t, class_labels=y).sample, noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return steps * batch / (time.perf_counter() - start)


def recognised(shell, name: str) -> float:
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    digits = load_digits()
    classifier = SVC(gamma=0.001, C=10).fit(digits.data / 16, digits.target)
    images, labels = [], []
    for digit in range(10):
        for seed in (0, 500):
            shell.run_cell(f"%%aigc_image -m {name} -n 10 --seed {seed} --size 8x8 -o drawn\na handwritten {digit}")
            images += [np.asarray(image, dtype=np.float32).reshape(-1) / 255 for image in shell.user_ns["drawn"]]
            labels += [digit] * 10
    return float((classifier.predict(np.stack(images)) == np.array(labels)).mean())


def main() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["JUPYTER_AIGC_CACHE"] = tempfile.mkdtemp()
    os.chdir(tempfile.mkdtemp())
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_aigc")
    ratios = []
    for kind in ("vae", "gan", "diffusion"):
        started = time.perf_counter()
        shell.run_line_magic("aigc_train_image", f"--kind {kind} --name b12-{kind} -o trained")
        seconds = time.perf_counter() - started
        share = recognised(shell, f"b12-{kind}")
        print(f"{kind}: default training {seconds:.1f} s ({shell.user_ns['trained'].info.settings['epochs']:g} "
              f"epochs), {share:.0%} recognised")
        magic, plain = [], []
        for pair in range(3):
            shell.run_line_magic("aigc_train_image", f"--kind {kind} --name b12-pair --epochs {PAIR_EPOCHS[kind]} -o t")
            progress = shell.user_ns["t"].progress
            magic.append(progress.samples_per_second)
            plain.append(plain_loop(kind, PAIR_EPOCHS[kind]))
        report(f"{kind} %aigc_train_image images/s", magic)
        report(f"{kind} plain loop images/s", plain)
        ratio = statistics.median(m / p for m, p in zip(magic, plain))
        print(f"{kind} ratio: {ratio:.3f}")
        ratios.append(ratio)
    print(f"ratio: {min(ratios):.3f}")


if __name__ == "__main__":
    main()
