/**
 * A stored event as Annal's HTTP APIs send it: decoded with the application's registry, which also reads the
 * audit API's own `audit.read`, and turned into the JSON of `AuditApi.AuditEvent`, with `data` encoded by the current
 * schema of its type. The audit API's pages and the live event stream share it, so a client reads one shape from
 * both, and an event that cannot be decoded is sent as stored and flagged rather than failing either.
 *
 * @since 0.1.0
 */
import type { Event, EventRegistry } from "@annal/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type InternalError, internal } from "./ApiError.ts"
import { AuditEvent } from "./AuditApi.ts"
import { AuditRead } from "./AuditRead.ts"
import * as AuditReadEvents from "./AuditRead.ts"

/** Why each event the API's registry could not decode was not: the events are the stored rows, flagged here. */
const undecoded = new WeakMap<Event.Event, string>()

/** The events already logged as undecodable, by id, so that each is logged once however often it is read. */
const logged = new Set<string>()
const maxLogged = 10_000

/** Marks a stored event that `registry` refused with `error`, and returns it as stored. */
const asStored = (event: Event.RawEvent, error: unknown): Event.Event => {
  undecoded.set(event, error instanceof Error ? error.message : String(error))
  return event
}

/**
 * The application's registry, reading `audit.read` too, and never failing: an event it cannot decode (a type it
 * does not register, a version it does not know, a payload its schema refuses) is returned as stored, and
 * `makeToAuditEvent` sends it flagged `decoded: false` with the reason. One such row would otherwise fail every page,
 * user activity and stream that reaches it, hiding all the events around it. The application's own registry decides
 * everything else, so a raw registry still reads every event raw.
 */
export const withAuditRead = (
  registry: EventRegistry.EventRegistry<Event.Event>
): EventRegistry.EventRegistry<Event.Event, never> => {
  const pick = (event: Event.RawEvent) => (event.eventType === AuditRead.eventType ? AuditReadEvents.events : registry)
  return {
    definitions: new Map([...registry.definitions, ...AuditReadEvents.events.definitions]),
    decode: (event) =>
      pick(event)
        .decode(event)
        .pipe(Effect.catch((error) => Effect.succeed(asStored(event, error)))),
    decodeSync: (event) => {
      const exit = pick(event).decodeSync?.(event)
      if (exit === undefined) return undefined
      if (Exit.isSuccess(exit)) return Exit.succeed(exit.value)
      const error = Cause.findErrorOption(exit.cause)
      // A defect is no refusal of the row: `decode` runs it again, and it stays the defect it is.
      return Option.isSome(error) ? Exit.succeed(asStored(event, error.value)) : undefined
    }
  }
}

/**
 * Turns a decoded event into its JSON value: `data` is encoded with the current schema of its type. An event the
 * registry of `withAuditRead` could not decode keeps its stored `data` and `version`, is flagged `decoded: false`
 * with the reason, and is logged as a warning the first time it is sent.
 */
export const makeToAuditEvent = <Err>(registry: EventRegistry.EventRegistry<Event.Event, Err>) => {
  const encoders = new Map<string, (data: unknown) => Effect.Effect<unknown, Schema.SchemaError>>()
  for (const [eventType, definition] of registry.definitions) {
    encoders.set(eventType, Schema.encodeUnknownEffect(definition.schema))
  }
  return (event: Event.Event): Effect.Effect<AuditEvent, InternalError> => {
    const reason = undecoded.get(event)
    if (reason !== undefined) return storedEvent(event, reason)
    const encode = encoders.get(event.eventType)
    const data = encode === undefined ? Effect.succeed(event.data) : encode(event.data)
    return data.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Json)),
      Effect.map((json) => ({ ...event, data: json })),
      Effect.catch((error) => internal(`encoding event ${event.eventId}`, error))
    )
  }
}

/** An undecodable event as stored, flagged; logged once. */
const storedEvent = (event: Event.Event, reason: string): Effect.Effect<AuditEvent, InternalError> =>
  Effect.gen(function* () {
    if (!logged.has(event.eventId)) {
      // Bounded: past the bound the set starts again, and an event may be logged a second time, never without end.
      if (logged.size >= maxLogged) logged.clear()
      logged.add(event.eventId)
      yield* Effect.logWarning("An event could not be decoded; it is sent as stored, flagged decoded: false").pipe(
        Effect.annotateLogs({ eventId: event.eventId, eventType: event.eventType, version: event.version, reason })
      )
    }
    const data = yield* Schema.decodeUnknownEffect(Schema.Json)(event.data).pipe(
      Effect.catch((error) => internal(`reading event ${event.eventId} as stored`, error))
    )
    return { ...event, data, decoded: false as const, decodeError: reason }
  })

/** An `AuditEvent` as the JSON text an API response carries (times as ISO strings, positions as strings). */
export const encodeText: (event: AuditEvent) => Effect.Effect<string, Schema.SchemaError> = Schema.encodeEffect(
  Schema.fromJsonString(Schema.toCodecJson(AuditEvent))
)
