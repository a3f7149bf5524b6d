// The load generator: `node loadgen.mjs '<json config>'` runs one scenario against one
// server (or two of ours) and prints one JSON object on stdout. The orchestrator
// (bench/run.py) starts and stops the servers; this process only drives real Yjs clients.
//
// Latency is measured inside this one process (one clock): a writer records
// performance.now() when it makes an edit; every other client decodes the structs of each
// update it receives and looks the send time up by (client id, clock). Every edit inserts
// exactly one character, so a writer's clock is its edit number.
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import * as Y from 'yjs'
import { connect, rawConnect } from './clients.mjs'

process.setMaxListeners(0)
const config = JSON.parse(process.argv[2])
const { servers, cookie, params } = config
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const log = (...args) => process.stderr.write(`[loadgen ${config.scenario} ${servers[0].kind} ${(performance.now() / 1000).toFixed(1)}s] ${args.join(" ")}\n`)

// ---------------------------------------------------------------- measurement helpers

export function summarize (samples) {
  if (!samples.length) return { n: 0 }
  const sorted = Float64Array.from(samples).sort()
  const at = q => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  const round = x => Math.round(x * 1000) / 1000
  return { n: sorted.length, p50: round(at(0.5)), p95: round(at(0.95)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]) }
}

const TICK = 100 // clock ticks per second in /proc/<pid>/stat on Linux
function procSample (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const cpu = (Number(fields[11]) + Number(fields[12])) / TICK
    const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024
    return { cpu, rss }
  } catch { return { cpu: NaN, rss: NaN } }
}
const pids = () => servers.map(s => s.pid)
const serverCpu = () => pids().reduce((sum, pid) => sum + procSample(pid).cpu, 0)
const serverRss = () => pids().reduce((sum, pid) => sum + procSample(pid).rss, 0)

/** Wall time, CPU of this generator and of the server(s), and loop delay over a phase. */
function meter () {
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  const t0 = performance.now()
  const own0 = process.cpuUsage()
  const srv0 = serverCpu()
  return () => {
    loop.disable()
    const wall = (performance.now() - t0) / 1000
    const own = process.cpuUsage(own0)
    return {
      wall_s: Math.round(wall * 100) / 100,
      gen_cpu_frac: Math.round(((own.user + own.system) / 1e6 / wall) * 100) / 100,
      gen_loop_p99_ms: Math.round(loop.percentile(99) / 1e4) / 100,
      server_cpu_s: Math.round((serverCpu() - srv0) * 100) / 100
    }
  }
}

async function inBatches (items, size, fn) {
  const out = []
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)))
  return out
}

// ---------------------------------------------------------------- typing load engine

/**
 * Rooms of clients, the first `writers` of each room typing. Returns a controller whose
 * `phase(rate, seconds)` types at `rate` edits/s in total (spread over all writers) and
 * reports latency of every delivery to every other client of the room.
 */
