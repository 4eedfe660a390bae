/**
 * The event stream's buffer between the feed and the socket, on its own: a consumer that stops pulling is dropped
 * once the buffer has stayed full for the grace period, and the source is read no further, so a slow client costs
 * at most a buffer of memory; a consumer that keeps pulling gets everything, in order, however much faster the
 * source is; an idle stream emits its keep-alive. Over real TCP the kernel's socket buffers absorb megabytes before
 * the server sees a client stall, so the mechanism is shown here exactly, and end to end in the example app.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as EventStream from "../src/EventStream.ts"

const options = { bufferSize: 4, slowClientTimeout: "1 second", heartbeat: "10 seconds", keepAlive: -1 } as const

/** An endless source that counts how many elements were read from it. */
const counting = Effect.map(Ref.make(0), (pulled) => ({
  pulled,
  source: Stream.fromEffectRepeat(Ref.updateAndGet(pulled, (n) => n + 1))
}))

/**
 * The most elements a stalled consumer holds in memory: the batch it took (at most a buffer, written to the socket
 * as one chunk), a full buffer, and the one element that waits for room.
 */
const mostHeld = 2 * options.bufferSize + 1

/** Waits until the source has filled the buffer and one more element waits for room. */
const untilFull = (pulled: Ref.Ref<number>) =>
  Effect.gen(function* () {
    while ((yield* Ref.get(pulled)) < options.bufferSize + 2) yield* Effect.yieldNow
    for (let i = 0; i < 10; i++) yield* Effect.yieldNow
  })

describe("EventStream.buffered", () => {
  it.effect("drops a consumer that stops pulling, and stops reading the source", () =>
    Effect.gen(function* () {
      const { pulled, source } = yield* counting
      const received = yield* Ref.make<ReadonlyArray<number>>([])
      // Takes the first element, then never finishes handling it: a client whose socket never drains.
      const consumer = yield* EventStream.buffered(source, options).pipe(
        Stream.runForEach((n) =>
          Effect.andThen(
            Ref.update(received, (all) => [...all, n]),
            Effect.never
          )
        ),
        Effect.forkChild
      )
      yield* untilFull(pulled)
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(consumer.pollUnsafe(), "within the grace period the consumer is kept")
      yield* TestClock.adjust("2 millis")
      const exit = yield* Fiber.await(consumer)
      assert.isTrue(Exit.hasInterrupts(exit), "the consumer was dropped")
      assert.deepStrictEqual(yield* Ref.get(received), [1])
      // The batch handed to the consumer (at most a buffer), a buffer full, and the one that found no room.
      const read = yield* Ref.get(pulled)
      assert.isAtMost(read, mostHeld)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Ref.get(pulled), read, "the source is read no further")
    })
  )

  it.effect("the same consumer without the buffer's limit would hold the source open forever", () =>
    // The contrast: with a grace period longer than the test, the stalled consumer is still there and holds its
    // buffer; only the grace period ends it.
    Effect.gen(function* () {
      const { pulled, source } = yield* counting
      const consumer = yield* EventStream.buffered(source, { ...options, slowClientTimeout: "1 day" }).pipe(
        Stream.runForEach(() => Effect.never),
        Effect.forkChild
      )
      yield* untilFull(pulled)
      yield* TestClock.adjust("1 hour")
      assert.isUndefined(consumer.pollUnsafe())
      assert.isAtMost(yield* Ref.get(pulled), mostHeld)
      yield* Fiber.interrupt(consumer)
    })
  )

  it.live("gives a consumer that keeps pulling every element, in order, however much faster the source is", () =>
    Effect.gen(function* () {
      const source = Stream.range(1, 2000)
      const received = yield* EventStream.buffered(source, { ...options, slowClientTimeout: "1 minute" }).pipe(
        Stream.runCollect
      )
      assert.deepStrictEqual(
        received,
        Array.from({ length: 2000 }, (_, i) => i + 1)
      )
    })
  )

  it.effect("emits the keep-alive after each heartbeat without an element", () =>
    Effect.gen(function* () {
      const fiber = yield* EventStream.buffered(Stream.never, options).pipe(
        Stream.take(3),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* TestClock.adjust("9 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "no keep-alive before the heartbeat")
      yield* TestClock.adjust("21 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [-1, -1, -1])
    })
  )

  it.effect("passes the source's failure on, after what came before it", () =>
    Effect.gen(function* () {
      const source = Stream.concat(Stream.make(1, 2), Stream.fail("broken" as const))
      const exit = yield* EventStream.buffered(source, options).pipe(Stream.runCollect, Effect.exit)
      assert.deepStrictEqual(exit, Exit.fail("broken" as const))
    })
  )
})
