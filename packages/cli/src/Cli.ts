/**
 * The `annal` command line: `annal migrate` applies the events table's migrations to the database the flags or
 * the environment name (`DATABASE_URL` for PostgreSQL, else PGlite under `ANNAL_DATA_DIR`); `annal verify` checks
 * the hash chains and a signed digest; `annal digest` makes and prints a signed digest; `annal status`, `annal tail`
 * and `annal consumers` show the feed, follow it, and move its consumers; `annal export` writes the events that
 * match the audit API's filters as CSV or NDJSON; `annal catalog` describes a registry's events; `annal webhooks`
 * manages webhook subscriptions, their dead letters, replays and delivery log. Each command but
 * the first three is a module of its own in `internal/`.
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { Digest, Integrity, Migrations } from "@annal/core"
import * as Database from "./Database.ts"
import { catalog } from "./internal/catalogCli.ts"
import { verifyCommand } from "./internal/integrityCli.ts"
import { status } from "./internal/statusCli.ts"
import { tail } from "./internal/tailCli.ts"
import { consumers } from "./internal/consumersCli.ts"
import { exportEvents } from "./internal/exportCli.ts"
import { webhooks } from "./internal/webhooksCli.ts"
import * as Flags from "./internal/flags.ts"

/** The database the flags name, falling back to the environment. */
export const resolveDatabase = Flags.resolveDatabase

/** `annal migrate`: applies pending migrations and lists them. */
export const migrate = Command.make(
  "migrate",
  Flags.database,
  Effect.fn("annal.migrate")(function* (flags) {
    const database = yield* resolveDatabase(flags)
    yield* Console.log(`Migrating ${flags.schema}.${flags.table} on ${Database.describe(database)}`)
    const applied = yield* Migrations.run({ schema: flags.schema, table: flags.table }).pipe(
      Effect.provide(Database.layer(database))
    )
    if (applied.length === 0) yield* Console.log("Nothing to apply: the events table is up to date.")
    for (const [id, name] of applied) yield* Console.log(`Applied ${id}_${name}`)
  })
).pipe(Command.withDescription("Create or upgrade the events table (idempotent, safe to run concurrently)"))

/** `annal verify`: checks every hash chain, or one aggregate's, and a signed digest; fails when anything is wrong. */
export const verify = Command.make(
  "verify",
  {
    ...Flags.database,
    digest: Flag.FileText("digest").pipe(
      Flag.withDescription("A digest document (JSON) kept outside the database, to check the log against"),
      Flag.optional
    ),
    publicKey: Flag.String("public-key").pipe(
      Flag.withDescription(
        "The Ed25519 public key to trust for the digest (base64url; for PEM, use --public-key-file); defaults to ANNAL_DIGEST_PUBLIC_KEY"
      ),
      Flag.optional
    ),
    // A PEM key passed as `--public-key "$(cat key.pem)"` starts with dashes and is parsed as a flag: a file is safe.
    publicKeyFile: Flag.FileText("public-key-file").pipe(
      Flag.withDescription("A file holding the Ed25519 public key to trust for the digest (PEM or base64url)"),
      Flag.optional
    ),
    aggregate: Flag.String("aggregate").pipe(
      Flag.withDescription("Verify one aggregate's history only: <aggregate type>/<aggregate id>"),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the report as JSON"), Flag.withDefault(false))
  },
  Effect.fn("annal.verify")(function* (flags) {
    const database = yield* resolveDatabase(flags)
    if (Option.isSome(flags.publicKey) && Option.isSome(flags.publicKeyFile)) {
      return yield* new Digest.DigestError({ reason: "give --public-key or --public-key-file, not both" })
    }
    const publicKey = Option.orElse(flags.publicKey, () => Option.map(flags.publicKeyFile, (text) => text.trim()))
    yield* verifyCommand({ ...flags, publicKey }, `${flags.schema}.${flags.table}`).pipe(
      Effect.provide(
        Integrity.layer({ schema: flags.schema, table: flags.table }).pipe(Layer.provide(Database.layer(database)))
      )
    )
  })
).pipe(
  Command.withDescription("Check the hash chains of the events table, and a signed digest (exit code 1 on any finding)")
)

/** `annal digest`: makes, signs and stores a digest, and prints its document. */
export const digest = Command.make(
  "digest",
  {
    ...Flags.database,
    signingKey: Flag.FileText("signing-key-file").pipe(
      Flag.withDescription("The Ed25519 private key (PKCS#8 PEM); defaults to ANNAL_DIGEST_SIGNING_KEY"),
      Flag.optional
    )
  },
  Effect.fn("annal.digest")(function* (flags) {
    const database = yield* resolveDatabase(flags)
    const signingKey = Option.match(flags.signingKey, {
      onNone: () => Digest.layerSigningKeyConfig,
      onSome: (text) => Digest.layerSigningKey(Redacted.make(text))
    })
    const document = yield* Digest.Digest.use((service) => service.create()).pipe(
      Effect.provide(
        Digest.layer({ schema: flags.schema, table: flags.table }).pipe(
          Layer.provide(Layer.mergeAll(signingKey, Database.layer(database)))
        )
      )
    )
    yield* Console.log(Digest.encode(document).trimEnd())
  })
).pipe(Command.withDescription("Make, sign and store a digest of the events table, and print it to keep elsewhere"))

/** `annal export`: the events that match the filters, as CSV or NDJSON, to stdout or a file. */
export { exportEvents }

/** The root command. */
export const annal = Command.make("annal").pipe(
  Command.withDescription("Annal: an immutable, queryable audit trail in PostgreSQL"),
  Command.withSubcommands([migrate, verify, digest, status, tail, consumers, exportEvents, catalog, webhooks])
)

/** Runs the command line with the given arguments. */
export const run = Command.run(annal, { version: "0.1.0" })
