// Big pastes and drops in several Yjs updates. ProseMirror applies a paste as one
// transaction, y-tiptap turns that into one Yjs update and y-websocket sends it as one
// frame; the server closes the socket on a frame over COLLAB_MAX_MESSAGE_BYTES (1 MiB,
// code 4413), so a multi-megabyte paste could never be saved, and even below the cap one
// multi-megabyte update holds the server up. A paste or drop whose content is estimated
// above `chunkBytes` of Yjs update goes to Yjs here as a run of updates (so of frames),
// each adding about `chunkBytes` at most, all in the same tick.
//
// The document is exactly the one the ordinary paste gives, at the edges too: the
// ordinary transaction is built and applied to a copy of the state first (with what
// plugins append to it, e.g. paste rules), the parts are cut from that target, and the
// editor applies that same transaction in the end. Before it, Yjs gets the target minus
// everything after the first cut (the first pasted block already joined to the text
// before the cursor, the text after the cursor already ending what will be the last
// pasted block), then the target minus everything after the second cut, and so on: open
// slices join the surrounding text as in an unsplit paste. What differs is only on the
// way: for an instant other people see the paste grow.
//
// Undo: each part is its own undo-stack item (so that redo, too, sends one frame per
// part), and undo/redo take back or repeat all the items of one paste at once.
import { Extension } from '@tiptap/core'
import { Slice } from '@tiptap/pm/model'
import { NodeSelection, Plugin, PluginKey, TextSelection } from '@tiptap/pm/state'
import { dropPoint, Mapping, ReplaceStep, Transform } from '@tiptap/pm/transform'
import { getRelativeSelection, updateYFragment, ySyncPluginKey, yUndoPluginKey } from '@tiptap/y-tiptap'

export const chunkedPasteKey = new PluginKey('chunkedPaste')

// Estimated Yjs (v1 update) bytes, calibrated against y-tiptap's encoding of pasted
// content (estimate/actual, erring high: lines of text 0.98, formatted lines 0.8, lists
// 0.8, empty paragraphs 0.8, one huge text 1.0): text costs its UTF-8 length plus a run
// overhead, a mark two format items (its name at both ends, its attributes at the start),
// a node an item with its type name, and each attribute an item with its key and value.
const TEXT_RUN = 20
const FORMAT = 14
const NODE = 14
const ATTR = 16

// Plugins that append to transactions already did so on the copy: not twice.
const QUIET = { preventAutolink: true, skipTrailingNode: true, preventClearDocument: true }

function utf8Length (text) {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) bytes += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1
  }
  return bytes
}

function nodeOverhead (node) {
  let cost = NODE + node.type.name.length
  for (const [key, value] of Object.entries(node.attrs)) {
    if (value != null) cost += ATTR + key.length + JSON.stringify(value).length
  }
  return cost
}

function runOverhead (node) {
  let cost = TEXT_RUN
  for (const mark of node.marks) {
    cost += 2 * (FORMAT + mark.type.name.length) + JSON.stringify(mark.attrs).length
  }
  return cost
}

function nodeCost (node) {
  if (node.isText) return runOverhead(node) + utf8Length(node.text)
  let cost = nodeOverhead(node)
  node.forEach((child) => { cost += nodeCost(child) })
  return cost
}

export function estimateBytes (fragment) {
  let cost = 0
  fragment.forEach((node) => { cost += nodeCost(node) })
  return cost
}

/**
 * Positions in `doc` between `from` and `to` (the new content) where the content is cut
 * so that each part costs at most about `budget`: before a node that does not fit, and
 * inside a node (down to its text) that does not fit on its own.
 */
function planCuts (doc, from, to, budget) {
  const cuts = []
  let used = 0
  let placed = false // content (not only the openings of nodes being split) since the last cut
  const cut = (pos) => {
    if (!placed || pos <= from || pos >= to || pos <= (cuts[cuts.length - 1] ?? -1)) return
    cuts.push(pos)
    used = 0
    placed = false
  }
  const addText = (node, pos) => {
    const a = Math.max(from, pos) - pos
    const b = Math.min(to, pos + node.nodeSize) - pos
    const text = node.text.slice(a, b)
    const overhead = runOverhead(node)
    let cost = overhead + utf8Length(text)
    if (used + cost > budget) cut(pos + a)
    let start = 0
    while (used + cost > budget && start < text.length) {
      // As many characters as fit, never separating a surrogate pair.
      // (A mark as big as the budget, such as a huge link, is not cut into crumbs.)
      let end = start
      let bytes = 0
      const room = Math.max(budget - used - overhead, budget / 2)
      while (end < text.length) {
        const step = utf8Length(text[end])
        if (bytes + step > room && end > start) break
        bytes += step
        end++
      }
      if (end < text.length && /[\udc00-\udfff]/.test(text[end])) end++
      if (end >= text.length) break
      used += overhead + bytes
      placed = true
      cut(pos + a + end)
      cost = overhead + utf8Length(text.slice(end))
      start = end
    }
    used += cost
    placed = true
  }
  doc.nodesBetween(from, to, (node, pos) => {
    if (node.isText) {
      addText(node, pos)
      return false
    }
    if (pos < from || pos + node.nodeSize > to) return true // around the new content
    const cost = nodeCost(node)
    if (used + cost > budget) cut(pos)
    if (used + cost <= budget || node.isLeaf) {
      used += cost
      placed = true
      return false
    }
    used += nodeOverhead(node) // too big on its own: split inside it
    return true
  })
  return cuts
}

