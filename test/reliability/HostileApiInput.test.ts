/**
 * Hostile API input, over real HTTP against the Organization app on PostgreSQL, with the bounds it runs with in
 * production (`ANNAL_STATEMENT_TIMEOUT`: PostgreSQL's statement timeout on its connections, and the request timeout).
 *
 * - 5,000 generated requests to the five audit endpoints (fast-check): filters, cursors (garbage, truncated, forged,
 *   and real ones from another query), page sizes, time ranges, hostile strings from `support/Payloads.ts`, repeated
 *   and unknown parameters, percent-encoding garbage, values past Node's header limit, from every kind of caller.
 *   Every answer is a success or a typed JSON error of its status (`{ _tag, message }`), never a 5xx and never a body
 *   that is not JSON, and comes within a bound (10 s: generous, but a bound is the property here). A request that is
 *   valid in every part must succeed. The checker is shown to catch a cursor check whose refusal escapes raw, and a
 *   request validation that answers 500.
 * - A query that never ends (a test-only store whose count first sleeps in PostgreSQL) is answered with a typed 503
 *   `Timeout` well within the bound: by the request timeout, and by PostgreSQL's statement timeout alone (its
 *   `query_canceled` mapped to the same error). Without either bound the same requests are shown not to be bounded.
 * - A matrix of caller (each role, a user who wrote nothing, no token, an unknown token, another scheme) × endpoint
 *   (the audit API's and the business reads) × object (own and others' entities and activity, shared commodities,
 *   unrestricted lists and counts): each answer is the one the policy gives, and an allowed answer holds no event the
 *   caller may not see, and no count beyond what it may see. The checker is shown to catch an access policy that allows
 *   everything, and a principal taken for an auditor whatever its role.
 */
import { describe, it } from "@effect/vitest"
import * as Http from "node:http"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as HttpServer from "effect/http/HttpServer"
import fc from "fast-check"
import type * as Filter from "../../packages/core/src/Filter.ts"
import { fromSqlError } from "../../packages/core/src/internal/sqlErrors.ts"
import * as ApiError from "../../packages/http/src/ApiError.ts"
import * as AuditAccess from "../../packages/http/src/AuditAccess.ts"
import * as Authentication from "../../packages/http/src/Authentication.ts"
import * as PageCursor from "../../packages/http/src/PageCursor.ts"
import { CurrentPrincipal } from "../../packages/http/src/Principal.ts"
import * as RequestValidation from "../../packages/http/src/RequestValidation.ts"
import { catalogImportUserId, importedCommodities } from "../../examples/organization/src/Migrations.ts"
import * as ApiServer from "./support/ApiServer.ts"
import { expectCaught, expectNone, Failures } from "./support/Battery.ts"
import { hostileKey, hostileString } from "./support/Payloads.ts"

const seed = Number(process.env["ANNAL_RELIABILITY_SEED"] ?? 20_240_601)

/** How long any request may take: generous, since the machine is loaded on purpose, but a bound. */
const bound = Duration.seconds(10)
const boundMillis = Duration.toMillis(bound)

/** How many requests are in flight at once. */
const concurrency = 8

// --- the world the requests are about ---------------------------------------------------------------------------

/** An event as the checkers need it. */
const Seen = Schema.Struct({
  eventId: Schema.String,
  aggregateType: Schema.String,
  aggregateId: Schema.String,
  userId: Schema.String
})
type Seen = typeof Seen.Type

const Page = Schema.Struct({ events: Schema.Array(Seen), nextCursor: Schema.NullOr(Schema.String) })
const Count = Schema.Struct({ count: Schema.Number })
const Created = Schema.Struct({ id: Schema.String })
const decodePage = Schema.decodeUnknownOption(Page)
const decodeCount = Schema.decodeUnknownOption(Count)

/** What the seed wrote, and what the requests can refer to. */
interface World {
  /** Each clerk's organization. */
  readonly organizations: { readonly alice: string; readonly bob: string; readonly carol: string }
  /** The commodity alice created, and one the first release imported, which alice then changed. */
  readonly commodities: { readonly alice: string; readonly imported: string }
  /** The correlation ids of the seeding writes. */
  readonly correlationIds: ReadonlyArray<string>
  /** Real cursors: the query each was issued for, and the cursor. */
  readonly cursors: ReadonlyArray<{ readonly path: string; readonly cursor: string }>
  /** Every event after the seed, as the auditor listed them. */
  readonly truth: ReadonlyArray<Seen>
}

const alice = ApiServer.caller("alice")
const bob = ApiServer.caller("bob")
const carol = ApiServer.caller("carol")
const dana = ApiServer.caller("dana")
const userIds = ApiServer.callers.flatMap((c) => (c.userId === undefined ? [] : [c.userId]))

/** A request of the seed, which must succeed. */
const seedRequest = (
  method: "GET" | "POST" | "PATCH",
  path: string,
  caller: ApiServer.Caller,
  options: { readonly body?: unknown; readonly correlationId?: string } = {}
) =>
  Effect.gen(function* () {
    const answer = yield* ApiServer.send(method, path, caller, {
      giveUpAfter: bound,
      ...(options.body === undefined ? {} : { body: options.body }),
      ...(options.correlationId === undefined ? {} : { headers: { "x-correlation-id": options.correlationId } })
    })
    if (answer.status < 200 || answer.status >= 300 || Option.isNone(answer.body)) {
      return yield* Effect.die(new Error(`seed: ${method} ${path} as ${caller.name}: ${answer.status} ${answer.text}`))
    }
    return answer.body.value
  })

const createOrganization = (caller: ApiServer.Caller, pan: string) =>
  Effect.map(
    seedRequest("POST", "/organizations", caller, {
      body: { name: `${caller.name}'s traders`, type: "private_limited", email: `${caller.name}@example.com`, pan },
      correlationId: `seed-${caller.name}-create`
    }),
    (body) => Schema.decodeUnknownSync(Created)(body).id
  )

