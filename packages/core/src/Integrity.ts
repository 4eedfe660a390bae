/**
 * Tamper evidence: every event stores `hash = SHA-256(previous hash in its stream ‖ canonical bytes of the event)`,
 * computed by the append statement, and this module checks it. `verify` walks every stream's chain and, given a
 * signed digest and the key to trust, checks that the log at or before the digest's checkpoint is the one that was
 * signed; it reports each bad stream's first bad event: changed, missing, inserted, swapped, truncated, rewritten.
 * `verifyAggregate` is the fast path for one aggregate's history.
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
import * as LogCheckpoint from "./Checkpoint.ts"
import * as Digest from "./Digest.ts"
import * as Event from "./Event.ts"
import * as EventTable from "./EventTable.ts"
import { qualify } from "./EventTable.ts"
import { genesis, type HashScheme, scheme } from "./internal/integrity/chain.ts"
import { type Break, type BreakKind, findBreak, streamStart } from "./internal/integrity/diagnosis.ts"
import { compareHeads, formatV2, type Head, rootOf, streamKey } from "./internal/integrity/digest.ts"
import { type HeadRow, makeDigestStatements, type StoredDigest } from "./internal/integrity/digestStatements.ts"
import { makeReadPage, makeReadRange, makeReadStream, type Position, positionOf } from "./internal/integrity/read.ts"
import { makeIntegrityStatements, type StoredAt } from "./internal/integrity/statements.ts"
import * as Walk from "./internal/integrity/walk.ts"
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
  /** A stored digest row that the trusted key did not sign, or whose columns differ from its document: planted or altered. */
  | "digest_row_invalid"
  /**
   * The stored digests do not form a chain that only grows: one does not sign the previous one's hash, one is
   * missing, a checkpoint goes back, or a stream's signed head goes down.
   */
  | "chain_broken"
  /** A stored head row that no signed root covers: filed under no digest, or not what its digest signed. */
  | "digest_head_planted"

/** A problem with the digest a verification was given, or with the digests stored beside the log. */
export interface DigestProblem {
  readonly kind: DigestProblemKind
  readonly detail: string
  /** The stored digest row the problem is in, when it is in one. */
  readonly digestId?: number
  /** The stream of the head row the problem is in, when it is in one. */
  readonly aggregateType?: string
  readonly aggregateId?: string
}

