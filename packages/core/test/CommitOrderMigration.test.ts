/**
 * Migration 6 on a log written before it: the transactions already stored are numbered in the order the feed read
 * them until then (by transaction id), and the checkpoints stored with the consumers and the digests move to the
 * commit order, to the same place.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import * as EventStore from "../src/EventStore.ts"
import * as Feed from "../src/Feed.ts"
import * as Migrations from "../src/Migrations.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const tx = (rows: ReadonlyArray<{ readonly transaction_id: string }>) => BigInt(rows[0]!.transaction_id)
const gp = (row: { readonly global_position: string }) => BigInt(row.global_position)
const config = { schema, table: "events" }

/** The client, with the schema dropped at the end; the migrations are run by the test itself. */
const TestLayer = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
  })
).pipe(Layer.provideMerge(TestDatabase.sqlLayer), Layer.orDie)

layer(TestLayer, { excludeTestServices: true })(`migration 6 (${TestDatabase.engine})`, (it) => {
  it.effect("numbers the stored transactions in the previous feed order and moves stored checkpoints with them", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE SCHEMA ${sql(schema)}`
      const before = Object.fromEntries(
        Object.entries(Migrations.migrations(config)).filter(([name]) => Number.parseInt(name, 10) < 6)
      )
      yield* Migrator.make({})({ loader: Migrator.fromRecord(before), table: `${schema}.events_migrations` })
      const table = sql(`${schema}.events`)
      // Three transactions of an earlier release: two events, then one, then one.
      const write = (count: number) =>
        sql.withTransaction(
          Effect.gen(function* () {
            const stream = uuid()
            const rows: Array<{ readonly transaction_id: string; readonly global_position: string }> = []
            for (let version = 1; version <= count; version++) {
              const [row] = yield* sql<{ readonly transaction_id: string; readonly global_position: string }>`
                INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
                  stream_version)
                VALUES (${uuid()}, 'organization.gst.added', ${stream}, 'organization', ${uuid()}, now(), 1,
                  '{"gstin": "1", "state": "KA"}', ${version})
                RETURNING transaction_id::text AS transaction_id, global_position::text AS global_position`
              rows.push(row!)
            }
            return rows
          })
        )
      const t1 = yield* write(2)
      const t2 = yield* write(1)
      const t3 = yield* write(1)
      // Stored checkpoints of the first format: the start, inside T1, before T3, before everything, after everything.
      const stored = [
        ["start", 0n, 0n],
        ["inside", tx(t1), gp(t1[0]!)],
        ["before-t3", tx(t3), 0n],
        ["before-all", tx(t1) - 1n, 0n],
        ["after-all", tx(t3) + 1000n, 0n]
      ] as const
      for (const [name, transactionId, position] of stored) {
        yield* sql`INSERT INTO ${sql(`${schema}.events_consumers`)} (name, checkpoint_transaction_id,
          checkpoint_global_position) VALUES (${name}, ${transactionId.toString()}::xid8, ${position.toString()})`
      }
      yield* sql`INSERT INTO ${sql(`${schema}.events_digests`)} (id, checkpoint_transaction_id, checkpoint_global_position,
        root, document) VALUES (1, ${tx(t2).toString()}::xid8, ${gp(t2[0]!).toString()}, decode(repeat('00', 32), 'hex'), '{}')`

      const applied = yield* Migrations.run({ schema })
      assert.deepStrictEqual(applied, [
        [6, "commit_order"],
        [7, "digest_chain"]
      ])

      const commits = yield* sql<{ readonly commit_sequence: string; readonly transaction_id: string }>`SELECT
        commit_sequence::text AS commit_sequence, transaction_id::text AS transaction_id
        FROM ${sql(`${schema}.events_commits`)} ORDER BY commit_sequence`
      assert.deepStrictEqual(
        commits.map((row) => [row.commit_sequence, row.transaction_id]),
        [
          ["1", String(tx(t1))],
          ["2", String(tx(t2))],
          ["3", String(tx(t3))]
        ]
      )
      const consumers = yield* sql<{ readonly name: string; readonly c: string; readonly p: string }>`SELECT name,
        checkpoint_commit_sequence::text AS c, checkpoint_global_position::text AS p
        FROM ${sql(`${schema}.events_consumers`)} ORDER BY name`
      assert.deepStrictEqual(Object.fromEntries(consumers.map((row) => [row.name, [row.c, row.p]])), {
        start: ["0", "0"],
        inside: ["1", String(gp(t1[0]!))],
        "before-t3": ["3", "0"],
        "before-all": ["0", "0"],
        "after-all": ["3", String(Checkpoint.endOfCommit)]
      })
      const [digest] = yield* sql<{ readonly c: string; readonly p: string }>`SELECT
        checkpoint_commit_sequence::text AS c, checkpoint_global_position::text AS p FROM ${sql(`${schema}.events_digests`)}`
      assert.deepStrictEqual([digest!.c, digest!.p], ["2", String(gp(t2[0]!))])

      // The feed reads the old log in the old order, then what is appended now after it.
      const services = Layer.mergeAll(Feed.layer({ schema }), EventStore.layer({ schema }))
      yield* Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const feed = yield* Feed.Feed
        const [fresh] = yield* store.append([
          GstAdded.make({ aggregateId: uuid(), userId: uuid(), data: { gstin: "2", state: "KA" } })
        ])
        const all = yield* Stream.runCollect(feed.stream(EventRegistry.raw, { live: false }))
        assert.deepStrictEqual(
          all.map((entry) => [entry.checkpoint.commitSequence, entry.event.globalPosition]),
          [
            [1n, gp(t1[0]!)],
            [1n, gp(t1[1]!)],
            [2n, gp(t2[0]!)],
            [3n, gp(t3[0]!)],
            [4n, fresh!.globalPosition]
          ]
        )
        // An SSE id of the first format, for the first event, resumes after it.
        const legacy = btoa(`annal.feed.v1:${tx(t1)}:${gp(t1[0]!)}`).replaceAll("=", "")
        assert.deepStrictEqual(yield* feed.resolve(legacy), Checkpoint.make(1n, gp(t1[0]!)))
      }).pipe(Effect.provide(services))
    })
  )
})
