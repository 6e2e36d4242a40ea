// Every odfs command, one module each. Add new commands here.
import type { CommandModule } from 'yargs'

export const commands: CommandModule<any, any>[] = []
