/**
 * The live model-cache status: kernels publish it over comms named STATUS_TARGET (opened by
 * `%load_ext jupyter_aigc`); a status bar item shows it for the current notebook's kernel and opens a
 * panel with an Evict button per model. A kernel without the extension publishes nothing and shows nothing.
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { showPopup } from '@jupyterlab/statusbar';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { formatBytes, isKernelStatus, KernelStatus, shortName, statusLabel, statusTitle } from './statustext';

export const STATUS_TARGET = 'jupyter_aigc.status';

interface KernelEntry {
  status: KernelStatus | null;
  comms: Set<Kernel.IComm>;
}

/** The last status each watched kernel published, by kernel id. */
export class KernelStatuses {
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  /** The status of kernel ``id``, or null if it has not loaded the extension. */
  get(id: string | undefined): KernelStatus | null {
    return (id && this._entries.get(id)?.status) || null;
  }

  /** Listen to a kernel connection: comms the kernel opens, and the one it already has after a page reload. */
  watch(kernel: Kernel.IKernelConnection): void {
    if (this._watched.has(kernel)) {
      return;
    }
    this._watched.add(kernel);
    kernel.registerCommTarget(STATUS_TARGET, (comm, msg) => this._attach(kernel.id, comm, msg.content.data));
    kernel.statusChanged.connect((_, state) => {
      if (state === 'restarting' || state === 'autorestarting' || state === 'dead') {
        this._forget(kernel.id);
      }
    });
    kernel.disposed.connect(() => this._forget(kernel.id));
    void this._reconnect(kernel);
  }

  /** Ask the kernel to evict one model; it answers with a fresh status. */
  evict(id: string, key: string): void {
    const comm = this._entries.get(id)?.comms.values().next().value;
    comm?.send({ action: 'evict', key });
  }

  private async _reconnect(kernel: Kernel.IKernelConnection): Promise<void> {
    try {
      const reply = await kernel.requestCommInfo({ target_name: STATUS_TARGET });
      const content = reply.content;
      if (content.status !== 'ok' || Object.keys(content.comms).length === 0 || this._entries.has(kernel.id)) {
        return;
      }
      const comm = kernel.createComm(STATUS_TARGET);
      this._attach(kernel.id, comm, {});
      comm.open({});
    } catch {
      // The kernel went away before answering: there is nothing to show.
    }
  }

  private _attach(id: string, comm: Kernel.IComm, data: unknown): void {
    let entry = this._entries.get(id);
    if (!entry) {
      entry = { status: null, comms: new Set() };
      this._entries.set(id, entry);
    }
    entry.comms.add(comm);
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => this._update(id, msg.content.data);
    comm.onClose = () => {
      const current = this._entries.get(id);
      current?.comms.delete(comm);
      if (current && current.comms.size === 0) {
        this._forget(id);
      }
    };
    this._update(id, data);
  }

  private _update(id: string, data: unknown): void {
    const entry = this._entries.get(id);
    if (entry && isKernelStatus(data)) {
      entry.status = data;
      this._changed.emit(id);
    }
  }

  private _forget(id: string): void {
    if (this._entries.delete(id)) {
      this._changed.emit(id);
    }
  }

  private _entries = new Map<string, KernelEntry>();
  private _watched = new WeakSet<Kernel.IKernelConnection>();
  private _changed = new Signal<this, string>(this);
}

/** The table of cached models with an Evict button each, for one kernel; it follows live updates. */
export class CachePanel extends Widget {
  constructor(
    private readonly statuses: KernelStatuses,
    private readonly kernelId: () => string | undefined
  ) {
    super();
    this.addClass('jp-aigc-CachePanel');
    this.statuses.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const id = this.kernelId();
    const status = this.statuses.get(id);
    const node = this.node;
    node.replaceChildren();
    const heading = document.createElement('div');
    heading.className = 'jp-aigc-CachePanel-heading';
    heading.textContent = 'jupyter-aigc model cache';
    node.appendChild(heading);
    if (!status || !id) {
      node.appendChild(paragraph('This kernel has not loaded jupyter-aigc.'));
      return;
    }
    if (status.models.length === 0) {
      node.appendChild(paragraph('No model is loaded. Run a %%gpt cell to load one.'));
    } else {
      const table = document.createElement('table');
      table.appendChild(row('th', ['Model', 'Device', 'Dtype', 'Memory', 'Hits', '']));
      for (const model of status.models) {
        const tr = row('td', [shortName(model.name), model.device, model.dtype, formatBytes(model.bytes), String(model.hits)]);
        tr.title = model.key;
        tr.dataset.key = model.key;
        const button = document.createElement('button');
        button.className = 'jp-Button jp-mod-styled jp-mod-warn jp-aigc-evict';
        button.textContent = 'Evict';
        button.title = `Free the memory of ${model.name}`;
        button.onclick = () => {
          button.disabled = true;
          this.statuses.evict(id, model.key);
        };
        const cell = document.createElement('td');
        cell.appendChild(button);
        tr.appendChild(cell);
        table.appendChild(tr);
      }
      node.appendChild(table);
    }
    const used = status.models.reduce((sum, m) => sum + m.bytes, 0);
    const state = status.generating
      ? 'generating…'
      : status.tokens_per_second
        ? `idle · last answer ${status.tokens_per_second.toFixed(1)} tok/s`
        : 'idle';
    node.appendChild(paragraph(`${formatBytes(used)} of ${formatBytes(status.budget_bytes)} budget · ${state}`));
  }

  dispose(): void {
    this.statuses.changed.disconnect(this.render, this);
    super.dispose();
  }
}

/** The status bar item: hidden unless the current notebook's kernel has loaded jupyter-aigc. */
export class CacheStatusItem extends Widget {
  constructor(
    private readonly statuses: KernelStatuses,
    private readonly kernelId: () => string | undefined
  ) {
    super();
    this.addClass('jp-aigc-StatusItem');
    this._label.className = 'jp-aigc-StatusItem-label';
    this.node.appendChild(this._label);
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', () => this._openPanel());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._openPanel();
      }
    });
    this.statuses.changed.connect(this.refresh, this);
    this.refresh();
  }

  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  isActive(): boolean {
    return this.statuses.get(this.kernelId()) !== null;
  }

  /** Redraw for the current kernel (called on status updates and when the current notebook changes). */
  refresh(): void {
    const status = this.statuses.get(this.kernelId());
    this.toggleClass('jp-mod-generating', !!status?.generating);
    this._label.textContent = status ? statusLabel(status) : '';
    this.node.title = status ? statusTitle(status) : '';
    this._activeStateChanged.emit();
  }

  private _openPanel(): void {
    const body = new CachePanel(this.statuses, this.kernelId);
    showPopup({ body, anchor: this, align: 'right', hasDynamicSize: true });
  }

  private _label = document.createElement('span');
  private _activeStateChanged = new Signal<this, void>(this);
}

function paragraph(text: string): HTMLElement {
  const p = document.createElement('p');
  p.textContent = text;
  return p;
}

function row(tag: 'td' | 'th', cells: string[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  for (const text of cells) {
    const cell = document.createElement(tag);
    cell.textContent = text;
    tr.appendChild(cell);
  }
  return tr;
}
