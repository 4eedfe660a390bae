/**
 * Webhooks: subscriptions that deliver the audit trail's events to HTTP endpoints, signed as Standard Webhooks
 * specifies. Each subscription is a consumer of its own (`webhook:<id>`) and delivers in feed order, at least once:
 * one event at a time, its checkpoint stored after each, so a crash sends the event in flight again (with the same
 * `webhook-id`, the event id) and never skips one. A slow or dead endpoint holds back only its own subscription.
 *
 * An attempt that times out, fails on the network, or is answered 5xx or 429 is retried with exponential backoff and
 * jitter (a `Retry-After` is honoured, within `maxDelay`); after `maxAttempts`, or at once on a 410, another 4xx,
 * a 3xx (redirects are never followed) or an address the guard refuses, the event goes to the subscription's dead
 * letters and the subscription is paused or disabled, as it is configured. Every attempt is logged with its
 * outcome, status, latency and error. An operator redelivers dead letters, resumes the subscription, or replays it
 * from a point in time.
 *
 * Creating, changing and deleting a subscription are events of the audit trail (`WebhookEvents`), written in the
 * transaction of the change by the user of the current `EventContext`. Secrets are stored to sign with, and never
 * returned after creation: a subscription shows its secrets' ids.
 *
 * @since 0.1.0
 */
import {
  Checkpoint,
  Consumer,
  Consumers,
  EventEmitter,
  type Event,
  type EventRegistry,
  Feed,
  Filter
} from "@annal/core"
import { EventJson } from "@annal/http"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { randomUUID } from "node:crypto"
import { isIP } from "node:net"
import * as Send from "./internal/send.ts"
import * as Statements from "./internal/statements.ts"
import * as WebhookAddress from "./WebhookAddress.ts"
import { InvalidSubscription, SubscriptionNotFound, type WebhookError, WebhookStorageError } from "./WebhookError.ts"
import * as WebhookEvents from "./WebhookEvents.ts"
import * as WebhookSignature from "./WebhookSignature.ts"

/**
 * Whether `text` is an attempt's id as the delivery log pages by: a positive integer that fits PostgreSQL's `bigint`
 * (19 digits alone allow more, which the database would refuse with an error instead of an empty page).
 */
export const isAttemptId = (text: string): boolean =>
  /^[1-9][0-9]{0,18}$/.test(text) && BigInt(text) <= 9_223_372_036_854_775_807n

/** A subscription's state: `active` delivers; `paused` and `disabled` do not (a dead letter leads to one of them). */
export type State = "active" | "paused" | "disabled"

/** Which events a subscription receives: the audit API's filter. */
export interface SubscriptionFilter {
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly aggregateType?: string | undefined
  readonly aggregateId?: string | undefined
  readonly userId?: string | undefined
}

/** A secret as a subscription shows it: its id and when it was added, never the secret. */
export interface SecretInfo {
  readonly id: string
  readonly createdAt: DateTime.Utc
}

/** A subscription. */
export interface Subscription {
  readonly id: string
  readonly url: string
  readonly filter: SubscriptionFilter
  readonly state: State
  /** What a dead letter does to the subscription. */
  readonly onDeadLetter: "pause" | "disable"
  readonly maxAttempts: number
  readonly secrets: ReadonlyArray<SecretInfo>
  /** Set by a replay: events before it are not delivered again. */
  readonly replayFrom: Option.Option<DateTime.Utc>
  /** Grows with every change. */
  readonly revision: number
  readonly createdAt: DateTime.Utc
  readonly updatedAt: DateTime.Utc
}

/** What `create` takes. */
export interface CreateInput {
  readonly url: string
  readonly filter?: SubscriptionFilter | undefined
  /** A `whsec_…` secret; one is generated when none is given. */
  readonly secret?: string | undefined
  /** Default `pause`. */
  readonly onDeadLetter?: "pause" | "disable" | undefined
  /** Attempts per event before it is dead-lettered (default the service's `maxAttempts`). */
  readonly maxAttempts?: number | undefined
}

/** What `update` changes; what it leaves out stays. */
export interface UpdateInput {
  readonly url?: string | undefined
  readonly filter?: SubscriptionFilter | undefined
  readonly onDeadLetter?: "pause" | "disable" | undefined
  readonly maxAttempts?: number | undefined
}

