/**
 * Tamper evidence: every event stores `hash = SHA-256(previous hash in its stream ‖ canonical bytes of the event)`,
 * computed by the append statement, and this module checks it. `verify` walks every stream's chain and, given a
 * signed digest and the key to trust, checks that the log at or before the digest's checkpoint is the one that was
 * signed; it reports each bad stream's first bad event: changed, missing, inserted, swapped, truncated, rewritten.
 * `verifyEntity` is the fast path for one entity's history.
 *
 * What each check proves, and what it does not, is in docs/guides/hardening.md. In short: the chain
 * alone catches any change that was not followed by recomputing the hashes after it; only a digest, signed with a key
 * the attacker does not hold and kept outside the database, catches a consistent rewrite, a truncated tail, or a
 * forged event appended at the end, and only for events at or before its checkpoint.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Signature from "effect/crypto/Signature"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { InvalidQuery, type StorageError } from "./AnnalError.ts"
import * as Digest from "./Digest.ts"
import * as Event from "./Event.ts"
import * as EventTable from "./EventTable.ts"
import { qualify } from "./EventTable.ts"
import { type ChainedEvent, genesis, type HashScheme, scheme } from "./internal/integrity/chain.ts"
import { type Break, type BreakKind, findBreak } from "./internal/integrity/diagnosis.ts"
import { compareHeads, type Head, rootOf, streamKey } from "./internal/integrity/digest.ts"
import { makeDigestStatements } from "./internal/integrity/digestStatements.ts"
import { makeReadPage, makeReadStream, type Position, positionOf } from "./internal/integrity/read.ts"
import { commitObjects } from "./internal/feed/commitOrder.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"

export {
  /** The canonical text of one event's record: what its hash covers. */
  canonical,
  /** The hash before the first event of every stream: 32 zero bytes, in hex. */
  genesis,
  /** `SHA-256(previous ‖ UTF-8(canonical))` in hex: one link of the chain. */
  link,
  /** The record that is hashed for one event, as a JSON value. */
  record
} from "./internal/integrity/chain.ts"
export type { ChainedEvent, HashScheme, RecordFields } from "./internal/integrity/chain.ts"
export type { BreakKind } from "./internal/integrity/diagnosis.ts"

/** The first bad event of one stream, and what is wrong there. */
export interface Finding {
  readonly kind: BreakKind
  readonly aggregateType: string
  readonly aggregateId: string
  /** The first bad position: for `rewritten`, the signed head, at or before which the stream was rewritten. */
  readonly streamVersion: number
  /** The event stored at that position, when there is one. */
  readonly eventId: string | undefined
  readonly detail: string
}

/** What can be wrong with a digest itself, as opposed to the log it covers. */
export type DigestProblemKind =
  /** The document was not signed by the trusted key, or was changed after it was signed: nothing else is checked. */
  | "signature_invalid"
  /** The document is a digest of another events table. */
  | "wrong_table"
  /** The log differs from what was signed, and the stored heads that would name the stream were altered too. */
  | "digest_mismatch"
  /** The log matches the document, but the database's copy of the digest is missing or differs. */
  | "digest_record_altered"

/** A problem with the digest a verification was given. */
export interface DigestProblem {
  readonly kind: DigestProblemKind
  readonly detail: string
}

/** How the log compared with a signed digest. */
export interface DigestCheck {
  readonly id: number
  readonly checkpoint: Digest.Checkpoint
  /**
   * Whether every stream's head at the checkpoint is the signed one. With every chain intact (no finding), that
   * makes every event at or before the checkpoint the one that was signed.
   */
  readonly verified: boolean
  readonly problems: ReadonlyArray<DigestProblem>
}

/** The result of verifying the whole log. */
export interface Report {
  /** No finding and no digest problem. */
  readonly ok: boolean
  readonly streams: number
  readonly events: number
  /** One per bad stream, its first bad event, ordered by aggregate type and id. */
  readonly findings: ReadonlyArray<Finding>
  /** Present when a digest was given. */
  readonly digest: DigestCheck | undefined
}

/** The result of verifying one entity's history. */
export interface EntityReport {
  readonly aggregateType: string
  readonly aggregateId: string
  /** Every link of the entity's chain holds. */
  readonly verified: boolean
  readonly events: number
  /** The last event's version and hash: what a digest, or a copy kept elsewhere, can be compared with. */
  readonly head: { readonly streamVersion: number; readonly hash: string | null } | undefined
  readonly finding: Finding | undefined
}

/** How far a verification has got. */
export interface Progress {
  readonly events: number
  readonly streams: number
  /** The number of events when the verification started. */
  readonly total: number
}

