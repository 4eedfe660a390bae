/**
 * The audit trail delivered live over Server-Sent Events: `GET /events/stream`, an `HttpApiGroup` an application adds
 * to its `HttpApi` next to the audit group, and its handler as a layer, `layer(Api, { registry })`, which needs the
 * core's `Feed`. It takes the filters of `GET /audit/events` but the time range (`eventType`, repeatable,
 * `aggregateType`, `aggregateId`, `userId`, `correlationId`), and the same bearer tokens and rules: an auditor streams
 * everything, and the opening of each auditor's stream is recorded as an `audit.read` before anything is sent; anyone
 * else must restrict the stream to their own `userId`, or to an `aggregateType` and `aggregateId` `AuditAccess` lets them
 * read.
 *
 * Each message is one event: `id:` is its feed checkpoint, `event:` its event type (so that an `EventSource` listens
 * per type; the type is in the data too), `data:` the event as the audit API's `AuditEvent` JSON. A client that
 * reconnects with `Last-Event-ID` (or `?lastEventId=`, for clients that cannot set headers) gets everything after
 * that event, read from the database, then what follows live: the feed reads in commit order and never skips an
 * event, so nothing is lost between two connections and nothing comes twice. Without one the stream starts at the
 * feed's head: it delivers what happens from now on, as a live view should; history is what `GET /audit/events`
 * pages through.
 *
 * A connection holds at most about twice `bufferSize` events in memory (a full buffer, and the batch being written
 * to the socket): the feed reads only when there is room, so catching up waits for the socket instead of piling up. A client that leaves the buffer full for `slowClientTimeout` (it reads
 * nothing, or less than is written) is disconnected; it reconnects with its last id and loses nothing. Each user
 * holds at most `maxConnectionsPerUser` streams (429 `TooManyStreams` beyond), and an idle stream sends a comment
 * every `heartbeat`, so that proxies and clients see the connection alive. When the server begins to drain
 * (`Lifecycle.drain`), every stream ends at once and cleanly, and its client resumes elsewhere with its last id.
 *
 * @since 0.1.0
 */
import { Checkpoint, type Event, EventContext, EventEmitter, type EventRegistry, Feed, type Filter } from "@annal/core"
import type * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Sse from "effect/encoding/Sse"
import * as Fiber from "effect/Fiber"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as HttpApi from "effect/http-api/HttpApi"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ApiGroup from "./ApiGroup.ts"
import { Forbidden, InternalError, InvalidRequest, storage, type Timeout } from "./ApiError.ts"
import { AuditAccess, authorizeRestricted } from "./AuditAccess.ts"
import { AuditEvent, eventsQuery } from "./AuditApi.ts"
import { definedParameters, filterParameters, toFilter } from "./AuditHandlers.ts"
import * as AuditRead from "./AuditRead.ts"
import * as EventJson from "./EventJson.ts"
import * as Lifecycle from "./Lifecycle.ts"
import { CurrentPrincipal } from "./Principal.ts"

/** The defaults of the limits `Options` sets. */
export const defaultMaxConnectionsPerUser = 5
export const defaultBufferSize = 256
export const defaultSlowClientTimeout: Duration.Duration = Duration.seconds(5)
export const defaultHeartbeat: Duration.Duration = Duration.seconds(15)
export const defaultRetry: Duration.Duration = Duration.seconds(3)

/** An event id the stream sent, handed back to resume after it. */
export const EventId = Schema.String.check(Schema.isMaxLength(512, { message: "is not an event id" }))

/** The query parameters of `GET /events/stream`: the filters of `GET /audit/events` but time, and a resume point. */
export const streamQuery = {
  eventType: eventsQuery.eventType,
  aggregateType: eventsQuery.aggregateType,
  aggregateId: eventsQuery.aggregateId,
  userId: eventsQuery.userId,
  correlationId: eventsQuery.correlationId,
  /** The `Last-Event-ID`, for clients that cannot set headers; the header wins when both are sent. */
  lastEventId: Schema.optional(EventId)
}

