// The stock npm Yjs clients (`y-websocket`'s `WebsocketProvider`, `yjs`, `ws`) against the real
// potentia server: the y-websocket wire protocol of ARCHITECTURE §3 and its HTTP fallbacks.
// Each test starts its own server on the database in DATABASE_URL (see helpers.mjs).

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'

import WebSocket from 'ws'
import * as Y from 'yjs'

import {
  Fixture,
  fetchDocument,
  nextEvent,
  waitFor,
  waitForSynced,
  waitUntilEqual
} from './helpers.mjs'

/** A fixture whose providers and servers go away when the test ends, passed or failed. */
function fixtureFor (t) {
  const fixture = new Fixture()
  t.after(() => fixture.cleanUp())
  return fixture
}

/** A running server, an owner and one of their canvases. */
async function ownerWithCanvas (t) {
  const fixture = fixtureFor(t)
  const server = await fixture.startServer()
  const owner = await server.signUp('Owner')
  const canvasId = await server.createCanvas(owner)
  return { fixture, server, owner, canvasId }
}

test('two stock providers on one canvas sync a Y.Text and a Y.Map both ways', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  const b = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')
  await waitForSynced(b.provider, 'provider B to sync')

  a.doc.getText('notes').insert(0, 'hello from A')
  a.doc.getMap('board').set('title', 'Roadmap')
  await waitUntilEqual('B to see A\'s text', () => b.doc.getText('notes').toString(), 'hello from A')
  await waitUntilEqual('B to see A\'s map entry', () => b.doc.getMap('board').toJSON(), { title: 'Roadmap' })

  b.doc.getText('notes').insert(b.doc.getText('notes').length, ', and B')
  b.doc.getMap('board').set('cards', 3)
  await waitUntilEqual('A to see B\'s text', () => a.doc.getText('notes').toString(), 'hello from A, and B')
  await waitUntilEqual('A to see B\'s map entry', () => a.doc.getMap('board').toJSON(), { title: 'Roadmap', cards: 3 })
})

test('edits made while the server is down converge after it returns and are persisted', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  // Reconnect quickly once the server is back (the stock default backs off up to 2.5 s).
  const options = { maxBackoffTime: 200 }
  const a = fixture.connect(server, canvasId, owner, options)
  const b = fixture.connect(server, canvasId, owner, options)
  await waitForSynced(a.provider, 'provider A to sync')
  await waitForSynced(b.provider, 'provider B to sync')
  a.doc.getText('notes').insert(0, 'shared')
  await waitUntilEqual('B to see the text written online', () => b.doc.getText('notes').toString(), 'shared')

  await server.stop()
  await waitFor('both providers to notice the server is gone', () => !a.provider.wsconnected && !b.provider.wsconnected)
  a.doc.getText('notes').insert(0, 'A-offline ')
  a.doc.getMap('board').set('fromA', 'written offline by A')
  b.doc.getText('notes').insert(b.doc.getText('notes').length, ' B-offline')
  b.doc.getMap('board').set('fromB', 'written offline by B')

  await server.start()
  const expectedText = 'A-offline shared B-offline'
  const expectedMap = { fromA: 'written offline by A', fromB: 'written offline by B' }
  await waitUntilEqual('A to receive B\'s offline text', () => a.doc.getText('notes').toString(), expectedText)
  await waitUntilEqual('B to receive A\'s offline text', () => b.doc.getText('notes').toString(), expectedText)
  await waitUntilEqual('A to receive B\'s offline map entry', () => a.doc.getMap('board').toJSON(), expectedMap)
  await waitUntilEqual('B to receive A\'s offline map entry', () => b.doc.getMap('board').toJSON(), expectedMap)

  // Only the database can hold them now: both writers are gone and the server process is new.
  a.provider.destroy()
  b.provider.destroy()
  await server.restart()
  const fresh = fixture.connect(server, canvasId, owner)
  await waitForSynced(fresh.provider, 'a fresh provider to sync after the restart')
  assert.equal(fresh.doc.getText('notes').toString(), expectedText)
  assert.deepEqual(fresh.doc.getMap('board').toJSON(), expectedMap)
})

test('an awareness state set on one client reaches the other', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  const b = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')
  await waitForSynced(b.provider, 'provider B to sync')

  const user = { name: 'Ada', color: '#30bced' }
  a.provider.awareness.setLocalStateField('user', user)
  await waitUntilEqual('B to see A\'s awareness state',
    () => b.provider.awareness.getStates().get(a.doc.clientID)?.user, user)
})

