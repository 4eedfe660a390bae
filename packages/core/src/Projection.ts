/**
 * Projections fold events into state. A projection is a pure `initial` and `apply`; the same fold runs over a
 * query's result, a stream in constant memory, or an entity's history up to a moment ("state as of T").
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import type * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as Event from "./Event.ts"

/** Folds events of type `E` into a state `S`. */
export interface Projection<S, E> {
  readonly initial: S
  readonly apply: (state: S, event: E) => S
}

/** A projection from its initial state and its step. */
export const make = <S, E>(projection: Projection<S, E>): Projection<S, E> => projection

/** The state after `events`, in order, starting from `from` (the projection's initial state by default). */
export const fold = <S, E>(projection: Projection<S, E>, events: Iterable<E>, from: S = projection.initial): S => {
  let state = from
  for (const event of events) state = projection.apply(state, event)
  return state
}

/** The state after a whole stream of events, read in constant memory. */
export const foldStream = <S, E, Err, R>(
  projection: Projection<S, E>,
  events: Stream.Stream<E, Err, R>
): Effect.Effect<S, Err, R> => Stream.runFold(events, () => projection.initial, projection.apply)

/** The state as of `at`: the fold of the events whose `timestamp` is at or before it. */
export const asOf = <S, E extends Event.Event>(
  projection: Projection<S, E>,
  events: Iterable<E>,
  at: DateTime.Utc
): S => fold(projection, filterUntil(events, at))

function* filterUntil<E extends Event.Event>(events: Iterable<E>, at: DateTime.Utc): Iterable<E> {
  for (const event of events) if (DateTime.isLessThanOrEqualTo(event.timestamp, at)) yield event
}
