/**
 * @annal/sql-pg: Annal on PostgreSQL through `@effect/sql-pg`, with the feed woken by `LISTEN`.
 *
 * @since 0.1.0
 * @module @annal/sql-pg
 */
export * as PgFeedSignal from "./PgFeedSignal.ts"
