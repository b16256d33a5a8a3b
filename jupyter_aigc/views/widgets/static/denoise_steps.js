// Front end of DenoiseView: one diffusion sample from pure noise to the image. Every DDIM step's x_t
// (float32 [steps + 1, h, w] in `xt`) and the model's guess of the finished image (`x0`) arrive once; the slider
// and the thumbnails only choose which to show, with no kernel message.

const BIG = 176;
const THUMB = 26;

function greyInto(canvas, values, offset, width, height) {
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round(255 * Math.max(0, Math.min(1, values[offset + i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function pixelCanvas(cls, width, height, size) {
  const canvas = el("canvas", cls);
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${size}px`;
  canvas.style.height = `${Math.round((size * height) / width)}px`;
  return canvas;
}

function render({ model, el: root }) {
  root.classList.add("aigc-lab", "aigc-denoise");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const [height, width] = model.get("shape") || [8, 8];
  const pixels = width * height;
  const timesteps = model.get("timesteps") || [];
  const noise = model.get("noise") || [];
  const steps = timesteps.length;
  const xt = floats(model.get("xt"));
  const x0 = floats(model.get("x0"));
  const className = model.get("class_name");

  const head = el("div", "aigc-lab-head");
  head.append(el("strong", "", "Denoising"), el("span", "aigc-lab-muted",
    ` one sample${className ? ` of “${className}”` : ""} by ${model.get("model_name")} ` +
    `(seed ${model.get("seed")}, ${steps} DDIM steps)`));
  const slider = el("input", "aigc-denoise-slider");
  slider.type = "range";
  slider.min = "0";
  slider.max = String(steps);
  slider.step = "1";
  slider.value = String(steps);
  slider.dataset.control = "step";
  const where = el("span", "aigc-denoise-where");
  const controls = el("div", "aigc-lab-controls");
  controls.append(el("label", "aigc-lab-label", "step"), slider, where);

  const seen = pixelCanvas("aigc-denoise-xt", width, height, BIG);
  const guess = pixelCanvas("aigc-denoise-x0", width, height, BIG);
  const seenCaption = el("figcaption", "");
  const guessCaption = el("figcaption", "");
  const figure = (canvas, caption) => {
    const node = el("figure", "aigc-lab-figure");
    node.append(canvas, caption);
    return node;
  };
  const arrow = el("div", "aigc-denoise-arrow", "→");
  const row = el("div", "aigc-lab-row");
  row.append(figure(seen, seenCaption), arrow, figure(guess, guessCaption));

  const strips = el("div", "aigc-denoise-strips");
  const thumbs = [];
  const guesses = [];
  for (const [name, list, count, source] of [["x_t", thumbs, steps + 1, xt], ["x̂₀", guesses, steps, x0]]) {
    const strip = el("div", "aigc-denoise-strip");
    strip.append(el("span", "aigc-denoise-strip-label", name));
    for (let k = 0; k < count; k++) {
      const thumb = pixelCanvas("aigc-denoise-thumb", width, height, THUMB);
      greyInto(thumb, source, k * pixels, width, height);
      thumb.dataset.step = String(k);
      thumb.title = k < steps ? `step ${k}: timestep ${timesteps[k]}` : "the finished sample";
      on(thumb, "click", () => show(k));
      list.push(thumb);
      strip.append(thumb);
    }
    strips.append(strip);
  }
  const note = el("div", "aigc-lab-note",
    "At each step the model looks at the noisy image x_t (left) and predicts the noise in it; subtracting that " +
    "noise gives its guess of the finished image x̂₀ (right). The DDIM scheduler then moves x_t part of the way " +
    "towards that guess, to the next, smaller timestep. Early guesses are blurry averages of many digits; the " +
    "shape is settled long before the last of the noise is gone.");
  root.append(head, controls, row, strips, note);
  const unframe = frameView(model, root, "denoising");

  function show(k) {
    k = Math.max(0, Math.min(steps, k));
    slider.value = String(k);
    root.dataset.step = String(k);
    greyInto(seen, xt, k * pixels, width, height);
    const done = k === steps;
    const from = done ? steps - 1 : k;
    if (from >= 0) greyInto(guess, x0, from * pixels, width, height);
    root.dataset.timestep = done ? "done" : String(timesteps[k]);
    const share = Math.round(100 * (noise[k] ?? 0));
    where.textContent = done
      ? `${steps} of ${steps}: finished`
      : `${k} of ${steps} · timestep t = ${timesteps[k]} · noise ≈ ${share}% of x_t`;
    seenCaption.textContent = done ? "the finished sample" : k === 0 ? "x_t: pure noise" : `x_t at t = ${timesteps[k]}`;
    guessCaption.textContent = done
      ? `last guess (t = ${timesteps[steps - 1]})`
      : `guess of x₀ from x_t at t = ${timesteps[k]}`;
    thumbs.forEach((t, i) => t.classList.toggle("aigc-denoise-current", i === k));
    guesses.forEach((t, i) => t.classList.toggle("aigc-denoise-current", i === from));
  }

  on(slider, "input", () => show(Number(slider.value)));
  on(slider, "change", () => show(Number(slider.value)));
  show(steps);
  return () => {
    listeners.abort();
    unframe();
  };
}

export default { render };
