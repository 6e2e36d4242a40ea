/** What commands write to the terminal besides their results: notes and progress on stderr. */
import { createRequire } from 'node:module'

/** One note on stderr, prefixed like every odfs message. */
export function say(m: string): void {
  process.stderr.write(`odfs: ${m}\n`)
}

/** A progress bar on stderr when it is a terminal; a no-op otherwise. */
export function progressBar(label: string, total: number): { update(n: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} }
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress')
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% {value}/{total} bytes {speed}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
  const start = Date.now()
  let shown = start
  let last = 0
  bar.start(total, 0, { speed: '' })
  const show = (n: number, now: number) => {
    const s = (now - start) / 1000
    bar.update(n, { speed: s > 0 ? `${(n / s / 1048576).toFixed(1)} MiB/s` : '' })
  }
  return {
    // A download reports every piece the socket reads (16 KiB); the bar is redrawn
    // ten times a second at most, as cli-progress draws it, not formatted for each.
    update(n) {
      last = n
      const now = Date.now()
      if (now - shown < 100 && n < total) return
      shown = now
      show(n, now)
    },
    stop() {
      show(last, Date.now())
      bar.stop()
    },
  }
}
