/**
 * Where odfs keeps a user's files: the one place that reads the XDG variables.
 *
 * Acting for oneself: `$XDG_CONFIG_HOME`, `$XDG_STATE_HOME` and `$XDG_CACHE_HOME`
 * (each only when absolute, as the XDG Base Directory specification says), else
 * `~/.config`, `~/.local/state` and `~/.cache` under `$HOME` (or the passwd home).
 * Acting for another user (root's `--user NAME`): that user's home from the
 * passwd entry; the caller's XDG variables and HOME describe the caller, not them.
 */
import { homedir, userInfo } from 'node:os'
import { isAbsolute, join } from 'node:path'

/** An OS user odfs acts for (the caller, or `--user NAME`). */
export interface OsUser {
  name: string
  uid: number
  gid: number
  home: string
  /** True when this is not the user running odfs (an admin's `--user NAME`). */
  other: boolean
}

/** The user running odfs. */
export function currentUser(): OsUser {
  const u = userInfo()
  return { name: u.username, uid: u.uid, gid: u.gid, home: u.homedir || homedir(), other: false }
}

export interface OdfsDirs {
  /** `$XDG_CONFIG_HOME/odfs`: the user's gateway policy file. */
  config: string
  /** `$XDG_STATE_HOME/odfs`: tokens, remembered sharing links. */
  state: string
  /** `$XDG_STATE_HOME/odfs/uploads`: resumable upload sessions of `odfs put` (uploadUrls are credentials). */
  uploads: string
  /** `$XDG_CACHE_HOME/odfs/<user>`: the default --cache-dir of a mount (write-back spool, daemon log). */
  mountCache: string
  /** The mount daemons' control sockets: `$XDG_RUNTIME_DIR/odfs`, else `run` in mountCache. */
  controlSockets: string
}

function base(user: Pick<OsUser, 'home' | 'other'>, env: NodeJS.ProcessEnv, variable: string, fallback: string[]): string {
  const v = env[variable]
  if (!user.other && v && isAbsolute(v)) return v
  return join(user.other ? user.home : env.HOME || user.home, ...fallback)
}

/** The odfs directories of `user` (see the module comment). */
export function odfsDirs(user: Pick<OsUser, 'name' | 'home' | 'other'> = currentUser(), env: NodeJS.ProcessEnv = process.env): OdfsDirs {
  const state = join(base(user, env, 'XDG_STATE_HOME', ['.local', 'state']), 'odfs')
  const mountCache = join(base(user, env, 'XDG_CACHE_HOME', ['.cache']), 'odfs', user.name)
  const runtime = !user.other && env.XDG_RUNTIME_DIR && isAbsolute(env.XDG_RUNTIME_DIR) ? join(env.XDG_RUNTIME_DIR, 'odfs') : undefined
  return {
    config: join(base(user, env, 'XDG_CONFIG_HOME', ['.config']), 'odfs'),
    state,
    uploads: join(state, 'uploads'),
    mountCache,
    controlSockets: runtime ?? join(mountCache, 'run'),
  }
}
