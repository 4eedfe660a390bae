/**
 * `npm run bench:export`: the audit export of 1,000,000 events, `GET /audit/export`, from the Organization app in a
 * process of its own (`bench/ExportServer.ts`) over a fresh PostgreSQL database. It prints the export's throughput
 * per format, and the server's resident set size and heap when 100,000 events have been read and again at the end
 * of the same download: memory that stays flat from 100k to 1M is the proof that the export holds no more than a
 * page, whatever the range. `ANNAL_BENCH_EXPORT_EVENTS` sets the count (default 1,000,000).
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import { execFile, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { promisify } from "node:util"
import * as DemoUsers from "../examples/organization/src/DemoUsers.ts"

const adminUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const total = Number(process.env["ANNAL_BENCH_EXPORT_EVENTS"] ?? 1_000_000)
const checkpoint = 100_000

const databaseUrl = (name: string) => {
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

const psql = (url: string, statement: string) =>
  Effect.promise(() => promisify(execFile)("psql", ["-q", "-v", "ON_ERROR_STOP=1", url, "-c", statement]))

interface Memory {
  readonly rss: number
  readonly peakRss: number
  readonly heapUsed: number
}

/** The server, its address, and a way to ask it for its memory. */
const startServer = (url: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly address: string; readonly memory: Effect.Effect<Memory>; readonly kill: () => void }>(
      (resume) => {
        const child = spawn(
          process.execPath,
          ["--conditions=@annal/source", new URL("./ExportServer.ts", import.meta.url).pathname],
          { env: { ...process.env, DATABASE_URL: url }, stdio: ["pipe", "pipe", "inherit"] }
        )
        const waiting: Array<(line: string) => void> = []
        createInterface({ input: child.stdout }).on("line", (line) => {
          if (!line.startsWith("{")) return
          const parsed = JSON.parse(line) as { address?: string }
          if (parsed.address !== undefined) {
            resume(
              Effect.succeed({
                address: parsed.address,
                memory: Effect.callback<Memory>((reply) => {
                  waiting.push((answer) => reply(Effect.succeed(JSON.parse(answer) as Memory)))
                  child.stdin.write("memory\n")
                }),
                kill: () => child.kill("SIGTERM")
              })
            )
          } else waiting.shift()?.(line)
        })
      }
    ),
    (server) => Effect.sync(server.kill)
  )

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`

const program = Effect.gen(function* () {
  const name = `annal_bench_export_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
  yield* Effect.acquireRelease(psql(adminUrl, `CREATE DATABASE ${name}`), () =>
    psql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
  )
  const url = databaseUrl(name)
  const server = yield* startServer(url)
  const call = (path: string, token: string, init: RequestInit = {}) =>
    Effect.promise(() =>
      fetch(`${server.address}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }
      })
    )
  const created = yield* call("/organizations", DemoUsers.user("alice").token, {
    method: "POST",
    body: JSON.stringify({ name: 'Ganga "Agro", Exports', type: "private_limited", email: "a@x.in", pan: "BENCH0001Z" })
  })
  if (created.status !== 201) return yield* Effect.die(new Error(`seed: ${created.status}`))
  // The app's own event, copied as rows of aggregates of their own: a real payload the registry decodes.
  const started = Date.now()
  for (let done = 1; done < total; done += checkpoint) {
    const rows = Math.min(checkpoint, total - done)
    yield* psql(
      url,
      `INSERT INTO events (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
         metadata, stream_version)
       SELECT gen_random_uuid(), e.event_type, gen_random_uuid(), e.aggregate_type, e.user_id, e."timestamp",
         e.version, e.data, e.metadata, 1
       FROM (SELECT * FROM events WHERE event_type = 'organization.created' LIMIT 1) e, generate_series(1, ${rows})`
    )
  }
  yield* psql(url, "VACUUM ANALYZE events")
  console.log(`seeded ${total.toLocaleString("en")} events in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const idle = yield* server.memory

  for (const format of ["ndjson", "csv"] as const) {
    const start = Date.now()
    const response = yield* call(`/audit/export?format=${format}`, DemoUsers.user("dana").token)
    if (response.status !== 200 || response.body === null) return yield* Effect.die(new Error(`${response.status}`))
    const reader = response.body.getReader()
    let lines = 0
    let bytes = 0
    let at100k: Memory | undefined
    while (true) {
      const chunk = yield* Effect.promise(() => reader.read())
      if (chunk.done) break
      bytes += chunk.value.length
      for (const byte of chunk.value) if (byte === 10) lines++
      if (at100k === undefined && lines >= checkpoint) at100k = yield* server.memory
    }
    const seconds = (Date.now() - start) / 1000
    const atEnd = yield* server.memory
    // CSV rows end in CRLF, one per event and one for the header; NDJSON lines one per event.
    const events = format === "csv" ? lines - 1 : lines
    console.log(
      JSON.stringify({
        format,
        events,
        seconds: Number(seconds.toFixed(1)),
        eventsPerSecond: Math.round(events / seconds),
        mibPerSecond: Number((bytes / 1024 / 1024 / seconds).toFixed(1)),
        idleRss: mib(idle.rss),
        peakRssTo100k: mib(at100k?.peakRss ?? 0),
        peakRss100kTo1M: mib(atEnd.peakRss),
        heapAt100k: mib(at100k?.heapUsed ?? 0),
        heapAtEnd: mib(atEnd.heapUsed)
      })
    )
  }
})

program.pipe(Effect.scoped, NodeRuntime.runMain)