/** One message of the stream: the event's checkpoint, its type, and the event. */
export const StreamMessage = Schema.Struct({
  id: Schema.String,
  event: Schema.String,
  data: Schema.fromJsonString(Schema.toCodecJson(AuditEvent))
}).annotate({ identifier: "StreamMessage" })

/** The caller already holds as many streams as a user may. */
export class TooManyStreams extends Schema.TaggedError<TooManyStreams>("@annal/http/TooManyStreams")(
  "TooManyStreams",
  { message: Schema.String, limit: Schema.Int },
  { httpApiStatus: 429, description: "The user holds as many event streams as allowed; close one first" }
) {}

/** The event stream group, authenticated by bearer token, with typed 400s for malformed requests. */
export class EventStreamGroup extends HttpApiGroup.make("eventStream")
  .add(
    HttpApiEndpoint.get("stream", "/stream", {
      query: streamQuery,
      headers: { "last-event-id": Schema.optional(EventId) },
      success: HttpApiSchema.StreamSse({ events: StreamMessage }),
      error: [Forbidden, TooManyStreams, InternalError]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Events as they happen",
        description:
          "Server-Sent Events: each message's `id` is the event's feed checkpoint, its `event` the event type and " +
          "its `data` the event. Filters as for `GET /audit/events`, without the time range. Starts at the events " +
          "committed from now on, or after the `Last-Event-ID` header (or `lastEventId`) of a reconnecting client. " +
          "Users stream their own events or those of an aggregate they may see; auditors stream anything."
      })
    )
  )
  // The time bound covers opening the stream (access checks, recording the read), not the stream itself.
  .pipe(ApiGroup.guard("/events"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Event stream",
      description: "The audit trail live, over Server-Sent Events, with the audit API's filters and access rules."
    })
  ) {}

