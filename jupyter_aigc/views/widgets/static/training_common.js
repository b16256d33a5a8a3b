// Helpers of the training views (FinetuneView, ImageLabView); the Python side puts this file in front of each
// view's own file. Everything shown is numbers or the title, set with textContent.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// a theme colour (a JupyterLab CSS variable), or the fallback outside JupyterLab
function css(name, fallback) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function timeLeft(value) {
  if (value === null || value === undefined) return "";
  return value < 90 ? `about ${Math.ceil(value)} s left` : `about ${Math.ceil(value / 60)} min left`;
}

// The bar of a run: a meter, a line of numbers and Stop (the kernel stops after the current step and keeps
// `kept` as trained so far). `show(progress, parts)` fills the meter and the line (`parts`, then the time left
// while running, or how it ended) and marks `root` with the run's status (`${prefix}-status-stopped`).
function progressBar(model, root, prefix, kept) {
  const bar = el("div", `${prefix}-bar`);
  const meter = el("div", `${prefix}-progress`);
  const fill = el("div");
  meter.append(fill);
  const state = el("span", `${prefix}-state`);
  const stop = el("button", `${prefix}-stop`, "■ Stop");
  stop.addEventListener("click", () => {
    model.send({ type: "stop" });
    stop.disabled = true;
    state.textContent = "stopping after this step…";
  });
  bar.append(meter, state, stop);

  function show(progress, parts) {
    const total = progress.total_steps || 0;
    fill.style.width = total ? `${(100 * (progress.step || 0)) / total}%` : "0%";
    const running = progress.status === "running";
    if (running && progress.seconds_left) parts.push(timeLeft(progress.seconds_left));
    if (!running && progress.status) parts.push(progress.status === "stopped" ? `stopped: ${kept} kept as trained so far` : "finished");
    if (!stop.disabled || !running) state.textContent = parts.join(" · ");
    stop.disabled = !running;
    root.dataset.status = progress.status || "";
    root.classList.toggle(`${prefix}-status-stopped`, progress.status === "stopped");
  }
  return { bar, show };
}
