/**
 * The audit API's handlers, as the layer an application provides next to its own: `layer(Api, { registry })`,
 * where `Api` is the application's `HttpApi` with `AuditGroup` added and `registry` reads the application's events.
 *
 * Who may see what: an auditor reads everything, and each of their reads is recorded as an `audit.read` event
 * before the response is sent (no record, no data). Any other caller reads their own activity, and the history of
 * the aggregates `AuditAccess` lets them see; a count or a filtered list must be restricted to one of those. Nothing
 * here writes any other event.
 *
 * @since 0.1.0
 */
import {
  AuditService,
  type Event,
  EventEmitter,
  type EventRegistry,
  type EventStore,
  EventTable,
  Filter,
  Integrity
} from "@annal/core"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Forbidden, type InternalError, InvalidRequest, storage, type Timeout } from "./ApiError.ts"
import { AuditAccess, authorizeRestricted } from "./AuditAccess.ts"
import type { AuditApi, Verification } from "./AuditApi.ts"
import { defaultPageSize } from "./AuditApi.ts"
import * as AuditReadEvents from "./AuditRead.ts"
import { makeToAuditEvent, withAuditRead } from "./EventJson.ts"
import { PageCursor } from "./PageCursor.ts"
import { CurrentPrincipal, isAuditor, type Principal } from "./Principal.ts"

/** What the handlers need from the application. */
export interface Options {
  /** Reads the application's events; the audit API's own `audit.read` is added to it. */
  readonly registry: EventRegistry.EventRegistry<Event.Event>
}

/** A read's parameters, as recorded and as bound into its cursors. */
type Parameters = Record<string, string | ReadonlyArray<string> | undefined>

/**
 * The filters of `changes/count`, `events` and the event stream, as decoded from the query: the core's `Filter`,
 * `eventType` repeated.
 */
export interface FilterQuery extends Omit<Filter.Filter, "eventTypes"> {
  readonly eventType?: ReadonlyArray<string> | undefined
}

/** The most event types one filter may name. */
export const maxEventTypes = 50

/**
 * The Integrity service when the application serves one (the API works without it), checked to verify the table
 * the audit reads come from: a history of one table shown with another's verdict would be a false "verified", so a
 * mismatch stops the application when it starts. `reader` names the handlers in that message.
 */
export const integrityFor = Effect.fnUntraced(function* (audit: AuditService.AuditService["Service"], reader: string) {
  const integrity = yield* Effect.serviceOption(Integrity.Integrity)
  if (Option.isSome(integrity) && !EventTable.equals(integrity.value.table, audit.table)) {
    return yield* Effect.die(
      new Error(
        `${reader} reads ${audit.table.schema}.${audit.table.table} but Integrity verifies ` +
          `${integrity.value.table.schema}.${integrity.value.table.table}: give both layers the same table options`
      )
    )
  }
  return integrity
})

/** An aggregate's verification report, as the API answers it. */
export const toVerification = (report: Integrity.AggregateReport | Integrity.PageReport): typeof Verification.Type => ({
  scope: "fromVersion" in report ? "page" : "stream",
  verified: report.verified,
  events: report.events,
  page:
    "fromVersion" in report
      ? { fromVersion: report.fromVersion, toVersion: report.toVersion, anchor: report.anchor }
      : null,
  finding:
    report.finding === undefined
      ? null
      : {
          kind: report.finding.kind,
          streamVersion: report.finding.streamVersion,
          eventId: report.finding.eventId ?? null,
          detail: report.finding.detail
        },
  digest:
    report.digest === undefined
      ? null
      : {
          id: report.digest.id,
          checkpoint: report.digest.checkpoint,
          signedVersion: report.digest.signedVersion ?? null
        }
})

/**
 * The handlers, typed against `AuditApi`. At runtime they are built from the application's own API, whose audit
 * group may have been prefixed or annotated; the routes come from that group.
 */