/** One delivery attempt, as the log shows it. */
export interface Attempt {
  /** Grows with every attempt logged: `attempts(id, limit, before)` pages back from one. */
  readonly id: string
  readonly subscriptionId: string
  readonly eventId: string
  readonly attempt: number
  /** `delivered`, `retry` (it failed and will be tried again), `failed` (it was the last), `refused` (the guard). */
  readonly outcome: "delivered" | "retry" | "failed" | "refused"
  readonly status: Option.Option<number>
  readonly latency: Duration.Duration
  readonly error: Option.Option<string>
  readonly at: DateTime.Utc
}

/** An event that could not be delivered. */
export interface DeadLetter {
  readonly subscriptionId: string
  readonly eventId: string
  readonly reason: string
  readonly attempts: number
  readonly deadAt: DateTime.Utc
  readonly redeliveredAt: Option.Option<DateTime.Utc>
}

/** The service's settings. */
export interface Options {
  /** Decodes the delivered events, so `data` is sent in its current shape, as the audit API shows it. */
  readonly registry: EventRegistry.EventRegistry<Event.Event, unknown>
  /** Addresses or CIDR ranges the guard lets through despite being loopback, private or link-local. */
  readonly allow?: ReadonlyArray<string>
  /** Resolves hostnames (default the system's `dns.lookup`); for tests, or a resolver of your own. */
  readonly resolve?: Send.Resolve
  /** Each attempt's deadline, connection to last byte read (default 10 seconds). */
  readonly timeout?: Duration.Input
  /** How much of a response is read (default 64 KiB); the log keeps the first 1,000 characters of an error. */
  readonly maxResponseBytes?: number
  /** Attempts per event by default (default 8). */
  readonly maxAttempts?: number
  /** The first retry's delay, doubled at each retry, with jitter (default 1 second). */
  readonly baseDelay?: Duration.Input
  /** The longest delay between attempts, `Retry-After` included (default 10 minutes). */
  readonly maxDelay?: Duration.Input
  /** How often `run` looks for new or changed subscriptions (default 1 second). */
  readonly refreshInterval?: Duration.Input
  /** The delivery consumers' lease (default 10 seconds). */
  readonly leaseDuration?: Duration.Input
  /** How often a delivery consumer looks for new events without having been woken (default 1 second). */
  readonly pollInterval?: Duration.Input
}

/** The webhooks service. */
export class Webhooks extends Context.Service<
  Webhooks,
  {
    /** Creates an active subscription, refusing an address the guard refuses; returns it with its secret. */
    readonly create: (
      input: CreateInput
    ) => Effect.Effect<{ readonly subscription: Subscription; readonly secret: string }, WebhookError>
    readonly get: (id: string) => Effect.Effect<Subscription, WebhookError>
    readonly list: Effect.Effect<ReadonlyArray<Subscription>, WebhookError>
    readonly update: (id: string, input: UpdateInput) => Effect.Effect<Subscription, WebhookError>
    /** Pauses, resumes (`active`) or disables a subscription. */
    readonly setState: (id: string, state: State) => Effect.Effect<Subscription, WebhookError>
    /**
     * Adds a secret (generated when none is given): until the old one is removed, deliveries carry a signature by
     * each, so receivers can move to the new one at their pace.
     */
    readonly addSecret: (
      id: string,
      secret?: string
    ) => Effect.Effect<
      { readonly subscription: Subscription; readonly secretId: string; readonly secret: string },
      WebhookError
    >
    /** Removes a secret, ending a rotation; the last one cannot be removed. */
    readonly removeSecret: (id: string, secretId: string) => Effect.Effect<Subscription, WebhookError>
    /** Deletes the subscription, its checkpoint, its log and its dead letters. */
    readonly remove: (id: string) => Effect.Effect<void, WebhookError>
    /**
     * The latest attempts, newest first (at most `limit`, default 100, at most 1,000); with `before`, an attempt's
     * id, the attempts logged before that one, so a log is read a page at a time.
     */
    readonly attempts: (
      id: string,
      limit?: number,
      before?: string
    ) => Effect.Effect<ReadonlyArray<Attempt>, WebhookError>
    readonly deadLetters: (id: string) => Effect.Effect<ReadonlyArray<DeadLetter>, WebhookError>
    /**
     * Sends the dead letters that were not redelivered yet again, oldest first, with the subscription's retries;
     * returns those delivered. It runs beside the subscription's own delivery, so they arrive out of feed order.
     */
    readonly redeliver: (id: string) => Effect.Effect<ReadonlyArray<string>, WebhookError>
    /**
     * Delivers again every event recorded at or after `from`, in feed order, and activates the subscription: a
     * replay is how an operator restarts one that a dead letter paused or disabled, once its endpoint is fixed,
     * without resuming it first (resuming alone goes on after the dead letter).
     */
    readonly replay: (id: string, from: DateTime.Utc) => Effect.Effect<Subscription, WebhookError>
    /**
     * Delivers, for as long as it runs: one consumer per active subscription, started, restarted after a change and
     * stopped as subscriptions change. Run it in one process or several (each subscription's lease keeps it to one
     * instance at a time).
     */
    readonly run: Effect.Effect<never>
  }
