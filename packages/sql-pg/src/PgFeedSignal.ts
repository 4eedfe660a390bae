/**
 * The feed's wake-up on PostgreSQL: a `LISTEN` on the commit channel through `@effect/sql-pg`'s `PgClient`, which
 * holds one connection of the pool for as long as the feed lives.
 *
 * @since 0.1.0
 */
import { FeedSignal } from "@annal/core"
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

/**
 * `FeedSignal` from the `PgClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<FeedSignal.FeedSignal, never, PgClient.PgClient> = Layer.effect(
  FeedSignal.FeedSignal,
  Effect.map(PgClient.PgClient, (client) => FeedSignal.make((channel) => client.listen(channel)))
)

/**
 * A `PgClient` (and `SqlClient`) with the feed's `FeedSignal` over it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  config: PgClient.PgPoolConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | FeedSignal.FeedSignal, SqlError> =>
  Layer.provideMerge(layer, PgClient.layer(config))