/** Options of `verify`. */
export interface VerifyOptions {
  /** A digest kept outside the database, and the public key to trust for it (not the one the document names). */
  readonly digest?: {
    readonly document: Digest.Document
    readonly publicKey: Signature.PublicKey<Signature.Ed25519>
  }
  /** Called after each batch of rows. */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
  /** Rows read per statement; 2000 by default. */
  readonly batchSize?: number
}

/**
 * The parts a verifier is built from: how events are hashed and linked, and how a signature is checked. `verifier`
 * is the real one; tests build altered ones to show that the suite catches a verifier that skips a check.
 */
export interface Verifier extends HashScheme {
  readonly verifySignature: (
    publicKey: Signature.PublicKey<Signature.Ed25519>,
    signature: Uint8Array,
    message: Uint8Array
  ) => Effect.Effect<boolean, Digest.DigestError>
}

/** The verifier of the scheme the append statement writes. */
export const verifier: Verifier = { ...scheme, verifySignature: Digest.ed25519Verify }

/** The integrity service. */
export class Integrity extends Context.Service<
  Integrity,
  {
    /** Checks every stream's chain and, when given one, a signed digest. */
    readonly verify: (options?: VerifyOptions) => Effect.Effect<Report, Digest.DigestError | StorageError>
    /** Checks the chain of one entity's history. */
    readonly verifyEntity: (
      aggregateType: string,
      aggregateId: string
    ) => Effect.Effect<EntityReport, InvalidQuery | StorageError>
  }
>()("@annal/core/Integrity") {}