/** Writes the world through the API, as the clerks would, and reads it back as the auditor. */
const seedWorld: Effect.Effect<World, never, ApiServer.Served> = Effect.gen(function* () {
  const organizations = {
    alice: yield* createOrganization(alice, "ALICE1234A"),
    bob: yield* createOrganization(bob, "BOBBY1234B"),
    carol: yield* createOrganization(carol, "CAROL1234C")
  }
  yield* seedRequest("PATCH", `/organizations/${organizations.alice}`, alice, {
    body: { email: "accounts@alice.example" },
    correlationId: "seed-alice-update"
  })
  yield* seedRequest("PATCH", `/organizations/${organizations.bob}`, bob, {
    body: { phone: "+91 98450 00000" },
    correlationId: "seed-bob-update"
  })
  const commodity = Schema.decodeUnknownSync(Created)(
    yield* seedRequest("POST", "/commodities", alice, {
      body: { name: "Battery cotton", category: "Fibres", hsnCode: "5201", unit: "QTL" },
      correlationId: "seed-alice-commodity"
    })
  ).id
  const imported = importedCommodities[1]!.id
  yield* seedRequest("PATCH", `/commodities/${imported}`, alice, {
    body: { category: "Rice" },
    correlationId: "seed-alice-imported"
  })

  // Real cursors, each for its own query: pages of one event.
  const cursorQueries: ReadonlyArray<readonly [string, ApiServer.Caller]> = [
    ["/audit/events?limit=1", dana],
    ["/audit/events?limit=1&order=desc", dana],
    [`/audit/events?limit=1&userId=${bob.userId}`, dana],
    ["/audit/events?limit=1&aggregateType=organization", dana],
    ["/audit/changes/recent?limit=1", dana],
    [`/audit/users/${alice.userId}/activity?limit=1`, alice],
    [`/audit/users/${bob.userId}/activity?limit=1`, dana],
    [`/audit/aggregates/organization/${organizations.alice}?limit=1`, alice],
    [`/audit/aggregates/commodity/${imported}?limit=1`, dana]
  ]
  const cursors: Array<{ readonly path: string; readonly cursor: string }> = []
  for (const [path, caller] of cursorQueries) {
    const page = decodePage(yield* seedRequest("GET", path, caller))
    if (Option.isSome(page) && page.value.nextCursor !== null) cursors.push({ path, cursor: page.value.nextCursor })
  }

  const truth = Option.getOrThrow(decodePage(yield* seedRequest("GET", "/audit/events?limit=500", dana))).events
  return {
    organizations,
    commodities: { alice: commodity, imported },
    correlationIds: [
      "seed-alice-create",
      "seed-bob-create",
      "seed-carol-create",
      "seed-alice-update",
      "seed-bob-update",
      "seed-alice-commodity",
      "seed-alice-imported"
    ],
    cursors,
    truth
  }
}).pipe(Effect.orDie)

// --- the oracle ---------------------------------------------------------------------------------------------------

/** The tag of a typed error, by status. */
const tagOf: Readonly<Record<number, string>> = {
  400: "InvalidRequest",
  401: "Unauthenticated",
  403: "Forbidden",
  404: "NotFound",
  408: "InvalidRequest",
  413: "InvalidRequest",
  415: "InvalidRequest",
  431: "InvalidRequest",
  503: "Timeout"
}

const ErrorBody = Schema.Struct({ _tag: Schema.String, message: Schema.String })
const decodeError = Schema.decodeUnknownOption(ErrorBody)

/** What the checker tallies besides failures. */
interface Tally {
  ok: number
  refused: number
  timedOut: number
  slowest: number
}

const newTally = (): Tally => ({ ok: 0, refused: 0, timedOut: 0, slowest: 0 })

const describeCase = (caller: ApiServer.Caller, path: string, answer: ApiServer.Answer): string =>
  `${caller.name} GET ${path.length > 160 ? `${path.slice(0, 160)}…(${path.length})` : path} → ${answer.status} ${
    answer.error ?? answer.text.slice(0, 120)
  }`

/**
 * Judges one answer: a success, a typed error of its status, or (only where `timeoutAllowed`) a typed `Timeout`;
 * within the bound; and a success where the request was valid in every part.
 */
const judge = (
  failures: Failures,
  tally: Tally,
  request: { readonly caller: ApiServer.Caller; readonly path: string; readonly valid: boolean },
  answer: ApiServer.Answer
): void => {
  const detail = describeCase(request.caller, request.path, answer)
  tally.slowest = Math.max(tally.slowest, Number.isFinite(answer.millis) ? answer.millis : boundMillis)
  if (answer.status === 0) {
    failures.add(answer.error === "no answer in time" ? "unbounded" : "no answer", detail)
    return
  }
  if (answer.millis > boundMillis) failures.add("unbounded", `${detail} after ${Math.round(answer.millis)} ms`)
  if (Option.isNone(answer.body)) {
    failures.add(answer.status >= 500 ? "5xx" : "body not JSON", detail)
    return
  }
  if (answer.status >= 200 && answer.status < 300) {
    tally.ok++
    if (typeof answer.body.value !== "object" || answer.body.value === null)
      failures.add("success not an object", detail)
    return
  }
  const error = decodeError(answer.body.value)
  const tag = Option.isSome(error) ? error.value._tag : undefined
  if (answer.status === 503 && tag === "Timeout") {
    tally.timedOut++
  } else if (answer.status >= 500) {
    failures.add("5xx", detail)
    return
  } else if (tag === undefined || tagOf[answer.status] !== tag) {
    failures.add("untyped error", detail)
    return
  } else {
    tally.refused++
  }
  if (request.valid) failures.add("valid request refused", detail)
}

// --- generated requests -------------------------------------------------------------------------------------------

/**
 * A value for a query string: percent-encoded, lone surrogates included (as the three bytes a careless encoder
 * writes for them, which are no UTF-8).
 */
const encode = (value: string): string => {
  let out = ""
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    const next = value.charCodeAt(i + 1)
    if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += encodeURIComponent(value.slice(i, i + 2))
      i++
    } else if (code >= 0xd800 && code <= 0xdfff) {
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((byte) => `%${byte.toString(16).toUpperCase()}`)
        .join("")
    } else {
      out += encodeURIComponent(value[i]!)
    }
  }
  return out
}

/** Written into the URL as it is; only `#` is escaped, which would end the query. */
const raw = (value: string): string => value.replaceAll("#", "%23")

const eventTypes = [
  "organization.created",
  "organization.updated",
  "commodity.created",
  "commodity.updated",
  "audit.read",
  "organization.gst.added"
]