/**
 * `doc` with everything strictly between `cut` and `tail` deleted, except the ancestors
 * of both positions (they stay, emptied on that side). Null when that leaves a node with
 * invalid content (e.g. a list without items).
 */
function truncate (doc, cut, tail) {
  const tr = new Transform(doc)
  const $cut = doc.resolve(cut)
  const $tail = doc.resolve(tail)
  const shared = $cut.sharedDepth(tail)
  const ranges = [] // right to left, so that earlier positions stay valid
  for (let d = $tail.depth; d > shared; d--) {
    ranges.push([$tail.start(d), d === $tail.depth ? tail : $tail.before(d + 1)])
  }
  ranges.push([
    $cut.depth > shared ? $cut.after(shared + 1) : cut,
    $tail.depth > shared ? $tail.before(shared + 1) : tail,
  ])
  for (let d = shared + 1; d <= $cut.depth; d++) {
    ranges.push([d === $cut.depth ? cut : $cut.after(d + 1), $cut.end(d)])
  }
  for (const [from, to] of ranges) {
    if (to > from && tr.maybeStep(new ReplaceStep(from, to, Slice.empty)).failed) return null
  }
  return tr
}

const GROUP = Symbol('chunked paste') // stack-item meta: the paste an item belongs to
const GROUPED = Symbol('grouped undo')

function topOf (stack) {
  return stack[stack.length - 1]
}

// A stack item keeps the selection to restore (y-tiptap's relative selection). Its
// absolute positions are dropped for the items of a split paste: y-tiptap 3.0.9 resolves
// them in the document as it was before each undo or redo step, which throws when that
// is shorter (the part-way documents of a paste over a selection are), and the editor
// then misses the step. The relative positions alone restore the selection.
function keepRelativeSelection (item) {
  for (const [key, value] of item.meta) {
    if (value && typeof value === 'object' && 'absAnchor' in value) {
      item.meta.set(key, { ...value, absAnchor: null, absHead: null })
    }
  }
}

function tag (undoManager, group) {
  const item = undoManager && topOf(undoManager.undoStack)
  if (!item) return
  item.meta.set(GROUP, group)
  keepRelativeSelection(item)
}

/** Undo and redo take all the stack items of one split paste at once. */
function groupUndo (undoManager) {
  if (undoManager[GROUPED]) return
  undoManager[GROUPED] = true
  const run = (pop, from, to) => {
    const group = topOf(from)?.meta.get(GROUP)
    let result = null
    do {
      const before = to.length
      const popped = pop()
      if (!popped) break
      result ??= popped
      if (group && to.length > before) {
        topOf(to).meta.set(GROUP, group)
        keepRelativeSelection(topOf(to))
      }
    } while (group && topOf(from)?.meta.get(GROUP) === group)
    return result
  }
  const undo = undoManager.undo.bind(undoManager)
  const redo = undoManager.redo.bind(undoManager)
  undoManager.undo = () => run(undo, undoManager.undoStack, undoManager.redoStack)
  undoManager.redo = () => run(redo, undoManager.redoStack, undoManager.undoStack)
}

/**
 * Apply `full` (the transaction the ordinary paste or drop would dispatch) with its Yjs
 * update split in parts. Returns the number of parts, or 0, having changed nothing, when
 * it need not or cannot be split.
 */
