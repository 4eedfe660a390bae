/**
 * Realistic demo data: several organizations kept by three clerks over several months, written through the same
 * services as the API (so every change has its events, in the same transaction), each change at its own moment in
 * the past and with the context a browser request would have had: the clerk, their office's address and browser,
 * a correlation id, and now and then a reason.
 *
 * The history is backdated by running each change under a `Clock` set to its moment; everything else about time
 * (timeouts, the database's `recorded_at`) keeps the real one. The same seed gives the same history.
 *
 * @since 0.1.0
 */
import { EventContext } from "@annal/core"
import { ApiError } from "@annal/http"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as SqlClient from "effect/sql/SqlClient"
import { Commodities } from "./Commodities.ts"
import * as DemoUsers from "./DemoUsers.ts"
import type * as Domain from "./Domain.ts"
import { Memberships } from "./Memberships.ts"
import { Organizations } from "./Organizations.ts"

/** How much history to make. */
export interface Options {
  /** How many organizations, at most 8. */
  readonly organizations: number
  /** How many months back the history starts. */
  readonly months: number
  /** Where the history ends; now by default. */
  readonly until?: DateTime.Utc | undefined
  readonly seed?: number | undefined
  /** Told each month as it is written. */
  readonly onProgress?: ((line: string) => Effect.Effect<void>) | undefined
}

/** What was written. */
export interface Summary {
  readonly organizations: number
  readonly commodities: number
  readonly changes: number
  /** False when the demo data was there already, and nothing was written. */
  readonly written: boolean
}

const businesses: ReadonlyArray<{
  readonly name: string
  readonly type: Domain.Organization["type"]
  readonly pan: string
  readonly stateCode: string
  readonly city: string
  readonly bank: string
  readonly ifsc: string
}> = [
  {
    name: "Shree Ganesh Traders",
    type: "proprietorship",
    pan: "AGTPS4821K",
    stateCode: "27",
    city: "Pune",
    bank: "State Bank of India",
    ifsc: "SBIN0001234"
  },
  {
    name: "Malabar Spice Exports",
    type: "private_limited",
    pan: "AAHCM7310Q",
    stateCode: "32",
    city: "Kochi",
    bank: "Federal Bank",
    ifsc: "FDRL0001021"
  },
  {
    name: "Deccan Agro Commodities",
    type: "llp",
    pan: "AAKFD2254M",
    stateCode: "36",
    city: "Hyderabad",
    bank: "HDFC Bank",
    ifsc: "HDFC0000521"
  },
  {
    name: "Narmada Cotton Mills",
    type: "public_limited",
    pan: "AABCN6672R",
    stateCode: "24",
    city: "Ahmedabad",
    bank: "Bank of Baroda",
    ifsc: "BARB0AHMEDA"
  },
  {
    name: "Konkan Cashew Processors",
    type: "partnership",
    pan: "AAJFK9043D",
    stateCode: "30",
    city: "Panaji",
    bank: "Canara Bank",
    ifsc: "CNRB0002231"
  },
  {
    name: "Punjab Grain Merchants",
    type: "partnership",
    pan: "AAIFP1187H",
    stateCode: "03",
    city: "Ludhiana",
    bank: "Punjab National Bank",
    ifsc: "PUNB0123400"
  },
  {
    name: "Kaveri Oilseeds",
    type: "private_limited",
    pan: "AAFCK5530B",
    stateCode: "29",
    city: "Mysuru",
    bank: "ICICI Bank",
    ifsc: "ICIC0000987"
  },
  {
    name: "Ganga Pulses Company",
    type: "trust",
    pan: "AAATG8812L",
    stateCode: "09",
    city: "Kanpur",
    bank: "Union Bank of India",
    ifsc: "UBIN0531234"
  }
]

const commodities: ReadonlyArray<Domain.Commodity> = [
  { name: "Chana dal", category: "Pulses", hsnCode: "0713", unit: "QTL" },
  { name: "Raw cotton", category: "Fibres", hsnCode: "5201", unit: "QTL" },
  { name: "Cashew kernels", category: "Nuts", hsnCode: "08013220", unit: "KG" },
  { name: "Black pepper", category: "Spices", hsnCode: "090411", unit: "KG" },
  { name: "Groundnut oil", category: "Edible oils", hsnCode: "1508", unit: "LTR" },
  { name: "Soybean", category: "Oilseeds", hsnCode: "1201", unit: "MT" }
]

const offices: Record<string, { readonly ip: string; readonly userAgent: string }> = {
  alice: {
    ip: "203.0.113.10",
    userAgent:
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
  },
  bob: {
    ip: "198.51.100.24",
    userAgent:
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
  },
  carol: {
    ip: "192.0.2.77",
    userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
  }
}

