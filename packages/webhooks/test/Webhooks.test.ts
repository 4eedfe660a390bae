/**
 * Webhooks against real receivers on 127.0.0.1 that the tests start, on both engines: signatures that the
 * `standardwebhooks` package verifies, and the delivery log of a receiver that rejects them; receivers that fail at
 * random, hold every request, and answer 410, beside one that answers at once; a key rotation; redelivery and replay;
 * and the guard against server-side request forgery. Retries wait milliseconds, not seconds: the schedule is an
 * option of the service.
 */
import { Consumers, EventRegistry, EventStore } from "@annal/core"
import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { Webhook } from "standardwebhooks"
import * as FeedDatabase from "../../core/test/support/FeedDatabase.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as WebhookSignature from "../src/WebhookSignature.ts"
import * as Webhooks from "../src/Webhooks.ts"
import { appendSome, feedOrder, testOptions, until, withDatabase } from "./support/Deliveries.ts"
import * as Receiver from "./support/Receiver.ts"

/** Waits until no instance holds the subscription's consumer. */
const stopped = (id: string) =>
  FeedDatabase.lagOf(Webhooks.consumerName(id)).pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (lag) => Option.isNone(lag.owner) })
  )

/** Whether `standardwebhooks` verifies the request with `secret`. */
const verifies = (secret: string, request: Receiver.Received): boolean => {
  try {
    new Webhook(secret).verify(request.body, request.headers)
    return true
  } catch {
    return false
  }
}

/**
 * A subscription to `count` organization events whose receiver answers 410: its first event is dead-lettered and it is
 * paused. `answer` changes what the receiver answers from then on.
 */
const pausedBy410 = (schema: string, count: number) =>
  Effect.gen(function* () {
    const webhooks = yield* Webhooks.Webhooks
    let status = 410
    const receiver = yield* Receiver.start(() => ({ status }))
    const organizations = yield* appendSome(count)
    const { subscription } = yield* webhooks.create({ url: receiver.url, filter: { aggregateType: "organization" } })
    yield* Effect.forkScoped(webhooks.run)
    const expected = yield* feedOrder(schema, organizations)
    yield* webhooks
      .get(subscription.id)
      .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "paused" }))
    const answer = (next: number) => {
      status = next
    }
    return { webhooks, receiver, subscription, expected, answer }
  })

/** How many attempts of a log delivered their event. */
const delivered = (log: ReadonlyArray<{ readonly outcome: string }>) =>
  log.filter((attempt) => attempt.outcome === "delivered").length

