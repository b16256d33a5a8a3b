/** What the kernel publishes about its model cache, and how the status bar words it. Pure, unit-tested. */

export interface CachedModel {
  key: string;
  name: string;
  device: string;
  dtype: string;
  bytes: number;
  hits: number;
}

export interface KernelStatus {
  models: CachedModel[];
  budget_bytes: number;
  generating: boolean;
  tokens_per_second: number | null;
  last_model: string | null;
}

/** 1536 → '1.5 KB', 565_000_000 → '539 MB' (powers of 1024, three significant digits at most). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${Number(value.toFixed(digits))} ${units[unit]}`;
}

/** The short name of a model: the last path part of a folder or file, the id of a Hub model. */
export function shortName(name: string): string {
  const parts = name.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] || name;
}

/** The status bar text, e.g. 'SmolLM2-135M-Instruct · cpu · 539 MB · 13.4 tok/s'. */
export function statusLabel(status: KernelStatus): string {
  const parts: string[] = [];
  const models = status.models;
  if (models.length === 0) {
    parts.push('no model loaded');
  } else if (models.length === 1) {
    parts.push(shortName(models[0].name), models[0].device, formatBytes(models[0].bytes));
  } else {
    const devices = [...new Set(models.map(m => m.device))].join('+');
    const total = models.reduce((sum, m) => sum + m.bytes, 0);
    parts.push(`${models.length} models`, devices, formatBytes(total));
  }
  if (status.generating) {
    parts.push('generating…');
  } else if (status.tokens_per_second) {
    parts.push(`${status.tokens_per_second.toFixed(1)} tok/s`);
  }
  return parts.join(' · ');
}

/** The hover text of the status item: every model with device, dtype and memory, and the budget. */
export function statusTitle(status: KernelStatus): string {
  const lines = status.models.map(
    m => `${m.name} — ${m.device}, ${m.dtype}, ${formatBytes(m.bytes)}, ${m.hits} hit${m.hits === 1 ? '' : 's'}`
  );
  const used = status.models.reduce((sum, m) => sum + m.bytes, 0);
  lines.push(`Cache: ${formatBytes(used)} of ${formatBytes(status.budget_bytes)}`);
  if (status.last_model && status.tokens_per_second) {
    lines.push(`Last answer: ${status.tokens_per_second.toFixed(1)} tok/s from ${status.last_model}`);
  }
  lines.push('Click for the model cache panel.');
  return lines.join('\n');
}

/** True if ``data`` has the shape the kernel publishes (messages from other versions are ignored). */
export function isKernelStatus(data: unknown): data is KernelStatus {
  const d = data as KernelStatus;
  return (
    typeof d === 'object' &&
    d !== null &&
    Array.isArray(d.models) &&
    typeof d.generating === 'boolean' &&
    typeof d.budget_bytes === 'number'
  );
}
