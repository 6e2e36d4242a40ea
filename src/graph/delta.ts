/**
 * Delta cursor: enumerate a drive, then follow its changes (docs/graph-service.md §6).
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

/** One page of an enumeration, as it arrives (DeltaCursor.pages()). */
export interface DeltaPageBatch {
  items: DriveItem[]
  /**
   * The enumeration restarted because the service invalidated the state (410): the
   * caller drops what it built from earlier pages of this round and reconciles from here.
   */
  resync: boolean
  /** The last page of the round: `state` is then the new deltaLink. */
  last: boolean
}

interface DeltaPage {
  value: DriveItem[]
  '@odata.nextLink'?: string
  '@odata.deltaLink'?: string
}

export class DeltaCursor {
  #state: string | undefined
  /** The nextLink of a round in progress: where it resumes after an error. */
  #next: string | undefined
  /** The round in progress is a resync (kept across an interruption). */
  #resyncing = false
  /** Items next() gathered before an interruption (returned with the rest). */
  #partial: DriveItem[] = []
  #partialPages = 0

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

  /** Where the next page comes from: the nextLink of an interrupted round, else the deltaLink or the start. */
  get position(): string | undefined {
    return this.#next ?? this.#state
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
    this.#next = undefined
    return this.#state
  }

  /**
   * The changes since the state (the full enumeration on first use), page by page as
   * they arrive: nothing is accumulated. After an error, the next call resumes from the
   * page that failed (the cursor keeps the nextLink), not from the start.
   */
  async *pages(signal?: AbortSignal): AsyncGenerator<DeltaPageBatch> {
    let url = this.#next ?? this.#state ?? this.#start()
    let announceResync = this.#resyncing && this.#next === undefined
    for (let resyncs = 0; ; ) {
      const r = await this.t.send('GET', url, { signal, headers: { Prefer: 'Include-Feature=AddToOneDrive' }, label: 'GET /drives/{id}/root/delta' })
      if (r.res.status === 410) {
        const err = await this.t.errorOf(r, 'GET')
        if (++resyncs > 3) throw err
        this.t.log.info({ code: err.code, requestId: err.requestId }, 'delta state expired: re-enumerating')
        const loc = r.res.headers.get('location')
        url = loc ? new URL(loc, this.t.baseUrl + '/').toString() : this.#start()
        this.#resyncing = true
        this.#next = undefined
        announceResync = true
        continue
      }
      if (!r.res.ok) throw await this.t.errorOf(r, 'GET')
      const page = (await r.res.json()) as DeltaPage
      const nextLink = page['@odata.nextLink']
      const deltaLink = page['@odata.deltaLink']
      if (!nextLink && !deltaLink) throw new GraphError({ status: 200, code: 'invalidDeltaResponse', message: 'delta page without nextLink or deltaLink' })
      const resync = announceResync
      announceResync = false
      yield { items: page.value, resync, last: !nextLink }
      // The page was taken: from here on, an interruption resumes after it.
      if (nextLink) {
        this.#next = nextLink
        url = nextLink
        continue
      }
      this.#state = deltaLink
      this.#next = undefined
      this.#resyncing = false
      return
    }
  }

  /**
   * Every page of changes since the state, gathered into one batch (small drives and
   * tests; a mount streams pages() instead). An interrupted call is continued by the
   * next one, which returns the pages gathered before the interruption too.
   */
  async next(signal?: AbortSignal): Promise<DeltaBatch> {
    let resync = this.#resyncing
    for await (const page of this.pages(signal)) {
      if (page.resync) {
        resync = true
        this.#partial = []
        this.#partialPages = 0
      }
      this.#partial.push(...page.items)
      this.#partialPages++
    }
    const batch = { items: this.#partial, resync, state: this.#state!, pages: this.#partialPages }
    this.#partial = []
    this.#partialPages = 0
    return batch
  }
}
