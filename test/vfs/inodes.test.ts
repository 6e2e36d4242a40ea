// Inode numbers from identities (src/vfs/inodes.ts): the same identity always has
// the same number, in this table and in a new one (the next mount); numbers that
// meet are told apart; a new file's first upload keeps the number it had.
import t from 'tap'
import { InodeTable } from '../../src/vfs/inodes.js'

t.test('the same identity has the same number, in every table', async (t) => {
  const a = new InodeTable()
  const b = new InodeTable()
  const keys = Array.from({ length: 1000 }, (_, i) => `i:b!drive:01ITEM${i}`)
  const first = keys.map((k) => a.of(k))
  const reversed = [...keys].reverse().map((k) => b.of(k)).reverse()
  t.same(reversed, first, 'the order of lookups does not matter')
  t.same(keys.map((k) => a.of(k)), first, 'asking again gives the same number')
  t.equal(new Set(first).size, keys.length, 'all distinct')
  t.ok(first.every((n) => n >= 2 && n <= 0xffffffff), 'none is 0 or the root\'s 1, all fit 32 bits')
})

t.test('identities whose hashes meet get distinct numbers, for good', async (t) => {
  const table = new InodeTable(() => 7)
  const x = table.of('i:d:x')
  const y = table.of('i:d:y')
  const z = table.of('i:d:z')
  t.equal(x, 7)
  t.not(y, x)
  t.equal(new Set([x, y, z]).size, 3)
  t.equal(table.of('i:d:y'), y, 'a number once given stays')
  const top = new InodeTable(() => 0xffffffff)
  top.of('a')
  t.equal(top.of('b'), 2, 'past the last number it wraps to 2')
})

t.test('a new file keeps its number when it gets its item id', async (t) => {
  const table = new InodeTable()
  const local = table.of('l:42')
  table.carry('l:42', 'i:d:NEWITEM')
  t.equal(table.of('i:d:NEWITEM'), local)
  table.set('root', 1)
  t.equal(table.of('root'), 1)
})