async function typingLoad (rooms, { writersPerRoom, serverOf = () => servers[0] }) {
  const sendTimes = new Map() // writer client id -> Float64Array of send times by clock
  const phaseOf = new Map() // writer client id -> Int16Array phase index by clock
  const cap = params.max_edits_per_writer ?? 20000
  let phaseIndex = -1
  let samples = []
  let timeline = []
  let sameSamples = []
  let crossSamples = []
  let received = []
  const clients = []
  let writerById = new Map()
  let n = 0
  const specs = rooms.flatMap((room, r) => Array.from({ length: room.clients }, (_, i) => ({ room: room.id, r, i, k: n++ })))
  const open = async spec => {
    const server = serverOf(spec.k, spec)
    const client = await connect(server, spec.room, { cookie })
    return { ...spec, ...client, server, writer: spec.i < writersPerRoom }
  }
  // Each room's first client alone, then the rest: pycrdt-websocket 0.16.5 stalls about
  // 33 s when several clients open a room that is not started yet.
  const connected = [
    ...await inBatches(specs.filter(s => s.i === 0), 50, open),
    ...await inBatches(specs.filter(s => s.i > 0), 50, open)
  ]
  for (const client of connected) {
    const { doc } = client
    if (client.writer) {
      sendTimes.set(doc.clientID, new Float64Array(cap))
      phaseOf.set(doc.clientID, new Int16Array(cap).fill(-1))
    }
    const seen = new Map()
    doc.on('update', update => {
      const t = performance.now()
      for (const struct of Y.decodeUpdate(update).structs) {
        const times = sendTimes.get(struct.id.client)
        if (!times || struct.id.client === doc.clientID) continue
        let bits = seen.get(struct.id.client)
        if (!bits) seen.set(struct.id.client, bits = new Uint8Array(cap))
        const writerClient = writerById.get(struct.id.client)
        for (let clock = struct.id.clock; clock < struct.id.clock + struct.length && clock < cap; clock++) {
          if (bits[clock]) continue
          bits[clock] = 1
          const p = phaseOf.get(struct.id.client)[clock]
          if (p !== phaseIndex || p < 0) continue
          const latency = t - times[clock]
          samples.push(latency)
          timeline.push(t, latency)
          received[p]++
          if (writerClient && writerClient.server === client.server) sameSamples.push(latency)
          else crossSamples.push(latency)
        }
      }
    })
    clients.push(client)
  }
  writerById = new Map(clients.filter(c => c.writer).map(c => [c.doc.clientID, c]))
  const writers = clients.filter(c => c.writer)
  const roomSize = new Map()
  for (const c of clients) roomSize.set(c.room, (roomSize.get(c.room) ?? 0) + 1)

  let capped = 0 // edits not made because their writer used up its `cap`
  const edit = writer => {
    const text = writer.doc.getText('bench')
    const clock = Y.getState(writer.doc.store, writer.doc.clientID)
    if (clock >= cap) { capped++; return 0 }
    sendTimes.get(writer.doc.clientID)[clock] = performance.now()
    phaseOf.get(writer.doc.clientID)[clock] = phaseIndex
    text.insert(Math.floor(Math.random() * (text.length + 1)), 'x')
    return roomSize.get(writer.room) - 1
  }

  async function phase (rate, seconds, { drainMs = 2000, fixedDrain = false, onTick } = {}) {
    phaseIndex++
    samples = []; timeline = []; sameSamples = []; crossSamples = []
    received[phaseIndex] = 0
    let expected = 0
    let sent = 0
    capped = 0
    const stop = meter()
    const t0 = performance.now()
    const total = Math.round(rate * seconds)
    // Drift-free schedule: at each tick send every edit that is due by now, round robin.
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate))
      while (sent < due) { expected += edit(writers[sent % writers.length]); sent++ }
      if (onTick) onTick(performance.now() - t0)
      await sleep(Math.max(1, Math.min(10, 1000 / rate)))
    }
    const sendEnd = performance.now()
    const deadline = sendEnd + drainMs
    while (received[phaseIndex] < expected && performance.now() < deadline) await sleep(20)
    const usage = stop()
    // Generators that share a server keep their steps in step: each lasts the same.
    if (fixedDrain) await sleep(Math.max(0, deadline - performance.now()))
    const result = {
      rate,
      seconds,
      sent,
      achieved_rate: Math.round(sent / ((sendEnd - t0) / 1000)),
      deliveries: received[phaseIndex],
      expected,
      missing: expected - received[phaseIndex],
      capped,
      latency_ms: summarize(samples),
      ...usage,
      t0
    }
    if (sameSamples.length && crossSamples.length) {
      result.same_process_ms = summarize(sameSamples)
      result.cross_process_ms = summarize(crossSamples)
    }
    result.timeline = timeline
    return result
  }
  const close = () => clients.forEach(c => c.destroy())
  // An unmeasured phase first, for every server alike: first-use paths (room load, first
  // database writes, JIT of the clients) are not what the steady-state figures are about.
  await phase(Math.min(100, params.rates?.[0] ?? params.rate ?? 50), params.warmup_s ?? 2, { drainMs: 1000 })
  return { phase, close, clients }
}

const strip = r => { const { timeline, t0, ...rest } = r; return rest }

// ---------------------------------------------------------------- scenarios

