// The formatting toolbar: buttons run editor commands and reflect the active marks/nodes.

const COMMANDS = {
  bold: (chain) => chain.toggleBold(),
  italic: (chain) => chain.toggleItalic(),
  strike: (chain) => chain.toggleStrike(),
  code: (chain) => chain.toggleCode(),
  bulletList: (chain) => chain.toggleBulletList(),
  orderedList: (chain) => chain.toggleOrderedList(),
  taskList: (chain) => chain.toggleTaskList(),
  blockquote: (chain) => chain.toggleBlockquote(),
  codeBlock: (chain) => chain.toggleCodeBlock(),
  horizontalRule: (chain) => chain.setHorizontalRule(),
  undo: (chain) => chain.undo(),
  redo: (chain) => chain.redo(),
}

const ACTIVE = {
  bold: (editor) => editor.isActive('bold'),
  italic: (editor) => editor.isActive('italic'),
  strike: (editor) => editor.isActive('strike'),
  code: (editor) => editor.isActive('code'),
  link: (editor) => editor.isActive('link'),
  bulletList: (editor) => editor.isActive('bulletList'),
  orderedList: (editor) => editor.isActive('orderedList'),
  taskList: (editor) => editor.isActive('taskList'),
  blockquote: (editor) => editor.isActive('blockquote'),
  codeBlock: (editor) => editor.isActive('codeBlock'),
}

function toggleLink (editor) {
  if (editor.isActive('link')) {
    editor.chain().focus().extendMarkRange('link').unsetLink().run()
    return
  }
  const href = window.prompt('Link address', 'https://')
  if (!href || href === 'https://') return
  // The link extension refuses unsafe protocols (javascript: and the like) itself.
  editor.chain().focus().extendMarkRange('link').setLink({ href }).run()
}

function currentBlock (editor) {
  for (const level of [1, 2, 3]) {
    if (editor.isActive('heading', { level })) return `h${level}`
  }
  return 'p'
}

export function bindToolbar (toolbar, editor) {
  toolbar.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-command]')
    if (!button) return
    const name = button.dataset.command
    if (name === 'link') return toggleLink(editor)
    const command = COMMANDS[name]
    if (command) command(editor.chain().focus()).run()
  })
  const blockSelect = toolbar.querySelector('select[data-command="block"]')
  blockSelect?.addEventListener('change', () => {
    const value = blockSelect.value
    const chain = editor.chain().focus()
    if (value === 'p') chain.setParagraph().run()
    else chain.setHeading({ level: Number(value.slice(1)) }).run()
  })
  const refresh = () => {
    for (const button of toolbar.querySelectorAll('button[data-command]')) {
      const active = ACTIVE[button.dataset.command]
      if (active) button.setAttribute('aria-pressed', String(active(editor)))
    }
    if (blockSelect) blockSelect.value = currentBlock(editor)
    const undo = toolbar.querySelector('[data-command="undo"]')
    const redo = toolbar.querySelector('[data-command="redo"]')
    if (undo) undo.disabled = !editor.can().undo()
    if (redo) redo.disabled = !editor.can().redo()
  }
  editor.on('transaction', refresh)
  refresh()
}