/** How the log compared with a signed digest. */
export interface DigestCheck {
  readonly id: number
  readonly checkpoint: LogCheckpoint.Json
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

/** The digest an aggregate's head was checked against: the latest stored one, and the head it signed. */
export interface AggregateDigestCheck {
  readonly id: number
  readonly checkpoint: LogCheckpoint.Json
  /** The version of the stream's head that the digest signed; undefined when it signed none (a newer stream). */
  readonly signedVersion: number | undefined
}

/** The result of verifying one aggregate's history. */
export interface AggregateReport {
  readonly aggregateType: string
  readonly aggregateId: string
  /**
   * Every link of the aggregate's chain holds, and, when a digest is stored, the stream still holds the head the
   * latest digest signed, with its hash: a stream cut below its signed head is not verified.
   */
  readonly verified: boolean
  readonly events: number
  /** The last event's version and hash: what a digest, or a copy kept elsewhere, can be compared with. */
  readonly head: { readonly streamVersion: number; readonly hash: string | null } | undefined
  readonly finding: Finding | undefined
  /** The digest the head was checked against: the latest stored one; undefined when none is stored. */
  readonly digest: AggregateDigestCheck | undefined
}

/** A verified position of a stream: an event's version and its hash, which the next page's first link must follow. */
export interface Anchor {
  readonly streamVersion: number
  readonly hash: string
}

/** What a page's first link was checked against. */
export type AnchorKind =
  /** The page starts the stream: its first event links to the genesis hash. */
  | "genesis"
  /** The hash of the event before the page, as verified when the previous page was served (its cursor carries it). */
  | "previousPage"

/** The page of an aggregate's history to verify: the events it shows, and the anchor it continues from. */
export interface PageToVerify {
  /** The events the page shows, in the order shown. */
  readonly events: ReadonlyArray<{ readonly eventId: string; readonly streamVersion: number }>
  /** The previous page's verified last event; none for the first page, which is checked from the genesis hash. */
  readonly anchor?: Anchor | undefined
}

/**
 * The result of verifying one page of an aggregate's history: the links from its anchor to its last event, the
 * event before the page (that it still holds the anchor's hash, and still links to its predecessor), that the page
 * shows exactly the events stored at those versions, and that the stream still holds the head the latest digest
 * signed. Events after the page, and links before the anchor's predecessor, are not checked: a page is not the stream.
 */
export interface PageReport {
  readonly aggregateType: string
  readonly aggregateId: string
  readonly verified: boolean
  /** The first version whose link was checked: 1, or the version after the anchor. */
  readonly fromVersion: number
  /** The last version whose link was checked: the page's last event's. */
  readonly toVersion: number
  /** The number of events whose links were checked. */
  readonly events: number
  readonly anchor: { readonly kind: AnchorKind; readonly streamVersion: number; readonly hash: string }
  /** The page's last event, verified: what the next page continues from. Undefined when the page did not verify. */
  readonly last: Anchor | undefined
  readonly finding: Finding | undefined
  /** The digest whose signed head was checked: the latest stored one; undefined when none is stored. */
  readonly digest: AggregateDigestCheck | undefined
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
    /** Checks the chain of one aggregate's history. */
    readonly verifyAggregate: (
      aggregateType: string,
      aggregateId: string
    ) => Effect.Effect<AggregateReport, InvalidQuery | StorageError>
    /**
     * Checks one page of an aggregate's history, at a cost of the page and not of the stream: its links from the
     * anchor it continues from, and the stream's head against the latest digest's.
     */
    readonly verifyPage: (
      aggregateType: string,
      aggregateId: string,
      page: PageToVerify
    ) => Effect.Effect<PageReport, InvalidQuery | StorageError>
    /** The events table this service verifies. */
    readonly table: EventTable.EventTable
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
    const digests = makeDigestStatements(sql, config)
    const statements = makeIntegrityStatements(sql, config)

    const readRange = makeReadRange(sql, table)

    /** The latest stored digest, and the head it signed for the stream, if it signed one. */
    const latestSignedHead = Effect.fnUntraced(function* (aggregateType: string, aggregateId: string) {
      const latest = yield* digests.readLatestDigest
      const signed =
        latest === undefined ? undefined : yield* digests.readStreamHead(latest.id, aggregateType, aggregateId)
      return { latest, signed }
    })

    const verifyAggregate = Effect.fn("Integrity.verifyAggregate")(
      function* (aggregateType: string, aggregateId: string) {
        yield* Effect.annotateCurrentSpan({ aggregateType, aggregateId })
        // A malformed type names no stream: checked, so that a typo is an error and not an empty chain that holds.
        const id = yield* checkStream(aggregateType, aggregateId)
        const events = yield* readStream(aggregateType, id)
        const found = findBreak(parts, events)
        const last = events.at(-1)
        // The chain alone cannot see its tail cut off: the latest digest's signed head for the stream can. The
        // stored digest is written by the signer's role alone (docs/guides/hardening.md); `verify` with a document
        // kept outside the database is the proof.
        const { latest, signed } = yield* latestSignedHead(aggregateType, id)
        const digestFinding =
          latest === undefined || signed === undefined ? undefined : headFinding(`digest #${latest.id}`, signed, events)
        const finding =
          found === undefined
            ? digestFinding
            : digestFinding !== undefined && digestFinding.streamVersion < found.streamVersion
              ? digestFinding
              : findingOf(aggregateType, id, found)
        yield* Effect.annotateCurrentSpan({ events: events.length, verified: finding === undefined })
        return {
          aggregateType,
          aggregateId: id,
          verified: finding === undefined,
          events: events.length,
          head: last === undefined ? undefined : { streamVersion: last.streamVersion, hash: last.hash },
          finding,
          digest: digestCheckOf(latest, signed)
        } satisfies AggregateReport
      },
      Effect.catchTag("SqlError", stored("Integrity.verifyAggregate"))
    )

