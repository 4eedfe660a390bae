/**
 * The handlers of `AuditReportsGroup`: `layer(Api, { registry, projections })`, beside `AuditHandlers.layer`.
 *
 * Who may see what is the audit group's rule: an auditor reads everything, and each read is recorded as an
 * `audit.read` before the answer leaves; anyone else reads what `AuditAccess` lets them see of an aggregate.
 *
 * @since 0.1.0
 */
import { AuditService, EntityState, type Event, EventEmitter, type EventRegistry, Projection } from "@annal/core"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type InternalError, internal, InvalidRequest, NotFound, storage, type Timeout } from "./ApiError.ts"
import { AuditAccess, authorizeRestricted } from "./AuditAccess.ts"
import { defaultPageSize } from "./AuditApi.ts"
import { fromStoreError, integrityFor, toVerification } from "./AuditHandlers.ts"
import type { AuditReportsApi, EffectTree } from "./AuditReportsApi.ts"
import * as AuditReadEvents from "./AuditRead.ts"
import * as AuditCatalog from "./AuditCatalog.ts"
import * as AuditStats from "./AuditStats.ts"
import { makeToAuditEvent, withAuditRead } from "./EventJson.ts"
import { PageCursor } from "./PageCursor.ts"
import { CurrentPrincipal, isAuditor, type Principal } from "./Principal.ts"

/** What a registered projection answers: its state as JSON, and what it folded. */
interface Folded {
  readonly state: Schema.Json
  readonly streamVersion: number
  readonly events: number
}

/** A projection the application registered for one aggregate type, with the schema that encodes its state. */
export interface StateProjection {
  readonly aggregateType: string
  /** Folds the aggregate's history up to `asOf` with the projection, through the audit service. */
  readonly fold: (
    audit: AuditService.AuditService["Service"],
    registry: EventRegistry.EventRegistry<Event.Event>,
    aggregateId: string,
    asOf: DateTime.Utc
  ) => Effect.Effect<Folded, InternalError | InvalidRequest | Timeout>
}

/**
 * Registers `projection` as how aggregates of `aggregateType` are folded into state; `state` encodes its state to
 * JSON. The registry's events are `E`: the projection is handed the events the application's registry decodes.
 */
export const stateProjection = <S, E extends Event.Event>(
  aggregateType: string,
  projection: Projection.Projection<S, E>,
  state: Schema.Codec<S, unknown>
): StateProjection => {
  const encode = Schema.encodeUnknownEffect(state)
  // The fold counts what it folded beside the application's state, so the answer says up to where it read.
  const counted = Projection.make({
    initial: { state: projection.initial, streamVersion: 0, events: 0 },
    apply: (folded: { readonly state: S; readonly streamVersion: number; readonly events: number }, event: E) => ({
      state: projection.apply(folded.state, event),
      streamVersion: event.streamVersion,
      events: folded.events + 1
    })
  })
  return {
    aggregateType,
    fold: (audit, registry, aggregateId, asOf) =>
      // The application's registry decodes its own union `E`, which the options widen to `Event`.
      audit
        .getEntityStateAsOf(registry as EventRegistry.EventRegistry<E>, aggregateType, aggregateId, {
          projection: counted,
          asOf
        })
        .pipe(
          Effect.catch(fromStoreError),
          Effect.flatMap((folded) =>
            encode(folded.state).pipe(
              Effect.flatMap(Schema.decodeUnknownEffect(Schema.Json)),
              Effect.map((json) => ({ state: json, streamVersion: folded.streamVersion, events: folded.events })),
              Effect.catch((error) => internal(`encoding the ${aggregateType} projection's state`, error))
            )
          )
        )
  }
}

/** What the handlers need from the application. */
export interface Options {
  /** Reads the application's events, as `AuditHandlers.layer` takes it. */
  readonly registry: EventRegistry.EventRegistry<Event.Event>
  /** The projections by which aggregates of their types are folded; any other type is rebuilt by the conventions. */
  readonly projections?: ReadonlyArray<StateProjection> | undefined
}

