/**
 * The curl examples of docs/guides/http-api.md, run as written by bash and curl against the app: only the base URL
 * is changed, to the test server's. A wrapper around curl records each response's status on stderr, so that every
 * step is checked without changing what the examples print.
 */
import { Export } from "@annal/core"
import { assert, layer } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as TestApp from "./support/TestApp.ts"

const guide = readFileSync(join(import.meta.dirname, "../../../docs/guides/http-api.md"), "utf8")

/** The guide's block of curl examples: the shell block that sets BASE. */
const examples = (): string => {
  const blocks = [...guide.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!)
  const found = blocks.filter((block) => block.startsWith("BASE=http://localhost:3000\n"))
  assert.strictEqual(found.length, 1, "the guide has one block of curl examples")
  return found[0]!
}

/** The script failed: bash's error and what it printed. */
class ScriptFailed extends Data.TaggedError("ScriptFailed")<{ readonly reason: string; readonly stderr: string }> {}

const run = (script: string) =>
  Effect.callback<{ readonly stdout: string; readonly stderr: string }, ScriptFailed>((resume) => {
    execFile("bash", ["-e", "-c", script], { timeout: 60_000 }, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed({ stdout, stderr })
          : Effect.fail(new ScriptFailed({ reason: error.message, stderr }))
      )
    )
  })

layer(TestApp.layer, TestApp.layerOptions)("the HTTP API guide's examples", (it) => {
  it.effect("run as written, and answer as the guide says", () =>
    Effect.gen(function* () {
      const base = yield* TestApp.baseUrl
      const block = examples()
      const script = [
        // Each response's status goes to stderr; a newline after each body keeps them apart on stdout.
        `curl() { command curl -w '%{stderr}%{http_code}\\n' "$@"; echo; }`,
        block.replace("BASE=http://localhost:3000\n", `BASE=${base}\n`)
      ].join("\n")
      const { stdout, stderr } = yield* run(script)
      const statuses = stderr.trim().split("\n").map(Number)
      assert.deepStrictEqual(
        statuses,
        [201, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 401, 403, 400]
      )

      const outputs = stdout.split("\n").filter((line) => line.startsWith("{"))
      const [
        updated,
        history,
        state,
        trail,
        activity,
        commodity,
        recent,
        count,
        events,
        stats,
        ownStats,
        catalog,
        reads,
        ,
        forbidden,
        invalid
      ] = outputs
      assert.include(updated, `"email":"finance@acme.example"`)
      // As of the moment after the create, before the correction: the old email, one event folded.
      assert.include(state, `"email":"accounts@acme.example"`)
      assert.notInclude(state, "finance@acme.example")
      assert.include(state, `"streamVersion":1`)
      assert.include(trail, `"correlationId":"onboarding-acme"`)
      assert.include(trail, `"eventType":"organization.created"`)
      assert.include(history, `"changes":{"email":{"old":"accounts@acme.example","new":"finance@acme.example"}}`)
      assert.include(history, `"correlationId":"onboarding-acme"`)
      assert.include(history, `"reason":"New customer"`)
      assert.include(history, `"userAgent":"curl/`)
      assert.include(activity, `"nextCursor":"`)
      assert.include(commodity, `"version":2,"data":{"name":"Wheat","category":"Grains","hsnCode":"1001","unit":"KG"}`)
      assert.include(recent, `"eventType":"organization.updated"`)
      assert.include(count, `{"count":2}`)
      assert.include(events, `"eventType":"organization.updated"`)
      assert.include(stats, `"bucket":"month","groupBy":"eventType"`)
      assert.include(stats, `"key":"organization.updated"`)
      assert.include(ownStats, `"topActors":[{"userId":"a11ce000-0000-4000-8000-000000000001"`)
      assert.include(catalog, `"eventType":"commodity.created"`)
      // The auditor's correlation trail, export and stats query are recorded with the other reads; the clerk's reads
      // and the catalog are not.
      assert.strictEqual((reads!.match(/"eventType":"audit.read"/g) ?? []).length, 6)
      // The export: a CSV header, and the created and updated events, one row each.
      assert.include(stdout, `${Export.columns.join(",")}\r\n`)
      assert.match(stdout, /,organization\.created,organization,.*\r\n.*,organization\.updated,organization,/s)
      assert.include(stdout, `{"_tag":"Unauthenticated"`)
      assert.include(forbidden, `{"_tag":"Forbidden"`)
      assert.include(invalid, `"field":"query.limit"`)
    })
  )
})
