// The project view of the upload page: the project's timelapses, newest first, with status,
// progress and a player each; cancel, retry and delete. The list comes from the API alone
// (GET /projects/{projectId}/timelapses), so it is the same after a reload or on another machine.
//
// A row plays `urls.video`, which the API points at the original until the timelapse is complete
// and at the timelapse then (API.md: videoKey): the original plays while processing, and the
// timelapse replaces it when complete. `urls` come only with GET /timelapses/{id}, so a row asks
// for them when its video changes.

const REFRESH_MS = 1500
const TERMINAL = new Set(['complete', 'failed', 'cancelled'])

export function createProjectView ({ call, list, title, empty, onError }) {
  let project = null
  let timer = null
  const rows = new Map() // id → {li, record, videoKey}

  async function refresh () {
    if (!project) return
    const asked = project
    try {
      const { items } = await call('GET', `/projects/${encodeURIComponent(asked)}/timelapses?limit=50`)
      if (asked !== project) return
      await Promise.all(items.map(update))
      for (const [id, row] of rows) {
        if (!items.some((item) => item.id === id)) { row.li.remove(); rows.delete(id) }
      }
      for (const item of items) list.append(rows.get(item.id).li) // newest first, as answered
      empty.hidden = items.length > 0
    } catch (error) {
      onError(error.message)
    }
  }

  async function update (record) {
    let row = rows.get(record.id)
    if (!row) {
      row = { li: newRow(record.id), record: null, videoKey: null }
      rows.set(record.id, row)
    }
    row.record = record
    const playable = record.stage !== 'awaiting_upload' && !['failed', 'cancelled'].includes(record.status)
    if (playable && row.videoKey !== record.videoKey) {
      const full = await call('GET', `/timelapses/${record.id}`)
      row.videoKey = record.videoKey
      const player = row.li.querySelector('video')
      player.src = full.urls.video
      if (full.urls.poster) player.poster = full.urls.poster
      player.hidden = false
      player.dataset.plays = record.status === 'complete' ? 'timelapse' : 'original'
    }
    if (!playable) row.li.querySelector('video').hidden = true
    show(row.li, record)
  }

  function newRow (id) {
    const li = document.createElement('li')
    li.className = 'timelapse'
    li.dataset.id = id
    li.innerHTML = `
      <div class="head"><b class="name"></b> <span class="state"></span> <span class="detail"></span></div>
      <progress max="100" value="0"></progress>
      <p class="error" hidden></p>
      <video controls muted playsinline preload="metadata" hidden></video>
      <div class="actions">
        <button type="button" data-action="cancel">Cancel</button>
        <button type="button" data-action="retry">Retry</button>
        <button type="button" data-action="delete">Delete</button>
      </div>`
    li.querySelector('.actions').addEventListener('click', (event) => act(id, event.target.dataset.action))
    return li
  }

  function show (li, record) {
    li.dataset.status = record.status
    li.querySelector('.name').textContent = record.filename ?? record.id
    li.querySelector('.state').textContent = record.status
    li.querySelector('.detail').textContent = describe(record)
    li.querySelector('progress').value = record.status === 'complete' ? 100 : record.progress
    li.querySelector('progress').hidden = TERMINAL.has(record.status)
    const error = li.querySelector('.error')
    error.hidden = !record.error || record.status === 'complete'
    error.textContent = record.error?.message ?? ''
    const can = { cancel: !TERMINAL.has(record.status), retry: ['failed', 'cancelled'].includes(record.status), delete: true }
    for (const button of li.querySelectorAll('button')) button.hidden = !can[button.dataset.action]
  }

  function describe (record) {
    if (record.status === 'complete' && record.output) {
      const out = record.output
      return `${out.durationSeconds.toFixed(1)} s, ${out.speedup.toFixed(1)}× faster`
    }
    if (record.stage) return `${record.stage.replaceAll('_', ' ')} · ${record.progress}%`
    return new Date(record.createdAt).toLocaleString()
  }

  async function act (id, action) {
    try {
      if (action === 'cancel') await call('POST', `/timelapses/${id}/cancel`)
      if (action === 'retry') await call('POST', `/timelapses/${id}/process`)
      if (action === 'delete') await call('DELETE', `/timelapses/${id}`)
    } catch (error) {
      onError(error.message)
    }
    await refresh()
  }

  return {
    /** Shows `projectId`'s timelapses and keeps them current. */
    show (projectId) {
      if (projectId !== project) {
        for (const row of rows.values()) row.li.remove()
        rows.clear()
      }
      project = projectId
      title.textContent = projectId
      clearInterval(timer)
      timer = setInterval(refresh, REFRESH_MS)
      return refresh()
    },
    refresh,
    stop () { clearInterval(timer); project = null },
  }
}
