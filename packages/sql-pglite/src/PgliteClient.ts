/**
 * `SqlClient` for PGlite, the PostgreSQL server compiled to WebAssembly that
 * runs inside the process (`@electric-sql/pglite`).
 *
 * PGlite is one session, so the client shares it the way SQLite clients share
 * their single connection: every statement, and every transaction from `BEGIN`
 * to `COMMIT`/`ROLLBACK`, holds one semaphore permit, so a statement from
 * another fiber can never land inside someone else's transaction.
 *
 * Parameters are typed like `@effect/sql-pg` types them, and results are
 * parsed into the same JavaScript values `@effect/sql-pg` 4.0.5 returns:
 * `int8` and `xid8` as `bigint`, `numeric` as `string`, `date` as
 * `"YYYY-MM-DD"`, `timestamp`/`timestamptz` as `Date` truncated to the
 * millisecond, `time` as `bigint` microseconds, `interval` as
 * `{ months, days, microseconds }`, `float4` rounded to single precision.
 *
 * @since 0.1.0
 */
import { PGlite } from "@electric-sql/pglite"
import type { ParserOptions, PGliteOptions, Results, RowMode } from "@electric-sql/pglite"
import { FeedSignal } from "@annal/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Queue from "effect/Queue"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  DeadlockError,
  LockTimeoutError,
  SerializationError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import * as DataDirLock from "./DataDirLock.ts"

/**
 * @since 0.1.0
 * @category type IDs
 */
export const TypeId: TypeId = "~@annal/sql-pglite/PgliteClient"

/**
 * @since 0.1.0
 * @category type IDs
 */
export type TypeId = "~@annal/sql-pglite/PgliteClient"

/**
 * A PostgreSQL `SqlClient` backed by an in-process PGlite database.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgliteClient extends SqlClient.SqlClient {
  readonly [TypeId]: TypeId
  readonly config: PgliteClientConfig
  /**
   * The PGlite instance. Statements sent to it directly bypass the client's
   * semaphore, so they can run inside another fiber's transaction.
   */
  readonly pglite: PGlite
  /** A parameter bound as `jsonb`, like `PgClient.json`. */
  readonly json: (value: unknown) => Statement.Fragment
  /**
   * Runs `LISTEN` on `channel` and returns a queue of the payloads notified on
   * it. `UNLISTEN` runs when the scope closes and no other listener of the
   * channel remains, and the queue is shut down.
   *
   * Inside `withTransaction` the `LISTEN` runs in the transaction, so it only
   * takes effect when the transaction commits.
   */
  readonly listen: (channel: string) => Effect.Effect<Queue.Dequeue<string, SqlError>, SqlError, Scope.Scope>
  /**
   * Sends `payload` on `channel` with `pg_notify`. Inside `withTransaction` it
   * runs in the transaction, so it is delivered on `COMMIT` and dropped on
   * `ROLLBACK`.
   */
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError>
}

/**
 * The service key of the PGlite client.
 *
 * @since 0.1.0
 * @category services
 */
export const PgliteClient = Context.Service<PgliteClient>("@annal/sql-pglite/PgliteClient")

/**
 * @since 0.1.0
 * @category models
 */
export interface PgliteClientConfig {
  /**
   * `undefined`, `""` or `"memory://"` keeps the database in memory only. Any
   * other value is a folder, created if missing, that holds the database and
   * persists it across clients. A `file://` prefix is accepted; PGlite's other
   * schemes, such as `idb://`, are passed through.
   *
   * A folder is opened by one client at a time: the client holds its lock
   * (`DataDirLock`) while it lives, and another opener, in this process or
   * another, fails with `DataDirInUse`.
   */
  readonly dataDir?: string | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  /** Whether the name transforms also rename keys inside JSON values. Defaults to `true`. */
  readonly transformJson?: boolean | undefined
}

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