const build = (api: typeof AuditApi, options: Options) =>
  HttpApiBuilder.group(api, "audit", (handlers) =>
    Effect.gen(function* () {
      const audit = yield* AuditService.AuditService
      const emitter = yield* EventEmitter.EventEmitter
      const access = yield* AuditAccess
      const integrity = yield* integrityFor(audit, "The audit API")
      const cursors = yield* PageCursor
      const registry = withAuditRead(options.registry)
      const toAuditEvent = makeToAuditEvent(registry)

      /**
       * Reads one page with `read` for the read `endpoint` with `parameters`: the signed `cursor` the caller sent is
       * verified against them and handed to `read` as the store's own, and the next page's is signed for them.
       */
      const readPage = Effect.fnUntraced(function* (
        endpoint: string,
        parameters: Parameters,
        page: { readonly limit?: number | undefined; readonly cursor?: string | undefined },
        read: (page: {
          readonly limit: number
          readonly cursor?: string
        }) => Effect.Effect<EventStore.Page<Event.Event>, EventStore.QueryError | EventRegistry.DecodeError>
      ) {
        const scope = scopeOf(endpoint, parameters)
        const position = page.cursor === undefined ? undefined : yield* cursors.verify(scope, page.cursor)
        const result = yield* read({
          limit: page.limit ?? defaultPageSize,
          ...(position === undefined ? {} : { cursor: position })
        }).pipe(Effect.catch(fromStoreError))
        const events = yield* Effect.forEach(result.events, toAuditEvent)
        const nextCursor = Option.isSome(result.nextCursor) ? yield* cursors.sign(scope, result.nextCursor.value) : null
        yield* recordRead(endpoint, parameters, page.cursor !== undefined, events.length)
        return { events, nextCursor }
      })

      /** Records an auditor's read; other callers' reads are not recorded. */
      const recordRead = Effect.fnUntraced(function* (
        endpoint: string,
        parameters: Parameters,
        continued: boolean,
        returned: number
      ) {
        const principal = yield* CurrentPrincipal
        yield* AuditReadEvents.record(emitter, principal, {
          endpoint,
          parameters: definedParameters(parameters),
          continued,
          returned
        })
      })

      return handlers
        .handle(
          "aggregateHistory",
          Effect.fn("AuditApi.aggregateHistory")(function* ({ params, query }) {
            yield* authorizeRestricted(
              access,
              yield* CurrentPrincipal,
              params,
              "You may not read the history of this aggregate"
            )
            const aggregateId = params.aggregateId.toLowerCase()
            const parameters = { aggregateType: params.aggregateType, aggregateId }
            const scope = scopeOf("aggregateHistory", parameters)
            const opened = query.cursor === undefined ? undefined : yield* cursors.verifyAnchored(scope, query.cursor)
            const anchor = opened?.anchor === undefined ? undefined : yield* decodeAnchor(opened.anchor)
            const result = yield* audit
              .getEntityHistory(registry, params.aggregateType, aggregateId, {
                limit: query.limit ?? defaultPageSize,
                ...(opened === undefined ? {} : { cursor: opened.position })
              })
              .pipe(Effect.catch(fromStoreError))
            const events = yield* Effect.forEach(result.events, toAuditEvent)
            // A continued page without an anchor follows a page that did not verify, or one verified in full: there
            // is nothing verified to continue from, so the whole stream is checked.
            const full = query.verify === "full" || (opened !== undefined && anchor === undefined)
            const checked = yield* Option.match(integrity, {
              onNone: () => Effect.succeed({ verification: null, last: undefined }),
              onSome: (service) =>
                (full
                  ? Effect.map(service.verifyAggregate(params.aggregateType, aggregateId), (report) => ({
                      verification: toVerification(report),
                      last: undefined
                    }))
                  : Effect.map(
                      service.verifyPage(params.aggregateType, aggregateId, {
                        events: result.events.map(({ eventId, streamVersion }) => ({ eventId, streamVersion })),
                        anchor
                      }),
                      (report) => ({ verification: toVerification(report), last: report.last })
                    )
                ).pipe(Effect.catch((error) => storage("verifying the aggregate's history", error)))
            })
            const nextCursor = Option.isNone(result.nextCursor)
              ? null
              : checked.last === undefined
                ? yield* cursors.sign(scope, result.nextCursor.value)
                : yield* cursors.signAnchored(scope, result.nextCursor.value, encodeAnchor(checked.last))
            yield* recordRead("aggregateHistory", parameters, query.cursor !== undefined, events.length)
            return { ...parameters, events, nextCursor, verification: checked.verification }
          })
        )
        .handle(
          "userActivity",
          Effect.fn("AuditApi.userActivity")(function* ({ params, query }) {
            const principal = yield* CurrentPrincipal
            const userId = params.userId.toLowerCase()
            if (!isAuditor(principal) && userId !== principal.userId) {
              return yield* new Forbidden({ message: "You may read only your own activity" })
            }
            return yield* readPage("userActivity", { userId }, query, (page) =>
              audit.getUserActivity(registry, userId, page)
            )
          })
        )
        .handle(
          "recentChanges",
          Effect.fn("AuditApi.recentChanges")(function* ({ query }) {
            const principal = yield* CurrentPrincipal
            if (!isAuditor(principal)) {
              return yield* new Forbidden({ message: "Only auditors read everyone's recent changes" })
            }
            const hours = query.hours ?? 24
            const { aggregateType } = query
            return yield* readPage("recentChanges", { hours: String(hours), aggregateType }, query, (page) =>
              audit.getRecentChanges(registry, {
                hours,
                ...(aggregateType === undefined ? {} : { aggregateType }),
                ...page
              })
            )
          })
        )
        .handle(
          "changeCount",
          Effect.fn("AuditApi.changeCount")(function* ({ query }) {
            const principal = yield* CurrentPrincipal
            const filter = yield* toFilter(query)
            yield* authorizeFilter(access, principal, query)
            const count = yield* audit.getChangeCount(filter).pipe(Effect.catch(fromStoreError))
            yield* recordRead("changeCount", filterParameters(query), false, count)
            return { count }
          })
        )
        .handle(
          "events",
          Effect.fn("AuditApi.events")(function* ({ query }) {
            const principal = yield* CurrentPrincipal
            const filter = yield* toFilter(query)
            yield* authorizeFilter(access, principal, query)
            const order = query.order ?? "asc"
            return yield* readPage("events", { ...filterParameters(query), order }, query, (page) =>
              audit.getEvents(registry, filter, { direction: order === "asc" ? "forward" : "backward", ...page })
            )
          })
        )
    })
  )

