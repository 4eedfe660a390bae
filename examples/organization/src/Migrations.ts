/**
 * The module's tables, as the migrations of its releases, run by Effect's `Migrator` after the events table's own.
 *
 * 1. The first release's tables: organizations and what belongs to them, and the commodity catalog, which had no
 *    unit yet.
 * 2. The first release imported a catalog in the design's payload, writing each commodity and its `commodity.created`
 *    event as that release defined it (version 1). Those rows stay in the log as they were written; the current
 *    release reads them as version 2.
 * 3. The second release added the unit; the commodities it already had were traded in kilograms.
 * 4. The third release added memberships (`Memberships.ts`): an organization is changed and its history read by its
 *    members only. Each organization's creator, as its `organization.created` event records, is its first member, so
 *    nobody loses the organizations they opened; the clerks who only changed one are not made members, since under
 *    the old rule changing it was all it took.
 *
 * Like the events table's migrations, they run under an advisory lock, so two processes starting at once apply
 * each migration once.
 *
 * @since 0.1.0
 */
import { AnnalError, EventStore } from "@annal/core"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import { CommodityCreatedV1 } from "./Events.ts"

/** The user the first release's catalog import is attributed to. */
export const catalogImportUserId = "00000000-0000-4000-8000-000000000001"

/** The commodities the first release imported, with the ids they were given then. */
export const importedCommodities = [
  {
    id: "c0000000-0000-4000-8000-000000000001",
    name: "Wheat",
    category: "Grains",
    hsn_code: "1001",
    at: "2024-04-01T09:00:00Z"
  },
  {
    id: "c0000000-0000-4000-8000-000000000002",
    name: "Basmati rice",
    category: "Grains",
    hsn_code: "10063020",
    at: "2024-04-01T09:00:01Z"
  },
  {
    id: "c0000000-0000-4000-8000-000000000003",
    name: "Turmeric",
    category: "Spices",
    hsn_code: "091030",
    at: "2024-04-01T09:00:02Z"
  }
] as const

const createTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    type text NOT NULL,
    email text NOT NULL,
    phone text,
    pan text NOT NULL,
    deleted_at timestamptz
  )`
  // A PAN identifies one business: two live organizations may not share it.
  yield* sql`CREATE UNIQUE INDEX organizations_pan_key ON organizations (pan) WHERE deleted_at IS NULL`
  yield* sql`CREATE TABLE gst_registrations (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    gstin text NOT NULL UNIQUE,
    state_code text NOT NULL,
    registration_type text NOT NULL,
    effective_from date NOT NULL
  )`
  yield* sql`CREATE TABLE bank_accounts (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    account_name text NOT NULL,
    account_number text NOT NULL,
    ifsc text NOT NULL,
    bank_name text NOT NULL,
    is_primary boolean NOT NULL,
    UNIQUE (organization_id, ifsc, account_number)
  )`
  yield* sql`CREATE TABLE financial_years (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    label text NOT NULL,
    start_date date NOT NULL,
    end_date date NOT NULL,
    UNIQUE (organization_id, start_date)
  )`
  yield* sql`CREATE TABLE document_series (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    financial_year_id uuid NOT NULL REFERENCES financial_years (id),
    document_type text NOT NULL,
    prefix text NOT NULL,
    start_number integer NOT NULL,
    UNIQUE (financial_year_id, document_type)
  )`
  yield* sql`CREATE TABLE commodities (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    category text NOT NULL,
    hsn_code text NOT NULL
  )`
})

const importCatalog = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  for (const commodity of importedCommodities) {
    yield* sql`INSERT INTO commodities (id, name, category, hsn_code)
      VALUES (${commodity.id}, ${commodity.name}, ${commodity.category}, ${commodity.hsn_code})`
    yield* store.append(
      [
        CommodityCreatedV1.make({
          aggregateId: commodity.id,
          userId: catalogImportUserId,
          timestamp: DateTime.makeUnsafe(commodity.at),
          data: { name: commodity.name, category: commodity.category, hsn_code: commodity.hsn_code },
          metadata: { reason: "Imported from the first commodity catalog", correlationId: "catalog-import-2024" }
        })
      ],
      { expectedVersion: "no_stream" }
    )
  }
}).pipe(Effect.provide(EventStore.layer()))

const addUnit = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE commodities ADD COLUMN unit text NOT NULL DEFAULT 'KG'`
  yield* sql`ALTER TABLE commodities ALTER COLUMN unit DROP DEFAULT`
})

const createMemberships = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id uuid NOT NULL,
    PRIMARY KEY (organization_id, user_id)
  )`
  yield* sql`INSERT INTO memberships (organization_id, user_id)
    SELECT DISTINCT e.aggregate_id, e.user_id FROM events e JOIN organizations o ON o.id = e.aggregate_id
    WHERE e.aggregate_type = 'organization' AND e.event_type = 'organization.created'`
})

/** The module's migrations, by `<id>_<name>`. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "1_create_tables": createTables,
  "2_import_commodity_catalog": importCatalog,
  "3_commodity_unit": addUnit,
  "4_memberships": createMemberships
}

/** Applies the module's pending migrations; the events table must exist (`Migrations.run()` of the core first). */
export const run: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  AnnalError.StorageError,
  SqlClient.SqlClient
> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const migrate = Migrator.make({})({
    loader: Migrator.fromRecord(migrations),
    table: "organization_migrations"
  })
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      // The server's statement timeout bounds requests, not migrations (see the events table's).
      yield* sql`SET LOCAL statement_timeout = 0`
      yield* sql`SELECT pg_advisory_xact_lock(hashtext('annal:migrate:organization'))`
      return yield* migrate
    })
  )
}).pipe(
  Effect.mapError(
    (error) =>
      new AnnalError.StorageError({
        operation: "OrganizationMigrations.run",
        reason: error._tag === "SqlError" ? error.reason : new AnnalError.MigrationFailed({ kind: error.kind }),
        detail: error.message
      })
  ),
  Effect.withSpan("OrganizationMigrations.run")
)

/** Runs the module's migrations when the layer is built. */
export const layer: Layer.Layer<never, AnnalError.StorageError, SqlClient.SqlClient> = Layer.effectDiscard(run)
