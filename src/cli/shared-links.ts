/**
 * The sharing links a user registered with `odfs shared add`: redeemed once, then
 * remembered in a private file (0600, in the user's 0700 state directory, the one
 * the token file uses; one file per gateway) so that `Shared with me` of every
 * later mount and of `odfs ls/get/put` shows them. A link is not a credential
 * like a token, but whoever has it may open the item: it is kept as private.
 */
import { join } from 'node:path'
import { ensurePrivateDir, OdfsError, readPrivateFile, writePrivateFile } from '../common/index.js'
import type { GatewayConfig, OsUser } from '../config/index.js'
import { gatewayKey } from '../auth/index.js'

export interface SharedLink {
  /** The shared item's name when it was added (what `list` shows and `remove` takes). */
  name: string
  link: string
  driveId?: string
  itemId?: string
  folder?: boolean
  addedAt?: string
}

interface LinksFile {
  version: 1
  links: SharedLink[]
}

export interface LinkStore {
  readonly location: string
  load(): Promise<SharedLink[]>
  save(links: SharedLink[]): Promise<void>
}

/** The link store of `user` at this gateway, in `dir` (the user's state directory). */
export function openLinkStore(config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint'>, user: OsUser, dir: string): LinkStore {
  const name = `shared-${gatewayKey(config)}.json`
  const owner = user.other ? { uid: user.uid, gid: user.gid } : {}
  const location = join(dir, name)
  return {
    location,
    async load() {
      const text = await readPrivateFile(dir, name, { ...owner, what: 'shared links file' })
      if (text === null) return []
      let parsed: LinksFile
      try {
        parsed = JSON.parse(text) as LinksFile
      } catch {
        throw new OdfsError('EINVAL', `${location} is not valid JSON; fix or remove it (odfs shared add/remove rewrite it)`)
      }
      return (parsed.links ?? []).filter((l) => typeof l?.link === 'string' && typeof l?.name === 'string')
    },
    async save(links) {
      await ensurePrivateDir(dir, owner)
      const doc: LinksFile = { version: 1, links }
      await writePrivateFile(dir, name, JSON.stringify(doc, null, 2) + '\n', owner)
    },
  }
}
