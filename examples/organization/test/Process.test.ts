/**
 * `npm start`'s program as a process: it starts on the database the environment names (a PGlite folder, or
 * PostgreSQL through `DATABASE_URL`), prints where it listens, and on SIGTERM stops taking connections, lets the
 * request in flight finish and commit, closes the database and exits cleanly.
 */
import { PgliteClient } from "@annal/sql-pglite"
import { PgClient } from "@effect/sql-pg"
import { assert, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { commitLockClass, tableKey } from "../../../packages/core/src/internal/feed/commitOrder.ts"
import * as DemoUsers from "../src/DemoUsers.ts"
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
    const response = Effect.callback<
      { readonly status: number; readonly body: string; readonly connection: string | undefined },
      Error
    >((resume) => {
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
          res.on("end", () =>
            resume(Effect.succeed({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }))
          )
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

const assertAnswered = (
  response: Exit.Exit<
    { readonly status: number; readonly body: string; readonly connection: string | undefined },
    Error
  >
) => {
  assert.isTrue(Exit.isSuccess(response), String(response))
  if (Exit.isSuccess(response)) {
    assert.strictEqual(response.value.status, 201, response.value.body)
    // Answered during the drain, it tells the client not to reuse the connection.
    assert.strictEqual(response.value.connection, "close")
  }
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

/** Everything a program writes, from its start: its logs are on both streams. */
const output = (child: ChildProcess) => {
  let text = ""
  child.stdout?.on("data", (chunk: Buffer) => (text += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (text += chunk.toString()))
  return () => text
}

/**
 * `main.ts` on a PostgreSQL database of its own, with the environment `env` adds. PGlite has no statement timeout,
 * and its folder is the process's alone: another session cannot hold a lock the app's statements wait on.
 */
const startOnPostgres = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const databaseUrl = TestApp.databaseUrl(yield* TestApp.postgresDatabase)
    const child = yield* start([main], { DATABASE_URL: databaseUrl, ...env })
    const log = output(child)
    return { log, url: yield* listening(child), databaseUrl }
  })

/**
 * The bound `ANNAL_STATEMENT_TIMEOUT` sets, other than production's 5 seconds: long enough for the requests that
 * must succeed on a loaded machine, short enough to wait for.
 */
const statementTimeout = Duration.seconds(4)
const boundEnv = { ANNAL_STATEMENT_TIMEOUT: "4 seconds" }

/** How long a test waits for what the bound must bring about: only a guard against a hang. */
const hangGuard = Duration.seconds(60)

const TimeoutBody = Schema.Struct({ _tag: Schema.Literal("Timeout"), message: Schema.String })

/**
 * Holds the events table in a transaction of another session until `release` has run (or the guard passes), so
 * that every statement of the app that reads or writes it waits; `locked` completes once the lock is held.
 */
const holdEvents = (databaseUrl: string, release: Effect.Effect<unknown>) =>
  Effect.gen(function* () {
    const locked = yield* Deferred.make<void>()
    const holder = yield* Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`LOCK TABLE events IN ACCESS EXCLUSIVE MODE`
          yield* Deferred.succeed(locked, undefined)
          yield* release.pipe(Effect.timeoutOption(hangGuard))
        })
      )
    }).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 1 })),
      Effect.orDie,
      Effect.forkChild
    )
    yield* Deferred.await(locked)
    return holder
  })