/**
 * Opens a PGlite database and builds a client over it, holding the data
 * folder's lock. The database is closed, then the lock released, when the
 * scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (
  config: PgliteClientConfig
): Effect.fn.Return<
  PgliteClient,
  SqlError | DataDirLock.DataDirInUse | DataDirLock.DataDirLockError,
  Scope.Scope | Reactivity.Reactivity
> {
  const pglite = yield* open(config.dataDir)

  const connection = makeConnection(pglite)
  const semaphore = yield* Semaphore.make(1)
  // The acquirers SQLite clients use for their single connection: every
  // statement borrows the one permit, and a transaction or stream leases it
  // until its scope closes.
  const acquirers = SqlClient.makeSqliteAcquirers({
    connection: Effect.succeed(connection),
    semaphore,
    isTransaction: () => !pglite.closed && pglite.isInTransaction()
  })

  const transformJson = config.transformJson ?? true
  const compiler = makeCompiler(config.transformQueryNames, transformJson)
  const transformRows =
    config.transformResultNames === undefined
      ? undefined
      : Statement.defaultTransforms(config.transformResultNames, transformJson).array

  const client = yield* SqlClient.make({
    acquirer: acquirers.acquirer,
    borrower: acquirers.borrower,
    transactionAcquirer: acquirers.transactionAcquirer,
    onCommitFailure: acquirers.onCommitFailure,
    isTransaction: acquirers.isTransaction,
    compiler,
    driver: "pglite",
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
    spanAttributes: [
      ...(config.spanAttributes === undefined ? [] : Object.entries(config.spanAttributes)),
      ["db.system.name", "postgresql"],
      ["db.namespace", "postgres"]
    ],
    transformRows
  })

  // Runs on the transaction's connection inside `withTransaction`, and borrows
  // the connection otherwise.
  const withConnection = <A>(f: (conn: Connection) => Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
    Effect.flatMap(
      Effect.serviceOption(client.transactionService),
      Option.match({
        onNone: () => acquirers.borrower(f),
        onSome: ([conn]) => f(conn)
      })
    )

  const listeners = new Map<string, Set<Queue.Queue<string, SqlError>>>()
  const stopNotifications = pglite.onNotification((channel, payload) => {
    const queues = listeners.get(channel)
    if (queues === undefined) return
    for (const queue of queues) Queue.offerUnsafe(queue, payload)
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      stopNotifications()
      for (const queues of listeners.values()) {
        for (const queue of queues) Queue.shutdownUnsafe(queue)
      }
      listeners.clear()
    })
  )

  // Runs in the context of the fiber closing the listener's scope, so inside a
  // transaction it uses that transaction and never waits for its own permit.
  const removeListener = (channel: string, queue: Queue.Queue<string, SqlError>): Effect.Effect<void> =>
    Effect.suspend(() => {
      Queue.shutdownUnsafe(queue)
      const queues = listeners.get(channel)
      if (queues === undefined || !queues.delete(queue) || queues.size > 0) return Effect.void
      listeners.delete(channel)
      // Checked again once the connection is held, as a listener may have
      // joined the channel while this one waited for it.
      return Effect.ignore(
        withConnection((conn) =>
          listeners.has(channel)
            ? Effect.void
            : Effect.asVoid(conn.executeUnprepared(`UNLISTEN ${escapeChannel(channel)}`, [], undefined))
        )
      )
    })

  const listen = (channel: string): Effect.Effect<Queue.Dequeue<string, SqlError>, SqlError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const channelError = validateChannelName(channel, "listen")
        if (channelError !== undefined) return yield* channelError
        const scope = yield* Scope.fork(yield* Effect.scope)
        const queue = yield* Queue.unbounded<string, SqlError>()
        let queues = listeners.get(channel)
        if (queues === undefined) {
          queues = new Set()
          listeners.set(channel, queues)
        }
        queues.add(queue)
        yield* Scope.addFinalizer(scope, removeListener(channel, queue))
        // `LISTEN` on a channel the session already listens on does nothing,
        // and running it anyway means the channel is registered on return.
        yield* restore(
          withConnection((conn) => conn.executeUnprepared(`LISTEN ${escapeChannel(channel)}`, [], undefined))
        ).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))))
        return queue
      })
    )

  const notify = (channel: string, payload: string): Effect.Effect<void, SqlError> => {
    const channelError = validateChannelName(channel, "notify")
    return channelError !== undefined
      ? Effect.fail(channelError)
      : withConnection((conn) => Effect.asVoid(conn.execute("SELECT pg_notify($1, $2)", [channel, payload], undefined)))
  }

  return Object.assign(client, {
    [TypeId]: TypeId,
    config,
    pglite,
    json: (value: unknown) => Statement.fragment([PgliteJson(value, undefined, undefined)]),
    listen,
    notify
  })
})

/**
 * Provides `PgliteClient`, `SqlClient` and the feed's `FeedSignal` (the
 * client's own `listen`) from a client acquisition, with `Reactivity`.
 */
