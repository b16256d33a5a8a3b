/**
 * CodeMirror 6 extension for notebook cells: a `%%gpt`/`%%aigc_image`/`%%aigc_attention` cell is parsed
 * as Markdown (so JupyterLab's theme colours it as prose), its first line is coloured as a magic line,
 * and `{var}` placeholders are marked. Other cells are left exactly as they were.
 */
import { Language, syntaxTree } from '@codemirror/language';
import { Compartment, EditorState, Extension, Prec, RangeSetBuilder, StateField, Text } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView, ViewPlugin, ViewUpdate } from '@codemirror/view';
import { classHighlighter, highlightTree } from '@lezer/highlight';

import { findPlaceholders, MagicLine, parseMagicLine } from './magicline';

const magicLineDeco = Decoration.line({ class: 'cm-aigc-magic-line' });
const bodyLineDeco = Decoration.line({ class: 'cm-aigc-prompt-line' });
const tokenDecos = {
  magic: Decoration.mark({ class: 'cm-aigc-magic' }),
  flag: Decoration.mark({ class: 'cm-aigc-flag' }),
  value: Decoration.mark({ class: 'cm-aigc-value' })
};
const placeholderDeco = Decoration.mark({ class: 'cm-aigc-placeholder' });
const markCache = new Map<string, Decoration>();

function markFor(className: string): Decoration {
  let deco = markCache.get(className);
  if (!deco) {
    deco = Decoration.mark({ class: className });
    markCache.set(className, deco);
  }
  return deco;
}

const firstLine = (doc: Text): string => doc.line(1).text;

/** What the first line says, recomputed on every document change (the line is short). */
function promptField() {
  const parse = (doc: Text): MagicLine | null => parseMagicLine(firstLine(doc));
  return StateField.define<MagicLine | null>({
    create: state => parse(state.doc),
    update: (value, tr) => (tr.docChanged ? parse(tr.newDoc) : value)
  });
}

/**
 * Markdown replaces the cell's language only while the first line names a prompt magic: a compartment,
 * switched by the transaction that changes that (an empty compartment leaves JupyterLab's language alone).
 */
function languageSwitch(markdown: Language, isPrompt: (doc: Text) => boolean, initial: boolean): Extension {
  const compartment = new Compartment();
  const on = Prec.highest(markdown.extension);
  const off: Extension = [];
  return [
    compartment.of(initial ? on : off),
    EditorState.transactionExtender.of(tr => {
      if (!tr.docChanged) {
        return null;
      }
      const want = isPrompt(tr.newDoc);
      const has = compartment.get(tr.startState) === on;
      return want === has ? null : { effects: compartment.reconfigure(want ? on : off) };
    })
  ];
}

/** Decorations for the visible part of a prompt cell. */
function decorate(view: EditorView, line: MagicLine | null): DecorationSet {
  if (!line) {
    return Decoration.none;
  }
  const { state } = view;
  const marks: { from: number; to: number; deco: Decoration }[] = [];
  const tree = syntaxTree(state);
  for (const { from, to } of view.visibleRanges) {
    const start = Math.max(from, line.bodyStart);
    if (start < to) {
      highlightTree(tree, classHighlighter, (a, b, cls) => marks.push({ from: a, to: b, deco: markFor(cls) }), start, to);
      const text = state.sliceDoc(start, to);
      for (const p of findPlaceholders(text, start)) {
        marks.push({ from: p.from, to: p.to, deco: placeholderDeco });
      }
    }
  }
  for (const token of line.tokens) {
    marks.push({ from: token.from, to: token.to, deco: tokenDecos[token.kind] });
  }
  const lines: { from: number; deco: Decoration }[] = [{ from: 0, deco: magicLineDeco }];
  for (const { from, to } of view.visibleRanges) {
    for (let pos = Math.max(from, line.bodyStart); pos <= to && pos <= state.doc.length; ) {
      const docLine = state.doc.lineAt(pos);
      if (docLine.number > 1) {
        lines.push({ from: docLine.from, deco: bodyLineDeco });
      }
      pos = docLine.to + 1;
    }
  }
  const builder = new RangeSetBuilder<Decoration>();
  const all = [
    ...lines.map(l => ({ from: l.from, to: l.from, deco: l.deco, line: true })),
    ...marks.map(m => ({ ...m, line: false }))
  ].sort((a, b) => a.from - b.from || Number(b.line) - Number(a.line) || a.to - b.to);
  for (const item of all) {
    builder.add(item.from, item.to, item.deco);
  }
  return builder.finish();
}

/**
 * The extension for one cell editor. ``markdown`` is JupyterLab's own Markdown language, so nested code
 * blocks and the theme's colours match Markdown cells; ``source`` is the cell's text when the editor opens.
 */
export function promptCellExtension(markdown: Language, source: string): Extension {
  const prompt = promptField();
  const isPrompt = (doc: Text) => parseMagicLine(firstLine(doc)) !== null;
  const decorations = ViewPlugin.fromClass(
    class {
      decorations: DecorationSet;
      constructor(view: EditorView) {
        this.decorations = decorate(view, view.state.field(prompt));
      }
      update(update: ViewUpdate) {
        if (
          update.docChanged ||
          update.viewportChanged ||
          syntaxTree(update.startState) !== syntaxTree(update.state) ||
          update.startState.field(prompt) !== update.state.field(prompt)
        ) {
          this.decorations = decorate(update.view, update.state.field(prompt));
        }
      }
    },
    { decorations: plugin => plugin.decorations }
  );
  return [
    prompt,
    languageSwitch(markdown, isPrompt, isPrompt(Text.of(source.split('\n')))),
    decorations
  ];
}
