/**
 * The walk over every chain: one pass over the table in stream order, each row checked against its predecessor as it
 * goes by, as a fold over pages. A stream's first broken link only marks it; `findBreak` reads a broken stream whole
 * afterwards to say what happened, so the pass itself never looks back. For a digest, the walk also keeps each
 * stream's head at or before the checkpoint (the rows the page read marks `within`).
 */
import { type ChainedEvent, genesis, type HashScheme } from "./chain.ts"
import type { Head } from "./digest.ts"
import type { ReadRow } from "./read.ts"

/** One stream's chain as checked so far. */
export interface StreamCheck {
  readonly aggregateType: string
  readonly aggregateId: string
  /** The hash the next row must link to. */
  readonly previous: string
  /** The version the next row must have. */
  readonly expected: number
  /** Every row so far linked; once false, the stream's later rows are not checked. */
  readonly intact: boolean
  /** The last row at or before the checkpoint: the head a digest signs. */
  readonly head: Head | undefined
}

/** What one page did: the streams it finished, and the one it stopped in, which the next page goes on with. */
export interface PageCheck {
  readonly finished: ReadonlyArray<StreamCheck>
  readonly current: StreamCheck | undefined
}

/** What the walk found over the whole table. */
export interface ChainWalk {
  readonly streams: number
  readonly events: number
  /** Each stream's head at or before the checkpoint, for the digest check. */
  readonly heads: ReadonlyArray<Head>
  /** The streams with a broken link, in stream order. */
  readonly broken: ReadonlyArray<StreamCheck>
}

/** A stream before its first row. */
export const startStream = (event: ChainedEvent): StreamCheck => ({
  aggregateType: event.aggregateType,
  aggregateId: event.aggregateId,
  previous: genesis,
  expected: 1,
  intact: true,
  head: undefined
})

/** The stream after its next row: linked when the row has the expected version and its hash links to the previous. */
export const checkRow = (hashes: HashScheme, stream: StreamCheck, { event, within }: ReadRow): StreamCheck => {
  const head: Head | undefined = within
    ? {
        aggregateType: event.aggregateType,
        aggregateId: event.aggregateId,
        streamVersion: event.streamVersion,
        hash: event.hash
      }
    : stream.head
  if (!stream.intact) return { ...stream, head }
  const hash = event.hash
  return event.streamVersion === stream.expected &&
    hash !== null &&
    hashes.link(stream.previous, hashes.canonical(event)) === hash
    ? { ...stream, previous: hash, expected: stream.expected + 1, head }
    : { ...stream, intact: false, head }
}

/** Checks one page of rows in stream order, going on with the stream the previous page stopped in. */
export const checkPage = (
  hashes: HashScheme,
  current: StreamCheck | undefined,
  rows: ReadonlyArray<ReadRow>
): PageCheck => {
  const finished: Array<StreamCheck> = []
  let stream = current
  for (const row of rows) {
    if (stream === undefined || !isSameStream(stream, row.event)) {
      if (stream !== undefined) finished.push(stream)
      stream = startStream(row.event)
    }
    stream = checkRow(hashes, stream, row)
  }
  return { finished, current: stream }
}

/** The walk's result from every stream it checked, in stream order, and the number of rows read. */
export const summarize = (streams: ReadonlyArray<StreamCheck>, events: number): ChainWalk => ({
  streams: streams.length,
  events,
  heads: streams.flatMap((stream) => (stream.head === undefined ? [] : [stream.head])),
  broken: streams.filter((stream) => !stream.intact)
})

const isSameStream = (stream: StreamCheck, event: ChainedEvent): boolean =>
  event.aggregateType === stream.aggregateType && event.aggregateId === stream.aggregateId