const reasons = [
  "Updated as per compliance review",
  "Requested by the customer over email",
  "Correction after the quarterly reconciliation",
  "Bank merged branches; new IFSC",
  undefined,
  undefined
]

/** One change of the history: who, when, and what. */
interface Step {
  readonly at: DateTime.Utc
  readonly clerk: "alice" | "bob" | "carol"
  readonly run: Effect.Effect<
    unknown,
    ApiError.NotFound | ApiError.Conflict | ApiError.InvalidRequest | ApiError.InternalError | ApiError.Timeout
  >
}

/** Writes the demo history, unless the first demo organization exists already. */
export const write = (options: Options) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const organizationsService = yield* Organizations
    const commoditiesService = yield* Commodities
    const memberships = yield* Memberships
    const count = Math.max(1, Math.min(options.organizations, businesses.length))
    const chosen = businesses.slice(0, count)
    const [existing] = yield* sql<{ readonly n: number }>`SELECT count(*)::integer AS n FROM organizations
      WHERE pan = ${chosen[0]!.pan}`
    if (existing !== undefined && existing.n > 0) {
      return { organizations: 0, commodities: 0, changes: 0, written: false } satisfies Summary
    }
    const until = options.until ?? (yield* DateTime.now)
    const start = DateTime.subtract(until, { days: Math.round(options.months * 30.4) })
    const span = DateTime.toEpochMillis(until) - DateTime.toEpochMillis(start)
    const at = (fraction: number) => DateTime.makeUnsafe(DateTime.toEpochMillis(start) + Math.floor(span * fraction))
    const clerks = ["alice", "bob", "carol"] as const

    const steps: Array<Step> = []
    const organizationIds: Array<string> = []
    const commodityIds: Array<string> = []

    // The catalog grows early, and is corrected now and then.
    for (const [index, commodity] of commodities.entries()) {
      steps.push({
        at: at(0.02 + index * 0.04),
        clerk: clerks[index % 3]!,
        run: Effect.map(commoditiesService.create(commodity), (created) => commodityIds.push(created.id))
      })
    }

    for (const [index, business] of chosen.entries()) {
      const clerk = clerks[index % clerks.length]!
      // Two clerks keep each organization's books: the one who opens it (its first member) and the next one.
      const other = clerks[(index + 1) % clerks.length]!
      const opened = 0.05 + (0.5 * index) / count
      const email = `accounts@${business.name.toLowerCase().replaceAll(/[^a-z]+/g, "")}.example`
      const id = () => organizationIds[index]!
      const fy = financialYearOf(at(opened))
      const gstin = `${business.stateCode}${business.pan}1Z${(index + 5) % 10}`
      const gstIds: Array<string> = []
      const accountIds: Array<string> = []
      const yearIds: Array<string> = []
      steps.push(
        {
          at: at(opened),
          clerk,
          run: Effect.map(
            organizationsService.create({ name: business.name, type: business.type, email, pan: business.pan }),
            (created) => organizationIds.push(created.id)
          ).pipe(
            Effect.tap(() => memberships.add(id(), DemoUsers.user(other).userId)),
            Effect.catchTag("StorageError", (error) => ApiError.storage("adding a member", error))
          )
        },
        {
          at: at(opened + 0.01),
          clerk,
          run: Effect.suspend(() =>
            Effect.map(
              organizationsService.addGstRegistration(id(), {
                gstin,
                stateCode: business.stateCode,
                registrationType: "regular",
                effectiveFrom: DateTime.formatIsoDateUtc(at(opened))
              }),
              (gst) => gstIds.push(gst.id)
            )
          )
        },
        {
          at: at(opened + 0.012),
          clerk,
          run: Effect.suspend(() =>
            Effect.map(
              organizationsService.addBankAccount(id(), {
                accountName: business.name,
                accountNumber: `${50100000000 + index * 7919}`,
                ifsc: business.ifsc,
                bankName: business.bank,
                isPrimary: true
              }),
              (account) => accountIds.push(account.id)
            )
          )
        },
        {
          at: at(opened + 0.015),
          clerk,
          run: Effect.suspend(() =>
            Effect.map(organizationsService.addFinancialYear(id(), fy), (year) => yearIds.push(year.id))
          )
        },
        {
          at: at(opened + 0.02),
          clerk,
          run: Effect.suspend(() =>
            organizationsService.addDocumentSeries(id(), {
              financialYearId: yearIds[0]!,
              documentType: "invoice",
              prefix: `INV/${fy.startDate.slice(2, 4)}`,
              startNumber: 1
            })
          )
        }
      )
      // Later: a new phone, a second account that becomes the primary one, a change of GST scheme.
      steps.push(
        {
          at: at(opened + 0.08),
          clerk: other,
          run: Effect.suspend(() =>
            organizationsService.update(id(), { phone: `+91-98${String(20000000 + index * 104729).slice(0, 8)}` })
          )
        },
        {
          at: at(opened + 0.15),
          clerk,
          run: Effect.suspend(() =>
            organizationsService.addBankAccount(id(), {
              accountName: `${business.name} collections`,
              accountNumber: `${917020000000 + index * 3571}`,
              ifsc: "UTIB0000432",
              bankName: "Axis Bank",
              isPrimary: false
            })
          )
        },
        {
          at: at(opened + 0.2),
          clerk: other,
          run: Effect.suspend(() => organizationsService.update(id(), { email: `finance@${email.split("@")[1]}` }))
        },
        {
          at: at(opened + 0.3),
          clerk,
          run: Effect.suspend(() =>
            organizationsService.updateGstRegistration(id(), gstIds[0]!, {
              registrationType: index % 2 === 0 ? "composition" : "regular",
              effectiveFrom: DateTime.formatIsoDateUtc(at(opened + 0.3))
            })
          )
        },
        {
          at: at(opened + 0.35),
          clerk: other,
          run: Effect.suspend(() =>
            organizationsService.updateBankAccount(id(), accountIds[0]!, { ifsc: "SBIN0009876" })
          )
        }
      )
    }

    // Corrections to the catalog, and one organization that closed.
    steps.push(
      {
        at: at(0.6),
        clerk: "carol",
        run: Effect.suspend(() => commoditiesService.update(commodityIds[3]!, { hsnCode: "09041100" }))
      },
      {
        at: at(0.75),
        clerk: "bob",
        run: Effect.suspend(() =>
          commoditiesService.update(commodityIds[0]!, { name: "Chana dal (split)", unit: "KG" })
        )
      }
    )
    if (count > 2) {
      steps.push({
        at: at(0.97),
        // A member closes it: the clerk who opened it.
        clerk: clerks[(count - 1) % clerks.length]!,
        run: Effect.suspend(() => organizationsService.remove(organizationIds[count - 1]!))
      })
    }

    steps.sort((a, b) => DateTime.toEpochMillis(a.at) - DateTime.toEpochMillis(b.at))
    const clock = yield* Clock.Clock
    let month = ""
    let inMonth = 0
    for (const [index, step] of steps.entries()) {
      const label = DateTime.formatIso(step.at).slice(0, 7)
      if (label !== month) {
        if (month !== "" && options.onProgress)
          yield* options.onProgress(`  ${month}: ${inMonth} ${inMonth === 1 ? "change" : "changes"}`)
        month = label
        inMonth = 0
      }
      inMonth++
      const office = offices[step.clerk]!
      const reason = yield* pick(reasons)
      yield* step.run.pipe(
        EventContext.provide({
          userId: DemoUsers.user(step.clerk).userId,
          metadata: {
            ipAddress: office.ip,
            userAgent: office.userAgent,
            correlationId: `demo-${String(index + 1).padStart(4, "0")}`,
            ...(reason === undefined ? {} : { reason })
          }
        }),
        Effect.provideService(Clock.Clock, at_(clock, step.at))
      )
    }
    if (month !== "" && options.onProgress)
      yield* options.onProgress(`  ${month}: ${inMonth} ${inMonth === 1 ? "change" : "changes"}`)
    return {
      organizations: count,
      commodities: commodities.length,
      changes: steps.length,
      written: true
    } satisfies Summary
  }).pipe(Random.withSeed(options.seed ?? 2024))

/** One of `items`, at random. */
const pick = <A>(items: ReadonlyArray<A>) => Effect.map(Random.nextIntBetween(0, items.length), (i) => items[i]!)

/** The financial year an instant falls in, April to March. */
const financialYearOf = (instant: DateTime.Utc): Domain.FinancialYear => {
  const parts = DateTime.toPartsUtc(instant)
  const startYear = parts.month >= 4 ? parts.year : parts.year - 1
  return { startDate: `${startYear}-04-01`, endDate: `${startYear + 1}-03-31` }
}

/** The real clock, except that it reads `instant` as the current time. */
const at_ = (real: Clock.Clock, instant: DateTime.Utc): Clock.Clock => {
  const millis = DateTime.toEpochMillis(instant)
  return {
    currentTimeMillisUnsafe: () => millis,
    currentTimeMillis: Effect.succeed(millis),
    currentTimeNanosUnsafe: () => BigInt(millis) * 1_000_000n,
    currentTimeNanos: Effect.succeed(BigInt(millis) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(duration)
  }
}
