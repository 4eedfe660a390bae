/**
 * What every reliability test reports: how many cases it ran and how many broke a promise, by kind, with a few
 * examples of each. The numbers go into the test's `meta`, where the `EngineSummary` reporter finds them and prints
 * the battery's table.
 *
 * Every promise is checked twice: once against the real code, where the test passes only with no failures, and once
 * against a deliberately broken variant, where it passes only if its own checker reports failures. A checker that
 * cannot see the fault it is about would pass the first run for the wrong reason; the second run shows it can.
 */
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { TestContext } from "vitest"
import * as AnnalError from "../../../packages/core/src/AnnalError.ts"
import type { ReliabilityOutcome } from "../../support/EngineSummary.ts"

/** One row of the summary table. */
export type Outcome = ReliabilityOutcome

/** The failures a checker found, counted by kind, with the first few examples of each. */
export class Failures {
  readonly #byKind = new Map<string, { count: number; examples: Array<string> }>()

  /** Counts one failure of `kind`; `detail` is kept among the first examples. */
  add(kind: string, detail: string): void {
    const entry = this.#byKind.get(kind) ?? { count: 0, examples: [] }
    entry.count++
    if (entry.examples.length < 3) entry.examples.push(detail)
    this.#byKind.set(kind, entry)
  }

  /** Adds every failure of another checker. */
  addAll(other: Failures): void {
    for (const [kind, entry] of other.#byKind) {
      const mine = this.#byKind.get(kind) ?? { count: 0, examples: [] }
      mine.count += entry.count
      mine.examples.push(...entry.examples.slice(0, Math.max(0, 3 - mine.examples.length)))
      this.#byKind.set(kind, mine)
    }
  }

  /** How many failures of `kind`, or of every kind. */
  count(kind?: string): number {
    if (kind !== undefined) return this.#byKind.get(kind)?.count ?? 0
    let total = 0
    for (const entry of this.#byKind.values()) total += entry.count
    return total
  }

  /** The kinds seen so far. */
  kinds(): ReadonlyArray<string> {
    return [...this.#byKind.keys()]
  }

  /** One line per kind, for assertion messages and logs. */
  describe(): string {
    if (this.#byKind.size === 0) return "no failures"
    return [...this.#byKind]
      .map(([kind, entry]) => `${kind}: ${entry.count} (e.g. ${entry.examples.join(" | ")})`)
      .join("\n")
  }
}

/** Writes the outcome into the test's meta for the summary table. */
export const record = (ctx: TestContext, outcome: Outcome): Effect.Effect<void> =>
  Effect.sync(() => {
    ctx.task.meta.reliability = outcome
  })

/**
 * Records a run against the real code and asserts it broke no promise. Assertion failures of vitest are thrown
 * errors: the test fails with the checker's own description.
 */
export const expectNone = (ctx: TestContext, cases: number, failures: Failures, note?: string): Effect.Effect<void> =>
  Effect.andThen(
    record(ctx, { cases, failures: failures.count(), broken: false, ...(note === undefined ? {} : { note }) }),
    Effect.sync(() => assert.strictEqual(failures.count(), 0, failures.describe()))
  )

/**
 * Records a run against a deliberately broken variant and asserts that the checker caught it, with at least one
 * failure of each kind in `kinds`.
 */
export const expectCaught = (
  ctx: TestContext,
  cases: number,
  failures: Failures,
  kinds: ReadonlyArray<string>,
  note?: string
): Effect.Effect<void> =>
  Effect.andThen(
    record(ctx, { cases, failures: failures.count(), broken: true, ...(note === undefined ? {} : { note }) }),
    Effect.sync(() => {
      for (const kind of kinds) {
        assert.isAbove(
          failures.count(kind),
          0,
          `the checker should report ${kind}; it reported:\n${failures.describe()}`
        )
      }
    })
  )

/** What one call to the store came to: a value, one of Annal's typed errors, or anything else. */
export type Answer<A> =
  | { readonly _tag: "Value"; readonly value: A }
  | { readonly _tag: "Typed"; readonly error: TypedError }
  | { readonly _tag: "Untyped"; readonly description: string }

const typedErrors = [
  AnnalError.ConcurrencyConflict,
  AnnalError.InvalidEvent,
  AnnalError.StorageError,
  AnnalError.InvalidCursor,
  AnnalError.InvalidQuery,
  AnnalError.UnknownEventType,
  AnnalError.UnknownEventVersion,
  AnnalError.EventDecodeError
] as const

/** Any of Annal's typed errors. */
export type TypedError = InstanceType<(typeof typedErrors)[number]>

const isTyped = (error: unknown): error is TypedError => typedErrors.some((type) => error instanceof type)

/**
 * Runs `effect` and sorts its exit. A raw driver error, a defect or an interruption is `Untyped`: the promise is
 * that none of them ever leaves a public method.
 */
export const answer = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Answer<A>, never, R> =>
  Effect.map(Effect.exit(effect), (exit): Answer<A> => {
    if (Exit.isSuccess(exit)) return { _tag: "Value", value: exit.value }
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isSome(error) && isTyped(error.value)) return { _tag: "Typed", error: error.value }
    return { _tag: "Untyped", description: Cause.pretty(exit.cause).split("\n")[0] ?? "" }
  })
