/** Commands: insert a %%gpt or %%aigc_image cell, open the attention view of a %%gpt cell's prompt. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, Notebook, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { attentionCellFor } from './magicline';

export const CommandIDs = {
  insertGpt: 'jupyter-aigc:insert-gpt-cell',
  insertImage: 'jupyter-aigc:insert-image-cell',
  openAttention: 'jupyter-aigc:open-attention'
};

const svg = (body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">${body}</g></svg>`;

export const gptIcon = new LabIcon({
  name: 'jupyter-aigc:gpt',
  svgstr: svg(
    '<path d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm0 2v10h2v2l2.5-2H20V5z"/>' +
      '<path d="M12 6.5l1 2.5 2.5 1-2.5 1-1 2.5-1-2.5-2.5-1 2.5-1z"/>'
  )
});

export const imageIcon = new LabIcon({
  name: 'jupyter-aigc:image',
  svgstr: svg(
    '<path d="M3 4h18a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v10.5l4.5-5 4 4.5 2.5-2.5 5 4.5V6z"/>' +
      '<circle cx="16" cy="9" r="1.8"/>'
  )
});

export const attentionIcon = new LabIcon({
  name: 'jupyter-aigc:attention',
  svgstr: svg(
    [0, 1, 2]
      .flatMap(r => [0, 1, 2].map(c => `<rect x="${3 + c * 6.3}" y="${3 + r * 6.3}" width="5.4" height="5.4" opacity="${0.35 + 0.3 * ((r + c) % 3)}"/>`))
      .join('')
  )
});

/** Put ``source`` in a new code cell below the active one (or in the active cell if it is an empty code cell). */
async function insertCell(notebook: Notebook, source: string): Promise<void> {
  const active = notebook.activeCell;
  if (!active || active.model.type !== 'code' || active.model.sharedModel.getSource().trim() !== '') {
    NotebookActions.insertBelow(notebook);
  }
  NotebookActions.changeCellType(notebook, 'code');
  const cell = notebook.activeCell;
  if (!cell) {
    return;
  }
  cell.model.sharedModel.setSource(source);
  notebook.mode = 'edit';
  await cell.ready;
  const lines = source.split('\n');
  cell.editor?.setCursorPosition({ line: lines.length - 1, column: lines[lines.length - 1].length });
  cell.editor?.focus();
}

async function openAttention(panel: NotebookPanel): Promise<void> {
  const notebook = panel.content;
  const cell = notebook.activeCell;
  const made = attentionCellFor(cell?.model.type === 'code' ? cell.model.sharedModel.getSource() : '');
  if ('error' in made) {
    Notification.warning(made.error, { autoClose: 6000 });
    return;
  }
  NotebookActions.insertBelow(notebook);
  notebook.activeCell!.model.sharedModel.setSource(made.source);
  await NotebookActions.run(notebook, panel.sessionContext);
}

export function addCommands(app: JupyterFrontEnd, tracker: INotebookTracker): void {
  const current = () => tracker.currentWidget!;
  const commands = [
    {
      id: CommandIDs.insertGpt,
      label: 'Insert %%gpt cell',
      caption: 'Insert a %%gpt prompt cell below (G P)',
      icon: gptIcon,
      execute: () => insertCell(current().content, '%%gpt\n')
    },
    {
      id: CommandIDs.insertImage,
      label: 'Insert %%aigc_image cell',
      caption: 'Insert a %%aigc_image prompt cell below (G I)',
      icon: imageIcon,
      execute: () => insertCell(current().content, '%%aigc_image\n')
    },
    {
      id: CommandIDs.openAttention,
      label: "Open attention view for this cell's prompt",
      caption: "Show the attention maps of the active %%gpt cell's prompt in a new cell below (G A)",
      icon: attentionIcon,
      execute: () => openAttention(current())
    }
  ];
  for (const { id, label, caption, icon, execute } of commands) {
    app.commands.addCommand(id, {
      label: (args: { toolbar?: boolean }) => (args.toolbar ? '' : label),
      caption,
      icon,
      isEnabled: () => tracker.currentWidget !== null && tracker.currentWidget === app.shell.currentWidget,
      execute
    });
  }
}