/** Builds the service with the given verifier, for the events table the options name, over the `SqlClient`. */
export const makeWith = (parts: Verifier, options?: EventTable.Options) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* EventTable.make(options)
    const table = sql(qualify(config, config.table))
    const tableName = `${config.schema}.${config.table}`
    const readPage = makeReadPage(sql, table)
    const readStream = makeReadStream(sql, table)
    const tables = makeDigestStatements(sql, config)
    const commits = sql(commitObjects(config).commits)
    // One anti-join over the table; each stream's first such event. The verifier's own transaction, when it has
    // written events, has no commit yet: those are not counted.
    const unordered = sql<{
      readonly aggregate_type: string
      readonly aggregate_id: string
      readonly stream_version: number
      readonly id: string
      readonly transaction_id: string
    }>`SELECT DISTINCT ON (e.aggregate_type, e.aggregate_id) e.aggregate_type, e.aggregate_id::text AS aggregate_id,
  e.stream_version, e.id::text AS id, e.transaction_id::text AS transaction_id
FROM ${table} e WHERE NOT EXISTS (SELECT 1 FROM ${commits} c WHERE c.transaction_id = e.transaction_id)
  AND e.transaction_id IS DISTINCT FROM pg_current_xact_id_if_assigned()
ORDER BY e.aggregate_type, e.aggregate_id, e.stream_version`.withoutTransform

    const verifyEntity = Effect.fn("Integrity.verifyEntity")(
      function* (aggregateType: string, aggregateId: string) {
        if (!Event.isUuid(aggregateId)) {
          return yield* new InvalidQuery({ field: "aggregateId", reason: "must be a UUID" })
        }
        const id = aggregateId.toLowerCase()
        const events = yield* readStream(aggregateType, id)
        const found = findBreak(parts, events)
        const last = events.at(-1)
        return {
          aggregateType,
          aggregateId: id,
          verified: found === undefined,
          events: events.length,
          head: last === undefined ? undefined : { streamVersion: last.streamVersion, hash: last.hash },
          finding: found === undefined ? undefined : findingOf(aggregateType, id, found)
        } satisfies EntityReport
      },
      Effect.catchTag("SqlError", stored("Integrity.verifyEntity"))
    )

    /** Compares the heads as of the checkpoint with the signed ones, stream by stream. */
    const compareWithDigest = Effect.fnUntraced(function* (
      document: Digest.Document,
      current: ReadonlyArray<Head>,
      signed: ReadonlyArray<Head>
    ): Effect.fn.Return<ReadonlyArray<Finding>, SqlError | StorageError> {
      const currentByStream = new Map(current.map((head) => [streamKey(head.aggregateType, head.aggregateId), head]))
      const signedStreams = new Set<string>()
      const findings: Array<Finding> = []
      const digestName = `digest #${document.id}`
      for (const head of signed) {
        const key = streamKey(head.aggregateType, head.aggregateId)
        signedStreams.add(key)
        const now = currentByStream.get(key)
        if (now !== undefined && now.streamVersion === head.streamVersion && now.hash === head.hash) continue
        const [row] = yield* sql<{
          readonly id: string | null
          readonly hash: string | null
          readonly last: number | null
        }>`SELECT (SELECT e.id::text FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid AND e.stream_version = ${head.streamVersion} LIMIT 1) AS id,
  (SELECT encode(e.hash, 'hex') FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid AND e.stream_version = ${head.streamVersion} LIMIT 1) AS hash,
  (SELECT max(e.stream_version) FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid) AS last`.withoutTransform
        const at = (kind: BreakKind, streamVersion: number, eventId: string | undefined, detail: string): Finding => ({
          kind,
          aggregateType: head.aggregateType,
          aggregateId: head.aggregateId,
          streamVersion,
          eventId,
          detail
        })
        const last = row?.last ?? 0
        if (row?.id === null || row?.id === undefined) {
          findings.push(
            last < head.streamVersion
              ? at(
                  "truncated",
                  last + 1,
                  undefined,
                  `the stream ends at version ${last}, but ${digestName} signed it up to version ${head.streamVersion}`
                )
              : at(
                  "missing",
                  head.streamVersion,
                  undefined,
                  `version ${head.streamVersion}, signed by ${digestName}, is absent`
                )
          )
        } else if (row.hash !== head.hash) {
          findings.push(
            at(
              "rewritten",
              head.streamVersion,
              row.id,
              `the chain holds, but its hash at version ${head.streamVersion} is not the one ${digestName} signed: the stream was rewritten at or before that version, hashes included`
            )
          )
        } else if (now === undefined || now.streamVersion < head.streamVersion) {
          findings.push(
            at(
              "changed",
              head.streamVersion,
              row.id,
              `event ${row.id} is as signed, but its transaction id, global position or commit was changed: it no longer falls at or before the checkpoint of ${digestName}`
            )
          )
        } else {
          findings.push(
            at(
              "inserted",
              head.streamVersion + 1,
              undefined,
              `version ${head.streamVersion + 1} claims a place at or before the checkpoint of ${digestName}, which signed the stream only up to version ${head.streamVersion}`
            )
          )
        }
      }
      for (const head of current) {
        if (signedStreams.has(streamKey(head.aggregateType, head.aggregateId))) continue
        findings.push({
          kind: "inserted",
          aggregateType: head.aggregateType,
          aggregateId: head.aggregateId,
          streamVersion: 1,
          eventId: undefined,
          detail: `the stream has events at or before the checkpoint of ${digestName}, which signed no such stream`
        })
      }
      return findings
    })

    const verify = Effect.fn("Integrity.verify")(
      function* (options?: VerifyOptions) {
        const batchSize = options?.batchSize ?? 2000
        const problems: Array<DigestProblem> = []
        let trusted: Digest.Document | undefined
        const given = options?.digest
        if (given !== undefined) {
          const valid = yield* Digest.verifySignature(given.document, given.publicKey, parts.verifySignature)
          if (!valid) {
            problems.push({
              kind: "signature_invalid",
              detail: `digest #${given.document.id} was not signed by the trusted key, or was changed after it was signed`
            })
          } else if (given.document.table !== tableName) {
            problems.push({
              kind: "wrong_table",
              detail: `digest #${given.document.id} is of ${given.document.table}, not ${tableName}`
            })
          } else {
            trusted = given.document
          }
        }
        const within =
          trusted === undefined
            ? sql`false`
            : sql`EXISTS (SELECT 1 FROM ${commits} c WHERE c.transaction_id = e.transaction_id
                AND (c.commit_sequence, e.global_position) <= (${trusted.checkpoint.commitSequence}::bigint, ${trusted.checkpoint.globalPosition}::bigint))`

        // Counted only for a progress display: it costs a scan of its own.
        const total =
          options?.onProgress === undefined
            ? 0
            : Number(
                (yield* sql<{ readonly total: string }>`SELECT count(*)::text AS total FROM ${table}`
                  .withoutTransform)[0]?.total ?? 0
              )

        // One pass over the table in stream order. Each row is checked against its predecessor as it goes by; the
        // first broken link of a stream sends the stream to `findBreak`, which reads it whole to say what happened.
        const heads: Array<Head> = []
        const broken: Array<readonly [aggregateType: string, aggregateId: string]> = []
        let streams = 0
        let events = 0
        let current: ChainedEvent | undefined
        let previous = ""
        let expected = 0
        let intact = true
        let head: Head | undefined
        const endStream = () => {
          if (head !== undefined) heads.push(head)
          head = undefined
        }
        let after: Position | undefined
        while (true) {
          const rows = yield* readPage(after, batchSize, within)
          for (const { event, within: isWithin } of rows) {
            if (
              current === undefined ||
              event.aggregateType !== current.aggregateType ||
              event.aggregateId !== current.aggregateId
            ) {
              endStream()
              streams++
              previous = genesis
              expected = 1
              intact = true
            }
            current = event
            events++
            if (isWithin) {
              head = {
                aggregateType: event.aggregateType,
                aggregateId: event.aggregateId,
                streamVersion: event.streamVersion,
                hash: event.hash
              }
            }
            if (!intact) continue
            if (
              event.streamVersion === expected &&
              event.hash !== null &&
              parts.link(previous, parts.canonical(event)) === event.hash
            ) {
              previous = event.hash
              expected++
            } else {
              intact = false
              broken.push([event.aggregateType, event.aggregateId])
            }
          }
          const last = rows.at(-1)
          // A page is cut short by its size too, so only an empty one ends the table.
          if (last === undefined) break
          if (options?.onProgress !== undefined) yield* options.onProgress({ events, streams, total })
          after = positionOf(last.event)
        }
        endStream()

        const findings = new Map<string, Finding>()
        /** Keeps a stream's earliest finding; on a tie the one already there, which is the more precise. */
        const keep = (finding: Finding) => {
          const key = streamKey(finding.aggregateType, finding.aggregateId)
          const earlier = findings.get(key)
          if (earlier === undefined || finding.streamVersion < earlier.streamVersion) findings.set(key, finding)
        }
        for (const [aggregateType, aggregateId] of broken) {
          const found = findBreak(parts, yield* readStream(aggregateType, aggregateId))
          if (found !== undefined) {
            findings.set(streamKey(aggregateType, aggregateId), findingOf(aggregateType, aggregateId, found))
          }
        }

        // Events that have no place in the commit order: their transaction id names no commit, so they were written
        // around the database's bookkeeping (a forged transaction id, or triggers switched off), and no reader of the
        // feed ever sees them. Their hashes can be valid; this check does not depend on them.
        for (const row of yield* unordered) {
          keep({
            kind: "unordered",
            aggregateType: row.aggregate_type,
            aggregateId: row.aggregate_id,
            streamVersion: row.stream_version,
            eventId: row.id,
            detail: `event ${row.id} names transaction ${row.transaction_id}, which has no place in the log's commit order: no reader of the feed sees it`
          })
        }

        let digest: DigestCheck | undefined
        if (given !== undefined) {
          let verified = false
          if (trusted !== undefined) {
            const document = trusted
            if (rootOf(heads) === document.root) {
              verified = true
              const [record] = yield* tables.readDigests(document.id)
              if (record === undefined || record.root !== document.root) {
                problems.push({
                  kind: "digest_record_altered",
                  detail: `the log matches digest #${document.id}, but the database's copy of it is ${record === undefined ? "missing" : "different"}`
                })
              }
            } else {
              const signed = yield* tables.readHeads(document.id)
              if (rootOf(signed) !== document.root) {
                problems.push({
                  kind: "digest_mismatch",
                  detail: `the log at or before the checkpoint differs from what digest #${document.id} signed, and the stored heads of the digest were altered too, so the stream cannot be named`
                })
              } else {
                // The stream's first bad event is the earliest one either check found.
                for (const finding of yield* compareWithDigest(document, heads, signed)) keep(finding)
              }
            }
          }
          digest = {
            id: given.document.id,
            checkpoint: given.document.checkpoint,
            verified: verified && problems.length === 0,
            problems
          }
        }

        const sorted = [...findings.values()].toSorted(compareHeads)
        return {
          ok: sorted.length === 0 && problems.length === 0,
          streams,
          events,
          findings: sorted,
          digest
        } satisfies Report
      },
      Effect.catchTag("SqlError", stored("Integrity.verify"))
    )

    return Integrity.of({ verify, verifyEntity })
  })

/** Builds the service with the real verifier. */
export const make = (options?: EventTable.Options) => makeWith(verifier, options)

/** The service for the events table the options name, built when the layer is. */
export const layer = (options?: EventTable.Options): Layer.Layer<Integrity, never, SqlClient.SqlClient> =>
  Layer.effect(Integrity, make(options))

/** The service with another verifier: for tests that show the suite catches a weakened one. */
export const layerWith = (
  parts: Verifier,
  options?: EventTable.Options
): Layer.Layer<Integrity, never, SqlClient.SqlClient> => Layer.effect(Integrity, makeWith(parts, options))

const findingOf = (aggregateType: string, aggregateId: string, found: Break): Finding => ({
  kind: found.kind,
  aggregateType,
  aggregateId,
  streamVersion: found.streamVersion,
  eventId: found.eventId,
  detail: found.detail
})

const stored = (operation: string) => (error: SqlError) => Effect.fail(fromSqlError(operation, error))