    const verifyPage = Effect.fn("Integrity.verifyPage")(
      function* (aggregateType: string, aggregateId: string, page: PageToVerify) {
        yield* Effect.annotateCurrentSpan({ aggregateType, aggregateId })
        const id = yield* checkStream(aggregateType, aggregateId)
        const anchor = page.anchor
        const start = anchor?.streamVersion ?? 0
        const to = page.events.reduce((max, event) => Math.max(max, event.streamVersion), start)
        // From the anchor's predecessor, to tell whether the anchor itself still links, and one row past the page,
        // which tells a changed hash from changed fields: both are read for the diagnosis, not reported on.
        const rows =
          anchor === undefined
            ? yield* readRange(aggregateType, id, -2_147_483_648, to + 1)
            : yield* readRange(aggregateType, id, start - 1, to + 1)
        const findings: Array<Finding> = []
        const before = rows.find((row) => row.streamVersion === start - 1)
        const chained = anchor === undefined ? rows : rows.filter((row) => row.streamVersion >= start)
        if (anchor !== undefined && start > 1 && before === undefined) {
          findings.push({
            kind: "missing",
            aggregateType,
            aggregateId: id,
            streamVersion: start - 1,
            eventId: undefined,
            detail: `version ${start - 1}, before the previous page's last event, is absent`
          })
        }
        const atAnchor = anchor === undefined ? undefined : chained.find((row) => row.streamVersion === start)
        if (anchor !== undefined && (atAnchor === undefined || atAnchor.hash !== anchor.hash)) {
          findings.push({
            kind: "rewritten",
            aggregateType,
            aggregateId: id,
            streamVersion: start,
            eventId: atAnchor?.eventId,
            detail:
              atAnchor === undefined
                ? `version ${start}, the last event of the previous page, is absent`
                : `event ${atAnchor.eventId} at version ${start}, the last of the previous page, no longer holds the hash it was verified with: the stream was rewritten at or before it`
          })
        }
        const found = findBreak(
          parts,
          chained,
          anchor === undefined
            ? streamStart
            : { streamVersion: start - 1, hash: start === 1 ? genesis : (before?.hash ?? genesis) }
        )
        // A break past the page's last event is outside what this page answers for.
        if (found !== undefined && found.streamVersion <= to) findings.push(findingOf(aggregateType, id, found))
        // The page must show what the chain holds at its versions, and nothing from before its anchor.
        const byVersion = new Map(chained.map((row) => [row.streamVersion, row.eventId]))
        for (const shown of page.events) {
          if (shown.streamVersion <= start || byVersion.get(shown.streamVersion) !== shown.eventId) {
            findings.push({
              kind: "inserted",
              aggregateType,
              aggregateId: id,
              streamVersion: shown.streamVersion,
              eventId: shown.eventId,
              detail: `event ${shown.eventId}, shown at version ${shown.streamVersion}, is not the event the chain holds there after version ${start}`
            })
          }
        }
        // The head the latest digest signed must still be stored, with its hash: what the chain cannot see cut off.
        const { latest, signed } = yield* latestSignedHead(aggregateType, id)
        if (latest !== undefined && signed !== undefined) {
          const stored = yield* statements.storedAt(signed)
          if (stored.eventId === undefined || stored.hash !== signed.hash) {
            findings.push(signedHeadFinding(`digest #${latest.id}`, signed, undefined, stored))
          }
        }
        const finding = findings.reduce<Finding | undefined>(
          (earliest, next) => (earliest === undefined || next.streamVersion < earliest.streamVersion ? next : earliest),
          undefined
        )
        const lastRow = chained.find((row) => row.streamVersion === to)
        const checked = chained.filter((row) => row.streamVersion > start && row.streamVersion <= to).length
        yield* Effect.annotateCurrentSpan({ events: checked, verified: finding === undefined })
        return {
          aggregateType,
          aggregateId: id,
          verified: finding === undefined,
          fromVersion: start + 1,
          toVersion: to,
          events: checked,
          anchor:
            anchor === undefined
              ? { kind: "genesis", streamVersion: 0, hash: genesis }
              : { kind: "previousPage", streamVersion: anchor.streamVersion, hash: anchor.hash },
          last:
            finding !== undefined || lastRow?.hash === null || lastRow === undefined
              ? undefined
              : { streamVersion: to, hash: lastRow.hash },
          finding,
          digest: digestCheckOf(latest, signed)
        } satisfies PageReport
      },
      Effect.catchTag("SqlError", stored("Integrity.verifyPage"))
    )

