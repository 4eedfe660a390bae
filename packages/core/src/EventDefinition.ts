/**
 * Defining an event is one declaration: its type name, its aggregate type, its payload schema, and its earlier
 * versions, each with the step that decodes it into the next.
 *
 * ```ts
 * const OrganizationCreated = EventDefinition.make("organization.created", {
 *   aggregateType: "organization",
 *   schema: Schema.Struct({ name: Schema.String })
 * }).evolve(Schema.Struct({ name: Schema.String, country: Schema.String }), (v1) => ({ ...v1, country: "IN" }))
 * ```
 *
 * Writes always store the current version. Reads decode any stored version with a schema composed from the
 * stored version's schema and every step after it (`Schema.decodeTo`), so a step whose output does not fit the
 * next version's encoded type does not compile, and one whose output fails the next schema's checks fails to
 * decode with a typed error.
 *
 * @since 0.1.0
 */
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import type * as Event from "./Event.ts"

/** A payload schema: any schema whose decoding and encoding need no services. */
export type PayloadSchema = Schema.Codec<unknown, unknown, never, never>

/** A schema that decodes one stored version's payload into the current type. */
export type VersionDecoder<A> = Schema.Codec<A, unknown, never, unknown>

/** The definition of one event type. */
export interface EventDefinition<Type extends string, S extends PayloadSchema> {
  readonly eventType: Type
  readonly aggregateType: string
  /** The current schema version, the one every write stores. */
  readonly version: number
  /** The current payload schema. */
  readonly schema: S
  /** For each stored version, from 1 to `version`, the schema that decodes it into the current type. */
  readonly decoders: ReadonlyMap<number, VersionDecoder<S["Type"]>>
  /**
   * A new definition whose current version is `schema`, one more than this one's; `step` turns a payload of this
   * version into the encoded form of the next.
   */
  readonly evolve: <Next extends PayloadSchema, const Step extends Next["Encoded"]>(
    schema: Next,
    // The step's result is a type parameter of its own, `const` and bounded by the next version's encoded type: a
    // literal such as `status: "open"` keeps its literal type and is checked against the schema, where a result
    // typed as `Next["Encoded"]` directly would be widened to `string` first and refused.
    step: (previous: S["Type"]) => Step
  ) => EventDefinition<Type, Next>
  /** An event of this type, ready to be appended or emitted. */
  readonly make: (input: MakeInput<S["Type"]>) => Pending<Type, S["Type"]>
}

/** What every event definition has, whatever its payload: enough to read its events. */
export interface Any {
  readonly eventType: string
  readonly aggregateType: string
  readonly version: number
  /** The current payload schema: what encodes a decoded payload back to the JSON of the current version. */
  readonly schema: PayloadSchema
  readonly decoders: ReadonlyMap<number, VersionDecoder<unknown>>
}

/** The decoded event type that a definition reads as. */
export type EventOf<D> = D extends EventDefinition<infer Type, infer S> ? Event.Event<Type, S["Type"]> : never

/** What the caller gives to make an event; what it leaves out, the emitter or the store fills in. */
export interface MakeInput<Data> {
  readonly aggregateId: string
  readonly data: Data
  /**
   * Who acted. `EventEmitter` fills it in from the current `EventContext` when it is left out; `EventStore.append`
   * is the layer below, and stores what it is given: it reads no `EventContext`.
   */
  readonly userId?: string
  /**
   * `EventEmitter` merges it over the current `EventContext`'s metadata, field by field; `EventStore.append`
   * stores it as given.
   */
  readonly metadata?: Event.EventMetadata
  /** Give an id to make retries idempotent; a UUIDv7 is generated otherwise. */
  readonly eventId?: string
  /** Defaults to the `Clock`'s now at append. */
  readonly timestamp?: DateTime.Utc
}

/** An event that is made but not yet stored. */
export interface Pending<Type extends string = string, Data = unknown> extends MakeInput<Data> {
  readonly eventType: Type
  readonly aggregateType: string
  readonly version: number
  /** Encodes `data` with the current schema, validating it. */
  readonly encode: Effect.Effect<unknown, Schema.SchemaError>
}

/** Defines version 1 of an event type. */
export const make = <const Type extends string, S extends PayloadSchema>(
  eventType: Type & Event.ValidEventType<Type>,
  options: { readonly aggregateType: string; readonly schema: S }
): EventDefinition<Type, S> =>
  build(eventType, options.aggregateType, 1, options.schema, new Map([[1, options.schema]]))

const build = <Type extends string, S extends PayloadSchema>(
  eventType: Type,
  aggregateType: string,
  version: number,
  schema: S,
  decoders: ReadonlyMap<number, VersionDecoder<S["Type"]>>
): EventDefinition<Type, S> => {
  const encode = Schema.encodeUnknownEffect(schema)
  return {
    eventType,
    aggregateType,
    version,
    schema,
    decoders,
    evolve: <Next extends PayloadSchema, const Step extends Next["Encoded"]>(
      next: Next,
      step: (previous: S["Type"]) => Step
    ) => {
      const upcast = (decoder: VersionDecoder<S["Type"]>): VersionDecoder<Next["Type"]> =>
        decoder.pipe(
          Schema.decodeTo(next, {
            decode: SchemaGetter.transform(step),
            // Old versions are only ever read: every write stores the current one.
            encode: SchemaGetter.forbidden(() => `${eventType} v${version} is never written again`)
          })
        )
      const nextDecoders = new Map<number, VersionDecoder<Next["Type"]>>()
      for (const [storedVersion, decoder] of decoders) nextDecoders.set(storedVersion, upcast(decoder))
      nextDecoders.set(version + 1, next)
      return build(eventType, aggregateType, version + 1, next, nextDecoders)
    },
    make: (input) => ({
      ...input,
      eventType,
      aggregateType,
      version,
      encode: Effect.suspend(() => encode(input.data))
    })
  }
}
