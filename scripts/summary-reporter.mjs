// tap reporter: passes the raw TAP stream through, then prints one plain line,
// "N passed, N failed[, N skipped]", from tap's own final summary comment.
// A run with no summary (tap crashed) counts as one failure.
import { Transform } from 'node:stream'

const SUMMARY = /^# \{ total: \d+/

export default class SummaryReporter extends Transform {
  #tail = ''
  #last = ''
  _transform(chunk, _enc, cb) {
    const lines = (this.#tail + chunk.toString()).split('\n')
    this.#tail = lines.pop() ?? ''
    for (const l of lines) if (SUMMARY.test(l)) this.#last = l
    cb(null, chunk)
  }
  _flush(cb) {
    if (SUMMARY.test(this.#tail)) this.#last = this.#tail
    const n = (k) => Number(this.#last.match(new RegExp(`\\b${k}: (\\d+)`))?.[1] ?? 0)
    const skipped = n('skip') + n('todo')
    const failed = this.#last ? n('fail') : 1
    cb(null, `\n${n('pass')} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  }
}
