/**
 * `odfs shared add LINK | list | remove NAME`: sharing links the user wants under
 * `Shared with me` (what the retired sharedWithMe list no longer shows, e.g. a
 * link someone sent). `add` redeems the link once (the signed-in user gains the
 * access the link grants) and remembers it (see ../shared-links.ts); every later
 * mount and `odfs ls/get/put` shows the item under `Shared with me`.
 */
import type { CommandModule } from 'yargs'
import { OdfsError } from '../../common/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'
import type { LinkStore } from '../shared-links.js'

interface SharedArgv extends SessionArgv {
  link?: string
  name?: string
}

/** The links of `--user` at the gateway: needs no sign-in. */
async function storeFor(argv: SessionArgv): Promise<LinkStore> {
  const { openContext } = await import('../session.js')
  return (await openContext(argv)).linkStore()
}

function checkLink(link: string): void {
  let u: URL
  try {
    u = new URL(link)
  } catch {
    throw new OdfsError('EINVAL', `not a sharing link: ${JSON.stringify(link)} (expected an https:// URL)`)
  }
  if (u.protocol !== 'https:') throw new OdfsError('EINVAL', 'a sharing link starts with https://')
}

const addCommand: CommandModule<object, SharedArgv> = {
  command: 'add <link>',
  describe: 'Redeem a sharing link and show its item under "Shared with me" from now on',
  builder: (y) => y.positional('link', { type: 'string', demandOption: true }).options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const link = argv.link!.trim()
    checkLink(link)
    const { canonicalDriveId } = await import('../../graph/index.js')
    const { withDrive } = await import('../session.js')
    await withDrive(argv, async ({ session, client, signal }) => {
      const item = await client.resolveShareLink(link, { redeem: true, signal })
      const store = session.linkStore()
      const links = (await store.load()).filter((l) => l.link !== link)
      const entry = {
        name: item.name ?? item.id,
        link,
        ...(item.parentReference?.driveId ? { driveId: canonicalDriveId(item.parentReference.driveId) } : {}),
        itemId: item.id,
        folder: !!item.folder,
        addedAt: new Date().toISOString(),
      }
      links.push(entry)
      await store.save(links)
      process.stderr.write(`odfs: added "${entry.name}" (${entry.folder ? 'folder' : 'file'}); it shows under "Shared with me/${entry.name}" in later mounts and odfs ls\n`)
    })
  },
}

const listCommand: CommandModule<object, SharedArgv> = {
  command: 'list',
  describe: 'List the sharing links added with `odfs shared add` (name, then link)',
  builder: (y) => y.options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const store = await storeFor(argv)
    for (const l of await store.load()) process.stdout.write(`${l.name}\t${l.link}\n`)
  },
}

const removeCommand: CommandModule<object, SharedArgv> = {
  command: 'remove <name>',
  describe: 'Forget a sharing link added with `odfs shared add` (by its name as `list` shows it, or the link)',
  builder: (y) => y.positional('name', { type: 'string', demandOption: true }).options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const store = await storeFor(argv)
    const links = await store.load()
    const key = argv.name!
    let hits = links.filter((l) => l.link === key)
    if (hits.length === 0) hits = links.filter((l) => l.name === key)
    if (hits.length === 0) hits = links.filter((l) => l.name.toLowerCase() === key.toLowerCase())
    if (hits.length === 0) throw new OdfsError('ENOENT', `no shared link named ${JSON.stringify(key)} (see odfs shared list)`)
    if (hits.length > 1) throw new OdfsError('EINVAL', `${hits.length} shared links are named ${JSON.stringify(key)}; give the link itself (see odfs shared list)`)
    await store.save(links.filter((l) => l !== hits[0]))
    process.stderr.write(`odfs: forgot "${hits[0]!.name}"\n`)
  },
}

export const sharedCommand: CommandModule<object, SharedArgv> = {
  builder: (y) => y.command(addCommand).command(listCommand).command(removeCommand).demandCommand(1) as never,
  handler: () => undefined,
}