/** Fails unless `principal` may read a list, count or export restricted by `query`, as `/audit/events` decides. */
export const authorizeFilter = (
  access: AuditAccess["Service"],
  principal: Principal,
  query: FilterQuery
): Effect.Effect<void, Forbidden | InternalError | Timeout> =>
  authorizeRestricted(
    access,
    principal,
    query,
    "Only auditors read beyond their own events: restrict the query to userId=<your user id>, or to an " +
      "aggregateType and aggregateId you may see"
  )

/** The core's filter for a query, refusing what cannot be answered. */
export const toFilter = (query: FilterQuery): Effect.Effect<Filter.Filter, InvalidRequest> => {
  if (query.from !== undefined && query.to !== undefined && DateTime.isGreaterThan(query.from, query.to)) {
    return Effect.fail(InvalidRequest.field("query.from", "must not be after query.to"))
  }
  if (query.eventType !== undefined && query.eventType.length > maxEventTypes) {
    return Effect.fail(InvalidRequest.field("query.eventType", `names at most ${maxEventTypes} types`))
  }
  const { eventType, ...rest } = query
  return Effect.succeed(Filter.pick({ ...rest, eventTypes: eventType }))
}

/** The parameters of a filtered read, as recorded and bound into its cursors; ids in lowercase. */
export const filterParameters = (query: FilterQuery): Parameters => ({
  eventType: query.eventType,
  aggregateType: query.aggregateType,
  aggregateId: query.aggregateId?.toLowerCase(),
  userId: query.userId?.toLowerCase(),
  correlationId: query.correlationId,
  from: query.from === undefined ? undefined : DateTime.formatIso(query.from),
  to: query.to === undefined ? undefined : DateTime.formatIso(query.to)
})