const validInstant = fc
  .date({ min: new Date("1990-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
  .map((date) => date.toISOString())

const hostileInstant = fc.constantFrom(
  "-271821-04-20T00:00:00Z",
  "+275760-09-13T00:00:00Z",
  "0000-01-01T00:00:00Z",
  "0001-01-01T00:00:00+01:00",
  "9999-12-31T23:59:59.999-23:59",
  "2024-02-30T00:00:00Z",
  "2023-02-29T00:00:00Z",
  "2024-13-01T00:00:00Z",
  "2024-01-01",
  "2024-01-01T00:00:00",
  "2024-01-01T24:00:00Z",
  "2024-01-01T23:59:60Z",
  "2024-01-01T00:00:00+24:00",
  "2024-01-01T00:00:00+99:99",
  "2024-01-01t00:00:00z",
  "2024-01-01T00:00:00.1234567890Z",
  "2024-W01-1",
  "Mon, 01 Jan 2024 00:00:00 GMT",
  "1714000000",
  "now",
  "Infinity",
  "NaN",
  ""
)

const hostileNumber = fc.oneof(
  fc.constantFrom(
    "0",
    "-1",
    "501",
    "1.5",
    "0.5",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1e309",
    "1e2",
    "5e-324",
    "99999999999999999999",
    "9007199254740993",
    "0x10",
    "0b1",
    "0o7",
    " 5",
    "5 ",
    "+5",
    "-0",
    "5abc",
    "",
    "١٢",
    "５",
    "1_000",
    "1,5",
    "null",
    "[]",
    "{}"
  ),
  fc.integer().map(String),
  fc.double().map(String)
)

const validHours = fc.oneof(fc.integer({ min: 1, max: 8784 }).map(String), fc.constantFrom("0.5", "0.0167", "8784"))

/** Percent-encoding garbage and delimiters, written raw. */
const percentGarbage = fc.constantFrom(
  "%",
  "%%",
  "%zz",
  "%0",
  "%2",
  "%E0%A4%A",
  "%00",
  "%C0%AF",
  "%ED%A0%80",
  "%FF%FE",
  "%u0041",
  "%25%32%35",
  "+",
  "%2B",
  "&",
  "=",
  ";",
  "%26",
  "%3D",
  "%0D%0A",
  "%23",
  "..%2F..%2F",
  "%C3%28"
)

/** A value far past anything the API accepts; some past Node's 16 KB limit on the request line. */
const long = fc.oneof(
  fc.integer({ min: 129, max: 4_000 }).map((n) => "x".repeat(n)),
  fc.integer({ min: 1, max: 3 }).map((n) => "é".repeat(n * 3_000)),
  fc.constant("a".repeat(20_000))
)

/** A path segment: valid now and then, otherwise hostile. */
const segment = (valid: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 2, arbitrary: hostileString.map(encode) },
    { weight: 1, arbitrary: percentGarbage },
    { weight: 1, arbitrary: long.map(encode) }
  )

interface Generated {
  readonly caller: ApiServer.Caller
  readonly path: string
  readonly valid: boolean
}

/** The arbitraries of one world. */
const arbitraries = (world: World) => {
  const ids = [...Object.values(world.organizations), ...Object.values(world.commodities)]
  const realCursor = fc.constantFrom(...world.cursors.map((c) => c.cursor))
  const hostileCursor = fc.oneof(
    realCursor,
    realCursor.chain((cursor) => fc.integer({ min: 0, max: cursor.length - 1 }).map((n) => cursor.slice(0, n))),
    realCursor.chain((cursor) =>
      fc.integer({ min: 0, max: cursor.length - 1 }).map((n) => {
        const flipped = cursor[n] === "A" ? "B" : "A"
        return `${cursor.slice(0, n)}${flipped}${cursor.slice(n + 1)}`
      })
    ),
    // A store cursor the server never signed, with a made-up signature.
    fc
      .tuple(
        fc.bigInt({ min: 0n, max: 2n ** 63n }),
        fc.string({ unit: fc.constantFrom(..."ABCabc019-_"), minLength: 43, maxLength: 43 })
      )
      .map(([position, tag]) => `${Buffer.from(`annal.v1:${position}`).toString("base64url")}.${tag}`),
    // One cursor's position with another's signature.
    fc.tuple(realCursor, realCursor).map(([a, b]) => `${a.split(".")[0]}.${b.split(".")[1]}`),
    fc.constantFrom("", ".", "..", "a.b", "null", "undefined", "0"),
    fc.integer({ min: 513, max: 5_000 }).map((n) => "A".repeat(n)),
    hostileString
  )

  const validValue = (name: string): fc.Arbitrary<string> => {
    switch (name) {
      case "eventType":
        return fc.constantFrom(...eventTypes)
      case "aggregateType":
        return fc.constantFrom("organization", "commodity", "audit")
      case "aggregateId":
        return fc.constantFrom(...ids, ...ids.map((id) => id.toUpperCase()))
      case "userId":
        return fc.constantFrom(...userIds, catalogImportUserId)
      case "correlationId":
        return fc.oneof(
          fc.constantFrom(...world.correlationIds),
          fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 40 })
        )
      case "from":
      case "to":
        return validInstant
      case "order":
        return fc.constantFrom("asc", "desc")
      case "limit":
        return fc.integer({ min: 1, max: 500 }).map(String)
      case "hours":
        return validHours
      default:
        return realCursor
    }
  }

  const hostileValue = (name: string): fc.Arbitrary<string> =>
    fc.oneof(
      { weight: 4, arbitrary: hostileString },
      {
        weight: 4,
        arbitrary:
          name === "limit" || name === "hours"
            ? hostileNumber
            : name === "from" || name === "to"
              ? hostileInstant
              : name === "cursor"
                ? hostileCursor
                : name === "order"
                  ? fc.constantFrom("ASC", "Desc", "random", "asc,desc", "")
                  : fc.constantFrom(
                      "",
                      " ",
                      "organization.",
                      ".created",
                      "Organization",
                      "a".repeat(101),
                      "00000000-0000-0000-0000-000000000000",
                      "\u0000",
                      "seed-alice-create\u0000",
                      "\u0000\u0000\u0000"
                    )
      },
      { weight: 1, arbitrary: long }
    )

  /** One parameter, `name=value`, as it goes into the query string. */
  const parameter = (names: ReadonlyArray<string>): fc.Arbitrary<string> =>
    fc.oneof(
      {
        weight: 8,
        arbitrary: fc
          .tuple(fc.constantFrom(...names), fc.boolean(), fc.boolean())
          .chain(([name, valid, rawly]) =>
            (valid ? validValue(name) : hostileValue(name)).map(
              (value) => `${name}=${rawly ? raw(value) : encode(value)}`
            )
          )
      },
      // Unknown names: hostile keys, names of other endpoints, names in another case, array syntax.
      {
        weight: 2,
        arbitrary: fc
          .tuple(
            fc.oneof(
              hostileKey,
              fc.constantFrom(
                "hours",
                "order",
                "page",
                "offset",
                "Limit",
                "USERID",
                "limit[]",
                "eventType[0]",
                "filter"
              )
            ),
            hostileString
          )
          .map(([name, value]) => `${encode(name)}=${encode(value)}`)
      },
      { weight: 1, arbitrary: percentGarbage.map((garbage) => `limit=${garbage}`) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...names), percentGarbage).map(([name, g]) => `${name}=${g}`) },
      { weight: 1, arbitrary: fc.constantFrom("", "&", "=", "limit", "limit=", "=1", "&&&", "?") }
    )

  const filterNames = ["eventType", "aggregateType", "aggregateId", "userId", "correlationId", "from", "to"]
  const pageNames = ["limit", "cursor"]
  const endpoint = fc.oneof(
    fc.constant({ base: "/audit/events", names: [...filterNames, "order", ...pageNames] }),
    fc.constant({ base: "/audit/changes/count", names: filterNames }),
    fc.constant({ base: "/audit/changes/recent", names: ["hours", "aggregateType", ...pageNames] }),
    segment(fc.constantFrom(...userIds, ...userIds.map((id) => id.toUpperCase()))).map((user) => ({
      base: `/audit/users/${user}/activity`,
      names: pageNames
    })),
    fc
      .tuple(segment(fc.constantFrom("organization", "commodity", "audit")), segment(fc.constantFrom(...ids)))
      .map(([type, id]) => ({ base: `/audit/aggregates/${type}/${id}`, names: pageNames }))
  )
  const caller = fc.oneof(
    { weight: 12, arbitrary: fc.constant(dana) },
    { weight: 6, arbitrary: fc.constantFrom(alice, bob, carol) },
    { weight: 1, arbitrary: fc.constant(ApiServer.caller("erin")) },
    { weight: 1, arbitrary: fc.constantFrom(...ApiServer.callers.filter((c) => c.userId === undefined)) }
  )
  const hostile: fc.Arbitrary<Generated> = fc.tuple(caller, endpoint).chain(([who, { base, names }]) =>
    fc.array(parameter(names), { maxLength: 7 }).map((parameters) => ({
      caller: who,
      path: parameters.length === 0 ? base : `${base}?${parameters.join("&")}`,
      valid: false
    }))
  )

  /** A request the auditor may make that is valid in every part: it must succeed. */
  const valid: fc.Arbitrary<Generated> = fc.oneof(
    fc
      .tuple(
        fc.subarray(["eventType", "aggregateType", "aggregateId", "userId", "correlationId", "limit", "order"]),
        fc.option(fc.tuple(validInstant, validInstant), { nil: undefined }),
        fc.boolean()
      )
      .chain(([names, range, count]) =>
        fc
          .tuple(
            ...names
              .filter((name) => !count || (name !== "limit" && name !== "order"))
              .map((name) => validValue(name).map((value) => `${name}=${encode(value)}`))
          )
          .map((parameters) => {
            const times =
              range === undefined
                ? []
                : range.toSorted().map((instant, index) => `${index === 0 ? "from" : "to"}=${encode(instant)}`)
            const query = [...parameters, ...times].join("&")
            const base = count ? "/audit/changes/count" : "/audit/events"
            return { caller: dana, path: query === "" ? base : `${base}?${query}`, valid: true }
          })
      ),
    fc
      .tuple(
        fc.option(validHours, { nil: undefined }),
        fc.option(fc.constantFrom("organization", "commodity"), { nil: undefined })
      )
      .map(([hours, type]) => {
        const query = [hours === undefined ? "" : `hours=${hours}`, type === undefined ? "" : `aggregateType=${type}`]
          .filter((part) => part !== "")
          .join("&")
        return { caller: dana, path: `/audit/changes/recent${query === "" ? "" : `?${query}`}`, valid: true }
      }),
    fc.constantFrom(...userIds).map((user) => ({ caller: dana, path: `/audit/users/${user}/activity`, valid: true })),
    fc.constantFrom(...ids).map((id) => ({ caller: dana, path: `/audit/aggregates/organization/${id}`, valid: true })),
    // The next page of a real query: the cursor with the query it was issued for.
    fc.constantFrom(...world.cursors).map(({ path, cursor }) => ({
      caller: path.includes(alice.userId!) || path.includes(world.organizations.alice) ? alice : dana,
      path: `${path}&cursor=${encode(cursor)}`,
      valid: true
    }))
  )

  /**
   * One hostile parameter in an otherwise valid query, from a caller it is allowed for (a clerk asks about her own
   * events): it gets past everything else, so the hostile value reaches the check meant for it, or the database.
   */
  const targeted: fc.Arbitrary<Generated> = fc
    .tuple(
      fc.constantFrom("/audit/events", "/audit/changes/count"),
      fc.constantFrom(...filterNames, "limit", "cursor", "order"),
      fc.constantFrom(dana, alice, bob),
      fc.boolean()
    )
    .chain(([base, name, who, rawly]) =>
      hostileValue(name).map((value) => {
        const own = who === dana || name === "userId" ? [] : [`userId=${who.userId}`]
        const query = [...own, `${name}=${rawly ? raw(value) : encode(value)}`].join("&")
        return { caller: who, path: `${base}?${query}`, valid: false }
      })
    )

  return { hostile, targeted, valid }
}

