// Front end of ImageGallery: PNG bytes arrive as binary buffers inside `items`.
function url(png) {
  if (!png || !png.byteLength) return null;
  const bytes = png instanceof DataView ? new Uint8Array(png.buffer, png.byteOffset, png.byteLength) : new Uint8Array(png);
  return URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
}

function render({ model, el }) {
  el.classList.add("aigc-gallery");
  const caption = document.createElement("div");
  caption.className = "aigc-gallery-caption";
  const grid = document.createElement("div");
  grid.className = "aigc-gallery-grid";
  el.append(caption, grid);
  const urls = [];

  function zoom(src) {
    const overlay = document.createElement("div");
    overlay.className = "aigc-gallery-zoom";
    const img = document.createElement("img");
    img.src = src;
    overlay.append(img);
    overlay.addEventListener("click", () => overlay.remove());
    document.body.append(overlay);
  }

  function draw() {
    caption.textContent = model.get("caption");
    const items = model.get("items") || [];
    while (grid.children.length > items.length) grid.lastChild.remove();
    items.forEach((item, i) => {
      let box = grid.children[i];
      if (!box) {
        box = document.createElement("div");
        box.className = "aigc-gallery-item";
        box.innerHTML = '<img alt="generated image"><div class="aigc-gallery-bar"><div></div></div><div class="aigc-gallery-meta"><span class="aigc-gallery-seed"></span><a class="aigc-gallery-save">download</a></div>';
        box.querySelector("img").addEventListener("click", () => box.dataset.src && zoom(box.dataset.src));
        box.querySelector(".aigc-gallery-save").addEventListener("click", () => {
          if (!box.dataset.src || box.dataset.status !== "done") return;
          const link = document.createElement("a");
          link.href = box.dataset.src;
          link.download = `aigc-${box.dataset.seed || i}.png`;
          link.click();
        });
        grid.append(box);
      }
      const src = url(item.png);
      if (src) {
        if (urls[i]) URL.revokeObjectURL(urls[i]);
        urls[i] = src;
        box.dataset.src = src;
        box.querySelector("img").src = src;
      }
      box.dataset.status = item.status;
      box.dataset.seed = item.seed ?? "";
      const done = item.status === "done";
      box.querySelector(".aigc-gallery-bar > div").style.width = `${done ? 100 : (100 * (item.step || 0)) / (item.steps || 1)}%`;
      box.querySelector(".aigc-gallery-bar").style.visibility = done ? "hidden" : "visible";
      const parts = item.seed !== null && item.seed !== undefined ? [`seed ${item.seed}`] : [];
      if (!done) parts.push(item.status === "running" ? `step ${item.step}/${item.steps}` : item.status);
      box.querySelector(".aigc-gallery-seed").textContent = parts.join(" · ");
      box.querySelector("img").style.visibility = box.dataset.src ? "visible" : "hidden";
    });
  }
  model.on("change:items", draw);
  model.on("change:caption", draw);
  draw();
}

export default { render };
