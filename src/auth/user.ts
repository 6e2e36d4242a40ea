/**
 * `odfs login --user NAME`: an admin signs in on behalf of a service account.
 * The account is looked up in the passwd database (getent, so NSS/LDAP users
 * work); its tokens go to a file under its home, owned by it.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { AuthError } from './errors.js'
import { currentUser } from '../config/index.js'
import type { StoreUser } from './token-store.js'

const run = promisify(execFile)

export async function lookupUser(name: string | undefined): Promise<StoreUser> {
  const me = currentUser()
  if (name === undefined || name === me.name) return me
  if (!/^[a-z_][a-z0-9_.-]*\$?$/i.test(name)) throw new AuthError('TOKEN_STORE', `--user ${JSON.stringify(name)} is not a valid user name`)
  let line: string
  try {
    line = (await run('getent', ['passwd', name])).stdout.split('\n')[0] ?? ''
  } catch {
    throw new AuthError('TOKEN_STORE', `--user ${name}: no such user`)
  }
  const f = line.split(':')
  if (f.length < 7) throw new AuthError('TOKEN_STORE', `--user ${name}: no such user`)
  const uid = Number(f[2])
  if (me.uid !== 0 && uid !== me.uid) throw new AuthError('TOKEN_STORE', `--user ${name}: only root may sign in for another user`)
  return { name, uid, gid: Number(f[3]), home: f[5]!, other: uid !== me.uid }
}