/**
 * `cases` requests of `world`: one in five valid in every part, two in five valid but for one hostile parameter, and
 * the rest hostile throughout.
 */
const generate = (world: World, cases: number, runSeed: number): ReadonlyArray<Generated> => {
  const { hostile, targeted, valid } = arbitraries(world)
  const validCount = Math.floor(cases / 5)
  const targetedCount = Math.floor((cases * 2) / 5)
  return [
    ...fc.sample(valid, { numRuns: validCount, seed: runSeed }),
    ...fc.sample(targeted, { numRuns: targetedCount, seed: runSeed + 1 }),
    ...fc.sample(hostile, { numRuns: cases - validCount - targetedCount, seed: runSeed + 2 })
  ]
}

/** Sends every request, `concurrency` at a time, and judges each answer. */
const sendAll = (requests: ReadonlyArray<Generated>) =>
  Effect.gen(function* () {
    const failures = new Failures()
    const tally = newTally()
    yield* Effect.forEach(
      requests,
      (request) =>
        Effect.map(ApiServer.get(request.path, request.caller, Duration.sum(bound, Duration.seconds(5))), (answer) =>
          judge(failures, tally, request, answer)
        ),
      { concurrency, discard: true }
    )
    return { failures, tally }
  })

const noteOf = (tally: Tally): string =>
  `${tally.ok} succeeded, ${tally.refused} typed 4xx, ${tally.timedOut} typed 503 Timeout; slowest ${Math.round(tally.slowest)} ms`

/** Seeds the app in context and sends `cases` generated requests (and `extra` after them). */
const runGenerated = (cases: number, extra: (world: World) => ReadonlyArray<Generated> = () => []) =>
  Effect.gen(function* () {
    const world = yield* seedWorld
    return yield* sendAll([...generate(world, cases, seed), ...extra(world)])
  })

// --- a query that never ends ----------------------------------------------------------------------------------------

/** The correlation id that sends a count of the slow store to sleep. */
const slowCorrelationId = "battery-slow-query"
const sleepSeconds = 30

/**
 * A store whose count, for one correlation id, first sleeps in PostgreSQL: a query that takes as long as a runaway
 * one, reachable only in this variant. A driver error is mapped as the real store maps it.
 */
