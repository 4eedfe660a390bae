/**
 * A consumer on another machine: it follows Annal's events from JetStream with nothing but the NATS client, and
 * builds a projection (`projection.ts`). It is plain TypeScript on purpose, without Effect or Annal, to show that a
 * remote service needs neither.
 *
 * It reads through a durable consumer with explicit acks, so a restart goes on from the last acknowledged message,
 * and with one message in flight at a time (`max_ack_pending: 1`): a projection needs the events in order, and a
 * consumer with several unacknowledged messages gets a lost one again only after those that followed it. The projection and the stream sequence it has applied are saved together (to a temporary file, then renamed) before
 * each acknowledgement: a message redelivered after a crash has a sequence at or below the saved one, and is
 * acknowledged without being applied again.
 *
 * Settings from the environment: NATS_URL (default 127.0.0.1:4222), ANNAL_STREAM (ANNAL), ANNAL_DURABLE
 * (organization-names), ANNAL_SUBJECTS (annal.events.>), PROJECTION_FILE (organizations.json).
 *
 * Run: node src/main.ts
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { apply, initial, type Projection, type RelayedEvent } from "./projection.ts"

const servers = process.env["NATS_URL"] ?? "127.0.0.1:4222"
const stream = process.env["ANNAL_STREAM"] ?? "ANNAL"
const durable = process.env["ANNAL_DURABLE"] ?? "organization-names"
const subjects = process.env["ANNAL_SUBJECTS"] ?? "annal.events.>"
const file = process.env["PROJECTION_FILE"] ?? "organizations.json"

/** What is saved: the projection, and the last stream sequence applied to it. */
interface Saved {
  readonly sequence: number
  readonly projection: Projection
}

let saved: Saved = existsSync(file)
  ? (JSON.parse(readFileSync(file, "utf8")) as Saved)
  : { sequence: 0, projection: initial }

const save = (next: Saved) => {
  writeFileSync(`${file}.tmp`, JSON.stringify(next))
  renameSync(`${file}.tmp`, file)
  saved = next
}

const connection = await connect({ servers, name: durable })
const manager = await jetstreamManager(connection)
// Creating a durable consumer that exists with the same settings is a no-op, so every start may do it.
await manager.consumers.add(stream, {
  durable_name: durable,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  max_ack_pending: 1,
  // How long a message delivered to a consumer that died waits before it is delivered again (nanoseconds).
  ack_wait: 5_000_000_000,
  filter_subject: subjects
})
const consumer = await jetstream(connection).consumers.get(stream, durable)
const messages = await consumer.consume()
process.on("SIGTERM", () => void messages.close())
console.log(`following ${stream} (${subjects}) from sequence ${saved.sequence + 1}`)
for await (const message of messages) {
  if (message.seq > saved.sequence) {
    save({ sequence: message.seq, projection: apply(saved.projection, message.json<RelayedEvent>()) })
  }
  message.ack()
}
await connection.drain()