>()("@annal/webhooks/Webhooks") {}

/** The metrics of deliveries, by subscription. */
export const metrics = {
  deliveries: Metric.counter("annal_webhook_deliveries", { description: "Events delivered, by subscription" }),
  failures: Metric.counter("annal_webhook_failures", { description: "Failed delivery attempts, by subscription" }),
  retries: Metric.counter("annal_webhook_retries", { description: "Attempts scheduled again, by subscription" }),
  deadLetters: Metric.counter("annal_webhook_dead_letters", { description: "Events dead-lettered, by subscription" }),
  lag: Metric.gauge("annal_webhook_lag", { description: "Events not yet delivered, by subscription" })
}

/**
 * The consumer name of a subscription: its checkpoint and lease are stored under it. A replay starts a new
 * generation, a consumer of its own that starts from the beginning of the feed, so that no instance of the previous
 * one can write its checkpoint over the replay's.
 */
export const consumerName = (id: string, generation = 0): string =>
  generation === 0 ? `webhook:${id}` : `webhook:${id}:${generation}`

const duration = (input: Duration.Input | undefined, fallback: Duration.Duration): Duration.Duration =>
  input === undefined ? fallback : Option.getOrElse(Duration.fromInput(input), () => fallback)

const storage = (operation: string) => (error: unknown) =>
  new WebhookStorageError({ operation, reason: error instanceof Error ? error.message : String(error) })

/** A statement's rows as public values; the database's error becomes a storage error named after `operation`. */
const rows = <Row, A>(
  operation: string,
  statement: Effect.Effect<ReadonlyArray<Row>, SqlError | WebhookError>,
  toPublic: (row: Row) => A
): Effect.Effect<ReadonlyArray<A>, WebhookError> =>
  statement.pipe(
    Effect.catchTag("SqlError", (error) => Effect.fail(storage(operation)(error))),
    Effect.map((found) => found.map(toPublic))
  )

/**
 * One subscription's rows, read by `read` from its checked id: an id that is no UUID names no subscription and
 * reaches no statement.
 */
const subscriptionRows = <Row, A>(
  operation: string,
  id: string,
  read: (checked: string) => Effect.Effect<ReadonlyArray<Row>, SqlError | WebhookError>,
  toPublic: (row: Row) => A
): Effect.Effect<ReadonlyArray<A>, WebhookError> =>
  Effect.flatMap(checkId(id), (checked) => rows(operation, read(checked), toPublic))

