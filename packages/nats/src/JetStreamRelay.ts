/**
 * The JetStream relay: a consumer of the feed that publishes every event, in feed order, to a JetStream stream, so
 * that services on other machines follow the log with nothing but a NATS client. Each event goes to a subject made
 * from its type (`annal.events.organization.created`), as the JSON the audit API shows, with `Nats-Msg-Id` set to
 * its event id.
 *
 * The relay publishes one event at a time and waits for JetStream's acknowledgement before the next, and the
 * consumer's checkpoint moves only after a batch's last acknowledgement: so nothing is skipped, and the stream holds
 * the events in feed order (publishing ahead of the acknowledgements would let a failed event be published again
 * after the ones that followed it). A relay killed after JetStream stored an event but before its checkpoint moved
 * publishes the batch again on restart. Two things keep those out of the stream: JetStream drops a message whose
 * `Nats-Msg-Id` it saw within the stream's duplicate window, and the relay, when it starts, reads the checkpoint on
 * the stream's last message (its `Annal-Checkpoint` header) and skips what that message already covers, however long
 * it was down. The second needs the relay to be the stream's only writer: give each relay a stream of its own.
 *
 * @since 0.1.0
 */
import { type Consumer as AnnalConsumer, Checkpoint, Consumer, type Event, type EventRegistry } from "@annal/core"
import { EventJson } from "@annal/http"
import { headers } from "@nats-io/transport-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Nats from "./Nats.ts"

/** The header carrying the event's feed checkpoint (`Checkpoint.encode`): receivers can resume or dedupe by it. */
export const checkpointHeader = "Annal-Checkpoint"

/** The header naming the relay that published the message. */
export const relayHeader = "Annal-Relay"

/** The header carrying the event's type, so a receiver can route without parsing the body. */
export const eventTypeHeader = "Annal-Event-Type"

/** The subject prefix when none is given. */
export const defaultSubjectPrefix = "annal.events"

/** A subject prefix: NATS tokens (letters, digits, `_`, `-`) joined by dots, with no wildcard. */
const subjectPrefixPattern = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** The subject an event of `eventType` is published on: the prefix, then the type's own dotted segments. */
export const subjectOf = (subjectPrefix: string, eventType: string): string => `${subjectPrefix}.${eventType}`

/** The options of `make`: the consumer's (its name, registry and filter, batch and lease settings) and the stream's. */
export interface Options<DecodeErr> extends Omit<
  AnnalConsumer.ConsumerOptions<Event.Event, DecodeErr, never, never>,
  "handle" | "delivery" | "registry"
> {
  /** Decodes what is relayed: the application's registry, so `data` is sent in its current shape. */
  readonly registry: EventRegistry.EventRegistry<Event.Event, DecodeErr>
  /** The JetStream stream to publish to; the relay checks every acknowledgement names it. */
  readonly stream: string
  /** Default `annal.events`. */
  readonly subjectPrefix?: string
  /** How long to wait for each acknowledgement (default 5 seconds); a timeout fails the batch, which runs again. */
  readonly ackTimeout?: Duration.Input
}

/** The options of `ensureStream`. */
export interface StreamOptions {
  readonly stream: string
  /** Default `annal.events`; the stream takes `<prefix>.>`. */
  readonly subjectPrefix?: string
  /** How long JetStream remembers a `Nats-Msg-Id` to drop a re-publish (default 2 minutes). */
  readonly duplicateWindow?: Duration.Input
}

const checkPrefix = (subjectPrefix: string): string => {
  if (!subjectPrefixPattern.test(subjectPrefix)) {
    throw new Error(`JetStreamRelay: subject prefix ${JSON.stringify(subjectPrefix)} is not NATS tokens joined by dots`)
  }
  return subjectPrefix
}

