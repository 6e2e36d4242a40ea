/** Collect the process's unhandled rejections for the length of a test (the daemon would die of one). */
export function collectUnhandled(t: { teardown(f: () => unknown): void }): unknown[] {
  const unhandled: unknown[] = []
  const onUnhandled = (e: unknown) => unhandled.push(e)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled)
  })
  return unhandled
}
