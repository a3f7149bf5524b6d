// The presence bar: one avatar per person in the document, from the awareness states.

const initialsOf = (name) => {
  const parts = String(name || '?').trim().split(/[\s._-]+/).filter(Boolean)
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || '?').slice(0, 2)
  return letters.toUpperCase()
}

/** People (deduplicated by user id, a user may have several tabs open), self first. */
export function peopleFrom (awareness) {
  const people = new Map()
  for (const [clientId, state] of awareness.getStates()) {
    const user = state && state.user
    if (!user || !user.name) continue
    const key = user.id != null ? `user:${user.id}` : `client:${clientId}`
    const self = clientId === awareness.clientID
    const known = people.get(key)
    if (!known) people.set(key, { ...user, self })
    else if (self) known.self = true
  }
  return [...people.values()].sort((a, b) => (b.self - a.self) || a.name.localeCompare(b.name))
}

export function renderPresence (container, awareness) {
  const people = peopleFrom(awareness)
  const items = people.map((person) => {
    const item = document.createElement('li')
    item.className = 'presence__person'
    item.dataset.name = person.name
    item.title = person.self ? `${person.name} (you)` : person.name
    const avatar = document.createElement('span')
    avatar.className = 'presence__avatar'
    avatar.style.backgroundColor = /^#[0-9a-f]{6}$/i.test(person.color) ? person.color : '#64748b'
    avatar.textContent = initialsOf(person.name)
    avatar.setAttribute('aria-hidden', 'true')
    const label = document.createElement('span')
    label.className = 'visually-hidden'
    label.textContent = item.title
    item.append(avatar, label)
    return item
  })
  container.replaceChildren(...items)
  container.setAttribute('aria-label', `${people.length} ${people.length === 1 ? 'person' : 'people'} in this document`)
}

export function bindPresence (container, awareness) {
  const render = () => renderPresence(container, awareness)
  awareness.on('change', render)
  render()
}
