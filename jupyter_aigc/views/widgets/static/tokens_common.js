// Helpers of the token views (after teaching_common.js): the BPE loop and the coloured token boxes.
// Token strings are outside text: they go into the page with textContent only.

// A merge list [[left, right, rank], …] as a lookup: "left\u0000right" → rank.
function rankTable(merges) {
  const table = new Map();
  for (const [left, right, rank] of merges) table.set(left + "\u0000" + right, rank);
  return table;
}

// BPE on one word, as the tokenizers library does it: again and again, the leftmost adjacent pair with the
// lowest rank is merged, until no pair with a rank below `limit` is left. Merges of one rule in a row are one
// step. Returns the states (symbols after each step, the first the bytes) and each step's [left, right, rank].
function bpe(symbols, ranks, limit = Infinity) {
  let state = symbols.slice();
  const states = [state];
  const applied = [];
  for (;;) {
    let best = Infinity;
    let at = -1;
    for (let i = 0; i + 1 < state.length; i++) {
      const rank = ranks.get(state[i] + "\u0000" + state[i + 1]);
      if (rank !== undefined && rank < best && rank < limit) {
        best = rank;
        at = i;
      }
    }
    if (at < 0) break;
    const left = state[at];
    const right = state[at + 1];
    state = [...state.slice(0, at), left + right, ...state.slice(at + 2)];
    const last = applied[applied.length - 1];
    if (last && last[2] === best) {
      states[states.length - 1] = state;
    } else {
      states.push(state);
      applied.push([left, right, best]);
    }
  }
  return { states, applied };
}

// One token as a box: the text it stands for (whitespace made visible), its id under it, and its bytes.
function tokenBox(piece, id, bytes, index, special) {
  const box = el("span", `aigc-tok aigc-tok-c${index % 6}${special ? " aigc-tok-special" : ""}`);
  const text = el("span", "aigc-tok-piece", visible(piece));
  text.title = JSON.stringify(piece);
  box.append(text, el("span", "aigc-tok-id", String(id)));
  if (bytes !== undefined) box.append(el("span", "aigc-tok-bytes", bytes));
  box.dataset.id = String(id);
  box.dataset.index = String(index);
  return box;
}