const slowStore: NonNullable<ApiServer.Parts["store"]> = (inner) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return {
      ...inner,
      count: (filter: Filter.Filter) =>
        filter.correlationId === slowCorrelationId
          ? sql`SELECT pg_sleep(${sleepSeconds})`.pipe(
              Effect.mapError((error) => fromSqlError("EventStore.count", error)),
              Effect.andThen(inner.count(filter))
            )
          : inner.count(filter)
    }
  })

/** Requests that reach the slow count, from the auditor and from a clerk on her own events. */
const slowRequests = (): ReadonlyArray<Generated> =>
  Array.from({ length: 8 }, (_, index) => ({
    caller: index % 2 === 0 ? dana : alice,
    path: `/audit/changes/count?correlationId=${slowCorrelationId}${index % 2 === 0 ? "" : `&userId=${alice.userId}`}`,
    valid: false
  }))

// --- the matrix ---------------------------------------------------------------------------------------------------

/** What a request reads, for the policy. */
type Reading =
  | { readonly kind: "entity"; readonly aggregateType: string; readonly aggregateId: string }
  | { readonly kind: "activity"; readonly userId: string }
  | { readonly kind: "recent" }
  | {
      readonly kind: "filter"
      readonly count: boolean
      readonly userId?: string
      readonly aggregateType?: string
      readonly aggregateId?: string
    }
  | { readonly kind: "business" }
  | { readonly kind: "public" }

interface MatrixRequest {
  readonly path: string
  readonly reading: Reading
}

/** Who changed each entity, from the auditor's list. */
const participantsOf = (truth: ReadonlyArray<Seen>) => {
  const byEntity = new Map<string, Set<string>>()
  for (const event of truth) {
    const key = `${event.aggregateType}/${event.aggregateId}`
    const users = byEntity.get(key) ?? new Set<string>()
    users.add(event.userId)
    byEntity.set(key, users)
  }
  return (aggregateType: string, aggregateId: string, userId: string): boolean =>
    byEntity.get(`${aggregateType}/${aggregateId.toLowerCase()}`)?.has(userId) ?? false
}

/** The requests of the matrix: every endpoint, about every kind of object. */
const matrixRequests = (world: World): ReadonlyArray<MatrixRequest> => {
  const { organizations, commodities } = world
  const entities: ReadonlyArray<readonly [string, string]> = [
    ["organization", organizations.alice],
    ["organization", organizations.bob],
    ["organization", organizations.carol],
    ["organization", organizations.bob.toUpperCase()],
    ["commodity", commodities.alice],
    ["commodity", commodities.imported],
    ["audit", dana.userId!],
    ["organization", "0a0a0a0a-0000-4000-8000-000000000000"]
  ]
  const users = [...userIds, catalogImportUserId, alice.userId!.toUpperCase()]
  return [
    ...entities.map(([aggregateType, aggregateId]) => ({
      path: `/audit/aggregates/${aggregateType}/${aggregateId}?limit=500`,
      reading: { kind: "entity", aggregateType, aggregateId } as const
    })),
    ...users.map((userId) => ({
      path: `/audit/users/${userId}/activity?limit=500`,
      reading: { kind: "activity", userId } as const
    })),
    { path: "/audit/changes/recent?limit=500", reading: { kind: "recent" } },
    ...[false, true].flatMap((count) => {
      const base = count ? "/audit/changes/count" : "/audit/events?limit=500&"
      const at = (query: string) => (count ? `${base}${query === "" ? "" : `?${query}`}` : `${base}${query}`)
      return [
        { path: at(""), reading: { kind: "filter", count } as const },
        ...users.map((userId) => ({
          path: at(`userId=${userId}`),
          reading: { kind: "filter", count, userId } as const
        })),
        ...entities.map(([aggregateType, aggregateId]) => ({
          path: at(`aggregateType=${aggregateType}&aggregateId=${aggregateId}`),
          reading: { kind: "filter", count, aggregateType, aggregateId } as const
        })),
        { path: at(`aggregateId=${organizations.alice}`), reading: { kind: "filter", count } as const },
        { path: at("aggregateType=organization"), reading: { kind: "filter", count } as const },
        { path: at("eventType=organization.created"), reading: { kind: "filter", count } as const },
        { path: at("correlationId=seed-bob-create"), reading: { kind: "filter", count } as const },
        {
          path: at(`userId=${alice.userId}&aggregateType=organization&aggregateId=${organizations.bob}`),
          reading: {
            kind: "filter",
            count,
            userId: alice.userId!,
            aggregateType: "organization",
            aggregateId: organizations.bob
          } as const
        }
      ]
    }),
    { path: "/organizations", reading: { kind: "business" } },
    { path: `/organizations/${organizations.bob}`, reading: { kind: "business" } },
    { path: "/commodities", reading: { kind: "business" } },
    { path: `/commodities/${commodities.alice}`, reading: { kind: "business" } },
    { path: "/health", reading: { kind: "public" } }
  ]
}

