/**
 * Signed digests: a statement, signed with an Ed25519 key from configuration, of every stream's head as of a
 * checkpoint of the log. Kept outside the database (a file, an email, a ticket), a digest lets a verifier prove
 * later that nothing at or before its checkpoint was changed, removed, or rewritten, even by someone who could
 * recompute every hash of the chain: they cannot sign.
 *
 * A checkpoint is a position in the log's commit order (`Checkpoint`): a digest covers the events at or before it.
 * It is only taken at or below the feed's fence, where every commit is visible or gone for good, so no event can
 * later appear at or before it; only transactions in their commit can hold it back. Digests are made on demand
 * (`create`, `annal digest`) or on a
 * schedule (`layerSchedule`); each is stored in the `<table>_digests` table and returned as a small JSON document
 * (`encode`) to keep elsewhere.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Base64Url from "effect/encoding/Base64Url"
import * as KeyFormat from "effect/crypto/KeyFormat"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Signature from "effect/crypto/Signature"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { StorageError } from "./AnnalError.ts"
import * as CanonicalJson from "./CanonicalJson.ts"
import * as LogCheckpoint from "./Checkpoint.ts"
import * as EventTable from "./EventTable.ts"
import { format, formatV2, type Head, rootOf, sha256Hex, streamKey } from "./internal/integrity/digest.ts"
import { makeDigestStatements } from "./internal/integrity/digestStatements.ts"
import { makeFeedRead } from "./internal/feed/read.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"

// Ed25519 runs on WebCrypto, which Node 24 provides.
const signatureLayer = Signature.layerWebCrypto.pipe(Layer.provide(SecureRandom.layerWebCrypto))

const Sha256Hex = Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/))

/**
 * The exported digest. `signature` is Ed25519 over the UTF-8 bytes of the RFC 8785 form of every other field;
 * `publicKey` names the key that signed it (raw, base64url), but a verifier trusts only the key it was given.
 * Format v3 signs `previous`, the hash of the digest before it (`hash`), so that digests form a chain; documents of
 * format v2, made before, have none, and are still read and verified.
 */
export const Document = Schema.Struct({
  format: Schema.Literals([format, formatV2]),
  /** The events table, `schema.table`. */
  table: Schema.String,
  /** The digest's number in its table, from 1. */
  id: Schema.Int,
  checkpoint: LogCheckpoint.Json,
  /** How many streams had events at or before the checkpoint. */
  streams: Schema.Int,
  /** How many events those streams' chains cover: the sum of their head versions. */
  events: Schema.Int,
  /** The root over the stream heads, hex (see `internal/integrity/digest.ts`). */
  root: Sha256Hex,
  /** The hash of the previous digest's document (`hash`), hex; null for the first digest. Absent in v2. */
  previous: Schema.optionalKey(Schema.NullOr(Sha256Hex)),
  /** When the digest was made, ISO 8601. */
  createdAt: Schema.String,
  publicKey: Schema.String,
  signature: Schema.String
})

/** An exported digest. */
export type Document = typeof Document.Type

/** A digest could not be made, read or checked: a key that does not parse, a document that does not decode. */
export class DigestError extends Schema.TaggedError<DigestError>("@annal/core/DigestError")("DigestError", {
  reason: Schema.String,
  /** The stored digest the error is about, when it is about one: a row that does not verify, or its heads. */
  digestId: Schema.optional(Schema.Int)
}) {
  override get message(): string {
    return `Digest: ${this.reason}`
  }
}

/** The key digests are signed with. */
export class SigningKey extends Context.Service<
  SigningKey,
  {
    readonly privateKey: Signature.PrivateKey<Signature.Ed25519>
    readonly publicKey: Signature.PublicKey<Signature.Ed25519>
    /** The raw public key, base64url: how documents name the key that signed them. */
    readonly publicKeyId: string
  }
>()("@annal/core/Digest/SigningKey") {}