async function fanout () {
  const { clients, writers, rates, seconds } = params
  const load = await typingLoad([{ id: config.docs[0], clients }], {
    writersPerRoom: writers,
    serverOf: k => servers[k % servers.length]
  })
  log(`connected ${clients} clients`)
  const out = []
  for (const rate of rates) out.push(strip(await load.phase(rate, seconds)))
  load.close()
  await sleep(300)
  return { phases: out }
}

async function throughput () {
  const { rooms, clients_per_room: perRoom, rates, seconds, p99_limit_ms: limit, start_at: startAt } = params
  const load = await typingLoad(config.docs.slice(0, rooms).map(id => ({ id, clients: perRoom })), { writersPerRoom: 1 })
  // One of several generators (bench/run.py splits the rooms and the rate): all start
  // their first step at the same wall-clock time and every step lasts the same; the
  // orchestrator judges the steps together (a step one of them did not run fails).
  const split = startAt !== undefined
  if (split) await sleep(Math.max(0, startAt - Date.now()))
  const out = []
  let best = 0
  let failures = 0
  for (const rate of rates) {
    const result = strip(await load.phase(rate, seconds, { fixedDrain: split }))
    if (result.capped) throw new Error(`writers used up max_edits_per_writer (${result.capped} edits not made at ${rate}/s)`)
    result.ok = result.missing === 0 && result.latency_ms.p99 < limit && result.achieved_rate >= rate * 0.95
    out.push(result)
    log(`rate ${rate}: p99 ${result.latency_ms.p99} missing ${result.missing} ok ${result.ok}`)
    // Two failing steps in a row end the ramp: on a shared machine one noisy step
    // should not decide the ceiling. The best passing step is the result.
    failures = result.ok ? 0 : failures + 1
    if (result.ok) best = rate
    if (failures >= 2) break
  }
  load.close()
  return { phases: out, max_sustained_rate: best }
}

async function idle () {
  const { docs, per_doc: perDoc, settle_ms: settleMs, after_ms: afterMs } = params
  const ids = config.docs.slice(0, docs)
  await sleep(1000)
  const baseline = serverRss()
  let t = performance.now()
  const first = await inBatches(ids, 50, id => connect(servers[0], id, { cookie }))
  for (const c of first) c.doc.getText('bench').insert(0, 'a short note, typed once. '.repeat(8))
  await sleep(settleMs)
  const withDocs = serverRss()
  const openDocsS = (performance.now() - t) / 1000
  t = performance.now()
  const rest = await inBatches(ids.flatMap(id => Array(perDoc - 1).fill(id)), 100, id => connect(servers[0], id, { cookie }))
  const connectS = (performance.now() - t) / 1000
  await sleep(settleMs)
  const withConns = serverRss()
  for (const c of [...first, ...rest]) c.destroy()
  const after = []
  for (const wait of afterMs) { await sleep(wait); after.push(serverRss()) }
  const conns = ids.length * (perDoc - 1)
  return {
    docs: ids.length,
    connections: ids.length * perDoc,
    rss_baseline: baseline,
    rss_docs_open: withDocs,
    rss_all_connected: withConns,
    rss_after_leave: after,
    after_ms: afterMs,
    per_doc_bytes: Math.round((withDocs - baseline) / ids.length),
    per_conn_bytes: Math.round((withConns - withDocs) / conns),
    open_docs_s: Math.round(openDocsS * 100) / 100,
    connect_rest_s: Math.round(connectS * 100) / 100
  }
}

