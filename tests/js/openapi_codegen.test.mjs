// The served OpenAPI document generates a usable TypeScript client: `openapi-typescript` turns
// it into types, and the TypeScript compiler (strict) checks a client file against them. The
// client file proves what a frontend relies on: closed sets are unions of literals (a wrong
// value does not compile), request bodies and problem answers are typed, descriptions reach
// the generated JSDoc.

import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import openapiTS, { astToString } from 'openapi-typescript'
import ts from 'typescript'

import { Fixture } from './helpers.mjs'

const CLIENT = `
import type { components, paths } from './potentia'

type Schemas = components['schemas']

const status: Schemas['Schedule']['status'] = 'tentative'
// @ts-expect-error a schedule status is one of a closed set
const badStatus: Schemas['Schedule']['status'] = 'maybe'

const role: Schemas['Member']['role'] = 'admin'
// @ts-expect-error a workspace role is one of a closed set
const badRole: Schemas['Member']['role'] = 'superuser'

const rsvp: Schemas['Guest']['rsvp'] = 'declined'
// @ts-expect-error an RSVP is one of a closed set
const badRsvp: Schemas['Guest']['rsvp'] = 'nope'

const invitation: Schemas['Invitation']['status'] = 'expired'
const access: Schemas['Permissions']['access'] = 'comment'

type SignUp = paths['/api/v1/auth/signup']['post']['requestBody']['content']['application/json']
const signUp: SignUp = { email: 'ada@example.org', password: 'correct horse battery staple' }
// @ts-expect-error an email is a string
const badSignUp: SignUp = { email: 42, password: 'x' }

type NotFound = paths['/api/v1/canvases/{canvas_id}']['get']['responses'][404]['content']['application/problem+json']
const problem: NotFound = { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such canvas', code: 'not_found' }
const fieldOfError: string | undefined = problem.errors?.[0]?.field

type Unauthorized = paths['/api/v1/tasks']['get']['responses'][401]['content']['application/problem+json']
const unauthorized: Unauthorized['code'] = 'invalid_token'

type Page = paths['/api/v1/canvases']['get']['responses'][200]['content']['application/json']
const cursor: string | null | undefined = ({} as Page).next_cursor

export { status, badStatus, role, badRole, rsvp, badRsvp, invitation, access, signUp, badSignUp, fieldOfError, unauthorized, cursor }
`

/** Type-checks `entry` in `dir` with strict settings; the diagnostics as text. */
function typeCheck (dir, entry) {
  const program = ts.createProgram([join(dir, entry)], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    skipLibCheck: true,
    noUnusedLocals: false
  })
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    if (!d.file) return text
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    return `${d.file.fileName}:${line + 1}: ${text}`
  })
}

test('the served OpenAPI document generates TypeScript types a strict client compiles against', async (t) => {
  const fixture = new Fixture()
  t.after(() => fixture.cleanUp())
  const server = await fixture.startServer()
  const response = await fetch(`${server.httpUrl}/api/v1/openapi.json`)
  assert.equal(response.status, 200)
  const document = await response.json()

  const generated = astToString(await openapiTS(document))
  // Descriptions become JSDoc on the generated fields.
  assert.match(generated, /@description Stable machine-readable code/)

  const dir = await mkdtemp(join(tmpdir(), 'potentia-codegen-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'potentia.ts'), generated)
  await writeFile(join(dir, 'client.ts'), CLIENT)
  const diagnostics = typeCheck(dir, 'client.ts')
  assert.deepEqual(diagnostics, [], `the client does not compile against the generated types:\n${diagnostics.join('\n')}`)
})
