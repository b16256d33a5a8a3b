import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { attentionCellFor, findPlaceholders, parseMagicLine, quoteWord, splitWords } from '../src/magicline';

test('a %%gpt first line is parsed into magic, flags and values with offsets', () => {
  const source = "%%gpt -m openai:gpt-4o-mini --temperature 0.7 --new --system 'Be brief.'\nWhat is {topic}?";
  const line = parseMagicLine(source)!;
  assert.equal(line.magic, 'gpt');
  assert.deepEqual(line.options, {
    '-m': 'openai:gpt-4o-mini',
    '--temperature': '0.7',
    '--new': true,
    '--system': 'Be brief.'
  });
  assert.deepEqual(
    line.tokens.map(t => [t.kind, source.slice(t.from, t.to)]),
    [
      ['magic', '%%gpt'],
      ['flag', '-m'],
      ['value', 'openai:gpt-4o-mini'],
      ['flag', '--temperature'],
      ['value', '0.7'],
      ['flag', '--new'],
      ['flag', '--system'],
      ['value', "'Be brief.'"]
    ]
  );
  assert.equal(source.slice(line.bodyStart), 'What is {topic}?');
});

test('--flag=value, negative numbers and switches before flags', () => {
  const line = parseMagicLine('%%gpt --seed=-3 --logprobs -n 2 --stop -1')!;
  assert.deepEqual(line.options, { '--seed': '-3', '--logprobs': true, '-n': '2', '--stop': '-1' });
  const kinds = line.tokens.map(t => t.kind);
  assert.deepEqual(kinds, ['magic', 'flag', 'value', 'flag', 'flag', 'value', 'flag', 'value']);
});

test('image and attention magics are prompt cells; other magics and Python are not', () => {
  assert.equal(parseMagicLine('%%aigc_image --size 256x256\na red fox')!.magic, 'aigc_image');
  assert.equal(parseMagicLine('%%aigc_attention\nThe cat sat')!.magic, 'aigc_attention');
  assert.equal(parseMagicLine('%%gpt')!.bodyStart, 5);
  assert.equal(parseMagicLine('%%gptx\nhi'), null);
  assert.equal(parseMagicLine('%%time\nx = 1'), null);
  assert.equal(parseMagicLine('%gpt hi'), null);
  assert.equal(parseMagicLine(' %%gpt\nhi'), null);
  assert.equal(parseMagicLine('x = 1\n%%gpt'), null);
  assert.equal(parseMagicLine(''), null);
});

test('words split like a shell: quotes group, escapes, offsets cover the quotes', () => {
  assert.deepEqual(splitWords(`a "b c" d\\ e 'f'`), [
    { text: 'a', from: 0, to: 1 },
    { text: 'b c', from: 2, to: 7 },
    { text: 'd e', from: 8, to: 12 },
    { text: 'f', from: 13, to: 16 }
  ]);
  assert.deepEqual(splitWords("'unclosed quote"), [{ text: 'unclosed quote', from: 0, to: 15 }]);
});

test('placeholders match what the kernel interpolates; {{escapes}} and JSON are not placeholders', () => {
  const body = 'Explain {topic} to {user.name} using {items[0]} and {items[-1]}; not {{topic}}, {"a": 1}, {1x}, { x }.';
  assert.deepEqual(
    findPlaceholders(body).map(p => [p.name, body.slice(p.from, p.to)]),
    [
      ['topic', '{topic}'],
      ['user.name', '{user.name}'],
      ['items[0]', '{items[0]}'],
      ['items[-1]', '{items[-1]}']
    ]
  );
  assert.deepEqual(findPlaceholders('{a}', 10), [{ name: 'a', from: 10, to: 13 }]);
});

test('the attention cell keeps the prompt and a local model, and refuses API models', () => {
  assert.deepEqual(attentionCellFor('%%gpt --temperature 0\nWhy is the sky blue?\n'), {
    source: '%%aigc_attention\nWhy is the sky blue?'
  });
  assert.deepEqual(attentionCellFor('%%gpt -m /models/my model\nHi'), { source: '%%aigc_attention -m /models/my\nHi' });
  assert.deepEqual(attentionCellFor("%%gpt -m '/models/my model'\nHi"), {
    source: "%%aigc_attention -m '/models/my model'\nHi"
  });
  assert.deepEqual(attentionCellFor('%%gpt --compare tiny,openai:gpt-4o\nHi'), { source: '%%aigc_attention -m tiny\nHi' });
  assert.match((attentionCellFor('%%gpt -m openai:gpt-4o\nHi') as { error: string }).error, /API/);
  assert.match((attentionCellFor('%%gpt --base-url http://127.0.0.1:8080/v1\nHi') as { error: string }).error, /API/);
  assert.match((attentionCellFor('%%gpt\n   \n') as { error: string }).error, /no prompt/);
  assert.match((attentionCellFor('print(1)') as { error: string }).error, /%%gpt cell/);
  assert.match((attentionCellFor('%%aigc_image\na fox') as { error: string }).error, /%%gpt cell/);
});

test('quoteWord leaves plain words alone and quotes the rest for shlex', () => {
  assert.equal(quoteWord('HuggingFaceTB/SmolLM2-135M-Instruct'), 'HuggingFaceTB/SmolLM2-135M-Instruct');
  assert.equal(quoteWord('my model'), "'my model'");
  assert.equal(quoteWord("it's"), `'it'"'"'s'`);
});
