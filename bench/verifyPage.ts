/**
 * `npm run bench:verify-page`: what one page of an aggregate's history costs to verify, against the whole stream.
 * One stream of 2,001 events (the figure; `--events=N` sets it) with a signed digest: `verifyAggregate`
 * re-reads and re-hashes the whole stream, `verifyPage` the page, its anchor's predecessor and one row after it, plus
 * the signed head. Each figure is the median of 50 calls, and then of 8 calls at once, on PostgreSQL
 * (`--engine=pglite` for PGlite).
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { makeReadStream } from "../packages/core/src/internal/integrity/read.ts"
import { GstAdded, OrganizationCreated } from "../packages/core/test/support/Fixtures.ts"
import { PgliteClient } from "@annal/sql-pglite"
import { integritySetup, latencies, median } from "./Harness.ts"

const args = process.argv.slice(2)
const eventsArg = args.find((arg) => arg.startsWith("--events="))
const total = eventsArg === undefined ? 2001 : Number(eventsArg.slice("--events=".length))
const engine = args.includes("--engine=pglite") ? "pglite" : "postgres"
const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const calls = 50

/** Dies unless the report verified: an untampered stream must. */
const checked = <A extends { readonly verified: boolean }, E>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(effect, (report) =>
    report.verified ? Effect.void : Effect.die(new Error("the untampered stream did not verify"))
  )

const program = Effect.gen(function* () {
  const { sql, schema, store, integrity, digest } = yield* integritySetup("annal_bench_page")

  const [org, user] = [crypto.randomUUID(), crypto.randomUUID()]
  yield* store.append([
    OrganizationCreated.make({
      aggregateId: org,
      userId: user,
      data: { name: "Benchmarked", type: "corporation", email: "b@bench.test", country: "IN" }
    })
  ])
  for (let written = 1; written < total; written += 500) {
    yield* store.append(
      Array.from({ length: Math.min(500, total - written) }, (_, n) =>
        GstAdded.make({ aggregateId: org, userId: user, data: { state: "KA", gstin: `G${written + n}` } })
      )
    )
  }
  yield* digest.create()
  const rows = yield* makeReadStream(sql, sql(`${schema}.events`))("organization", org)
  const page = (from: number, to: number) =>
    rows
      .filter((row) => row.streamVersion >= from && row.streamVersion <= to)
      .map(({ eventId, streamVersion }) => ({
        eventId,
        streamVersion
      }))
  const anchorAt = (version: number) => ({ streamVersion: version, hash: rows[version - 1]!.hash! })

  const cases = [
    ["verifyAggregate, the whole stream", checked(integrity.verifyAggregate("organization", org))],
    [
      "verifyPage, the first page (50, from genesis)",
      checked(integrity.verifyPage("organization", org, { events: page(1, 50) }))
    ],
    [
      "verifyPage, a later page (50, anchored)",
      checked(integrity.verifyPage("organization", org, { events: page(1001, 1050), anchor: anchorAt(1000) }))
    ],
    [
      "verifyPage, the last page (limit=1, anchored)",
      checked(integrity.verifyPage("organization", org, { events: page(total, total), anchor: anchorAt(total - 1) }))
    ]
  ] as const

  console.log(
    `\n${engine}: one stream of ${total.toLocaleString("en-US")} events, a signed digest (Node ${process.version})`
  )
  const figures: Array<number> = []
  for (const [name, run] of cases) {
    const one = median(yield* latencies(calls, () => run))
    const eight = median(
      yield* latencies(10, () =>
        Effect.all(
          Array.from({ length: 8 }, () => run),
          { concurrency: 8 }
        )
      )
    )
    figures.push(one)
    console.log(`  ${name.padEnd(48)} ${one.toFixed(2).padStart(8)} ms   8 at once: ${eight.toFixed(2).padStart(8)} ms`)
  }
  console.log(`  a later page costs ${(figures[2]! / figures[0]!).toFixed(3)}x the whole stream's verification`)
}).pipe(Effect.scoped)

const client: Layer.Layer<SqlClient.SqlClient, unknown> =
  engine === "postgres" ? PgClient.layer({ url: Redacted.make(url) }) : PgliteClient.layer({})

program.pipe(Effect.provide(client), NodeRuntime.runMain)
