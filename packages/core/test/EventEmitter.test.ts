import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventContext from "../src/EventContext.ts"
import { EventEmitter } from "../src/EventEmitter.ts"
import { EventStore } from "../src/EventStore.ts"
import { GstAdded, OrganizationCreated, OrganizationEvents, OrganizationUpdated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const acme = { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }

/** A business table beside the events, to write in the same transaction. */
const businessTable = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const name = `org_${uuid().replaceAll("-", "").slice(0, 12)}`
  yield* sql`CREATE TABLE ${sql(name)} (id uuid PRIMARY KEY, name text NOT NULL)`
  return name
})

layer(TestDatabase.layer())(`EventEmitter (${TestDatabase.engine})`, (it) => {
  describe("transactions", () => {
    it.effect("a business write and its event commit together", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const emitter = yield* EventEmitter
        const store = yield* EventStore
        const table = yield* businessTable
        const [org, user] = [uuid(), uuid()]
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO ${sql(table)} (id, name) VALUES (${org}::uuid, 'Acme')`
            yield* emitter.emit(OrganizationCreated.make({ aggregateId: org, userId: user, data: acme }))
          })
        )
        const rows = yield* sql`SELECT id FROM ${sql(table)} WHERE id = ${org}::uuid`
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(rows.length, 1)
        assert.strictEqual(history.length, 1)
      })
    )

    it.effect("a rollback leaves neither the business row nor the event", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const emitter = yield* EventEmitter
        const store = yield* EventStore
        const table = yield* businessTable
        const [org, user] = [uuid(), uuid()]
        const failed = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO ${sql(table)} (id, name) VALUES (${org}::uuid, 'Acme')`
              yield* emitter.emit(OrganizationCreated.make({ aggregateId: org, userId: user, data: acme }))
              return yield* Effect.fail("business rule broken" as const)
            })
          )
          .pipe(Effect.flip)
        assert.strictEqual(failed, "business rule broken")
        const rows = yield* sql`SELECT id FROM ${sql(table)} WHERE id = ${org}::uuid`
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(rows.length, 0)
        assert.strictEqual(history.length, 0)
      })
    )

    it.effect("a conflict inside the caller's transaction leaves the transaction usable", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const emitter = yield* EventEmitter
        const [org, user] = [uuid(), uuid()]
        yield* emitter.emit(OrganizationCreated.make({ aggregateId: org, userId: user, data: acme }))
        const result = yield* sql.withTransaction(
          Effect.gen(function* () {
            const conflict = yield* Effect.flip(
              emitter.emit(GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } }), {
                expectedVersion: 7
              })
            )
            // The statement skipped instead of raising, so the transaction can go on.
            const [row] = yield* sql<{ readonly one: number }>`SELECT 1 AS one`
            return [conflict._tag, row?.one] as const
          })
        )
        assert.deepStrictEqual(result, ["ConcurrencyConflict", 1])
      })
    )

    it.effect("outside a transaction emitMany is atomic: a conflict on its stream stores none of it", () =>
      Effect.gen(function* () {
        const emitter = yield* EventEmitter
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        const events = [
          OrganizationCreated.make({ aggregateId: org, userId: user, data: acme }),
          GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } })
        ]
        const error = yield* Effect.flip(emitter.emitMany(events, { expectedVersion: 3 }))
        assert.strictEqual(error._tag, "ConcurrencyConflict")
        assert.strictEqual((yield* store.getByAggregate(OrganizationEvents, "organization", org)).length, 0)
        const stored = yield* emitter.emitMany(events, { expectedVersion: "no_stream" })
        assert.deepStrictEqual(
          stored.map((a) => a.streamVersion),
          [1, 2]
        )
      })
    )
  })

  describe("context", () => {
    it.effect("metadata and user come from the EventContext; an event's own metadata overrides it", () =>
      Effect.gen(function* () {
        const emitter = yield* EventEmitter
        const store = yield* EventStore
        const [org, user, other] = [uuid(), uuid(), uuid()]
        yield* Effect.gen(function* () {
          yield* emitter.emit(OrganizationCreated.make({ aggregateId: org, data: acme }))
          yield* emitter.emit(
            GstAdded.make({
              aggregateId: org,
              userId: other,
              data: { gstin: "1", state: "KA" },
              metadata: { reason: "compliance review", extras: { ticket: "T-1" } }
            })
          )
        }).pipe(
          EventContext.provide({
            userId: user,
            metadata: { ipAddress: "192.168.1.100", userAgent: "test", correlationId: "req-1", extras: { job: "j" } }
          })
        )
        const [first, second] = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(first!.userId, user)
        assert.deepStrictEqual(first!.metadata, {
          ipAddress: "192.168.1.100",
          userAgent: "test",
          correlationId: "req-1",
          extras: { job: "j" }
        })
        assert.strictEqual(second!.userId, other)
        assert.deepStrictEqual(second!.metadata, {
          ipAddress: "192.168.1.100",
          userAgent: "test",
          correlationId: "req-1",
          reason: "compliance review",
          extras: { job: "j", ticket: "T-1" }
        })
        const correlated = yield* store.query(OrganizationEvents, { correlationId: "req-1" })
        assert.strictEqual(correlated.events.length, 2)
      })
    )

    it.effect("an event with no user, and no EventContext to give one, is refused", () =>
      Effect.gen(function* () {
        const emitter = yield* EventEmitter
        const error = yield* Effect.flip(emitter.emit(OrganizationCreated.make({ aggregateId: uuid(), data: acme })))
        assert.strictEqual(error._tag, "InvalidEvent")
        if (error._tag === "InvalidEvent") assert.strictEqual(error.field, "userId")
      })
    )
  })

  describe("changes", () => {
    it.effect("emitChanges records only the fields that changed, and nothing when none did", () =>
      Effect.gen(function* () {
        const emitter = yield* EventEmitter
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        const after = { ...acme, email: "new@acme.test" }
        const emitted = yield* emitter.emitChanges(OrganizationUpdated, {
          aggregateId: org,
          userId: user,
          before: acme,
          after
        })
        const none = yield* emitter.emitChanges(OrganizationUpdated, {
          aggregateId: org,
          userId: user,
          before: after,
          after
        })
        assert.isTrue(Option.isSome(emitted))
        assert.isTrue(Option.isNone(none))
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(history.length, 1)
        const [event] = history
        if (event?.eventType !== "organization.updated") return assert.fail("expected an update")
        assert.deepStrictEqual(event.data, { changes: { email: { old: "a@acme.test", new: "new@acme.test" } } })
      })
    )
  })

  describe("bad input stores nothing", () => {
    const cases = [
      {
        name: "a malformed event type",
        event: () => ({
          ...GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } }),
          eventType: "Organization GST"
        }),
        field: "eventType"
      },
      {
        name: "a payload that fails its schema",
        event: () => OrganizationCreated.make({ aggregateId: org, userId: user, data: { ...acme, name: "" } }),
        field: "data"
      },
      {
        name: "a \\u0000 in a string",
        event: () => GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "a\u0000b", state: "KA" } }),
        field: "data.gstin"
      },
      {
        name: "a lone surrogate",
        event: () => GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "\uD800x", state: "KA" } }),
        field: "data.gstin"
      },
      {
        name: "an integer beyond 2^53",
        event: () =>
          GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA", amount: 2 ** 60 } }),
        field: "data.amount"
      },
      {
        name: "NaN",
        event: () => GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA", amount: NaN } }),
        field: "data.amount"
      },
      {
        name: "a non-UUID aggregate id",
        event: () => GstAdded.make({ aggregateId: "org-1", userId: user, data: { gstin: "1", state: "KA" } }),
        field: "aggregateId"
      },
      {
        name: "a non-UUID user id",
        event: () => GstAdded.make({ aggregateId: org, userId: "alice", data: { gstin: "1", state: "KA" } }),
        field: "userId"
      },
      {
        name: "a \\u0000 in metadata",
        event: () =>
          GstAdded.make({
            aggregateId: org,
            userId: user,
            data: { gstin: "1", state: "KA" },
            metadata: { reason: "x\u0000" }
          }),
        field: "metadata.reason"
      }
    ]
    const org = uuid()
    const user = uuid()
    for (const testCase of cases) {
      it.effect(
        `${testCase.name} is an InvalidEvent naming ${testCase.field}, and no event of the batch is stored`,
        () =>
          Effect.gen(function* () {
            const emitter = yield* EventEmitter
            const store = yield* EventStore
            const valid = GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "ok", state: "KA" } })
            const error = yield* Effect.flip(emitter.emitMany([valid, testCase.event()]))
            assert.strictEqual(error._tag, "InvalidEvent")
            if (error._tag === "InvalidEvent") assert.strictEqual(error.field, testCase.field)
            assert.strictEqual(yield* store.count({ aggregateId: org }), 0)
          })
      )
    }
  })
})