    /** Whether the given digest is one to check the log against: signed by the trusted key, and of this table. */
    const trustDigest = Effect.fnUntraced(function* (given: NonNullable<VerifyOptions["digest"]>) {
      const { document } = given
      if (!(yield* Digest.verifySignature(document, given.publicKey, parts.verifySignature))) {
        return untrusted({
          kind: "signature_invalid",
          detail: `digest #${document.id} was not signed by the trusted key, or was changed after it was signed`
        })
      }
      if (document.table !== tableName) {
        return untrusted({
          kind: "wrong_table",
          detail: `digest #${document.id} is of ${document.table}, not ${tableName}`
        })
      }
      return { trusted: document, problems: [] } satisfies Trust
    })

    /**
     * Reads the whole table once, in stream order, checking every chain as it goes by (`walk.ts`); rows at or before
     * `checkpoint` give each stream's head for the digest check.
     */
    const walkChains = Effect.fnUntraced(function* (
      checkpoint: LogCheckpoint.Checkpoint | undefined,
      batchSize: number,
      onProgress: VerifyOptions["onProgress"]
    ): Effect.fn.Return<Walk.ChainWalk, SqlError | StorageError> {
      const within = statements.within(checkpoint)
      const total = onProgress === undefined ? 0 : yield* statements.count
      // The streams read to their end; each page's are added here, and nowhere else.
      const finished: Array<Walk.StreamCheck> = []
      let state: {
        readonly after: Position | undefined
        readonly current: Walk.StreamCheck | undefined
        readonly events: number
      } = { after: undefined, current: undefined, events: 0 }
      while (true) {
        const rows = yield* readPage(state.after, batchSize, within)
        const last = rows.at(-1)
        // A page is cut short by its size too, so only an empty one ends the table.
        if (last === undefined) break
        const page = Walk.checkPage(parts, state.current, rows)
        for (const stream of page.finished) finished.push(stream)
        state = { after: positionOf(last.event), current: page.current, events: state.events + rows.length }
        if (onProgress !== undefined) {
          const streams = finished.length + (page.current === undefined ? 0 : 1)
          yield* onProgress({ events: state.events, streams, total })
        }
      }
      if (state.current !== undefined) finished.push(state.current)
      return Walk.summarize(finished, state.events)
    })

    /** The first bad event of each broken stream, which `findBreak` tells from the whole stream. */
    const diagnose = Effect.fnUntraced(function* (broken: ReadonlyArray<Walk.StreamCheck>) {
      const findings: Array<Finding> = []
      for (const { aggregateType, aggregateId } of broken) {
        const found = findBreak(parts, yield* readStream(aggregateType, aggregateId))
        if (found !== undefined) findings.push(findingOf(aggregateType, aggregateId, found))
      }
      return findings
    })

    /**
     * Events that have no place in the commit order: their transaction id names no commit, so they were written
     * around the database's bookkeeping (a forged transaction id, or triggers switched off), and no reader of the
     * feed ever sees them. Their hashes can be valid; this check does not depend on them.
     */
    const findUnordered = statements.unordered.pipe(
      Effect.map((rows) =>
        rows.map((row): Finding => ({
          kind: "unordered",
          aggregateType: row.aggregateType,
          aggregateId: row.aggregateId,
          streamVersion: row.streamVersion,
          eventId: row.eventId,
          detail: `event ${row.eventId} names transaction ${row.transactionId}, which has no place in the log's commit order: no reader of the feed sees it`
        }))
      )
    )

