/** jupyter-aigc in JupyterLab: prompt-cell highlighting, the model-cache status item, insert commands. */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { EditorExtensionRegistry, IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { addCommands, CommandIDs } from './commands';
import { promptCellExtension } from './editor';
import { CacheStatusItem, KernelStatuses } from './status';

const editorPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-aigc:editor',
  description: 'Highlights the body of %%gpt, %%aigc_image and %%aigc_attention cells as Markdown.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: async (app: JupyterFrontEnd, extensions: IEditorExtensionRegistry, languages: IEditorLanguageRegistry) => {
    const markdown = await languages.getLanguage('markdown');
    if (!markdown?.support) {
      console.warn('jupyter-aigc: JupyterLab has no Markdown language; prompt cells keep Python highlighting.');
      return;
    }
    const language = markdown.support.language;
    extensions.addExtension({
      name: 'jupyter-aigc:prompt-cells',
      // Code cells only: a Markdown cell is Markdown already, and file editors hold real Python.
      factory: ({ inline, model }) =>
        inline && (model as { type?: string }).type === 'code'
          ? EditorExtensionRegistry.createImmutableExtension(promptCellExtension(language, model.sharedModel.getSource()))
          : null
    });
  }
};

const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-aigc:status',
  description: 'Shows the models the current kernel holds, and whether it is generating, in the status bar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, statusBar: IStatusBar | null) => {
    const statuses = new KernelStatuses();
    const kernelId = () => tracker.currentWidget?.sessionContext.session?.kernel?.id;
    const item = statusBar ? new CacheStatusItem(statuses, kernelId) : null;
    tracker.widgetAdded.connect((_, panel) => {
      const follow = () => {
        const kernel = panel.sessionContext.session?.kernel;
        if (kernel) {
          statuses.watch(kernel);
        }
        item?.refresh();
      };
      panel.sessionContext.kernelChanged.connect(follow);
      follow();
    });
    if (!statusBar || !item) {
      return;
    }
    tracker.currentChanged.connect(() => item.refresh());
    statusBar.registerStatusItem('jupyter-aigc:status', {
      item,
      align: 'left',
      rank: 4,
      isActive: () => item.isActive(),
      activeStateChanged: item.activeStateChanged
    });
  }
};

const commandsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-aigc:commands',
  description: 'Commands to insert %%gpt and %%aigc_image cells and to open the attention view of a prompt.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    addCommands(app, tracker);
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'jupyter-aigc' });
    }
  }
};

export default [editorPlugin, statusPlugin, commandsPlugin];
