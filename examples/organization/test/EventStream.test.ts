/**
 * The live event stream, `GET /events/stream`, over real HTTP on the engine of the test project, read by a raw
 * HTTP client that parses the Server-Sent Events itself: events written through the API arrive live with their
 * checkpoints as ids; a client that reconnects with `Last-Event-ID` gets exactly what it missed (and one that
 * reconnects without it misses it); the audit API's authentication, access rules and validation hold; a user's
 * connections are capped; a client that stops reading is dropped, which frees its slot; an idle stream sends
 * heartbeats. A client that hangs up ends its stream at once, and an auditor's read is recorded as the request's
 * whether the stream ended by the hang-up or by being dropped mid-write.
 */
import { Checkpoint, EventStore } from "@annal/core"
import { AuditApi } from "@annal/http"
import { assert, describe, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type * as HttpServer from "effect/http/HttpServer"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import * as net from "node:net"
import * as App from "../src/App.ts"
import * as DemoUsers from "../src/DemoUsers.ts"
import { OrganizationCreated } from "../src/Events.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")
const bob = DemoUsers.user("bob")
const carol = DemoUsers.user("carol")

/** Small limits, so that the cap, the buffer and the heartbeat show within a test. */
const limits = {
  maxConnectionsPerUser: 3,
  bufferSize: 16,
  slowClientTimeout: "1 second",
  heartbeat: "200 millis",
  retry: "1500 millis",
  pollInterval: "200 millis"
} as const

/** The app with the stream's limits `eventStream`, over a fresh database. */
const appLayerWith = (eventStream: App.EventStreamLimits) =>
  Layer.unwrap(
    Effect.map(DemoUsers.tokenEntries, (tokens) =>
      App.layer({ port: 0, host: "127.0.0.1", tokens, eventStream, requestTimeout: TestApp.requestTimeout })
    )
  ).pipe(Layer.provideMerge(TestApp.sqlLayer), Layer.provideMerge(FetchHttpClient.layer), Layer.orDie)

const appLayer = appLayerWith(limits)

/**
 * One stream per user and a heartbeat that never comes within a test: nothing the server writes can fail and show
 * it a client that hung up, so only its noticing the socket's close ends the stream.
 */
const hangUpLimits = { ...limits, maxConnectionsPerUser: 1, heartbeat: "1 hour" } as const

// ---------------------------------------------------------------------------------------------------------------
// A Server-Sent Events client: node:http, reading the body as it arrives and parsing it here.
// ---------------------------------------------------------------------------------------------------------------

/** One message of the stream, as the client parsed it. */
type Message =
  | { readonly kind: "event"; readonly id: string | undefined; readonly event: string; readonly data: string }
  | { readonly kind: "comment"; readonly text: string }
  | { readonly kind: "retry"; readonly millis: number }

/** Parses the complete messages at the front of `text`; returns them and what is left. */
const parseMessages = (text: string): { readonly messages: ReadonlyArray<Message>; readonly rest: string } => {
  const messages: Array<Message> = []
  let rest = text
  let end = rest.indexOf("\n\n")
  while (end >= 0) {
    const block = rest.slice(0, end)
    rest = rest.slice(end + 2)
    end = rest.indexOf("\n\n")
    let id: string | undefined
    let event = "message"
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        messages.push({ kind: "comment", text: line.slice(1).trim() })
        continue
      }
      const colon = line.indexOf(":")
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "id") id = value
      else if (field === "event") event = value
      else if (field === "data") data.push(value)
      else if (field === "retry") messages.push({ kind: "retry", millis: Number(value) })
    }
    if (data.length > 0) messages.push({ kind: "event", id, event, data: data.join("\n") })
  }
  return { messages, rest }
}

/** An open response: its status and headers, and its body message by message. */
interface Connection {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  /** The messages as they arrive; the queue ends when the server ends the response. */
  readonly messages: Queue.Dequeue<Message, Cause.Done>
  /** All the body's text so far, for error responses. */
  readonly text: () => string
}

/** What to send. */
interface ConnectOptions {
  readonly as?: "alice" | "bob" | "carol" | "dana" | { readonly token: string }
  readonly headers?: Record<string, string>
}

