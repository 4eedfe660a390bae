/**
 * The webhook delivery killed mid-delivery and restarted 10 times, on PostgreSQL (the child process needs a database
 * another process can reach): a real receiver on 127.0.0.1 gets every event, in feed order by first delivery, and
 * each event it gets more than once comes with the same `webhook-id` and the same body. Half of the kills fall while
 * the receiver holds a request (so that event is sent again, certainly), the others once it has accepted some more,
 * wherever the child then is; the receiver also answers 503 now and then, so kills land amid retries too.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import { exited } from "../../sql-pglite/test/support/FolderHolder.ts"
import * as Webhooks from "../src/Webhooks.ts"
import { appendSome, feedOrder, until, withDatabase } from "./support/Deliveries.ts"
import * as Receiver from "./support/Receiver.ts"

const postgres = TestDatabase.engine === "postgres"
const script = fileURLToPath(new URL("./support/deliveryProcess.ts", import.meta.url))

describe(`Webhooks, killed (${TestDatabase.engine})`, () => {
  it.live.runIf(postgres)(
    "the delivery killed mid-delivery 10 times: nothing is lost, and duplicates carry the same webhook-id and body",
    () =>
      withDatabase((schema) =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const webhooks = yield* Webhooks.Webhooks
          // The request numbered `holdAt` is never answered: the child is killed while it waits for it.
          let holdAt = -1
          let count = 0
          const receiver = yield* Receiver.start(() => {
            const index = count++
            if (index === holdAt) return new Promise<Receiver.Answer>(() => {})
            return { status: Math.random() < 0.15 ? 503 : 204 }
          })
          const organizations = [...(yield* appendSome(150))]
          const { subscription } = yield* webhooks.create({
            url: receiver.url,
            filter: { aggregateType: "organization" },
            maxAttempts: 100
          })
          const name = Webhooks.consumerName(subscription.id)
          // More events commit while the delivery is killed and restarted.
          const writer = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 20 }),
              () => Effect.map(appendSome(5), (ids) => organizations.push(...ids)),
              { discard: true }
            )
          )
          const start = () => spawn(process.execPath, [script, TestDatabase.postgresUrl, schema], { stdio: "ignore" })
          let held = 0
          for (let kill = 0; kill < 10; kill++) {
            const child = start()
            yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
            if (kill % 2 === 0) {
              // Killed while the receiver holds a request: that event must come again, with the same id and body.
              holdAt = count + 3 + kill
              yield* until(() => count > holdAt)
              held++
            } else {
              const accepted = receiver.accepted.length
              yield* until(() => receiver.accepted.length >= accepted + 4 + kill)
            }
            child.kill("SIGKILL")
            yield* exited(child)
            // The dead child's lease is expired on the database's clock, so the next one takes over at once.
            yield* sql`UPDATE ${sql(`${schema}.events_consumers`)}
              SET lease_expires_at = clock_timestamp() - interval '1 millisecond' WHERE name = ${name}`
          }
          yield* Fiber.join(writer)
          const expected = yield* feedOrder(schema, organizations)
          assert.strictEqual(expected.length, 250)
          const final = start()
          yield* Effect.addFinalizer(() => Effect.sync(() => final.kill("SIGKILL")))
          yield* until(() => Receiver.firstAccepted(receiver).length >= expected.length)
          final.kill("SIGKILL")
          yield* exited(final)

          // Every event, in feed order, by first delivery and by first acceptance.
          assert.deepStrictEqual(Receiver.firstAccepted(receiver), expected)
          assert.deepStrictEqual([...new Set(receiver.received.map((request) => request.id))], expected)
          // Every copy of an event has its id and the same body, whichever process sent it.
          const bodies = new Map<string, string>()
          for (const request of receiver.received) {
            assert.strictEqual((JSON.parse(request.body) as { readonly eventId: string }).eventId, request.id)
            const first = bodies.get(request.id)
            if (first === undefined) bodies.set(request.id, request.body)
            else assert.strictEqual(request.body, first, request.id)
          }
          // The held requests were sent again after the kill: duplicates happened, and were checked above.
          const copies = new Map<string, number>()
          for (const request of receiver.received) copies.set(request.id, (copies.get(request.id) ?? 0) + 1)
          assert.isAtLeast([...copies.values()].filter((n) => n > 1).length, held)
          assert.strictEqual(held, 5)
          assert.strictEqual((yield* webhooks.get(subscription.id)).state, "active")
        })
      ),
    240_000
  )
})
