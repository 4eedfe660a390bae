import {
  AuditService,
  EventContext,
  EventDefinition,
  EventEmitter,
  EventRegistry,
  EventStore,
  Migrations,
  Projection
} from "@annal/core"
import { PgliteClient } from "@annal/sql-pglite"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"

// 1. Two events. organization.created has two versions: rows stored as v1 read as v2.
const OrganizationCreated = EventDefinition.make("organization.created", {
  aggregateType: "organization",
  schema: Schema.Struct({ name: Schema.NonEmptyString })
}).evolve(Schema.Struct({ name: Schema.NonEmptyString, country: Schema.String }), (v1) => ({ ...v1, country: "IN" }))

const OrganizationRenamed = EventDefinition.make("organization.renamed", {
  aggregateType: "organization",
  schema: Schema.Struct({ name: Schema.NonEmptyString })
})

const OrganizationEvents = EventRegistry.make(OrganizationCreated, OrganizationRenamed)
type OrganizationEvent = EventRegistry.EventOf<typeof OrganizationEvents>

// 2. A projection folds the history into state; the union narrows on eventType.
const CurrentName = Projection.make({
  initial: "",
  apply: (_: string, event: OrganizationEvent) => event.data.name
})

// 3. The business write and its event commit in one transaction, or neither does.
const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const events = yield* EventEmitter.EventEmitter
  const audit = yield* AuditService.AuditService
  yield* sql`CREATE TABLE IF NOT EXISTS organizations (id uuid PRIMARY KEY, name text NOT NULL)`
  const id = crypto.randomUUID()
  yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`INSERT INTO organizations (id, name) VALUES (${id}, 'Acme Trading')`
      yield* events.emit(OrganizationCreated.make({ aggregateId: id, data: { name: "Acme Trading", country: "IN" } }))
    })
  )
  yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`UPDATE organizations SET name = 'Acme Commodities' WHERE id = ${id}`
      yield* events.emit(OrganizationRenamed.make({ aggregateId: id, data: { name: "Acme Commodities" } }))
    })
  )
  // 4. Read the history back, typed and decoded, and fold it.
  const { events: history } = yield* audit.getEntityHistory(OrganizationEvents, "organization", id)
  for (const event of history) {
    yield* Console.log(event.streamVersion, event.eventType, event.data, event.metadata.correlationId)
  }
  yield* Console.log("current name:", Projection.fold(CurrentName, history))
}).pipe(
  // Who acts and the request's metadata are captured once; every emit inside reads them.
  EventContext.provide({ userId: crypto.randomUUID(), metadata: { ipAddress: "127.0.0.1", correlationId: "demo-1" } })
)

// 5. The layers: the emitter and the audit service over one store of the events table, migrated first, over
// embedded PGlite persisted in a folder. Each layer's type names what it needs.
const Annal = Layer.mergeAll(EventEmitter.layer, AuditService.layer).pipe(
  Layer.provideMerge(EventStore.layer()),
  Layer.provideMerge(Migrations.layer()),
  Layer.provideMerge(PgliteClient.layer({ dataDir: process.env["ANNAL_DATA_DIR"] ?? ".data/quickstart" }))
)

program.pipe(Effect.provide(Annal), NodeRuntime.runMain)
