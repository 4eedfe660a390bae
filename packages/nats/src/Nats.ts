/**
 * A NATS connection with its JetStream client, as a service that lives as long as its layer: connected when the
 * layer is built, drained when it is released, so that what was published is flushed before the process goes on.
 *
 * @since 0.1.0
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/** NATS refused or failed an operation: what was being done, and the client's message. */
export class NatsError extends Schema.TaggedError<NatsError>("@annal/nats/NatsError")("NatsError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `NATS ${this.operation} failed: ${this.reason}`
  }
}

/** Wraps a promise of the NATS client, mapping its rejection to a `NatsError` naming the operation. */
export const attempt = <A>(operation: string, evaluate: () => Promise<A>): Effect.Effect<A, NatsError> =>
  Effect.tryPromise({
    try: evaluate,
    catch: (cause) => new NatsError({ operation, reason: cause instanceof Error ? cause.message : String(cause) })
  })

/** A connection to NATS and its JetStream clients. */
export class Nats extends Context.Service<
  Nats,
  {
    readonly connection: NatsConnection
    readonly jetstream: JetStreamClient
    readonly manager: JetStreamManager
  }
>()("@annal/nats/Nats") {}

/** The options of `layer`: the client's own (`servers`, `name`, `user`, `pass`, `token`, `tls`…). */
export type Options = NodeConnectionOptions

/** Connects; the connection is drained when the scope closes. */
export const make = Effect.fn("Nats.make")(function* (options: Options) {
  const connection = yield* Effect.acquireRelease(
    attempt("connect", () => connect(options)),
    (connection) => Effect.ignore(attempt("drain", () => connection.drain()))
  )
  const manager = yield* attempt("jetstreamManager", () => jetstreamManager(connection))
  return Nats.of({ connection, jetstream: jetstream(connection), manager })
})

/** The service over a connection made when the layer is built and drained when it is released. */
export const layer = (options: Options): Layer.Layer<Nats, NatsError> => Layer.effect(Nats, make(options))
