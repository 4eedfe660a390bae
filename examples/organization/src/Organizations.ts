/**
 * The organizations service: each write changes the tables and emits its events in one transaction, so the audit
 * trail never records a change that did not happen, nor misses one that did. Updates lock the row, diff it against
 * the new values and emit only the fields that changed; an update that changes nothing emits nothing.
 *
 * Who acts, and the request's metadata, come from the `EventContext` the HTTP layer provides: nothing here passes
 * a user id or an ip address.
 *
 * @since 0.1.0
 */
import { type AnnalError, EventContext, EventEmitter, type EventStore, Payload } from "@annal/core"
import { ApiError } from "@annal/http"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Domain from "./Domain.ts"
import * as Events from "./Events.ts"
import { Memberships } from "./Memberships.ts"

/** An organization, with its id. */
export interface OrganizationRecord extends Domain.Organization {
  readonly id: string
}

/** A GST registration, with its id. */
export interface GstRecord extends Domain.GstRegistration {
  readonly id: string
}

/** A bank account, with its id. */
export interface BankAccountRecord extends Domain.BankAccount {
  readonly id: string
}

/** A financial year, with its id and label. */
export interface FinancialYearRecord extends Domain.FinancialYear {
  readonly id: string
  readonly label: string
}

/** A document series, with its id. */
export interface DocumentSeriesRecord extends Domain.DocumentSeries {
  readonly id: string
}

/** An organization and everything that belongs to it. */
export interface OrganizationDetail extends OrganizationRecord {
  readonly gstRegistrations: ReadonlyArray<GstRecord>
  readonly bankAccounts: ReadonlyArray<BankAccountRecord>
  readonly financialYears: ReadonlyArray<FinancialYearRecord>
  readonly documentSeries: ReadonlyArray<DocumentSeriesRecord>
}

/** The server failed, or the request ran past its time bound. */
type Failure = ApiError.InternalError | ApiError.Timeout
type Missing = ApiError.NotFound | Failure
type Refused = ApiError.NotFound | ApiError.Conflict | ApiError.InvalidRequest | Failure

/** The service. */
export class Organizations extends Context.Service<
  Organizations,
  {
    readonly create: (input: Domain.CreateOrganization) => Effect.Effect<OrganizationRecord, Refused>
    readonly list: Effect.Effect<ReadonlyArray<OrganizationRecord>, Failure>
    readonly get: (id: string) => Effect.Effect<OrganizationDetail, Missing>
    readonly update: (id: string, input: Domain.UpdateOrganization) => Effect.Effect<OrganizationRecord, Refused>
    readonly remove: (id: string) => Effect.Effect<void, Refused>
    readonly addGstRegistration: (id: string, input: Domain.GstRegistration) => Effect.Effect<GstRecord, Refused>
    readonly updateGstRegistration: (
      id: string,
      gstRegistrationId: string,
      input: Domain.UpdateGstRegistration
    ) => Effect.Effect<GstRecord, Refused>
    readonly addBankAccount: (id: string, input: Domain.BankAccount) => Effect.Effect<BankAccountRecord, Refused>
    readonly updateBankAccount: (
      id: string,
      bankAccountId: string,
      input: Domain.UpdateBankAccount
    ) => Effect.Effect<BankAccountRecord, Refused>
    readonly addFinancialYear: (id: string, input: Domain.FinancialYear) => Effect.Effect<FinancialYearRecord, Refused>
    readonly addDocumentSeries: (
      id: string,
      input: Domain.DocumentSeries
    ) => Effect.Effect<DocumentSeriesRecord, Refused>
  }
>()("@annal/example-organization/Organizations") {}

