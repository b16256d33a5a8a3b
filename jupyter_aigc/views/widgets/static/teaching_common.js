// Helpers shared by the teaching widgets; the Python side puts this file in front of each widget's ESM.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function floats(value) {
  // anywidget hands bytes traits over as a DataView (or an ArrayBuffer / typed array)
  if (!value) return new Float32Array(0);
  if (value instanceof Float32Array) return value;
  if (value instanceof ArrayBuffer) return new Float32Array(value.slice(0, value.byteLength - (value.byteLength % 4)));
  const { buffer, byteOffset = 0, byteLength = 0 } = value;
  if (!buffer) return new Float32Array(0);
  const length = Math.floor(byteLength / 4);
  if (byteOffset % 4 === 0) return new Float32Array(buffer, byteOffset, length);
  return new Float32Array(buffer.slice(byteOffset, byteOffset + 4 * length));
}

// "1 token", "2 tokens", "49,152 tokens"
function plural(n, word) {
  return `${Math.round(n).toLocaleString("en-US")} ${word}${Math.round(n) === 1 ? "" : "s"}`;
}

// a token as shown: whitespace that would vanish or break the line made visible; the exact text is in title
function visible(text) {
  if (text === "") return "∅";
  const shown = text.replace(/\n/g, "↵").replace(/\r/g, "␍").replace(/\t/g, "⇥");
  return shown.trim() === "" ? shown.replace(/ /g, "␣") : shown;
}

// The frame every view's render() calls last: its caption (the `caption` trait; empty hides it) and the buttons
// that save what the view shows now as a PNG or an SVG, drawn here in the browser with no network.
function frameView(model, root, name) {
  const foot = el("div", "aigc-frame");
  const caption = el("p", "aigc-caption");
  const buttons = el("span", "aigc-export");
  const png = el("button", "aigc-export-png", "PNG"), svg = el("button", "aigc-export-svg", "SVG");
  png.title = "Save what the view shows now as a PNG picture (for slides)";
  svg.title = "Save what the view shows now as an SVG picture (for slides and papers)";
  const note = el("span", "aigc-export-note");
  buttons.append(el("span", "", "save:"), png, svg, note);
  foot.append(caption, buttons);
  root.append(foot);
  const show = () => {
    caption.textContent = model.get("caption") || "";
    caption.hidden = !caption.textContent;
  };
  show();
  model.on("change:caption", show);
  const save = async (format) => {
    note.textContent = "";
    try {
      const picture = pictureSvg(root);
      const blob = format === "svg" ? new Blob([picture.svg], { type: "image/svg+xml" }) : await picturePng(picture);
      saveBlob(blob, `${name}.${format}`);
      root.dataset.savedBytes = String(blob.size);
    } catch (error) {
      note.textContent = `could not save: ${error.message || error}`;
    }
  };
  png.addEventListener("click", () => save("png"));
  svg.addEventListener("click", () => save("svg"));
  return () => model.off("change:caption", show);
}

const INHERITED_CSS = /^(color|cursor|direction|font|letter-spacing|line-height|list-style|quotes|tab-size|text-align|text-indent|text-shadow|text-transform|visibility|white-space|word-break|word-spacing|overflow-wrap|writing-mode|hyphens|border-collapse|border-spacing|caption-side|empty-cells|-webkit-text)/;
const defaultStyles = new Map();

function defaultStyle(node) {
  // the computed style of a bare element of the same kind: properties equal to it need not be written
  const key = node.tagName + ":" + (node.getAttribute("type") || "");
  if (!defaultStyles.has(key)) {
    const sandbox = el("div");
    sandbox.style.cssText = "position:absolute;left:-10000px;top:0;";
    const bare = document.createElement(node.tagName);
    if (node.getAttribute("type")) bare.setAttribute("type", node.getAttribute("type"));
    sandbox.append(bare);
    document.body.append(sandbox);
    const style = getComputedStyle(bare), copy = {};
    for (let i = 0; i < style.length; i++) copy[style[i]] = style.getPropertyValue(style[i]);
    sandbox.remove();
    defaultStyles.set(key, copy);
  }
  return defaultStyles.get(key);
}

