/**
 * The JetStream relay against the local NATS server and PostgreSQL: killed and restarted mid-stream, the stream
 * holds every event once, in feed order; and a consumer in a separate process, with nothing but the NATS client,
 * builds the same projection from the stream as a local consumer builds from the feed. Each test publishes to a
 * stream and subjects of its own, named after a random run id, and deletes the stream after.
 */
import { Checkpoint, Consumer, Consumers, EventRegistry, EventStore, type Event } from "@annal/core"
import { EventJson } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { apply, initial, type Projection } from "../../../examples/jetstream-projection/src/projection.ts"
import { uuid } from "../../core/test/support/Fixtures.ts"
import * as FeedDatabase from "../../core/test/support/FeedDatabase.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as JetStreamRelay from "../src/JetStreamRelay.ts"
import * as Nats from "../src/Nats.ts"

const postgres = TestDatabase.engine === "postgres"
const natsUrl = process.env["NATS_URL"] ?? "127.0.0.1:4222"

/** A stream and subject prefix of this test's own, deleted when the test ends. */
const ownStream = Effect.gen(function* () {
  const run = uuid().replaceAll("-", "").slice(0, 12)
  const stream = `ANNAL_TEST_${run}`
  const subjectPrefix = `annal_test_${run}.events`
  const { manager } = yield* Nats.Nats
  yield* Effect.acquireRelease(JetStreamRelay.ensureStream({ stream, subjectPrefix }), () =>
    Effect.ignore(Nats.attempt("streams.delete", () => manager.streams.delete(stream)))
  )
  return { stream, subjectPrefix }
})

/** Every message of the stream, in stream order: its subject, `Nats-Msg-Id` and checkpoint header. */
const messagesOf = (stream: string) =>
  Effect.gen(function* () {
    const { manager } = yield* Nats.Nats
    const info = yield* Nats.attempt("streams.info", () => manager.streams.info(stream))
    const messages: Array<{ readonly subject: string; readonly id: string; readonly checkpoint: string }> = []
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const message = yield* Nats.attempt("streams.getMessage", () => manager.streams.getMessage(stream, { seq }))
      if (message === null) continue
      messages.push({
        subject: message.subject,
        id: message.header.get("Nats-Msg-Id"),
        checkpoint: message.header.get(JetStreamRelay.checkpointHeader)
      })
    }
    return messages
  })

const streamCount = (stream: string) =>
  Effect.gen(function* () {
    const { manager } = yield* Nats.Nats
    return (yield* Nats.attempt("streams.info", () => manager.streams.info(stream))).state.messages
  })

/** Appends `count` events in transactions of one to three events, new organizations and their GST numbers. */
const appendSome = (count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let left = count
    while (left > 0) {
      const id = uuid()
      const size = Math.min(left, 1 + Math.floor(Math.random() * 3))
      const events = [FeedDatabase.created(id, `Org ${left}`), FeedDatabase.gst(id, "29A"), FeedDatabase.gst(id, "29B")]
      yield* store.append(events.slice(0, size))
      left -= size
    }
  })

const exited = (child: ReturnType<typeof spawn>) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
    else child.once("exit", () => resume(Effect.void))
  })

/** The feed over an events table in `schema`, and a NATS connection. */
const testLayer = (schema: string) =>
  Layer.merge(FeedDatabase.layerWith(schema), Nats.layer({ servers: natsUrl }).pipe(Layer.orDie))

