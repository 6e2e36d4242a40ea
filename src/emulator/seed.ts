/**
 * Seed data. `empty`: every account's drive, the Contoso "Engineering" site with
 * two document libraries (followed by user1 and user2), and the shared items
 * (user2 → user1: folder "Project X" for edit, file "Budget.xlsx" read-only;
 * personal2 → personal1: folder "Holiday Photos", which personal1 has added to
 * their OneDrive as a shortcut). `demo` adds a small realistic tree.
 */
import { ACCOUNTS, CONTOSO, findAccount } from './directory.js'
import type { Store } from './store/index.js'

export async function seed(store: Store, kind: 'demo' | 'empty'): Promise<void> {
  for (const a of ACCOUNTS) store.ensureUserDrive(a)
  const site = store.createSite('Engineering', 'Engineering', CONTOSO.id, ['Documents', 'Specs'])
  const user1 = findAccount('user1')!
  const user2 = findAccount('user2')!
  const p1 = findAccount('personal1')!
  const p2 = findAccount('personal2')!
  store.follow(user1, site.id)
  store.follow(user2, site.id)

  // Shared items (present in both seeds).
  const projectX = store.mkdirp('user2', 'Project X')
  await store.writeFile('user2', 'Project X/plan.txt', 'Project X plan\n1. build\n2. ship\n')
  await store.writeFile('user2', 'Project X/Designs/overview.txt', 'design overview\n')
  const budget = await store.writeFile('user2', 'Budget.xlsx', { size: 24_576, pattern: 'ramp' })
  store.grant(projectX, user1, 'write', user2)
  store.grant(budget, user1, 'read', user2)
  const holiday = store.mkdirp('personal2', 'Holiday Photos')
  await store.writeFile('personal2', 'Holiday Photos/beach.jpg', { size: 150_000, pattern: 'ramp' })
  await store.writeFile('personal2', 'Holiday Photos/sunset.jpg', { size: 90_000, pattern: 'ramp' })
  store.grant(holiday, p1, 'write', p2)
  store.createShortcut(p1, holiday)

  if (kind === 'empty') return

  for (const who of ['user1', 'personal1', 'user2', 'other1']) {
    await store.writeFile(who, 'README.txt', `Welcome to the odfs emulator, ${who}.\nThis drive holds demo data.\n`)
    await store.writeFile(who, 'empty.txt', Buffer.alloc(0))
    await store.writeFile(who, 'Documents/notes.txt', 'Meeting notes\n- odfs demo\n')
    await store.writeFile(who, 'Documents/Report 2025.docx', { size: 48_000, pattern: 'ramp' })
    await store.writeFile(who, 'Documents/Archive/2024/old-plan.txt', 'an old plan\n')
    await store.writeFile(who, 'Photos/cat.jpg', { size: 200_000, pattern: 'ramp' })
    await store.writeFile(who, 'Photos/dog.png', { size: 1_500_000, pattern: 'ramp' })
    await store.writeFile(who, 'Photos/Vacation/lake.jpg', { size: 350_000, pattern: 'ramp' })
  }
  const [docs, specs] = site.driveIds
  await store.writeFile(docs!, 'Team Handbook.txt', 'Engineering handbook\n')
  await store.writeFile(docs!, 'Designs/spec-v1.txt', 'spec v1\n')
  await store.writeFile(specs!, 'api.md', '# API\n')
}
