// Front end of GanDiversityView: the samples' diversity over epochs (÷ the real images', so 1 = as varied as the
// real data) with the real level as a reference line, and a slider over the saved sample grids (PNG bytes in
// `snapshots`). The slider only chooses what to show: no kernel message.

const W = 460;
const H = 250;

function pngUrl(png) {
  if (!png || !png.byteLength) return null;
  const bytes = png instanceof DataView
    ? new Uint8Array(png.buffer, png.byteOffset, png.byteLength)
    : new Uint8Array(png);
  return URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
}

function styleVar(root, name, fallback) {
  return getComputedStyle(root).getPropertyValue(name).trim() || fallback;
}

function nearest(epochs, epoch) {
  let best = 0;
  epochs.forEach((e, i) => {
    if (Math.abs(e - epoch) < Math.abs(epochs[best] - epoch)) best = i;
  });
  return best;
}

function render({ model, el: root }) {
  root.classList.add("aigc-lab", "aigc-gandiv");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const epochs = model.get("epochs") || [];
  const ratios = model.get("ratios") || [];
  const snapshots = model.get("snapshots") || [];
  const urls = snapshots.map((s) => pngUrl(s.png));

  const head = el("div", "aigc-lab-head");
  head.append(el("strong", "", "Diversity over epochs"),
    el("span", "aigc-lab-muted", ` of ${model.get("model_name")}`));
  const ratio = Math.min(2, window.devicePixelRatio || 1);
  const chart = el("canvas", "aigc-gandiv-chart");
  chart.width = W * ratio;
  chart.height = H * ratio;
  chart.style.width = `${W}px`;
  chart.style.height = `${H}px`;
  const picture = el("img", "aigc-gandiv-grid");
  picture.alt = "samples from fixed noise";
  const slider = el("input", "aigc-gandiv-slider");
  slider.type = "range";
  slider.min = "0";
  slider.max = String(Math.max(0, snapshots.length - 1));
  slider.step = "1";
  slider.value = slider.max;
  slider.dataset.control = "snapshot";
  const where = el("span", "aigc-gandiv-where");
  const controls = el("div", "aigc-lab-controls");
  controls.append(el("label", "aigc-lab-label", "snapshot"), slider, where);
  const side = el("figure", "aigc-lab-figure");
  const caption = el("figcaption", "", "the same fixed noise at every snapshot: one column per class");
  side.append(picture, caption);
  if (!snapshots.length) {
    side.replaceChildren(el("div", "aigc-lab-muted", "No sample grids were saved."));
    controls.hidden = true;
  }
  const row = el("div", "aigc-lab-row");
  row.append(chart, side);
  const verdict = el("div", "aigc-gandiv-verdict", model.get("verdict"));
  const note = el("div", "aigc-lab-note",
    "Diversity is the mean distance between samples of the same class, drawn from different noise, divided by " +
    "the same distance between real images of that class. At 1 the samples vary as much as real handwriting. " +
    "If the line falls towards 0, the generator has found a few images that fool the discriminator and draws " +
    "them whatever the noise: every 7 looks the same. That is mode collapse; in the grid, a column of identical " +
    "digits shows it.");
  root.append(head, controls, row, verdict, note);
  const unframe = frameView(model, root, "gan-diversity");

  const M = { left: 54, right: 12, top: 12, bottom: 36 };
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const maxEpoch = Math.max(1e-9, ...epochs, ...snapshots.map((s) => s.epoch));
  const maxRatio = Math.max(1.2, ...ratios.map((r) => r * 1.1));
  const x = (e) => M.left + (e / maxEpoch) * pw;
  const y = (r) => M.top + ph - (r / maxRatio) * ph;

  function drawChart(selected) {
    const ctx = chart.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const text = styleVar(root, "--jp-ui-font-color1", "#222");
    const muted = styleVar(root, "--jp-ui-font-color2", "#666");
    const line = styleVar(root, "--jp-brand-color1", "#1976d2");
    ctx.font = `${styleVar(root, "--jp-ui-font-size0", "11px")} ${styleVar(root, "--jp-ui-font-family", "sans-serif")}`;
    ctx.fillStyle = "rgba(211, 47, 47, 0.08)";
    ctx.fillRect(M.left, y(0.5), pw, y(0) - y(0.5));
    ctx.strokeStyle = styleVar(root, "--jp-border-color2", "#ccc");
    ctx.strokeRect(M.left - 0.5, M.top - 0.5, pw + 1, ph + 1);
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let r = 0; r <= maxRatio + 1e-9; r += 0.25) ctx.fillText(r.toFixed(2), M.left - 4, y(r));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = maxEpoch <= 10 ? 1 : Math.ceil(maxEpoch / 10);
    for (let e = 0; e <= maxEpoch + 1e-9; e += step) ctx.fillText(String(e), x(e), M.top + ph + 3);
    ctx.fillStyle = text;
    ctx.fillText("epoch", M.left + pw / 2, M.top + ph + 18);
    ctx.save();
    ctx.translate(11, M.top + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("diversity ÷ real", 0, -4);
    ctx.restore();
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = text;
    ctx.beginPath();
    ctx.moveTo(M.left, y(1));
    ctx.lineTo(M.left + pw, y(1));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText("real images (1.0)", M.left + 4, y(1) - 2);
    ctx.fillStyle = "rgba(211, 47, 47, 0.9)";
    ctx.textBaseline = "top";
    ctx.fillText("below 0.5: samples too alike", M.left + 4, y(0.5) + 2);
    if (selected !== null) {
      ctx.strokeStyle = muted;
      ctx.beginPath();
      ctx.moveTo(x(selected), M.top);
      ctx.lineTo(x(selected), M.top + ph);
      ctx.stroke();
    }
    ctx.strokeStyle = line;
    ctx.fillStyle = line;
    ctx.lineWidth = 2;
    ctx.beginPath();
    epochs.forEach((e, i) => (i ? ctx.lineTo(x(e), y(ratios[i])) : ctx.moveTo(x(e), y(ratios[i]))));
    ctx.stroke();
    ctx.lineWidth = 1;
    epochs.forEach((e, i) => {
      ctx.beginPath();
      ctx.arc(x(e), y(ratios[i]), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    });
  }

  function show(k) {
    if (!snapshots.length) {
      drawChart(null);
      return;
    }
    const snapshot = snapshots[k];
    slider.value = String(k);
    if (urls[k]) picture.src = urls[k];
    picture.dataset.epoch = String(snapshot.epoch);
    root.dataset.snapshot = String(k);
    const at = epochs.length ? nearest(epochs, snapshot.epoch) : -1;
    where.textContent = `epoch ${Number(snapshot.epoch.toFixed(2))}` +
      (at >= 0 ? ` · diversity ${ratios[at].toFixed(2)}` : "") + ` (${k + 1} of ${snapshots.length})`;
    drawChart(snapshot.epoch);
  }

  on(slider, "input", () => show(Number(slider.value)));
  on(slider, "change", () => show(Number(slider.value)));
  const themeWatch = new MutationObserver(() => show(Number(slider.value)));
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  show(snapshots.length - 1);
  return () => {
    listeners.abort();
    themeWatch.disconnect();
    urls.forEach((u) => u && URL.revokeObjectURL(u));
    unframe();
  };
}

export default { render };