/** Opens `GET path` and keeps it open for the scope; the connection is destroyed when the scope closes. */
const connect = (
  path: string,
  options: ConnectOptions = {}
): Effect.Effect<Connection, never, Scope.Scope | HttpServer.HttpServer> =>
  Effect.gen(function* () {
    const base = yield* TestApp.baseUrl
    const headers: Record<string, string> = { ...options.headers }
    if (options.as !== undefined) {
      headers["authorization"] =
        `Bearer ${typeof options.as === "string" ? DemoUsers.user(options.as).token : options.as.token}`
    }
    const messages = yield* Queue.unbounded<Message, Cause.Done>()
    const { request, response } = yield* Effect.acquireRelease(
      Effect.callback<{ readonly request: http.ClientRequest; readonly response: http.IncomingMessage }>((resume) => {
        const request = http.get(`${base}${path}`, { headers, agent: false }, (response) =>
          resume(Effect.succeed({ request, response }))
        )
        request.on("error", (error) => resume(Effect.die(error)))
      }),
      ({ request }) => Effect.sync(() => request.destroy())
    )
    let text = ""
    let pending = ""
    response.setEncoding("utf8")
    response.on("data", (chunk: string) => {
      text += chunk
      const parsed = parseMessages(pending + chunk)
      pending = parsed.rest
      Queue.offerAllUnsafe(messages, parsed.messages)
    })
    const ended = () => Queue.endUnsafe(messages)
    response.on("end", ended)
    response.on("close", ended)
    request.on("error", ended)
    return { status: response.statusCode ?? 0, headers: response.headers, messages, text: () => text }
  })

/**
 * The next event of the stream, passing over heartbeats; fails the test if the stream ends first, or if none comes
 * for long (a bound that keeps a missing event from hanging the test, not a measure of speed).
 */
const nextEvent = (connection: Connection) =>
  Effect.gen(function* () {
    while (true) {
      const message = yield* Queue.take(connection.messages).pipe(
        Effect.catch(() => Effect.die(new Error("the stream ended")))
      )
      if (message.kind === "event") return message
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: "15 seconds",
      orElse: () => Effect.die(new Error("no event came"))
    })
  )

/** The next `n` events. */
const nextEvents = (connection: Connection, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => nextEvent(connection))

/** Waits for the end of a response, and returns its body. */
const bodyOf = (connection: Connection) =>
  Effect.gen(function* () {
    yield* Effect.exit(Queue.takeAll(connection.messages).pipe(Effect.forever))
    return connection.text()
  })

// ---------------------------------------------------------------------------------------------------------------
// Writing through the API
// ---------------------------------------------------------------------------------------------------------------

let panCounter = 3000
const freshPan = () => `STRMA${String(panCounter++).padStart(4, "0")}Z`

const Created = Schema.Struct({ id: Schema.String })

/** Creates an organization as `as`, with the given correlation id; returns its id. */
const createOrganization = (name: string, as: "alice" | "bob" | "carol", correlationId?: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("POST", "/organizations", {
      as,
      body: { name, type: "private_limited", email: "accounts@stream.example", pan: freshPan() },
      headers: correlationId === undefined ? undefined : { "x-correlation-id": correlationId }
    })
    assert.strictEqual(response.status, 201, response.text)
    return TestApp.decode(Created)(response.body).id
  })

/** Renames an organization as `as`, with the given correlation id. */
const rename = (id: string, name: string, as: "alice" | "bob" | "carol", correlationId: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("PATCH", `/organizations/${id}`, {
      as,
      body: { name },
      headers: { "x-correlation-id": correlationId }
    })
    assert.strictEqual(response.status, 200, response.text)
  })

const page = TestApp.decode(AuditApi.EventPage)

/** The events of a correlation id, oldest first, as the audit API lists them to the auditor, as JSON. */
const eventsOf = (correlationId: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("GET", `/audit/events?correlationId=${correlationId}&limit=500`, {
      as: "dana"
    })
    assert.strictEqual(response.status, 200, response.text)
    page(response.body)
    return (response.body as { readonly events: ReadonlyArray<Record<string, unknown>> }).events
  })

