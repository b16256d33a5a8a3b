// Front end of LatentMapView: a conditional VAE's 2-D latent plane for one class. The decoder's own weights
// arrive once (float32 `decoder`); this file runs the same MLP (Linear, ReLU, Linear, ReLU, Linear, sigmoid) on
// [z₁, z₂, one-hot class], so the tiles, the class picker and the dragged point need no kernel message.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const BIG = 192;

function cssVar(root, name, fallback) {
  return getComputedStyle(root).getPropertyValue(name).trim() || fallback;
}

function canvasFont(root, sizeVar = "--jp-ui-font-size0") {
  return `${cssVar(root, sizeVar, "11px")} ${cssVar(root, "--jp-ui-font-family", "system-ui, sans-serif")}`;
}

function fmtZ(v) {
  return (v < 0 ? "−" : "") + Math.abs(v).toFixed(2);
}

// the decoder as typed arrays: layers[i] = {W: [out × in], b: [out], n_in, n_out}
function unpack(flat, sizes) {
  const layers = [];
  let offset = 0;
  for (let i = 0; i + 1 < sizes.length; i++) {
    const nIn = sizes[i];
    const nOut = sizes[i + 1];
    const W = flat.subarray(offset, offset + nIn * nOut);
    offset += nIn * nOut;
    const b = flat.subarray(offset, offset + nOut);
    offset += nOut;
    layers.push({ W, b, nIn, nOut });
  }
  return offset === flat.length ? layers : null;
}

// sigmoid(W3 · relu(W2 · relu(W1 · [z, onehot] + b1) + b2) + b3)
function decode(layers, z, label, classes) {
  let x = new Float64Array(layers[0].nIn);
  x[0] = z[0];
  x[1] = z[1];
  if (classes > 0) x[2 + label] = 1;
  layers.forEach(({ W, b, nIn, nOut }, index) => {
    const y = new Float64Array(nOut);
    for (let o = 0; o < nOut; o++) {
      let s = b[o];
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) if (x[i] !== 0) s += W[row + i] * x[i];
      y[o] = index < layers.length - 1 ? Math.max(0, s) : 1 / (1 + Math.exp(-s));
    }
    x = y;
  });
  return x;
}