const layerFrom = <E>(
  acquire: Effect.Effect<PgliteClient, E, Scope.Scope | Reactivity.Reactivity>
): Layer.Layer<PgliteClient | SqlClient.SqlClient | FeedSignal.FeedSignal, E> =>
  Layer.effectContext(
    Effect.map(acquire, (client) =>
      Context.make(PgliteClient, client).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(FeedSignal.FeedSignal, FeedSignal.make(client.listen))
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * A layer providing `PgliteClient`, `SqlClient` and the feed's `FeedSignal`
 * over a PGlite database that lives as long as the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: PgliteClientConfig = {}
): Layer.Layer<
  PgliteClient | SqlClient.SqlClient | FeedSignal.FeedSignal,
  SqlError | DataDirLock.DataDirInUse | DataDirLock.DataDirLockError
> => layerFrom(make(config))

/**
 * As {@link layer}, reading the configuration with `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<PgliteClientConfig>
): Layer.Layer<
  PgliteClient | SqlClient.SqlClient | FeedSignal.FeedSignal,
  Config.ConfigError | SqlError | DataDirLock.DataDirInUse | DataDirLock.DataDirLockError
> => layerFrom(Effect.flatMap(Config.unwrap(config), make))

// -----------------------------------------------------------------------------
// Opening
// -----------------------------------------------------------------------------

const open = (
  dataDir: string | undefined
): Effect.Effect<PGlite, SqlError | DataDirLock.DataDirInUse | DataDirLock.DataDirLockError, Scope.Scope> => {
  const location = resolveDataDir(dataDir)
  const options: PGliteOptions = location._tag === "Memory" ? { parsers } : { dataDir: location.dataDir, parsers }
  const prepare =
    location._tag === "Folder"
      ? Effect.asVoid(
          driverCall("connect", "PgliteClient: Failed to create the data directory", () =>
            import("node:fs/promises").then((fs) => fs.mkdir(location.path, { recursive: true }))
          )
        )
      : Effect.void
  return prepare.pipe(
    // Held from before the database opens until after it closes (finalizers run in reverse), so no other opener
    // ever has the folder while this one's PostgreSQL still writes to it.
    Effect.andThen(location._tag === "Folder" ? DataDirLock.acquire(location.path) : Effect.void),
    Effect.andThen(
      Effect.acquireRelease(
        Effect.try({
          try: () => new PGlite(options),
          catch: (cause) => toSqlError(cause, "PgliteClient: Failed to open the database", "connect")
        }),
        (pglite) =>
          pglite.closed
            ? Effect.void
            : Effect.ignore(driverCall("close", "PgliteClient: Failed to close the database", () => pglite.close()))
      )
    ),
    Effect.tap((pglite) => driverCall("connect", "PgliteClient: Failed to open the database", () => pglite.waitReady))
  )
}

type DataDir =
  | { readonly _tag: "Memory" }
  | { readonly _tag: "Folder"; readonly dataDir: string; readonly path: string }
  | { readonly _tag: "Other"; readonly dataDir: string }

const resolveDataDir = (dataDir: string | undefined): DataDir => {
  if (dataDir === undefined || dataDir === "" || dataDir === "memory://") return { _tag: "Memory" }
  if (dataDir.startsWith("file://")) {
    return { _tag: "Folder", dataDir, path: dataDir.slice("file://".length) }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dataDir)) return { _tag: "Other", dataDir }
  return { _tag: "Folder", dataDir, path: dataDir }
}

// -----------------------------------------------------------------------------
// Connection
// -----------------------------------------------------------------------------

type Row = Record<string, unknown>

const emptyResult: Results<Row> = { rows: [], fields: [], affectedRows: 0 }

/**
 * Runs one statement and returns PGlite's result.
 *
 * A statement with parameters goes through `query`, the extended protocol,
 * which takes exactly one statement. One without parameters goes through
 * `exec`, the simple protocol, which also takes several statements separated
 * by semicolons, as migrations write them; the result is the last one's.
 */
const runStatement = (
  pglite: PGlite,
  sql: string,
  params: ReadonlyArray<unknown>,
  rowMode: RowMode
): Effect.Effect<Results<Row>, SqlError> =>
  params.length === 0
    ? Effect.map(
        driverCall("query", "PgliteClient: Query failed", () => pglite.exec(sql, { rowMode })),
        (results) => results.at(-1) ?? emptyResult
      )
    : Effect.flatMap(encodeParameters(params), (encoded) =>
        driverCall("query", "PgliteClient: Query failed", () =>
          pglite.query<Row>(sql, encoded.values, { rowMode, paramTypes: encoded.types })
        )
      )

const toValues = (rows: ReadonlyArray<Row>): ReadonlyArray<ReadonlyArray<unknown>> =>
  rows.map((row) => (Array.isArray(row) ? row : Object.values(row)))

/** How many rows `executeStream` emits at a time. */
const streamChunkSize = 128

const makeConnection = (pglite: PGlite): Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.map(runStatement(pglite, sql, params, "object"), (result) => result.rows)
  const execute = (
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
    transformRows === undefined ? rows(sql, params) : Effect.map(rows(sql, params), transformRows)
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.map(runStatement(pglite, sql, params, "array"), (result) => toValues(result.rows))
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: (sql, params) => runStatement(pglite, sql, params, "object"),
    executeValues: values,
    executeValuesUnprepared: values,
    // PGlite hands over a result only once it is complete, so this reads every
    // row into memory before emitting the first chunk: it is not a cursor.
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(
        Effect.map(execute(sql, params, transformRows), (rows) =>
          Stream.fromIterable(rows, { chunkSize: streamChunkSize })
        )
      )
  }
}

