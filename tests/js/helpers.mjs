// Helpers for the protocol-compatibility tests: the real `potentia` binary, HTTP sign-up and
// canvases, stock `WebsocketProvider`s, and waiting for a condition with a deadline.
//
// Environment (set by server/tests/js_clients.rs):
//   POTENTIA_BIN  path of the built `potentia` binary
//   DATABASE_URL  a database for this test file (empty or migrated; the binary migrates it)
//   POTENTIA_JS_SERVER_LOGS=1  echo the server's log lines to stderr while the tests run

import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { isDeepStrictEqual } from 'node:util'

import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

export const JWT_SECRET = 'js-clients-test-secret-js-clients-test-secret'

/** Every wait in these tests gives up after this long unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000

const STARTUP_TIMEOUT_MS = 60_000
const EXIT_TIMEOUT_MS = 20_000
const KEPT_LOG_LINES = 200

function requiredEnv (name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: run these tests with \`cargo test -p potentia-server --test js_clients\``)
  }
  return value
}

/**
 * Polls `condition` until it returns a truthy value (which is returned), or throws after
 * `timeoutMs` with `what` and the last error the condition threw, if any.
 */
export async function waitFor (what, condition, { timeoutMs = DEFAULT_TIMEOUT_MS, intervalMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      const value = await condition()
      if (value) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError.message ?? lastError})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/**
 * Polls `read()` until it deep-equals `expected`; on timeout throws with the last value read,
 * so that a failure shows what the client had instead.
 */
export async function waitUntilEqual (what, read, expected, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  let last
  try {
    await waitFor(what, () => {
      last = read()
      return isDeepStrictEqual(last, expected)
    }, { timeoutMs })
  } catch (error) {
    throw new Error(`${error.message}: expected ${JSON.stringify(expected)}, last saw ${JSON.stringify(last)}`)
  }
}

/** Resolves with the first emission of `event` on `emitter`, or rejects after `timeoutMs`. */
export async function nextEvent (emitter, event, what, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return once(emitter, event, { signal: AbortSignal.timeout(timeoutMs) }).catch((error) => {
    if (error.name === 'AbortError') throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    throw error
  })
}

/**
 * One `potentia serve` process. `start()` binds a free loopback port the first time and the
 * same port on every later start, so that clients reconnect to the address they know.
 */
export class PotentiaServer {
  /** `env`: more environment for the server process (e.g. the `POTENTIA_AI_*` flags). */
  constructor ({ databaseUrl = requiredEnv('DATABASE_URL'), bin = requiredEnv('POTENTIA_BIN'), env = {} } = {}) {
    this.databaseUrl = databaseUrl
    this.bin = bin
    this.extraEnv = env
    this.port = 0
    this.child = null
    this.exited = null
    this.logLines = []
  }

  get httpUrl () {
    return `http://127.0.0.1:${this.port}`
  }

  /** The base URL to give `WebsocketProvider` (the canvas id is appended as the room). */
  get wsUrl () {
    return `ws://127.0.0.1:${this.port}/ws/canvas`
  }

  /** The last log lines of the server, for failure messages. */
  recentLogs () {
    return this.logLines.join('\n')
  }