/** The parameters that are set. */
export const definedParameters = (parameters: Parameters): Record<string, string | ReadonlyArray<string>> => {
  const result: Record<string, string | ReadonlyArray<string>> = {}
  for (const [key, value] of Object.entries(parameters)) if (value !== undefined) result[key] = value
  return result
}

/** A verified anchor as a cursor carries it: `version-hash`, both as the chain stores them. */
const encodeAnchor = (anchor: Integrity.Anchor): string => `${anchor.streamVersion}-${anchor.hash}`

const anchorPattern = /^(\d{1,10})-([0-9a-f]{64})$/

/** The anchor a cursor carries; only this server signs one, so another shape is refused as a foreign cursor. */
const decodeAnchor = (text: string): Effect.Effect<Integrity.Anchor, InvalidRequest> => {
  const match = anchorPattern.exec(text)
  return match === null
    ? Effect.fail(InvalidRequest.field("query.cursor", "is not a cursor this server issued for this query"))
    : Effect.succeed({ streamVersion: Number(match[1]), hash: match[2]! })
}

/** What a cursor is bound to: the endpoint and every parameter of the query, in a canonical order. */
const scopeOf = (endpoint: string, parameters: Parameters): string =>
  JSON.stringify([
    endpoint,
    Object.entries(definedParameters(parameters)).toSorted(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  ])

/**
 * The store's refusals as 400s; a statement the database cancelled as a 503 `Timeout`; its other failures, and rows
 * it cannot decode, as logged 500s.
 */
export const fromStoreError = (
  error: EventStore.QueryError | EventRegistry.DecodeError
): Effect.Effect<never, InvalidRequest | InternalError | Timeout> => {
  switch (error._tag) {
    case "InvalidQuery":
      return Effect.fail(InvalidRequest.field(`query.${error.field}`, error.reason))
    case "InvalidCursor":
      return Effect.fail(InvalidRequest.field("query.cursor", "is not a cursor this server issued for this query"))
    default:
      return storage("reading events", error)
  }
}

type Built = ReturnType<typeof build>

/** Nothing extra when the API's groups include the audit group (prefixed or not); an impossible type otherwise. */
type HasAuditGroup<Groups extends HttpApiGroup.Constraint> =
  "audit" extends HttpApiGroup.Identifier<Groups> ? unknown : { readonly "the API must include AuditGroup": never }

/** The handlers of `AuditGroup` in the application's `api`, which must include it. */
export const layer: <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups> & HasAuditGroup<Groups>,
  options: Options
) => Layer.Layer<HttpApiGroup.Service<Id, "audit">, Layer.Error<Built>, Layer.Services<Built>> =
  // `HttpApiBuilder.group` cannot resolve an endpoint's types in a generic set of groups, so the handlers are
  // checked against `AuditApi`. Any API that holds `AuditGroup` (prefixed or annotated by the application) has the
  // same endpoints under the same names and schemas, and the service the layer provides is keyed by the group's
  // identifier alone.
  build as unknown as <Id extends string, Groups extends HttpApiGroup.Constraint>(
    api: HttpApi.HttpApi<Id, Groups> & HasAuditGroup<Groups>,
    options: Options
  ) => Layer.Layer<HttpApiGroup.Service<Id, "audit">, Layer.Error<Built>, Layer.Services<Built>>
