/**
 * Page-proportional verification (`Integrity.verifyPage`), attacked. A page is checked from its anchor: the genesis
 * hash for the first page, the previous page's verified last event for the others. Each attack is made as a
 * superuser past the append-only triggers, who knows the hash scheme and recomputes hashes, and is rolled back.
 *
 * The naive page check, which hashes the page's rows from the hash stored before them, is run beside the real one:
 * it passes the attacks at the boundary, before the page and on the tail, which shows what the anchor and the signed
 * head are there for.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as Digest from "../src/Digest.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import { type ChainedEvent, genesis, scheme } from "../src/internal/integrity/chain.ts"
import { makeReadStream } from "../src/internal/integrity/read.ts"
import * as Chains from "./support/Chains.ts"
import { GstAdded, OrganizationCreated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`

const TestLayer = Layer.mergeAll(Integrity.layer({ schema }), Digest.layer({ schema })).pipe(
  Layer.provideMerge(Chains.signingKey),
  Layer.provideMerge(TestDatabase.layerWith(schema))
)

/** Runs `body` as a superuser who has turned the append-only trigger off, and rolls everything back. */
const asAttacker = Chains.asAttacker(events)

/** The stream's rows as the chain reads them. */
const rowsOf = (aggregateId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    makeReadStream(sql, sql(events))("organization", aggregateId.toLowerCase())
  )

/** A stream of `length` events, and the rows it was written as. */
const writeStream = (length: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const [org, user] = [uuid(), uuid()]
    yield* store.append([
      OrganizationCreated.make({
        aggregateId: org,
        userId: user,
        data: { name: "Paged", type: "corporation", email: "p@paged.test", country: "IN" }
      }),
      ...Array.from({ length: length - 1 }, (_, n) =>
        GstAdded.make({ aggregateId: org, userId: user, data: { state: "KA", gstin: `G${n}` } })
      )
    ])
    return { org, rows: yield* rowsOf(org) }
  })

/** The page of `rows` from version `from` to `to`, as the history shows it. */
const shown = (rows: ReadonlyArray<ChainedEvent>, from: number, to: number) =>
  rows
    .filter((row) => row.streamVersion >= from && row.streamVersion <= to)
    .map(({ eventId, streamVersion }) => ({ eventId, streamVersion }))

/** The naive check: the page's links, from whatever hash is stored before it. */
const naiveVerified = (rows: ReadonlyArray<ChainedEvent>, from: number, to: number): boolean => {
  let previous = from === 1 ? genesis : rows.find((row) => row.streamVersion === from - 1)?.hash
  for (const row of rows.filter((row) => row.streamVersion >= from && row.streamVersion <= to)) {
    if (previous === undefined || previous === null) return false
    if (scheme.link(previous, scheme.canonical(row)) !== row.hash) return false
    previous = row.hash
  }
  return true
}

/** Recomputes every hash of the stream from version `from` on, as an attacker who knows the scheme does. */
const rehashFrom = (aggregateId: string, from: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* rowsOf(aggregateId)
    let previous = from === 1 ? genesis : rows.find((row) => row.streamVersion === from - 1)!.hash!
    for (const row of rows.filter((row) => row.streamVersion >= from)) {
      previous = scheme.link(previous, scheme.canonical(row))
      yield* sql`UPDATE ${sql(events)} SET hash = decode(${previous}, 'hex') WHERE id = ${row.eventId}::uuid`
    }
  })

/**
 * Page 2 (versions 5 to 8) of a stream of 10, checked after `tamper` by the naive page check, by `verifyPage` from
 * the anchor page 1 was served with (version 4, as written), and by `verifyAggregate`; all rolled back.
 */
const secondPageAfter = <E, R>(tamper: (org: string) => Effect.Effect<unknown, E, R>, options?: { signed: boolean }) =>
  Effect.gen(function* () {
    const integrity = yield* Integrity.Integrity
    const { org, rows } = yield* writeStream(10)
    const document = options?.signed === true ? yield* Effect.flatMap(Digest.Digest, (d) => d.create()) : undefined
    const anchor = { streamVersion: 4, hash: rows[3]!.hash! }
    const [naive, report, full] = yield* asAttacker(
      Effect.gen(function* () {
        yield* tamper(org)
        const now = yield* rowsOf(org)
        return [
          naiveVerified(now, 5, 8),
          yield* integrity.verifyPage("organization", org, { events: shown(now, 5, 8), anchor }),
          yield* integrity.verifyAggregate("organization", org)
        ] as const
      })
    )
    return { naive, report, full, document, found: [report.finding?.kind, report.finding?.streamVersion] }
  })

/** Changes the data of the event at `version`, and not its hash. */
const changeData = (org: string, version: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`UPDATE ${sql(events)} SET data = jsonb_set(data, '{gstin}', '"FORGED"')
      WHERE aggregate_id = ${org}::uuid AND stream_version = ${version}`
  )

