/**
 * A module's events as one discriminated union. A registry decodes stored rows into that union, so
 * `switch (event.eventType)` narrows `data`; a row whose type or version it does not know is a typed error that
 * names it. The only way to read without decoding is to ask for it: `EventRegistry.raw`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
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
  /**
   * Decodes one stored event without an effect; `undefined` when its schema cannot decode synchronously. Optional:
   * `decodeAll` uses it where it is given, and `decode` otherwise.
   */
  readonly decodeSync?: ((event: Event.RawEvent) => Exit.Exit<E, Err> | undefined) | undefined
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
  decode: Effect.succeed,
  decodeSync: Exit.succeed
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

/** One stored version's decoder, synchronous first, with its effect for a schema that cannot run synchronously. */
interface VersionDecode {
  readonly exit: (data: unknown) => Exit.Exit<unknown, Schema.SchemaError>
  readonly effect: (data: unknown) => Effect.Effect<unknown, Schema.SchemaError>
}

/**
 * Decodes stored events in order, failing with the first that does not decode. The registries of `make` and `merge`
 * decode a whole page synchronously, without an effect per event, which was most of what a read spent after the
 * rows arrived.
 */
export const decodeAll = <E extends Event.Event, Err>(
  registry: EventRegistry<E, Err>,
  events: ReadonlyArray<Event.RawEvent>
): Effect.Effect<ReadonlyArray<E>, Err> => {
  const sync = registry.decodeSync
  if (sync === undefined) return Effect.forEach(events, registry.decode)
  const decoded: Array<E> = []
  for (let index = 0; index < events.length; index++) {
    const exit = sync(events[index]!)
    // A schema that cannot decode synchronously: the rest of the page goes through the effects.
    if (exit === undefined) {
      return Effect.map(Effect.forEach(events.slice(index), registry.decode), (rest) => [...decoded, ...rest])
    }
    if (Exit.isFailure(exit)) return Effect.failCause(exit.cause)
    decoded.push(exit.value)
  }
  return Effect.succeed(decoded)
}

const failure = (event: Event.RawEvent, error: Schema.SchemaError) =>
  new EventDecodeError({
    eventId: event.eventId,
    eventType: event.eventType,
    version: event.version,
    reason: error.message
  })

const fromMap = <E extends Event.Event>(definitions: ReadonlyMap<string, EventDefinition.Any>): EventRegistry<E> => {
  const decoders = new Map<
    string,
    { readonly current: number; readonly byVersion: ReadonlyMap<number, VersionDecode> }
  >()
  for (const [eventType, definition] of definitions) {
    const byVersion = new Map<number, VersionDecode>()
    for (const [version, decoder] of definition.decoders) {
      byVersion.set(version, {
        exit: Schema.decodeUnknownExit(decoder),
        effect: Schema.decodeUnknownEffect(decoder)
      })
    }
    decoders.set(eventType, { current: definition.version, byVersion })
  }
  /** Why an event has no decoder: its type is not registered, or not at its stored version. */
  const missing = (event: Event.RawEvent) =>
    decoders.has(event.eventType)
      ? new UnknownEventVersion({ eventId: event.eventId, eventType: event.eventType, version: event.version })
      : new UnknownEventType({ eventId: event.eventId, eventType: event.eventType })
  /** The current version and the stored version's decoder of an event, or why there is none. */
  const lookup = (event: Event.RawEvent) => {
    const entry = decoders.get(event.eventType)
    const decode = entry?.byVersion.get(event.version)
    return entry === undefined || decode === undefined ? missing(event) : { current: entry.current, decode }
  }
  // `E` is the union of the definitions' events, and the row's type picked the definition whose decoder produced
  // `data`: the pairing is what `make` promised, and the one claim the compiler cannot check. Built field by field:
  // one object of the event's own shape, where a spread of the raw event was a slower copy.
  const decoded = (event: Event.RawEvent, current: number, data: unknown) =>
    ({
      eventId: event.eventId,
      eventType: event.eventType,
      aggregateId: event.aggregateId,
      aggregateType: event.aggregateType,
      userId: event.userId,
      timestamp: event.timestamp,
      version: current,
      data,
      metadata: event.metadata,
      streamVersion: event.streamVersion,
      globalPosition: event.globalPosition,
      transactionId: event.transactionId,
      recordedAt: event.recordedAt
    }) as E
  return {
    definitions,
    decode: (event) => {
      const found = lookup(event)
      if (!("decode" in found)) return Effect.fail(found)
      return found.decode.effect(event.data).pipe(
        Effect.mapError((error) => failure(event, error)),
        Effect.map((data) => decoded(event, found.current, data))
      )
    },
    decodeSync: (event) => {
      // The page's hot path: the maps read directly, no lookup result allocated per event.
      const entry = decoders.get(event.eventType)
      const decode = entry?.byVersion.get(event.version)
      if (entry === undefined || decode === undefined) return Exit.fail(missing(event))
      const exit = decode.exit(event.data)
      if (Exit.isSuccess(exit)) return Exit.succeed(decoded(event, entry.current, exit.value))
      const error = Cause.findErrorOption(exit.cause)
      return Option.isSome(error) ? Exit.fail(failure(event, error.value)) : undefined
    }
  }
}
