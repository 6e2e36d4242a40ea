// Runs the odfs CLI from source (tests spawn it with tap's TypeScript loader).
import { main } from '../../src/cli/main.js'

await main(process.argv.slice(2))
