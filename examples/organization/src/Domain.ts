/**
 * The Organization module's business data, as schemas: an organization, its GST registrations, bank accounts,
 * financial years and document series, and the commodity catalog. The same schemas validate the API's input
 * (a field that fails answers 400 naming the field and why), shape the stored rows and make the events' payloads.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const text = (label: string, max: number) =>
  Schema.String.check(
    Schema.isTrimmed({ message: "must not start or end with spaces" }),
    Schema.isBetweenLength(1, max, { message: `${label} must be 1 to ${max} characters` })
  )

const pattern = (regex: RegExp, message: string) => Schema.String.check(Schema.isPattern(regex, { message }))

/** A calendar date, `YYYY-MM-DD`, that exists. */
export const LocalDate = pattern(/^\d{4}-\d{2}-\d{2}$/, "must be a date, YYYY-MM-DD").check(
  Schema.makeFilter((value: string) =>
    // A day that does not exist (the 30th of February) parses as a later one: it must read back as given.
    Option.exists(DateTime.make(`${value}T00:00:00Z`), (date) => DateTime.formatIsoDateUtc(date) === value)
      ? undefined
      : "is not a calendar date"
  )
)

/** The legal forms of an Indian business. */
export const OrganizationType = Schema.Literals([
  "proprietorship",
  "partnership",
  "llp",
  "private_limited",
  "public_limited",
  "trust"
])

/** An organization's own fields. */
export const Organization = Schema.Struct({
  name: text("a name", 200),
  type: OrganizationType,
  email: pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, "must be an email address").check(
    Schema.isMaxLength(254, { message: "must be at most 254 characters" })
  ),
  phone: Schema.NullOr(pattern(/^\+?[0-9][0-9 -]{6,18}[0-9]$/, "must be a phone number, such as +91-9876543210")),
  /** The Permanent Account Number of the business. */
  pan: pattern(/^[A-Z]{5}[0-9]{4}[A-Z]$/, "must be a PAN: 5 capital letters, 4 digits, 1 capital letter")
})
export type Organization = typeof Organization.Type

/** What creating an organization takes: its fields, with the phone optional. */
export const CreateOrganization = Schema.Struct({
  ...Organization.fields,
  phone: Schema.optionalKey(Organization.fields.phone)
})
export type CreateOrganization = typeof CreateOrganization.Type

/** What updating an organization takes: any of its fields. */
export const UpdateOrganization = Schema.Struct({
  name: Schema.optionalKey(Organization.fields.name),
  type: Schema.optionalKey(Organization.fields.type),
  email: Schema.optionalKey(Organization.fields.email),
  phone: Schema.optionalKey(Organization.fields.phone),
  pan: Schema.optionalKey(Organization.fields.pan)
})
export type UpdateOrganization = typeof UpdateOrganization.Type

/** The fields of a GST registration, each checked on its own. */
export const GstRegistrationFields = Schema.Struct({
  /** The 15-character GST identification number: state code, PAN, entity number, `Z`, check character. */
  gstin: pattern(
    /^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$/,
    "must be a GSTIN: 2-digit state code, PAN, entity number, Z, check character"
  ),
  /** The GST state code, `01` to `38`. */
  stateCode: pattern(/^(0[1-9]|[12][0-9]|3[0-8])$/, "must be a GST state code from 01 to 38"),
  registrationType: Schema.Literals(["regular", "composition", "sez"]),
  effectiveFrom: LocalDate
})

/** A GST registration of an organization in one state. */
export const GstRegistration = GstRegistrationFields.check(
  Schema.makeFilter((registration) =>
    registration.gstin.startsWith(registration.stateCode)
      ? undefined
      : { path: ["gstin"], issue: `must start with the state code ${registration.stateCode}` }
  )
)
export type GstRegistration = typeof GstRegistration.Type