function inlineStyle(node, copy, parentStyle) {
  const style = getComputedStyle(node), bare = defaultStyle(node), rules = [];
  for (let i = 0; i < style.length; i++) {
    const name = style[i];
    if (name.startsWith("--")) continue;
    const value = style.getPropertyValue(name);
    const usual = INHERITED_CSS.test(name) ? (parentStyle ? parentStyle.getPropertyValue(name) : null) : bare[name];
    if (value !== usual) rules.push(`${name}:${value}`);
  }
  copy.setAttribute("style", rules.join(";"));
  return style;
}

function dataUrl(image) {
  // a picture as a data: URL (an SVG drawn as an image loads nothing else)
  if (image instanceof HTMLCanvasElement) return image.toDataURL("image/png");
  if (!image.src || image.src.startsWith("data:")) return image.src || "";
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth || 1;
  canvas.height = image.naturalHeight || 1;
  canvas.getContext("2d").drawImage(image, 0, 0);
  return canvas.toDataURL("image/png");
}

function styledCopy(node, parentStyle) {
  // a copy of node whose look does not depend on the page's style sheets; save buttons (.aigc-export, or
  // marked data-no-picture) are left out
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.nodeValue);
  if (node.nodeType !== Node.ELEMENT_NODE || node.classList.contains("aigc-export") || node.hasAttribute("data-no-picture")) return null;
  if (getComputedStyle(node).display === "none") return null;
  let copy;
  if (node instanceof HTMLCanvasElement || node instanceof HTMLImageElement) {
    copy = document.createElement("img");
    copy.setAttribute("src", dataUrl(node));
  } else if (node instanceof SVGElement) {
    copy = node.cloneNode(true);
  } else {
    copy = document.createElement(node.tagName.toLowerCase());
    for (const { name, value } of node.attributes) {
      if (name !== "style" && name !== "id" && !name.startsWith("on")) copy.setAttribute(name, value);
    }
  }
  if (node instanceof HTMLInputElement) {
    copy.setAttribute("value", node.value);
    if (node.checked) copy.setAttribute("checked", "");
  }
  if (node instanceof HTMLOptionElement && node.selected) copy.setAttribute("selected", "");
  const style = inlineStyle(node, copy, parentStyle);
  if (!(node instanceof SVGElement) && !(node instanceof HTMLCanvasElement)) {
    for (const child of node.childNodes) {
      const part = styledCopy(child, style);
      if (part) copy.append(part);
    }
  }
  return copy;
}

function backgroundOf(node) {
  for (let n = node; n && n instanceof Element; n = n.parentElement) {
    const colour = getComputedStyle(n).backgroundColor;
    if (colour && colour !== "transparent" && !/rgba\(.*,\s*0\)$/.test(colour)) return colour;
  }
  return "white";
}

function pictureSvg(root) {
  // what root shows now, as a standalone SVG: the styled copy inside a <foreignObject>, well-formed XML
  const box = root.getBoundingClientRect();
  const width = Math.max(1, Math.ceil(box.width)), height = Math.max(1, Math.ceil(box.height));
  const copy = styledCopy(root, null);
  copy.style.margin = "0";
  copy.style.backgroundColor = backgroundOf(root);
  const xhtml = new XMLSerializer().serializeToString(copy).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd");
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<foreignObject x="0" y="0" width="${width}" height="${height}">${xhtml}</foreignObject></svg>`;
  return { svg, width, height };
}

function picturePng({ svg, width, height }, scale = 2) {
  // the SVG drawn onto a canvas (a data: URL image does not taint it) and encoded as PNG
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = width * scale;
      canvas.height = height * scale;
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the browser could not encode a PNG"))), "image/png");
    };
    image.onerror = () => reject(new Error("the browser could not draw the picture"));
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
  });
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
