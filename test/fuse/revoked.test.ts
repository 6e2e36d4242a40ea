// A revoked sign-in while a mount runs: files written and closed stay in the
// write-back spool, odfs sync names the cause and the fix, and after odfs login the
// same daemon delivers them (no remount).
import t from 'tap'
import { join } from 'node:path'
import { remoteSums } from './sums.js'
import { world, sh } from './support.js'

t.test('a revoked sign-in mid-run: closed files stay spooled, odfs sync names the cause and the fix, odfs login delivers them without a remount', async (t) => {
  const w = await world(t)
  // Files written and closed (they wait for the write-back delay), then the grant is revoked.
  const m = await w.mount(['--write-back', '600'])
  const dir = join(m.mnt, 'My files/revoked')
  const write = await sh(`mkdir '${dir}' && for i in 1 2 3 4 5; do head -c $((i * 3000)) /dev/urandom > '${dir}'/r$i; done; cd '${dir}' && sha256sum r*`)
  t.equal(write.code, 0, write.stderr)
  w.emu.identity.revoke('user1')
  const sync = await w.odfs(['sync', m.mnt])
  t.not(sync.code, 0, 'odfs sync fails')
  t.match(sync.stderr, /odfs login/, 'and names the fix')
  t.match(sync.stderr, /revoked|sign(ed)? ?in|expired/i, 'and the cause')
  t.match(sync.stderr, /5 file\(s\) could not be uploaded; they stay in the write-back spool/)
  w.emu.identity.setAutoConsent('user1')
  const login = await w.odfs(['login', '--token-store', 'file'])
  w.emu.identity.setAutoConsent(undefined)
  t.equal(login.code, 0, login.stderr)
  const again = await w.odfs(['sync', m.mnt])
  t.equal(again.code, 0, again.stderr)
  const expected = new Map(write.stdout.split('\n').filter(Boolean).map((l) => { const [s, n] = l.split(/\s+/); return [n!, s!] as const }))
  t.same(Object.fromEntries(await remoteSums(w, 'revoked')), Object.fromEntries(expected), 'every file arrived with its bytes, same daemon')
  t.equal(m.proc.exitCode, null, 'no remount: the first daemon is still running')
  const r = await m.stop()
  t.equal(r.code, 0, r.stderr)
})