/** Builds the service over the `Feed`'s table, its `Consumers`, and the `EventEmitter` that records changes. */
export const make = Effect.fn("Webhooks.make")(function* (options: Options) {
  const sql = yield* SqlClient.SqlClient
  const feed = yield* Feed.Feed
  const consumers = yield* Consumers.Consumers
  const emitter = yield* EventEmitter.EventEmitter
  const statements = Statements.make(sql, feed.table)
  yield* Effect.forEach(statements.migrate, (statement) => statement, { discard: true }).pipe(Effect.orDie)

  const guard = WebhookAddress.make(options.allow ?? [])
  const resolve = options.resolve ?? Send.systemResolve
  const timeoutMillis = Duration.toMillis(duration(options.timeout, Duration.seconds(10)))
  const maxResponseBytes = options.maxResponseBytes ?? 65_536
  const defaultAttempts = options.maxAttempts ?? 8
  const baseDelay = Duration.toMillis(duration(options.baseDelay, Duration.seconds(1)))
  const maxDelay = Duration.toMillis(duration(options.maxDelay, Duration.minutes(10)))
  const refreshInterval = duration(options.refreshInterval, Duration.seconds(1))
  const leaseDuration = duration(options.leaseDuration, Duration.seconds(10))
  const pollInterval = duration(options.pollInterval, Duration.seconds(1))
  const toJson = EventJson.makeToAuditEvent(options.registry)

  /** Runs `effect` in a transaction, mapping the database's and the audit trail's errors. */
  const transaction = <A, E>(operation: string, effect: Effect.Effect<A, E>) =>
    sql.withTransaction(effect).pipe(
      Effect.catchIf(
        (error): error is Exclude<typeof error, WebhookError> =>
          !(error instanceof InvalidSubscription) &&
          !(error instanceof SubscriptionNotFound) &&
          !(error instanceof WebhookStorageError),
        (error) => Effect.fail(storage(operation)(error))
      ),
      Effect.withSpan(`Webhooks.${operation}`)
    ) as Effect.Effect<A, WebhookError>

  /** Checks a URL and the addresses its host resolves to now; delivery checks them again at each connection. */
  const checkUrl = Effect.fnUntraced(function* (text: string) {
    const url = yield* Effect.try({
      try: () => new URL(text),
      catch: () => new InvalidSubscription({ field: "url", reason: "is not a URL" })
    })
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return yield* new InvalidSubscription({ field: "url", reason: "must be http or https" })
    }
    if (url.username !== "" || url.password !== "") {
      return yield* new InvalidSubscription({ field: "url", reason: "must not carry credentials" })
    }
    if (text.length > 2000) return yield* new InvalidSubscription({ field: "url", reason: "is over 2,000 characters" })
    const host = url.hostname.replace(/^\[|\]$/g, "")
    const addresses =
      isIP(host) !== 0
        ? [host]
        : (yield* Effect.tryPromise({
            try: () => resolve(host),
            catch: () => new InvalidSubscription({ field: "url", reason: `${host} does not resolve` })
          })).map((answer) => answer.address)
    for (const address of addresses) {
      const refusal = guard.refusal(address)
      if (refusal !== undefined) return yield* new InvalidSubscription({ field: "url", reason: refusal })
    }
    return url.toString()
  })

  const checkAttempts = (value: number | undefined) =>
    value === undefined || (Number.isSafeInteger(value) && value >= 1 && value <= 100)
      ? Effect.succeed(value ?? defaultAttempts)
      : Effect.fail(new InvalidSubscription({ field: "maxAttempts", reason: "must be an integer from 1 to 100" }))

  const locked = (id: string) =>
    Effect.flatMap(checkId(id), (checked) =>
      Effect.flatMap(statements.lock(checked), (rows) =>
        rows[0] === undefined ? Effect.fail(new SubscriptionNotFound({ id })) : Effect.succeed(rows[0])
      )
    )

  /** Writes a changed subscription and records the change, in the caller's transaction. */
  const write = (
    row: Statements.SubscriptionRow,
    change: string,
    patch: Partial<{
      url: string
      filter: SubscriptionFilter
      secrets: ReadonlyArray<Statements.StoredSecret>
      state: State
      onDeadLetter: "pause" | "disable"
      maxAttempts: number
      replayFrom: number | null
      replayed: boolean
    }>
  ) =>
    Effect.gen(function* () {
      const [updated] = yield* statements.update({
        id: row.id,
        url: patch.url ?? row.url,
        filter: patch.filter === undefined ? row.filter : JSON.stringify(patch.filter),
        secrets: patch.secrets === undefined ? row.secrets : JSON.stringify(patch.secrets),
        state: patch.state ?? row.state,
        onDeadLetter: patch.onDeadLetter ?? row.on_dead_letter,
        maxAttempts: patch.maxAttempts ?? row.max_attempts,
        replayFrom: patch.replayFrom === undefined ? row.replay_from : patch.replayFrom,
        replayed: patch.replayed ?? false
      })
      const subscription = Statements.toSubscription(updated!)
      yield* emitter.emit(
        WebhookEvents.SubscriptionUpdated.make({
          aggregateId: subscription.id,
          data: { change, subscription: record(subscription) }
        })
      )
      return subscription
    })

  const create = (input: CreateInput) =>
    transaction(
      "create",
      Effect.gen(function* () {
        const url = yield* checkUrl(input.url)
        const filter = yield* checkFilter(input.filter)
        const maxAttempts = yield* checkAttempts(input.maxAttempts)
        const secret = yield* checkSecret(input.secret)
        if (input.onDeadLetter !== undefined && input.onDeadLetter !== "pause" && input.onDeadLetter !== "disable") {
          return yield* new InvalidSubscription({ field: "onDeadLetter", reason: "must be pause or disable" })
        }
        const now = yield* Clock.currentTimeMillis
        const [row] = yield* statements.insert({
          id: randomUUID(),
          url,
          filter: JSON.stringify(filter),
          secrets: JSON.stringify([{ id: randomUUID(), secret, createdAt: now }]),
          onDeadLetter: input.onDeadLetter ?? "pause",
          maxAttempts
        })
        const subscription = Statements.toSubscription(row!)
        yield* emitter.emit(
          WebhookEvents.SubscriptionCreated.make({ aggregateId: subscription.id, data: record(subscription) })
        )
        return { subscription, secret }
      })
    )

  const get = Effect.fn("Webhooks.get")(function* (id: string) {
    const [subscription] = yield* subscriptionRows("get", id, statements.get, Statements.toSubscription)
    if (subscription === undefined) return yield* new SubscriptionNotFound({ id })
    return subscription
  })

  const list = rows("list", statements.list, Statements.toSubscription).pipe(Effect.withSpan("Webhooks.list"))

  const update = (id: string, input: UpdateInput) =>
    transaction(
      "update",
      Effect.gen(function* () {
        const row = yield* locked(id)
        return yield* write(row, "updated", {
          ...(input.url === undefined ? {} : { url: yield* checkUrl(input.url) }),
          ...(input.filter === undefined ? {} : { filter: yield* checkFilter(input.filter) }),
          ...(input.maxAttempts === undefined ? {} : { maxAttempts: yield* checkAttempts(input.maxAttempts) }),
          ...(input.onDeadLetter === undefined ? {} : { onDeadLetter: input.onDeadLetter })
        })
      })
    )

  const setState = (id: string, state: State) =>
    transaction(
      "setState",
      Effect.gen(function* () {
        if (state !== "active" && state !== "paused" && state !== "disabled") {
          return yield* new InvalidSubscription({ field: "state", reason: "must be active, paused or disabled" })
        }
        const row = yield* locked(id)
        return yield* write(row, state === "active" ? "resumed" : state, { state })
      })
    )

  const addSecret = (id: string, secret?: string) =>
    transaction(
      "addSecret",
      Effect.gen(function* () {
        const row = yield* locked(id)
        const value = yield* checkSecret(secret)
        const secrets = JSON.parse(row.secrets) as ReadonlyArray<Statements.StoredSecret>
        if (secrets.length >= 5) {
          return yield* new InvalidSubscription({ field: "secret", reason: "a subscription has at most 5 secrets" })
        }
        const secretId = randomUUID()
        const now = yield* Clock.currentTimeMillis
        const subscription = yield* write(row, "secret added", {
          secrets: [...secrets, { id: secretId, secret: value, createdAt: now }]
        })
        return { subscription, secretId, secret: value }
      })
    )

  const removeSecret = (id: string, secretId: string) =>
    transaction(
      "removeSecret",
      Effect.gen(function* () {
        const row = yield* locked(id)
        const secrets = JSON.parse(row.secrets) as ReadonlyArray<Statements.StoredSecret>
        const left = secrets.filter((secret) => secret.id !== secretId)
        if (left.length === secrets.length) {
          return yield* new InvalidSubscription({ field: "secretId", reason: "is not a secret of the subscription" })
        }
        if (left.length === 0) {
          return yield* new InvalidSubscription({ field: "secretId", reason: "is the last secret: add another first" })
        }
        return yield* write(row, "secret removed", { secrets: left })
      })
    )

  const remove = (id: string) =>
    transaction(
      "remove",
      Effect.gen(function* () {
        const row = yield* locked(id)
        yield* statements.remove(row.id)
        yield* statements.dropConsumers(row.id, null)
        yield* statements.removeAttempts(row.id)
        yield* statements.removeDeadLetters(row.id)
        yield* emitter.emit(WebhookEvents.SubscriptionDeleted.make({ aggregateId: row.id, data: { url: row.url } }))
      })
    )

  const attempts = Effect.fn("Webhooks.attempts")(function* (id: string, limit = 100, before?: string) {
    return yield* subscriptionRows(
      "attempts",
      id,
      (checked) =>
        before !== undefined && !isAttemptId(before)
          ? Effect.fail(new InvalidSubscription({ field: "before", reason: "is not an attempt's id" }))
          : statements.attempts(checked, Math.max(1, Math.min(1000, Math.floor(limit))), before),
      Statements.toAttempt
    )
  })

  const deadLetters = Effect.fn("Webhooks.deadLetters")(function* (id: string) {
    return yield* subscriptionRows("deadLetters", id, statements.deadLetters, Statements.toDeadLetter)
  })

  /** The delay before attempt `attempt + 1`: doubling from `baseDelay`, with full jitter on its upper half. */
  const backoff = (attempt: number, retryAfter: string | undefined, now: number): number => {
    const exponential = Math.min(maxDelay, baseDelay * 2 ** (attempt - 1))
    const jittered = exponential / 2 + Math.random() * (exponential / 2)
    if (retryAfter === undefined) return jittered
    const seconds = /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : Date.parse(retryAfter) - now
    return Number.isFinite(seconds) ? Math.min(maxDelay, Math.max(jittered, seconds)) : jittered
  }

  type Result =
    | { readonly _tag: "Delivered" }
    | { readonly _tag: "Dead"; readonly reason: string; readonly attempts: number }

  /** Delivers one event with its retries; logs each attempt. */
  const deliver = (subscription: Statements.SubscriptionRow, event: Event.Event): Effect.Effect<Result, WebhookError> =>
    Effect.gen(function* () {
      const attributes = { subscription: subscription.id }
      const body = yield* toJson(event).pipe(
        Effect.flatMap(EventJson.encodeText),
        Effect.mapError(storage("encoding an event"))
      )
      const secrets = (JSON.parse(subscription.secrets) as ReadonlyArray<Statements.StoredSecret>).map(
        (secret) => secret.secret
      )
      const url = new URL(subscription.url)
      for (let attempt = 1; ; attempt++) {
        const startedAt = yield* Clock.currentTimeMillis
        const headers = WebhookSignature.sign(secrets, event.eventId, Math.floor(startedAt / 1000), body)
        const outcome = yield* Send.send({
          url,
          headers: { ...headers, "content-type": "application/json", "user-agent": "annal-webhooks" },
          body,
          guard,
          resolve,
          timeoutMillis,
          maxResponseBytes
        })
        const now = yield* Clock.currentTimeMillis
        const status = outcome._tag === "Response" ? outcome.status : null
        const delivered = status !== null && status >= 200 && status < 300
        const retryable =
          outcome._tag === "TimedOut" ||
          outcome._tag === "Failed" ||
          (status !== null && (status >= 500 || status === 429))
        const last = !delivered && (!retryable || attempt >= subscription.max_attempts)
        const error =
          outcome._tag === "TimedOut"
            ? `timed out after ${timeoutMillis} ms`
            : outcome._tag === "Failed" || outcome._tag === "Refused"
              ? outcome.reason
              : delivered
                ? null
                : `answered ${status}${outcome.body === "" ? "" : `: ${outcome.body}`}`.slice(0, 1000)
        yield* statements
          .logAttempt({
            subscriptionId: subscription.id,
            eventId: event.eventId,
            attempt,
            outcome: delivered ? "delivered" : outcome._tag === "Refused" ? "refused" : last ? "failed" : "retry",
            status,
            latencyMs: Math.max(0, Math.round(now - startedAt)),
            error
          })
          .pipe(Effect.mapError(storage("logging an attempt")))
        if (delivered) {
          yield* Metric.update(Metric.withAttributes(metrics.deliveries, attributes), 1)
          return { _tag: "Delivered" } as const
        }
        yield* Metric.update(Metric.withAttributes(metrics.failures, attributes), 1)
        if (last) return { _tag: "Dead", reason: error ?? "failed", attempts: attempt } as const
        yield* Metric.update(Metric.withAttributes(metrics.retries, attributes), 1)
        yield* Effect.sleep(
          Duration.millis(backoff(attempt, outcome._tag === "Response" ? outcome.retryAfter : undefined, now))
        )
      }
    })

  /** The consumer of one subscription, as it was at `row`'s revision. */
  const consumerOf = (row: Statements.SubscriptionRow) => {
    const filter = JSON.parse(row.filter) as SubscriptionFilter
    let stopped = false
    return Consumer.make({
      name: consumerName(row.id, row.generation),
      registry: options.registry,
      ...filter,
      ...(row.replay_from === null ? {} : { from: DateTime.makeUnsafe(row.replay_from) }),
      // One event per batch: each delivered event's checkpoint is stored before the next is sent, and a dead letter
      // that stops the subscription stops it right after that event.
      batchSize: 1,
      pollInterval,
      leaseDuration,
      acquireInterval: Duration.millis(Math.min(1000, Duration.toMillis(refreshInterval))),
      handle: (batch) =>
        Effect.gen(function* () {
          // Stopped by a dead letter: wait to be interrupted by `run`, which sees the new state, without moving on.
          if (stopped) return yield* Effect.never
          for (const event of batch.events) {
            const result = yield* deliver(row, event)
            if (result._tag === "Dead") {
              yield* statements
                .deadLetter({
                  subscriptionId: row.id,
                  eventId: event.eventId,
                  reason: result.reason,
                  attempts: result.attempts
                })
                .pipe(Effect.mapError(storage("dead-lettering")))
              yield* Metric.update(Metric.withAttributes(metrics.deadLetters, { subscription: row.id }), 1)
              yield* statements
                .setStateIf(row.id, "active", row.on_dead_letter === "disable" ? "disabled" : "paused")
                .pipe(Effect.mapError(storage("stopping after a dead letter")))
              stopped = true
            }
          }
        })
    })
  }

  const redeliver = Effect.fn("Webhooks.redeliver")(function* (id: string) {
    const subscription = yield* get(id)
    const [row] = yield* statements.get(subscription.id).pipe(Effect.mapError(storage("redeliver")))
    const letters = (yield* deadLetters(id)).filter((letter) => Option.isNone(letter.redeliveredAt))
    const delivered: Array<string> = []
    for (const letter of letters) {
      const event = yield* readEvent(letter.eventId)
      if (event === undefined) continue
      const result = yield* deliver(row!, event)
      if (result._tag === "Delivered") {
        yield* statements.redelivered(subscription.id, letter.eventId).pipe(Effect.mapError(storage("redeliver")))
        delivered.push(letter.eventId)
      }
    }
    return delivered
  })

  /** One stored event by id, decoded with the registry. */
  const readEvent = (eventId: string): Effect.Effect<Event.Event | undefined, WebhookError> =>
    Effect.gen(function* () {
      // The feed reads in pages from a checkpoint: the event's own checkpoint is found from its row.
      const rows = yield* sql<{ readonly commit_sequence: string; readonly global_position: string }>`SELECT
          c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
        FROM ${sql(`${feed.table.schema}.${feed.table.table}`)} e
        JOIN ${sql(`${feed.table.schema}.${feed.table.table}_commits`)} c ON c.transaction_id = e.transaction_id
        WHERE e.id = ${eventId}::uuid`.pipe(Effect.mapError(storage("reading an event")))
      const row = rows[0]
      if (row === undefined) return undefined
      const position = BigInt(row.global_position)
      const after = Checkpoint.make(BigInt(row.commit_sequence), position - 1n)
      const batch = yield* feed
        .read(options.registry, { after, limit: 1 })
        .pipe(Effect.mapError(storage("reading an event")))
      return batch.events.find((event) => event.eventId === eventId)
    })

  const replay = (id: string, from: DateTime.Utc) =>
    transaction(
      "replay",
      Effect.gen(function* () {
        const row = yield* locked(id)
        // A new generation of the consumer starts from the start of the feed, and its filter skips what was
        // recorded before `from`; `run` stops the previous one before it starts it, and drops its checkpoint.
        return yield* write(row, "replayed", {
          replayFrom: DateTime.toEpochMillis(from),
          state: "active",
          replayed: true
        })
      })
    )

  /** Keeps one delivery fiber per active subscription, restarted when the subscription's revision changes. */
  const run: Effect.Effect<never> = Effect.scoped(
    Effect.gen(function* () {
      const fibers = yield* FiberMap.make<string>()
      const running = new Map<string, Statements.SubscriptionRow>()
      /** Stops a subscription's fiber, waiting until it has released its lease. */
      const stop = (id: string) =>
        Effect.gen(function* () {
          const fiber = yield* FiberMap.get(fibers, id)
          if (Option.isSome(fiber)) yield* Fiber.interrupt(fiber.value)
          yield* FiberMap.remove(fibers, id)
          running.delete(id)
        })
      const refresh = Effect.gen(function* () {
        const rows = yield* statements.list
        const active = new Map(rows.filter((row) => row.state === "active").map((row) => [row.id, row]))
        for (const [id] of running) if (!active.has(id)) yield* stop(id)
        for (const [id, row] of active) {
          const current = running.get(id)
          if (current?.revision === row.revision && (yield* FiberMap.has(fibers, id))) continue
          // The previous consumer stops before the next starts: two would deliver out of order.
          yield* stop(id)
          // A replay's generation drops the earlier ones, also those this process was not running (a subscription
          // that was paused when it was replayed): they would linger in the lag report, behind for ever.
          if (row.generation > 0 && current?.generation !== row.generation) {
            yield* statements.dropConsumers(id, consumerName(id, row.generation))
          }
          running.set(id, row)
          yield* FiberMap.run(
            fibers,
            id,
            consumers.run(consumerOf(row)).pipe(
              Effect.tapCause((cause) => Effect.logWarning(`Webhook subscription ${id} failed; it restarts`, cause)),
              Effect.retry(Schedule.spaced(refreshInterval))
            )
          )
        }
        const lags = yield* consumers.lag
        for (const lag of lags) {
          const id = lag.name.split(":")[1]
          const row = id === undefined ? undefined : running.get(id)
          if (row !== undefined && lag.name === consumerName(row.id, row.generation)) {
            yield* Metric.update(Metric.withAttributes(metrics.lag, { subscription: row.id }), lag.eventsBehind)
          }
        }
      })
      return yield* refresh.pipe(
        Effect.catchCause((cause) => Effect.logWarning("Webhooks: refreshing the subscriptions failed", cause)),
        Effect.repeat(Schedule.spaced(refreshInterval)),
        Effect.andThen(Effect.never)
      )
    })
  ).pipe(Effect.withSpan("Webhooks.run"))

  return Webhooks.of({
    create: (input) => create(input),
    get,
    list,
    update,
    setState,
    addSecret: (id, secret) => addSecret(id, secret),
    removeSecret,
    remove,
    attempts,
    deadLetters,
    redeliver,
    replay,
    run
  })
})

