import { assert, describe, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditService from "../src/AuditService.ts"
import * as Digest from "../src/Digest.ts"
import * as EventEmitter from "../src/EventEmitter.ts"
import * as EventStore from "../src/EventStore.ts"
import * as EventTable from "../src/EventTable.ts"
import * as Feed from "../src/Feed.ts"
import * as Integrity from "../src/Integrity.ts"
import * as Migrations from "../src/Migrations.ts"
import { OrganizationCreated, OrganizationEvents, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const [first, second] = [TestDatabase.uniqueSchema(), TestDatabase.uniqueSchema()]

/** The emitter and the audit service over one store of the table in `schema`, migrated first. */
const trail = (schema: string, table?: string) =>
  Layer.mergeAll(EventEmitter.layer, AuditService.layer).pipe(
    Layer.provideMerge(EventStore.layer({ schema, table })),
    Layer.provideMerge(Migrations.layer({ schema, table }))
  )

const dropBoth = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.all([first, second].map((schema) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`)).pipe(Effect.ignore)
    )
  })
)

const created = (aggregateId: string, name: string) =>
  OrganizationCreated.make({
    aggregateId,
    userId: uuid(),
    data: { name, type: "corporation", email: "a@acme.test", country: "IN" }
  })

/** Appends one organization through the emitter in context and returns the names the audit service reads back. */
const emitAndRead = (name: string) =>
  Effect.gen(function* () {
    const emitter = yield* EventEmitter.EventEmitter
    const audit = yield* AuditService.AuditService
    const id = uuid()
    yield* emitter.emit(created(id, name))
    const recent = yield* audit.getRecentChanges(OrganizationEvents, { hours: 1 })
    return {
      id,
      names: recent.events.map((event) => (event.eventType === "organization.created" ? event.data.name : ""))
    }
  })

layer(Layer.provideMerge(dropBoth, TestDatabase.sqlLayer), { timeout: 60_000 })(
  `EventTable: where a layer's events live (${TestDatabase.engine})`,
  (it) => {
    it.effect("two trails on two tables in one program, each built from its own options, never mix", () =>
      Effect.gen(function* () {
        // Nested provides in one program: with one shared layer read from a reference, the second would have
        // been the first one again (the layer memoized); each options value is a layer of its own.
        const a = yield* emitAndRead("In the first").pipe(Effect.provide(trail(first)))
        const b = yield* emitAndRead("In the second").pipe(Effect.provide(trail(second, "ledger")))
        const again = yield* emitAndRead("First again").pipe(Effect.provide(trail(first)))
        assert.deepStrictEqual(a.names, ["In the first"])
        assert.deepStrictEqual(b.names, ["In the second"])
        assert.deepStrictEqual(again.names, ["First again", "In the first"])

        const sql = yield* SqlClient.SqlClient
        const counted = yield* sql<{ readonly n: string }>`SELECT
          (SELECT count(*) FROM ${sql(`${first}.events`)})::text || '/' ||
          (SELECT count(*) FROM ${sql(`${second}.ledger`)})::text AS n`
        assert.strictEqual(counted[0]!.n, "2/1")
      })
    )

    it.effect("a name that is not a plain identifier stops every layer that takes it, naming it", () =>
      Effect.gen(function* () {
        const bad = { schema: "x; DROP TABLE y" }
        const key = yield* Effect.flatMap(Digest.generateSigningKey, (generated) =>
          Digest.parseSigningKey(generated.privateKeyPem)
        )
        const builds = [
          Layer.build(Migrations.layer(bad)),
          Layer.build(EventStore.layer(bad)),
          Layer.build(Feed.layer(bad)),
          Layer.build(Integrity.layer(bad)),
          Layer.build(Digest.layer(bad).pipe(Layer.provide(Layer.succeed(Digest.SigningKey, key))))
        ]
        for (const build of builds) {
          const exit = yield* Effect.exit(Effect.scoped(build))
          assert.isTrue(Exit.isFailure(exit))
          if (Exit.isFailure(exit))
            assert.include(Cause.pretty(exit.cause), 'Invalid events schema or table name: "x; DROP')
        }
        // And the checked names are the ones given, with the defaults filled in.
        assert.deepStrictEqual(yield* EventTable.make({ table: "ledger" }), { schema: "public", table: "ledger" })
        assert.deepStrictEqual(yield* EventTable.make(), { schema: "public", table: "events" })
      })
    )
  }
)

describe("EventTable.make", () => {
  it("refuses names PostgreSQL would fold, quote or truncate", async () => {
    for (const name of ["Audit", "a-b", "1st", "", "x".repeat(49)]) {
      const exit = await Effect.runPromiseExit(EventTable.make({ schema: name }))
      assert.isTrue(Exit.isFailure(exit), name)
    }
    assert.isTrue(Exit.isSuccess(await Effect.runPromiseExit(EventTable.make({ schema: "x".repeat(48) }))))
  })
})