it.live.skipIf(TestApp.engine !== "postgres")(
  "ANNAL_STATEMENT_TIMEOUT bounds each request of main.ts: past it, a typed 503 Timeout names the bound",
  () =>
    Effect.gen(function* () {
      const app = yield* startOnPostgres(boundEnv)
      const release = yield* Deferred.make<void>()
      const holder = yield* holdEvents(app.databaseUrl, Deferred.await(release))
      const bob = DemoUsers.user("bob")
      const held = yield* heldPost(
        app.url,
        "/organizations",
        bob.token,
        JSON.stringify({ name: "Held Co", type: "llp", email: "held@co.example", pan: "HELDC1234Z" })
      )
      const pending = yield* Effect.forkChild(held.response)
      yield* Deferred.await(held.started)
      // The client sends its body half the bound into the request, and the request's statement then waits on the
      // lock: the request's bound passes while the statement's has half of it left, so the answer is the request
      // timeout's, which names its bound. (A request timeout left at production's 5 seconds would answer later,
      // naming 5 seconds; the statement timeout, were it first, names none.) Nothing is waited for here: the delay
      // is the scenario, a slow client.
      yield* Effect.sleep(Duration.divideUnsafe(statementTimeout, 2))
      held.finish()
      const response = yield* Fiber.join(pending).pipe(
        Effect.timeoutOrElse({ duration: hangGuard, orElse: () => Effect.die(new Error("no answer: no bound")) })
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(response.status, 503, response.body)
      const body = Schema.decodeUnknownSync(Schema.fromJsonString(TimeoutBody))(response.body)
      assert.include(body.message, `The request took longer than ${Duration.format(statementTimeout)}`)
    }).pipe(Effect.scoped),
  120_000
)

/** An SSE response as it arrives: a signal at its first bytes, and its whole text once the server ends it. */
const eventStream = (url: string, path: string, token: string) =>
  Effect.gen(function* () {
    const opened = yield* Deferred.make<number>()
    const ended = yield* Deferred.make<string>()
    const request = http.get(
      new URL(path, url),
      { agent: false, headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } },
      (res) => {
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString()
          Deferred.doneUnsafe(opened, Exit.succeed(res.statusCode ?? 0))
        })
        res.on("end", () => Deferred.doneUnsafe(ended, Exit.succeed(text)))
      }
    )
    request.on("error", (error) => Deferred.doneUnsafe(ended, Exit.die(error)))
    yield* Effect.addFinalizer(() => Effect.sync(() => request.destroy()))
    return { opened, ended }
  })

it.live.skipIf(TestApp.engine !== "postgres")(
  "on PostgreSQL, ANNAL_STATEMENT_TIMEOUT bounds each statement of main.ts, also one no request bound reaches",
  () =>
    Effect.gen(function* () {
      const app = yield* startOnPostgres(boundEnv)
      const alice = DemoUsers.user("alice")
      // A live stream's reads run after its request has been answered: the request timeout does not reach them.
      const stream = yield* eventStream(app.url, `/events/stream?userId=${alice.userId}`, alice.token)
      assert.strictEqual(yield* Deferred.await(stream.opened), 200)
      // Another session holds the events table, so the stream's next read (it polls every second) waits for it,
      // until the statement timeout cancels the read and the stream ends; without one it would wait for as long as
      // the lock is held. The lock is held until then, or until the guard.
      const holder = yield* holdEvents(app.databaseUrl, Deferred.await(stream.ended))
      const ended = yield* Deferred.await(stream.ended).pipe(
        Effect.timeoutOrElse({
          duration: hangGuard,
          orElse: () => Effect.die(new Error("the stream's read was not stopped: no statement timeout"))
        })
      )
      yield* Fiber.join(holder)
      assert.include(ended, "retry:")
      // The app logged why the stream ended: PostgreSQL cancelled its read for the statement timeout.
      yield* Effect.sync(() => {
        assert.include(app.log(), "Cancelled reading the feed")
        assert.include(app.log(), "canceling statement due to statement timeout")
      })
    }).pipe(Effect.scoped),
  120_000
)

/** A port free now, for a program that must be reached before it prints where it listens. */
const freePort = Effect.callback<number>((resume) => {
  const probe = net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const address = probe.address()
    probe.close(() => resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0)))
  })
})

/** One request's answer: its status, `Retry-After` and body; `refused` while nothing listens yet. */
type Answer =
  | {
      readonly _tag: "answered"
      readonly status: number
      readonly retryAfter: string | undefined
      readonly body: string
    }
  | { readonly _tag: "refused" }