test('a client that disconnects disappears from the other client\'s awareness', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  const b = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')
  await waitForSynced(b.provider, 'provider B to sync')
  a.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  await waitFor('B to see A\'s awareness state', () => b.provider.awareness.getStates().has(a.doc.clientID))

  // `destroy()` sends no removal of its own: the server has to announce it when the socket
  // closes. (Without it, B would drop A only after the 30 s awareness timeout.)
  a.provider.destroy()
  await waitFor('A\'s state to leave B\'s awareness', () => !b.provider.awareness.getStates().has(a.doc.clientID))
  assert.ok(b.provider.awareness.getStates().has(b.doc.clientID), 'B keeps its own state')
})

// The stock provider closes and reopens its socket when no y-websocket message arrived for
// 30 s (`messageReconnectTimeout`; WebSocket pings do not count). The reference server
// (y-websocket's bin/utils.cjs) and ours echo every awareness update to all connections, the
// sender included, so the provider's own 15 s awareness renewal keeps a lone client's socket
// alive.
const STOCK_MESSAGE_TIMEOUT_MS = 30_000

test('a lone stock provider stays connected past its 30 s message timeout', {
  timeout: STOCK_MESSAGE_TIMEOUT_MS + 30_000
}, async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const lone = fixture.connect(server, canvasId, owner)
  await waitForSynced(lone.provider, 'the provider to sync')
  const closes = []
  lone.provider.on('connection-close', (event) => closes.push(event))

  // The provider checks every 3 s; give it the timeout plus two checks.
  const until = Date.now() + STOCK_MESSAGE_TIMEOUT_MS + 6_000
  await waitFor('the socket to close, or the time to pass', () => closes.length > 0 || Date.now() >= until, {
    timeoutMs: STOCK_MESSAGE_TIMEOUT_MS + 10_000,
    intervalMs: 250
  })
  assert.equal(closes.length, 0, 'the provider dropped its socket for lack of messages')
})

/** An owner and a viewer of one canvas, each with a synced stock provider. */
async function ownerAndViewer (t) {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const viewer = await server.signUp('Viewer')
  await server.addCanvasMember(owner, canvasId, viewer, 'viewer')
  // The stock provider reports an auth message only through console.warn: collect, don't print.
  const warnings = t.mock.method(console, 'warn', () => {})
  const ownerClient = fixture.connect(server, canvasId, owner)
  await waitForSynced(ownerClient.provider, 'the owner\'s provider to sync')
  ownerClient.doc.getText('notes').insert(0, 'written by the owner')
  const viewerClient = fixture.connect(server, canvasId, viewer)
  await waitForSynced(viewerClient.provider, 'the viewer\'s provider to sync')
  return { fixture, server, owner, viewer, canvasId, ownerClient, viewerClient, warnings }
}

test('a read-only client receives the document and its later changes', async (t) => {
  const { ownerClient, viewerClient } = await ownerAndViewer(t)
  await waitUntilEqual('the viewer to load the document',
    () => viewerClient.doc.getText('notes').toString(), 'written by the owner')

  ownerClient.doc.getMap('board').set('status', 'live')
  await waitUntilEqual('the viewer to receive a later change',
    () => viewerClient.doc.getMap('board').toJSON(), { status: 'live' })
})

test('a read-only client\'s local edit reaches neither the other client nor a fresh one', async (t) => {
  const { fixture, server, owner, canvasId, ownerClient, viewerClient } = await ownerAndViewer(t)
  await waitUntilEqual('the viewer to load the document',
    () => viewerClient.doc.getText('notes').toString(), 'written by the owner')

  viewerClient.doc.getText('notes').insert(0, 'VIEWER EDIT ')
  viewerClient.doc.getMap('board').set('hijacked', true)
  // The socket's frames are handled in order: once the owner sees the viewer's awareness,
  // the server has already dealt with the edits sent before it.
  viewerClient.provider.awareness.setLocalStateField('user', { name: 'Viewer' })
  await waitFor('the owner to see the viewer\'s awareness (sent after the edits)',
    () => ownerClient.provider.awareness.getStates().get(viewerClient.doc.clientID)?.user?.name === 'Viewer')

  assert.equal(ownerClient.doc.getText('notes').toString(), 'written by the owner')
  assert.deepEqual(ownerClient.doc.getMap('board').toJSON(), {})
  const fresh = fixture.connect(server, canvasId, owner)
  await waitForSynced(fresh.provider, 'a fresh provider to sync')
  assert.equal(fresh.doc.getText('notes').toString(), 'written by the owner')
  assert.deepEqual(fresh.doc.getMap('board').toJSON(), {})
})

