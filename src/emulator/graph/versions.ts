/**
 * File versions (docs/emulator/versions.md): list them (current first), get one,
 * download an earlier one (302 like an item's content), restore one (204, it
 * becomes a new current version) and delete an earlier one (Business only).
 */
import type { Item, Version } from '../store/index.js'
import { EmuError, identityOf, invalidRequest, notFound } from '../store/index.js'
import type { Env } from './env.js'
import { type Ctx, type Resp, json, empty, graphBaseOf } from './http.js'

function currentJson(env: Env, item: Item): Record<string, unknown> {
  return { id: env.store.currentVersionId(item), lastModifiedDateTime: item.lastModifiedDateTime, size: item.size, lastModifiedBy: item.lastModifiedBy }
}

function versionJson(v: Version): Record<string, unknown> {
  return { id: v.id, lastModifiedDateTime: v.lastModifiedDateTime, size: v.blob.size, lastModifiedBy: v.lastModifiedBy }
}

function methodNotAllowed(): EmuError {
  return new EmuError(405, 'methodNotAllowed', 'The HTTP method is not allowed for this resource.')
}

/** `/versions`, `/versions/{id}`, `/versions/{id}/content`, `/versions/{id}/restoreVersion` below a file. */
export function versionsRoute(env: Env, ctx: Ctx, item: Item, sub: string): Resp {
  const store = env.store
  const m = /^\/versions(?:\/([^/]+)(\/content|\/restoreVersion)?)?\/?$/.exec(sub)
  if (!m) throw new EmuError(400, 'BadRequest', `Resource not found for the segment '${sub.split('/').pop()}'.`)
  // folders have no versions
  if (item.kind !== 'file') throw notFound()
  const context = `${graphBaseOf(ctx)}/$metadata#drives('${item.driveId}')/items('${item.id}')/versions`
  if (m[1] === undefined) {
    if (ctx.method !== 'GET') throw methodNotAllowed()
    return json(200, { '@odata.context': context, value: [currentJson(env, item), ...(item.versions ?? []).map(versionJson)] })
  }
  let vid: string
  try {
    vid = decodeURIComponent(m[1])
  } catch {
    throw invalidRequest('The version id is not correctly percent-encoded.')
  }
  const current = vid === store.currentVersionId(item)
  const version = current ? undefined : item.versions?.find((v) => v.id === vid)
  if (!current && !version) throw notFound('The version could not be found.')
  const action = m[2]
  if (action === undefined) {
    if (ctx.method === 'GET') return json(200, { '@odata.context': `${context}/$entity`, ...(version ? versionJson(version) : currentJson(env, item)) })
    if (ctx.method !== 'DELETE') throw methodNotAllowed()
    store.require(ctx.user, item, 'write')
    // Personal cannot delete versions: "API not found" (rclone docs, onedrive backend)
    if (store.driveOfItem(item).kind === 'personal') throw invalidRequest('API not found')
    if (!version) throw invalidRequest('You cannot delete the current version.')
    store.deleteVersion(item, version)
    return empty(204)
  }
  if (action === '/content') {
    if (ctx.method !== 'GET') throw methodNotAllowed()
    // the current version's content is the item's own (onedrive-api-docs#1112)
    if (!version) throw invalidRequest('You cannot get the content of the current version.')
    return empty(302, { Location: env.downloadUrl(item.id, version.blob.path) })
  }
  if (ctx.method !== 'POST') throw methodNotAllowed()
  store.require(ctx.user, item, 'write')
  if (version) store.restoreVersion(item, version, identityOf(ctx.user))
  return empty(204)
}