/** PostgreSQL answers `COMMIT` of an aborted transaction with `ROLLBACK`. */
const commit = (conn: Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(conn.executeRaw("COMMIT", []), (result) =>
    Predicate.hasProperty(result, "command") && result.command === "ROLLBACK"
      ? Effect.fail(
          new SqlError({
            reason: new UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "PgliteClient: COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )

// -----------------------------------------------------------------------------
// Compiler
// -----------------------------------------------------------------------------

const escape = Statement.defaultEscape('"')

/**
 * The `pg` compiler of `@effect/sql-pg`, so statements compile to the same
 * text: `$n` placeholders, identifiers in double quotes with dots splitting
 * `schema.table`.
 */
const makeCompiler = (transform: ((_: string) => string) | undefined, transformJson: boolean): Statement.Compiler => {
  const transformValue =
    transformJson && transform !== undefined ? Statement.defaultTransforms(transform).value : undefined
  return Statement.makeCompiler<PgliteCustom>({
    dialect: "pg",
    placeholder: (index) => `$${index}`,
    onIdentifier:
      transform === undefined
        ? escape
        : (value, withoutTransform) => (withoutTransform ? escape(value) : escape(transform(value))),
    onRecordUpdate: (placeholders, valueAlias, valueColumns, values, returning) => [
      `(values ${placeholders}) AS ${valueAlias}${valueColumns}${returning ? ` RETURNING ${returning[0]}` : ""}`,
      returning ? values.flat().concat(returning[1]) : values.flat()
    ],
    onCustom: (type, placeholder, withoutTransform) => {
      switch (type.kind) {
        case "PgliteJson": {
          const value = withoutTransform || transformValue === undefined ? type.paramA : transformValue(type.paramA)
          return [placeholder(undefined), [jsonParameter(value)]]
        }
      }
    }
  })
}

type PgliteCustom = PgliteJson

interface PgliteJson extends Statement.Custom<"PgliteJson", unknown, undefined, undefined> {}

const PgliteJson = Statement.custom<PgliteJson>("PgliteJson")

const JsonParameterTypeId = "~@annal/sql-pglite/PgliteClient/JsonParameter"

/** A value to bind as `jsonb`; it is serialised when the statement runs. */
interface JsonParameter {
  readonly [JsonParameterTypeId]: typeof JsonParameterTypeId
  readonly value: unknown
}

const jsonParameter = (value: unknown): JsonParameter => ({ [JsonParameterTypeId]: JsonParameterTypeId, value })

const isJsonParameter = (u: unknown): u is JsonParameter => Predicate.hasProperty(u, JsonParameterTypeId)

// -----------------------------------------------------------------------------
// Parameters
// -----------------------------------------------------------------------------

const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int4: 23,
  text: 25,
  float4: 700,
  float8: 701,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  jsonb: 3802,
  xid8: 5069
} as const

const arrayOids: ReadonlyMap<number, number> = new Map([
  [OID.bool, 1000],
  [OID.bytea, 1001],
  [OID.int8, 1016],
  [OID.int4, 1007],
  [OID.text, 1009],
  [OID.float8, 1022],
  [OID.timestamptz, 1185],
  [OID.jsonb, 3807]
])

interface Encoded {
  readonly oid: number
  readonly value: unknown
}

const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

/**
 * Gives a parameter the type `@effect/sql-pg` binds it with, so the server
 * resolves overloads and casts the same way on both: `boolean` as `bool`,
 * `bigint` as `int8`, an integer as `int4` (or `int8` beyond 32 bits), any other
 * number as `float8`, a `Date` as `timestamptz`, bytes as `bytea`, and a string
 * untyped, left for the server to infer from the statement. Other objects are
 * refused, as `@effect/sql-pg` refuses them.
 */
const encodeScalar = (value: unknown): Encoded => {
  if (value === null || value === undefined) return { oid: 0, value: null }
  if (isJsonParameter(value)) {
    const text = JSON.stringify(value.value)
    if (text === undefined) throw new Error("Value cannot be serialised as JSON")
    return { oid: OID.jsonb, value: text }
  }
  switch (typeof value) {
    case "boolean":
      return { oid: OID.bool, value }
    case "bigint":
      return { oid: OID.int8, value }
    case "number":
      if (Number.isInteger(value)) {
        if (value >= INT32_MIN && value <= INT32_MAX) return { oid: OID.int4, value }
        if (Number.isSafeInteger(value)) return { oid: OID.int8, value }
      }
      return { oid: OID.float8, value }
    case "string":
      return { oid: 0, value }
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new Error("timestamp cannot be an invalid Date")
    return { oid: OID.timestamptz, value }
  }
  if (value instanceof Uint8Array) return { oid: OID.bytea, value }
  if (value instanceof Int8Array) {
    return { oid: OID.bytea, value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength) }
  }
  throw new Error(`Cannot infer a PostgreSQL type for ${String(value)}`)
}

const encodeParameter = (value: unknown): Encoded => {
  if (!Array.isArray(value)) return encodeScalar(value)
  // Left for the server to infer, as for a string.
  if (value.length === 0) return { oid: 0, value: "{}" }
  let elementOid: number | undefined
  const elements: Array<unknown> = []
  for (const element of value) {
    if (Array.isArray(element)) throw new Error("Nested array parameters are not supported")
    const encoded = encodeScalar(element)
    if (encoded.value === null) {
      elements.push(null)
      continue
    }
    const oid = encoded.oid === 0 ? OID.text : encoded.oid
    if (elementOid === undefined) elementOid = oid
    else if (elementOid !== oid) throw new Error("Array parameter elements must have the same inferred type")
    elements.push(encoded.value)
  }
  if (elementOid === undefined) throw new Error("Cannot infer the type of an array containing only null values")
  const arrayOid = arrayOids.get(elementOid)
  if (arrayOid === undefined) throw new Error(`No array type known for element OID ${elementOid}`)
  return { oid: arrayOid, value: elements }
}

const encodeParameters = (
  params: ReadonlyArray<unknown>
): Effect.Effect<{ readonly values: Array<unknown>; readonly types: Array<number> }, SqlError> =>
  Effect.try({
    try: () => {
      const values: Array<unknown> = []
      const types: Array<number> = []
      for (const param of params) {
        const encoded = encodeParameter(param)
        values.push(encoded.value)
        types.push(encoded.oid)
      }
      return { values, types }
    },
    catch: (cause) =>
      new SqlError({
        reason: new UnknownError({ cause, message: "PgliteClient: Failed to encode query", operation: "query" })
      })
  })

// -----------------------------------------------------------------------------
// Result parsers
// -----------------------------------------------------------------------------
//
// PGlite receives every value as text. These parsers turn the text of the
// types below into what `@effect/sql-pg` decodes from the binary format, and
// PGlite applies them to the elements of arrays of these types as well. The
// other types keep PGlite's parsers, which already agree: `int2`, `int4`,
// `oid` and `float8` as `number`, `bool` as `boolean`, `json`/`jsonb` parsed,
// `bytea` as `Uint8Array`, and the rest, `numeric` and `uuid` among them, as
// the text PostgreSQL sends. A text in an unexpected shape, as a changed
// `DateStyle` or `IntervalStyle` would produce, is returned as is.

const PG_EPOCH_MS = 946_684_800_000

const twoDigits = (n: number): string => String(n).padStart(2, "0")

const microsOf = (fraction: string | undefined): number =>
  fraction === undefined ? 0 : Number(fraction.padEnd(6, "0"))

/** Days from 1970-01-01 to a proleptic Gregorian date, in astronomical years. */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

const dateRegex = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/

/** `YYYY-MM-DD`, with BC years as negative astronomical years: `0044-03-15 BC` is `-0043-03-15`. */
const parseDate = (text: string): string => {
  const match = dateRegex.exec(text)
  if (match === null || match[4] === undefined) return text
  const year = 1 - Number(match[1])
  const yearText = year < 0 ? `-${String(-year).padStart(4, "0")}` : String(year).padStart(4, "0")
  return `${yearText}-${match[2]}-${match[3]}`
}

const timestampRegex =
  /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?)?( BC)?$/

/**
 * A `Date`, truncated to the millisecond toward 2000-01-01 as
 * `@effect/sql-pg` truncates. `infinity`, `-infinity` and instants outside
 * the range of `Date` are an invalid `Date`.
 */
const parseTimestamp = (text: string): Date | string => {
  if (text === "infinity" || text === "-infinity") return new Date(Number.NaN)
  const match = timestampRegex.exec(text)
  if (match === null) return text
  const year = match[12] === undefined ? Number(match[1]) : 1 - Number(match[1])
  const offset =
    match[8] === undefined
      ? 0
      : (match[8] === "-" ? -1 : 1) * (Number(match[9]) * 3600 + Number(match[10] ?? 0) * 60 + Number(match[11] ?? 0))
  const seconds =
    daysFromCivil(year, Number(match[2]), Number(match[3])) * 86_400 +
    Number(match[4]) * 3600 +
    Number(match[5]) * 60 +
    Number(match[6]) -
    offset
  const wholeMillis = seconds * 1000
  const micros = microsOf(match[7])
  return new Date(wholeMillis + (wholeMillis >= PG_EPOCH_MS ? Math.floor(micros / 1000) : Math.ceil(micros / 1000)))
}

const timeRegex = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/

/** Microseconds since midnight. */
const parseTime = (text: string): bigint | string => {
  const match = timeRegex.exec(text)
  if (match === null) return text
  return BigInt((Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3])) * 1_000_000 + microsOf(match[4]))
}

