// Every odfs command, one module each. Add new commands here.
import type { CommandModule } from 'yargs'

export const commands: CommandModule<any, any>[] = []
import { gatewayCommand } from './gateway.js'
import { loginCommand } from './login.js'
import { logoutCommand } from './logout.js'
import { statusCommand } from './status.js'
commands.push(gatewayCommand, loginCommand, logoutCommand, statusCommand)
import { emulatorCommand } from './emulator.js'
commands.push(emulatorCommand)
import { lsCommand } from './ls.js'
import { putCommand } from './put.js'
import { getCommand } from './get.js'
import { hashCommand } from './hash.js'
commands.push(lsCommand, putCommand, getCommand, hashCommand)
import { demoCommand } from './demo.js'
commands.push(demoCommand)
import { mountCommand } from './mount.js'
import { unmountCommand } from './unmount.js'
import { syncCommand } from './sync.js'
commands.push(mountCommand, unmountCommand, syncCommand)
import { sharedCommand } from './shared.js'
commands.push(sharedCommand)