const killed = TestDatabase.uniqueSchema()
layer(testLayer(killed), { excludeTestServices: true })(`JetStreamRelay, killed (${TestDatabase.engine})`, (it) => {
  const schema = killed
  it.effect.runIf(postgres)(
    "the relay killed and restarted 10 times mid-stream: the stream holds every event once, in feed order",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { stream, subjectPrefix } = yield* ownStream
        const name = `relay-${uuid()}`
        const script = fileURLToPath(new URL("./support/relayProcess.ts", import.meta.url))
        yield* appendSome(600)
        // More events commit while the relay is killed and restarted.
        const writer = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 20 }), () => appendSome(10), { discard: true })
        )
        let midBatch = 0
        for (let kill = 0; kill < 10; kill++) {
          const before = yield* streamCount(stream)
          const child = spawn(
            process.execPath,
            [script, TestDatabase.postgresUrl, schema, stream, subjectPrefix, name],
            {
              stdio: "ignore",
              env: { ...process.env, NATS_URL: natsUrl }
            }
          )
          yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
          // Killed once it has published some more; or, on a machine so loaded that it published everything
          // before this process looked, once it has caught up, so the wait always ends.
          const events = sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM ${sql(`${schema}.events`)}`
          yield* Effect.all([streamCount(stream), events]).pipe(
            Effect.repeat({
              schedule: Schedule.spaced("5 millis"),
              until: ([count, rows]) => count >= before + 15 || count >= rows[0]!.count
            })
          )
          child.kill("SIGKILL")
          yield* exited(child)
          // A kill between JetStream's acknowledgement and the checkpoint: the next relay publishes those again.
          const lag = yield* FeedDatabase.lagOf(name)
          const last = (yield* messagesOf(stream)).at(-1)!
          const lastPublished = yield* Checkpoint.decode(last.checkpoint)
          if (Checkpoint.compare(lastPublished, lag.checkpoint) > 0) midBatch++
          // The dead child's lease is expired on the database's clock, so the next one takes over at once.
          yield* sql`UPDATE ${sql(`${schema}.events_consumers`)}
            SET lease_expires_at = clock_timestamp() - interval '1 millisecond' WHERE name = ${name}`
        }
        yield* Fiber.join(writer)
        const final = spawn(process.execPath, [script, TestDatabase.postgresUrl, schema, stream, subjectPrefix, name], {
          stdio: "ignore",
          env: { ...process.env, NATS_URL: natsUrl }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => final.kill("SIGKILL")))
        yield* FeedDatabase.caughtUp(schema, name)
        final.kill("SIGKILL")
        yield* exited(final)

        const committed = yield* FeedDatabase.committed(schema)
        const messages = yield* messagesOf(stream)
        assert.strictEqual(committed.length, 800)
        assert.deepStrictEqual(
          messages.map((message) => message.id),
          committed.map((event) => event.eventId)
        )
        assert.deepStrictEqual(
          messages.map((message) => message.checkpoint),
          committed.map((event) => Checkpoint.encode(event.checkpoint))
        )
        const types = yield* sql<{ readonly event_type: string }>`SELECT e.event_type
          FROM ${sql(`${schema}.events_commits`)} c JOIN ${sql(`${schema}.events`)} e ON e.transaction_id = c.transaction_id
          ORDER BY c.commit_sequence, e.global_position`
        assert.deepStrictEqual(
          messages.map((message) => message.subject),
          types.map((row) => `${subjectPrefix}.${row.event_type}`)
        )
        // At least one kill fell between an acknowledgement and its checkpoint, so re-publishes were refused.
        assert.isAbove(midBatch, 0)
      }),
    240_000
  )
})

const remote = TestDatabase.uniqueSchema()
layer(testLayer(remote), { excludeTestServices: true })(`JetStreamRelay, remote (${TestDatabase.engine})`, (it) => {
  const schema = remote
  it.effect.runIf(postgres)(
    "a JetStream consumer in another process builds the same projection as a local consumer",
    () =>
      Effect.gen(function* () {
        const consumers = yield* Consumers.Consumers
        const { stream, subjectPrefix } = yield* ownStream
        yield* appendSome(120)
        const relay = yield* JetStreamRelay.make({
          name: `relay-${uuid()}`,
          registry: EventRegistry.raw,
          stream,
          subjectPrefix,
          pollInterval: "100 millis",
          acquireInterval: "100 millis"
        })
        yield* Effect.forkScoped(consumers.run(relay))
        // The local consumer folds the same JSON the relay sends.
        const toJson = EventJson.makeToAuditEvent(EventRegistry.raw)
        let local: Projection = initial
        const localName = `local-${uuid()}`
        yield* Effect.forkScoped(
          consumers.run(
            Consumer.make({
              name: localName,
              registry: EventRegistry.raw,
              pollInterval: "100 millis",
              acquireInterval: "100 millis",
              handle: (batch) =>
                Effect.forEach(batch.events, (event: Event.Event) =>
                  toJson(event).pipe(
                    Effect.flatMap(EventJson.encodeText),
                    Effect.map((text) => {
                      local = apply(local, JSON.parse(text))
                    }),
                    Effect.orDie
                  )
                )
            })
          )
        )
        const folder = mkdtempSync(join(tmpdir(), "annal-jetstream-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(folder, { recursive: true, force: true })))
        const file = join(folder, "projection.json")
        const example = fileURLToPath(new URL("../../../examples/jetstream-projection/src/main.ts", import.meta.url))
        const start = () =>
          spawn(process.execPath, [example], {
            stdio: "ignore",
            env: {
              ...process.env,
              NATS_URL: natsUrl,
              ANNAL_STREAM: stream,
              ANNAL_DURABLE: "projection",
              ANNAL_SUBJECTS: `${subjectPrefix}.>`,
              PROJECTION_FILE: file
            }
          })
        const savedSequence = Effect.sync(() =>
          existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { readonly sequence: number }).sequence : 0
        )
        // The remote consumer is killed once part-way and restarted: it goes on from its durable consumer.
        const first = start()
        yield* Effect.addFinalizer(() => Effect.sync(() => first.kill("SIGKILL")))
        yield* savedSequence.pipe(Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (seq) => seq >= 30 }))
        first.kill("SIGKILL")
        yield* exited(first)
        yield* appendSome(60)
        const second = start()
        yield* Effect.addFinalizer(() => Effect.sync(() => second.kill("SIGKILL")))
        yield* FeedDatabase.caughtUp(schema, localName)
        const total = (yield* FeedDatabase.committed(schema)).length
        assert.strictEqual(total, 180)
        yield* savedSequence.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (seq) => seq >= total })
        )
        const saved = JSON.parse(readFileSync(file, "utf8")) as {
          readonly sequence: number
          readonly projection: Projection
        }
        assert.strictEqual(saved.sequence, total)
        assert.strictEqual(
          Object.values(local).reduce((sum, row) => sum + row.events, 0),
          total
        )
        assert.deepStrictEqual(saved.projection, local)
      }),
    120_000
  )
})