/** The digest service. */
export class Digest extends Context.Service<
  Digest,
  {
    /**
     * Makes, signs and stores a digest up to `checkpoint`, by default the latest one that is stable. A checkpoint
     * must be stable and not before the previous digest's.
     */
    readonly create: (options?: {
      readonly checkpoint?: LogCheckpoint.Json
    }) => Effect.Effect<Document, DigestError | StorageError>
    /** The stored documents, the latest first. */
    readonly list: Effect.Effect<ReadonlyArray<Document>, DigestError | StorageError>
  }
>()("@annal/core/Digest") {}

/**
 * The bytes a document's signature covers: the RFC 8785 form of every field but `signature`. In v3 that includes
 * `previous` (null when absent); v2 documents had no such field.
 */
export const signedBytes = (document: Omit<Document, "signature">): Uint8Array =>
  CanonicalJson.toBytes(signedFields(document))

/**
 * The hash of a document, which the next digest signs as its `previous`: SHA-256 of the RFC 8785 form of every field,
 * the signature included, so that it names one signed document.
 */
export const hash = (document: Document): string =>
  sha256Hex(CanonicalJson.toBytes({ ...signedFields(document), signature: document.signature }))

const signedFields = (document: Omit<Document, "signature">) => {
  const { table, id, checkpoint, streams, events, root, createdAt, publicKey } = document
  const fields = { format: document.format, table, id, checkpoint, streams, events, root, createdAt, publicKey }
  return document.format === formatV2 ? fields : { ...fields, previous: document.previous ?? null }
}

/** A document as the JSON text to keep. */
export const encode = (document: Document): string => `${JSON.stringify(document, null, 2)}\n`

/** Reads a document from its JSON text. */
export const decode = Effect.fn("Digest.decode")(function* (text: string): Effect.fn.Return<Document, DigestError> {
  return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(Document))(text).pipe(
    Effect.mapError(
      (error) =>
        new DigestError({
          reason: /"format"\s*:\s*"annal\.digest\.v1"/.test(text)
            ? "an annal.digest.v1 document, made before the log had a commit order (migration 6): its checkpoint names a transaction id, which this version does not verify against; make a new digest after migrating"
            : `not a digest document: ${error.message}`
        })
    )
  )
})

/**
 * Whether `document` was signed by `publicKey`: the key it names must be that key, and the signature must verify.
 * `verify` is the check itself, replaceable so that tests can show a verifier that skips it is caught.
 */
export const verifySignature = Effect.fn("Digest.verifySignature")(function* (
  document: Document,
  publicKey: Signature.PublicKey<Signature.Ed25519>,
  verify: (
    publicKey: Signature.PublicKey<Signature.Ed25519>,
    signature: Uint8Array,
    message: Uint8Array
  ) => Effect.Effect<boolean, DigestError> = ed25519Verify
) {
  const expected = yield* keyId(publicKey)
  if (document.publicKey !== expected) return false
  const signature = Base64Url.decode(document.signature)
  if (Result.isFailure(signature)) return false
  return yield* verify(publicKey, signature.success, signedBytes(document))
})

/** Checks an Ed25519 signature with WebCrypto. */
export const ed25519Verify: (
  publicKey: Signature.PublicKey<Signature.Ed25519>,
  signature: Uint8Array,
  message: Uint8Array
) => Effect.Effect<boolean, DigestError> = Effect.fn("Digest.ed25519Verify")(
  function* (publicKey: Signature.PublicKey<Signature.Ed25519>, signature: Uint8Array, message: Uint8Array) {
    const service = yield* Signature.Signature
    return yield* service.verify(publicKey, signature, message)
  },
  Effect.provide(signatureLayer),
  // A function, not `cryptoFailure` itself: this runs when the module loads, before that constant is defined.
  Effect.mapError((error) => cryptoFailure(error))
)

/**
 * Reads a private key: PKCS#8 PEM (`openssl genpkey -algorithm ed25519`), or the 32-byte seed in base64url or
 * base64.
 */