/** What updating a GST registration takes: its type, or the date it is effective from. */
export const UpdateGstRegistration = Schema.Struct({
  registrationType: Schema.optionalKey(GstRegistrationFields.fields.registrationType),
  effectiveFrom: Schema.optionalKey(LocalDate)
})
export type UpdateGstRegistration = typeof UpdateGstRegistration.Type

/** A bank account of an organization. */
export const BankAccount = Schema.Struct({
  accountName: text("an account name", 200),
  accountNumber: pattern(/^[0-9]{9,18}$/, "must be 9 to 18 digits"),
  /** The branch's Indian Financial System Code. */
  ifsc: pattern(/^[A-Z]{4}0[A-Z0-9]{6}$/, "must be an IFSC: 4 capital letters, 0, then 6 letters or digits"),
  bankName: text("a bank name", 200),
  isPrimary: Schema.Boolean
})
export type BankAccount = typeof BankAccount.Type

/** What updating a bank account takes: any of its fields. */
export const UpdateBankAccount = Schema.Struct({
  accountName: Schema.optionalKey(BankAccount.fields.accountName),
  accountNumber: Schema.optionalKey(BankAccount.fields.accountNumber),
  ifsc: Schema.optionalKey(BankAccount.fields.ifsc),
  bankName: Schema.optionalKey(BankAccount.fields.bankName),
  isPrimary: Schema.optionalKey(BankAccount.fields.isPrimary)
})
export type UpdateBankAccount = typeof UpdateBankAccount.Type

/** The dates of a financial year, each checked on its own. */
export const FinancialYearFields = Schema.Struct({
  startDate: LocalDate.check(Schema.isEndingWith("-04-01", { message: "must be the 1st of April" })),
  endDate: LocalDate
})

/** An Indian financial year: 1 April to 31 March of the next year. */
export const FinancialYear = FinancialYearFields.check(
  Schema.makeFilter((year) =>
    year.endDate === `${Number(year.startDate.slice(0, 4)) + 1}-03-31`
      ? undefined
      : { path: ["endDate"], issue: "must be the 31st of March after startDate" }
  )
)
export type FinancialYear = typeof FinancialYear.Type

/** The label of a financial year, such as `2025-26`. */
export const financialYearLabel = (year: FinancialYear): string =>
  `${year.startDate.slice(0, 4)}-${year.endDate.slice(2, 4)}`

/** A numbering series for one kind of document in one financial year. */
export const DocumentSeries = Schema.Struct({
  financialYearId: Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" })),
  documentType: Schema.Literals(["invoice", "credit_note", "debit_note", "receipt", "payment_voucher"]),
  prefix: pattern(/^[A-Z0-9][A-Z0-9/-]{0,11}$/, "must be 1 to 12 capital letters, digits, / or -"),
  startNumber: Schema.Int.check(
    Schema.isBetween({ minimum: 1, maximum: 999_999_999 }, { message: "must be a whole number from 1 to 999999999" })
  )
})
export type DocumentSeries = typeof DocumentSeries.Type

/** The units a commodity is traded in. */
export const Unit = Schema.Literals(["KG", "QTL", "MT", "LTR", "NOS"])

/** A commodity of the catalog. */
export const Commodity = Schema.Struct({
  name: text("a name", 200),
  category: text("a category", 100),
  /** The Harmonized System of Nomenclature code: 4, 6 or 8 digits. */
  hsnCode: pattern(/^([0-9]{4}|[0-9]{6}|[0-9]{8})$/, "must be an HSN code of 4, 6 or 8 digits"),
  unit: Unit
})
export type Commodity = typeof Commodity.Type

/** What updating a commodity takes: any of its fields. */
export const UpdateCommodity = Schema.Struct({
  name: Schema.optionalKey(Commodity.fields.name),
  category: Schema.optionalKey(Commodity.fields.category),
  hsnCode: Schema.optionalKey(Commodity.fields.hsnCode),
  unit: Schema.optionalKey(Commodity.fields.unit)
})
export type UpdateCommodity = typeof UpdateCommodity.Type

/** An id in a path or a payload. */
export const Id = Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" }))
