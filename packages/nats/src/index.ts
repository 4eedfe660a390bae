/**
 * @annal/nats: Annal's events relayed to NATS JetStream, in feed order and once each, for consumers on other machines.
 *
 * @since 0.1.0
 * @module @annal/nats
 */
export * as JetStreamRelay from "./JetStreamRelay.ts"
export * as Nats from "./Nats.ts"
