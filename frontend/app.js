// Loaded on every page: clears this device's document caches before signing out.
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
