import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { formatBytes, isKernelStatus, KernelStatus, shortName, statusLabel, statusTitle } from '../src/statustext';

const smol = {
  key: 'local:/cache/smollm2-ab12',
  name: 'SmolLM2-135M-Instruct',
  device: 'cpu',
  dtype: 'float32',
  bytes: 538_000_000,
  hits: 3
};

function status(extra: Partial<KernelStatus> = {}): KernelStatus {
  return { models: [smol], budget_bytes: 8 * 2 ** 30, generating: false, tokens_per_second: null, last_model: null, ...extra };
}

test('bytes are shown in binary units with at most three significant digits', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(538_000_000), '513 MB');
  assert.equal(formatBytes(12.5 * 2 ** 30), '12.5 GB');
});

test('model names are shortened to their last path part', () => {
  assert.equal(shortName('/home/me/models/tiny-llama/'), 'tiny-llama');
  assert.equal(shortName('HuggingFaceTB/SmolLM2-135M-Instruct'), 'SmolLM2-135M-Instruct');
  assert.equal(shortName('gpt-4o-mini'), 'gpt-4o-mini');
});

test('the label names one model with its device and memory, then the generation state', () => {
  assert.equal(statusLabel(status()), 'SmolLM2-135M-Instruct · cpu · 513 MB');
  assert.equal(statusLabel(status({ tokens_per_second: 13.42 })), 'SmolLM2-135M-Instruct · cpu · 513 MB · 13.4 tok/s');
  assert.equal(statusLabel(status({ generating: true, tokens_per_second: 13.4 })), 'SmolLM2-135M-Instruct · cpu · 513 MB · generating…');
  assert.equal(statusLabel(status({ models: [] })), 'no model loaded');
});

test('several models are summed, with every device they are on', () => {
  const gpu = { ...smol, key: 'b', name: 'other', device: 'cuda', bytes: 2 ** 30 };
  assert.equal(statusLabel(status({ models: [smol, gpu] })), '2 models · cpu+cuda · 1.5 GB');
});

test('the hover text lists every model and the budget', () => {
  const title = statusTitle(status({ tokens_per_second: 12, last_model: 'SmolLM2-135M-Instruct' }));
  assert.match(title, /SmolLM2-135M-Instruct — cpu, float32, 513 MB, 3 hits/);
  assert.match(title, /Cache: 513 MB of 8 GB/);
  assert.match(title, /Last answer: 12\.0 tok\/s from SmolLM2-135M-Instruct/);
});

test('only messages shaped like a status are accepted', () => {
  assert.equal(isKernelStatus(status()), true);
  assert.equal(isKernelStatus({}), false);
  assert.equal(isKernelStatus(null), false);
  assert.equal(isKernelStatus({ models: 'x', generating: false, budget_bytes: 1 }), false);
});