test('a read-only client\'s edit is answered with a permission-denied auth message', async (t) => {
  const { viewerClient, warnings } = await ownerAndViewer(t)
  const denial = () => warnings.mock.calls.find((call) => String(call.arguments[0]).includes('Permission denied'))
  assert.equal(denial(), undefined, 'no denial before the viewer edits')
  viewerClient.doc.getText('notes').insert(0, 'VIEWER EDIT ')
  // The stock provider's only reaction to an auth message (type 2, permission denied) is a
  // console warning that names the reason.
  await waitFor('the stock provider to report a permission denial', denial)
  assert.match(denial().arguments[0], /read-only/)
  assert.ok(viewerClient.provider.wsconnected, 'the viewer stays connected')
})

test('GET /state returns a binary update that Y.applyUpdate turns into the providers\' content', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  const b = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')
  await waitForSynced(b.provider, 'provider B to sync')
  a.doc.getText('notes').insert(0, 'from A')
  b.doc.getMap('board').set('fromB', [1, 2, 3])
  await waitUntilEqual('A to see B\'s entry', () => a.doc.getMap('board').toJSON(), { fromB: [1, 2, 3] })
  await waitUntilEqual('B to see A\'s text', () => b.doc.getText('notes').toString(), 'from A')

  const { doc, contentType } = await fetchDocument(server, canvasId, owner)
  assert.equal(contentType, 'application/octet-stream')
  assert.equal(doc.getText('notes').toString(), a.doc.getText('notes').toString())
  assert.deepEqual(doc.getMap('board').toJSON(), a.doc.getMap('board').toJSON())
  // Nothing is missing either way: the HTTP copy and the provider's hold the same operations.
  assert.deepEqual(Y.encodeStateVector(doc), Y.encodeStateVector(a.doc))
  doc.destroy()
})

test('POST /updates with an octet-stream Y.encodeStateAsUpdate body reaches a connected provider', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')
  a.doc.getText('notes').insert(0, 'socket text')
  await waitFor('the socket edit to be stored', async () => {
    const { doc } = await fetchDocument(server, canvasId, owner)
    return doc.getText('notes').toString() === 'socket text'
  })

  const { doc: httpDoc } = await fetchDocument(server, canvasId, owner)
  httpDoc.getText('notes').insert(httpDoc.getText('notes').length, ' + http text')
  httpDoc.getMap('board').set('via', 'http')
  const response = await fetch(`${server.httpUrl}/api/v1/canvases/${canvasId}/updates`, {
    method: 'POST',
    headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/octet-stream' },
    body: Y.encodeStateAsUpdate(httpDoc)
  })
  const answer = await response.json()
  assert.equal(response.status, 200, JSON.stringify(answer))
  assert.equal(typeof answer.seq, 'number')

  await waitUntilEqual('the provider to receive the pushed text', () => a.doc.getText('notes').toString(), 'socket text + http text')
  await waitUntilEqual('the provider to receive the pushed map entry', () => a.doc.getMap('board').toJSON(), { via: 'http' })
  httpDoc.destroy()
})

/** Opens a raw `ws` socket on the canvas endpoint; resolves with the HTTP status of a refused upgrade. */
async function refusedUpgradeStatus (server, canvasId, token) {
  const socket = new WebSocket(`${server.wsUrl}/${canvasId}?token=${encodeURIComponent(token)}`)
  socket.on('error', () => {}) // `ws` also reports the refusal as an error after the response
  const outcome = await Promise.race([
    nextEvent(socket, 'unexpected-response', 'the upgrade to be refused').then(([, response]) => ({ response })),
    nextEvent(socket, 'open', 'the upgrade to be refused').then(() => ({ opened: true }))
  ])
  if (outcome.opened) {
    socket.terminate()
    assert.fail('the server accepted the upgrade')
  }
  const status = outcome.response.statusCode
  outcome.response.resume()
  socket.terminate()
  return status
}

test('an invalid token is refused with 401 before the upgrade', async (t) => {
  const { server, canvasId } = await ownerWithCanvas(t)
  assert.equal(await refusedUpgradeStatus(server, canvasId, 'not-a-jwt'), 401)
})

test('a signed-in user who is not a member is refused with 404 before the upgrade', async (t) => {
  const { server, canvasId } = await ownerWithCanvas(t)
  const outsider = await server.signUp('Outsider')
  assert.equal(await refusedUpgradeStatus(server, canvasId, outsider.token), 404)
})

