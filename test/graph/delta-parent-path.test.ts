// odfs's delta client does not depend on parentReference.path. The service sends it in
// OneDrive for Business delta and leaves it out of OneDrive Personal delta, and where it
// is sent it goes stale: renaming a folder does not send its descendants again
// (docs/emulator/delta-parent-path.md). DeltaCursor's batches must let a consumer place
// every item by id alone, on both kinds of drive.
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type DriveItem } from '../../src/graph/index.js'

let emu: TestEmulator

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
})
t.teardown(() => emu.close())

/** What a consumer keeps from delta: name and parent id per item id, nothing else. */
class IdTree {
  readonly #nodes = new Map<string, { name: string; parentId?: string }>()
  rootId = ''

  apply(items: DriveItem[]): void {
    for (const it of items) {
      if (it.deleted) {
        this.#nodes.delete(it.id)
        continue
      }
      if (it.root) {
        this.rootId = it.id
        continue
      }
      this.#nodes.set(it.id, { name: it.name!, parentId: it.parentReference?.id })
    }
  }

  pathOf(id: string): string | undefined {
    const parts: string[] = []
    for (let cur = id; cur !== this.rootId; ) {
      const n = this.#nodes.get(cur)
      if (!n?.parentId) return undefined
      parts.unshift(n.name)
      cur = n.parentId
    }
    return parts.join('/')
  }
}

for (const [handle, driveType] of [['user1', 'business'], ['personal1', 'personal']] as const) {
  t.test(`${driveType}: delta batches place every item by id`, async (t) => {
    const token = await tokenFor(emu, handle)
    const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
    const drive = await client.getMyDrive()
    t.equal(drive.driveType, driveType)
    await emu.store.writeFile(handle, 'DP/outer/inner/deep.txt', 'deep')
    await emu.store.createMany(handle, 'DP/outer/many', 250)
    const deepId = emu.store.itemByPath(handle, 'DP/outer/inner/deep.txt')!.id
    const outerId = emu.store.itemByPath(handle, 'DP/outer')!.id

    const cursor = client.delta(drive.id)
    const first = await cursor.next()
    t.ok(first.pages > 1, `the enumeration spans pages (${first.pages})`)
    const tree = new IdTree()
    tree.apply(first.items)
    t.equal(tree.pathOf(deepId), 'DP/outer/inner/deep.txt', 'placed by parent ids alone')
    const placed = first.items.filter((i) => !i.root).map((i) => tree.pathOf(i.id))
    t.notOk(placed.includes(undefined), 'every item of the enumeration is placed')
    const withPath = first.items.filter((i) => !i.root && i.parentReference?.path !== undefined)
    // The two cases this test stands for: the path is there on Business, absent on Personal.
    if (driveType === 'business') t.equal(withPath.length, first.items.length - 1, 'Business delta carries parentReference.path')
    else t.equal(withPath.length, 0, 'Personal delta has no parentReference.path')
    const deepBefore = first.items.find((i) => i.id === deepId)!

    // Rename a folder: the next batch does not send its descendants again.
    await client.move({ driveId: drive.id, itemId: outerId }, { name: 'renamed' })
    const second = await cursor.next()
    t.ok(second.items.some((i) => i.id === outerId), 'the renamed folder is in the next batch')
    t.notOk(second.items.some((i) => i.id === deepId), 'its descendants are not')
    tree.apply(second.items)
    t.equal(tree.pathOf(deepId), 'DP/renamed/inner/deep.txt', 'the id tree follows the rename')
    if (driveType === 'business') {
      t.match(deepBefore.parentReference?.path, /\/root:\/DP\/outer\/inner$/, 'the last path the service sent for it is now stale')
    }

    // Deletes: Business sends no name; ids are enough.
    await client.deleteItem({ driveId: drive.id, itemId: deepId })
    const third = await cursor.next()
    tree.apply(third.items)
    t.equal(tree.pathOf(deepId), undefined, 'the deleted item is gone from the id tree')
  })
}