layer(TestLayer, { timeout: 120_000 })(`Integrity.verifyPage (${TestDatabase.engine})`, (it) => {
  it.effect("pages verify from the genesis hash and then from the previous page's last event", () =>
    Effect.gen(function* () {
      const integrity = yield* Integrity.Integrity
      const { org, rows } = yield* writeStream(10)
      const first = yield* integrity.verifyPage("organization", org, { events: shown(rows, 1, 4) })
      assert.isTrue(first.verified)
      assert.deepStrictEqual(
        [first.fromVersion, first.toVersion, first.events, first.anchor.kind],
        [1, 4, 4, "genesis"]
      )
      assert.deepStrictEqual(first.last, { streamVersion: 4, hash: rows[3]!.hash! })
      const second = yield* integrity.verifyPage("organization", org, { events: shown(rows, 5, 8), anchor: first.last })
      assert.isTrue(second.verified)
      assert.deepStrictEqual(
        [second.fromVersion, second.toVersion, second.events, second.anchor.kind, second.finding],
        [5, 8, 4, "previousPage", undefined]
      )
      assert.deepStrictEqual(second.last, { streamVersion: 8, hash: rows[7]!.hash! })
    })
  )

  describe("attacks", () => {
    it.effect("an event changed inside the page is reported where it was changed", () =>
      Effect.gen(function* () {
        const { naive, report, found } = yield* secondPageAfter((org) => changeData(org, 6))
        assert.isFalse(naive)
        assert.isFalse(report.verified)
        assert.deepStrictEqual(found, ["changed", 6])
        assert.isUndefined(report.last)
      })
    )

    it.effect("the boundary event rewritten with every later hash recomputed: the naive page check passes it", () =>
      Effect.gen(function* () {
        const { naive, report, full, found } = yield* secondPageAfter((org) =>
          Effect.andThen(changeData(org, 4), rehashFrom(org, 4))
        )
        // Every link holds from the genesis hash: only what was verified before (the anchor) can tell.
        assert.isTrue(naive)
        assert.isTrue(full.verified)
        assert.isFalse(report.verified)
        assert.deepStrictEqual(found, ["rewritten", 4])
      })
    )

    it.effect("the boundary event changed with its hash left alone: the naive page check passes it", () =>
      Effect.gen(function* () {
        const { naive, report, found } = yield* secondPageAfter((org) => changeData(org, 4))
        assert.isTrue(naive)
        assert.isFalse(report.verified)
        assert.deepStrictEqual(found, ["changed", 4])
      })
    )

    it.effect("a stream truncated below its signed head is reported on a page before the cut", () =>
      Effect.gen(function* () {
        const { naive, report, document, found } = yield* secondPageAfter(
          (org) =>
            Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql`DELETE FROM ${sql(events)} WHERE aggregate_id = ${org}::uuid AND stream_version > 8`
            ),
          { signed: true }
        )
        assert.isTrue(naive)
        assert.isFalse(report.verified)
        assert.deepStrictEqual(found, ["truncated", 9])
        assert.include(report.finding?.detail ?? "", `digest #${document?.id}`)
        assert.deepStrictEqual(report.digest?.signedVersion, 10)
      })
    )

    it.effect("an event planted before the page, the later ones renumbered and rehashed, is reported", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        // The forged event is written to a stream of its own, then moved into this one at version 3.
        const donor = uuid()
        yield* store.append([GstAdded.make({ aggregateId: donor, userId: donor, data: { state: "KA", gstin: "X" } })])
        const { naive, report, found } = yield* secondPageAfter((org) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const table = sql(events)
            yield* sql`UPDATE ${table} SET stream_version = stream_version + 1000
              WHERE aggregate_id = ${org}::uuid AND stream_version >= 3`
            yield* sql`UPDATE ${table} SET stream_version = stream_version - 999
              WHERE aggregate_id = ${org}::uuid AND stream_version >= 1000`
            yield* sql`UPDATE ${table} SET aggregate_id = ${org}::uuid, stream_version = 3
              WHERE aggregate_id = ${donor}::uuid`
            yield* rehashFrom(org, 3)
          })
        )
        assert.isTrue(naive)
        assert.isFalse(report.verified)
        assert.deepStrictEqual(found, ["rewritten", 4])
      })
    )

    it.effect("a page that shows an event from before its anchor is reported", () =>
      Effect.gen(function* () {
        const integrity = yield* Integrity.Integrity
        const { org, rows } = yield* writeStream(10)
        const anchor = { streamVersion: 4, hash: rows[3]!.hash! }
        const planted = rows[1]!
        const report = yield* integrity.verifyPage("organization", org, {
          events: [...shown(rows, 5, 8), { eventId: planted.eventId, streamVersion: planted.streamVersion }],
          anchor
        })
        assert.isFalse(report.verified)
        assert.deepStrictEqual(
          [report.finding?.kind, report.finding?.streamVersion, report.finding?.eventId],
          ["inserted", 2, planted.eventId]
        )
      })
    )
  })
})