test('a stock provider with an invalid token never connects nor receives the document', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const writer = fixture.connect(server, canvasId, owner)
  await waitForSynced(writer.provider, 'the owner\'s provider to sync')
  writer.doc.getText('notes').insert(0, 'secret')

  const intruder = fixture.connect(server, canvasId, { token: 'not-a-jwt' }, { maxBackoffTime: 100 })
  const statuses = []
  intruder.provider.on('status', ({ status }) => statuses.push(status))
  await waitFor('the intruder\'s provider to fail three connection attempts',
    () => intruder.provider.wsUnsuccessfulReconnects >= 3)
  assert.ok(!statuses.includes('connected'), `statuses: ${statuses.join(', ')}`)
  assert.equal(intruder.provider.synced, false)
  assert.equal(intruder.doc.getText('notes').toString(), '')
})

test('a block created through REST reaches a connected stock provider live', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')

  const block = await server.api('POST', `/api/v1/canvases/${canvasId}/blocks`, {
    token: owner.token,
    body: { type: 'todo', text: 'from REST', props: { checked: true } },
    expect: 201
  })
  await waitFor('the block to appear in the provider\'s document', () => a.doc.getMap('blocks').has(block.id))
  const shared = a.doc.getMap('blocks').get(block.id)
  assert.equal(shared.get('type'), 'todo')
  assert.equal(shared.get('text').toString(), 'from REST')
  assert.equal(shared.get('props').get('checked'), true)

  // And an edit by the provider shows up through REST with a new version.
  shared.get('text').insert(9, ', edited in the browser')
  await waitFor('the edit to be materialized', async () => {
    const row = await server.api('GET', `/api/v1/canvases/${canvasId}/blocks/${block.id}`, { token: owner.token })
    return row.text === 'from REST, edited in the browser' && row.version === 2
  })
})

test('a NUL a stock client puts in a block stays in the document and leaves the rows, search and Markdown without it', async (t) => {
  const { fixture, server, owner, canvasId } = await ownerWithCanvas(t)
  const a = fixture.connect(server, canvasId, owner)
  await waitForSynced(a.provider, 'provider A to sync')

  const poisoned = randomUUID()
  const plain = randomUUID()
  a.doc.transact(() => {
    const blocks = a.doc.getMap('blocks')
    const block = new Y.Map()
    block.set('type', 'para\u0000graph')
    block.set('order', 'a0')
    block.set('text', new Y.Text('zebra\u0000crossing'))
    const props = new Y.Map()
    props.set('note\u0000', 'x\u0000y')
    block.set('props', props)
    blocks.set(poisoned, block)
    const other = new Y.Map()
    other.set('type', 'paragraph')
    other.set('order', 'a1')
    other.set('text', new Y.Text('written beside it'))
    blocks.set(plain, other)
  })

  const listed = await waitFor('both blocks to be materialized', async () => {
    const page = await server.api('GET', `/api/v1/canvases/${canvasId}/blocks`, { token: owner.token })
    return page.items.length === 2 ? page.items : null
  })
  const row = listed.find((b) => b.id === poisoned)
  assert.equal(row.type, 'paragraph')
  assert.equal(row.text, 'zebracrossing')
  assert.deepEqual(row.props, { note: 'xy' })
  assert.equal(listed.find((b) => b.id === plain).text, 'written beside it')

  const { doc } = await fetchDocument(server, canvasId, owner)
  assert.equal(doc.getMap('blocks').get(poisoned).get('text').toString(), 'zebra\u0000crossing', 'the document keeps what the client wrote')

  const markdown = await fetch(`${server.httpUrl}/api/v1/canvases/${canvasId}/markdown`, {
    headers: { authorization: `Bearer ${owner.token}` }
  })
  assert.equal(markdown.status, 200)
  assert.match(await markdown.text(), /zebracrossing/)
  const found = await server.api('GET', '/api/v1/search?q=zebracrossing&mode=text', { token: owner.token })
  assert.ok(found.items.some((hit) => hit.block_id === poisoned), JSON.stringify(found))

  // The canvas keeps materializing: a REST write answers its row.
  const next = await server.api('POST', `/api/v1/canvases/${canvasId}/blocks`, {
    token: owner.token,
    body: { type: 'paragraph', text: 'after the NUL' },
    expect: 201
  })
  assert.equal(next.text, 'after the NUL')
})