/** Runs the matrix against the app in context and checks every answer against the policy. */
const runMatrix = Effect.gen(function* () {
  const world = yield* seedWorld
  const participated = participantsOf(world.truth)
  const failures = new Failures()
  const requests = matrixRequests(world)
  const cells = ApiServer.callers.flatMap((caller) => requests.map((request) => ({ caller, request })))
  const figures = { allowed: 0, forbidden: 0, unauthenticated: 0, events: 0 }

  const check = Effect.fnUntraced(function* (caller: ApiServer.Caller, request: MatrixRequest) {
    const answer = yield* ApiServer.get(request.path, caller, bound)
    const detail = describeCase(caller, request.path, answer)
    const self = caller.userId
    const auditor = caller.role === "auditor"
    const reading = request.reading
    const mayReadEntity = (aggregateType: string, aggregateId: string) =>
      auditor || aggregateType === "commodity" || (self !== undefined && participated(aggregateType, aggregateId, self))
    /** Whether the caller may see `event`. */
    const visible = (event: Seen) =>
      auditor || event.userId === self || mayReadEntity(event.aggregateType, event.aggregateId)
    const policy: "allowed" | "forbidden" | "unauthenticated" =
      reading.kind === "public"
        ? "allowed"
        : self === undefined
          ? "unauthenticated"
          : auditor || reading.kind === "business"
            ? "allowed"
            : reading.kind === "entity"
              ? mayReadEntity(reading.aggregateType, reading.aggregateId)
                ? "allowed"
                : "forbidden"
              : reading.kind === "activity"
                ? reading.userId.toLowerCase() === self
                  ? "allowed"
                  : "forbidden"
                : reading.kind === "recent"
                  ? "forbidden"
                  : reading.userId?.toLowerCase() === self ||
                      (reading.aggregateType !== undefined &&
                        reading.aggregateId !== undefined &&
                        mayReadEntity(reading.aggregateType, reading.aggregateId))
                    ? "allowed"
                    : "forbidden"
    figures[policy]++

    const succeeded = answer.status >= 200 && answer.status < 300
    if (policy !== "allowed" && succeeded) {
      // Counted, and then read on: what leaked is what the checks below find.
      failures.add("allowed where the policy forbids", detail)
    } else if (policy !== "allowed") {
      const [status, tag] = policy === "forbidden" ? [403, "Forbidden"] : [401, "Unauthenticated"]
      if (answer.status !== status) return failures.add("wrong refusal", `${detail} (the policy says ${status})`)
      const keys =
        Option.isSome(answer.body) && typeof answer.body.value === "object" && answer.body.value !== null
          ? Object.keys(answer.body.value).toSorted()
          : []
      const error = Option.flatMap(answer.body, decodeError)
      if (Option.isNone(error) || error.value._tag !== tag || keys.join(",") !== "_tag,message") {
        failures.add("refusal carries more than its error", detail)
      }
      return
    }
    if (answer.status !== 200)
      return failures.add(policy === "allowed" ? "refused where the policy allows" : "wrong refusal", detail)
    if (
      reading.kind !== "entity" &&
      reading.kind !== "activity" &&
      reading.kind !== "filter" &&
      reading.kind !== "recent"
    )
      return
    if (reading.kind === "filter" && reading.count) {
      const count = Option.flatMap(answer.body, decodeCount)
      if (Option.isNone(count)) return failures.add("malformed success", detail)
      if (auditor) return
      const matching = world.truth.filter(
        (event) =>
          (reading.userId === undefined || event.userId === reading.userId.toLowerCase()) &&
          (reading.aggregateType === undefined || event.aggregateType === reading.aggregateType) &&
          (reading.aggregateId === undefined || event.aggregateId === reading.aggregateId.toLowerCase())
      )
      if (count.value.count > matching.filter(visible).length) {
        failures.add("count beyond what it may see", `${detail} (it may see ${matching.filter(visible).length})`)
      }
      return
    }
    const page = Option.flatMap(answer.body, decodePage)
    if (Option.isNone(page)) return failures.add("malformed success", detail)
    for (const event of page.value.events) {
      figures.events++
      if (!visible(event)) {
        failures.add(
          "returned an event it may not see",
          `${detail}: ${event.aggregateType}/${event.aggregateId} by ${event.userId}`
        )
      }
      const outside =
        (reading.kind === "entity" &&
          (event.aggregateType !== reading.aggregateType || event.aggregateId !== reading.aggregateId.toLowerCase())) ||
        (reading.kind === "activity" && event.userId !== reading.userId.toLowerCase()) ||
        (reading.kind === "filter" &&
          ((reading.userId !== undefined && event.userId !== reading.userId.toLowerCase()) ||
            (reading.aggregateId !== undefined && event.aggregateId !== reading.aggregateId.toLowerCase())))
      if (outside)
        failures.add("returned an event outside its query", `${detail}: ${event.aggregateType}/${event.aggregateId}`)
    }
  })

  yield* Effect.forEach(cells, ({ caller, request }) => check(caller, request), { concurrency, discard: true })
  return {
    cases: cells.length,
    failures,
    note: `${ApiServer.callers.length} callers × ${requests.length} requests: ${figures.allowed} allowed, ${figures.forbidden} forbidden, ${figures.unauthenticated} unauthenticated; ${figures.events} events checked`
  }
})

// --- the event stream and the body limit ------------------------------------------------------------------------

/** What an SSE request came back with: its status, and the events read before the client hung up. */
interface StreamAnswer {
  readonly status: number
  readonly tag: string | undefined
  readonly ids: ReadonlyArray<string>
}

/**
 * Opens `GET /events/stream…` as `caller` and reads until `events` events have come (or the `retry:` line, when
 * `events` is 0), then hangs up; a refusal is read whole. A client that leaves early, as a reconnecting one does.
 */
const openStream = (caller: ApiServer.Caller, query: string, events: number, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const url = `${HttpServer.formatAddress(server.address)}/events/stream${query}`
    return yield* Effect.tryPromise({
      try: async (signal): Promise<StreamAnswer> => {
        const controller = new AbortController()
        signal.addEventListener("abort", () => controller.abort())
        const response = await fetch(url, {
          headers: {
            ...headers,
            ...(caller.authorization === undefined ? {} : { authorization: caller.authorization })
          },
          signal: controller.signal
        })
        if (!(response.headers.get("content-type") ?? "").includes("text/event-stream")) {
          const text = await response.text()
          return { status: response.status, tag: tagIn(text), ids: [] }
        }
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        let text = ""
        const ids: Array<string> = []
        while (events === 0 ? !text.includes("retry:") : ids.length < events) {
          const chunk = await reader.read()
          if (chunk.done) break
          text += decoder.decode(chunk.value, { stream: true })
          ids.splice(0, ids.length, ...[...text.matchAll(/^id: ?(.+)$/gm)].map((match) => match[1]!))
        }
        controller.abort()
        return { status: response.status, tag: undefined, ids }
      },
      catch: (error) => new StreamFailed({ message: String(error) })
    }).pipe(Effect.timeout(bound))
  })

class StreamFailed extends Data.TaggedError("StreamFailed")<{ readonly message: string }> {}

/** The `audit.read` records of the event stream, as the auditor counts them (a count is recorded too, not streamed). */
const streamReads = Effect.map(
  ApiServer.get("/audit/events?eventType=audit.read&order=desc&limit=200", dana, bound),
  (answer) =>
    Option.match(answer.body, {
      onNone: () => [],
      onSome: (body) =>
        Schema.decodeUnknownSync(Schema.Struct({ events: Schema.Array(Schema.Struct({ data: Schema.Unknown })) }))(
          body
        ).events.flatMap(({ data }) => {
          const read = data as {
            readonly endpoint?: string
            readonly returned?: number
            readonly parameters?: Record<string, unknown>
            readonly continued?: boolean
          }
          return read.endpoint === "eventStream" ? [read] : []
        })
    })
)

/** Sends `length` bytes declared by `Content-Length` but only a few of them, over a raw socket, and reads the answer. */
const declaredBody = (length: number) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const address = new URL(HttpServer.formatAddress(server.address))
    return yield* Effect.callback<{ readonly status: number; readonly text: string }, StreamFailed>((resume) => {
      const request = Http.request(
        {
          host: address.hostname,
          port: address.port,
          method: "POST",
          path: "/organizations",
          headers: { authorization: alice.authorization, "content-type": "application/json", "content-length": length }
        },
        (response) => {
          let text = ""
          response.on("data", (chunk: Buffer) => (text += chunk.toString()))
          response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, text })))
        }
      )
      request.on("error", (error) => resume(Effect.fail(new StreamFailed({ message: error.message }))))
      request.write('{"name":')
    }).pipe(Effect.timeout(bound))
  })