    /** Compares the heads as of the checkpoint with the signed ones, stream by stream. */
    const compareWithDigest = Effect.fnUntraced(function* (
      document: Digest.Document,
      current: ReadonlyArray<Head>,
      signed: ReadonlyArray<Head>
    ): Effect.fn.Return<ReadonlyArray<Finding>, SqlError> {
      const currentByStream = new Map(current.map((head) => [streamKey(head.aggregateType, head.aggregateId), head]))
      const signedStreams = new Set(signed.map((head) => streamKey(head.aggregateType, head.aggregateId)))
      const digestName = `digest #${document.id}`
      const findings: Array<Finding> = []
      for (const head of signed) {
        const now = currentByStream.get(streamKey(head.aggregateType, head.aggregateId))
        if (now !== undefined && now.streamVersion === head.streamVersion && now.hash === head.hash) continue
        findings.push(signedHeadFinding(digestName, head, now, yield* statements.storedAt(head)))
      }
      for (const head of current) {
        if (!signedStreams.has(streamKey(head.aggregateType, head.aggregateId))) {
          findings.push(unsignedStreamFinding(digestName, head))
        }
      }
      return findings
    })

    /**
     * Checks the log's heads at the checkpoint against a trusted digest: the same root proves every event at or
     * before it; a different one is traced to its streams through the heads the database kept for the digest, if
     * those still hash to the signed root.
     */
    const checkDigest = Effect.fnUntraced(function* (
      document: Digest.Document,
      trust: Trust,
      heads: ReadonlyArray<Head>
    ): Effect.fn.Return<DigestOutcome, SqlError | StorageError> {
      const outcome = (
        verified: boolean,
        problems: ReadonlyArray<DigestProblem>,
        findings: ReadonlyArray<Finding>
      ) => ({
        check: {
          id: document.id,
          checkpoint: document.checkpoint,
          verified: verified && problems.length === 0,
          problems
        },
        findings
      })
      const trusted = trust.trusted
      if (trusted === undefined) return outcome(false, trust.problems, [])
      if (rootOf(heads, trusted.format) === trusted.root) {
        const [record] = yield* digests.readDigests(trusted.id)
        return record !== undefined && record.root === trusted.root
          ? outcome(true, [], [])
          : outcome(
              true,
              [
                {
                  kind: "digest_record_altered",
                  detail: `the log matches digest #${trusted.id}, but the database's copy of it is ${record === undefined ? "missing" : "different"}`
                }
              ],
              []
            )
      }
      const signed = yield* digests.readHeads(trusted.id)
      if (rootOf(signed, trusted.format) !== trusted.root) {
        const problem: DigestProblem = {
          kind: "digest_mismatch",
          detail: `the log at or before the checkpoint differs from what digest #${trusted.id} signed, and the stored heads of the digest were altered too, so the stream cannot be named`
        }
        return outcome(false, [problem], [])
      }
      return outcome(false, [], yield* compareWithDigest(trusted, heads, signed))
    })

