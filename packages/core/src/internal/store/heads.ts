/**
 * The heads of the streams this store's batches wrote last: what lets a batch append outside a transaction be one
 * statement. A batch is numbered and chained from the heads it assumes, and `makeInsertChained` writes it only if
 * every stream's head is still that one (its version and its hash), so a wrong or stale entry never puts a chain on a
 * stale head. It is not free: the INSERT that wrote nothing still committed (with its commit-order row, as any
 * statement that inserts does), and the append then reads the heads and inserts again, three statements where a
 * batch on a stream this store does not know took two before. A stream the cache does not know is assumed new: the
 * common batch is an aggregate's first events.
 *
 * Bounded: the oldest entry goes when a new one would pass the capacity. The heads remembered are the tips the client
 * chained, once the INSERT that wrote every one of them has returned outside a transaction. This store's other
 * writes forget their streams: an append inside a transaction, which may still roll back, and a single event, whose
 * hash the statement computes. Other stores' and processes' writes are caught by the INSERT's check.
 */
import type { StreamHead } from "./append.ts"

/** The most streams remembered: about 200 bytes each. */
export const capacity = 4096

/** The cache of one store. */
export interface HeadCache {
  /**
   * The heads to chain a batch onto, one per stream in first-appearance order, or undefined when the cache cannot
   * guess them: a stream it does not know under an expected version past 0, or a known head at another version than
   * the one expected (the statements that read the heads tell which it is).
   */
  readonly guess: (
    streams: ReadonlyArray<{ readonly aggregate_type: string; readonly aggregate_id: string }>,
    expected: number
  ) => ReadonlyArray<StreamHead> | undefined
  /** Remembers the tips of a batch that was committed. */
  readonly remember: (tips: ReadonlyArray<StreamHead>) => void
  /** Forgets streams some other write moved. */
  readonly forget: (streams: ReadonlyArray<{ readonly aggregate_type: string; readonly aggregate_id: string }>) => void
}

const keyOf = (stream: { readonly aggregate_type: string; readonly aggregate_id: string }) =>
  `${stream.aggregate_type}/${stream.aggregate_id}`

/** An empty cache of at most `size` streams. */
export const make = (size: number = capacity): HeadCache => {
  // A Map iterates in insertion order, and remembering re-inserts: the first key is the least recently written.
  const heads = new Map<string, StreamHead>()
  return {
    guess: (streams, expected) => {
      const guessed: Array<StreamHead> = []
      for (const stream of streams) {
        const known = heads.get(keyOf(stream))
        if (known === undefined) {
          if (expected > 0) return undefined
          guessed.push({
            aggregate_type: stream.aggregate_type,
            aggregate_id: stream.aggregate_id,
            version: 0,
            hash: null
          })
        } else {
          if (expected >= 0 && known.version !== expected) return undefined
          guessed.push(known)
        }
      }
      return guessed
    },
    remember: (tips) => {
      for (const tip of tips) {
        const key = keyOf(tip)
        heads.delete(key)
        heads.set(key, tip)
      }
      while (heads.size > size) heads.delete(heads.keys().next().value!)
    },
    forget: (streams) => {
      if (heads.size === 0) return
      for (const stream of streams) heads.delete(keyOf(stream))
    }
  }
}
