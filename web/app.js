// The lapse upload page: plain modern JavaScript against the lapse HTTP API (../shared/API.md).
// Create → upload straight to storage (one PUT, or multipart parts with progress, resumable after
// a reload) → poll the record → play the timelapse. Below it, the project's timelapses
// (project.js); the project is remembered in the URL (?project=) and in localStorage.

import { createProjectView } from './project.js'

const $ = (id) => document.getElementById(id)
const query = new URLSearchParams(location.search)
const config = await fetch('config.json').then((r) => (r.ok ? r.json() : {})).catch(() => ({}))
const API = (query.get('api') ?? config.api ?? 'http://127.0.0.1:8000').replace(/\/+$/, '')
const PROCESS_AFTER_UPLOAD = config.storageEvents === false // R2: no bucket events
const PARALLEL_PARTS = 4
const POLL_MS = 1000
const TYPES = { mp4: 'video/mp4', mov: 'video/quicktime', webm: 'video/webm', mkv: 'video/x-matroska', m4v: 'video/x-m4v', avi: 'video/x-msvideo', '3gp': 'video/3gpp', mts: 'video/mp2t', m2ts: 'video/mp2t', ts: 'video/mp2t' }
const TERMINAL = new Set(['complete', 'failed', 'cancelled'])

let token = query.get('token') ?? localStorage.getItem('lapse.token')
const projectView = createProjectView({
  call: (...args) => call(...args),
  list: $('timelapses'),
  title: $('project-name'),
  empty: $('project-empty'),
  onError: (message) => { $('project-error').textContent = message; $('project-error').hidden = false },
})
let job = null // {id, file, xhrs: Set, stopped}

// --- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor (status, body) {
    super(body?.error?.message ?? `the API answered ${status}`)
    this.status = status
  }
}

async function call (method, path, body) {
  const answer = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const json = answer.status === 204 ? null : await answer.json().catch(() => null)
  if (answer.status === 401) signOut()
  if (!answer.ok) throw new ApiError(answer.status, json)
  return json
}

// --- storage --------------------------------------------------------------------------------

function put (url, blob, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    job.xhrs.add(xhr)
    const done = (fn) => () => { job.xhrs.delete(xhr); fn() }
    xhr.open('PUT', url)
    for (const [name, value] of Object.entries(headers ?? {})) xhr.setRequestHeader(name, value)
    xhr.upload.onprogress = (event) => onProgress(event.loaded)
    xhr.onload = done(() => (xhr.status < 300
      ? resolve(xhr.getResponseHeader('ETag'))
      : reject(new Error(`storage answered ${xhr.status}`))))
    xhr.onerror = done(() => reject(new Error('network error while uploading')))
    xhr.onabort = done(() => reject(new DOMException('upload stopped', 'AbortError')))
    xhr.send(blob)
  })
}

async function retried (attempt) {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt()
    } catch (error) {
      if (error.name === 'AbortError' || tries >= 3) throw error
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** tries))
    }
  }
}

// --- resumable multipart state (localStorage) -----------------------------------------------

const resumeKey = (file) => `lapse.upload:${file.name}:${file.size}:${file.lastModified}`
const loadResume = (file) => JSON.parse(localStorage.getItem(resumeKey(file)) ?? 'null')
const saveResume = (file, state) => localStorage.setItem(resumeKey(file), JSON.stringify(state))
const dropResume = (file) => localStorage.removeItem(resumeKey(file))

function pendingResumes () {
  return Object.keys(localStorage).filter((k) => k.startsWith('lapse.upload:')).map((k) => k.split(':')[1])
}

async function resumable (file) {
  const saved = loadResume(file)
  if (!saved) return null
  try {
    const status = await call('GET', `/timelapses/${saved.id}/upload`)
    for (const part of status.parts) saved.etags[part.partNumber] = part.etag
    return saved
  } catch (error) {
    dropResume(file) // gone, cancelled or finished meanwhile: start afresh
    return null
  }
}

