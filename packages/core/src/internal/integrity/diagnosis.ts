/**
 * Finding the first bad event of a stream, and telling what happened there: an event changed, missing, inserted,
 * or two swapped. Every answer is a hash equality (the rows around the break would hash to what is stored if that
 * change had been made), so an answer is never a guess; what matches no such test is reported as changed.
 */
import { type ChainedEvent, genesis, type HashScheme } from "./chain.ts"

/** How a stream differs from what was written. */
export type BreakKind = "changed" | "missing" | "inserted" | "swapped" | "truncated" | "rewritten" | "unordered"

/** The first bad position of a stream, and what is wrong there. */
export interface Break {
  readonly kind: BreakKind
  readonly streamVersion: number
  /** The event stored at that position, when there is one. */
  readonly eventId: string | undefined
  readonly detail: string
}

/** Where a run of rows starts: the version before its first row, and the hash that row must link to. */
export interface Start {
  readonly streamVersion: number
  readonly hash: string
}

/** The start of every stream: version 0, the genesis hash. */
export const streamStart: Start = { streamVersion: 0, hash: genesis }

/**
 * Checks one stream, given all its rows ordered by stream version, and returns its first bad event, or undefined
 * when every link holds. Only called in full on a stream whose incremental check failed, or for one aggregate;
 * given a `start`, the rows are a run of the stream after it (a page), checked from that hash.
 */
export const findBreak = (
  hashes: HashScheme,
  events: ReadonlyArray<ChainedEvent>,
  start: Start = streamStart
): Break | undefined => {
  let previous = start.hash
  for (let index = 0; index < events.length; index++) {
    const event = events[index]!
    const expected = start.streamVersion + index + 1
    if (event.streamVersion > expected) {
      const last = event.streamVersion - 1
      return {
        kind: "missing",
        streamVersion: expected,
        eventId: undefined,
        detail:
          last === expected
            ? `version ${expected} is absent: the stream goes from ${expected - 1} to ${event.streamVersion}`
            : `versions ${expected} to ${last} are absent: the stream goes from ${expected - 1} to ${event.streamVersion}`
      }
    }
    if (event.streamVersion < expected) {
      return {
        kind: "inserted",
        streamVersion: event.streamVersion,
        eventId: event.eventId,
        detail: `two events claim version ${event.streamVersion}; event ${event.eventId} is the one outside the chain`
      }
    }
    if (event.hash !== null && hashes.link(previous, hashes.canonical(event)) === event.hash) {
      previous = event.hash
      continue
    }
    return diagnose(hashes, events, index, start.hash)
  }
  return undefined
}

/** A break at the event `position`. */
const at = (kind: BreakKind, position: ChainedEvent, detail: string): Break => ({
  kind,
  streamVersion: position.streamVersion,
  eventId: position.eventId,
  detail
})

/**
 * Tells what happened at the first broken link, `index`, by testing what the rows around it would hash to if a
 * given change had been made. Each test is a hash equality, so a positive answer is not a guess.
 */
const diagnose = (hashes: HashScheme, events: ReadonlyArray<ChainedEvent>, index: number, first: string): Break => {
  const event = events[index]!
  const hashAt = (position: number): string | null => (position < 0 ? first : (events[position]?.hash ?? null))
  const linksFrom = (position: number, previous: string | null, streamVersion: number): boolean => {
    const candidate = events[position]
    if (candidate === undefined || candidate.hash === null || previous === null) return false
    return hashes.link(previous, hashes.canonical({ ...candidate, streamVersion })) === candidate.hash
  }
  const next = events[index + 1]

  // Two events in each other's place: each links where the other stands. Tested first, as it takes two matches,
  // and an adjacent swap also looks like an insertion to the single-match tests below.
  for (let other = index + 1; other < events.length; other++) {
    const swapped = events[other]!
    // The event now at `index` was at `other`: its predecessor then was the one before `other`, which is the event
    // now at `other` itself when the two were adjacent.
    const previousOfSwapped = other - 1 === index ? swapped.hash : hashAt(other - 1)
    if (
      linksFrom(index, previousOfSwapped, swapped.streamVersion) &&
      linksFrom(other, hashAt(index - 1), event.streamVersion)
    ) {
      return at(
        "swapped",
        event,
        `versions ${event.streamVersion} and ${swapped.streamVersion} were exchanged: events ${swapped.eventId} and ${event.eventId} are in each other's place`
      )
    }
  }
  // A forged event with a valid hash at index - 1: the chain only breaks after it, where the genuine successor
  // still links to the event before the forged one, under its original number.
  const before = events[index - 1]
  if (before !== undefined && linksFrom(index, hashAt(index - 2), event.streamVersion - 1)) {
    return at(
      "inserted",
      before,
      `event ${before.eventId} was inserted: version ${event.streamVersion} links to version ${before.streamVersion - 1} as version ${before.streamVersion}`
    )
  }
  if (
    next !== undefined &&
    next.streamVersion === event.streamVersion &&
    linksFrom(index + 1, hashAt(index - 1), event.streamVersion)
  ) {
    return at("inserted", event, `event ${event.eventId} duplicates version ${event.streamVersion} outside the chain`)
  }
  if (next !== undefined && linksFrom(index + 1, hashAt(index - 1), next.streamVersion - 1)) {
    return at(
      "inserted",
      event,
      `event ${event.eventId} was inserted: the event now at version ${next.streamVersion} links to version ${event.streamVersion - 1} as version ${event.streamVersion}`
    )
  }
  if (event.hash === null) {
    return at("inserted", event, `event ${event.eventId} has no hash: no append of Annal wrote it`)
  }
  if (next !== undefined && linksFrom(index + 1, event.hash, next.streamVersion + 1)) {
    return {
      kind: "missing",
      streamVersion: event.streamVersion,
      eventId: undefined,
      detail: `the event at version ${event.streamVersion} was removed and the later events renumbered down by one`
    }
  }
  if (next !== undefined) {
    const recomputed = hashes.link(hashAt(index - 1) ?? first, hashes.canonical(event))
    if (linksFrom(index + 1, recomputed, next.streamVersion)) {
      return at("changed", event, `the stored hash of event ${event.eventId} was altered; its fields are as written`)
    }
    if (linksFrom(index + 1, event.hash, next.streamVersion)) {
      return at(
        "changed",
        event,
        `event ${event.eventId} was changed after it was written: its fields no longer produce its hash, which the next event still links to`
      )
    }
    return at(
      "changed",
      event,
      `event ${event.eventId} does not match its hash, and the next event does not link to it either: it, or its hash, or both were changed`
    )
  }
  return at(
    "changed",
    event,
    `event ${event.eventId}, the last one read, does not match its hash: its fields or its hash were changed`
  )
}