    /**
     * Checks every stored digest against the trusted key, and that together they form a chain that only grows:
     * each row is signed and matches its document; each digest signs the previous one's hash, with a checkpoint not
     * before it; each digest's stored heads hash to its signed root, and no stream's head goes down. A row that fails
     * is reported by its digest number (and stream, for a head row). A signed head that the log no longer holds is a
     * finding in its stream, as for the given digest.
     */
    const checkChain = Effect.fnUntraced(function* (
      publicKey: Signature.PublicKey<Signature.Ed25519>
    ): Effect.fn.Return<ChainCheck, SqlError | StorageError | Digest.DigestError> {
      const problems: Array<DigestProblem> = []
      const findings: Array<Finding> = []
      const rows = (yield* digests.readDigests()).toReversed()
      const valid = new Map<number, Digest.Document>()
      let before: { readonly id: number; readonly document: Digest.Document | undefined } | undefined
      for (const row of rows) {
        const document = yield* Digest.decode(row.document).pipe(Effect.option)
        const why =
          document._tag === "None"
            ? "does not decode as a digest document"
            : !(yield* Digest.verifySignature(document.value, publicKey, parts.verifySignature))
              ? "was not signed by the trusted key"
              : document.value.id !== row.id ||
                  document.value.table !== tableName ||
                  document.value.root !== row.root ||
                  (document.value.previous ?? null) !== row.previousHash ||
                  LogCheckpoint.compare(LogCheckpoint.fromJson(document.value.checkpoint), row.checkpoint) !== 0
                ? "has columns that differ from its signed document"
                : undefined
        if (why !== undefined || document._tag === "None") {
          problems.push({
            kind: "digest_row_invalid",
            digestId: row.id,
            detail: `digest row #${row.id} ${why}: it was planted or altered`
          })
          before = { id: row.id, document: undefined }
          continue
        }
        const current = document.value
        const expectedId = (before?.id ?? 0) + 1
        if (row.id !== expectedId) {
          problems.push({
            kind: "chain_broken",
            digestId: row.id,
            detail: `digest #${row.id} follows ${before === undefined ? "no digest" : `#${before.id}`}: digest${row.id - expectedId > 1 ? `s #${expectedId} to #${row.id - 1} are` : ` #${expectedId} is`} missing`
          })
        } else if (before?.document !== undefined) {
          const previous = before.document
          if (current.format !== formatV2 && current.previous !== Digest.hash(previous)) {
            problems.push({
              kind: "chain_broken",
              digestId: row.id,
              detail: `digest #${row.id} does not sign the hash of digest #${previous.id}: the digest it followed was replaced`
            })
          }
          if (
            LogCheckpoint.compare(
              LogCheckpoint.fromJson(current.checkpoint),
              LogCheckpoint.fromJson(previous.checkpoint)
            ) < 0
          ) {
            problems.push({
              kind: "chain_broken",
              digestId: row.id,
              detail: `the checkpoint of digest #${row.id} is before that of digest #${previous.id}`
            })
          }
        } else if (before === undefined && (current.previous ?? null) !== null) {
          problems.push({
            kind: "chain_broken",
            digestId: row.id,
            detail: `digest #${row.id} signs the hash of a digest before it, and none is stored`
          })
        }
        valid.set(row.id, current)
        before = { id: row.id, document: current }
      }

      // The heads as of each digest, folded in digest order as `readHeads` reads them.
      const stored = new Set(rows.map((row) => row.id))
      const byDigest = new Map<number, Array<HeadRow>>()
      for (const head of yield* digests.readHeadRows) {
        if (!stored.has(head.digestId)) {
          problems.push(plantedHead(head, "belongs to no stored digest"))
          continue
        }
        const group = byDigest.get(head.digestId) ?? []
        group.push(head)
        byDigest.set(head.digestId, group)
      }
      const state = new Map<string, HeadRow>()
      // The root of the heads as they stand, until a head moves: digests of an idle log cost no recomputation.
      let cached: { readonly format: string; readonly root: string } | undefined
      const rootNow = (format: Digest.Document["format"]) => {
        if (cached === undefined || cached.format !== format) {
          cached = { format, root: rootOf([...state.values()], format) }
        }
        return cached.root
      }
      for (const row of rows) {
        const moved = byDigest.get(row.id) ?? []
        if (moved.length > 0) cached = undefined
        const replaced = new Map<string, HeadRow | undefined>()
        for (const head of moved) {
          const key = streamKey(head.aggregateType, head.aggregateId)
          replaced.set(key, state.get(key))
          state.set(key, head)
        }
        const document = valid.get(row.id)
        if (document === undefined) continue
        const digestName = `digest #${row.id}`
        if (rootNow(document.format) !== document.root) {
          // What the log contradicts is what was planted or altered: the rest is checked without it.
          const suspects = moved.filter((head) => head.stored.eventId === undefined || head.stored.hash !== head.hash)
          for (const head of suspects) {
            problems.push(
              plantedHead(
                head,
                `is not what ${digestName} signed: its root does not cover it, and the log holds no such head`
              )
            )
            const key = streamKey(head.aggregateType, head.aggregateId)
            const earlier = replaced.get(key)
            if (earlier === undefined) state.delete(key)
            else state.set(key, earlier)
            cached = undefined
          }
          // A named row explains the mismatch; only when none can be named is the digest named alone.
          if (suspects.length === 0 && rootNow(document.format) !== document.root) {
            problems.push({
              kind: "digest_head_planted",
              digestId: row.id,
              detail: `the stored heads of ${digestName} do not hash to its signed root: a head row was planted or altered`
            })
          }
          continue
        }
        for (const head of moved) {
          const earlier = replaced.get(streamKey(head.aggregateType, head.aggregateId))
          if (earlier !== undefined && earlier.streamVersion >= head.streamVersion) {
            problems.push({
              kind: "chain_broken",
              digestId: row.id,
              aggregateType: head.aggregateType,
              aggregateId: head.aggregateId,
              detail: `${digestName} signs ${head.aggregateType}/${head.aggregateId} at version ${head.streamVersion}, not above version ${earlier.streamVersion} of the digest before it`
            })
          }
          // A signed head stays in the log at its version, with its hash, whatever came after it.
          if (head.stored.eventId === undefined || head.stored.hash !== head.hash) {
            findings.push(signedHeadFinding(digestName, head, undefined, head.stored))
          }
        }
      }
      return { problems, findings }
    })

