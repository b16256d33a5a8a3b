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

// a token as shown: whitespace that would vanish or break the line made visible; the exact text is in title
function visible(text) {
  if (text === "") return "∅";
  const shown = text.replace(/\n/g, "↵").replace(/\r/g, "␍").replace(/\t/g, "⇥");
  return shown.trim() === "" ? shown.replace(/ /g, "␣") : shown;
}
