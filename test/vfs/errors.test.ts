import t from 'tap'
import { constants } from 'node:os'
import { GraphError } from '../../src/graph/index.js'
import { errnoFor, errnoValue } from '../../src/vfs/errors.js'

const g = (status: number, code: string, innerCodes: string[] = [], extra: Partial<{ exhausted: boolean }> = {}) =>
  new GraphError({ status, code, message: 'irrelevant text: itemNotFound', innerCodes, ...extra })

t.test('Graph codes map to errno in one place', async (t) => {
  t.equal(errnoFor(g(404, 'itemNotFound')), 'ENOENT')
  t.equal(errnoFor(g(409, 'nameAlreadyExists')), 'EEXIST')
  t.equal(errnoFor(g(409, 'conflict', ['similarRelationshipNameAlreadyExists'])), 'EEXIST')
  t.equal(errnoFor(g(403, 'accessDenied')), 'EACCES')
  t.equal(errnoFor(g(507, 'quotaLimitReached')), 'ENOSPC')
  t.equal(errnoFor(g(400, 'invalidRequest', ['invalidPath'])), 'EINVAL')
  t.equal(errnoFor(g(400, 'invalidRequest', ['pathIsTooLong'])), 'ENAMETOOLONG')
  t.equal(errnoFor(g(429, 'activityLimitReached', [], { exhausted: true })), 'EIO', 'exhausted retries')
  t.equal(errnoFor(g(404, 'itemNotFound', [], { exhausted: true })), 'EIO')
  t.equal(errnoFor(g(500, 'generalException')), 'EIO')
  t.equal(errnoFor(new Error('boom')), 'EIO')
  t.equal(errnoFor(Object.assign(new Error('x'), { code: 'ENOENT' })), 'ENOENT', 'local errno kept')
  t.equal(errnoFor(g(400, 'invalidRequest')), 'EIO', 'a bad request that is not about names is EIO')
  t.equal(errnoValue('ENOENT'), constants.errno.ENOENT)
})
