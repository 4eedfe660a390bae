/**
 * A module's events as one discriminated union. A registry decodes stored rows into that union, so
 * `switch (event.eventType)` narrows `data`; a row whose type or version it does not know is a typed error that
 * names it. The only way to read without decoding is to ask for it: `EventRegistry.raw`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { EventDecodeError, UnknownEventType, UnknownEventVersion } from "./AnnalError.ts"
import type * as Event from "./Event.ts"
import type * as EventDefinition from "./EventDefinition.ts"

/** The errors a registry can fail a row with. */
export type DecodeError = UnknownEventType | UnknownEventVersion | EventDecodeError

/** Decodes stored events into `E`, failing with `Err`. */
export interface EventRegistry<out E extends Event.Event, out Err = DecodeError> {
  /** The definitions by event type; empty for the raw registry. */
  readonly definitions: ReadonlyMap<string, EventDefinition.Any>
  /** Decodes one stored event. */
  readonly decode: (event: Event.RawEvent) => Effect.Effect<E, Err>
}

/** The union of the events a registry reads. */
export type EventOf<R> = R extends EventRegistry<infer E, infer _> ? E : never

/** The error a registry fails a row with. */
export type ErrorOf<R> = R extends EventRegistry<infer _, infer Err> ? Err : never

/** Any registry. */
export type Any = EventRegistry<Event.Event, unknown>

/** A registry of the given definitions; a type registered twice is a defect at startup. */
export const make = <const Definitions extends ReadonlyArray<EventDefinition.Any>>(
  ...definitions: Definitions
): EventRegistry<EventDefinition.EventOf<Definitions[number]>> => fromMap(indexDefinitions(definitions))

/** One registry that reads the events of all the given ones, for queries across modules. */
export const merge = <const Registries extends ReadonlyArray<EventRegistry<Event.Event>>>(
  ...registries: Registries
): EventRegistry<EventOf<Registries[number]>> =>
  fromMap(indexDefinitions(registries.flatMap((registry) => [...registry.definitions.values()])))

/**
 * Reads events without decoding: `data` is the stored JSON and `version` the stored version. Use it where unknown
 * types are expected, such as a generic export; it never fails.
 */
export const raw: EventRegistry<Event.RawEvent, never> = {
  definitions: new Map(),
  decode: Effect.succeed
}

const indexDefinitions = (
  definitions: ReadonlyArray<EventDefinition.Any>
): ReadonlyMap<string, EventDefinition.Any> => {
  const byType = new Map<string, EventDefinition.Any>()
  for (const definition of definitions) {
    const existing = byType.get(definition.eventType)
    if (existing !== undefined && existing !== definition) {
      // Two schemas for one stored type would decode the same rows two ways: refuse at startup, not at read.
      throw new Error(`Event type ${definition.eventType} is registered twice with different definitions`)
    }
    byType.set(definition.eventType, definition)
  }
  return byType
}

type Decode = (data: unknown) => Effect.Effect<unknown, Schema.SchemaError>

const fromMap = <E extends Event.Event>(definitions: ReadonlyMap<string, EventDefinition.Any>): EventRegistry<E> => {
  const decoders = new Map<string, { readonly current: number; readonly byVersion: ReadonlyMap<number, Decode> }>()
  for (const [eventType, definition] of definitions) {
    const byVersion = new Map<number, Decode>()
    for (const [version, decoder] of definition.decoders) byVersion.set(version, Schema.decodeUnknownEffect(decoder))
    decoders.set(eventType, { current: definition.version, byVersion })
  }
  return {
    definitions,
    decode: (event) => {
      const entry = decoders.get(event.eventType)
      if (entry === undefined) {
        return Effect.fail(new UnknownEventType({ eventId: event.eventId, eventType: event.eventType }))
      }
      const decode = entry.byVersion.get(event.version)
      if (decode === undefined) {
        return Effect.fail(
          new UnknownEventVersion({ eventId: event.eventId, eventType: event.eventType, version: event.version })
        )
      }
      return decode(event.data).pipe(
        Effect.mapError(
          (error) =>
            new EventDecodeError({
              eventId: event.eventId,
              eventType: event.eventType,
              version: event.version,
              reason: error.message
            })
        ),
        // `E` is the union of the definitions' events, and the row's type picked the definition whose decoder
        // produced `data`: the pairing is what `make` promised, and the one claim the compiler cannot check.
        Effect.map((data) => ({ ...event, version: entry.current, data }) as E)
      )
    }
  }
}