/** The event stream on its own, to build the handler against, or for an application that serves nothing else. */
export class EventStreamApi extends HttpApi.make("annal-event-stream")
  .add(EventStreamGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal event stream", version: "0.1.0" })) {}

/** What the handler needs from the application, and the limits of its streams. */
export interface Options {
  /** Reads the application's events; the audit API's own `audit.read` is added to it. */
  readonly registry: EventRegistry.EventRegistry<Event.Event>
  /** How many streams one user may hold open at once (default 5). */
  readonly maxConnectionsPerUser?: number | undefined
  /** How many events may wait for one client (default 256). */
  readonly bufferSize?: number | undefined
  /** How long a client may leave its buffer full before it is disconnected (default 5 seconds). */
  readonly slowClientTimeout?: Duration.Input | undefined
  /** How long a stream may be silent before it sends a `: keep-alive` comment (default 15 seconds). */
  readonly heartbeat?: Duration.Input | undefined
  /** The reconnection delay the stream asks clients for with `retry:` (default 3 seconds). */
  readonly retry?: Duration.Input | undefined
  /** How often the feed looks for new events when no commit notification wakes it (the feed's default, 1 second). */
  readonly pollInterval?: Duration.Input | undefined
}

/**
 * The open event streams of this process, in Effect's metric registry (`annal_sse_connections`): one per slot held,
 * from the moment a stream is admitted until its request ends.
 */
export const connectionsMetric: Metric.Gauge<number> = Metric.gauge("annal_sse_connections", {
  description: "Open event streams (GET /events/stream)"
})

/** The comment an idle stream sends. */
export const keepAlive = ": keep-alive\n\n"

/** The handler, typed against `EventStreamApi`; at runtime it is built from the application's own API. */
const build = (api: typeof EventStreamApi, options: Options) =>
  HttpApiBuilder.group(api, "eventStream", (handlers) =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const emitter = yield* EventEmitter.EventEmitter
      const access = yield* AuditAccess
      const lifecycle = yield* Lifecycle.Lifecycle
      const registry = EventJson.withAuditRead(options.registry)
      const toAuditEvent = EventJson.makeToAuditEvent(registry)
      const limits = yield* validateOptions(options)
      const connections = yield* Ref.make<ReadonlyMap<string, number>>(new Map())

      /** Takes one of the user's connection slots for as long as the request's scope lasts, or fails with 429. */
      const holdSlot = (userId: string) =>
        Effect.acquireRelease(
          Ref.modify(connections, (open): readonly [boolean, ReadonlyMap<string, number>] => {
            const count = open.get(userId) ?? 0
            return count >= limits.maxConnectionsPerUser ? [false, open] : [true, new Map(open).set(userId, count + 1)]
          }).pipe(Effect.tap((taken) => (taken ? Metric.modify(connectionsMetric, 1) : Effect.void))),
          (taken) =>
            taken
              ? Ref.update(connections, (open) => {
                  const next = new Map(open)
                  const count = (next.get(userId) ?? 1) - 1
                  if (count <= 0) next.delete(userId)
                  else next.set(userId, count)
                  return next
                }).pipe(Effect.andThen(Metric.modify(connectionsMetric, -1)))
              : Effect.void
        ).pipe(
          Effect.flatMap((taken) =>
            taken
              ? Effect.void
              : Effect.fail(
                  new TooManyStreams({
                    message: `You hold ${limits.maxConnectionsPerUser} event streams already; close one first`,
                    limit: limits.maxConnectionsPerUser
                  })
                )
          )
        )

      /** The stream's messages, as text: the feed from `after`, through a bounded buffer, with heartbeats. */
      const messages = (
        after: Checkpoint.Checkpoint,
        filter: Filter.Filter
      ): Stream.Stream<string, InternalError | Timeout> => {
        const entries = feed
          .stream(registry, {
            after,
            ...filter,
            live: true,
            ...(limits.pollInterval === undefined ? {} : { pollInterval: limits.pollInterval })
          })
          .pipe(
            Stream.catch((error) => Stream.fromEffect(storage("reading the feed", error))),
            Stream.mapEffect((entry) =>
              toAuditEvent(entry.event).pipe(
                Effect.flatMap((event) =>
                  EventJson.encodeText(event).pipe(
                    Effect.catch((error) => storage(`encoding event ${event.eventId}`, error))
                  )
                ),
                Effect.map((data) =>
                  Sse.encoder.write({
                    _tag: "Event",
                    id: Checkpoint.encode(entry.checkpoint),
                    event: entry.event.eventType,
                    data
                  })
                )
              )
            ),
            // The server is stopping: the stream ends now, cleanly, once what is buffered is written, rather than
            // holding the shutdown until it is cut; the client reconnects with its last id to a server still running.
            // (Here, before the buffer, so that a slow client is still dropped from the fiber that writes to it.)
            Stream.interruptWhen(lifecycle.draining)
          )
        return buffered(entries, {
          bufferSize: limits.bufferSize,
          slowClientTimeout: limits.slowClientTimeout,
          heartbeat: limits.heartbeat,
          keepAlive
        })
      }

      return handlers.handleRaw(
        "stream",
        Effect.fn("EventStream.stream")(function* ({ query, headers }) {
          const principal = yield* CurrentPrincipal
          const filter = yield* toFilter(query)
          const [field, lastEventId] =
            headers["last-event-id"] !== undefined
              ? (["header.last-event-id", headers["last-event-id"]] as const)
              : (["query.lastEventId", query.lastEventId] as const)
          const resumeFrom =
            lastEventId === undefined
              ? undefined
              : yield* feed.resolve(lastEventId).pipe(
                  Effect.catchTags({
                    InvalidCursor: () =>
                      Effect.fail(InvalidRequest.field(field, "is not an event id this server sent")),
                    StorageError: (error) => storage("resolving Last-Event-ID", error)
                  })
                )
          yield* authorizeRestricted(
            access,
            principal,
            query,
            "Only auditors stream everyone's events: restrict the stream to userId=<your user id>, or to an " +
              "aggregateType and aggregateId you may see"
          )
          yield* holdSlot(principal.userId)
          const after =
            resumeFrom ?? (yield* feed.head.pipe(Effect.catch((error) => storage("reading the feed's head", error))))
          // The body is read after this handler returns, outside the request's event context: it takes it along, so
          // that a failure mid-stream is logged with the request's correlation id, and the read is recorded as the
          // request's.
          const eventContext = yield* EventContext.EventContext
          // What an auditor's stream read is known when it ends: it is recorded then, with where it started and how
          // many events it sent; a stream that sent nothing (a reconnect that found nothing new) records nothing.
          // The context is provided to the record itself, not only around the stream: a finalizer runs in the
          // context of the fiber that closes the stream's scope, and a stream interrupted while its consumer waits
          // on the socket (a client that hung up or is dropped) is closed from outside it, where there is no user.
          const sent = yield* Ref.make(0)
          const recordRead = Effect.flatMap(Ref.get(sent), (returned) =>
            returned === 0
              ? Effect.void
              : AuditRead.record(emitter, principal, {
                  endpoint: "eventStream",
                  parameters: { ...definedParameters(filterParameters(query)), after: Checkpoint.encode(after) },
                  continued: resumeFrom !== undefined,
                  returned
                })
          ).pipe(
            Effect.catchCause((cause) => Effect.logError("recording an auditor's stream failed", cause)),
            Effect.provideService(EventContext.EventContext, eventContext)
          )
          const body = Stream.concat(
            Stream.succeed(Sse.encoder.write(new Sse.Retry({ duration: limits.retry, lastEventId: undefined }))),
            messages(after, filter).pipe(
              Stream.tap((message) => (message === keepAlive ? Effect.void : Ref.update(sent, (n) => n + 1))),
              // A failure mid-stream (the database went away) was logged: the response ends, and the client
              // reconnects with its last id.
              Stream.catch(() => Stream.empty),
              Stream.ensuring(recordRead),
              Stream.provideService(EventContext.EventContext, eventContext)
            )
          )
          return HttpServerResponse.stream(Stream.encodeText(body), {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
          })
        })
      )
    })
  )