export const parseSigningKey = Effect.fn("Digest.parseSigningKey")(function* (text: Redacted.Redacted<string>) {
  const value = Redacted.value(text).trim()
  const privateKey = value.startsWith("-----BEGIN")
    ? yield* KeyFormat.decodePrivate(KeyFormat.pem(KeyFormat.pkcs8), Signature.ed25519, value).pipe(
        Effect.mapError(cryptoFailure)
      )
    : yield* Signature.privateKey(Signature.ed25519, yield* decodeKeyBytes(value)).pipe(Effect.mapError(cryptoFailure))
  const publicKey = yield* Signature.Signature.use((service) => service.publicKeyOf(privateKey)).pipe(
    Effect.provide(signatureLayer),
    Effect.mapError(cryptoFailure)
  )
  return SigningKey.of({ privateKey, publicKey, publicKeyId: yield* keyId(publicKey) })
})

/** Reads a public key: SPKI PEM, or the raw 32 bytes in base64url or base64 (a document's `publicKey`). */
export const parsePublicKey = Effect.fn("Digest.parsePublicKey")(function* (text: string) {
  const value = text.trim()
  return value.startsWith("-----BEGIN")
    ? yield* KeyFormat.decodePublic(KeyFormat.pem(KeyFormat.spki), Signature.ed25519, value).pipe(
        Effect.mapError(cryptoFailure)
      )
    : yield* Signature.publicKey(Signature.ed25519, yield* decodeKeyBytes(value)).pipe(Effect.mapError(cryptoFailure))
})

/** A new signing key: its PKCS#8 PEM, to keep secret, and its public key, to give verifiers. */
export const generateSigningKey: Effect.Effect<
  { readonly privateKeyPem: Redacted.Redacted<string>; readonly publicKey: string },
  DigestError
> = Effect.gen(function* () {
  const service = yield* Signature.Signature
  const pair = yield* service.generateKeyPair(Signature.ed25519)
  const privateKeyPem = yield* KeyFormat.encode(KeyFormat.pem(KeyFormat.pkcs8), pair.privateKey)
  return { privateKeyPem: Redacted.make(privateKeyPem), publicKey: yield* keyId(pair.publicKey) }
}).pipe(
  Effect.provide(signatureLayer),
  Effect.mapError((error) => (error._tag === "DigestError" ? error : cryptoFailure(error))),
  // An effect, not a function: withSpan is the traced form of a value (Effect.fn applied at once is an IIFE).
  Effect.withSpan("Digest.generateSigningKey")
)

/** The signing key `text` names. */
export const layerSigningKey = (text: Redacted.Redacted<string>): Layer.Layer<SigningKey, DigestError> =>
  Layer.effect(SigningKey, parseSigningKey(text))

/** The signing key in `ANNAL_DIGEST_SIGNING_KEY`. */
export const layerSigningKeyConfig: Layer.Layer<SigningKey, DigestError | Config.ConfigError> = Layer.effect(
  SigningKey,
  Effect.flatMap(Config.Redacted("ANNAL_DIGEST_SIGNING_KEY"), parseSigningKey)
)

