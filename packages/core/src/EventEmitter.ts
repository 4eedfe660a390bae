/**
 * Emitting events from business logic. `emit` and `emitMany` write in the caller's transaction: wrap the business
 * write and the emit in `sql.withTransaction` and both commit or neither does. Outside a transaction an
 * `emitMany` is atomic on its own. The user and metadata of the current `EventContext` fill in what an event does
 * not give itself.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Event from "./Event.ts"
import { EventContext, type EventContextValue } from "./EventContext.ts"
import type * as EventDefinition from "./EventDefinition.ts"
import * as EventStore from "./EventStore.ts"
import * as Payload from "./Payload.ts"

/** The emitter service. */
export class EventEmitter extends Context.Service<
  EventEmitter,
  {
    /** Validates and stores one event. */
    readonly emit: (
      event: EventDefinition.Pending,
      options?: EventStore.AppendOptions
    ) => Effect.Effect<EventStore.Appended, EventStore.AppendError>
    /** Validates and stores several events, all or none. */
    readonly emitMany: (
      events: ReadonlyArray<EventDefinition.Pending>,
      options?: EventStore.AppendOptions
    ) => Effect.Effect<ReadonlyArray<EventStore.Appended>, EventStore.AppendError>
    /**
     * Emits an UPDATE event whose `changes` are the fields that differ between `before` and `after`, and nothing
     * when none does.
     */
    readonly emitChanges: <A extends object>(
      definition: { readonly make: (input: EventDefinition.MakeInput<Payload.Changes<A>>) => EventDefinition.Pending },
      input: Omit<EventDefinition.MakeInput<Payload.Changes<A>>, "data"> & { readonly before: A; readonly after: A },
      options?: EventStore.AppendOptions
    ) => Effect.Effect<Option.Option<EventStore.Appended>, EventStore.AppendError>
  }
>()("@annal/core/EventEmitter") {}

/** Builds the emitter over the `EventStore` in context. */
export const make = Effect.gen(function* () {
  const store = yield* EventStore.EventStore

  // Untraced: each public method below is one span over the store's own, not a span inside another of this service.
  const appendInContext = (
    events: ReadonlyArray<EventDefinition.Pending>,
    options: EventStore.AppendOptions | undefined
  ): Effect.Effect<ReadonlyArray<EventStore.Appended>, EventStore.AppendError> =>
    Effect.flatMap(EventContext, (context) =>
      store.append(
        events.map((event) => withContext(event, context)),
        options
      )
    )

  const emitMany = Effect.fn("EventEmitter.emitMany")(function* (
    events: ReadonlyArray<EventDefinition.Pending>,
    options?: EventStore.AppendOptions
  ) {
    return yield* appendInContext(events, options)
  })

  const emit = Effect.fn("EventEmitter.emit")(function* (
    event: EventDefinition.Pending,
    options?: EventStore.AppendOptions
  ) {
    const [appended] = yield* appendInContext([event], options)
    return appended!
  })

  const emitChanges = Effect.fn("EventEmitter.emitChanges")(function* <A extends object>(
    definition: { readonly make: (input: EventDefinition.MakeInput<Payload.Changes<A>>) => EventDefinition.Pending },
    {
      before,
      after,
      ...input
    }: Omit<EventDefinition.MakeInput<Payload.Changes<A>>, "data"> & {
      readonly before: A
      readonly after: A
    },
    options?: EventStore.AppendOptions
  ): Effect.fn.Return<Option.Option<EventStore.Appended>, EventStore.AppendError> {
    const changes = Payload.diff(before, after)
    yield* Effect.annotateCurrentSpan({ changed: Option.isSome(changes) })
    if (Option.isNone(changes)) return Option.none()
    return Option.some(yield* emit(definition.make({ ...input, data: changes.value }), options))
  })

  return EventEmitter.of({ emit, emitMany, emitChanges })
})

/** The emitter, appending through the `EventStore` in context. */
export const layer: Layer.Layer<EventEmitter, never, EventStore.EventStore> = Layer.effect(EventEmitter, make)

/** The event, with the context's user and metadata where it gives none of its own. */
const withContext = (event: EventDefinition.Pending, context: EventContextValue): EventDefinition.Pending => {
  const userId = event.userId ?? context.userId
  const metadata: Event.EventMetadata = {
    ...context.metadata,
    ...event.metadata,
    ...(context.metadata.extras === undefined && event.metadata?.extras === undefined
      ? {}
      : { extras: { ...context.metadata.extras, ...event.metadata?.extras } })
  }
  return { ...event, ...(userId === undefined ? {} : { userId }), metadata }
}