// --- the upload ---------------------------------------------------------------------------

async function uploadMultipart (file, state, firstUrls) {
  const { id, partSize, partCount } = state
  const urls = new Map((firstUrls ?? []).map((p) => [p.partNumber, p.url]))
  const loaded = new Map()
  for (const n of Object.keys(state.etags)) loaded.set(Number(n), Math.min(partSize, file.size - (n - 1) * partSize))
  const report = () => showUpload([...loaded.values()].reduce((a, b) => a + b, 0), file.size)
  report()
  const todo = []
  for (let n = 1; n <= partCount; n++) if (!state.etags[n]) todo.push(n)

  async function urlFor (n) {
    if (!urls.has(n)) {
      const wanted = [n, ...todo.filter((m) => !urls.has(m))].slice(0, 100)
      const signed = await call('POST', `/timelapses/${id}/upload/parts`, { partNumbers: wanted })
      for (const p of signed.parts) urls.set(p.partNumber, p.url)
    }
    return urls.get(n)
  }

  async function worker () {
    while (todo.length && !job.stopped) {
      const n = todo.shift()
      const blob = file.slice((n - 1) * partSize, Math.min(n * partSize, file.size))
      const etag = await retried(async () => put(await urlFor(n), blob, {}, (bytes) => { loaded.set(n, bytes); report() }))
      state.etags[n] = etag
      saveResume(file, state)
    }
  }
  await Promise.all(Array.from({ length: PARALLEL_PARTS }, worker))
  if (job.stopped) return
  const parts = Object.entries(state.etags).map(([n, etag]) => ({ partNumber: Number(n), etag }))
  await call('POST', `/timelapses/${id}/upload/complete`, { parts })
}

// The options of API.md v1.1: a speed replaces the length; unset fields take the API's defaults.
function timelapseOptions () {
  const speed = Number($('speed').value) || undefined
  return {
    targetSeconds: speed ? undefined : Number($('target').value) || undefined,
    speed,
    fps: Number($('fps').value),
    resolution: $('resolution').value,
    skipIdle: $('skip-idle').checked,
    timestamp: $('timestamp').checked,
    deflicker: $('deflicker').checked,
  }
}

// The browser's type when it says video; else the name's (a browser reading the system's table
// may call .ts Qt Linguist text, .3gp audio, .mts a 3D model). lapse decides from the bytes.
function declaredType (file) {
  if (file.type.startsWith('video/')) return file.type
  return TYPES[file.name.split('.').pop().toLowerCase()] || 'application/octet-stream'
}

async function start (file) {
  stop()
  job = { id: null, file, xhrs: new Set(), stopped: false }
  showJob(file.name)
  try {
    let state = await resumable(file)
    let upload = null
    if (state) {
      job.resumed = `resumed: ${Object.keys(state.etags).length} of ${state.partCount} parts were stored`
    } else {
      const created = await call('POST', '/timelapses', {
        projectId: $('project').value,
        ...timelapseOptions(),
        contentType: declaredType(file),
        sizeBytes: file.size,
        filename: file.name,
      })
      upload = created.upload
      state = { id: created.timelapse.id, uploadId: upload.uploadId, partSize: upload.partSize, partCount: upload.partCount, etags: {} }
    }
    job.id = state.id
    projectView.refresh()
    $('cancel').hidden = false
    if (upload?.method === 'PUT') {
      await retried(() => put(upload.url, file, upload.headers, (bytes) => showUpload(bytes, file.size)))
    } else {
      saveResume(file, state)
      await uploadMultipart(file, state, upload?.parts)
      if (job.stopped) return
      dropResume(file)
      showPendingResumes()
    }
    if (job.stopped) return
    if (PROCESS_AFTER_UPLOAD) await call('POST', `/timelapses/${state.id}/process`)
    await watch(state.id)
  } catch (error) {
    if (error.name !== 'AbortError') showError(error.message)
  }
}

