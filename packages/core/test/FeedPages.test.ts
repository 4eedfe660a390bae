/**
 * What one page of the feed costs the database, counted in rows, not time: a page deep inside one large commit (a
 * bulk import, say) reads about a page of rows, wherever it starts in that commit, and so does the feed's head. The
 * count is the table's row statistics of the reading transaction itself (`pg_stat_xact_user_tables`), so nothing
 * else the server runs shows in it. A plain join of commits and events read the whole rest of the commit for every
 * page: a catch-up quadratic in the size of its largest transaction.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import * as Feed from "../src/Feed.ts"
import { GstAdded } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const Events = EventRegistry.make(GstAdded)
const size = 20_000
const limit = 100

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`Feed pages (${TestDatabase.engine})`, (it) => {
  it.effect("a page deep inside one large commit, and the head after it, read about a page of rows", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const feed = yield* Feed.Feed
      const table = `${schema}.events`
      // One small commit, then one transaction of `size` events, as a bulk import writes them: the last commit.
      yield* Effect.asVoid(FeedDatabase.appendMany(1))
      yield* sql`INSERT INTO ${sql(table)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
          version, data, stream_version)
          SELECT gen_random_uuid(), 'organization.gst.added', gen_random_uuid(), 'organization', gen_random_uuid(),
            now(), 1, jsonb_build_object('gstin', i::text, 'state', 'KA'), 1
          FROM generate_series(1, ${size}) AS i`
      // The plan follows the statistics: with none, the planner expects a few rows per transaction and sorts what
      // a bitmap scan of the whole commit gives (docs/ordering.md, caveats). Autovacuum would analyze the table.
      yield* sql`ANALYZE ${sql(table)}`
      const committed = yield* FeedDatabase.committed(schema)
      assert.strictEqual(committed.length, size + 1)
      const [bulk] = yield* sql<{ readonly n: string }>`SELECT count(DISTINCT transaction_id)::text AS n
          FROM ${sql(table)} WHERE event_type = 'organization.gst.added' AND stream_version = 1`
      assert.strictEqual(bulk!.n, "2", "the append is one commit, and the bulk import another")

      /** The rows the table gave `effect`, run in a transaction of its own so that its statistics are its own. */
      const rowsRead = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        sql.withTransaction(
          Effect.gen(function* () {
            const counted = sql<{ readonly n: string }>`SELECT
                (COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0))::text AS n
                FROM pg_stat_xact_user_tables WHERE relid = ${table}::regclass`
            const before = Number((yield* counted)[0]?.n ?? "0")
            const result = yield* effect
            const after = Number((yield* counted)[0]?.n ?? "0")
            return { result, rows: after - before }
          })
        )

      // A page a quarter of the way into the commit, and one from near its end: each reads about a page.
      for (const start of [size / 4, size - limit / 2]) {
        const from = committed[start - 1]!.checkpoint
        const { result: page, rows } = yield* rowsRead(feed.read(Events, { after: from, limit }))
        assert.deepStrictEqual(
          page.entries.map((entry) => entry.event.eventId),
          committed.slice(start, start + limit).map((event) => event.eventId),
          "the page is the events after the checkpoint, in feed order"
        )
        assert.isAtMost(rows, 3 * limit, `a page from event ${start} read ${rows} rows of the table`)
      }

      // The head is the last event of the large commit, found without reading the rest of it.
      const { result: head, rows } = yield* rowsRead(feed.head)
      assert.strictEqual(Checkpoint.compare(head, committed.at(-1)!.checkpoint), 0)
      assert.isAtMost(rows, 3 * limit, `the head read ${rows} rows of the table`)
    })
  )
})
