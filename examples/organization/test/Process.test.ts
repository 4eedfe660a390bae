/**
 * `npm start`'s program as a process: it starts on the database the environment names (a PGlite folder, or
 * PostgreSQL through `DATABASE_URL`), prints where it listens, and on SIGTERM stops taking connections, lets the
 * request in flight finish and commit, closes the database and exits cleanly.
 */
import { PgliteClient } from "@annal/core"
import { PgClient } from "@effect/sql-pg"
import { assert, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as TestApp from "./support/TestApp.ts"

const main = join(import.meta.dirname, "../src/main.ts")

/** A program as a child process, killed if the test leaves it running. */
const start = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, args, {
        env: { ...process.env, PORT: "0", HOST: "127.0.0.1", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

/**
 * The naive server: it answers like the app, but exits as soon as it is told to stop, as a server without a
 * shutdown sequence does.
 */
const naiveServer = `
import http from "node:http"
const server = http.createServer((req, res) => {
  req.resume()
  req.on("end", () => { res.writeHead(req.method === "POST" ? 201 : 200); res.end("{}") })
})
server.listen(0, "127.0.0.1", () => console.log("API: http://127.0.0.1:" + server.address().port))
process.on("SIGTERM", () => process.exit(0))
`

/** The URL the app prints once it listens; the output so far if it exits first. */
/** The program ended before it listened. */
class ExitedEarly extends Data.TaggedError("ExitedEarly")<{ readonly code: number | null; readonly output: string }> {}

const listening = (child: ChildProcess) =>
  Effect.callback<string, ExitedEarly>((resume) => {
    let output = ""
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /API:\s+(http:\/\/\S+)/.exec(output)
      if (match !== null) {
        child.stdout?.off("data", onData)
        resume(Effect.succeed(match[1]!))
      }
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.once("exit", (code) => resume(Effect.fail(new ExitedEarly({ code, output }))))
  })

const exited = (child: ChildProcess) =>
  Effect.callback<number | null>((resume) => {
    if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/**
 * A POST that asks to continue (`Expect: 100-continue`) and holds its body back: once the server's handler asks
 * for the body (`started` completes), the request is in flight, and stays so until `finish` sends the body.
 */
const heldPost = (url: string, path: string, token: string, body: string) =>
  Effect.gen(function* () {
    const started = yield* Deferred.make<void>()
    let finish: (() => void) | undefined
    const response = Effect.callback<{ readonly status: number; readonly body: string }, Error>((resume) => {
      const request = http.request(
        new URL(path, url),
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: `Bearer ${token}`,
            expect: "100-continue"
          }
        },
        (res) => {
          let text = ""
          res.on("data", (chunk: Buffer) => (text += chunk.toString()))
          res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: text })))
        }
      )
      request.on("continue", () => Deferred.doneUnsafe(started, Exit.void))
      request.on("error", (error) => resume(Effect.fail(error)))
      request.flushHeaders()
      finish = () => request.end(body)
    })
    return { started, response, finish: () => finish?.() }
  })

/** Whether the server still accepts connections. */
const accepts = (url: string) =>
  Effect.callback<boolean>((resume) => {
    const request = http.get(new URL("/health", url), { agent: false }, (res) => {
      res.resume()
      resume(Effect.succeed(true))
    })
    request.on("error", () => resume(Effect.succeed(false)))
  })

/** Runs a server, shuts it down with a request in flight, and returns what `check` then reads. */
const shutdownScenario = <A>(
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  check: (pan: string) => Effect.Effect<A>
) =>
  Effect.gen(function* () {
    const child = yield* start(args, env)
    const url = yield* listening(child)
    const pan = `PROCS${String(Math.floor(Math.random() * 10_000)).padStart(4, "0")}Z`
    const inFlight = yield* heldPost(
      url,
      "/organizations",
      "demo-bob",
      JSON.stringify({ name: "Slow Co", type: "llp", email: "slow@co.example", pan })
    )
    const pending = yield* Effect.forkChild(inFlight.response)
    // The handler is running and waits for the body: the request is in flight. The server is told to stop.
    yield* Deferred.await(inFlight.started)
    child.kill("SIGTERM")
    // It stops taking connections...
    while (yield* accepts(url)) yield* Effect.sleep("50 millis")
    // ...and the request in flight still finishes.
    inFlight.finish()
    const response = yield* Effect.exit(Fiber.join(pending))
    const code = yield* exited(child)
    return { response, code, stored: yield* check(pan) }
  }).pipe(Effect.scoped)

const assertAnswered = (response: Exit.Exit<{ readonly status: number; readonly body: string }, Error>) => {
  assert.isTrue(Exit.isSuccess(response), String(response))
  if (Exit.isSuccess(response)) assert.strictEqual(response.value.status, 201, response.value.body)
}

const countByPan = (pan: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly n: number }>`SELECT count(*)::integer AS n FROM organizations WHERE pan = ${pan}`
    const events = yield* sql<{ readonly n: number }>`SELECT count(*)::integer AS n FROM events
      WHERE event_type = 'organization.created' AND data->>'pan' = ${pan}`
    return { rows: rows[0]!.n, events: events[0]!.n }
  })

it.live("the naive server, which exits when told to stop, cuts the request in flight", () =>
  Effect.gen(function* () {
    const result = yield* shutdownScenario(["--input-type=module", "-e", naiveServer], {}, () => Effect.void)
    assert.strictEqual(result.code, 0)
    assert.isTrue(Exit.isFailure(result.response), "the request in flight was answered")
  })
)

it.live(
  `runs on ${TestApp.engine === "postgres" ? "PostgreSQL through DATABASE_URL" : "a PGlite data folder"}, and shuts down gracefully on SIGTERM`,
  () =>
    Effect.gen(function* () {
      if (TestApp.engine === "postgres") {
        const name = yield* TestApp.postgresDatabase
        const url = TestApp.databaseUrl(name)
        const result = yield* shutdownScenario([main], { DATABASE_URL: url }, (pan) =>
          countByPan(pan).pipe(
            Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
            Effect.orDie
          )
        )
        assertAnswered(result.response)
        assert.strictEqual(result.code, 0)
        assert.deepStrictEqual(result.stored, { rows: 1, events: 1 })
        return
      }
      const dataDir = mkdtempSync(join(tmpdir(), "annal-organization-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const folder = join(dataDir, "annal")
      const result = yield* shutdownScenario([main], { ANNAL_DATA_DIR: folder }, (pan) =>
        countByPan(pan).pipe(Effect.provide(PgliteClient.layer({ dataDir: folder })), Effect.orDie)
      )
      assertAnswered(result.response)
      assert.strictEqual(result.code, 0)
      // The folder was closed cleanly: another process opens it and finds the row and its event.
      assert.deepStrictEqual(result.stored, { rows: 1, events: 1 })
    }).pipe(Effect.scoped),
  120_000
)