async function watch (id) {
  const mine = job
  while (!mine.stopped) {
    const record = await call('GET', `/timelapses/${id}`)
    setStatus(record.status, record.stage ? `${record.stage.replaceAll('_', ' ')} · ${record.progress}%` : '')
    $('progress').value = record.status === 'complete' ? 100 : record.progress
    if (TERMINAL.has(record.status)) return finished(record)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

function finished (record) {
  $('cancel').hidden = true
  if (record.status === 'complete') {
    const player = $('player')
    player.poster = record.urls.poster
    player.src = record.urls.video
    player.hidden = false
    const out = record.output
    $('detail').textContent = out ? `${out.durationSeconds.toFixed(1)} s at ${out.width}×${out.height}, ${out.speedup.toFixed(1)}× faster` : ''
  } else if (record.error) {
    showError(record.error.message)
  }
}

function stop () {
  if (!job) return
  job.stopped = true
  for (const xhr of job.xhrs) xhr.abort()
}

async function cancel () {
  const { id, file } = job
  stop()
  dropResume(file)
  showPendingResumes()
  try {
    const answer = await call('POST', `/timelapses/${id}/cancel`)
    setStatus(answer.timelapse.status, '')
  } catch (error) {
    showError(error.message)
  }
  $('cancel').hidden = true
}

// --- view -----------------------------------------------------------------------------------

function setStatus (status, detail) {
  $('status').textContent = status
  $('status').dataset.status = status
  $('detail').textContent = detail
}

function showUpload (bytes, total) {
  const percent = Math.floor((100 * bytes) / total)
  const resumed = job.resumed ? ` (${job.resumed})` : ''
  setStatus('uploading', `${percent}% of ${(total / 2 ** 20).toFixed(1)} MiB${resumed}`)
  $('progress').value = percent
}

function showJob (name) {
  $('job').hidden = false
  $('name').textContent = name
  $('error').hidden = true
  $('player').hidden = true
  $('player').removeAttribute('src')
  $('progress').value = 0
  setStatus('starting', '')
}

function showError (message) {
  $('error').textContent = message
  $('error').hidden = false
}

function signOut () {
  localStorage.removeItem('lapse.token')
  token = null
  projectView.stop()
  render()
}

function chooseProject (projectId) {
  localStorage.setItem('lapse.project', projectId)
  const url = new URL(location.href)
  url.searchParams.set('project', projectId)
  history.replaceState(null, '', url)
  $('project-error').hidden = true
  if (token) projectView.show(projectId)
}

function render () {
  $('signin').hidden = Boolean(token)
  $('upload').hidden = !token
  $('project-view').hidden = !token
  if (token && $('project').value) chooseProject($('project').value)
  if (token) {
    try {
      $('who').textContent = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub
    } catch {
      $('who').textContent = 'token holder'
    }
  }
  showPendingResumes()
}

function showPendingResumes () {
  const pending = pendingResumes()
  $('resume').hidden = pending.length === 0
  $('resume').textContent = `Interrupted upload of ${pending.join(', ')}: pick the same file to resume it.`
}

$('signin').addEventListener('submit', async (event) => {
  event.preventDefault()
  const answer = await fetch(`${API}/dev/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: $('user').value }),
  })
  if (!answer.ok) {
    showError('This API hands out no dev tokens: open the page with ?token=<your JWT>.')
    $('job').hidden = false
    return
  }
  token = (await answer.json()).token
  localStorage.setItem('lapse.token', token)
  render()
})
$('signout').addEventListener('click', (event) => { event.preventDefault(); signOut() })
$('file').addEventListener('change', () => { if ($('file').files[0]) start($('file').files[0]) })
$('cancel').addEventListener('click', cancel)
$('project').addEventListener('change', () => { if ($('project').value) chooseProject($('project').value) })
if (query.get('token')) localStorage.setItem('lapse.token', token)
$('project').value = query.get('project') ?? localStorage.getItem('lapse.project') ?? $('project').value
render()