/** A GET on a connection of its own; a request left unanswered for `hangGuard` fails the test. */
const probe = (url: string) =>
  Effect.callback<Answer>((resume) => {
    const request = http.get(url, { agent: false }, (res) => {
      let body = ""
      res.on("data", (chunk: Buffer) => (body += chunk.toString()))
      res.on("end", () =>
        resume(
          Effect.succeed({
            _tag: "answered",
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"],
            body
          })
        )
      )
    })
    request.setTimeout(Duration.toMillis(hangGuard), () =>
      request.destroy(new Error(`no answer to GET ${url} within ${Duration.format(hangGuard)}`))
    )
    request.on("error", (error: NodeJS.ErrnoException) =>
      resume(error.code === "ECONNREFUSED" ? Effect.succeed({ _tag: "refused" }) : Effect.die(error))
    )
  })

/** Holds the lock the migrations of the app's events table take, until `release` has run (or the guard passes). */
const holdMigrations = (databaseUrl: string, release: Effect.Effect<unknown>) =>
  Effect.gen(function* () {
    const locked = yield* Deferred.make<void>()
    const holder = yield* Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT pg_advisory_xact_lock(hashtext(${"annal:migrate:public.events"}))`
          yield* Deferred.succeed(locked, undefined)
          yield* release.pipe(Effect.timeoutOption(hangGuard))
        })
      )
    }).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 1 })),
      Effect.orDie,
      Effect.forkChild
    )
    yield* Deferred.await(locked)
    return holder
  })

it.live.skipIf(TestApp.engine !== "postgres")(
  "every request sent while main.ts starts is answered: 503 Unavailable with Retry-After until it serves, then 200",
  () =>
    Effect.gen(function* () {
      const databaseUrl = TestApp.databaseUrl(yield* TestApp.postgresDatabase)
      // The migrations wait for this lock, so the app listens and cannot serve until it is released.
      const release = yield* Deferred.make<void>()
      const holder = yield* holdMigrations(databaseUrl, Deferred.await(release))
      const port = yield* freePort
      const child = yield* start([main], { DATABASE_URL: databaseUrl, PORT: String(port) })
      const log = output(child)
      const base = `http://127.0.0.1:${port}`
      const answers: Array<Answer> = []
      // Until the port opens, then a few more while the migrations wait.
      let waiting = 0
      while (waiting < 5) {
        const answer = yield* probe(`${base}/health`)
        answers.push(answer)
        if (answer._tag === "answered") waiting++
        if (child.exitCode !== null) assert.fail(`main.ts exited: ${log()}`)
      }
      const live = yield* probe(`${base}/health/live`)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      // Once the migrations ran, the app serves.
      let last: Answer = answers.at(-1)!
      while (last._tag !== "answered" || last.status === 503) {
        last = yield* probe(`${base}/health`)
        answers.push(last)
      }
      assert.strictEqual(last.status, 200, last.body)
      const during = answers.filter((answer) => answer._tag === "answered" && answer.status === 503)
      assert.isAtLeast(during.length, 5)
      for (const answer of during) {
        if (answer._tag !== "answered") continue
        assert.strictEqual(answer.retryAfter, "1")
        assert.deepStrictEqual(JSON.parse(answer.body), {
          _tag: "Unavailable",
          message: "The server is starting; retry in a moment"
        })
      }
      assert.deepInclude(live, { _tag: "answered", status: 200 })
    }).pipe(Effect.scoped),
  120_000
)

/** A connection that sent one request, read its answer and stays open, idle, until the server closes it. */
const idleConnection = (url: string) =>
  Effect.gen(function* () {
    const closed = yield* Deferred.make<void>()
    const answered = yield* Deferred.make<string>()
    const { hostname, port } = new URL(url)
    const socket = net.connect(Number(port), hostname, () =>
      socket.write(`GET /health HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`)
    )
    socket.on("data", (chunk: Buffer) => Deferred.doneUnsafe(answered, Exit.succeed(chunk.toString())))
    socket.on("close", () => Deferred.doneUnsafe(closed, Exit.void))
    socket.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
    return { answered: Deferred.await(answered), closed: Deferred.await(closed) }
  })