/** The checkpoint id the stream gives an event: its transaction's commit sequence and its global position. */
const checkpointId = Effect.fnUntraced(function* (event: Record<string, unknown>) {
  const sql = yield* SqlClient.SqlClient
  const [commit] = yield* sql<{ readonly commit_sequence: string }>`SELECT commit_sequence::text AS commit_sequence
    FROM events_commits WHERE transaction_id = ${String(event["transactionId"])}::xid8`
  return Checkpoint.encode(Checkpoint.make(BigInt(commit!.commit_sequence), BigInt(String(event["globalPosition"]))))
})

const ErrorJson = Schema.Struct({
  _tag: Schema.String,
  message: Schema.String,
  issues: Schema.optionalKey(Schema.Array(Schema.Struct({ field: Schema.String, reason: Schema.String }))),
  limit: Schema.optionalKey(Schema.Number),
  correlationId: Schema.optionalKey(Schema.String)
})
const decodeError = Schema.decodeUnknownSync(Schema.fromJsonString(ErrorJson))

/** Opens a stream that must be refused: its status, and its body, which must be a typed error and nothing else. */
const refused = (path: string, options: ConnectOptions = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const connection = yield* connect(path, options)
      const text = yield* bodyOf(connection)
      assert.include(connection.headers["content-type"] ?? "", "application/json")
      return { status: connection.status, error: decodeError(text) }
    })
  )

