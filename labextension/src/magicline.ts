/**
 * Pure parsing of prompt cells: the `%%gpt …` first line and the `{var}` placeholders of the body.
 * No JupyterLab imports, so it is unit-tested in Node.
 */

import spec from './spec.json';

/**
 * Magic names, switches and the placeholder rule come from `jupyter_aigc/spec.json`, the file the kernel
 * reads too (copied next to this file at build time): a new magic is highlighted without touching this code.
 */
interface SpecOption {
  flags: string[];
  switch?: boolean;
  group?: string;
}
interface Spec {
  placeholder: string;
  groups: Record<string, SpecOption[]>;
  magics: Record<string, { kind: string; prompt: boolean; options: SpecOption[] }>;
}
const SPEC = spec as Spec;

/** Cell magics whose body is a prompt (prose), not Python. */
export const PROMPT_MAGICS: readonly string[] = Object.entries(SPEC.magics)
  .filter(([, magic]) => magic.kind === 'cell' && magic.prompt)
  .map(([name]) => name);
export type PromptMagic = string;

/** A piece of the first line: the magic name, an option flag, or an option's value. */
export interface LineToken {
  kind: 'magic' | 'flag' | 'value';
  text: string;
  from: number;
  to: number;
}

export interface MagicLine {
  magic: PromptMagic;
  tokens: LineToken[];
  /** Option values by flag as written, e.g. {'-m': 'openai:gpt-4o-mini', '--temperature': '0.7'}. */
  options: Record<string, string | true>;
  /** Offset where the body starts (after the first newline), or the text's length. */
  bodyStart: number;
}

function expand(options: SpecOption[]): SpecOption[] {
  return options.flatMap(option => (option.group ? expand(SPEC.groups[option.group]) : [option]));
}

/** Flags that take no value (everything else takes the next word). */
const SWITCHES = new Set([
  '-h',
  '--help',
  ...Object.values(SPEC.magics).flatMap(magic =>
    expand(magic.options)
      .filter(option => option.switch)
      .flatMap(option => option.flags)
  )
]);

/** Split a line like a POSIX shell would (quotes group, backslash escapes), keeping offsets. */
export function splitWords(line: string, offset = 0): { text: string; from: number; to: number }[] {
  const words: { text: string; from: number; to: number }[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) {
      i++;
    }
    if (i >= line.length) {
      break;
    }
    const from = i;
    let text = '';
    while (i < line.length && !/\s/.test(line[i])) {
      const ch = line[i];
      if (ch === "'" || ch === '"') {
        const close = line.indexOf(ch, i + 1);
        const end = close < 0 ? line.length : close;
        text += line.slice(i + 1, end);
        i = close < 0 ? line.length : close + 1;
      } else if (ch === '\\' && i + 1 < line.length) {
        text += line[i + 1];
        i += 2;
      } else {
        text += ch;
        i++;
      }
    }
    words.push({ text, from: from + offset, to: i + offset });
  }
  return words;
}

/** The first line of ``source`` if it starts a prompt cell (`%%gpt`, `%%aigc_image`, `%%aigc_attention`), else null. */
export function parseMagicLine(source: string): MagicLine | null {
  const newline = source.indexOf('\n');
  const line = newline < 0 ? source : source.slice(0, newline);
  const match = /^%%(\w+)(?=\s|$)/.exec(line);
  if (!match || !PROMPT_MAGICS.includes(match[1])) {
    return null;
  }
  const tokens: LineToken[] = [{ kind: 'magic', text: match[0], from: 0, to: match[0].length }];
  const options: Record<string, string | true> = {};
  const words = splitWords(line.slice(match[0].length), match[0].length);
  for (let k = 0; k < words.length; k++) {
    const word = words[k];
    if (!word.text.startsWith('-') || /^-\d/.test(word.text)) {
      tokens.push({ kind: 'value', ...word });
      continue;
    }
    const eq = word.text.indexOf('=');
    if (word.text.startsWith('--') && eq > 0) {
      const flag = word.text.slice(0, eq);
      tokens.push({ kind: 'flag', text: flag, from: word.from, to: word.from + eq });
      tokens.push({ kind: 'value', text: word.text.slice(eq + 1), from: word.from + eq + 1, to: word.to });
      options[flag] = word.text.slice(eq + 1);
      continue;
    }
    tokens.push({ kind: 'flag', ...word });
    const next = words[k + 1];
    if (!SWITCHES.has(word.text) && next && (!next.text.startsWith('-') || /^-\d/.test(next.text))) {
      tokens.push({ kind: 'value', ...next });
      options[word.text] = next.text;
      k++;
    } else {
      options[word.text] = true;
    }
  }
  return {
    magic: match[1],
    tokens,
    options,
    bodyStart: newline < 0 ? source.length : newline + 1
  };
}

/** A `{name}`, `{name.attr}` or `{name[0]}` placeholder; `{{text}}` is an escape, not a placeholder. */
export interface Placeholder {
  name: string;
  from: number;
  to: number;
}

/** The kernel's rule: group 1 is a `{{literal}}` escape, group 2 the name, group 3 its `.attr`/`[i]` path. */
const PLACEHOLDER = new RegExp(SPEC.placeholder, 'g');

/** The placeholders the kernel would try to fill, with offsets relative to ``offset``. */
export function findPlaceholders(text: string, offset = 0): Placeholder[] {
  const found: Placeholder[] = [];
  for (const match of text.matchAll(PLACEHOLDER)) {
    if (match[2] === undefined) {
      continue;
    }
    const from = (match.index ?? 0) + offset;
    found.push({ name: match[2] + (match[3] ?? ''), from, to: from + match[0].length });
  }
  return found;
}

/** Quote a word for a magic line the way shlex would need it. */
export function quoteWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : "'" + word.replace(/'/g, "'\"'\"'") + "'";
}

/**
 * The `%%aigc_attention` cell that shows the attention of a `%%gpt` cell's prompt, or an error message
 * saying why there is none.
 */
export function attentionCellFor(source: string): { source: string } | { error: string } {
  const line = parseMagicLine(source);
  if (!line || line.magic !== 'gpt') {
    return { error: 'Select a %%gpt cell first: its prompt is what the attention view shows.' };
  }
  const body = source.slice(line.bodyStart).trim();
  if (!body) {
    return { error: 'This %%gpt cell has no prompt yet: write one below the first line.' };
  }
  const model = line.options['-m'] ?? line.options['--model'];
  const compare = line.options['--compare'];
  const chosen = typeof model === 'string' ? model : typeof compare === 'string' ? compare.split(',')[0].trim() : '';
  if (line.options['--base-url'] || chosen.startsWith('openai:')) {
    return { error: 'This cell uses a model served over an API, which returns no attention weights. Use a local -m.' };
  }
  const flags = chosen ? ` -m ${quoteWord(chosen)}` : '';
  return { source: `%%aigc_attention${flags}\n${body}` };
}
