/**
 * A stored event as Annal's HTTP APIs send it: decoded with the application's registry, which also reads the
 * audit API's own `audit.read`, and turned into the JSON of `AuditApi.AuditEvent`, with `data` encoded by the current
 * schema of its type. The audit API's pages and the live event stream share it, so a client reads one shape from
 * both.
 *
 * @since 0.1.0
 */
import type { Event, EventRegistry } from "@annal/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type InternalError, internal } from "./ApiError.ts"
import { AuditEvent } from "./AuditApi.ts"
import { AuditRead } from "./AuditRead.ts"
import * as AuditReadEvents from "./AuditRead.ts"

/**
 * The application's registry, reading `audit.read` too. The application's own registry decides everything else, so
 * a raw registry still reads every event raw, and a strict one still refuses types it does not know.
 */
export const withAuditRead = (
  registry: EventRegistry.EventRegistry<Event.Event>
): EventRegistry.EventRegistry<Event.Event> => ({
  definitions: new Map([...registry.definitions, ...AuditReadEvents.events.definitions]),
  decode: (event) =>
    event.eventType === AuditRead.eventType ? AuditReadEvents.events.decode(event) : registry.decode(event),
  decodeSync: (event) =>
    event.eventType === AuditRead.eventType ? AuditReadEvents.events.decodeSync?.(event) : registry.decodeSync?.(event)
})

/** Turns a decoded event into its JSON value: `data` is encoded with the current schema of its type. */
export const makeToAuditEvent = <Err>(registry: EventRegistry.EventRegistry<Event.Event, Err>) => {
  const encoders = new Map<string, (data: unknown) => Effect.Effect<unknown, Schema.SchemaError>>()
  for (const [eventType, definition] of registry.definitions) {
    encoders.set(eventType, Schema.encodeUnknownEffect(definition.schema))
  }
  return (event: Event.Event): Effect.Effect<AuditEvent, InternalError> => {
    const encode = encoders.get(event.eventType)
    const data = encode === undefined ? Effect.succeed(event.data) : encode(event.data)
    return data.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Json)),
      Effect.map((json) => ({ ...event, data: json })),
      Effect.catch((error) => internal(`encoding event ${event.eventId}`, error))
    )
  }
}

/** An `AuditEvent` as the JSON text an API response carries (times as ISO strings, positions as strings). */
export const encodeText: (event: AuditEvent) => Effect.Effect<string, Schema.SchemaError> = Schema.encodeEffect(
  Schema.fromJsonString(Schema.toCodecJson(AuditEvent))
)