async function coldopen () {
  const { trials, unload_wait_ms: waitMs, raw } = params
  const room = config.b4
  const provider = []
  let sizes = null
  let chars = 0
  // Trial -1 is a discarded warm-up (JIT of the client, first-use paths of the server).
  for (let i = -1; i < trials; i++) {
    const c = await connect(servers[0], room, { cookie })
    if (i >= 0) provider.push({ open_to_synced: c.times.synced - c.times.open, start_to_synced: c.times.synced - c.times.start })
    chars = c.doc.getText('default').length
    if (!sizes) sizes = { v1: Y.encodeStateAsUpdate(c.doc).length, v2: Y.encodeStateAsUpdateV2(c.doc).length }
    c.destroy()
    await sleep(waitMs)
  }
  const rawTrials = []
  if (raw && servers[0].kind !== 'hocus') {
    for (let i = -1; i < trials; i++) {
      const doc = new Y.Doc()
      const got = new Promise(resolve => {
        const client = rawConnect(servers[0], room, {
          cookie,
          doc,
          onStep2: (payload, t) => {
            Y.applyUpdate(doc, payload)
            resolve({ client, t, applied: performance.now(), bytes: payload.length })
          }
        })
      })
      const { client, t, applied, bytes } = await got
      if (i >= 0) rawTrials.push({ open_to_step2: t - client.times.open, client_apply: applied - t, bytes })
      client.close()
      await sleep(waitMs)
    }
  }
  const median = xs => summarize(xs).p50
  return {
    chars,
    yjs_sizes: sizes,
    provider_trials: provider,
    open_to_synced_median_ms: median(provider.map(p => p.open_to_synced)),
    start_to_synced_median_ms: median(provider.map(p => p.start_to_synced)),
    raw_trials: rawTrials,
    open_to_step2_median_ms: rawTrials.length ? median(rawTrials.map(r => r.open_to_step2)) : null,
    client_apply_median_ms: rawTrials.length ? median(rawTrials.map(r => r.client_apply)) : null
  }
}

async function ingest () {
  const { docs, writers_per_doc: perDoc, rates, seconds } = params
  const writers = []
  for (const id of config.docs.slice(0, docs)) {
    for (let i = 0; i < perDoc; i++) {
      const doc = new Y.Doc()
      const w = { doc, sent: 0, saved: 0, sendTimes: [], lags: [], lastSaved: 0 }
      let synced
      const ready = new Promise(resolve => { synced = resolve })
      w.client = rawConnect(servers[0], id, {
        cookie,
        extensions: true,
        doc,
        onStep2: () => synced(),
        onSaved: (n, t) => {
          for (let k = w.saved + 1; k <= n; k++) if (w.sendTimes[k] !== undefined) w.lags.push(t - w.sendTimes[k])
          w.saved = Math.max(w.saved, n)
          w.lastSaved = t
        }
      })
      doc.on('update', (update, origin) => {
        if (origin === 'remote') return
        w.sent++
        w.sendTimes[w.sent] = performance.now()
        w.client.sendUpdate(update)
      })
      await ready
      writers.push(w)
    }
  }
  const out = []
  for (const rate of rates) {
    for (const w of writers) { w.lags = []; w.base = w.sent }
    const stop = meter()
    const t0 = performance.now()
    const total = Math.round(rate * seconds)
    let sent = 0
    let maxOutstanding = 0
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate))
      while (sent < due) {
        const w = writers[sent % writers.length]
        const text = w.doc.getText('bench')
        text.insert(Math.floor(Math.random() * (text.length + 1)), 'x')
        sent++
      }
      maxOutstanding = Math.max(maxOutstanding, writers.reduce((s, w) => s + (w.sent - w.saved), 0))
      await sleep(Math.max(1, Math.min(10, 1000 / rate)))
    }
    const sendEnd = performance.now()
    const deadline = sendEnd + 20000
    while (writers.some(w => w.saved < w.sent) && performance.now() < deadline) await sleep(10)
    const lastSaved = Math.max(...writers.map(w => w.lastSaved))
    const committed = writers.reduce((s, w) => s + (w.saved - w.base), 0)
    out.push({
      rate,
      sent,
      achieved_rate: Math.round(sent / ((sendEnd - t0) / 1000)),
      committed,
      uncommitted_after_drain: writers.reduce((s, w) => s + (w.sent - w.saved), 0),
      committed_per_s: Math.round(committed / ((lastSaved - t0) / 1000)),
      commit_lag_ms: summarize(writers.flatMap(w => w.lags)),
      max_outstanding_edits: maxOutstanding,
      ...stop()
    })
    log(`ingest ${rate}/s: ${JSON.stringify(out.at(-1).commit_lag_ms)}`)
  }
  for (const w of writers) w.client.close()
  return { phases: out }
}

