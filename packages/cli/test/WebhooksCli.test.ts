/**
 * `annal webhooks` against a real database and a receiver on 127.0.0.1 that the test starts: the guard refuses
 * loopback without `--allow`; a subscription is created, listed, paused, resumed and disabled, each change an audited
 * event by its `--user`; the service (run by the test, as an application runs it) dead-letters the first event on a 410;
 * a change without `--user` is refused; the command line lists the dead letter, redelivers it, pages through the log, replays and deletes; as text and JSON.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { EventEmitter, EventRegistry, EventStore } from "@annal/core"
import { Webhooks } from "@annal/webhooks"
import { created, gst } from "../../core/test/support/FeedDatabase.ts"
import { uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

/** A receiver answering `status()` and recording the `webhook-id` of what it accepted. */
const receiver = async () => {
  let status = 410
  const accepted: Array<string> = []
  const server = createServer((request, response) => {
    request.resume()
    request.on("end", () => {
      if (status < 300) accepted.push(String(request.headers["webhook-id"]))
      response.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  const answer = (next: number) => {
    status = next
  }
  return { url, accepted, answer, close: () => new Promise((resolve) => server.close(resolve)) }
}

/** Runs the command line, which must fail and say `reason`. */
const refused = async (args: ReadonlyArray<string>, reason: string) => {
  const result = await run(args)
  assert.notStrictEqual(result.code, 0, result.stdout)
  assert.include(result.stdout + result.stderr, reason)
}

describe(`annal webhooks (${TestDatabase.engine})`, () => {
  // Two dozen runs of the command line, each a process that loads the sources.
  it("creates, lists, pauses, resumes, shows dead letters, redelivers, pages the log, replays and deletes", async () => {
    const database = await CliDatabase.make()
    const endpoint = await receiver()
    const operator = uuid()
    const allow = ["--allow", "127.0.0.0/8"]
    try {
      const org = uuid()
      await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append([created(org)])
          yield* store.append([gst(org)])
        })
      )

      await refused(["webhooks", "create", endpoint.url, "--user", operator, ...database.flags], "loopback")

      const made = await run([
        "webhooks",
        "create",
        endpoint.url,
        "--aggregate-type",
        "organization",
        "--user",
        operator,
        "--json",
        ...allow,
        ...database.flags
      ])
      assert.strictEqual(made.code, 0, made.stdout + made.stderr)
      const { subscription, secret } = JSON.parse(made.stdout)
      assert.match(secret, /^whsec_/)
      assert.deepStrictEqual([subscription.state, subscription.filter], ["active", { aggregateType: "organization" }])

      const listed = await run(["webhooks", ...database.flags])
      assert.strictEqual(listed.code, 0, listed.stdout + listed.stderr)
      assert.match(listed.stdout, /^ID +STATE +URL +FILTER +ON DEAD LETTER\n/)
      assert.include(listed.stdout, `${subscription.id}  active  ${endpoint.url}  entity organization  pause`)
      assert.notInclude(listed.stdout, secret)

      for (const [command, state] of [
        ["pause", "paused"],
        ["resume", "active"]
      ] as const) {
        const changed = await run([
          "webhooks",
          command,
          subscription.id,
          "--json",
          "--user",
          operator,
          ...database.flags
        ])
        assert.strictEqual(JSON.parse(changed.stdout).state, state, changed.stdout + changed.stderr)
      }

      // The application's delivery: the 410 dead-letters the first event and pauses the subscription.
      await database.use(
        Effect.gen(function* () {
          const webhooks = yield* Webhooks.Webhooks
          const fiber = yield* Effect.forkChild(webhooks.run)
          yield* webhooks
            .get(subscription.id)
            .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "paused" }))
          yield* Fiber.interrupt(fiber)
        }).pipe(
          Effect.provide(
            Webhooks.layer({ registry: EventRegistry.raw, allow: ["127.0.0.0/8"], refreshInterval: "50 millis" }).pipe(
              Layer.provideMerge(EventEmitter.layer)
            )
          )
        )
      )
      const letters = JSON.parse(
        (await run(["webhooks", "dead-letters", subscription.id, "--json", ...database.flags])).stdout
      )
      assert.strictEqual(letters.length, 1)
      assert.deepStrictEqual([letters[0].attempts, letters[0].redeliveredAt], [1, null])
      assert.include(letters[0].reason, "410")
      const lettersText = await run(["webhooks", "dead-letters", subscription.id, ...database.flags])
      assert.match(
        lettersText.stdout,
        new RegExp(`^EVENT +DEAD AT +ATTEMPTS +REDELIVERED +REASON\\n${letters[0].eventId} `)
      )

      endpoint.answer(204)
      const redelivered = await run([
        "webhooks",
        "redeliver",
        subscription.id,
        "--json",
        "--user",
        operator,
        ...allow,
        ...database.flags
      ])
      assert.deepStrictEqual(JSON.parse(redelivered.stdout), { delivered: [letters[0].eventId] }, redelivered.stderr)
      assert.deepStrictEqual(endpoint.accepted, [letters[0].eventId])
      const after = JSON.parse(
        (await run(["webhooks", "dead-letters", subscription.id, "--json", ...database.flags])).stdout
      )
      assert.isString(after[0].redeliveredAt)

      // The log, newest first: the redelivery, then the 410; a page of one, then the next by --before.
      const page = JSON.parse(
        (await run(["webhooks", "log", subscription.id, "--limit", "1", "--json", ...database.flags])).stdout
      )
      assert.deepStrictEqual([page.length, page[0].outcome, page[0].status], [1, "delivered", 204])
      const next = JSON.parse(
        (await run(["webhooks", "log", subscription.id, "--before", page[0].id, "--json", ...database.flags])).stdout
      )
      assert.deepStrictEqual(
        next.map((attempt: { outcome: string; status: number }) => [attempt.outcome, attempt.status]),
        [["failed", 410]]
      )
      const logText = await run(["webhooks", "log", subscription.id, ...database.flags])
      assert.match(logText.stdout, /^ID +AT +EVENT +TRY +OUTCOME +STATUS +LATENCY +ERROR\n/)
      assert.include(logText.stdout, "answered 410")

      await refused(
        ["webhooks", "replay", subscription.id, "--from", "yesterday", ...database.flags],
        "is not an ISO 8601 time"
      )
      await refused(
        ["webhooks", "replay", subscription.id, "--from", "2000-01-01T00:00:00Z", ...database.flags],
        "--user is required"
      )
      const replayed = await run([
        "webhooks",
        "replay",
        subscription.id,
        "--from",
        "2000-01-01T00:00:00Z",
        "--user",
        operator,
        "--json",
        ...database.flags
      ])
      assert.strictEqual(replayed.code, 0, replayed.stdout + replayed.stderr)
      const replaying = JSON.parse(replayed.stdout)
      assert.deepStrictEqual([replaying.state, replaying.replayFrom], ["active", "2000-01-01T00:00:00.000Z"])

      const disabled = await run(["webhooks", "disable", subscription.id, "--user", operator, ...database.flags])
      assert.include(disabled.stdout, `${subscription.id}  disabled`)
      const deleted = await run(["webhooks", "delete", subscription.id, "--user", operator, ...database.flags])
      assert.strictEqual(deleted.code, 0, deleted.stdout + deleted.stderr)
      assert.strictEqual((await run(["webhooks", ...database.flags])).stdout, "No webhook subscriptions.\n")
      await refused(
        ["webhooks", "pause", subscription.id, "--user", operator, ...database.flags],
        "SubscriptionNotFound"
      )

      // Every change made here was recorded, by the --user given.
      const recorded = await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          return (yield* store.query(EventRegistry.raw, { aggregateId: subscription.id }, { limit: 100 })).events
        })
      )
      assert.deepStrictEqual(
        recorded.slice(0, 3).map((event) => [event.eventType, event.userId]),
        [
          ["webhook_subscription.created", operator],
          ["webhook_subscription.updated", operator],
          ["webhook_subscription.updated", operator]
        ]
      )
      assert.strictEqual(recorded.at(-1)!.eventType, "webhook_subscription.deleted")
    } finally {
      await endpoint.close()
      await database.remove()
    }
  }, 300_000)
})
