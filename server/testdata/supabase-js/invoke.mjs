// Calls Supabase Edge Functions through supabase-js `functions.invoke`, the way a web app does,
// and prints one JSON line per call for server/conformance_test.go.
//
// Environment:
//   SUPABASE_URL           the API URL, e.g. http://127.0.0.1:54321 (required)
//   SUPABASE_KEY           the client's key: a legacy anon JWT or an sb_publishable_… key (required)
//   SUPABASE_ACCESS_TOKEN  a user's access token; empty means no signed-in user
//
// Argument: a JSON array of calls, each {"function": name, "method": "POST", "body": {...}};
// function defaults to sync-user-symbols, method to POST. Without it, one POST of
// {"symbols":["AAPL"],"source":"watchlist"}.
//
// Output, one line per call:
//   {"status": 200, "data": <parsed body>, "error": null}
//   {"status": 400, "data": null, "error": {"name": "FunctionsHttpError", "message": "…", "status": 400, "body": <parsed body>}}
// FunctionsHttpError (non-2xx) carries the Response as error.context: its body is read and parsed
// as JSON when it is JSON, else kept as text. FunctionsFetchError/FunctionsRelayError have no
// status unless a Response came with them.
//
// Run by hand: SUPABASE_URL=http://127.0.0.1:54321 SUPABASE_KEY=<anon key> node invoke.mjs
import { createClient } from '@supabase/supabase-js'

const url = process.env.SUPABASE_URL
const key = process.env.SUPABASE_KEY
const token = process.env.SUPABASE_ACCESS_TOKEN ?? ''
if (!url || !key) {
  console.error('invoke.mjs: set SUPABASE_URL and SUPABASE_KEY')
  process.exit(2)
}
const calls = process.argv[2]
  ? JSON.parse(process.argv[2])
  : [{ body: { symbols: ['AAPL'], source: 'watchlist' } }]

const options = { auth: { persistSession: false, autoRefreshToken: false } }
if (token) {
  // What a signed-in session gives supabase-js: the client asks for the session's access token
  // before each request and sends it as `Authorization: Bearer <token>` (the key stays in
  // `apikey`). The accessToken option feeds that same path without an Auth server.
  options.accessToken = async () => token
}
if (typeof globalThis.WebSocket === 'undefined') {
  // supabase-js ≥ 2.110 builds its Realtime client in createClient and needs a WebSocket
  // constructor there; Node.js < 22 has none. Realtime is never connected here.
  options.realtime = { transport: (await import('ws')).WebSocket }
}
const client = createClient(url, key, options)

for (const call of calls) {
  const { data, error, response } = await client.functions.invoke(call.function ?? 'sync-user-symbols', {
    method: call.method ?? 'POST',
    body: call.body,
  })
  const out = { status: response?.status ?? null, data: data ?? null, error: null }
  if (error) {
    out.error = { name: error.name, message: error.message, status: null, body: null }
    const res = error.context instanceof Response ? error.context : undefined
    if (res) {
      out.error.status = res.status
      const text = await res.text()
      try {
        out.error.body = JSON.parse(text)
      } catch {
        out.error.body = text
      }
    }
  }
  console.log(JSON.stringify(out))
}
