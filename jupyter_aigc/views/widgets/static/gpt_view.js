// Front end of GptView. HTML in `columns[i].html` is sanitised in Python before it is sent.
// The controls and their ranges come from the kernel (`limits`, read from spec.json): the same rules as
// the magic's options. Floats are sliders, integers number fields.
function controlSpecs(limits) {
  return (limits || []).map((s) => ({ ...s, type: s.type === "float" ? "range" : "number" }));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function addCopyButtons(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const button = el("button", "aigc-copy", "copy");
    button.title = "Copy code";
    button.addEventListener("click", () => {
      navigator.clipboard?.writeText(pre.querySelector("code")?.innerText ?? pre.innerText);
      button.textContent = "copied";
      setTimeout(() => (button.textContent = "copy"), 1200);
    });
    pre.appendChild(button);
  }
}

function tokenView(tokens, tip) {
  const box = el("div", "aigc-tokens");
  for (const [text, prob, color, top] of tokens) {
    const span = el("span", "aigc-token", text);
    span.style.background = color;
    span.dataset.prob = prob.toFixed(4);
    span.addEventListener("mouseenter", (event) => {
      tip.replaceChildren();
      const table = el("table");
      const head = el("tr");
      head.append(el("td", "", JSON.stringify(text)), el("td", "", (100 * prob).toFixed(1) + "%"));
      head.style.fontWeight = "bold";
      table.append(head);
      for (const [alt, p] of top) {
        const row = el("tr");
        row.append(el("td", "", JSON.stringify(alt)), el("td", "", (100 * p).toFixed(1) + "%"));
        table.append(row);
      }
      tip.append(table);
      tip.style.left = event.clientX + 12 + "px";
      tip.style.top = event.clientY + 12 + "px";
      tip.style.display = "block";
    });
    span.addEventListener("mouseleave", () => (tip.style.display = "none"));
    box.append(span);
  }
  return box;
}

function render({ model, el: root }) {
  root.classList.add("aigc-gpt");
  const bar = el("div", "aigc-controls");
  const inputs = {};
  for (const spec of controlSpecs(model.get("limits"))) {
    const label = el("label", "", spec.label + " ");
    const input = el("input");
    Object.assign(input, { type: spec.type, min: spec.min, max: spec.max, step: spec.step });
    input.dataset.control = spec.key;
    const shown = el("span", "aigc-value");
    input.addEventListener("input", () => (shown.textContent = spec.type === "range" ? input.value : ""));
    input.addEventListener("change", () => regenerate());
    label.append(input);
    if (spec.type === "range") label.append(shown);
    inputs[spec.key] = { input, shown };
    bar.append(label);
  }
  const stop = el("button", "aigc-stop", "■ Stop");
  const again = el("button", "aigc-regenerate", "↻ Regenerate");
  stop.addEventListener("click", () => model.send({ type: "stop" }));
  again.addEventListener("click", () => regenerate());
  bar.append(stop, again);
  const columns = el("div", "aigc-columns");
  const tip = el("div", "aigc-tip");
  tip.style.display = "none";
  root.append(bar, columns, tip);

  function readControls() {
    const values = {};
    for (const [key, { input }] of Object.entries(inputs)) {
      if (input.value === "") values[key] = null;
      else values[key] = key === "max_tokens" || key === "seed" ? parseInt(input.value, 10) : parseFloat(input.value);
    }
    return values;
  }
  function regenerate() {
    if (model.get("running")) return;
    model.send({ type: "regenerate", controls: readControls() });
  }
  function drawControls() {
    const values = model.get("controls") || {};
    for (const [key, { input, shown }] of Object.entries(inputs)) {
      if (document.activeElement === input) continue;
      input.value = values[key] ?? "";
      shown.textContent = input.type === "range" ? input.value : "";
    }
    bar.style.display = model.get("show_controls") ? "flex" : "none";
  }
  function drawRunning() {
    const running = model.get("running");
    stop.disabled = !running;
    again.disabled = running;
    for (const { input } of Object.values(inputs)) input.disabled = running;
  }
  function drawColumns() {
    const data = model.get("columns") || [];
    columns.style.gridTemplateColumns = `repeat(${Math.max(1, data.length)}, minmax(0, 1fr))`;
    while (columns.children.length > data.length) columns.lastChild.remove();
    data.forEach((column, i) => {
      let box = columns.children[i];
      if (!box) {
        box = el("div", "aigc-column");
        box.append(el("div", "aigc-title"), el("div", "aigc-md"), el("div", "aigc-error"), el("div", "aigc-footer"));
        columns.append(box);
      }
      const [title, body, error, footer] = box.children;
      box.className = `aigc-column aigc-status-${column.status}`;
      box.dataset.status = column.status;
      title.textContent = column.title || "";
      title.style.display = data.length > 1 || column.title ? "block" : "none";
      if (column.tokens && column.tokens.length && column.status !== "running") {
        body.replaceChildren(tokenView(column.tokens, tip));
      } else if (body._aigcHtml !== column.html) {
        body.innerHTML = column.html || "";
        body._aigcHtml = column.html;
        addCopyButtons(body);
      }
      error.textContent = column.error || "";
      footer.textContent = column.footer || "";
    });
  }
  model.on("change:columns", drawColumns);
  model.on("change:controls", drawControls);
  model.on("change:show_controls", drawControls);
  model.on("change:running", drawRunning);
  drawControls();
  drawRunning();
  drawColumns();
}

export default { render };