/** Creates the stream for the relay's subjects if it does not exist; an existing stream is left as it is. */
export const ensureStream = Effect.fn("JetStreamRelay.ensureStream")(function* (options: StreamOptions) {
  const { manager } = yield* Nats.Nats
  const subjectPrefix = checkPrefix(options.subjectPrefix ?? defaultSubjectPrefix)
  const window = Option.getOrElse(Duration.fromInput(options.duplicateWindow ?? Duration.minutes(2)), () =>
    Duration.minutes(2)
  )
  const existing = yield* Effect.option(Nats.attempt("streams.info", () => manager.streams.info(options.stream)))
  if (Option.isSome(existing)) return existing.value
  return yield* Nats.attempt("streams.add", () =>
    manager.streams.add({
      name: options.stream,
      subjects: [`${subjectPrefix}.>`],
      duplicate_window: Duration.toMillis(window) * 1_000_000
    })
  )
})

/**
 * The relay as a consumer for `Consumers.run`: at-least-once towards JetStream, exactly once in the stream. Its
 * errors are the registry's and `NatsError`; wrap the run in `Effect.retry` to ride out a NATS or database outage.
 */
export const make = Effect.fn("JetStreamRelay.make")(function* <DecodeErr>(options: Options<DecodeErr>) {
  const { jetstream, manager } = yield* Nats.Nats
  const { stream, subjectPrefix: prefixOption, ackTimeout: ackOption, registry, ...consumerOptions } = options
  const subjectPrefix = checkPrefix(prefixOption ?? defaultSubjectPrefix)
  const ackTimeout = Duration.toMillis(
    Option.getOrElse(Duration.fromInput(ackOption ?? Duration.seconds(5)), () => Duration.seconds(5))
  )
  const toJson = EventJson.makeToAuditEvent(registry)
  const encoder = new TextEncoder()

  /**
   * The checkpoint of the last event this relay is known to have stored in the stream: read from the stream's last
   * message the first time, then kept as the relay publishes. `undefined` until read.
   */
  let published: Checkpoint.Checkpoint | undefined

  const lastInStream = Effect.gen(function* () {
    const info = yield* Nats.attempt("streams.info", () => manager.streams.info(stream))
    if (info.state.messages === 0) return Checkpoint.start
    const last = yield* Nats.attempt("streams.getMessage", () =>
      manager.streams.getMessage(stream, { seq: info.state.last_seq })
    )
    const header = last?.header
    if (header === undefined || header.get(relayHeader) !== options.name) return Checkpoint.start
    return yield* Checkpoint.decode(header.get(checkpointHeader)).pipe(Effect.orElseSucceed(() => Checkpoint.start))
  })

  const publish = Effect.fnUntraced(function* (entry: {
    readonly event: Event.Event
    readonly checkpoint: Checkpoint.Checkpoint
  }) {
    const { event, checkpoint } = entry
    if (published !== undefined && Checkpoint.compare(checkpoint, published) <= 0) return
    const json = yield* toJson(event).pipe(
      Effect.flatMap(EventJson.encodeText),
      Effect.mapError((error) => new Nats.NatsError({ operation: "encode", reason: error.message }))
    )
    const messageHeaders = headers()
    messageHeaders.set(checkpointHeader, Checkpoint.encode(checkpoint))
    messageHeaders.set(relayHeader, options.name)
    messageHeaders.set(eventTypeHeader, event.eventType)
    messageHeaders.set("Content-Type", "application/json")
    const ack = yield* Nats.attempt("publish", () =>
      jetstream.publish(subjectOf(subjectPrefix, event.eventType), encoder.encode(json), {
        msgID: event.eventId,
        headers: messageHeaders,
        timeout: ackTimeout,
        expect: { streamName: stream }
      })
    )
    if (ack.stream !== stream) {
      return yield* new Nats.NatsError({ operation: "publish", reason: `acknowledged by stream ${ack.stream}` })
    }
    published = checkpoint
  })

  return Consumer.make({
    ...consumerOptions,
    registry,
    delivery: "at-least-once",
    handle: (batch) =>
      Effect.gen(function* () {
        if (published === undefined) published = yield* lastInStream
        for (const entry of batch.entries) yield* publish(entry)
      })
  })
})