const build = (api: typeof AuditReportsApi, options: Options) =>
  HttpApiBuilder.group(api, "auditReports", (handlers) =>
    Effect.gen(function* () {
      const audit = yield* AuditService.AuditService
      const emitter = yield* EventEmitter.EventEmitter
      const access = yield* AuditAccess
      const integrity = yield* integrityFor(audit, "The audit reports")
      const cursors = yield* PageCursor
      const registry = withAuditRead(options.registry)
      const toAuditEvent = makeToAuditEvent(registry)
      const projections = new Map<string, StateProjection>()
      for (const registered of options.projections ?? []) {
        if (projections.has(registered.aggregateType)) {
          return yield* Effect.die(new Error(`Two state projections for ${registered.aggregateType}`))
        }
        projections.set(registered.aggregateType, registered)
      }

      const verify = (aggregateType: string, aggregateId: string) =>
        Option.match(integrity, {
          onNone: () => Effect.succeed(null),
          onSome: (service) =>
            service.verifyAggregate(aggregateType, aggregateId).pipe(
              Effect.map(toVerification),
              Effect.catch((error) => storage("verifying the aggregate's history", error))
            )
        })

      /** The conventions' fold over the JSON of each event's current version, read in constant memory. */
      const rebuild = (aggregateType: string, aggregateId: string, asOf: DateTime.Utc) =>
        audit.streamEntityHistory(registry, aggregateType, aggregateId, { asOf }).pipe(
          Stream.catch((error) => Stream.fromEffect(fromStoreError(error))),
          Stream.mapEffect(toAuditEvent),
          Stream.runFold(() => EntityState.initial, EntityState.apply)
        )

      /**
       * Whether `principal` may see one event, as `/audit/events` decides for a list: an auditor any; anyone else
       * their own, and those of an aggregate the access policy lets them read (asked once per aggregate).
       */
      const visibility = (principal: Principal) => {
        const aggregates = new Map<string, boolean>()
        return (event: Event.Event): Effect.Effect<boolean, InternalError | Timeout> => {
          if (isAuditor(principal) || event.userId === principal.userId) return Effect.succeed(true)
          const key = `${event.aggregateType}/${event.aggregateId}`
          const known = aggregates.get(key)
          if (known !== undefined) return Effect.succeed(known)
          return access.canReadAggregate(principal, event.aggregateType, event.aggregateId).pipe(
            Effect.tap((allowed) => Effect.sync(() => aggregates.set(key, allowed))),
            Effect.catch((error) => storage("checking access", error))
          )
        }
      }

      /** The tree as JSON, without what `visible` hides (an event and everything below it); and how many it holds. */
      const toTree = (
        tree: AuditService.EffectTree<Event.Event>,
        visible: (event: Event.Event) => Effect.Effect<boolean, InternalError | Timeout>
      ): Effect.Effect<{ readonly tree: EffectTree; readonly size: number }, InternalError | Timeout> =>
        Effect.gen(function* () {
          const event = yield* toAuditEvent(tree.event)
          const effects: Array<EffectTree> = []
          let size = 1
          for (const child of tree.effects) {
            if (!(yield* visible(child.event))) continue
            const converted = yield* toTree(child, visible)
            effects.push(converted.tree)
            size += converted.size
          }
          return { tree: { event, effects }, size }
        })

      return handlers
        .handle("stats", AuditStats.handler(audit, emitter))
        .handle("catalog", AuditCatalog.handler(options.registry))
        .handle(
          "correlation",
          Effect.fn("AuditApi.correlation")(function* ({ params, query }) {
            const principal = yield* CurrentPrincipal
            const scope = JSON.stringify(["correlation", params.correlationId])
            const position = query.cursor === undefined ? undefined : yield* cursors.verify(scope, query.cursor)
            const page = yield* audit
              .getCorrelation(registry, params.correlationId, {
                limit: query.limit ?? defaultPageSize,
                ...(position === undefined ? {} : { cursor: position })
              })
              .pipe(Effect.catch(fromStoreError))
            const visible = visibility(principal)
            const shown = yield* Effect.filter(page.events, visible)
            const events = yield* Effect.forEach(shown, toAuditEvent)
            const nextCursor = Option.isSome(page.nextCursor) ? yield* cursors.sign(scope, page.nextCursor.value) : null
            yield* AuditReadEvents.record(emitter, principal, {
              endpoint: "correlation",
              parameters: { correlationId: params.correlationId },
              continued: query.cursor !== undefined,
              returned: events.length
            })
            return { events, nextCursor }
          })
        )
        .handle(
          "effects",
          Effect.fn("AuditApi.effects")(function* ({ params, query }) {
            const principal = yield* CurrentPrincipal
            const eventId = params.eventId.toLowerCase()
            const found = yield* audit
              .getEffects(registry, eventId, {
                ...(query.maxDepth === undefined ? {} : { maxDepth: query.maxDepth }),
                ...(query.maxEvents === undefined ? {} : { maxEvents: query.maxEvents })
              })
              .pipe(
                Effect.catch((error) =>
                  error._tag === "EffectsTooLarge"
                    ? Effect.fail(
                        InvalidRequest.field(
                          `query.${error.bound}`,
                          `what the event caused goes beyond ${error.limit}; ask for more (up to ${
                            error.bound === "maxDepth" ? AuditService.maxEffectsDepth : AuditService.maxEffectsEvents
                          })`
                        )
                      )
                    : fromStoreError(error)
                )
              )
            const visible = visibility(principal)
            // An event the caller may not see is answered as one that does not exist: a 403 would say it does.
            if (Option.isNone(found) || !(yield* visible(found.value.event))) {
              return yield* new NotFound({ message: `No event ${eventId} that you may read` })
            }
            const { tree, size } = yield* toTree(found.value, visible)
            yield* AuditReadEvents.record(emitter, principal, {
              endpoint: "effects",
              parameters: {
                eventId,
                ...(query.maxDepth === undefined ? {} : { maxDepth: String(query.maxDepth) }),
                ...(query.maxEvents === undefined ? {} : { maxEvents: String(query.maxEvents) })
              },
              continued: false,
              returned: size
            })
            return tree
          })
        )
        .handle(
          "aggregateState",
          Effect.fn("AuditApi.aggregateState")(function* ({ params, query }) {
            const principal = yield* CurrentPrincipal
            yield* authorizeRestricted(access, principal, params, "You may not read the history of this aggregate")
            const aggregateId = params.aggregateId.toLowerCase()
            const registered = projections.get(params.aggregateType)
            const answer =
              registered === undefined
                ? yield* Effect.map(rebuild(params.aggregateType, aggregateId, query.asOf), (state) => ({
                    rebuiltWith: "conventions" as const,
                    state: state.status === "absent" && state.events === state.ignored ? null : state.fields,
                    status: state.status,
                    streamVersion: state.streamVersion,
                    events: state.events,
                    ignored: state.ignored
                  }))
                : yield* Effect.map(registered.fold(audit, registry, aggregateId, query.asOf), (folded) => ({
                    rebuiltWith: "projection" as const,
                    ...folded,
                    status: null,
                    ignored: null
                  }))
            const verification = yield* verify(params.aggregateType, aggregateId)
            yield* AuditReadEvents.record(emitter, principal, {
              endpoint: "aggregateState",
              parameters: {
                aggregateType: params.aggregateType,
                aggregateId,
                asOf: DateTime.formatIso(query.asOf)
              },
              continued: false,
              returned: answer.events
            })
            return {
              aggregateType: params.aggregateType,
              aggregateId,
              asOf: query.asOf,
              ...answer,
              verification
            }
          })
        )
    })
  )

type Built = ReturnType<typeof build>

/** Nothing extra when the API's groups include the reports group; an impossible type otherwise. */
type HasReportsGroup<Groups extends HttpApiGroup.Constraint> =
  "auditReports" extends HttpApiGroup.Identifier<Groups>
    ? unknown
    : { readonly "the API must include AuditReportsGroup": never }

/** The handlers of `AuditReportsGroup` in the application's `api`, which must include it. */
export const layer: <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups> & HasReportsGroup<Groups>,
  options: Options
) => Layer.Layer<HttpApiGroup.Service<Id, "auditReports">, Layer.Error<Built>, Layer.Services<Built>> =
  // As `AuditHandlers.layer`: the handlers are checked against `AuditReportsApi`, whose group any API holding
  // `AuditReportsGroup` shares, endpoint for endpoint.
  build as unknown as <Id extends string, Groups extends HttpApiGroup.Constraint>(
    api: HttpApi.HttpApi<Id, Groups> & HasReportsGroup<Groups>,
    options: Options
  ) => Layer.Layer<HttpApiGroup.Service<Id, "auditReports">, Layer.Error<Built>, Layer.Services<Built>>
