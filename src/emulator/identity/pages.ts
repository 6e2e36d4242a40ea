/**
 * The few HTML pages a person sees during an emulated sign-in: account picker
 * and consent (authorize), device-code entry (/devicelogin), result and error
 * pages, and the form_post auto-submit page. Plain HTML, no scripts except the
 * form_post auto-submit, everything escaped.
 */
import { ACCOUNTS, type AppRegistration } from '../directory.js'
import { escapeHtml as e } from './http.js'

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:34em;margin:3em auto;padding:0 1em}
.err{color:#a4262c;border:1px solid #a4262c;padding:.5em}label{display:block;margin:.6em 0}
button{margin:.8em .6em 0 0;padding:.4em 1.2em}</style></head>
<body><p><b>odfs emulator</b> &middot; Microsoft identity platform</p><h1>${e(title)}</h1>
${body}
</body></html>
`
}

function accountOptions(selected?: string): string {
  const sel = selected?.toLowerCase()
  return ACCOUNTS.map((a) => {
    const on = sel !== undefined && (a.handle === sel || a.upn.toLowerCase() === sel) ? ' selected' : ''
    return `<option value="${e(a.handle)}"${on}>${e(a.displayName)} &lt;${e(a.upn)}&gt; (${e(a.handle)}, ${a.kind})</option>`
  }).join('\n')
}

export function errorPage(title: string, description: string): string {
  return page(title, `<p class="err">${e(description)}</p>`)
}

export function messagePage(title: string, text: string): string {
  return page(title, `<p>${e(text)}</p>`)
}

/** Account picker + consent for /authorize; posts every original parameter back. */
export function consentPage(action: string, params: Record<string, string>, app: AppRegistration, scopes: string[], error?: string): string {
  const hidden = Object.entries(params)
    .filter(([k]) => !k.startsWith('emulator_'))
    .map(([k, v]) => `<input type="hidden" name="${e(k)}" value="${e(v)}">`).join('\n')
  return page('Pick an account', `${error ? `<p class="err">${e(error)}</p>` : ''}
<p><b>${e(app.displayName)}</b> (${e(app.clientId)}) wants to:</p>
<ul>${scopes.map((s) => `<li>${e(s)}</li>`).join('')}</ul>
<form method="post" action="${e(action)}">
${hidden}
<label>Account <select name="emulator_account">${accountOptions(params.login_hint)}</select></label>
<button type="submit" name="emulator_action" value="accept">Accept</button>
<button type="submit" name="emulator_action" value="decline">Cancel</button>
</form>`)
}

export function deviceLoginPage(code: string, error?: string): string {
  return page('Enter code', `${error ? `<p class="err">${e(error)}</p>` : ''}
<p>Enter the code displayed on your app or device, and pick the account to sign in with.</p>
<form method="post" action="/devicelogin">
<label>Code <input name="user_code" value="${e(code)}" autocomplete="off" autofocus></label>
<label>Account <select name="account">${accountOptions()}</select></label>
<button type="submit" name="action" value="approve">Continue</button>
<button type="submit" name="action" value="decline">Cancel</button>
</form>`)
}

export function formPostPage(target: string, fields: Record<string, string>): string {
  const inputs = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${e(k)}" value="${e(v)}">`).join('\n')
  return `<!DOCTYPE html>
<html><head><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="POST" name="hiddenform" action="${e(target)}">
${inputs}
<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"></noscript>
</form></body></html>
`
}