layer(appLayer, TestApp.layerOptions)("GET /events/stream", (it) => {
  describe("live delivery", () => {
    it.effect("delivers events written through the API as they happen, with their checkpoints as ids", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const correlationId = crypto.randomUUID()
          const stream = yield* connect(`/events/stream?correlationId=${correlationId}`, { as: "dana" })
          assert.strictEqual(stream.status, 200)
          assert.include(stream.headers["content-type"] ?? "", "text/event-stream")
          assert.strictEqual(stream.headers["cache-control"], "no-cache")
          assert.strictEqual(stream.headers["x-accel-buffering"], "no")
          assert.isString(stream.headers["x-correlation-id"], "the request context still applies")
          assert.deepStrictEqual(yield* Queue.take(stream.messages), { kind: "retry", millis: 1500 })

          const id = yield* createOrganization("Live Traders", "alice", correlationId)
          yield* rename(id, "Live Traders Two", "alice", correlationId)
          const created = yield* nextEvent(stream)
          const updated = yield* nextEvent(stream)
          const written = yield* eventsOf(correlationId)
          assert.strictEqual(written.length, 2)
          assert.deepStrictEqual(
            [created, updated].map((message) => [message.event, message.id]),
            yield* Effect.forEach(written, (event) => Effect.map(checkpointId(event), (id) => [event["eventType"], id]))
          )
          // The data is the audit API's JSON of the event, exactly.
          assert.deepStrictEqual(JSON.parse(created.data), written[0])
          assert.deepStrictEqual(JSON.parse(updated.data), written[1])
          // An id is a checkpoint the feed reads after.
          const checkpoint = yield* Checkpoint.decode(updated.id ?? "")
          assert.strictEqual(checkpoint.globalPosition, BigInt(String(written[1]!["globalPosition"])))
        })
      )
    )

    it.effect("restricted to the caller's own events, delivers theirs and nobody else's", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* connect(`/events/stream?userId=${alice.userId.toUpperCase()}`, { as: "alice" })
          assert.strictEqual(stream.status, 200)
          yield* createOrganization("Bob's Own Traders", "bob")
          const mine = yield* createOrganization("Alice's Own Traders", "alice")
          const event = yield* nextEvent(stream)
          const data = JSON.parse(event.data) as Record<string, unknown>
          assert.strictEqual(data["aggregateId"], mine)
          assert.strictEqual(data["userId"], alice.userId)
        })
      )
    )

    it.effect("an idle stream sends keep-alive comments", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* connect(`/events/stream?correlationId=${crypto.randomUUID()}`, { as: "dana" })
          assert.strictEqual(stream.status, 200)
          const comments: Array<Message> = []
          while (comments.length < 2) {
            const message = yield* Queue.take(stream.messages)
            if (message.kind === "comment") comments.push(message)
            else assert.strictEqual(message.kind, "retry")
          }
          assert.deepStrictEqual(comments, [
            { kind: "comment", text: "keep-alive" },
            { kind: "comment", text: "keep-alive" }
          ])
        })
      )
    )
  })

  describe("reconnecting", () => {
    it.effect("with Last-Event-ID gets exactly the events it missed, in order; without it, misses them", () =>
      Effect.gen(function* () {
        const correlationId = crypto.randomUUID()
        const path = `/events/stream?correlationId=${correlationId}`
        const id = yield* createOrganization("Resumed Traders", "alice", correlationId)

        // The first connection reads three events, then goes away. It starts at the head, which the server reads
        // before it answers: the creation, committed before the request, is behind it (the feed's head is every
        // commit before the call, whatever else the server is doing).
        const first = yield* Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* connect(path, { as: "dana" })
            for (const name of ["One", "Two", "Three"])
              yield* rename(id, `Resumed Traders ${name}`, "alice", correlationId)
            return yield* nextEvents(stream, 3)
          })
        )
        const lastSeen = first.at(-1)!.id!

        // Written while nobody listens.
        for (const name of ["Four", "Five", "Six"]) yield* rename(id, `Resumed Traders ${name}`, "alice", correlationId)

        yield* Effect.scoped(
          Effect.gen(function* () {
            const resumed = yield* connect(path, { as: "dana", headers: { "last-event-id": lastSeen } })
            assert.strictEqual(resumed.status, 200)
            // The contrast: a client that reconnects without its last id starts at the head.
            const fresh = yield* connect(path, { as: "dana" })
            assert.strictEqual(fresh.status, 200)
            // The query parameter does what the header does, for clients that cannot set headers.
            const byQuery = yield* connect(`${path}&lastEventId=${lastSeen}`, { as: "dana" })
            assert.strictEqual(byQuery.status, 200)

            yield* rename(id, "Resumed Traders Seven", "alice", correlationId)
            const all = yield* Effect.forEach(yield* eventsOf(correlationId), checkpointId)
            assert.strictEqual(all.length, 8, "created, then seven renames")

            // Nothing missed, nothing twice: the two connections together are every event after the creation.
            assert.deepStrictEqual(idsOf(first), all.slice(1, 4), "the first connection: the three renames it saw")
            const missed = yield* nextEvents(resumed, 4)
            assert.deepStrictEqual([...idsOf(first), ...idsOf(missed)], all.slice(1))
            assert.deepStrictEqual(idsOf(yield* nextEvents(byQuery, 4)), all.slice(4))
            // Without Last-Event-ID, the events written while away are lost to the client.
            assert.deepStrictEqual(idsOf(yield* nextEvents(fresh, 1)), all.slice(7))
          })
        )
      })
    )
  })

  describe("who may stream what", () => {
    it.effect("answers 401 without a known token, and 403 to a stream beyond the caller's own events", () =>
      Effect.gen(function* () {
        const bobsOrganization = yield* createOrganization("Bob's Private Traders", "bob")
        const cases: ReadonlyArray<readonly [string, ConnectOptions, number, string]> = [
          ["/events/stream", {}, 401, "Unauthenticated"],
          ["/events/stream", { as: { token: "not-a-token" } }, 401, "Unauthenticated"],
          ["/events/stream", { as: "alice" }, 403, "Forbidden"],
          [`/events/stream?userId=${bob.userId}`, { as: "alice" }, 403, "Forbidden"],
          [
            `/events/stream?aggregateType=organization&aggregateId=${bobsOrganization}`,
            { as: "alice" },
            403,
            "Forbidden"
          ],
          [`/events/stream?aggregateId=${bobsOrganization}`, { as: "bob" }, 403, "Forbidden"],
          [`/events/stream?eventType=organization.created`, { as: "carol" }, 403, "Forbidden"]
        ]
        for (const [path, options, status, tag] of cases) {
          const answer = yield* refused(path, options)
          assert.strictEqual(answer.status, status, path)
          assert.strictEqual(answer.error._tag, tag, path)
        }
        // What they may see: an entity they changed, and a commodity (the app lets anyone read those).
        for (const path of [
          `/events/stream?aggregateType=organization&aggregateId=${bobsOrganization}`,
          `/events/stream?aggregateType=commodity&aggregateId=c0000000-0000-4000-8000-000000000001`
        ]) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const stream = yield* connect(path, { as: "bob" })
              assert.strictEqual(stream.status, 200, path)
            })
          )
        }
      })
    )

    it.effect("records an auditor's stream when it ends: where it started and how many events it sent", () =>
      Effect.gen(function* () {
        const [watched, reading] = [crypto.randomUUID(), crypto.randomUUID()]
        const path = `/events/stream?correlationId=${watched}&aggregateType=organization`
        const ids = yield* Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* connect(path, { as: "dana", headers: { "x-correlation-id": reading } })
            assert.strictEqual(stream.status, 200)
            // Alice's streams are not recorded; she is not an auditor.
            const own = yield* connect(`/events/stream?userId=${alice.userId}`, {
              as: "alice",
              headers: { "x-correlation-id": reading }
            })
            assert.strictEqual(own.status, 200)
            const id = yield* createOrganization("Watched Traders", "alice", watched)
            yield* rename(id, "Watched Traders Two", "alice", watched)
            return (yield* nextEvents(stream, 2)).map((message) => message.id)
          })
        )
        // The record is written as the server sees the stream end: waited for, not slept on.
        const reads = yield* eventsOf(reading).pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (events) => events.length > 0 }),
          Effect.timeout("30 seconds")
        )
        assert.strictEqual(reads.length, 1)
        assert.strictEqual(reads[0]!["eventType"], "audit.read")
        const data = reads[0]!["data"] as Record<string, unknown>
        assert.strictEqual(data["returned"], 2)
        assert.strictEqual(data["continued"], false)
        const parameters = data["parameters"] as Record<string, unknown>
        assert.deepStrictEqual(
          { ...parameters, after: undefined },
          {
            correlationId: watched,
            aggregateType: "organization",
            after: undefined
          }
        )
        // Where it started: the head when it connected, an id of the stream's own format.
        assert.match(Buffer.from(String(parameters["after"]), "base64url").toString(), /^annal\.feed\.v\d+:\d+:\d+$/)
        assert.lengthOf(ids, 2)
      })
    )
  })

  describe("malformed requests", () => {
    it.effect("are typed 400s that name the field", () =>
      Effect.gen(function* () {
        const own = `userId=${alice.userId}`
        const cases: ReadonlyArray<readonly [string, ConnectOptions, string]> = [
          [`/events/stream?${own}`, { headers: { "last-event-id": "not-an-id" } }, "header.last-event-id"],
          [`/events/stream?${own}&lastEventId=bm90IGEgY2hlY2twb2ludA`, {}, "query.lastEventId"],
          ["/events/stream?userId=not-a-uuid", {}, "query.userId"],
          [`/events/stream?aggregateId=123&${own}`, {}, "query.aggregateId"],
          [`/events/stream?${own}&from=2025-01-01T00:00:00Z`, {}, "query.from"],
          [`/events/stream?${own}&limit=5`, {}, "query.limit"],
          [`/events/stream?${own}&eventType=Not.A.Type`, {}, "query.eventType.0"]
        ]
        for (const [path, options, field] of cases) {
          const answer = yield* refused(path, { as: "alice", ...options })
          assert.strictEqual(answer.status, 400, path)
          assert.strictEqual(answer.error._tag, "InvalidRequest", path)
          assert.include(
            (answer.error.issues ?? []).map((issue) => issue.field),
            field,
            path
          )
        }
      })
    )
  })

  describe("limits", () => {
    it.effect("caps the streams one user holds: the next is a 429, and closing one frees its slot", () =>
      Effect.gen(function* () {
        const path = `/events/stream?userId=${carol.userId}`
        const open = yield* Effect.scoped(
          Effect.gen(function* () {
            const held = yield* Effect.forEach([1, 2, 3], () => connect(path, { as: "carol" }))
            assert.deepStrictEqual(
              held.map((stream) => stream.status),
              [200, 200, 200]
            )
            const over = yield* refused(path, { as: "carol" })
            assert.strictEqual(over.status, 429)
            assert.strictEqual(over.error._tag, "TooManyStreams")
            assert.strictEqual(over.error.limit, limits.maxConnectionsPerUser)
            // Another user is not affected by carol's streams.
            const other = yield* connect(`/events/stream?userId=${alice.userId}`, { as: "alice" })
            return other.status
          })
        )
        assert.strictEqual(open, 200)
        // All three closed: the server notices each closed connection and frees its slot.
        const reopened = yield* eventually(
          Effect.scoped(
            Effect.gen(function* () {
              const held = yield* Effect.forEach([1, 2, 3], () => connect(path, { as: "carol" }))
              return held.every((stream) => stream.status === 200)
            })
          )
        )
        assert.isTrue(reopened)
      })
    )

    it.effect("drops a client that stops reading, and frees its slot; it resumes from its last id", () =>
      Effect.gen(function* () {
        const path = `/events/stream?userId=${bob.userId}`
        const stalled = yield* stalledClient(path, bob.token)
        assert.match(stalled.head, /^HTTP\/1.1 200/)

        // While the stalled client is connected it holds one of bob's slots: only two more streams fit.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const held = yield* Effect.forEach([1, 2], () => connect(path, { as: "bob" }))
            assert.deepStrictEqual(
              held.map((stream) => stream.status),
              [200, 200]
            )
            assert.strictEqual((yield* refused(path, { as: "bob" })).status, 429)
          })
        )

        // Bob's events pour in, far more than the socket buffers, the buffer and its grace can hold for a client that
        // reads nothing: the server closes the connection, and bob has all three slots again.
        const allFree = Effect.scoped(
          Effect.gen(function* () {
            const held = yield* Effect.forEach([1, 2, 3], () => connect(path, { as: "bob" }))
            return held.every((stream) => stream.status === 200)
          })
        )
        // Rounds of 2 MB: the loopback socket's buffers took about 4 MB here before the server's buffer filled.
        const perRound = 250
        let rounds = 0
        let dropped = false
        while (!dropped && rounds < 16) {
          yield* appendLargeEvents(bob.userId, perRound)
          rounds++
          // Once the buffer is full the server waits its grace period (a second here) before it drops the client;
          // a round that did not see it dropped writes more, so how busy the machine is changes only how many.
          dropped = yield* eventually(allFree, "3 seconds")
        }
        assert.isTrue(dropped, "the stalled client was dropped")

        // The client reads again: what the kernel held for it, then the end of the response.
        const rest = yield* stalled.readToEnd
        const messages = parseMessages(stalled.head.slice(stalled.head.indexOf("\r\n\r\n") + 4) + rest)
        const received = messages.messages.flatMap((message) => (message.kind === "event" ? [message] : []))
        const total = rounds * perRound
        assert.isAbove(received.length, 0)
        assert.isBelow(received.length, total, "it did not get everything: it was cut off")

        // What it got is a run of bob's events in the feed's order, and what it missed is the rest of them: both
        // computed from the table, so that neither depends on where the stream started or on what else bob wrote.
        const bobs = yield* eventIdsOf(bob.userId)
        const firstReceived = bobs.indexOf(received[0]!.id!)
        assert.isAtLeast(firstReceived, 0, "the first event it got is one of bob's")
        assert.deepStrictEqual(idsOf(received), bobs.slice(firstReceived, firstReceived + received.length))
        const missed = bobs.slice(firstReceived + received.length)
        assert.isAtLeast(missed.length, total - received.length, "what it missed includes the rest of this test's")

        // It reconnects with the last id it got, and gets the rest: nothing missed, nothing twice.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const lastSeen = received.at(-1)!.id!
            const resumed = yield* connect(path, { as: "bob", headers: { "last-event-id": lastSeen } })
            assert.strictEqual(resumed.status, 200)
            assert.deepStrictEqual(idsOf(yield* nextEvents(resumed, missed.length)), missed)
            // And then nothing more, against a control: bob's next event is the next one the stream sends.
            const [next] = yield* appendLargeEvents(bob.userId, 1)
            const after = yield* nextEvent(resumed)
            assert.strictEqual(JSON.parse(after.data)["eventId"], next)
          })
        )
      })
    )
  })
})

