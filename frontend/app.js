// Loaded on every page: clears this device's document caches before signing out, resets
// forms after a successful htmx submit (hx-on would need 'unsafe-eval' under the CSP), and
// shows the server's explanation of a 429.
import { clearDocumentCaches } from './offline-cache.js'

document.addEventListener('submit', (event) => {
  const form = event.target
  if (!(form instanceof HTMLFormElement) || !form.matches('[data-sign-out]')) return
  if (form.dataset.cleared === 'true') return
  event.preventDefault()
  clearDocumentCaches().finally(() => {
    form.dataset.cleared = 'true'
    form.submit()
  })
})

document.addEventListener('htmx:afterRequest', (event) => {
  const form = event.detail.elt
  if (!event.detail.successful || !(form instanceof HTMLFormElement)) return
  if (!form.hasAttribute('data-reset-after')) return
  form.reset()
  const other = form.dataset.resetAfter && document.querySelector(form.dataset.resetAfter)
  if (other instanceof HTMLFormElement) other.reset()
})

// A 429 carries a fragment that says what was refused and when to try again (too many new
// documents, say); htmx swaps no 4xx response by default.
document.addEventListener('htmx:beforeSwap', (event) => {
  if (event.detail.xhr.status !== 429) return
  event.detail.shouldSwap = true
  event.detail.isError = false
})
