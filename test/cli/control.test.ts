// Where `odfs status` looks for mounts (src/cli/control.ts): our own socket
// directory, or, for root's `odfs status --user NAME`, the places NAME's daemons put
// theirs (its runtime directory, the cache under its home).
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { controlSocketDir, controlSocketDirs, runningMounts, serveControl } from '../../src/cli/control.js'

t.test('another user\'s mounts are found in its directories', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'odfs-control-'))
  const alice = { name: 'alice', uid: 4242, home, other: true }
  const dirs = controlSocketDirs(alice, { XDG_RUNTIME_DIR: '/run/user/0' })
  t.same(dirs, ['/run/user/4242/odfs', join(home, '.cache', 'odfs', 'alice', 'run'), '/run/user/0/odfs'], 'hers, then the asker\'s own (mounts it made for her with --user)')
  t.same(controlSocketDirs(undefined, { XDG_RUNTIME_DIR: '/run/user/0' }), ['/run/user/0/odfs'], 'our own: the one our environment names')
  t.same(controlSocketDirs({ ...alice, other: false }, { XDG_CACHE_HOME: '/c' }), [controlSocketDir({ XDG_CACHE_HOME: '/c' })])

  // alice's daemon (started by alice, without XDG_RUNTIME_DIR) answers in her cache.
  const servers = [
    await serveControl(join(dirs[1]!, 'a.sock'), async (req, send) => send({ mountpoint: '/home/alice/od', pending: [] })),
    // a second socket of the same mount (a stale name) is listed once
    await serveControl(join(dirs[1]!, 'b.sock'), async (req, send) => send({ mountpoint: '/home/alice/od', pending: [] })),
  ]
  t.teardown(async () => {
    for (const s of servers) await new Promise((r) => s.close(r))
    await rm(home, { recursive: true, force: true })
  })
  const found = await runningMounts(dirs)
  t.same(found.map((r) => r.mountpoint), ['/home/alice/od'])

  // The asker (root) runs two daemons in its own directory: one it started with
  // --user alice, and its own mount. `status --user alice` lists the first only.
  const own = join(home, 'root-run')
  servers.push(
    await serveControl(join(own, 'c.sock'), async (req, send) => send({ mountpoint: '/srv/alice-od', user: 'alice', pending: [] })),
    await serveControl(join(own, 'd.sock'), async (req, send) => send({ mountpoint: '/root/od', user: 'root', pending: [] })),
  )
  t.same((await runningMounts([dirs[1]!, own], 'alice')).map((r) => r.mountpoint), ['/home/alice/od', '/srv/alice-od'], 'alice\'s, wherever their sockets are')
  t.same((await runningMounts([own])).map((r) => r.mountpoint), ['/srv/alice-od', '/root/od'], 'without a user: every mount that answers')
  t.same(await runningMounts([join(home, 'nothing-here')]), [], 'no directory, no mounts')
})