layer(appLayerWith(hangUpLimits), TestApp.layerOptions)("GET /events/stream, when the client hangs up", (it) => {
  it.effect(
    "ends the stream at once: the auditor's read is recorded in the request's context, and the slot is free",
    () =>
      Effect.gen(function* () {
        const [watched, reading] = [crypto.randomUUID(), crypto.randomUUID()]
        const path = `/events/stream?correlationId=${watched}`
        const received = yield* Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* connect(path, { as: "dana", headers: { "x-correlation-id": reading } })
            assert.strictEqual(stream.status, 200)
            const id = yield* createOrganization("Hung Up Traders", "alice", watched)
            yield* rename(id, "Hung Up Traders Two", "alice", watched)
            yield* rename(id, "Hung Up Traders Three", "alice", watched)
            return yield* nextEvents(stream, 3)
          })
        )
        // The scope has closed: the client destroyed its socket mid-stream, with nothing more to be written to it.
        assert.lengthOf(received, 3)

        // (a) The server sees the close, not a failed write (the heartbeat is an hour away): the stream ends and its
        // read is recorded, with what the client got. Waited for, not slept on.
        const reads = yield* eventsOf(reading).pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (events) => events.length > 0 }),
          Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.succeed([]) })
        )
        assert.lengthOf(reads, 1, "the hang-up was noticed and the auditor's read recorded")
        const read = reads[0]!
        assert.strictEqual(read["eventType"], "audit.read")
        assert.strictEqual((read["data"] as Record<string, unknown>)["returned"], 3)
        // (c) In the request's context: its correlation id, and the auditor as the user who read.
        assert.strictEqual((read["metadata"] as Record<string, unknown>)["correlationId"], reading)
        assert.strictEqual(read["userId"], DemoUsers.user("dana").userId)

        // (b) The one slot dana may hold is free again: a reconnect is accepted, once the server has let go of it.
        const reconnected = yield* eventually(
          Effect.scoped(Effect.map(connect(path, { as: "dana" }), (stream) => stream.status === 200))
        )
        assert.isTrue(reconnected, "the reconnect after the hang-up was accepted")
      })
  )

  it.effect("records the read of an auditor's stream it drops while blocked writing to the socket", () =>
    Effect.gen(function* () {
      // A user of this test alone, whose events only this stream reads.
      const userId = crypto.randomUUID()
      const reading = crypto.randomUUID()
      const stalled = yield* stalledClient(`/events/stream?userId=${userId}`, DemoUsers.user("dana").token, {
        "x-correlation-id": reading
      })
      assert.match(stalled.head, /^HTTP\/1.1 200/)
      // Events pour in until the server, its socket write blocked on a client that reads nothing, drops it: the
      // stream ends by an interruption that finds it outside its own pull, where only the context the read is
      // recorded with, not the stream's, says who read.
      const recorded = eventsOf(reading).pipe(Effect.map((events) => events.length > 0))
      let rounds = 0
      let dropped = false
      while (!dropped && rounds < 16) {
        yield* appendLargeEvents(userId, 250)
        rounds++
        dropped = yield* eventually(recorded, "3 seconds")
      }
      assert.isTrue(dropped, "the dropped auditor's read was recorded")
      const [read] = yield* eventsOf(reading)
      assert.strictEqual(read!["eventType"], "audit.read")
      assert.isAbove((read!["data"] as Record<string, unknown>)["returned"] as number, 0)
      assert.strictEqual((read!["metadata"] as Record<string, unknown>)["correlationId"], reading)
      assert.strictEqual(read!["userId"], DemoUsers.user("dana").userId)
    })
  )

  it.effect("an id of the first format names its place in the log: `annal.feed.v1:0:0` is its start", () =>
    Effect.gen(function* () {
      const correlationId = crypto.randomUUID()
      const id = yield* createOrganization("Old Id Traders", "alice", correlationId)
      yield* rename(id, "Old Id Traders Two", "alice", correlationId)
      const written = yield* Effect.forEach(yield* eventsOf(correlationId), checkpointId)
      // As the first format's ids were sent: base64url of the text; and the text itself, which was never an id.
      const encoded = Buffer.from("annal.feed.v1:0:0").toString("base64url")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* connect(`/events/stream?correlationId=${correlationId}`, {
            as: "dana",
            headers: { "last-event-id": encoded }
          })
          assert.strictEqual(stream.status, 200)
          assert.deepStrictEqual(idsOf(yield* nextEvents(stream, 2)), written)
        })
      )
      const raw = yield* refused(`/events/stream?correlationId=${correlationId}`, {
        as: "dana",
        headers: { "last-event-id": "annal.feed.v1:0:0" }
      })
      assert.strictEqual(raw.status, 400)
    })
  )
})

