/**
 * Readiness over a real events table, on both engines: a consumer behind by more events than `maxConsumerLag`, or
 * whose oldest unprocessed event is older than `maxConsumerLagAge`, makes the report red and is named, and it is green
 * again once the consumer has caught up; a database that does not answer within `databaseTimeout` is named, and does
 * not hold the check. The fence's check is shown end to end in the example app (`Process.test.ts`).
 */
import { Consumer, Consumers } from "@annal/core"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Statement from "effect/sql/Statement"
import { uuid } from "../../core/test/support/Fixtures.ts"
import * as FeedDatabase from "../../core/test/support/FeedDatabase.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as Health from "../src/Health.ts"

const schema = TestDatabase.uniqueSchema()

/** Runs the consumer `name` until it has handled every event committed so far, then stops it. */
const catchUp = (name: string) =>
  Effect.gen(function* () {
    const consumers = yield* Consumers.Consumers
    const running = yield* Effect.forkChild(
      consumers.run(Consumer.make({ ...FeedDatabase.quickConsumer, name, handle: () => Effect.void }))
    )
    yield* FeedDatabase.caughtUp(schema, name)
    yield* Fiber.interrupt(running)
  })

/**
 * Every `SELECT 1` waits for ever, as on a server that accepts the query and never answers it; the feed's and the
 * consumers' reads go on as usual.
 */
const silent: Statement.Transformer = (statement) =>
  statement.compile()[0].trim() === "SELECT 1" ? Effect.never : Effect.succeed(statement)

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`Health.check (${TestDatabase.engine})`, (it) => {
  it.effect("a consumer past its lag's bounds is named, and the report is green once it has caught up", () =>
    Effect.gen(function* () {
      const name = `projector-${uuid()}`
      yield* catchUp(name)
      assert.deepStrictEqual((yield* Health.check({ maxConsumerLag: 2 })).problems, [])

      yield* FeedDatabase.appendMany(3)
      const tooMany = yield* Health.check({ maxConsumerLag: 2 })
      assert.strictEqual(tooMany.status, "not ready")
      assert.strictEqual(tooMany.problems.length, 1, tooMany.problems.join("\n"))
      assert.match(
        tooMany.problems[0]!,
        new RegExp(
          `^consumer ${name}: 3 events behind, the oldest [\\d.]+ s old \\(no instance holds its lease\\); over 2 events$`
        )
      )
      // Within the count, the age alone: an oldest event older than the bound is named as such.
      const tooOld = yield* Health.check({ maxConsumerLag: 10, maxConsumerLagAge: "0 millis" })
      assert.strictEqual(tooOld.problems.length, 1, tooOld.problems.join("\n"))
      assert.match(tooOld.problems[0]!, /; older than 0\.0 s$/)
      assert.notInclude(tooOld.problems[0]!, "over 10 events")
      // Within both bounds, the lag is no problem.
      assert.strictEqual((yield* Health.check({ maxConsumerLag: 10 })).status, "ready")

      yield* catchUp(name)
      const green = yield* Health.check({ maxConsumerLag: 2, maxConsumerLagAge: "0 millis" })
      assert.strictEqual(green.status, "ready")
      assert.deepStrictEqual(green.problems, [])
      assert.deepInclude(green.checks, { name: "database", ok: true, detail: "answers" })
    })
  )

  it.effect("a database that does not answer in time is named, and the check still answers", () =>
    Effect.gen(function* () {
      const report = yield* Health.check({ databaseTimeout: "100 millis" }).pipe(
        Effect.provideService(Statement.CurrentTransformer, silent)
      )
      assert.strictEqual(report.status, "not ready")
      assert.deepStrictEqual(report.problems, ["database: a query failed: no answer within 100ms"])
    })
  )
})
