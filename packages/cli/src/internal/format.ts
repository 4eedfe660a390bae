/**
 * How the commands write what they report: counts with thousands separators, ages an operator reads at a glance
 * ("4 min 12 s", not a `Duration` object), checkpoints as commit and position, and the JSON forms of the same
 * values (ISO times, numbers, and the cursor string `--after` and the SSE stream take).
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Stdio from "effect/Stdio"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Checkpoint } from "@annal/core"

/** `1234567` as `1,234,567`. */
export const thousands = (n: number): string => n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",")

/** `3 events`, `1 event`. */
export const count = (n: number, noun: string): string => `${thousands(n)} ${noun}${n === 1 ? "" : "s"}`

/** An age in its two largest units: `850 ms`, `4.2 s`, `3 min 12 s`, `2 h 5 min`, `3 d 4 h`. */
export const age = (duration: Duration.Duration): string => {
  const millis = Math.max(0, Duration.toMillis(duration))
  if (millis < 1000) return `${Math.round(millis)} ms`
  const seconds = millis / 1000
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.floor(seconds)} s`
  const units: ReadonlyArray<readonly [string, number]> = [
    ["d", 86_400],
    ["h", 3_600],
    ["min", 60],
    ["s", 1]
  ]
  const whole = Math.floor(seconds)
  const index = units.findIndex(([, size]) => whole >= size)
  const [unit, size] = units[index]!
  const [nextUnit, nextSize] = units[index + 1]!
  const rest = Math.floor((whole % size) / nextSize)
  return rest === 0 ? `${Math.floor(whole / size)} ${unit}` : `${Math.floor(whole / size)} ${unit} ${rest} ${nextUnit}`
}

/** A duration in whole milliseconds, for JSON. */
export const millis = (duration: Duration.Duration): number => Math.round(Duration.toMillis(duration))

/** An optional duration in whole milliseconds, or null, for JSON. */
export const millisOrNull = (duration: Option.Option<Duration.Duration>): number | null =>
  Option.match(duration, { onNone: () => null, onSome: millis })

/** An instant in ISO 8601, UTC. */
export const iso = (instant: DateTime.DateTime): string => DateTime.formatIso(instant)

/** A checkpoint for a reader: `commit 12, position 345`, or the whole of a commit. */
export const checkpoint = (at: Checkpoint.Checkpoint): string =>
  Checkpoint.compare(at, Checkpoint.start) === 0
    ? "the start"
    : at.globalPosition === Checkpoint.endOfCommit
      ? `the end of commit ${at.commitSequence}`
      : `commit ${at.commitSequence}, position ${at.globalPosition}`

/**
 * A checkpoint in JSON: its numbers, `globalPosition` null where it stands for the whole of its commit, and the
 * cursor that `annal tail --after` and the SSE stream's `Last-Event-ID` take.
 */
export const checkpointJson = (at: Checkpoint.Checkpoint) => ({
  commitSequence: Number(at.commitSequence),
  globalPosition: at.globalPosition === Checkpoint.endOfCommit ? null : Number(at.globalPosition),
  cursor: Checkpoint.encode(at)
})

/** Prints a JSON value on stdout, on one line or indented. */
export const printJson = (value: unknown, indent = true): string => JSON.stringify(value, null, indent ? 2 : undefined)

/**
 * A progress display on standard error: a bar redrawn in place when it is a terminal, else a plain line per tenth
 * of the way, so that a log file shows the run is alive without a line per update.
 */
export const makeProgress = Effect.fnUntraced(function* () {
  const stdio = yield* Stdio.Stdio
  const animate = yield* stdio.stderrIsTerminal
  const write = (text: string) => Stream.run(Stream.make(text), stdio.stderr()).pipe(Effect.ignore)
  let shown = -1
  let drawn = false
  return {
    /** Shows `line`, `percent` of the way (0 to 100). */
    update: (line: string, percent: number): Effect.Effect<void> => {
      const clamped = Math.max(0, Math.min(100, Math.floor(percent)))
      if (animate) {
        drawn = true
        const filled = Math.round(clamped / 5)
        return write(`\r\x1b[2K[${"#".repeat(filled)}${"-".repeat(20 - filled)}] ${line}`)
      }
      const tenth = Math.floor(clamped / 10)
      if (tenth === shown) return Effect.void
      shown = tenth
      return write(`${line}\n`)
    },
    /** Ends the display, so that what follows starts on a line of its own. */
    end: Effect.suspend(() => (animate && drawn ? write("\n") : Effect.void))
  }
})
