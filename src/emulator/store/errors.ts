/** An error the emulator answers with a Graph-shaped JSON body (docs/graph-service.md §9). */
export class EmuError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly inner?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

export const notFound = (what = 'The resource could not be found.') => new EmuError(404, 'itemNotFound', what)
export const accessDenied = (what = 'Access denied') => new EmuError(403, 'accessDenied', what)
export const invalidRequest = (what: string, inner?: string) => new EmuError(400, 'invalidRequest', what, inner)
export const nameConflict = (name: string) =>
  new EmuError(409, 'nameAlreadyExists', `The specified item name "${name}" already exists in this folder.`)
