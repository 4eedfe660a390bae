/**
 * The commodity catalog, after docs/design.md's Commodity example: each write changes the table and emits its event in
 * one transaction; an update emits the fields that changed, and nothing when none did.
 *
 * @since 0.1.0
 */
import { EventEmitter, type EventStore } from "@annal/core"
import { ApiError } from "@annal/http"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Domain from "./Domain.ts"
import * as Events from "./Events.ts"
import { conflictOrInternal, decode } from "./Organizations.ts"

/** A commodity, with its id. */
export interface CommodityRecord extends Domain.Commodity {
  readonly id: string
}

/** The server failed, or the request ran past its time bound. */
type Failure = ApiError.InternalError | ApiError.Timeout

/** The service. */
export class Commodities extends Context.Service<
  Commodities,
  {
    readonly create: (
      input: Domain.Commodity
    ) => Effect.Effect<CommodityRecord, ApiError.NotFound | ApiError.Conflict | Failure>
    readonly list: Effect.Effect<ReadonlyArray<CommodityRecord>, Failure>
    readonly get: (id: string) => Effect.Effect<CommodityRecord, ApiError.NotFound | Failure>
    readonly update: (
      id: string,
      input: Domain.UpdateCommodity
    ) => Effect.Effect<CommodityRecord, ApiError.NotFound | ApiError.Conflict | Failure>
  }
>()("@annal/example-organization/Commodities") {}

/** Builds the service over the `SqlClient` and `EventEmitter` in context. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const events = yield* EventEmitter.EventEmitter

  const transaction = <A, R>(
    name: string,
    effect: Effect.Effect<A, ApiError.NotFound | SqlError | EventStore.AppendError, R>
  ) =>
    sql.withTransaction(effect).pipe(
      Effect.catchTag("SqlError", (error) => conflictOrInternal(name, error)),
      Effect.catchTag(["InvalidEvent", "ConcurrencyConflict", "EventIdConflict", "StorageError"], (error) =>
        ApiError.storage(name, error)
      ),
      Effect.withSpan(`Commodities.${name}`)
    )

  const select = (id: string, forUpdate: boolean) =>
    sql`SELECT id, name, category, hsn_code, unit FROM commodities WHERE id = ${id} ${
      forUpdate ? sql`FOR UPDATE` : sql``
    }`.pipe(
      Effect.flatMap(decode(CommodityRow)),
      Effect.flatMap(([row]) =>
        row === undefined
          ? Effect.fail(new ApiError.NotFound({ message: `No commodity ${id}` }))
          : Effect.succeed(toCommodity(row))
      )
    )

  return Commodities.of({
    create: (input) =>
      transaction(
        "create",
        Effect.gen(function* () {
          const id = crypto.randomUUID()
          yield* sql`INSERT INTO commodities (id, name, category, hsn_code, unit)
            VALUES (${id}, ${input.name}, ${input.category}, ${input.hsnCode}, ${input.unit})`
          yield* events.emit(Events.CommodityCreated.make({ aggregateId: id, data: input }))
          return { id, ...input }
        })
      ),
    list: sql`SELECT id, name, category, hsn_code, unit FROM commodities ORDER BY name, id`.pipe(
      Effect.flatMap(decode(CommodityRow)),
      Effect.map((rows) => rows.map(toCommodity)),
      Effect.catchTag("SqlError", (error) => ApiError.storage("listing commodities", error)),
      Effect.withSpan("Commodities.list")
    ),
    get: (id) =>
      select(id, false).pipe(
        Effect.catchTag("SqlError", (error) => ApiError.storage("reading a commodity", error)),
        Effect.withSpan("Commodities.get")
      ),
    update: (id, input) =>
      transaction(
        "update",
        Effect.gen(function* () {
          const { id: _, ...before } = yield* select(id, true)
          const after: Domain.Commodity = { ...before, ...input }
          yield* sql`UPDATE commodities SET name = ${after.name}, category = ${after.category},
            hsn_code = ${after.hsnCode}, unit = ${after.unit} WHERE id = ${id}`
          yield* events.emitChanges(Events.CommodityUpdated, { aggregateId: id, before, after })
          return { id, ...after }
        })
      )
  })
})

/** The service, over the `SqlClient` and `EventEmitter` in context. */
export const layer: Layer.Layer<Commodities, never, SqlClient.SqlClient | EventEmitter.EventEmitter> = Layer.effect(
  Commodities,
  make
)

const toCommodity = (row: typeof CommodityRow.Type): CommodityRecord => ({
  id: row.id,
  name: row.name,
  category: row.category,
  hsnCode: row.hsn_code,
  unit: row.unit
})

const CommodityRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  category: Schema.String,
  hsn_code: Schema.String,
  unit: Domain.Unit
})
