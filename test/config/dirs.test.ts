// Where odfs keeps a user's files (src/config/dirs.ts): the caller's XDG variables
// count only when acting for oneself; for another user (root's --user) everything
// lives under that user's passwd home.
import t from 'tap'
import { odfsDirs } from '../../src/config/index.js'

const XDG = { HOME: '/home/me', XDG_CONFIG_HOME: '/x/config', XDG_STATE_HOME: '/x/state', XDG_CACHE_HOME: '/x/cache', XDG_RUNTIME_DIR: '/run/user/1000' }
const me = { name: 'me', home: '/passwd/me', other: false }
const alice = { name: 'alice', home: '/home/alice', other: true }

/** [what, user, environment, config, state, cache base, control sockets] */
const cases: [string, typeof me, NodeJS.ProcessEnv, string, string, string, string][] = [
  ['oneself: the XDG variables', me, XDG, '/x/config', '/x/state', '/x/cache', '/run/user/1000/odfs'],
  ['oneself without XDG variables (a relative one does not count): under $HOME', me, { HOME: '/home/me', XDG_STATE_HOME: 'rel' },
    '/home/me/.config', '/home/me/.local/state', '/home/me/.cache', '/home/me/.cache/odfs/me/run'],
  ['oneself without HOME: the passwd home', me, {}, '/passwd/me/.config', '/passwd/me/.local/state', '/passwd/me/.cache', '/passwd/me/.cache/odfs/me/run'],
  ["another user (--user): their passwd home, never the caller's variables", alice, XDG,
    '/home/alice/.config', '/home/alice/.local/state', '/home/alice/.cache', '/home/alice/.cache/odfs/alice/run'],
]

for (const [what, user, env, config, state, cache, sockets] of cases) {
  t.test(what, async (t) => {
    t.same(odfsDirs(user, env), {
      config: `${config}/odfs`,
      state: `${state}/odfs`,
      uploads: `${state}/odfs/uploads`,
      mountCache: `${cache}/odfs/${user.name}`,
      controlSockets: sockets,
    })
  })
}