/** The ids of messages. */
const idsOf = (messages: ReadonlyArray<{ readonly id: string | undefined }>) => messages.map((message) => message.id)

/**
 * Runs `check` until it is true, pausing between tries, for at most `within`: a bound that keeps a claim that broke
 * from hanging the test, sized for a loaded machine (the server notices a closed socket when it next gets the CPU).
 */
const eventually = <R>(check: Effect.Effect<boolean, never, R>, within: Duration.Input = "30 seconds") =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("50 millis")
    return true
  }).pipe(Effect.timeoutOrElse({ duration: within, orElse: () => Effect.succeed(false) }))

/** The checkpoint ids of `userId`'s events, in the feed's order. */
const eventIdsOf = Effect.fnUntraced(function* (userId: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly commit_sequence: string; readonly global_position: string }>`SELECT
      c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
    FROM events e JOIN events_commits c ON c.transaction_id = e.transaction_id
    WHERE e.user_id = ${userId}::uuid ORDER BY c.commit_sequence, e.global_position`
  return rows.map((row) => Checkpoint.encode(Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position))))
})

/**
 * A client that sends the request, reads the response head, and then reads nothing: a raw socket, paused, so that
 * what the server sends fills the kernel's buffers and then the server's. `readToEnd` resumes reading until the
 * server's end of the connection.
 */