it.live(
  "on SIGTERM with a live event stream and an idle keep-alive connection open, main.ts ends both at once and exits 0",
  () =>
    Effect.gen(function* () {
      const dataDir = mkdtempSync(join(tmpdir(), "annal-organization-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const env =
        TestApp.engine === "postgres"
          ? { DATABASE_URL: TestApp.databaseUrl(yield* TestApp.postgresDatabase) }
          : { ANNAL_DATA_DIR: join(dataDir, "annal") }
      // Long enough that a shutdown that waits for the stream or the idle connection cannot pass for a quick one.
      const shutdownTimeout = Duration.seconds(60)
      const child = yield* start([main], { ...env, ANNAL_SHUTDOWN_TIMEOUT: "60 seconds" })
      const url = yield* listening(child)
      const auditor = DemoUsers.user("dana")
      const stream = yield* eventStream(url, "/events/stream", auditor.token)
      assert.strictEqual(yield* Deferred.await(stream.opened), 200)
      const idle = yield* idleConnection(url)
      assert.include(yield* idle.answered, "HTTP/1.1 200")
      const stopping = yield* Clock.currentTimeMillis
      child.kill("SIGTERM")
      const text = yield* Deferred.await(stream.ended)
      yield* idle.closed
      const code = yield* exited(child)
      const stopped = yield* Clock.currentTimeMillis
      assert.strictEqual(code, 0)
      // The stream ended as a response ends (its end was received, not an error), and had sent its retry delay.
      assert.include(text, "retry:")
      // Neither the stream nor the idle connection held the shutdown until its timeout.
      assert.isBelow(stopped - stopping, Duration.toMillis(shutdownTimeout))
    }).pipe(Effect.scoped),
  120_000
)

const startScript = join(import.meta.dirname, "../start")

it.live(
  "the README's start command is the process that drains: SIGTERM to it lets it stop cleanly, exit 0",
  () =>
    Effect.gen(function* () {
      const dataDir = mkdtempSync(join(tmpdir(), "annal-organization-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const readme = readFileSync(join(import.meta.dirname, "../../../README.md"), "utf8")
      assert.include(readme, "examples/organization/start")
      const env =
        TestApp.engine === "postgres"
          ? { DATABASE_URL: TestApp.databaseUrl(yield* TestApp.postgresDatabase) }
          : { ANNAL_DATA_DIR: join(dataDir, "annal") }
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(startScript, [], {
            env: { ...process.env, PORT: "0", HOST: "127.0.0.1", ...env },
            stdio: ["ignore", "pipe", "pipe"]
          })
        ),
        (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
      )
      const log = output(child)
      yield* listening(child)
      child.kill("SIGTERM")
      const code = yield* exited(child)
      assert.strictEqual(code, 0, log())
      // The app itself received the signal and drained: it printed its own stop, which npm's early exit cuts off.
      assert.include(log(), "Stopped: requests finished, connections closed.")
    }).pipe(Effect.scoped),
  120_000
)

it.live(
  "a port in use is named, with what to do, and main.ts exits 1",
  () =>
    Effect.gen(function* () {
      const dataDir = mkdtempSync(join(tmpdir(), "annal-organization-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const env =
        TestApp.engine === "postgres"
          ? { DATABASE_URL: TestApp.databaseUrl(yield* TestApp.postgresDatabase) }
          : { ANNAL_DATA_DIR: join(dataDir, "annal") }
      const taken = yield* Effect.acquireRelease(
        Effect.callback<net.Server>((resume) => {
          const server = net.createServer()
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const address = taken.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const child = yield* start([main], { ...env, PORT: String(port) })
      const log = output(child)
      const code = yield* exited(child)
      assert.strictEqual(code, 1, log())
      assert.include(
        log(),
        `Cannot listen on port ${port} on 127.0.0.1: another process uses it. Stop that process, or set PORT to a free port (PORT=0 picks one).`
      )
      assert.notInclude(log(), "ServeError")
    }).pipe(Effect.scoped),
  120_000
)

/** The readiness answer of the app at `url`. */
const readiness = (url: string) =>
  Effect.map(probe(`${url}/health/ready`), (answer) => {
    if (answer._tag !== "answered") return assert.fail("the app stopped listening")
    return { status: answer.status, body: JSON.parse(answer.body) as { readonly problems: ReadonlyArray<string> } }
  })

/** Asks for readiness until `done` accepts the answer (the hang guard bounds it). */
const readinessUntil = (url: string, done: (status: number) => boolean) =>
  readiness(url).pipe(
    Effect.repeat({ until: (answer) => done(answer.status) }),
    Effect.timeoutOrElse({ duration: hangGuard, orElse: () => Effect.die(new Error("readiness never changed")) })
  )

it.live.skipIf(TestApp.engine !== "postgres")(
  "readiness turns red while a transaction holds the feed's fence, naming it, and green once it has committed",
  () =>
    Effect.gen(function* () {
      const app = yield* startOnPostgres({ ANNAL_READY_MAX_FENCE_AGE: "200 millis" })
      assert.strictEqual((yield* readiness(app.url)).status, 200)
      // A transaction in its commit, as the commit trigger leaves it: the commit lock shared, a number taken. Every
      // commit after it waits behind it for readers.
      const holding = yield* Deferred.make<number>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`SELECT pg_advisory_xact_lock_shared(${commitLockClass}::integer, ${tableKey({ schema: "public", table: "events" })}::integer)`
            yield* sql`SELECT nextval('public.events_commit_sequence')`
            const [row] = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`
            yield* Deferred.succeed(holding, row!.pid)
            yield* Deferred.await(release).pipe(Effect.timeoutOption(hangGuard))
          })
        )
      }).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(app.databaseUrl), maxConnections: 1 })),
        Effect.orDie,
        Effect.forkChild
      )
      const pid = yield* Deferred.await(holding)
      // An organization created now commits, and readers cannot reach its event until the holder is done.
      const created = yield* Effect.promise(() =>
        fetch(`${app.url}/organizations`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${DemoUsers.user("bob").token}` },
          body: JSON.stringify({ name: "Fenced Co", type: "llp", email: "fenced@co.example", pan: "FENCE1234Z" })
        }).then(async (response) => ({ status: response.status, body: await response.text() }))
      )
      assert.strictEqual(created.status, 201, created.body)
      const red = yield* readinessUntil(app.url, (status) => status === 503)
      assert.strictEqual(red.body.problems.length, 1, JSON.stringify(red.body))
      assert.match(red.body.problems[0]!, /^feed fence: 1 committed events have waited [\d.]+ s \(over 0\.2 s\)/)
      assert.include(red.body.problems[0]!, `held by pid ${pid}`)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      const green = yield* readinessUntil(app.url, (status) => status === 200)
      assert.deepStrictEqual(green.body.problems, [])
    }).pipe(Effect.scoped),
  120_000
)

/** A local OTLP/HTTP receiver: it records every POST (path, content type, body) and answers 200. */
const otlpReceiver = Effect.acquireRelease(
  Effect.callback<{
    readonly server: http.Server
    readonly url: string
    readonly posts: Array<{ readonly path: string; readonly contentType: string; readonly body: string }>
  }>((resume) => {
    const posts: Array<{ readonly path: string; readonly contentType: string; readonly body: string }> = []
    const server = http.createServer((req, res) => {
      let body = ""
      req.on("data", (chunk: Buffer) => (body += chunk.toString()))
      req.on("end", () => {
        posts.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", body })
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      resume(Effect.succeed({ server, url: `http://127.0.0.1:${address.port}`, posts }))
    })
  }),
  ({ server }) => Effect.sync(() => server.close())
)

/** The attributes, as plain values, of every span named `name` in the OTLP/JSON trace exports. */
const spansNamed = (bodies: ReadonlyArray<string>, name: string) => {
  type Value = { stringValue?: string; intValue?: string | number; arrayValue?: { values: ReadonlyArray<Value> } }
  const plain = (value: Value): unknown =>
    value.arrayValue !== undefined
      ? value.arrayValue.values.map(plain)
      : value.intValue !== undefined
        ? Number(value.intValue)
        : value.stringValue
  const found: Array<Record<string, unknown>> = []
  for (const body of bodies) {
    const data = JSON.parse(body) as {
      resourceSpans: ReadonlyArray<{
        scopeSpans: ReadonlyArray<{
          spans: ReadonlyArray<{ name: string; attributes: ReadonlyArray<{ key: string; value: Value }> }>
        }>
      }>
    }
    for (const resource of data.resourceSpans)
      for (const scope of resource.scopeSpans)
        for (const span of scope.spans)
          if (span.name === name) {
            found.push(Object.fromEntries(span.attributes.map((attribute) => [attribute.key, plain(attribute.value)])))
          }
  }
  return found
}

it.live(
  "with OTEL_EXPORTER_OTLP_ENDPOINT and ANNAL_LOG_FORMAT=json, main.ts exports spans and metrics and logs JSON lines with the correlation id",
  () =>
    Effect.gen(function* () {
      const dataDir = mkdtempSync(join(tmpdir(), "annal-organization-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const receiver = yield* otlpReceiver
      const env =
        TestApp.engine === "postgres"
          ? { DATABASE_URL: TestApp.databaseUrl(yield* TestApp.postgresDatabase) }
          : { ANNAL_DATA_DIR: join(dataDir, "annal") }
      const child = yield* start([main], {
        ...env,
        ANNAL_LOG_FORMAT: "json",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "annal-telemetry-test"
      })
      let stdout = ""
      child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      const url = yield* listening(child)
      const alice = DemoUsers.user("alice")
      const correlationId = `corr-${crypto.randomUUID()}`
      const created = yield* Effect.promise(() =>
        fetch(`${url}/organizations`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${alice.token}`,
            "x-correlation-id": correlationId
          },
          body: JSON.stringify({
            name: "Telemetry Trading",
            type: "private_limited",
            email: "accounts@telemetry.example",
            pan: "AAAPT1234T"
          })
        })
      )
      assert.strictEqual(created.status, 201)
      const plain = yield* Effect.promise(() => fetch(`${url}/health/live`))
      const generated = plain.headers.get("x-correlation-id")
      // Nothing was exported yet (the intervals are long): what arrives is sent by the shutdown.
      child.kill("SIGTERM")
      assert.strictEqual(yield* exited(child), 0)

      // Logs: one JSON object a line, the request lines with the correlation id the response carried.
      const lines = stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { message: unknown; level: string; annotations: Record<string, unknown> })
      const requests = lines.filter((line) => line.message === "Sent HTTP response")
      const post = requests.find((line) => line.annotations["http.url"] === "/organizations")
      assert.isDefined(post, stdout)
      assert.strictEqual(post!.annotations["correlationId"], correlationId)
      assert.strictEqual(post!.annotations["http.status"], 201)
      assert.strictEqual(post!.level, "INFO")
      const live = requests.find((line) => line.annotations["http.url"] === "/health/live")
      assert.isDefined(generated)
      assert.strictEqual(live?.annotations["correlationId"], generated)

      // Traces: the append span, with its count, types and stream.
      const traces = receiver.posts.filter((post) => post.path === "/v1/traces")
      assert.isAbove(traces.length, 0)
      assert.include(traces[0]!.contentType, "application/json")
      assert.include(traces[0]!.body, "annal-telemetry-test")
      // The demo data's appends at startup are there too; the request's is the organization's.
      const append = spansNamed(
        traces.map((post) => post.body),
        "EventStore.append"
      ).find((span) => span["annal.aggregate_type"] === "organization")
      assert.isDefined(append)
      assert.strictEqual(append!["annal.event_count"], 1)
      assert.deepStrictEqual(append!["annal.event_types"], ["organization.created"])
      assert.strictEqual(append!["annal.aggregate_type"], "organization")
      assert.isString(append!["annal.aggregate_id"])

      // Metrics: the counters, and a gauge the sampler read from the database before the last export.
      const metrics = receiver.posts.filter((post) => post.path === "/v1/metrics").map((post) => post.body)
      assert.isAbove(metrics.length, 0)
      const all = metrics.join("\n")
      assert.include(all, '"annal_appends_total"')
      assert.include(all, '"annal_events_appended_total"')
      assert.include(all, '"annal_feed_fence_age_seconds"')
      assert.notInclude(all, "Telemetry Trading")
    }).pipe(Effect.scoped),
  120_000
)