const timetzRegex = /^(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?$/

/** The time followed by a `±HH:MM` offset, whose seconds are dropped. */
const parseTimetz = (text: string): string => {
  const match = timetzRegex.exec(text)
  if (match === null) return text
  const total = Number(match[3]) * 3600 + Number(match[4] ?? 0) * 60 + Number(match[5] ?? 0)
  const sign = match[2] === "-" && total > 0 ? "-" : "+"
  return `${match[1]}${sign}${twoDigits(Math.floor(total / 3600))}:${twoDigits(Math.floor(total / 60) % 60)}`
}

/** The calendar and time parts, as PostgreSQL stores them, without normalising units. */
export interface Interval {
  readonly months: number
  readonly days: number
  readonly microseconds: bigint
}

const intervalRegex =
  /^(?:([+-]?\d+) years? ?)?(?:([+-]?\d+) mons? ?)?(?:([+-]?\d+) days? ?)?(?:([+-])?(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?$/

/** Reads the default `postgres` `IntervalStyle`. */
const parseInterval = (text: string): Interval | string => {
  const match = intervalRegex.exec(text)
  if (match === null) return text
  const micros =
    BigInt(match[5] ?? 0) * 3_600_000_000n +
    BigInt((Number(match[6] ?? 0) * 60 + Number(match[7] ?? 0)) * 1_000_000 + microsOf(match[8]))
  return {
    months: Number(match[1] ?? 0) * 12 + Number(match[2] ?? 0),
    days: Number(match[3] ?? 0),
    microseconds: match[4] === "-" ? -micros : micros
  }
}

const parsers: ParserOptions = {
  [OID.int8]: (text) => BigInt(text),
  [OID.xid8]: (text) => BigInt(text),
  [OID.float4]: (text) => Math.fround(Number(text)),
  [OID.date]: parseDate,
  [OID.time]: parseTime,
  [OID.timetz]: parseTimetz,
  [OID.timestamp]: parseTimestamp,
  [OID.timestamptz]: parseTimestamp,
  [OID.interval]: parseInterval
}

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

/**
 * Calls PGlite. The call is uninterruptible: PGlite cannot cancel a
 * statement, so an interrupted fiber waits for it rather than leaving it to
 * run after the fiber has released the connection.
 */
const driverCall = <A>(operation: string, message: string, evaluate: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.uninterruptible(Effect.tryPromise({ try: evaluate, catch: (cause) => toSqlError(cause, message, operation) }))

const sqlStateRegex = /^[0-9A-Z]{5}$/

const normalizeConstraint = (constraint: unknown): string => {
  if (typeof constraint !== "string") return "unknown"
  const normalized = constraint.trim()
  return normalized.length === 0 ? "unknown" : normalized
}

/**
 * Classifies a failure by its SQLSTATE as `@effect/sql-pg` does, keeping
 * PGlite's error, with its `code`, `detail` and `constraint`, as the cause.
 * A failure without a SQLSTATE is a `ConnectionError` while opening the
 * database, and an `UnknownError` otherwise.
 */
const classify = (cause: unknown, message: string, operation: string): SqlErrorReason => {
  const code =
    Predicate.hasProperty(cause, "code") && typeof cause.code === "string" && sqlStateRegex.test(cause.code)
      ? cause.code
      : undefined
  const detail = Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : ""
  const props = { cause, message: detail === "" ? message : `${message}: ${detail}`, operation }
  if (code === undefined) {
    return operation === "connect" ? new ConnectionError(props) : new UnknownError(props)
  }
  if (code.startsWith("08")) return new ConnectionError(props)
  if (code.startsWith("28")) return new AuthenticationError(props)
  if (code === "42501") return new AuthorizationError(props)
  if (code.startsWith("42")) return new SqlSyntaxError(props)
  if (code === "23505") {
    const constraint = Predicate.hasProperty(cause, "constraint") ? cause.constraint : undefined
    return new UniqueViolation({ ...props, constraint: normalizeConstraint(constraint) })
  }
  if (code.startsWith("23")) return new ConstraintError(props)
  if (code === "40P01") return new DeadlockError(props)
  if (code === "40001") return new SerializationError(props)
  if (code === "55P03") return new LockTimeoutError(props)
  if (code === "57014") return new StatementTimeoutError(props)
  return new UnknownError(props)
}

const toSqlError = (cause: unknown, message: string, operation: string): SqlError =>
  new SqlError({ reason: classify(cause, message, operation) })

/** A channel name quoted whole, dots included, as `@effect/sql-pg` quotes it. */
const escapeChannel = (channel: string): string => `"${channel.replaceAll('"', '""')}"`

const channelNameEncoder = new TextEncoder()

const validateChannelName = (channel: string, operation: string): SqlError | undefined => {
  if (channelNameEncoder.encode(channel).byteLength <= 63) return undefined
  const message = "PostgreSQL channel names must not exceed 63 UTF-8 bytes"
  return new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation }) })
}
