// lapse × Uppy 6: a `signRequest` for @uppy/aws-s3 that signs through the lapse API.
//
//   import { Uppy, AwsS3 } from 'uppy'
//   import { lapseAwsS3Options } from 'http://127.0.0.1:8001/lapse-uppy.js'
//
//   const lapse = lapseAwsS3Options({ api, token, projectId: 'p-42', targetSeconds: 30 })
//   uppy.use(AwsS3, lapse)   // { signRequest, generateObjectKey }
//   uppy.on('upload-success', (file, { body }) => lapse.signRequest.timelapseId(body.key))
//
// Uppy passes `signRequest` only `{method, key, uploadId?, partNumber?, contentType?}`: not the
// file's size, which lapse needs. `generateObjectKey` (also an AwsS3 option) sees the file, so it
// remembers its size, type and name under the key Uppy will then ask to sign. The server answers
// its own key (`videos/<id>.<ext>`) on the first request, and Uppy uses that one from then on.
//
// The timelapse options (API.md v1.1) ride along as Uppy metadata, per file or for all files
// (`uppy.setMeta`, `uppy.setFileMeta`, or the controls `mountOptionControls` draws): `speed` or
// `targetSeconds`, `fps`, `resolution`, `skipIdle`, `timestamp`, `deflicker`. Uppy 4–5's Companion
// routes read the same metadata names, so one set of controls serves both paths.

const ORIGINAL_KEY = /^videos\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[a-z0-9]{2,5}$/

/** The timelapse id in a key lapse handed out (`videos/<id>.<ext>`), or null. */
export function timelapseIdFromKey (key) {
  const match = ORIGINAL_KEY.exec(key ?? '')
  return match ? match[1] : null
}

/** The option names lapse reads from Uppy metadata, and how each is read from text. */
export const TIMELAPSE_OPTIONS = {
  targetSeconds: Number,
  speed: Number,
  fps: Number,
  resolution: String,
  skipIdle: (value) => value === true || value === 'true' || value === 'on',
  timestamp: (value) => value === true || value === 'true' || value === 'on',
  deflicker: (value) => value === true || value === 'true' || value === 'on',
}

/**
 * The timelapse options in Uppy metadata (values may be text, as form fields and Companion give
 * them), typed; unset or empty ones left out so the API's defaults apply. A speed replaces the
 * length: both together would be refused.
 */
export function timelapseOptions (meta = {}) {
  const options = {}
  for (const [name, read] of Object.entries(TIMELAPSE_OPTIONS)) {
    const value = meta[name]
    if (value === undefined || value === null || value === '') continue
    options[name] = read(value)
  }
  if (options.speed !== undefined) delete options.targetSeconds
  return options
}

/**
 * Controls for the options, drawn into `element`; each change goes to `uppy.setMeta`, so every file
 * added afterwards carries them. Returns a function that reads them as typed options.
 */
export function mountOptionControls (uppy, element, defaults = {}) {
  const choice = (name, values, selected) => `<select name="${name}">${values.map((v) =>
    `<option${String(v) === String(selected) ? ' selected' : ''}>${v}</option>`).join('')}</select>`
  const flag = (name, label) =>
    `<label><input name="${name}" type="checkbox"${defaults[name] ? ' checked' : ''}> ${label}</label>`
  element.innerHTML = `
    <label>Length <input name="targetSeconds" type="number" min="1" max="600" value="${defaults.targetSeconds ?? ''}"> s</label>
    <label>or speed <input name="speed" type="number" min="2" max="100000" value="${defaults.speed ?? ''}"> ×</label>
    <label>Frame rate ${choice('fps', [24, 25, 30, 50, 60], defaults.fps ?? 30)} fps</label>
    <label>Resolution ${choice('resolution', ['720p', '1080p', '1440p', '2160p'], defaults.resolution ?? '1080p')}</label>
    ${flag('skipIdle', 'Skip idle')} ${flag('timestamp', 'Timestamp')} ${flag('deflicker', 'Deflicker')}`
  const read = () => {
    const meta = {}
    for (const input of element.querySelectorAll('[name]')) {
      meta[input.name] = input.type === 'checkbox' ? input.checked : input.value
    }
    return timelapseOptions(meta)
  }
  const apply = () => {
    const options = read()
    // Unset fields are cleared too, so a length typed and then emptied does not linger.
    const cleared = Object.fromEntries(Object.keys(TIMELAPSE_OPTIONS).map((name) => [name, undefined]))
    uppy.setMeta({ ...cleared, ...options })
  }
  element.addEventListener('input', apply)
  element.addEventListener('change', apply)
  apply()
  return read
}

