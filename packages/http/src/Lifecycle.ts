/**
 * Where a server is in its life: `starting` until everything behind its routes is built, `ready` while it serves,
 * `draining` from the moment it is told to stop. Readiness reports it, so that a load balancer stops sending
 * requests to a server that is starting or stopping, and long responses watch it: the live event stream ends its
 * streams cleanly as soon as the drain begins, instead of holding the shutdown until its timeout, and the clients
 * resume with their `Last-Event-ID` on another server.
 *
 * The service is a reference: an application that never drains needs nothing, and sees a server that is always
 * `ready`. An application that stops gracefully provides one made with `make`, calls `markReady` once it serves and
 * `drain` when it is told to stop (the example app does both in `App.layer`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** Where a server is in its life. */
export type Phase = "starting" | "ready" | "draining"

/** A server's phase, and the signal of its drain. */
export interface Shape {
  /** The phase now. */
  readonly phase: Effect.Effect<Phase>
  /** Marks the server ready, unless it is draining already. */
  readonly markReady: Effect.Effect<void>
  /** Begins the drain: the phase is `draining` for good, and `draining` completes. Idempotent. */
  readonly drain: Effect.Effect<void>
  /** Completes once the drain has begun; never, for a server that is not told to stop. */
  readonly draining: Effect.Effect<void>
}

/** The lifecycle of a server that is always ready and never drains. */
export const alwaysReady: Shape = {
  phase: Effect.succeed("ready"),
  markReady: Effect.void,
  drain: Effect.void,
  draining: Effect.never
}

/** The server's lifecycle; by default `alwaysReady`. */
export const Lifecycle: Context.Reference<Shape> = Context.Reference<Shape>("@annal/http/Lifecycle", {
  defaultValue: () => alwaysReady
})

/** A new lifecycle, `starting`. */
export const make: Effect.Effect<Shape> = Effect.gen(function* () {
  const phase = yield* Ref.make<Phase>("starting")
  const stopping = yield* Deferred.make<void>()
  return {
    phase: Ref.get(phase),
    markReady: Ref.update(phase, (current) => (current === "starting" ? "ready" : current)),
    drain: Ref.set(phase, "draining").pipe(Effect.andThen(Deferred.succeed(stopping, undefined)), Effect.asVoid),
    draining: Deferred.await(stopping)
  }
})