/** A subscription as its events record it: no secrets, only their ids. */
const record = (subscription: Subscription) => ({
  url: subscription.url,
  filter: subscription.filter as never,
  state: subscription.state,
  onDeadLetter: subscription.onDeadLetter,
  maxAttempts: subscription.maxAttempts,
  secretIds: subscription.secrets.map((secret) => secret.id)
})

/** Checks a subscription's filter: only the audit API's fields, each as every read checks it. */
const checkFilter = (filter: SubscriptionFilter | undefined) =>
  Effect.gen(function* () {
    const given = filter ?? {}
    const known = ["eventTypes", "aggregateType", "aggregateId", "userId"]
    const unknown = Object.keys(given).find((key) => !known.includes(key))
    if (unknown !== undefined) {
      return yield* new InvalidSubscription({
        field: `filter.${unknown}`,
        reason: `is not one of ${known.join(", ")}`
      })
    }
    const picked: { -readonly [K in keyof SubscriptionFilter]: SubscriptionFilter[K] } = {}
    for (const key of known as ReadonlyArray<keyof SubscriptionFilter>) {
      if (given[key] !== undefined) (picked as Record<string, unknown>)[key] = given[key]
    }
    const valid = yield* Effect.mapError(
      Filter.validate(picked),
      (error) => new InvalidSubscription({ field: `filter.${error.field}`, reason: error.reason })
    )
    return valid as SubscriptionFilter
  })

/** A given secret, checked, or a new one. */
const checkSecret = (secret: string | undefined) =>
  secret === undefined
    ? Effect.succeed(WebhookSignature.generateSecret())
    : WebhookSignature.isSecret(secret)
      ? Effect.succeed(secret)
      : Effect.fail(new InvalidSubscription({ field: "secret", reason: "must be whsec_ and 24 to 64 bytes in base64" }))

/** A subscription id: a UUID, in lowercase; anything else names no subscription. */
const checkId = (id: string) =>
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)
    ? Effect.succeed(id.toLowerCase())
    : Effect.fail(new SubscriptionNotFound({ id }))

/** The service; it creates its tables beside the `Feed`'s events table when built. */
export const layer = (
  options: Options
): Layer.Layer<Webhooks, never, SqlClient.SqlClient | Feed.Feed | Consumers.Consumers | EventEmitter.EventEmitter> =>
  Layer.effect(Webhooks, make(options))