    const verify = Effect.fn("Integrity.verify")(
      function* (options?: VerifyOptions) {
        const given = options?.digest
        if (given !== undefined) yield* Effect.annotateCurrentSpan({ digestId: given.document.id })
        const trust = given === undefined ? undefined : yield* trustDigest(given)
        const checkpoint = trust?.trusted === undefined ? undefined : LogCheckpoint.fromJson(trust.trusted.checkpoint)
        const walk = yield* walkChains(checkpoint, options?.batchSize ?? 2000, options?.onProgress)
        const broken = yield* diagnose(walk.broken)
        const unordered = yield* findUnordered
        const checked =
          given === undefined || trust === undefined ? undefined : yield* checkDigest(given.document, trust, walk.heads)
        const chain =
          given === undefined || trust?.trusted === undefined ? undefined : yield* checkChain(given.publicKey)
        const digest =
          checked === undefined
            ? undefined
            : {
                check: {
                  ...checked.check,
                  verified: checked.check.verified && (chain?.problems.length ?? 0) === 0,
                  problems: [...checked.check.problems, ...(chain?.problems ?? [])]
                },
                findings: [...checked.findings, ...(chain?.findings ?? [])]
              }
        // A stream's first bad event is the earliest one any check found.
        const findings = earliestPerStream([...broken, ...unordered, ...(digest?.findings ?? [])])
        const problems = digest?.check.problems ?? []
        yield* Effect.annotateCurrentSpan({
          streams: walk.streams,
          events: walk.events,
          findings: findings.length,
          digestProblems: problems.length
        })
        return {
          ok: findings.length === 0 && problems.length === 0,
          streams: walk.streams,
          events: walk.events,
          findings,
          digest: digest?.check
        } satisfies Report
      },
      Effect.catchTag("SqlError", stored("Integrity.verify"))
    )

