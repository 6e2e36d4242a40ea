// Runs the emulator in its own process (so a test can watch its memory): prints
// the info JSON as one line, closes on SIGTERM. Options come as JSON in argv[2].
import { startEmulator } from '../../src/emulator/index.js'

const opts = JSON.parse(process.argv[2] ?? '{}')
const emu = await startEmulator({ seed: 'empty', deviceCodeIntervalSec: 0, ...opts })
process.stdout.write(JSON.stringify(emu.info) + '\n')
process.on('SIGTERM', () => {
  void emu.close().then(() => process.exit(0))
})