/** Posts a body of `size` bytes with no length, chunk by chunk. */
const chunkedBody = (size: number) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const url = `${HttpServer.formatAddress(server.address)}/organizations`
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024))
    return yield* Effect.tryPromise({
      try: async () => {
        let sent = 0
        const body = new ReadableStream<Uint8Array>({
          pull: (controller) => {
            if (sent >= size) return controller.close()
            sent += chunk.length
            controller.enqueue(chunk)
          }
        })
        const response = await fetch(url, {
          method: "POST",
          headers: { authorization: alice.authorization!, "content-type": "application/json" },
          body,
          duplex: "half"
        } as RequestInit)
        return { status: response.status, text: await response.text() }
      },
      catch: (error) => new StreamFailed({ message: String(error) })
    }).pipe(Effect.timeout(bound))
  })

/** The tag of a JSON error body. */
const tagIn = (text: string) => /"_tag":"([^"]+)"/.exec(text)?.[1]

const runStreamAndBodies = Effect.gen(function* () {
  const failures = new Failures()
  let cases = 0
  const expect = (label: string, ok: boolean, detail: string) => {
    cases++
    if (!ok) failures.add(label, detail)
  }
  yield* seedWorld

  // Last-Event-ID values that no server sent, in the header and in the query: each a typed 400, never a stream.
  const badIds = [
    "garbage",
    "annal.feed.v1:99999999999999:99999999999999",
    "annal.feed.v1:-1:0",
    "annal.feed.v1:0",
    // annal.feed.v2:99999999999:99999999999, in its encoding: a position past the feed's head.
    "YW5uYWwuZmVlZC52Mjo5OTk5OTk5OTk5OTo5OTk5OTk5OTk5OQ",
    "x".repeat(300),
    "%00",
    "annal.feed.v1:0:0;",
    // Lone surrogates have no UTF-8 form to send.
    ...fc.sample(hostileString, { numRuns: 24, seed }).filter((id) => id.isWellFormed())
  ]
  for (const id of badIds) {
    for (const [how, query, headers] of [
      ["query", `?lastEventId=${encodeURIComponent(id)}`, {}],
      ["header", "", { "last-event-id": id }]
    ] as const) {
      // A header value fetch cannot carry (beyond Latin-1, or a control character) never reaches a server.
      if (how === "header" && !/^[\x20-\x7e\x80-\xff]*$/.test(id)) continue
      const answer = yield* Effect.result(openStream(dana, query, 0, headers))
      if (answer._tag === "Failure") {
        expect(
          "stream refused without a typed answer",
          false,
          `${how} ${JSON.stringify(id)}: ${String(answer.failure)}`
        )
        continue
      }
      expect(
        "bad Last-Event-ID not a typed 400",
        answer.success.status === 400 && answer.success.tag === "InvalidRequest",
        `${how} ${JSON.stringify(id)}: ${answer.success.status} ${answer.success.tag}`
      )
    }
  }

  // Filters: a clerk's unrestricted stream is a 403, a malformed filter a 400, a restricted one streams.
  for (const [who, query, status] of [
    [alice, "", 403],
    [alice, `?userId=${alice.userId}`, 200],
    [alice, `?userId=${bob.userId}`, 403],
    [alice, "?eventType=NOT%20A%20TYPE", 400],
    [dana, `?aggregateType=organization&aggregateId=not-a-uuid`, 400],
    [dana, `?eventType=${Array.from({ length: 60 }, (_, n) => `a.t${n}`).join("&eventType=")}`, 400],
    [dana, "?correlationId=%00", 400],
    [ApiServer.caller("no token"), "", 401]
  ] as const) {
    const answer = yield* openStream(who, query, 0)
    expect("stream filter answered wrongly", answer.status === status, `${who.name} ${query}: ${answer.status}`)
  }

  // A reconnect flood: the auditor reconnects 30 times from the head, 8 at once, and each finds nothing new.
  const before = (yield* streamReads).length
  // annal.feed.v2:0:0, in its encoding: the start of the feed.
  const latest = yield* openStream(dana, "?lastEventId=YW5uYWwuZmVlZC52MjowOjA", 1)
  const flood = yield* Effect.forEach(
    Array.from({ length: 30 }, () => openStream(dana, "", 0)),
    (open) => open,
    { concurrency: 8 }
  )
  for (const answer of flood) {
    expect(
      "reconnect flood not a stream or a typed 429",
      answer.status === 200 || (answer.status === 429 && answer.tag === "TooManyStreams"),
      `${answer.status} ${answer.tag}`
    )
  }
  // The stream from the start delivered an event, and its read is recorded once the server sees it end (waited
  // for, not slept on); the flood delivered nothing, and so recorded nothing: one new record in all, that one's.
  // Only the auditor's streams are recorded, and this app is this test's own, so `before` is exact.
  const recorded = yield* streamReads.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (reads) => reads.length > before }),
    Effect.timeout(bound)
  )
  const [newest] = recorded
  expect(
    "a reconnect that delivered nothing was recorded, or a stream that delivered one was not",
    latest.ids.length === 1 &&
      recorded.length === before + 1 &&
      // What the server sent: at least what the client read before it hung up, and whatever was in flight to it.
      (newest?.returned ?? 0) >= 1 &&
      newest?.continued === true,
    JSON.stringify({ before, after: recorded.length, delivered: latest.ids.length, newest })
  )

  // Bodies over the 1 MiB limit: declared, declared and never sent, and chunked without a length.
  for (const [label, answer] of [
    ["declared 2 MiB", yield* declaredBody(2 * 1024 * 1024)],
    ["declared 8 GiB", yield* declaredBody(8 * 1024 ** 3)],
    ["chunked 3 MiB", yield* chunkedBody(3 * 1024 * 1024)],
    [
      "a whole 2 MiB JSON body",
      yield* ApiServer.send("POST", "/organizations", alice, {
        giveUpAfter: bound,
        body: { name: "x".repeat(2 * 1024 * 1024), type: "private_limited", email: "a@b.example", pan: "BIGGY1234B" }
      })
    ]
  ] as const) {
    expect(
      "oversized body not a typed 413",
      answer.status === 413 && tagIn(answer.text) === "InvalidRequest",
      `${label}: ${answer.status} ${answer.text.slice(0, 200)}`
    )
  }

  // Healthy after all of it: it answers, it streams again, and it writes.
  const health = yield* ApiServer.get("/health", alice, bound)
  expect("unhealthy after the run", health.status === 200, `${health.status} ${health.text}`)
  const again = yield* openStream(dana, "", 0)
  expect("no stream after the flood", again.status === 200, `${again.status} ${again.tag}`)
  const created = yield* ApiServer.send("POST", "/organizations", alice, {
    giveUpAfter: bound,
    body: { name: "After the run", type: "private_limited", email: "after@example.com", pan: "AFTER1234A" }
  })
  expect(
    "no write after the run",
    created.status === 201 || created.status === 200,
    `${created.status} ${created.text}`
  )
  return { cases, failures, note: `${badIds.length} bad ids × 2, 8 filters, 30 reconnects, 4 oversized bodies` }
})