    return Integrity.of({ table: config, verify, verifyAggregate, verifyPage })
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

/** The digest an aggregate's head was checked against, as a report names it. */
const digestCheckOf = (latest: StoredDigest | undefined, signed: Head | undefined): AggregateDigestCheck | undefined =>
  latest === undefined
    ? undefined
    : { id: latest.id, checkpoint: LogCheckpoint.toJson(latest.checkpoint), signedVersion: signed?.streamVersion }

/** The aggregate's id in lowercase, once its type and id are checked: a malformed one names no stream. */
const checkStream = (aggregateType: string, aggregateId: string): Effect.Effect<string, InvalidQuery> =>
  // Checked, so that a typo is an error and not an empty chain that holds.
  !Event.isAggregateType(aggregateType)
    ? Effect.fail(
        new InvalidQuery({ field: "aggregateType", reason: "must be one lowercase segment, such as organization" })
      )
    : !Event.isUuid(aggregateId)
      ? Effect.fail(new InvalidQuery({ field: "aggregateId", reason: "must be a UUID" }))
      : Effect.succeed(aggregateId.toLowerCase())

const findingOf = (aggregateType: string, aggregateId: string, found: Break): Finding => ({
  kind: found.kind,
  aggregateType,
  aggregateId,
  streamVersion: found.streamVersion,
  eventId: found.eventId,
  detail: found.detail
})

const stored = (operation: string) => (error: SqlError) => Effect.fail(fromSqlError(operation, error))

/** Whether a digest is to be checked against: the document when it is, the problems that say why when it is not. */
interface Trust {
  readonly trusted: Digest.Document | undefined
  readonly problems: ReadonlyArray<DigestProblem>
}

const untrusted = (problem: DigestProblem): Trust => ({ trusted: undefined, problems: [problem] })

/** What the check of the stored digests found: problems in the digest tables, and signed heads the log lost. */
interface ChainCheck {
  readonly problems: ReadonlyArray<DigestProblem>
  readonly findings: ReadonlyArray<Finding>
}

/** A head row that no signed root covers. */
const plantedHead = (head: HeadRow, why: string): DigestProblem => ({
  kind: "digest_head_planted",
  digestId: head.digestId,
  aggregateType: head.aggregateType,
  aggregateId: head.aggregateId,
  detail: `the head row of ${head.aggregateType}/${head.aggregateId} at version ${head.streamVersion}, filed under digest #${head.digestId}, ${why}`
})

/** The digest check's report, and the findings it traced to streams. */
interface DigestOutcome {
  readonly check: DigestCheck
  readonly findings: ReadonlyArray<Finding>
}

/**
 * One finding per stream, ordered by aggregate type and id: the earliest bad event, and on a tie the one found
 * first, as the checks run from the most precise (the chain's) to the least.
 */
const earliestPerStream = (findings: ReadonlyArray<Finding>): ReadonlyArray<Finding> => {
  const byStream = new Map<string, Finding>()
  for (const finding of findings) {
    const key = streamKey(finding.aggregateType, finding.aggregateId)
    const earlier = byStream.get(key)
    if (earlier === undefined || finding.streamVersion < earlier.streamVersion) byStream.set(key, finding)
  }
  return [...byStream.values()].toSorted(compareHeads)
}

/** What is wrong with a stream whose head at the checkpoint is not the signed one, from what is stored there. */
const signedHeadFinding = (digestName: string, head: Head, now: Head | undefined, stored: StoredAt): Finding => {
  const at = (kind: BreakKind, streamVersion: number, eventId: string | undefined, detail: string): Finding => ({
    kind,
    aggregateType: head.aggregateType,
    aggregateId: head.aggregateId,
    streamVersion,
    eventId,
    detail
  })
  if (stored.eventId === undefined) {
    return stored.last < head.streamVersion
      ? at(
          "truncated",
          stored.last + 1,
          undefined,
          `the stream ends at version ${stored.last}, but ${digestName} signed it up to version ${head.streamVersion}`
        )
      : at(
          "missing",
          head.streamVersion,
          undefined,
          `version ${head.streamVersion}, signed by ${digestName}, is absent`
        )
  }
  if (stored.hash !== head.hash) {
    return at(
      "rewritten",
      head.streamVersion,
      stored.eventId,
      `the chain holds, but its hash at version ${head.streamVersion} is not the one ${digestName} signed: the stream was rewritten at or before that version, hashes included`
    )
  }
  if (now === undefined || now.streamVersion < head.streamVersion) {
    return at(
      "changed",
      head.streamVersion,
      stored.eventId,
      `event ${stored.eventId} is as signed, but its transaction id, global position or commit was changed: it no longer falls at or before the checkpoint of ${digestName}`
    )
  }
  return at(
    "inserted",
    head.streamVersion + 1,
    undefined,
    `version ${head.streamVersion + 1} claims a place at or before the checkpoint of ${digestName}, which signed the stream only up to version ${head.streamVersion}`
  )
}

/** What is wrong with one stream's events against the head a digest signed for it, if anything. */
const headFinding = (
  digestName: string,
  head: Head,
  events: ReadonlyArray<{ readonly streamVersion: number; readonly eventId: string; readonly hash: string | null }>
): Finding | undefined => {
  const at = events.find((event) => event.streamVersion === head.streamVersion)
  if (at !== undefined && at.hash === head.hash) return undefined
  const stored: StoredAt = {
    eventId: at?.eventId,
    hash: at?.hash ?? null,
    last: events.reduce((max, event) => Math.max(max, event.streamVersion), 0)
  }
  return signedHeadFinding(digestName, head, undefined, stored)
}

/** A stream with events at or before the checkpoint that the digest did not sign. */
const unsignedStreamFinding = (digestName: string, head: Head): Finding => ({
  kind: "inserted",
  aggregateType: head.aggregateType,
  aggregateId: head.aggregateId,
  streamVersion: 1,
  eventId: undefined,
  detail: `the stream has events at or before the checkpoint of ${digestName}, which signed no such stream`
})
