/**
 * The Organization app over the database `DATABASE_URL` names, in a process of its own, for `bench/export.ts`: it
 * prints its address as a JSON line on stdout, samples its resident set size every 10 ms, and answers each line
 * on stdin with a JSON line of its memory (current and peak RSS since the previous line, heap used), so that the
 * figures are the server's alone, taken while it streams an export.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createInterface } from "node:readline"
import * as App from "../examples/organization/src/App.ts"
import * as DemoUsers from "../examples/organization/src/DemoUsers.ts"

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const program = Effect.gen(function* () {
  const server = yield* HttpServer.HttpServer
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 10)
  yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
  createInterface({ input: process.stdin }).on("line", () => {
    const { rss, heapUsed } = process.memoryUsage()
    console.log(JSON.stringify({ rss, peakRss: Math.max(peak, rss), heapUsed }))
    peak = rss
  })
  console.log(JSON.stringify({ address: HttpServer.formatAddress(server.address) }))
  return yield* Effect.never
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Layer.unwrap(
      Effect.map(DemoUsers.tokenEntries, (tokens) =>
        App.layer({ port: 0, host: "127.0.0.1", tokens, logRequests: false })
      )
    ).pipe(Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 })))
  ),
  NodeRuntime.runMain
)