describe(`Webhooks (${TestDatabase.engine})`, () => {
  it.live(
    "a receiver that verifies with standardwebhooks accepts every delivery; one with another secret rejects them, and the log shows it",
    () =>
      withDatabase((schema) =>
        Effect.gen(function* () {
          const webhooks = yield* Webhooks.Webhooks
          const secret = WebhookSignature.generateSecret()
          const other = WebhookSignature.generateSecret()
          const good = yield* Receiver.start((request) => ({ status: verifies(secret, request) ? 204 : 401 }))
          const wrong = yield* Receiver.start((request) => ({ status: verifies(other, request) ? 204 : 401 }))
          const organizations = yield* appendSome(20)
          const filter = { aggregateType: "organization" } as const
          const a = yield* webhooks.create({ url: good.url, secret, filter })
          const b = yield* webhooks.create({ url: wrong.url, secret, filter })
          yield* Effect.forkScoped(webhooks.run)
          const expected = yield* feedOrder(schema, organizations)
          yield* until(() => Receiver.firstAccepted(good).length >= expected.length)
          assert.deepStrictEqual(Receiver.firstAccepted(good), expected)
          assert.isTrue(good.received.every((request) => request.headers["content-type"] === "application/json"))
          const first = JSON.parse(good.received[0]!.body) as {
            readonly eventId: string
            readonly aggregateType: string
          }
          assert.strictEqual(first.eventId, good.received[0]!.id)
          assert.strictEqual(first.aggregateType, "organization")

          // The wrong secret's receiver refused the first event: it is dead-lettered, and the subscription paused.
          const paused = yield* webhooks
            .get(b.subscription.id)
            .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "paused" }))
          assert.strictEqual(paused.state, "paused")
          assert.strictEqual(wrong.accepted.length, 0)
          const log = yield* webhooks.attempts(b.subscription.id)
          assert.isAbove(log.length, 0)
          assert.isTrue(
            log.every((attempt) => Option.getOrUndefined(attempt.status) === 401 && attempt.outcome === "failed")
          )
          const letters = yield* webhooks.deadLetters(b.subscription.id)
          assert.deepStrictEqual(
            letters.map((letter) => letter.eventId),
            [expected[0]]
          )
          // The receiver answers before the runner records the attempt: wait for the last record, not its request.
          const okLog = yield* webhooks.attempts(a.subscription.id, 1000).pipe(
            Effect.repeat({
              schedule: Schedule.spaced("20 millis"),
              until: (log) => delivered(log) >= expected.length
            })
          )
          assert.strictEqual(delivered(okLog), expected.length)
        })
      )
  )

  it.live(
    "receivers that fail half the time, hold every request, or answer 410: each in order or dead-lettered, and none delays the others",
    () =>
      withDatabase((schema) =>
        Effect.gen(function* () {
          const webhooks = yield* Webhooks.Webhooks
          const organizations = yield* appendSome(30)
          const { promise: released, resolve: release } = Promise.withResolvers<void>()
          const flaky = yield* Receiver.start(() => {
            const roll = Math.random()
            return roll < 0.25
              ? { status: 503 }
              : roll < 0.4
                ? { status: 429, headers: { "retry-after": "0" } }
                : roll < 0.5
                  ? { status: 500 }
                  : { status: 200 }
          })
          const held = yield* Receiver.start(() => released.then(() => ({ status: 202 })))
          const gone = yield* Receiver.start(() => ({ status: 410 }))
          const fast = yield* Receiver.start(() => ({ status: 204 }))
          const byUrl = (url: string, onDeadLetter: "pause" | "disable" = "pause") =>
            webhooks.create({ url, filter: { aggregateType: "organization" }, maxAttempts: 50, onDeadLetter })
          const flakySub = yield* byUrl(flaky.url)
          yield* byUrl(held.url)
          const goneSub = yield* byUrl(gone.url, "disable")
          yield* byUrl(fast.url)
          yield* Effect.forkScoped(webhooks.run)
          const expected = yield* feedOrder(schema, organizations)

          // While the held receiver has every request waiting, the others go on: the fast one receives every event.
          yield* until(() => Receiver.firstAccepted(fast).length >= expected.length && held.received.length >= 1)
          assert.strictEqual(held.received.length, 1)
          assert.strictEqual(held.accepted.length, 0)
          release()

          yield* until(() => Receiver.firstAccepted(flaky).length >= expected.length)
          yield* until(() => Receiver.firstAccepted(held).length >= expected.length)
          assert.deepStrictEqual(Receiver.firstAccepted(fast), expected)
          assert.deepStrictEqual(Receiver.firstAccepted(flaky), expected)
          assert.deepStrictEqual(Receiver.firstAccepted(held), expected)
          // The flaky receiver was retried, and each event was accepted once: in order, nothing lost, nothing doubled.
          assert.isAbove(flaky.received.length, flaky.accepted.length)
          assert.strictEqual(flaky.accepted.length, expected.length)
          const flakyLog = yield* webhooks.attempts(flakySub.subscription.id, 1000)
          assert.isTrue(
            flakyLog.some((attempt) => attempt.outcome === "retry" && Option.getOrUndefined(attempt.status) === 429)
          )

          // 410: the first event is dead-lettered at once, and the subscription disabled as configured.
          const disabled = yield* webhooks
            .get(goneSub.subscription.id)
            .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "disabled" }))
          assert.strictEqual(disabled.state, "disabled")
          assert.strictEqual(gone.received.length, 1)
          assert.deepStrictEqual(
            (yield* webhooks.deadLetters(goneSub.subscription.id)).map((letter) => letter.eventId),
            [expected[0]]
          )
        })
      )
  )

  it.live("a key rotation: both secrets sign during the overlap, then only the new one", () =>
    withDatabase((schema) =>
      Effect.gen(function* () {
        const webhooks = yield* Webhooks.Webhooks
        const oldSecret = WebhookSignature.generateSecret()
        const receiver = yield* Receiver.start(() => ({ status: 204 }))
        const { subscription } = yield* webhooks.create({
          url: receiver.url,
          secret: oldSecret,
          filter: { aggregateType: "organization" }
        })
        yield* Effect.forkScoped(webhooks.run)
        const before = yield* appendSome(3)
        yield* until(() => Receiver.firstAccepted(receiver).length >= 3)
        // Paused while the secret changes, so that what follows is sent by a consumer that has both.
        yield* webhooks.setState(subscription.id, "paused")
        yield* stopped(subscription.id)
        const rotated = yield* webhooks.addSecret(subscription.id)
        yield* webhooks.setState(subscription.id, "active")
        const during = yield* appendSome(3)
        yield* until(() => Receiver.firstAccepted(receiver).length >= 6)
        yield* webhooks.setState(subscription.id, "paused")
        yield* stopped(subscription.id)
        yield* webhooks.removeSecret(subscription.id, subscription.secrets[0]!.id)
        yield* webhooks.setState(subscription.id, "active")
        const after = yield* appendSome(3)
        yield* until(() => Receiver.firstAccepted(receiver).length >= 9)

        const requests = (ids: ReadonlyArray<string>) => receiver.accepted.filter((request) => ids.includes(request.id))
        const beforeIds = yield* feedOrder(schema, before)
        const duringIds = yield* feedOrder(schema, during)
        const afterIds = yield* feedOrder(schema, after)
        for (const request of requests(beforeIds)) {
          assert.isTrue(verifies(oldSecret, request))
          assert.isFalse(verifies(rotated.secret, request))
        }
        for (const request of requests(duringIds)) {
          assert.strictEqual(request.signature.split(" ").length, 2)
          assert.isTrue(verifies(oldSecret, request))
          assert.isTrue(verifies(rotated.secret, request))
        }
        for (const request of requests(afterIds)) {
          assert.isFalse(verifies(oldSecret, request))
          assert.isTrue(verifies(rotated.secret, request))
        }
        assert.strictEqual(requests(duringIds).length, 3)
      })
    )
  )

  it.live("dead letters are redelivered, and a replay sends again what was recorded from a point in time", () =>
    withDatabase((schema) =>
      Effect.gen(function* () {
        const { webhooks, receiver, subscription, expected, answer } = yield* pausedBy410(schema, 6)
        answer(200)
        assert.deepStrictEqual(yield* webhooks.redeliver(subscription.id), [expected[0]!])
        const letters = yield* webhooks.deadLetters(subscription.id)
        assert.isTrue(Option.isSome(letters[0]!.redeliveredAt))
        yield* webhooks.setState(subscription.id, "active")
        yield* until(() => Receiver.firstAccepted(receiver).length >= expected.length)
        assert.deepStrictEqual(Receiver.firstAccepted(receiver), expected)

        // Replay from the fourth event's time: the events recorded at or after it come again, in feed order.
        const store = yield* EventStore.EventStore
        const stored = (yield* store.query(EventRegistry.raw, { aggregateType: "organization" }, { limit: 500 })).events
        const timestampOf = new Map(stored.map((event) => [event.eventId, event.timestamp]))
        const from = timestampOf.get(expected[3]!)!
        const replay = expected.filter((id) => DateTime.isGreaterThanOrEqualTo(timestampOf.get(id)!, from))
        const delivered = receiver.accepted.length
        yield* webhooks.replay(subscription.id, from)
        yield* until(() => receiver.accepted.length >= delivered + replay.length)
        assert.deepStrictEqual(
          receiver.accepted.slice(delivered).map((request) => request.id),
          replay
        )
        assert.isAtLeast(replay.length, 3)
      })
    )
  )

  it.live("replaying a subscription that a dead letter paused resumes it, and sends again from the first event", () =>
    withDatabase((schema) =>
      Effect.gen(function* () {
        const { webhooks, receiver, subscription, expected, answer } = yield* pausedBy410(schema, 4)
        assert.strictEqual(receiver.accepted.length, 0)

        // The operator fixed the endpoint and replays from the first event's time, without resuming first.
        answer(200)
        const store = yield* EventStore.EventStore
        const stored = (yield* store.query(EventRegistry.raw, { aggregateType: "organization" }, { limit: 500 })).events
        const first = stored.find((event) => event.eventId === expected[0])!
        const replayed = yield* webhooks.replay(subscription.id, first.timestamp)
        assert.strictEqual(replayed.state, "active")
        yield* until(() => receiver.accepted.length >= expected.length)
        assert.deepStrictEqual(
          receiver.accepted.map((request) => request.id),
          expected
        )
        // The paused generation's consumer was dropped before the replay's started: it lingers in no lag report.
        const consumers = yield* Consumers.Consumers
        const names = (yield* consumers.lag).map((lag) => lag.name)
        assert.deepStrictEqual(
          names.filter((name) => name.startsWith(Webhooks.consumerName(subscription.id))),
          [Webhooks.consumerName(subscription.id, 1)]
        )
      })
    )
  )

  it.live("SSRF: loopback and hosts resolving to private addresses are refused, checked again at connect time", () =>
    withDatabase((schema) =>
      Effect.gen(function* () {
        const receiver = yield* Receiver.start(() => ({ status: 204 }))
        const port = new URL(receiver.url).port
        // The first answer for rebind.example is public, every later one is the receiver's loopback address.
        let rebinds = 0
        const resolve = (hostname: string) =>
          Promise.resolve(
            hostname === "internal.example"
              ? [{ address: "10.1.2.3", family: 4 }]
              : hostname === "rebind.example"
                ? [{ address: rebinds++ === 0 ? "93.184.216.34" : "127.0.0.1", family: 4 }]
                : [{ address: "93.184.216.34", family: 4 }]
          )
        const webhooks = yield* Webhooks.make({ ...testOptions, allow: [], resolve, maxAttempts: 2 })
        for (const url of [
          `http://127.0.0.1:${port}/hook`,
          `http://[::1]:${port}/hook`,
          `http://[::ffff:127.0.0.1]:${port}/hook`,
          "http://169.254.169.254/latest/meta-data",
          "http://internal.example/hook",
          "ftp://example.com/hook",
          "http://user:pass@example.com/hook"
        ]) {
          const refused = yield* Effect.flip(webhooks.create({ url }))
          assert.strictEqual(refused._tag, "InvalidSubscription", url)
        }
        assert.deepStrictEqual(yield* webhooks.list, [])

        const organizations = yield* appendSome(1)
        const { subscription } = yield* webhooks.create({
          url: `http://rebind.example:${port}/hook`,
          filter: { aggregateType: "organization" }
        })
        yield* Effect.forkScoped(webhooks.run)
        yield* webhooks
          .get(subscription.id)
          .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "paused" }))
        const log = yield* webhooks.attempts(subscription.id)
        assert.isAbove(log.length, 0)
        assert.isTrue(log.every((attempt) => attempt.outcome === "refused"))
        assert.strictEqual(receiver.received.length, 0)
        assert.deepStrictEqual(
          (yield* webhooks.deadLetters(subscription.id)).map((letter) => letter.eventId),
          yield* feedOrder(schema, organizations)
        )
      })
    )
  )

  it.live("metrics: deliveries, failures and retries counted by subscription, and its lag above 0 then back to 0", () =>
    withDatabase((schema) =>
      Effect.gen(function* () {
        const webhooks = yield* Webhooks.Webhooks
        // Every other request is answered 503: each event fails once, is retried, and is delivered.
        // The first is held until the lag has been seen above 0.
        let requests = 0
        const { promise: released, resolve: release } = Promise.withResolvers<void>()
        const receiver = yield* Receiver.start(() => {
          const status = requests++ % 2 === 0 ? 503 : 204
          return requests === 1 ? released.then(() => ({ status })) : { status }
        })
        const organizations = yield* appendSome(4)
        const { subscription } = yield* webhooks.create({
          url: receiver.url,
          filter: { aggregateType: "organization" }
        })
        const of = <S>(metric: Metric.Metric<number, S>) =>
          Metric.value(Metric.withAttributes(metric, { subscription: subscription.id }))
        yield* Effect.forkScoped(webhooks.run)
        const expected = yield* feedOrder(schema, organizations)
        yield* of(Webhooks.metrics.lag).pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (gauge) => Number(gauge.value) > 0 })
        )
        release()
        yield* until(() => Receiver.firstAccepted(receiver).length >= expected.length)
        const lag = yield* of(Webhooks.metrics.lag).pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (gauge) => Number(gauge.value) === 0 })
        )
        assert.strictEqual(Number(lag.value), 0)
        assert.strictEqual(Number((yield* of(Webhooks.metrics.deliveries)).count), expected.length)
        assert.strictEqual(Number((yield* of(Webhooks.metrics.failures)).count), expected.length)
        assert.strictEqual(Number((yield* of(Webhooks.metrics.retries)).count), expected.length)
        assert.strictEqual(Number((yield* of(Webhooks.metrics.deadLetters)).count), 0)
      })
    )
  )
})