/** Builds the service over the `SqlClient`, `EventEmitter` and `Memberships` in context. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const events = yield* EventEmitter.EventEmitter
  const memberships = yield* Memberships

  /** Runs a write and its events in one transaction, mapping storage failures to the API's errors. */
  const transaction = <A, R>(
    name: string,
    effect: Effect.Effect<
      A,
      ApiError.NotFound | ApiError.InvalidRequest | SqlError | EventStore.AppendError | AnnalError.StorageError,
      R
    >
  ) =>
    sql.withTransaction(effect).pipe(
      Effect.catchTag("SqlError", (error) => conflictOrInternal(name, error)),
      Effect.catchTag(["InvalidEvent", "ConcurrencyConflict", "EventIdConflict", "StorageError"], (error) =>
        ApiError.storage(name, error)
      ),
      Effect.withSpan(`Organizations.${name}`)
    )

  /** The live organization, locked for the rest of the transaction. */
  const lock = Effect.fnUntraced(function* (id: string) {
    const rows = yield* sql`SELECT id, name, type, email, phone, pan FROM organizations
      WHERE id = ${id} AND deleted_at IS NULL FOR UPDATE`.pipe(Effect.flatMap(decode(OrganizationRow)))
    const [row] = rows
    if (row === undefined) return yield* new ApiError.NotFound({ message: `No organization ${id}` })
    return toOrganization(row)
  })

  const create = (input: Domain.CreateOrganization) =>
    transaction(
      "create",
      Effect.gen(function* () {
        const id = crypto.randomUUID()
        const organization: Domain.Organization = { ...input, phone: input.phone ?? null }
        yield* sql`INSERT INTO organizations (id, name, type, email, phone, pan)
          VALUES (${id}, ${organization.name}, ${organization.type}, ${organization.email}, ${organization.phone},
            ${organization.pan})`
        // Its creator is its first member, in the same transaction: an organization nobody may change never exists.
        const { userId } = yield* EventContext.EventContext
        if (userId !== undefined) yield* memberships.add(id, userId)
        yield* events.emit(Events.OrganizationCreated.make({ aggregateId: id, data: organization }))
        return { id, ...organization }
      })
    )

  const list =
    sql`SELECT id, name, type, email, phone, pan FROM organizations WHERE deleted_at IS NULL ORDER BY name, id`.pipe(
      Effect.flatMap(decode(OrganizationRow)),
      Effect.map((rows) => rows.map(toOrganization)),
      Effect.catchTag("SqlError", (error) => ApiError.storage("listing organizations", error)),
      Effect.withSpan("Organizations.list")
    )

  const get = Effect.fn("Organizations.get")(
    function* (id: string) {
      const [row] = yield* sql`SELECT id, name, type, email, phone, pan FROM organizations
        WHERE id = ${id} AND deleted_at IS NULL`.pipe(Effect.flatMap(decode(OrganizationRow)))
      if (row === undefined) return yield* new ApiError.NotFound({ message: `No organization ${id}` })
      const gstRegistrations = yield* sql`SELECT id, gstin, state_code, registration_type,
          effective_from::text AS effective_from
        FROM gst_registrations WHERE organization_id = ${id} ORDER BY gstin`.pipe(Effect.flatMap(decode(GstRow)))
      const bankAccounts = yield* sql`SELECT id, account_name, account_number, ifsc, bank_name, is_primary
        FROM bank_accounts WHERE organization_id = ${id} ORDER BY bank_name, account_number`.pipe(
        Effect.flatMap(decode(BankAccountRow))
      )
      const financialYears = yield* sql`SELECT id, label, start_date::text AS start_date, end_date::text AS end_date
        FROM financial_years WHERE organization_id = ${id} ORDER BY start_date`.pipe(
        Effect.flatMap(decode(FinancialYearRow))
      )
      const documentSeries = yield* sql`SELECT id, financial_year_id, document_type, prefix, start_number
        FROM document_series WHERE organization_id = ${id} ORDER BY document_type, prefix`.pipe(
        Effect.flatMap(decode(DocumentSeriesRow))
      )
      return {
        ...toOrganization(row),
        gstRegistrations: gstRegistrations.map(toGst),
        bankAccounts: bankAccounts.map(toBankAccount),
        financialYears: financialYears.map(toFinancialYear),
        documentSeries: documentSeries.map(toDocumentSeries)
      }
    },
    Effect.catchTag("SqlError", (error) => ApiError.storage("reading an organization", error))
  )

  const update = (id: string, input: Domain.UpdateOrganization) =>
    transaction(
      "update",
      Effect.gen(function* () {
        const { id: _, ...before } = yield* lock(id)
        const after: Domain.Organization = { ...before, ...input }
        yield* sql`UPDATE organizations SET name = ${after.name}, type = ${after.type}, email = ${after.email},
          phone = ${after.phone}, pan = ${after.pan} WHERE id = ${id}`
        yield* events.emitChanges(Events.OrganizationUpdated, { aggregateId: id, before, after })
        return { id, ...after }
      })
    )

  const remove = (id: string) =>
    transaction(
      "remove",
      Effect.gen(function* () {
        const organization = yield* lock(id)
        const deletedAt = yield* DateTime.now
        yield* sql`UPDATE organizations SET deleted_at = ${DateTime.formatIso(deletedAt)}::timestamptz WHERE id = ${id}`
        yield* events.emit(
          Events.OrganizationDeleted.make({ aggregateId: id, data: { name: organization.name, deletedAt } })
        )
      })
    )

  const addGstRegistration = (id: string, input: Domain.GstRegistration) =>
    transaction(
      "addGstRegistration",
      Effect.gen(function* () {
        const organization = yield* lock(id)
        // Characters 3 to 12 of a GSTIN are the PAN of the business it registers.
        if (input.gstin.slice(2, 12) !== organization.pan) {
          return yield* ApiError.InvalidRequest.field(
            "payload.gstin",
            `must contain the organization's PAN ${organization.pan} in characters 3 to 12`
          )
        }
        const gstRegistrationId = crypto.randomUUID()
        yield* sql`INSERT INTO gst_registrations (id, organization_id, gstin, state_code, registration_type,
            effective_from)
          VALUES (${gstRegistrationId}, ${id}, ${input.gstin}, ${input.stateCode}, ${input.registrationType},
            ${input.effectiveFrom}::date)`
        yield* events.emit(Events.GstAdded.make({ aggregateId: id, data: { gstRegistrationId, ...input } }))
        return { id: gstRegistrationId, ...input }
      })
    )

  const updateGstRegistration = (id: string, gstRegistrationId: string, input: Domain.UpdateGstRegistration) =>
    transaction(
      "updateGstRegistration",
      Effect.gen(function* () {
        yield* lock(id)
        const [row] = yield* sql`SELECT id, gstin, state_code, registration_type, effective_from::text AS effective_from
          FROM gst_registrations WHERE id = ${gstRegistrationId} AND organization_id = ${id}`.pipe(
          Effect.flatMap(decode(GstRow))
        )
        if (row === undefined) {
          return yield* new ApiError.NotFound({ message: `No GST registration ${gstRegistrationId} in ${id}` })
        }
        const { id: _, ...before } = toGst(row)
        const after: Domain.GstRegistration = { ...before, ...input }
        yield* sql`UPDATE gst_registrations SET registration_type = ${after.registrationType},
          effective_from = ${after.effectiveFrom}::date WHERE id = ${gstRegistrationId}`
        yield* emitSubChanges(before, after, (changes) =>
          Events.GstUpdated.make({ aggregateId: id, data: { gstRegistrationId, ...changes } })
        )
        return { id: gstRegistrationId, ...after }
      })
    )

  const addBankAccount = (id: string, input: Domain.BankAccount) =>
    transaction(
      "addBankAccount",
      Effect.gen(function* () {
        yield* lock(id)
        const bankAccountId = crypto.randomUUID()
        // One primary account: a new primary one demotes the others, each recorded as the change it is.
        if (input.isPrimary) yield* demotePrimary(id, bankAccountId)
        yield* sql`INSERT INTO bank_accounts (id, organization_id, account_name, account_number, ifsc, bank_name,
            is_primary)
          VALUES (${bankAccountId}, ${id}, ${input.accountName}, ${input.accountNumber}, ${input.ifsc},
            ${input.bankName}, ${input.isPrimary})`
        yield* events.emit(Events.BankAccountAdded.make({ aggregateId: id, data: { bankAccountId, ...input } }))
        return { id: bankAccountId, ...input }
      })
    )

  const updateBankAccount = (id: string, bankAccountId: string, input: Domain.UpdateBankAccount) =>
    transaction(
      "updateBankAccount",
      Effect.gen(function* () {
        yield* lock(id)
        const [row] = yield* sql`SELECT id, account_name, account_number, ifsc, bank_name, is_primary
          FROM bank_accounts WHERE id = ${bankAccountId} AND organization_id = ${id}`.pipe(
          Effect.flatMap(decode(BankAccountRow))
        )
        if (row === undefined) {
          return yield* new ApiError.NotFound({ message: `No bank account ${bankAccountId} in ${id}` })
        }
        const { id: _, ...before } = toBankAccount(row)
        const after: Domain.BankAccount = { ...before, ...input }
        if (after.isPrimary && !before.isPrimary) yield* demotePrimary(id, bankAccountId)
        yield* sql`UPDATE bank_accounts SET account_name = ${after.accountName},
          account_number = ${after.accountNumber}, ifsc = ${after.ifsc}, bank_name = ${after.bankName},
          is_primary = ${after.isPrimary} WHERE id = ${bankAccountId}`
        yield* emitSubChanges(before, after, (changes) =>
          Events.BankAccountUpdated.make({ aggregateId: id, data: { bankAccountId, ...changes } })
        )
        return { id: bankAccountId, ...after }
      })
    )

  /** Makes every other primary account of the organization secondary, with an update event for each. */
  const demotePrimary = Effect.fnUntraced(function* (id: string, except: string) {
    const demoted = yield* sql`UPDATE bank_accounts SET is_primary = false
      WHERE organization_id = ${id} AND is_primary AND id <> ${except} RETURNING id`.pipe(Effect.flatMap(decode(IdRow)))
    for (const { id: bankAccountId } of demoted) {
      yield* events.emit(
        Events.BankAccountUpdated.make({
          aggregateId: id,
          data: { bankAccountId, changes: { isPrimary: { old: true, new: false } } }
        })
      )
    }
  })

  const addFinancialYear = (id: string, input: Domain.FinancialYear) =>
    transaction(
      "addFinancialYear",
      Effect.gen(function* () {
        yield* lock(id)
        const financialYearId = crypto.randomUUID()
        const label = Domain.financialYearLabel(input)
        yield* sql`INSERT INTO financial_years (id, organization_id, label, start_date, end_date)
          VALUES (${financialYearId}, ${id}, ${label}, ${input.startDate}::date, ${input.endDate}::date)`
        yield* events.emit(
          Events.FinancialYearAdded.make({ aggregateId: id, data: { financialYearId, label, ...input } })
        )
        return { id: financialYearId, label, ...input }
      })
    )

  const addDocumentSeries = (id: string, input: Domain.DocumentSeries) =>
    transaction(
      "addDocumentSeries",
      Effect.gen(function* () {
        yield* lock(id)
        const years = yield* sql`SELECT id FROM financial_years
          WHERE id = ${input.financialYearId} AND organization_id = ${id}`.pipe(Effect.flatMap(decode(IdRow)))
        if (years.length === 0) {
          return yield* ApiError.InvalidRequest.field(
            "payload.financialYearId",
            "is not a financial year of this organization"
          )
        }
        const documentSeriesId = crypto.randomUUID()
        yield* sql`INSERT INTO document_series (id, organization_id, financial_year_id, document_type, prefix,
            start_number)
          VALUES (${documentSeriesId}, ${id}, ${input.financialYearId}, ${input.documentType}, ${input.prefix},
            ${input.startNumber})`
        yield* events.emit(Events.DocumentSeriesAdded.make({ aggregateId: id, data: { documentSeriesId, ...input } }))
        return { id: documentSeriesId, ...input }
      })
    )

  /** Emits the UPDATE event of a part of an organization when any of its fields changed. */
  const emitSubChanges = <A extends object>(
    before: A,
    after: A,
    make: (changes: Payload.Changes<A>) => Parameters<typeof events.emit>[0]
  ) =>
    Option.match(Payload.diff(before, after), {
      onNone: () => Effect.void,
      onSome: (changes) => Effect.asVoid(events.emit(make(changes)))
    })

  return Organizations.of({
    create,
    list,
    get,
    update,
    remove,
    addGstRegistration,
    updateGstRegistration,
    addBankAccount,
    updateBankAccount,
    addFinancialYear,
    addDocumentSeries
  })
})