function greyImage(values, width, height) {
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round(255 * Math.max(0, Math.min(1, values[i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  return image;
}

function render({ model, el: root }) {
  root.classList.add("aigc-lab", "aigc-latent");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const classes = model.get("classes") || [];
  const [height, width] = model.get("shape") || [8, 8];
  const E = model.get("extent") || 3;
  const G = model.get("grid_size") || 15;
  const layers = unpack(floats(model.get("decoder")), model.get("layer_sizes") || []);
  const points = floats(model.get("points"));
  const pointLabels = floats(model.get("point_labels"));
  let label = model.get("label") || 0;
  let z = [0, 0];
  let showPoints = true;
  let frame = 0;

  const head = el("div", "aigc-lab-head");
  head.append(el("strong", "", "Latent map"), el("span", "aigc-lab-muted", ` of ${model.get("model_name")}`));
  const controls = el("div", "aigc-lab-controls");
  const picker = el("select", "aigc-latent-class");
  classes.forEach((name, index) => {
    const option = el("option", "", name);
    option.value = String(index);
    picker.append(option);
  });
  picker.value = String(label);
  if (classes.length) controls.append(el("label", "aigc-lab-label", "class "), picker);
  const toggle = el("input");
  toggle.type = "checkbox";
  toggle.checked = true;
  const toggleLabel = el("label", "aigc-lab-check");
  toggleLabel.append(toggle, el("span", "", ` training images (${points.length / 2})`));
  controls.append(toggleLabel);

  // every decoded pixel becomes the same whole number of screen pixels: no uneven nearest-neighbour stripes
  const M = { left: 34, right: 8, top: 8, bottom: 30 };
  const plot = G * width * Math.max(1, Math.round(400 / (G * width)));
  const PLANE = plot + M.left + M.right;
  const ratio = Math.min(2, window.devicePixelRatio || 1);
  const plane = el("canvas", "aigc-latent-plane");
  plane.width = PLANE * ratio;
  plane.height = (plot + M.top + M.bottom) * ratio;
  plane.style.width = `${PLANE}px`;
  plane.style.height = `${plot + M.top + M.bottom}px`;
  plane.tabIndex = 0;
  plane.setAttribute("aria-label", "latent plane: drag the point");
  const big = el("canvas", "aigc-latent-decoded");
  big.width = width;
  big.height = height;
  big.style.width = `${BIG}px`;
  big.style.height = `${Math.round((BIG * height) / width)}px`;
  const zText = el("div", "aigc-latent-z");
  const side = el("div", "aigc-latent-side");
  side.append(el("div", "aigc-lab-label", "decoded here, in the browser:"), big, zText);
  const legend = el("div", "aigc-latent-legend");
  side.append(legend);
  const row = el("div", "aigc-lab-row");
  row.append(plane, side);
  const note = el("div", "aigc-lab-note",
    "Each tile is what the decoder draws at that point of the 2-D latent plane for the chosen class. " +
    "Dots are training images the encoder placed on the plane. Drag the white ring: the image under it is " +
    "decoded right here, with the model's own weights. Nearby points give similar images; moving across the " +
    "plane changes the style (slant, thickness), while the class stays the same.");
  root.append(head, controls, row, note);
  const unframe = frameView(model, root, "latent-map");
  if (!layers) {
    root.append(el("div", "aigc-lab-error", "The decoder's weights did not arrive whole."));
    return () => listeners.abort();
  }

  const toPx = (zx, zy) => [M.left + ((zx + E) / (2 * E)) * plot, M.top + ((E - zy) / (2 * E)) * plot];
  const toZ = (px, py) => [-E + ((px - M.left) / plot) * 2 * E, E - ((py - M.top) / plot) * 2 * E];
  const tiles = document.createElement("canvas");
  tiles.width = G * width;
  tiles.height = G * height;

  function drawTiles() {
    const ctx = tiles.getContext("2d");
    const step = (2 * E) / G;
    for (let r = 0; r < G; r++) {
      for (let c = 0; c < G; c++) {
        const pixels = decode(layers, [-E + (c + 0.5) * step, E - (r + 0.5) * step], label, classes.length);
        ctx.putImageData(greyImage(pixels, width, height), c * width, r * height);
      }
    }
    plane.dataset.label = String(label);
  }

  function drawLegend() {
    legend.replaceChildren();
    classes.forEach((name, index) => {
      const chip = el("button", "aigc-latent-chip");
      const swatch = el("span", "aigc-latent-swatch");
      swatch.style.background = PALETTE[index % PALETTE.length];
      chip.append(swatch, el("span", "", name));
      chip.dataset.label = String(index);
      if (index === label) chip.classList.add("aigc-latent-chosen");
      on(chip, "click", () => choose(index));
      legend.append(chip);
    });
  }

  function drawPlane() {
    frame = 0;
    const ctx = plane.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, PLANE, plot + M.top + M.bottom);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tiles, M.left, M.top, plot, plot);
    ctx.strokeStyle = "rgba(128, 128, 128, 0.6)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = 1; i < G; i++) {
      const at = Math.round(M.left + (i * plot) / G) + 0.5;
      ctx.moveTo(at, M.top);
      ctx.lineTo(at, M.top + plot);
      const down = Math.round(M.top + (i * plot) / G) + 0.5;
      ctx.moveTo(M.left, down);
      ctx.lineTo(M.left + plot, down);
    }
    ctx.stroke();
    if (showPoints) {
      for (const chosen of [false, true]) {
        for (let i = 0; i < points.length / 2; i++) {
          const k = pointLabels[i] | 0;
          if ((k === label || !classes.length) !== chosen) continue;
          const [px, py] = toPx(points[2 * i], points[2 * i + 1]);
          if (px < M.left || px > M.left + plot || py < M.top || py > M.top + plot) continue;
          ctx.beginPath();
          ctx.arc(px, py, chosen ? 3.2 : 1.8, 0, 2 * Math.PI);
          ctx.globalAlpha = chosen ? 0.95 : 0.3;
          ctx.fillStyle = PALETTE[k % PALETTE.length];
          ctx.fill();
          if (chosen) {
            ctx.strokeStyle = "#fff";
            ctx.lineWidth = 0.8;
            ctx.stroke();
          }
        }
      }
      ctx.globalAlpha = 1;
    }
    const text = cssVar(root, "--jp-ui-font-color1", "#222");
    ctx.strokeStyle = cssVar(root, "--jp-border-color1", "#999");
    ctx.lineWidth = 1;
    ctx.strokeRect(M.left - 0.5, M.top - 0.5, plot + 1, plot + 1);
    ctx.fillStyle = text;
    ctx.font = canvasFont(root);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const tick = (v) => fmtZ(v).replace(".00", "");
    for (let v = -Math.floor(E); v <= Math.floor(E); v++) ctx.fillText(tick(v), toPx(v, 0)[0], M.top + plot + 3);
    ctx.fillText("z₁", M.left + plot / 2, M.top + plot + 15);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = -Math.floor(E); v <= Math.floor(E); v++) ctx.fillText(tick(v), M.left - 4, toPx(0, v)[1]);
    ctx.fillText("z₂", M.left - 16, M.top + 10);
    const [px, py] = toPx(z[0], z[1]);
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#000";
    ctx.beginPath();
    ctx.arc(px, py, 8, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    const pixels = decode(layers, z, label, classes.length);
    const bctx = big.getContext("2d");
    bctx.putImageData(greyImage(pixels, width, height), 0, 0);
    big.dataset.z = JSON.stringify(z);
    big.dataset.label = String(label);
    big.dataset.pixels = JSON.stringify(Array.from(pixels));
    zText.textContent = `z = (${fmtZ(z[0])}, ${fmtZ(z[1])})` + (classes.length ? ` · class ${classes[label]}` : "");
  }

  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(drawPlane);
  };
  function choose(index) {
    label = index;
    picker.value = String(index);
    drawTiles();
    drawLegend();
    redraw();
  }
  function moveTo(event) {
    const box = plane.getBoundingClientRect();
    const [zx, zy] = toZ(event.clientX - box.left, event.clientY - box.top);
    z = [Math.max(-E, Math.min(E, zx)), Math.max(-E, Math.min(E, zy))];
    redraw();
  }
  let dragging = false;
  on(plane, "pointerdown", (event) => {
    dragging = true;
    plane.setPointerCapture?.(event.pointerId);
    moveTo(event);
  });
  on(plane, "pointermove", (event) => dragging && moveTo(event));
  on(plane, "pointerup", () => (dragging = false));
  on(plane, "pointercancel", () => (dragging = false));
  on(plane, "keydown", (event) => {
    const step = event.shiftKey ? 0.5 : 0.1;
    const move = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[event.key];
    if (!move) return;
    event.preventDefault();
    z = [Math.max(-E, Math.min(E, z[0] + move[0])), Math.max(-E, Math.min(E, z[1] + move[1]))];
    redraw();
  });
  on(picker, "change", () => choose(Number(picker.value)));
  on(toggle, "change", () => {
    showPoints = toggle.checked;
    redraw();
  });
  const themeWatch = new MutationObserver(redraw);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  drawTiles();
  drawLegend();
  drawPlane();

  return () => {
    listeners.abort();
    themeWatch.disconnect();
    if (frame) cancelAnimationFrame(frame);
    unframe();
  };
}

export default { render };