/**
 * `source` through a buffer of `bufferSize` elements, filled ahead of the consumer: the source is read only while
 * there is room, so a burst waits in the buffer and a backlog waits in the source. When the buffer stays full for
 * `slowClientTimeout` the consumer is dropped: the fiber that pulls this stream is interrupted, which for a response
 * body closes the connection (a client that reads nothing blocks that fiber in its socket write, where nothing but
 * an interruption reaches it), and the source is read no further. The consumer takes what is buffered in one batch,
 * so a stalled consumer holds at most two buffers' worth. After `heartbeat` without an element, `keepAlive` is
 * emitted.
 */
export const buffered = <A, E>(
  source: Stream.Stream<A, E>,
  options: {
    readonly bufferSize: number
    readonly slowClientTimeout: Duration.Input
    readonly heartbeat: Duration.Input
    readonly keepAlive: A
  }
): Stream.Stream<A, E> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const consumer = yield* Effect.withFiber((fiber) => Effect.succeed(fiber))
      const queue = yield* Queue.bounded<A, E | Cause.Done>(options.bufferSize)
      // The consumer is gone: stop reading. Its fiber is interrupted from another one, as interrupting it waits for
      // this one, which its scope interrupts.
      const drop = Queue.end(queue).pipe(
        Effect.andThen(Effect.forkDetach(Fiber.interrupt(consumer))),
        Effect.andThen(Effect.interrupt)
      )
      yield* source.pipe(
        Stream.runForEach((element) =>
          Queue.offer(queue, element).pipe(
            Effect.timeoutOption(options.slowClientTimeout),
            Effect.flatMap((offered) => (Option.isSome(offered) ? Effect.void : drop))
          )
        ),
        Effect.matchCauseEffect({
          onSuccess: () => Queue.end(queue),
          onFailure: (cause) => Queue.failCause(queue, cause)
        }),
        Effect.forkScoped
      )
      const next = Queue.takeAll(queue).pipe(
        Effect.timeoutOption(options.heartbeat),
        Effect.map(Option.getOrElse((): ReadonlyArray<A> => [options.keepAlive]))
      )
      return Stream.fromEffectRepeat(next).pipe(Stream.flattenIterable)
    })
  )