/** The service, over the `SqlClient`, `EventEmitter` and `Memberships` in context. */
export const layer: Layer.Layer<Organizations, never, SqlClient.SqlClient | EventEmitter.EventEmitter | Memberships> =
  Layer.effect(Organizations, make)

/**
 * A unique violation is a conflict with what is stored; a cancelled statement is a `Timeout`; anything else the
 * database says is the server's failure.
 */
export const conflictOrInternal = (
  doing: string,
  error: SqlError
): Effect.Effect<never, ApiError.Conflict | ApiError.InternalError | ApiError.Timeout> => {
  if (error.reason._tag !== "UniqueViolation") return ApiError.storage(doing, error)
  const constraint = error.reason.constraint ?? ""
  const what = uniqueMessages.find(([name]) => constraint.includes(name))?.[1] ?? "a record with these values exists"
  return Effect.fail(new ApiError.Conflict({ message: what }))
}

const uniqueMessages: ReadonlyArray<readonly [string, string]> = [
  ["organizations_pan", "an organization with this PAN exists"],
  ["gst_registrations_gstin", "this GSTIN is registered already"],
  ["bank_accounts", "this bank account is recorded already"],
  ["financial_years", "this financial year exists already"],
  ["document_series", "this financial year has a series for this document type already"],
  ["commodities", "this commodity exists already"]
]

