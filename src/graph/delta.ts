/**
 * Delta cursor: enumerate a drive, then follow its changes (graph-drive-api.md §6).
 * The cursor's state is the last deltaLink (store it to continue in a later run).
 * A 410 (resyncRequired and friends) is handled here: the cursor restarts from the
 * Location the service gives (or from scratch) and flags the batch `resync` so the
 * caller reconciles its whole view instead of applying a diff.
 */
import { GraphError } from './errors.js'
import type { GraphTransport } from './transport.js'
import { ITEM_SELECT, type DriveItem } from './types.js'

export interface DeltaBatch {
  /** Latest state of every changed item; later entries for the same id win. */
  items: DriveItem[]
  /** True when the service invalidated the previous state: treat `items` as a full enumeration. */
  resync: boolean
  /** The deltaLink to continue from. */
  state: string
  /** Pages fetched for this batch. */
  pages: number
}

interface DeltaPage {
  value: DriveItem[]
  '@odata.nextLink'?: string
  '@odata.deltaLink'?: string
}

export class DeltaCursor {
  #state: string | undefined

  constructor(
    private readonly t: GraphTransport,
    readonly driveId: string,
    state?: string,
  ) {
    this.#state = state
  }

  /** The stored deltaLink (undefined before the first batch). */
  get state(): string | undefined {
    return this.#state
  }

  #start(): string {
    return `/drives/${encodeURIComponent(this.driveId)}/root/delta?$select=${ITEM_SELECT}`
  }

  /** Skip the enumeration: position the cursor at "now" (`token=latest`). */
  async latest(signal?: AbortSignal): Promise<string> {
    const page = await this.t.json<DeltaPage>('GET', `/drives/${encodeURIComponent(this.driveId)}/root/delta?token=latest`, {
      signal,
      headers: { Prefer: 'Include-Feature=AddToOneDrive' },
    })
    if (!page['@odata.deltaLink']) throw new GraphError({ status: 200, code: 'invalidDeltaResponse', message: 'delta answered without a deltaLink' })
    this.#state = page['@odata.deltaLink']
    return this.#state
  }

  /** Fetch every page of changes since the state (or the full enumeration on first use). */
  async next(signal?: AbortSignal): Promise<DeltaBatch> {
    let url = this.#state ?? this.#start()
    let resync = false
    let items: DriveItem[] = []
    let pages = 0
    for (let resyncs = 0; ; ) {
      const r = await this.t.send('GET', url, { signal, headers: { Prefer: 'Include-Feature=AddToOneDrive' }, label: 'GET /drives/{id}/root/delta' })
      if (r.res.status === 410) {
        const err = await this.t.errorOf(r, 'GET')
        if (++resyncs > 3) throw err
        this.t.log.info({ code: err.code, requestId: err.requestId }, 'delta state expired: re-enumerating')
        const loc = r.res.headers.get('location')
        url = loc ? new URL(loc, this.t.baseUrl + '/').toString() : this.#start()
        resync = true
        items = []
        continue
      }
      if (!r.res.ok) throw await this.t.errorOf(r, 'GET')
      const page = (await r.res.json()) as DeltaPage
      pages++
      items.push(...page.value)
      if (page['@odata.nextLink']) {
        url = page['@odata.nextLink']
        continue
      }
      if (!page['@odata.deltaLink']) throw new GraphError({ status: 200, code: 'invalidDeltaResponse', message: 'delta page without nextLink or deltaLink' })
      this.#state = page['@odata.deltaLink']
      return { items, resync, state: this.#state, pages }
    }
  }
}