/** The limits, checked once when the layer is built: a bad one is the application's defect. */
const validateOptions = (options: Options) =>
  Effect.gen(function* () {
    return {
      maxConnectionsPerUser: yield* positiveInteger(
        "maxConnectionsPerUser",
        options.maxConnectionsPerUser ?? defaultMaxConnectionsPerUser
      ),
      bufferSize: yield* positiveInteger("bufferSize", options.bufferSize ?? defaultBufferSize),
      slowClientTimeout: yield* positiveDuration(
        "slowClientTimeout",
        options.slowClientTimeout ?? defaultSlowClientTimeout
      ),
      heartbeat: yield* positiveDuration("heartbeat", options.heartbeat ?? defaultHeartbeat),
      retry: yield* positiveDuration("retry", options.retry ?? defaultRetry),
      pollInterval:
        options.pollInterval === undefined ? undefined : yield* positiveDuration("pollInterval", options.pollInterval)
    }
  })

const positiveInteger = (name: string, value: number): Effect.Effect<number> =>
  Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.die(new Error(`EventStream: ${name} must be a positive integer, got ${value}`))

const positiveDuration = (name: string, input: Duration.Input): Effect.Effect<Duration.Duration> =>
  Option.match(Duration.fromInput(input), {
    onNone: () => Effect.die(new Error(`EventStream: ${name} is not a duration`)),
    onSome: (value) =>
      Duration.toMillis(value) > 0
        ? Effect.succeed(value)
        : Effect.die(new Error(`EventStream: ${name} must be positive`))
  })

type Built = ReturnType<typeof build>

/** Nothing extra when the API's groups include the event stream group; an impossible type otherwise. */
type HasEventStreamGroup<Groups extends HttpApiGroup.Constraint> =
  "eventStream" extends HttpApiGroup.Identifier<Groups>
    ? unknown
    : { readonly "the API must include EventStreamGroup": never }

/**
 * The handler of `EventStreamGroup` in the application's `api`, which must include it: for an application that
 * documents the stream in its own OpenAPI document.
 */
export const handlers: <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups> & HasEventStreamGroup<Groups>,
  options: Options
) => Layer.Layer<HttpApiGroup.Service<Id, "eventStream">, Layer.Error<Built>, Layer.Services<Built>> =
  // As in `AuditHandlers.layer`: `HttpApiBuilder.group` cannot resolve an endpoint's types in a generic set of
  // groups, so the handler is checked against `EventStreamApi`. Any API that holds `EventStreamGroup` has the same
  // endpoint under the same name and schemas, and the service the layer provides is keyed by the group's identifier.
  build as unknown as <Id extends string, Groups extends HttpApiGroup.Constraint>(
    api: HttpApi.HttpApi<Id, Groups> & HasEventStreamGroup<Groups>,
    options: Options
  ) => Layer.Layer<HttpApiGroup.Service<Id, "eventStream">, Layer.Error<Built>, Layer.Services<Built>>

/**
 * `GET /events/stream` on the application's router, as `EventStreamApi` with its handler: an application adds it to
 * its routes, beside its own API, and provides the middleware (`Authentication`, `RequestValidation`,
 * `RequestTimeout`) and services (`Feed`, `EventEmitter`, `AuditAccess`) it provides its audit API.
 */
export const layer = (options: Options) =>
  HttpApiBuilder.layer(EventStreamApi).pipe(Layer.provide(build(EventStreamApi, options)))
