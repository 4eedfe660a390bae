/**
 * What `annal verify` does once its database is chosen: reads the digest and the key to trust, runs the verifier
 * with a progress line on standard error, prints the report, and fails (exit code 1) when anything is wrong.
 */
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import { Digest, Integrity } from "@annal/core"
import { count, makeProgress, thousands } from "./format.ts"

/** The verification found something wrong; the report has been printed. */
export class VerificationFailed extends Schema.TaggedError<VerificationFailed>("@annal/core/VerificationFailed")(
  "VerificationFailed",
  { problems: Schema.Number }
) {
  /** The report said it all: the runtime only sets the exit code, and keeps a JSON report on stdout parseable. */
  override readonly [Runtime.errorReported] = false

  override get message(): string {
    return `Verification failed: ${this.problems} problem${this.problems === 1 ? "" : "s"} found`
  }
}

/** The flags of `annal verify` that the verification itself reads. */
export interface VerifyFlags {
  readonly digest: Option.Option<string>
  readonly publicKey: Option.Option<string>
  readonly aggregate: Option.Option<string>
  readonly json: boolean
}

/** Runs `annal verify` against the `Integrity` service in context. */
export const verifyCommand = Effect.fnUntraced(function* (flags: VerifyFlags, tableName: string) {
  const integrity = yield* Integrity.Integrity
  if (Option.isSome(flags.aggregate)) {
    const [aggregateType, aggregateId, ...rest] = flags.aggregate.value.split("/")
    if (aggregateType === undefined || aggregateId === undefined || rest.length > 0) {
      return yield* new Digest.DigestError({ reason: "--aggregate takes <aggregate type>/<aggregate id>" })
    }
    const report = yield* integrity.verifyAggregate(aggregateType, aggregateId)
    if (flags.json) {
      yield* Console.log(JSON.stringify(report, null, 2))
    } else {
      yield* Console.log(`Verified ${aggregateType}/${report.aggregateId}: ${count(report.events, "event")}.`)
      if (report.digest !== undefined) {
        const { id, signedVersion } = report.digest
        yield* Console.log(
          signedVersion === undefined
            ? `Digest #${id}, the latest stored, signed no head of this stream.`
            : `Digest #${id}, the latest stored, signed its head at version ${signedVersion}.`
        )
      }
      yield* Console.log(
        report.finding === undefined
          ? `OK: every link of its chain holds${report.digest?.signedVersion === undefined ? "" : ", and it holds the signed head"}.`
          : `FOUND ${describe(report.finding)}`
      )
    }
    if (!report.verified) return yield* new VerificationFailed({ problems: 1 })
    return
  }

  const digest = Option.isSome(flags.digest) ? yield* readDigest(flags.digest.value, flags.publicKey) : undefined

  const display = yield* makeProgress()
  const onProgress = (progress: Integrity.Progress) => {
    const percent = progress.total === 0 ? 100 : Math.min(100, Math.floor((progress.events * 100) / progress.total))
    return display.update(
      `Verifying ${tableName}: ${thousands(progress.events)} of ${thousands(progress.total)} events (${percent}%), ${count(progress.streams, "stream")}`,
      percent
    )
  }
  const report = yield* integrity.verify({ ...(digest === undefined ? {} : { digest }), onProgress })
  yield* display.end

  if (flags.json) {
    yield* Console.log(JSON.stringify(report, null, 2))
  } else {
    yield* Console.log(`Verified ${tableName}: ${count(report.events, "event")} in ${count(report.streams, "stream")}.`)
    if (report.digest !== undefined) {
      const { id, checkpoint, verified } = report.digest
      yield* Console.log(
        `Digest #${id}, checkpoint (commit ${checkpoint.commitSequence}, position ${checkpoint.globalPosition}): ${verified ? "the stream heads are the signed ones." : "NOT verified."}`
      )
      for (const problem of report.digest.problems)
        yield* Console.log(`FOUND digest ${problem.kind}: ${problem.detail}`)
    }
    for (const finding of report.findings) yield* Console.log(`FOUND ${describe(finding)}`)
    if (report.ok) {
      yield* Console.log(
        report.digest === undefined
          ? "OK: every link of every chain holds (give --digest to also catch rewrites and truncation)."
          : "OK: every link of every chain holds, and the log matches the digest."
      )
    }
  }
  if (!report.ok) {
    return yield* new VerificationFailed({
      problems: report.findings.length + (report.digest?.problems.length ?? 0)
    })
  }
})

/** The digest document to check, and the key to trust for it: the flag's, or else the environment's. */
const readDigest = Effect.fnUntraced(function* (text: string, publicKey: Option.Option<string>) {
  const document = yield* Digest.decode(text)
  const keyText = Option.isSome(publicKey)
    ? publicKey.value
    : yield* Config.String("ANNAL_DIGEST_PUBLIC_KEY").pipe(
        Effect.mapError(
          () =>
            new Digest.DigestError({
              reason: "a digest is checked against a key you trust: give --public-key or ANNAL_DIGEST_PUBLIC_KEY"
            })
        )
      )
  return { document, publicKey: yield* Digest.parsePublicKey(keyText) }
})

const describe = (finding: Integrity.Finding): string =>
  `${finding.aggregateType}/${finding.aggregateId} version ${finding.streamVersion}: ${finding.kind}: ${finding.detail}`
