// The assistant's `add_blocks` tool writes through the canvas document: a stock y-websocket
// `WebsocketProvider` connected to the canvas sees the blocks appear live. The chat provider is
// a tiny fake OpenAI-compatible server (node:http) speaking the wire shapes the server's OpenAI
// client parses: JSON completions for the judge, the assessor and the title, and SSE
// `chat.completion.chunk` frames for the specialist.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { test } from 'node:test'

import { Fixture, waitFor, waitForSynced } from './helpers.mjs'

const TOOL_MARKDOWN = '## From the assistant\n\n- [ ] buy beans'
const ANSWER = 'I added beans to your list.'

function completion (content) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'fake-chat',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }
  }
}

function chunk (delta, finishReason = null) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'fake-chat',
    choices: [{ index: 0, delta, finish_reason: finishReason }]
  }
}

/** The specialist's stream: a call to `add_blocks` until a tool result is in the request, then text. */
function specialistChunks (request, canvasId) {
  const toolAnswered = request.messages.some((m) => m.role === 'tool')
  if (!toolAnswered) {
    const args = JSON.stringify({ canvas_id: canvasId, markdown: TOOL_MARKDOWN })
    return [
      chunk({ role: 'assistant', content: '' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'add_blocks', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, 20) } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(20) } }] }),
      chunk({}, 'tool_calls')
    ]
  }
  return [
    chunk({ role: 'assistant', content: '' }),
    ...ANSWER.split(/(?<= )/).map((piece) => chunk({ content: piece })),
    chunk({}, 'stop')
  ]
}

/**
 * A fake OpenAI-compatible chat server. `canvasId` is the canvas the specialist writes to;
 * `requests` holds every chat request body received.
 */
async function startFakeModel () {
  const fake = { canvasId: null, requests: [] }
  const server = createServer(async (req, res) => {
    let body = ''
    for await (const piece of req) body += piece
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }))
      return
    }
    const request = JSON.parse(body)
    fake.requests.push(request)
    if (request.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      for (const frame of specialistChunks(request, fake.canvasId)) {
        res.write(`data: ${JSON.stringify(frame)}\n\n`)
      }
      res.end('data: [DONE]\n\n')
      return
    }
    const schema = request.response_format?.json_schema?.name
    const content = schema === 'context_decision'
      ? JSON.stringify({ decision: 'new', reason: 'x' })
      : schema === 'memory_extraction'
        ? JSON.stringify({ memories: [], summary: 's' })
        : 'Groceries'
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(completion(content)))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  fake.baseUrl = `http://127.0.0.1:${server.address().port}/v1`
  fake.close = async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  }
  return fake
}

test('a stock provider sees the blocks that the assistant\'s add_blocks tool appends', async (t) => {
  const fake = await startFakeModel()
  const fixture = new Fixture()
  t.after(async () => {
    try {
      await fixture.cleanUp()
    } finally {
      await fake.close()
    }
  })
  const server = await fixture.startServer({
    POTENTIA_AI_CHAT_PROVIDER: 'openai',
    POTENTIA_AI_CHAT_BASE_URL: fake.baseUrl,
    POTENTIA_AI_CHAT_MODEL: 'fake-chat',
    POTENTIA_AI_MAX_ATTEMPTS: '1'
  })
  const owner = await server.signUp('Owner')
  const canvasId = await server.createCanvas(owner, 'Groceries')
  fake.canvasId = canvasId
  const { doc, provider } = fixture.connect(server, canvasId, owner)
  await waitForSynced(provider)
  const blocks = doc.getMap('blocks')
  const before = new Set(blocks.keys())

  const conversation = await server.api('POST', '/api/v1/conversations', { token: owner.token, body: {}, expect: 201 })
  const turn = await server.api('POST', `/api/v1/conversations/${conversation.id}/messages`, {
    token: owner.token,
    body: { text: 'Put beans on my grocery list', client_message_id: randomUUID() },
    expect: 201
  })

  assert.equal(turn.tool_calls.length, 1, JSON.stringify(turn.tool_calls))
  const [call] = turn.tool_calls
  assert.equal(call.name, 'add_blocks')
  assert.equal(call.ok, true, JSON.stringify(call))
  assert.equal(call.result.block_ids.length, 2, JSON.stringify(call))
  assert.equal(turn.assistant_message.text, ANSWER)
  const toolMessage = fake.requests.filter((r) => r.stream).at(-1).messages.find((m) => m.role === 'tool')
  assert.deepEqual(JSON.parse(toolMessage.content), call.result, 'the model read the tool result')

  const [headingId, todoId] = call.result.block_ids
  await waitFor('the provider to see both blocks the tool appended', () => blocks.has(headingId) && blocks.has(todoId))
  assert.deepEqual([...blocks.keys()].filter((id) => !before.has(id)).sort(), [headingId, todoId].sort())
  const heading = blocks.get(headingId)
  assert.equal(heading.get('type'), 'heading')
  assert.equal(heading.get('text').toString(), 'From the assistant')
  assert.equal(heading.get('props').get('level'), 2)
  const todo = blocks.get(todoId)
  assert.equal(todo.get('type'), 'todo')
  assert.equal(todo.get('text').toString(), 'buy beans')
  assert.equal(todo.get('props').get('checked'), false)
  for (const block of [heading, todo]) assert.equal(block.get('parent') ?? null, null)
  assert.ok(heading.get('order') < todo.get('order'), 'the heading comes first')
})
