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

const ORIGINAL_KEY = /^videos\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[a-z0-9]{2,5}$/

/** The timelapse id in a key lapse handed out (`videos/<id>.<ext>`), or null. */
export function timelapseIdFromKey (key) {
  const match = ORIGINAL_KEY.exec(key ?? '')
  return match ? match[1] : null
}

/**
 * A `signRequest` function for Uppy 6's AwsS3 plugin.
 * @param {{api: string, token: string | (() => string | Promise<string>), projectId: string,
 *          targetSeconds?: number, fields?: object}} options  `fields` go into every create
 *          (e.g. `{durationMinutes, callbackUrl}`).
 */
export function createSignRequest ({ api, token, projectId, targetSeconds, fields = {} }) {
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
      Object.assign(body, fields, { projectId, targetSeconds, contentType: request.contentType }, file)
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

  /** AwsS3's `generateObjectKey`: a unique key, remembered with what lapse needs of the file. */
  signRequest.generateObjectKey = (file) => {
    const key = `${crypto.randomUUID()}-${file.name}`
    files.set(key, { sizeBytes: file.size, contentType: file.type || undefined, filename: file.name })
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