/**
 * A `signRequest` function for Uppy 6's AwsS3 plugin.
 * @param {{api: string, token: string | (() => string | Promise<string>), projectId: string,
 *          targetSeconds?: number, speed?: number, fps?: number, resolution?: string,
 *          skipIdle?: boolean, timestamp?: boolean, deflicker?: boolean, fields?: object}} options
 *          The options are the defaults for every file; a file's Uppy metadata overrides them.
 *          `fields` go into every create (e.g. `{durationMinutes, callbackUrl}`).
 */
export function createSignRequest ({ api, token, projectId, fields = {}, ...defaults }) {
  if (!api || !token || !projectId) throw new TypeError('lapse: api, token and projectId are required')
  const base = api.replace(/\/+$/, '')
  const files = new Map() // key Uppy asked for → {sizeBytes, contentType, filename}
  const creates = new Map() // "PUT key" / "POST key" → the create's answer, so a retry makes no twin
  const timelapses = new Map() // server key → timelapse id

  async function post (body) {
    const bearer = typeof token === 'function' ? await token() : token
    const answer = await fetch(`${base}/uploads/sign`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    })
    const json = await answer.json().catch(() => ({}))
    if (!answer.ok) {
      const error = new Error(`lapse: ${json.error?.message ?? answer.statusText} (${answer.status})`)
      error.status = answer.status
      throw error
    }
    timelapses.set(json.key, json.timelapseId)
    return json
  }

  async function signRequest (request) {
    const { method, key, uploadId, partNumber, expiresIn } = request
    const body = { method, key, uploadId, partNumber, expiresIn }
    if (uploadId == null && (method === 'PUT' || method === 'POST')) {
      // A new upload: lapse creates the timelapse and answers its own key.
      const file = files.get(key)
      const { options, ...described } = file ?? {}
      const chosen = timelapseOptions({ ...defaults, ...options })
      if (options?.targetSeconds !== undefined && options?.speed === undefined) delete chosen.speed
      Object.assign(body, fields, { projectId, contentType: request.contentType }, described, chosen)
      const id = `${method} ${key}`
      if (!creates.has(id)) {
        creates.set(id, post(body).catch((error) => { creates.delete(id); throw error }))
      }
      const { url, key: serverKey, headers } = await creates.get(id)
      return { url, key: serverKey, headers }
    }
    const { url, headers } = await post(body)
    return { url, headers }
  }

  /** AwsS3's `generateObjectKey`: a unique key, remembered with what lapse needs of the file
   *  (its size, type, name and the timelapse options in its metadata). */
  signRequest.generateObjectKey = (file) => {
    const key = `${crypto.randomUUID()}-${file.name}`
    const options = timelapseOptions(file.meta)
    files.set(key, { sizeBytes: file.size, contentType: file.type || undefined, filename: file.name, options })
    return key
  }
  /** The timelapse behind a key Uppy reports (upload-success `body.key`). */
  signRequest.timelapseId = (key) => timelapses.get(key) ?? timelapseIdFromKey(key)
  return signRequest
}

/** The AwsS3 options: `{signRequest, generateObjectKey}`. */
export function lapseAwsS3Options (options) {
  const signRequest = createSignRequest(options)
  return { signRequest, generateObjectKey: signRequest.generateObjectKey }
}
