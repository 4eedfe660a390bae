/**
 * The context of the request or job that is emitting events: who acts, from where, why. It is captured once,
 * where the request enters, and every `emit` inside reads it, so business code never passes an ip address or a
 * correlation id around. Metadata given explicitly on an event overrides it field by field.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type * as Event from "./Event.ts"

/** The acting user and the request's metadata. */
export interface EventContextValue {
  readonly userId?: string
  readonly metadata: Event.EventMetadata
}

/** The current request's context; empty outside of one. */
export const EventContext = Context.Reference<EventContextValue>("@annal/core/EventContext", {
  defaultValue: () => ({ metadata: {} })
})

/** Runs `effect` with `value` as its event context, merged over the enclosing one. */
export const provide: {
  (value: Partial<EventContextValue>): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, value: Partial<EventContextValue>): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, value: Partial<EventContextValue>): Effect.Effect<A, E, R> =>
  Effect.flatMap(EventContext, (outer) =>
    Effect.provideService(effect, EventContext, {
      ...outer,
      ...value,
      metadata: { ...outer.metadata, ...value.metadata }
    })
  )
)

/**
 * The context of work done because of `event`: its id as the causation id, and its correlation id (when it has one),
 * so that what a consumer's handler emits is tied to the event it handled and to the operation that event was part
 * of. Business code never has to copy either.
 */
export const causedBy = (event: Pick<Event.Event, "eventId" | "metadata">): Partial<EventContextValue> => ({
  metadata: {
    causationId: event.eventId,
    ...(event.metadata.correlationId === undefined ? {} : { correlationId: event.metadata.correlationId })
  }
})