// --- broken parts -------------------------------------------------------------------------------------------------

/** A cursor check whose refusal escapes as a raw defect, as a handler that forgot to map it would let it. */
const rawCursorRefusal = Layer.effect(
  PageCursor.PageCursor,
  Effect.gen(function* () {
    const inner = yield* PageCursor.PageCursor
    return PageCursor.PageCursor.of({
      sign: inner.sign,
      verify: (scope, cursor) => Effect.orDie(inner.verify(scope, cursor)),
      signAnchored: inner.signAnchored,
      verifyAnchored: (scope, cursor) => Effect.orDie(inner.verifyAnchored(scope, cursor))
    })
  })
).pipe(Layer.provide(PageCursor.layerRandom))

/** Request validation that answers every malformed request with a 500, as if its errors were the server's. */
const validationAs500 = HttpApiMiddleware.layerSchemaErrorTransform(RequestValidation.RequestValidation, (error) =>
  ApiError.internal("decoding the request", error)
)

/** An access policy that lets everyone read every entity. */
const allowEverything = AuditAccess.layer(() => Effect.succeed(true))

/**
 * Authentication that takes every caller of the audit API for an auditor, whatever its token's role: the audit
 * handlers' role checks are skipped in effect. (The business groups keep the real role, so that the clerks can still
 * write the seed.)
 */
const everyoneAnAuditor = Layer.effect(
  Authentication.Authentication,
  Effect.gen(function* () {
    const inner = yield* Authentication.Authentication
    return Authentication.Authentication.of({
      bearer: (httpEffect, options) =>
        inner.bearer(
          options.group.identifier === "audit"
            ? Effect.updateService(httpEffect, CurrentPrincipal, (principal) => ({ ...principal, role: "auditor" }))
            : httpEffect,
          options
        )
    })
  })
).pipe(Layer.provide(Authentication.layer))

// --- the tests ----------------------------------------------------------------------------------------------------

describe("reliability: hostile API input", () => {
  it.live(
    `5,000 generated filters, cursors, page sizes and time ranges: typed 400s, never a 500, each bounded (seed ${seed})`,
    (ctx) =>
      Effect.gen(function* () {
        const { failures, tally } = yield* runGenerated(5_000)
        yield* expectNone(ctx, 5_000, failures, noteOf(tally))
      }).pipe(Effect.provide(ApiServer.real))
  )

  it.live("a query that never ends is stopped by the request timeout: a typed 503 within the bound", (ctx) =>
    Effect.gen(function* () {
      const { failures, tally } = yield* runGenerated(300, slowRequests)
      if (tally.timedOut < slowRequests().length) failures.add("slow query not stopped", noteOf(tally))
      yield* expectNone(ctx, 308, failures, noteOf(tally))
    }).pipe(Effect.provide(ApiServer.variant({ store: slowStore, bounds: { requestTimeout: Duration.seconds(2) } })))
  )

  it.live("… and by PostgreSQL's statement timeout alone: its query_canceled is a typed 503, not a 500", (ctx) =>
    Effect.gen(function* () {
      const { failures, tally } = yield* runGenerated(300, slowRequests)
      if (tally.timedOut < slowRequests().length) failures.add("slow query not stopped", noteOf(tally))
      yield* expectNone(ctx, 308, failures, noteOf(tally))
    }).pipe(Effect.provide(ApiServer.variant({ store: slowStore, bounds: { statementTimeout: Duration.seconds(2) } })))
  )

  it.live("broken variant caught: no time bound, neither the request's nor the statement's", (ctx) =>
    Effect.gen(function* () {
      const { failures, tally } = yield* runGenerated(300, slowRequests)
      yield* expectCaught(ctx, 308, failures, ["unbounded"], noteOf(tally))
    }).pipe(Effect.provide(ApiServer.variant({ store: slowStore, bounds: {} })))
  )

  it.live("broken variant caught: a cursor check whose refusal escapes raw", (ctx) =>
    Effect.gen(function* () {
      const { failures, tally } = yield* runGenerated(1_000)
      yield* expectCaught(ctx, 1_000, failures, ["5xx"], noteOf(tally))
    }).pipe(Effect.provide(ApiServer.variant({ pageCursor: rawCursorRefusal })))
  )

  it.live("broken variant caught: request validation that answers 500", (ctx) =>
    Effect.gen(function* () {
      const { failures, tally } = yield* runGenerated(500)
      yield* expectCaught(ctx, 500, failures, ["5xx"], noteOf(tally))
    }).pipe(Effect.provide(ApiServer.variant({ requestValidation: validationAs500 })))
  )

  it.live("role × endpoint × object: no token reads data it must not", (ctx) =>
    Effect.gen(function* () {
      const { cases, failures, note } = yield* runMatrix
      yield* expectNone(ctx, cases, failures, note)
    }).pipe(Effect.provide(ApiServer.real))
  )

  it.live("broken variant caught: an access policy that allows everything", (ctx) =>
    Effect.gen(function* () {
      const { cases, failures, note } = yield* runMatrix
      yield* expectCaught(
        ctx,
        cases,
        failures,
        ["allowed where the policy forbids", "returned an event it may not see"],
        note
      )
    }).pipe(Effect.provide(ApiServer.variant({ access: allowEverything })))
  )

  it.live("broken variant caught: every principal taken for an auditor", (ctx) =>
    Effect.gen(function* () {
      const { cases, failures, note } = yield* runMatrix
      yield* expectCaught(
        ctx,
        cases,
        failures,
        ["allowed where the policy forbids", "returned an event it may not see", "count beyond what it may see"],
        note
      )
    }).pipe(Effect.provide(ApiServer.variant({ authentication: everyoneAnAuditor })))
  )

  it.live("the event stream and the body limit: bad ids, filters, a reconnect flood, oversized bodies", (ctx) =>
    Effect.gen(function* () {
      const { cases, failures, note } = yield* runStreamAndBodies
      yield* expectNone(ctx, cases, failures, note)
      // A stream learns that its client left when it next writes: a short heartbeat makes that soon.
    }).pipe(Effect.provide(ApiServer.realWith({ heartbeat: Duration.millis(200) })))
  )
})