async function eventloop () {
  const { typing_docs: typingDocs, rate, seconds, paste_at_s: pasteAt, load_at_s: loadAt, paste_bytes: pasteBytes } = params
  const [pasteRoom, ...typingRooms] = config.docs
  // The paste, its watcher and the big open are stock clients in a helper process
  // (paster.mjs): integrating megabytes there never stalls this process's clock.
  const helper = spawn(process.execPath, [new URL('./paster.mjs', import.meta.url).pathname, JSON.stringify({
    server: servers[0], room: pasteRoom, b4: config.b4, cookie, pasteBytes
  })], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: helper.stdout })[Symbol.asyncIterator]()
  const first = await lines.next()
  if (first.value !== 'ready') throw new Error('paste helper did not start')
  const load = await typingLoad(typingRooms.slice(0, typingDocs).map(id => ({ id, clients: 2 })), { writersPerRoom: 1 })
  let pasted = false
  let loading = false
  const result = await load.phase(rate, seconds, {
    onTick: elapsed => {
      if (!pasted && elapsed >= pasteAt * 1000) { pasted = true; helper.stdin.write('paste\n') }
      if (!loading && loadAt && elapsed >= loadAt * 1000) { loading = true; helper.stdin.write('load\n') }
    }
  })
  await sleep(1000)
  helper.stdin.write('exit\n')
  const events = JSON.parse((await lines.next()).value)
  const windows = { before: [], paste: [], load: [] }
  for (let i = 0; i < result.timeline.length; i += 2) {
    // Windows by send time: an edit typed during the paste counts for the paste window
    // even when it arrives after it.
    const at = (result.timeline[i] - result.timeline[i + 1] - result.t0) / 1000
    windows[at < pasteAt ? 'before' : at < (loadAt || Infinity) ? 'paste' : 'load'].push(result.timeline[i + 1])
  }
  load.close()
  await sleep(300)
  return {
    ...strip(result),
    windows: Object.fromEntries(Object.entries(windows).map(([k, v]) => [k, summarize(v)])),
    events
  }
}

async function throttled () {
  const { clients, writers, rate, seconds, flood_rate: floodRate } = params
  const [floodRoom, room] = config.docs
  // The flooder and its watcher in a helper process (flooder.mjs), connected for both
  // phases and writing only in the second: the phases differ by the flood alone.
  const helper = spawn(process.execPath, [new URL('./flooder.mjs', import.meta.url).pathname, JSON.stringify({
    server: servers[0], room: floodRoom, cookie, rate: floodRate
  })], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: helper.stdout })[Symbol.asyncIterator]()
  const first = await lines.next()
  if (first.value !== 'ready') throw new Error('flood helper did not start')
  const load = await typingLoad([{ id: room, clients }], { writersPerRoom: writers })
  const alone = strip(await load.phase(rate, seconds))
  helper.stdin.write('go\n')
  const flooded = strip(await load.phase(rate, seconds))
  helper.stdin.write('stop\n')
  const flood = JSON.parse((await lines.next()).value)
  load.close()
  await sleep(300)
  log(`p99 alone ${alone.latency_ms.p99} ms, next to the flood ${flooded.latency_ms.p99} ms; flood ${JSON.stringify(flood)}`)
  return {
    alone,
    flooded,
    flood,
    p99_ratio: Math.round((flooded.latency_ms.p99 / alone.latency_ms.p99) * 100) / 100
  }
}

const scenarios = { fanout, throughput, idle, coldopen, ingest, eventloop, throttled }
const started = performance.now()
// pycrdt-websocket 0.16.5 stalls about 33 s when the first connections to a freshly
// started server arrive concurrently; one connection first avoids it (setup, not measured).
for (const server of servers.filter(s => s.kind === 'pycrdt')) {
  const c = await connect(server, 'warm-up', { timeoutMs: 60000 })
  c.destroy()
  await sleep(200)
}
const result = await scenarios[config.scenario]()
result.generator_total_s = Math.round((performance.now() - started) / 100) / 10
process.stdout.write(JSON.stringify(result) + '\n')
// Let close frames go out: a peer that sees sockets vanish can stall its next clients.
await sleep(500)
process.exit(0)
