// Builds static/editor/ (the editor and the every-page script) and vendors htmx into
// static/vendor/. The output must be byte-for-byte reproducible: CI rebuilds and fails on
// any difference with the committed files (scripts/check-bundle).
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs'
import { build } from 'esbuild'

const HTMX_VERSION = JSON.parse(readFileSync('node_modules/htmx.org/package.json', 'utf8')).version

const result = await build({
  entryPoints: ['frontend/editor.js', 'frontend/app.js'],
  outdir: 'static/editor',
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  charset: 'utf8',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
})

// Two copies of yjs (or lib0) in one page break `instanceof` checks and make Yjs warn
// "Yjs was already imported"; keep exactly one of each.
for (const pkg of ['yjs', 'lib0', 'prosemirror-model', 'prosemirror-view']) {
  const roots = new Set(
    Object.keys(result.metafile.inputs)
      .map((path) => path.match(new RegExp(`^(.*node_modules/${pkg})/`))?.[1])
      .filter(Boolean),
  )
  if (roots.size > 1) {
    console.error(`More than one copy of ${pkg} in the bundle: ${[...roots].join(', ')}`)
    process.exit(1)
  }
}

mkdirSync('static/vendor', { recursive: true })
copyFileSync('node_modules/htmx.org/dist/htmx.min.js', `static/vendor/htmx-${HTMX_VERSION}.min.js`)

for (const [path, output] of Object.entries(result.metafile.outputs)) {
  console.log(`${path} ${output.bytes} bytes`)
}