const makeSigned = Effect.fnUntraced(function* (options?: EventTable.Options) {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EventTable.make(options)
  const key = yield* SigningKey
  const signer = yield* Signature.Signature
  const statements = makeDigestStatements(sql, config)
  const feed = makeFeedRead(sql, config)
  const tableName = `${config.schema}.${config.table}`

  const chooseCheckpoint = Effect.fnUntraced(function* (
    previous: LogCheckpoint.Checkpoint | undefined,
    requested: LogCheckpoint.Checkpoint | undefined
  ) {
    // Every commit at or below the fence is visible or gone for good: nothing can appear at or before it later.
    const { fence } = yield* feed.fence(0n, true)
    if (requested !== undefined) {
      if (requested.commitSequence > fence) {
        return yield* new DigestError({
          reason: `checkpoint commit ${requested.commitSequence} is not stable yet: commits after ${fence} may still be in flight`
        })
      }
      if (previous !== undefined && LogCheckpoint.compare(requested, previous) < 0) {
        return yield* new DigestError({
          reason: `checkpoint (${requested.commitSequence}, ${requested.globalPosition}) is before the previous digest's (${previous.commitSequence}, ${previous.globalPosition})`
        })
      }
      return requested
    }
    // The latest event at or below the fence.
    const found = yield* feed.lastBelow(fence)
    if (found !== undefined && (previous === undefined || LogCheckpoint.compare(found, previous) > 0)) return found
    return previous ?? LogCheckpoint.start
  })

  /**
   * The latest stored digest and the heads it signed, once both are checked: a row is built on only if this
   * signer's key signed its document, of this table, and its columns are the document's; its heads only if they
   * hash to the signed root; and no head row is filed under a later number. Anything else was planted or altered by
   * someone who could write the tables but not sign, and is a typed error naming the row, never silently used.
   */
  const readPrevious = Effect.fnUntraced(function* () {
    const row = yield* statements.readLatestDigest
    const stray = yield* statements.headsAfter(row?.id ?? 0)
    const [planted] = stray
    if (planted !== undefined) {
      return yield* new DigestError({
        digestId: planted.digestId,
        reason: `the head row of ${planted.aggregateType}/${planted.aggregateId} (version ${planted.streamVersion}) is filed under digest #${planted.digestId}, which ${row === undefined ? "no digest precedes" : `comes after the latest digest, #${row.id}`}: it was planted, and no digest is made over it`
      })
    }
    if (row === undefined) return undefined
    const refuse = (why: string) =>
      new DigestError({
        digestId: row.id,
        reason: `digest row #${row.id} ${why}: the digest tables were written by someone who cannot sign, and no digest is built on them`
      })
    const document = yield* decode(row.document).pipe(
      Effect.mapError((error) => refuse(`does not decode (${error.reason})`))
    )
    if (!(yield* verifySignature(document, key.publicKey))) return yield* refuse("is not signed by this signer's key")
    if (
      document.id !== row.id ||
      document.table !== tableName ||
      document.root !== row.root ||
      (document.previous ?? null) !== row.previousHash ||
      LogCheckpoint.compare(LogCheckpoint.fromJson(document.checkpoint), row.checkpoint) !== 0
    ) {
      return yield* refuse("has columns that differ from its signed document")
    }
    const heads = yield* statements.readHeads(row.id)
    if (rootOf(heads, document.format) !== document.root) {
      return yield* refuse("has stored heads that do not hash to its signed root (a head row was planted or altered)")
    }
    return { document, checkpoint: row.checkpoint, heads }
  })

  const createInTransaction = Effect.fnUntraced(function* (requested: LogCheckpoint.Checkpoint | undefined) {
    yield* statements.lock
    const previous = yield* readPrevious()
    const from = previous?.checkpoint ?? LogCheckpoint.start
    const checkpoint = yield* chooseCheckpoint(previous?.checkpoint, requested)
    const id = (previous?.document.id ?? 0) + 1
    // The signed heads of the previous digest, moved on by the events after its checkpoint, read from the events
    // table. In commit order a stream's versions only go up, so a signed head never moves down, even over a log
    // that was tampered with (the verifier reports that).
    const heads = new Map(
      (previous?.heads ?? []).map((head) => [streamKey(head.aggregateType, head.aggregateId), head])
    )
    const moved: Array<Head> = []
    for (const head of yield* statements.movedHeads(from, checkpoint)) {
      const stream = streamKey(head.aggregateType, head.aggregateId)
      const signed = heads.get(stream)
      if (signed !== undefined && signed.streamVersion >= head.streamVersion) continue
      if (head.hash === null) {
        return yield* new DigestError({
          reason: `the head of ${head.aggregateType}/${head.aggregateId} (version ${head.streamVersion}) has no hash: run annal verify`
        })
      }
      heads.set(stream, head)
      moved.push(head)
    }
    yield* statements.insertHeads(id, moved)
    const all = [...heads.values()]
    const unsigned: Omit<Document, "signature"> = {
      format,
      table: tableName,
      id,
      checkpoint: LogCheckpoint.toJson(checkpoint),
      streams: all.length,
      events: all.reduce((sum, head) => sum + head.streamVersion, 0),
      root: rootOf(all),
      previous: previous === undefined ? null : hash(previous.document),
      createdAt: DateTime.formatIso(yield* DateTime.now),
      publicKey: key.publicKeyId
    }
    const signature = yield* signer.sign(key.privateKey, signedBytes(unsigned)).pipe(Effect.mapError(cryptoFailure))
    const document: Document = { ...unsigned, signature: Base64Url.encode(signature) }
    yield* statements.insertDigest({
      id,
      checkpoint,
      root: unsigned.root,
      previousHash: unsigned.previous ?? null,
      document: encode(document)
    })
    return document
  })

  const create = Effect.fn("Digest.create")(
    function* (options?: { readonly checkpoint?: LogCheckpoint.Json }) {
      const requested = options?.checkpoint === undefined ? undefined : LogCheckpoint.fromJson(options.checkpoint)
      const document = yield* sql.withTransaction(createInTransaction(requested))
      yield* Effect.annotateCurrentSpan({
        digestId: document.id,
        streams: document.streams,
        events: document.events,
        commitSequence: document.checkpoint.commitSequence
      })
      return document
    },
    Effect.catchTag("SqlError", stored("Digest.create"))
  )

  // An effect in the service's shape, not a function: withSpan is the traced form of a value, and each run of it
  // is a span of its own.
  const list = statements.readDigests().pipe(
    Effect.catchTag("SqlError", stored("Digest.list")),
    Effect.flatMap((rows) => Effect.forEach(rows, (row) => decode(row.document))),
    Effect.withSpan("Digest.list")
  )

  return Digest.of({ create, list })
})

