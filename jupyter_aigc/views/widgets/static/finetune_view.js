// Front end of FinetuneView (after training_common.js): a live loss chart (train, eval), progress, speed, time
// left and Stop. Everything shown is numbers or the title, set with textContent.

function drawChart(canvas, progress) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 220;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const train = progress.losses || [];
  const evals = progress.eval_losses || [];
  const all = train.concat(evals);
  const pad = { left: 44, right: 12, top: 10, bottom: 26 };
  const total = Math.max(progress.total_steps || 1, ...all.map((p) => p[0]), 1);
  const top = Math.max(...all.map((p) => p[1]), 0.01) * 1.05;
  const x = (step) => pad.left + (step / total) * (width - pad.left - pad.right);
  const y = (loss) => pad.top + (1 - loss / top) * (height - pad.top - pad.bottom);
  const ink = css("--jp-ui-font-color2", "#666");
  ctx.strokeStyle = css("--jp-border-color2", "#ddd");
  ctx.fillStyle = ink;
  ctx.font = `${Math.round(0.85 * (parseFloat(getComputedStyle(canvas).fontSize) || 12))}px sans-serif`;
  for (let i = 0; i <= 4; i++) {
    const value = (top * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(value));
    ctx.lineTo(width - pad.right, y(value));
    ctx.stroke();
    ctx.fillText(value.toFixed(2), 4, y(value) + 3);
  }
  ctx.fillText("step", width - pad.right - 22, height - 6);
  ctx.fillText("0", pad.left, height - 8);
  ctx.fillText(String(total), width - pad.right - 40, height - 8);
  const line = (points, colour) => {
    if (!points.length) return;
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([step, loss], i) => (i ? ctx.lineTo(x(step), y(loss)) : ctx.moveTo(x(step), y(loss))));
    ctx.stroke();
    for (const [step, loss] of points) ctx.fillRect(x(step) - 2, y(loss) - 2, 4, 4);
    ctx.lineWidth = 1;
  };
  line(train, css("--jp-brand-color1", "#1976d2"));
  line(evals, css("--jp-warn-color1", "#f57c00"));
  canvas.dataset.points = String(train.length);
}

function render({ model, el: root }) {
  root.classList.add("aigc-ft");
  const title = el("div", "aigc-ft-title");
  const { bar, show } = progressBar(model, root, "aigc-ft", "adapter");
  const canvas = el("canvas", "aigc-ft-chart");
  const legend = el("div", "aigc-ft-legend");
  legend.append(el("span", "", "— train loss"), el("span", "", "— eval loss"));
  legend.children[0].style.color = css("--jp-brand-color1", "#1976d2");
  legend.children[1].style.color = css("--jp-warn-color1", "#f57c00");
  root.append(title, bar, canvas, legend);

  function draw() {
    const progress = model.get("progress") || {};
    title.textContent = model.get("title");
    const loss = (progress.losses || []).slice(-1)[0];
    const parts = [`step ${progress.step || 0} / ${progress.total_steps || 0}`, `epoch ${(progress.epoch || 0).toFixed(2)}`];
    if (loss) parts.push(`loss ${loss[1].toFixed(4)}`);
    if (progress.tokens_per_second) parts.push(`${progress.tokens_per_second.toFixed(0)} tokens/s`);
    show(progress, parts);
    drawChart(canvas, progress);
  }
  model.on("change:progress", draw);
  model.on("change:title", draw);
  const observer = new ResizeObserver(() => drawChart(canvas, model.get("progress") || {}));
  observer.observe(canvas);
  draw();
  return () => {
    model.off("change:progress", draw);
    model.off("change:title", draw);
    observer.disconnect();
  };
}

export default { render };