  async start () {
    if (this.child) throw new Error('the server is already running')
    const child = spawn(this.bin, ['serve'], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: this.databaseUrl,
        POTENTIA_JWT_SECRET: JWT_SECRET,
        POTENTIA_BIND: `127.0.0.1:${this.port}`,
        POTENTIA_MODE: 'dev',
        POTENTIA_LOG_FORMAT: 'json',
        POTENTIA_SHUTDOWN_GRACE_SECS: '5',
        // Every test signs up its own users from 127.0.0.1.
        POTENTIA_AUTH_RATE_PER_IP: '10000',
        POTENTIA_AUTH_RATE_PER_ACCOUNT: '10000',
        RUST_LOG: process.env.POTENTIA_JS_RUST_LOG ?? 'info',
        NO_COLOR: '1',
        ...this.extraEnv
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child = child
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    child.once('exit', () => {
      if (this.child === child) this.child = null
    })

    let announce
    const listening = new Promise((resolve) => { announce = resolve })
    const keep = (line) => {
      this.logLines.push(line)
      if (this.logLines.length > KEPT_LOG_LINES) this.logLines.shift()
      if (process.env.POTENTIA_JS_SERVER_LOGS === '1') process.stderr.write(`[potentia:${this.port}] ${line}\n`)
    }
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line)
      try {
        const entry = JSON.parse(line)
        const message = entry.message ?? entry.fields?.message
        const addr = entry.addr ?? entry.fields?.addr
        if (message === 'listening' && addr) announce(addr)
      } catch {
        // not a JSON line (e.g. a panic message): kept for the failure output only
      }
    })
    createInterface({ input: child.stderr }).on('line', keep)

    const startupTimeout = AbortSignal.timeout(STARTUP_TIMEOUT_MS)
    const outcome = await Promise.race([
      listening.then((addr) => ({ addr })),
      this.exited.then((exit) => ({ exit })),
      once(startupTimeout, 'abort').then(() => ({ timeout: true }))
    ])
    if (!outcome.addr) {
      await this.kill()
      const why = outcome.exit ? `exited (${JSON.stringify(outcome.exit)})` : `did not log "listening" within ${STARTUP_TIMEOUT_MS} ms`
      throw new Error(`the server ${why}; its log:\n${this.recentLogs()}`)
    }
    this.port = Number(outcome.addr.split(':').pop())
    await waitFor('GET /ready to answer 200', async () => {
      const response = await fetch(`${this.httpUrl}/ready`)
      await response.arrayBuffer()
      return response.status === 200
    }, { timeoutMs: STARTUP_TIMEOUT_MS, intervalMs: 50 })
    return this
  }

  /** SIGTERM, then wait for a clean exit (status 0). */
  async stop () {
    const child = this.child
    if (!child) return
    child.kill('SIGTERM')
    const timeout = AbortSignal.timeout(EXIT_TIMEOUT_MS)
    const exit = await Promise.race([this.exited, once(timeout, 'abort').then(() => null)])
    if (!exit) {
      await this.kill()
      throw new Error(`the server did not exit within ${EXIT_TIMEOUT_MS} ms of SIGTERM; its log:\n${this.recentLogs()}`)
    }
    if (exit.code !== 0) {
      throw new Error(`the server exited with ${JSON.stringify(exit)} after SIGTERM; its log:\n${this.recentLogs()}`)
    }
  }

  /** SIGKILL, for cleaning up after a failure. Never throws. */
  async kill () {
    const child = this.child
    if (!child) return
    child.kill('SIGKILL')
    await this.exited
  }

  async restart () {
    await this.stop()
    await this.start()
  }

  /** Sends a JSON request; throws unless the status is `expect`. Returns the parsed body. */
  async api (method, path, { token, body, expect = 200 } = {}) {
    const headers = {}
    if (token) headers.authorization = `Bearer ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${this.httpUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    const text = await response.text()
    if (response.status !== expect) {
      throw new Error(`${method} ${path}: expected ${expect}, got ${response.status}: ${text}`)
    }
    return text ? JSON.parse(text) : null
  }

  /** Signs up a fresh user: `{ id, email, token }`. */
  async signUp (name = 'Tester') {
    const email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${randomUUID()}@example.org`
    const session = await this.api('POST', '/api/v1/auth/signup', {
      body: { email, password: 'correct horse battery staple', name },
      expect: 201
    })
    return { id: session.user.id, email, token: session.access_token }
  }

  /** Creates a personal canvas owned by `owner`; returns its id. */
  async createCanvas (owner, title = 'Sync test canvas') {
    const canvas = await this.api('POST', '/api/v1/canvases', { token: owner.token, body: { title }, expect: 201 })
    return canvas.id
  }

  /** Makes `invitee` a member of the canvas with `role` through the invitation flow. */
  async addCanvasMember (owner, canvasId, invitee, role) {
    const created = await this.api('POST', `/api/v1/canvases/${canvasId}/invitations`, {
      token: owner.token,
      body: { user_id: invitee.id, role },
      expect: 201
    })
    await this.api('POST', '/api/v1/invitations/accept', {
      token: invitee.token,
      body: { token: created.token },
      expect: 200
    })
  }
}

/**
 * A stock `WebsocketProvider` on the canvas, with a fresh `Y.Doc`. BroadcastChannel is off:
 * Node 20 has one, and providers in one process would otherwise sync with each other directly,
 * bypassing the server under test.
 */
export function connectProvider (server, canvasId, user, options = {}) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(server.wsUrl, canvasId, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token: user.token },
    disableBc: true,
    ...options
  })
  return { doc, provider }
}

/** Waits until the provider has completed the sync handshake with the server. */
export async function waitForSynced (provider, what = 'the provider to sync', timeoutMs = DEFAULT_TIMEOUT_MS) {
  await waitFor(what, () => provider.synced, { timeoutMs })
}

/** Fetches the document over HTTP (`GET …/state`) into a fresh `Y.Doc`. */
export async function fetchDocument (server, canvasId, user) {
  const response = await fetch(`${server.httpUrl}/api/v1/canvases/${canvasId}/state`, {
    headers: { authorization: `Bearer ${user.token}` }
  })
  const body = new Uint8Array(await response.arrayBuffer())
  if (response.status !== 200) {
    throw new Error(`GET state: expected 200, got ${response.status}: ${Buffer.from(body).toString()}`)
  }
  const doc = new Y.Doc()
  Y.applyUpdate(doc, body)
  return { doc, contentType: response.headers.get('content-type') }
}

/**
 * Tracks what a test opens so that `cleanUp()` (call it from `t.after`) destroys every provider
 * and stops every server even when the test failed half-way.
 */
export class Fixture {
  constructor () {
    this.providers = []
    this.servers = []
  }

  /** `env`: more environment for the server process (see `PotentiaServer`). */
  async startServer (env = {}) {
    const server = new PotentiaServer({ env })
    this.servers.push(server)
    await server.start()
    return server
  }

  connect (server, canvasId, user, options) {
    const client = connectProvider(server, canvasId, user, options)
    this.providers.push(client.provider)
    return client
  }

  async cleanUp () {
    for (const provider of this.providers) {
      provider.destroy()
      // The awareness (and its timer) goes with the document.
      provider.doc.destroy()
    }
    this.providers = []
    const failures = []
    for (const server of this.servers) {
      try {
        await server.stop()
      } catch (error) {
        failures.push(error)
        await server.kill()
      }
    }
    this.servers = []
    if (failures.length) throw failures[0]
  }
}