/** Builds the service for the events table the options name, over the `SqlClient` and `SigningKey` in context. */
export const make = (options?: EventTable.Options) => makeSigned(options).pipe(Effect.provide(signatureLayer))

/**
 * The latest stored digest of the events table the options name, as stored and unchecked (`Integrity.verify`
 * checks it), or none; unlike the service, it needs no signing key, so a status report can show it.
 */
export const latest = Effect.fn("Digest.latest")(function* (
  options?: EventTable.Options
): Effect.fn.Return<Document | undefined, DigestError | StorageError, SqlClient.SqlClient> {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EventTable.make(options)
  const row = yield* makeDigestStatements(sql, config).readLatestDigest.pipe(
    Effect.catchTag("SqlError", stored("Digest.latest"))
  )
  return row === undefined ? undefined : yield* decode(row.document)
})

/** The service for the events table the options name, built when the layer is. */
export const layer = (options?: EventTable.Options): Layer.Layer<Digest, never, SqlClient.SqlClient | SigningKey> =>
  Layer.effect(Digest, make(options))

/** The service, signing with the key in `ANNAL_DIGEST_SIGNING_KEY`. */
export const layerConfig = (
  options?: EventTable.Options
): Layer.Layer<Digest, DigestError | Config.ConfigError, SqlClient.SqlClient> =>
  layer(options).pipe(Layer.provide(layerSigningKeyConfig))

/**
 * Makes a digest on `schedule` (for example `Schedule.spaced("1 hour")`) for as long as the layer lives. A failed
 * attempt is logged and the schedule goes on.
 */
export const layerSchedule = (schedule: Schedule.Schedule<unknown, unknown>): Layer.Layer<never, never, Digest> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const digest = yield* Digest
      yield* Effect.forkScoped(
        digest.create().pipe(
          Effect.catchCause((cause) => Effect.logError("Digest: a scheduled digest failed", cause)),
          Effect.schedule(schedule)
        )
      )
    })
  )

const cryptoFailure = (error: { readonly message: string }) => new DigestError({ reason: error.message })

const keyId = (publicKey: Signature.PublicKey<Signature.Ed25519>): Effect.Effect<string, DigestError> =>
  Signature.toBytes(publicKey).pipe(Effect.map(Base64Url.encode), Effect.mapError(cryptoFailure))

const decodeKeyBytes = (text: string): Effect.Effect<Uint8Array, DigestError> => {
  const bytes = Base64Url.decode(text.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""))
  return Result.isSuccess(bytes)
    ? Effect.succeed(bytes.success)
    : Effect.fail(new DigestError({ reason: "a key must be PEM, or 32 bytes in base64url or base64" }))
}

const stored = (operation: string) => (error: SqlError) => Effect.fail(fromSqlError(operation, error))