/** Rows as the database returns them; a row that does not decode is the server's failure, not the caller's. */
export const decode =
  <S extends Schema.Codec<unknown, unknown, never, never>>(row: S) =>
  (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<S["Type"]>> =>
    Effect.orDie(Schema.decodeUnknownEffect(Schema.Array(row))(rows))

const toOrganization = (row: typeof OrganizationRow.Type): OrganizationRecord => ({
  id: row.id,
  name: row.name,
  type: row.type,
  email: row.email,
  phone: row.phone,
  pan: row.pan
})

const toGst = (row: typeof GstRow.Type): GstRecord => ({
  id: row.id,
  gstin: row.gstin,
  stateCode: row.state_code,
  registrationType: row.registration_type,
  effectiveFrom: row.effective_from
})

const toBankAccount = (row: typeof BankAccountRow.Type): BankAccountRecord => ({
  id: row.id,
  accountName: row.account_name,
  accountNumber: row.account_number,
  ifsc: row.ifsc,
  bankName: row.bank_name,
  isPrimary: row.is_primary
})

const toFinancialYear = (row: typeof FinancialYearRow.Type): FinancialYearRecord => ({
  id: row.id,
  label: row.label,
  startDate: row.start_date,
  endDate: row.end_date
})

const toDocumentSeries = (row: typeof DocumentSeriesRow.Type): DocumentSeriesRecord => ({
  id: row.id,
  financialYearId: row.financial_year_id,
  documentType: row.document_type,
  prefix: row.prefix,
  startNumber: row.start_number
})

const IdRow = Schema.Struct({ id: Schema.String })

const OrganizationRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  type: Domain.OrganizationType,
  email: Schema.String,
  phone: Schema.NullOr(Schema.String),
  pan: Schema.String
})

const GstRow = Schema.Struct({
  id: Schema.String,
  gstin: Schema.String,
  state_code: Schema.String,
  registration_type: Domain.GstRegistrationFields.fields.registrationType,
  effective_from: Schema.String
})

const BankAccountRow = Schema.Struct({
  id: Schema.String,
  account_name: Schema.String,
  account_number: Schema.String,
  ifsc: Schema.String,
  bank_name: Schema.String,
  is_primary: Schema.Boolean
})

const FinancialYearRow = Schema.Struct({
  id: Schema.String,
  label: Schema.String,
  start_date: Schema.String,
  end_date: Schema.String
})

const DocumentSeriesRow = Schema.Struct({
  id: Schema.String,
  financial_year_id: Schema.String,
  document_type: Domain.DocumentSeries.fields.documentType,
  prefix: Schema.String,
  start_number: Schema.Int
})
