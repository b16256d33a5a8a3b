// Front end of ImageLabView (after training_common.js): one small chart per loss, the sample grid (a PNG),
// progress, time left and Stop. Everything shown is numbers, a PNG or the title, set with textContent.

const COLOURS = ["--jp-brand-color1", "--jp-warn-color1"];

function drawCurve(canvas, name, points, total, colour) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400;
  const height = canvas.clientHeight || 120;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 48, right: 10, top: 18, bottom: 16 };
  const values = points.map((p) => p[1]);
  const low = Math.min(...values, Infinity);
  const high = Math.max(...values, -Infinity);
  const span = high - low || Math.abs(high) || 1;
  const bottom = low - span * 0.05;
  const top = high + span * 0.05;
  const x = (step) => pad.left + (step / Math.max(total, 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - bottom) / (top - bottom || 1)) * (height - pad.top - pad.bottom);
  const font = css("--jp-ui-font-size0", "11px");
  ctx.font = `${font} sans-serif`;
  ctx.fillStyle = css("--jp-ui-font-color1", "#222");
  const last = points.length ? points[points.length - 1][1] : null;
  ctx.fillText(last === null ? name : `${name}: ${last.toFixed(4)}`, pad.left, 12);
  ctx.fillStyle = css("--jp-ui-font-color2", "#666");
  if (points.length) {
    ctx.fillText(top.toFixed(2), 2, pad.top + 8);
    ctx.fillText(bottom.toFixed(2), 2, height - pad.bottom);
  }
  ctx.strokeStyle = css("--jp-border-color2", "#ddd");
  ctx.strokeRect(pad.left, pad.top, width - pad.left - pad.right, height - pad.top - pad.bottom);
  if (!points.length) return;
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach(([step, v], i) => (i ? ctx.lineTo(x(step), y(v)) : ctx.moveTo(x(step), y(v))));
  ctx.stroke();
}

function render({ model, el: root }) {
  root.classList.add("aigc-train");
  const title = el("div", "aigc-train-title");
  const { bar, show } = progressBar(model, root, "aigc-train", "model");
  const charts = el("div", "aigc-train-charts");
  const samples = el("div", "aigc-train-samples");
  const image = el("img");
  image.alt = "samples from fixed noise";
  const caption = el("div", "aigc-train-caption");
  samples.append(image, caption);
  const body = el("div", "aigc-train-body");
  body.append(charts, samples);
  root.append(title, bar, body);
  const canvases = {};
  let url = null;
  let grids = 0;

  function drawCharts() {
    const progress = model.get("progress") || {};
    Object.entries(progress.curves || {}).forEach(([name, points], i) => {
      if (!canvases[name]) {
        canvases[name] = el("canvas", "aigc-train-chart");
        canvases[name].dataset.curve = name;
        charts.append(canvases[name]);
      }
      drawCurve(canvases[name], name, points, progress.total_steps || 1, css(COLOURS[i % 2], i ? "#f57c00" : "#1976d2"));
      canvases[name].dataset.points = String(points.length);
    });
  }

  function drawGrid() {
    const bytes = model.get("grid");
    if (!bytes || !bytes.byteLength) return;
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    image.src = url;
    grids += 1;
    root.dataset.grids = String(grids);
  }

  function draw() {
    const progress = model.get("progress") || {};
    title.textContent = model.get("title");
    const parts = [`epoch ${(progress.epoch || 0).toFixed(1)}`, `step ${progress.step || 0} / ${progress.total_steps || 0}`];
    if (progress.samples_per_second) parts.push(`${progress.samples_per_second.toFixed(0)} images/s` +
      (progress.threads ? ` on ${progress.threads} thread${progress.threads > 1 ? "s" : ""}` : ""));
    if (progress.diversity !== null && progress.diversity !== undefined) parts.push(`diversity ${progress.diversity.toFixed(2)} of the real images'`);
    show(progress, parts);
    const classes = (progress.classes || []).join(", ");
    caption.textContent = classes ? `samples from fixed noise: one column per class (${classes}), redrawn as it learns`
      : "samples from fixed noise, redrawn as it learns";
    drawCharts();
  }
  model.on("change:progress", draw);
  model.on("change:title", draw);
  model.on("change:grid", drawGrid);
  const observer = new ResizeObserver(drawCharts);
  observer.observe(charts);
  draw();
  drawGrid();
  return () => {
    model.off("change:progress", draw);
    model.off("change:title", draw);
    model.off("change:grid", drawGrid);
    observer.disconnect();
    if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
