/**
 * Every public method of `Integrity` and `Digest` is a span of its own name, with the attributes an operator reads
 * in a trace: which aggregate, how many events were checked, which digest.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tracer from "effect/Tracer"
import * as Digest from "../src/Digest.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import { signingKey } from "./support/Chains.ts"
import { GstAdded, OrganizationCreated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()

const TestLayer = Layer.mergeAll(Integrity.layer({ schema }), Digest.layer({ schema })).pipe(
  Layer.provideMerge(signingKey),
  Layer.provideMerge(TestDatabase.layerWith(schema))
)

/** Runs `body` under a tracer that records every span it starts, and returns them with its result. */
const traced = <A, E, R>(body: Effect.Effect<A, E, R>) => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return Effect.withTracer(body, tracer).pipe(Effect.map((result) => ({ result, spans })))
}

/** The one span of `name`, which must have ended. */
const only = (spans: ReadonlyArray<Tracer.NativeSpan>, name: string): Tracer.NativeSpan => {
  const named = spans.filter((span) => span.name === name)
  assert.strictEqual(named.length, 1, `one ${name} span among ${spans.map((span) => span.name).join(", ")}`)
  assert.strictEqual(named[0]!.status._tag, "Ended")
  return named[0]!
}

layer(TestLayer, { timeout: 120_000 })(`Integrity and Digest spans (${TestDatabase.engine})`, (it) => {
  it.effect("verify, verifyAggregate, create and list are spans named after them, with their attributes", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const digests = yield* Digest.Digest
      const [org, user] = [uuid(), uuid()]
      yield* store.append([
        OrganizationCreated.make({
          aggregateId: org,
          userId: user,
          data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }
        }),
        GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } })
      ])

      const aggregate = yield* traced(integrity.verifyAggregate("organization", org))
      const verifyAggregate = only(aggregate.spans, "Integrity.verifyAggregate")
      assert.strictEqual(verifyAggregate.attributes.get("aggregateType"), "organization")
      assert.strictEqual(verifyAggregate.attributes.get("aggregateId"), org)
      assert.strictEqual(verifyAggregate.attributes.get("events"), 2)

      const created = yield* traced(digests.create())
      const create = only(created.spans, "Digest.create")
      assert.strictEqual(create.attributes.get("digestId"), created.result.id)
      assert.strictEqual(create.attributes.get("events"), created.result.events)

      const listed = yield* traced(digests.list)
      only(listed.spans, "Digest.list")
      // A second run of the same effect is a span of its own.
      assert.strictEqual((yield* traced(digests.list)).spans.filter((span) => span.name === "Digest.list").length, 1)

      const publicKey = yield* Digest.parsePublicKey(created.result.publicKey)
      const whole = yield* traced(integrity.verify({ digest: { document: created.result, publicKey } }))
      assert.isTrue(whole.result.ok)
      const verify = only(whole.spans, "Integrity.verify")
      assert.strictEqual(verify.attributes.get("events"), whole.result.events)
      assert.strictEqual(verify.attributes.get("streams"), whole.result.streams)
      assert.strictEqual(verify.attributes.get("findings"), 0)
      assert.strictEqual(verify.attributes.get("digestId"), created.result.id)
      // The given document's signature, and the stored digest's in the check of the chain.
      const signatures = whole.spans.filter((span) => span.name === "Digest.verifySignature")
      assert.strictEqual(signatures.length, 2)
      for (const span of signatures) assert.strictEqual(span.status._tag, "Ended")
    })
  )
})
