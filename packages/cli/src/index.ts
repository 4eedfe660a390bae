/**
 * @annal/cli: the `annal` command line, and the choice of engine from configuration (`DATABASE_URL`, or an embedded
 * PGlite folder) for Node programs.
 *
 * @since 0.1.0
 * @module @annal/cli
 */
export * as Cli from "./Cli.ts"
export * as Database from "./Database.ts"
