/**
 * @annal/sql-pglite: a `SqlClient` over PGlite, embedded PostgreSQL in the process, for Annal and any Effect program.
 *
 * @since 0.1.0
 * @module @annal/sql-pglite
 */
export * as DataDirLock from "./DataDirLock.ts"
export * as PgliteClient from "./PgliteClient.ts"