const stalledClient = (path: string, token: string, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const base = new URL(yield* TestApp.baseUrl)
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => net.connect(Number(base.port), base.hostname)),
      (socket) => Effect.sync(() => socket.destroy())
    )
    socket.setEncoding("utf8")
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${base.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n` +
        Object.entries(headers)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("") +
        "\r\n"
    )
    const head = yield* Effect.callback<string>((resume) => {
      let received = ""
      const onData = (chunk: string) => {
        received += chunk
        if (received.includes("\r\n\r\n")) {
          socket.off("data", onData)
          socket.pause()
          resume(Effect.succeed(received))
        }
      }
      socket.on("data", onData)
    })
    const readToEnd = Effect.callback<string>((resume) => {
      let received = ""
      socket.on("data", (chunk: string) => {
        received += chunk
      })
      socket.on("close", () => resume(Effect.succeed(received)))
      socket.resume()
    })
    return { head, readToEnd }
  })

/** Appends `count` events of about 8 KB each as `userId`, straight to the store, in one transaction; their ids. */
const appendLargeEvents = (userId: string, count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const padding = "x".repeat(8000)
    const stored = yield* store.append(
      Array.from({ length: count }, () =>
        OrganizationCreated.make({
          aggregateId: crypto.randomUUID(),
          userId,
          data: { name: "Bulk Traders", type: "trust", email: "bulk@stream.example", phone: null, pan: freshPan() },
          metadata: { extras: { padding } }
        })
      )
    )
    return stored.map((appended) => appended.eventId)
  }).pipe(Effect.provide(EventStore.layer()), Effect.orDie)
