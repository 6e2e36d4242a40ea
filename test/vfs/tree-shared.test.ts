// Shared with me: two shared items of one name are told apart the same way on
// every run, whichever order the service (or the sources: sharedWithMe, search,
// links) hands them over in.
import t from 'tap'
import type { DriveClient, SharedEntry } from '../../src/graph/index.js'
import { TreeResolver } from '../../src/vfs/index.js'

const entry = (name: string, driveId: string, itemId: string, source: SharedEntry['source']): SharedEntry => ({
  name, ref: { driveId, itemId }, folder: false, size: 1, mtime: undefined, source,
})

function clientAnswering(list: SharedEntry[]): DriveClient {
  return { listSharedWithMe: async () => list } as unknown as DriveClient
}

t.test('duplicate names get the same suffix whatever the order', async (t) => {
  const a = entry('Report.txt', 'drive-b', 'item-1', 'sharedWithMe')
  const b = entry('report.txt', 'drive-a', 'item-2', 'link')
  const c = entry('Budget.xlsx', 'drive-a', 'item-3', 'search')
  const names = async (list: SharedEntry[]) => {
    const shared = await new TreeResolver(clientAnswering(list)).sharedEntries()
    return Object.fromEntries(shared.map((e) => [e.ref.itemId, e.name]))
  }
  const first = await names([a, b, c])
  const second = await names([c, b, a])
  t.same(first, second, 'the same names in either order')
  t.same(first, { 'item-1': 'Report.txt (2)', 'item-2': 'report.txt', 'item-3': 'Budget.xlsx' })
})