function dispatchInChunks (view, full, budget, meta) {
  const state = view.state
  const binding = ySyncPluginKey.getState(state)?.binding
  if (!binding) return 0
  const { state: target, transactions } = state.applyTransaction(full)
  if (target === state) return 0
  const start = state.doc.content.findDiffStart(target.doc.content)
  if (start == null) return 0
  const end = Math.max(start, state.doc.content.findDiffEnd(target.doc.content)?.b ?? start)
  const cuts = planCuts(target.doc, start, end, budget)

  // The documents on the way, each the next one with the part after its cut taken out
  // (last cut first, so that the earlier cut positions still hold).
  const docs = []
  let doc = target.doc
  let tail = end
  for (let i = cuts.length - 1; i >= 0; i--) {
    const tr = truncate(doc, cuts[i], tail)
    if (!tr) continue
    docs.unshift(tr.doc)
    doc = tr.doc
    tail = tr.mapping.map(tail, 1)
  }
  if (!docs.length) return 0

  // Yjs gets the documents on the way as y-tiptap's sync plugin gives it any document
  // (its own mutex keeps the changes from coming back into the editor); the editor itself
  // then takes the whole paste in one transaction, whose sync sends the last part. One
  // editor transaction, not one per part, keeps the page's work close to an ordinary
  // paste's: y-tiptap compares every block of a document whose blocks moved.
  const sync = (doc) => {
    let synced = false
    binding.mux(() => {
      const update = () => updateYFragment(binding.doc, binding.type, doc, binding)
      binding.doc.transact(update, ySyncPluginKey)
      synced = true
    })
    return synced
  }
  const undoManager = yUndoPluginKey.getState(state)?.undoManager
  const group = {}
  // What undo restores: the selection before the paste (y-tiptap would store the one
  // before the previous editor transaction, the paste's not having happened yet).
  const selectionBefore = getRelativeSelection(binding, state)
  for (const [index, doc] of docs.entries()) {
    if (index > 0) undoManager?.stopCapturing()
    const items = undoManager?.undoStack.length
    // (The mutex is free in a paste or drop handler; if it were not, no part was sent.)
    if (!sync(doc) && index === 0) return 0
    if (index === 0 && undoManager?.undoStack.length > items) {
      topOf(undoManager.undoStack).meta.set(binding, selectionBefore)
    }
    tag(undoManager, group)
  }

  const tr = state.tr
  for (const applied of transactions) for (const step of applied.steps) tr.step(step)
  tr.setSelection(target.selection.map(tr.doc, new Mapping()))
  if (target.storedMarks) tr.setStoredMarks(target.storedMarks)
  if (full.scrolledIntoView) tr.scrollIntoView()
  for (const [key, value] of Object.entries({ ...meta, ...QUIET })) tr.setMeta(key, value)
  tr.setMeta(chunkedPasteKey, docs.length + 1)
  undoManager?.stopCapturing()
  view.dispatch(tr)
  tag(undoManager, group)
  if (view.state.doc !== tr.doc) {
    // A plugin refused the paste after all (or appended to it): Yjs follows the editor.
    sync(view.state.doc)
  }
  return docs.length + 1
}

function sliceSingleNode (slice) {
  return slice.openStart === 0 && slice.openEnd === 0 && slice.content.childCount === 1
    ? slice.content.firstChild
    : null
}

export const ChunkedPaste = Extension.create({
  name: 'chunkedPaste',
  // Low: other handlePaste/handleDrop props (a link pasted over a selection) go first.
  priority: 10,

  addOptions () {
    // Estimated Yjs bytes per chunk; also the size above which a paste is split.
    return { chunkBytes: 256 * 1024 }
  },

  addStorage () {
    // `chunks`: how many transactions the last split paste or drop took (for the tests).
    return { chunkBytes: this.options.chunkBytes, chunks: 0 }
  },

  addProseMirrorPlugins () {
    const storage = this.storage
    const tooBig = (slice) => estimateBytes(slice.content) > storage.chunkBytes
    const split = (view, tr, meta) => {
      const chunks = dispatchInChunks(view, tr, storage.chunkBytes, meta)
      if (chunks) storage.chunks = chunks
      return chunks > 0
    }
    return [
      new Plugin({
        key: chunkedPasteKey,
        view (view) {
          const undoManager = yUndoPluginKey.getState(view.state)?.undoManager
          if (undoManager) groupUndo(undoManager)
          return {}
        },
        props: {
          // As prosemirror-view's doPaste, in chunks.
          handlePaste (view, _event, slice) {
            if (!slice.size || !tooBig(slice)) return false
            const single = sliceSingleNode(slice)
            const plain = Boolean(view.input?.shiftKey && view.input.lastKeyCode !== 45)
            const tr = single
              ? view.state.tr.replaceSelectionWith(single, plain)
              : view.state.tr.replaceSelection(slice)
            tr.scrollIntoView().setMeta('paste', true).setMeta('uiEvent', 'paste')
            return split(view, tr, { paste: true })
          },
          // As prosemirror-view's handleDrop, in chunks.
          handleDrop (view, event, slice, moved) {
            if (!slice.size || !tooBig(slice)) return false
            view.focus() // first: focusing dispatches a transaction of its own (FocusEvents)
            const at = view.posAtCoords({ left: event.clientX, top: event.clientY })
            if (!at) return false
            const insertAt = dropPoint(view.state.doc, at.pos, slice) ?? at.pos
            const tr = view.state.tr
            if (moved) {
              const node = view.dragging?.node
              if (node) node.replace(tr)
              else tr.deleteSelection()
            }
            const pos = tr.mapping.map(insertAt)
            const single = sliceSingleNode(slice)
            const before = tr.doc
            if (single) tr.replaceRangeWith(pos, pos, single)
            else tr.replaceRange(pos, pos, slice)
            if (tr.doc.eq(before)) return false
            const $pos = tr.doc.resolve(pos)
            if (single && NodeSelection.isSelectable(single) && $pos.nodeAfter?.sameMarkup(single)) {
              tr.setSelection(new NodeSelection($pos))
            } else {
              let end = tr.mapping.map(insertAt)
              tr.mapping.maps[tr.mapping.maps.length - 1].forEach((_f, _t, _nf, newTo) => { end = newTo })
              const $end = tr.doc.resolve(end)
              tr.setSelection(
                view.someProp('createSelectionBetween', (f) => f(view, $pos, $end)) ||
                  TextSelection.between($pos, $end),
              )
            }
            tr.setMeta('uiEvent', 'drop')
            return split(view, tr, {})
          },
        },
      }),
    ]
  },
})
