// Front end of LogitLensView (%%aigc_lens): for every layer (rows, the embeddings first, the model's own
// output last) and every input position (columns), the token the model would predict next if it stopped
// there, shaded by its probability (float32 [layers, positions] in `probs`). Token texts go in with textContent.

function pct(p) {
  return p >= 0.01 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(2)}%`;
}

function render({ model, el: root }) {
  root.classList.add("aigc-lens");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const head = el("div", "aigc-lens-head");
  const scroller = el("div", "aigc-lens-scroll");
  const legend = el("div", "aigc-lens-legend");
  const tip = el("div", "aigc-lens-tip");
  tip.style.display = "none";
  root.append(head, scroller, legend, tip);
  const unframe = frameView(model, root, "logit-lens");

  function draw() {
    const tokens = model.get("tokens") || [];
    const top = model.get("top_tokens") || [];
    const probs = floats(model.get("probs"));
    const layers = top.length;
    const n = tokens.length;
    head.replaceChildren(el("strong", "", "Logit lens"),
      el("span", "", ` of ${model.get("model_name") || "the model"}: each layer's hidden state read through the ` +
        "final norm and the output layer. A cell is the token predicted to come after its column's token."));

    const table = el("table", "aigc-lens-grid");
    const thead = el("thead");
    const hr = el("tr");
    hr.append(el("th", "aigc-lens-corner", "layer ↓  input →"));
    tokens.forEach((text, position) => {
      const th = el("th", "aigc-lens-input", visible(text));
      th.title = `position ${position}: ${JSON.stringify(text)}`;
      th.dataset.position = String(position);
      hr.append(th);
    });
    thead.append(hr);
    const tbody = el("tbody");
    for (let layer = 0; layer < layers; layer++) {
      const tr = el("tr", "aigc-lens-row");
      tr.dataset.layer = String(layer);
      const last = layer === layers - 1;
      if (last) tr.classList.add("aigc-lens-final");
      const label = layer === 0 ? "0 embeddings" : last ? `${layer} output` : String(layer);
      const th = el("th", "aigc-lens-layer", label);
      th.title = layer === 0 ? "the token embeddings, before any layer"
        : last ? `after the last layer: the model's own prediction` : `after layer ${layer}`;
      tr.append(th);
      for (let position = 0; position < n; position++) {
        const p = probs[layer * n + position] ?? 0;
        const text = top[layer]?.[position] ?? "";
        const td = el("td", "aigc-lens-cell", visible(text));
        td.dataset.layer = String(layer);
        td.dataset.position = String(position);
        td.dataset.prob = String(p);
        td.dataset.token = text;
        td.style.setProperty("--aigc-lens-p", String(Math.max(0, Math.min(1, p))));
        if (p > 0.5) td.classList.add("aigc-lens-strong");
        tr.append(td);
      }
      tbody.append(tr);
    }
    table.append(thead, tbody);
    scroller.replaceChildren(table);
    legend.replaceChildren(el("span", "", "probability of the top token: "),
      ...[0, 0.25, 0.5, 0.75, 1].map((p) => {
        const swatch = el("span", "aigc-lens-swatch", `${Math.round(100 * p)}%`);
        swatch.style.setProperty("--aigc-lens-p", String(p));
        if (p > 0.5) swatch.classList.add("aigc-lens-strong");
        return swatch;
      }),
      el("span", "", "  ·  the last row (outlined) is the model's own prediction; hover a cell for its probability."));
  }

  on(scroller, "mouseover", (event) => {
    const cell = event.target instanceof Element ? event.target.closest(".aigc-lens-cell") : null;
    if (!cell) return;
    const tokens = model.get("tokens") || [];
    const position = Number(cell.dataset.position);
    const layer = Number(cell.dataset.layer);
    tip.replaceChildren(
      el("div", "aigc-lens-tip-token", JSON.stringify(cell.dataset.token)),
      el("div", "", `probability ${pct(Number(cell.dataset.prob))}`),
      el("div", "aigc-lens-tip-where", `layer ${layer}${layer === 0 ? " (embeddings)" : ""}, after ${JSON.stringify(tokens[position] ?? "")}`));
    // placed inside the view (position: absolute), so scrolling and transformed ancestors do not move it away
    // below the cell in the upper half of the grid, above it in the lower half (never past the view's edge)
    const box = cell.getBoundingClientRect();
    const origin = root.getBoundingClientRect();
    tip.style.display = "block";
    tip.style.left = Math.max(0, Math.min(box.left - origin.left, origin.width - tip.offsetWidth)) + "px";
    const below = box.bottom - origin.top + 4;
    const above = box.top - origin.top - tip.offsetHeight - 4;
    tip.style.top = (box.top + box.bottom) / 2 - origin.top < origin.height / 2 || above < 0 ? below + "px" : above + "px";
  });
  on(scroller, "mouseleave", () => (tip.style.display = "none"));

  const handlers = ["tokens", "top_tokens", "probs", "model_name"].map((name) => [`change:${name}`, draw]);
  for (const [name, handler] of handlers) model.on(name, handler);
  draw();

  return () => {
    for (const [name, handler] of handlers) model.off(name, handler);
    listeners.abort();
    tip.remove();
    unframe();
  };
}

export default { render };
