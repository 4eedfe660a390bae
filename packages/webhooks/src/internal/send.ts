/**
 * One HTTP delivery attempt over `node:http`/`node:https`, with the guard on the address the socket connects to:
 * the hostname is resolved by the guarded lookup (every address of the answer checked), an address written in the URL
 * is checked before connecting, and the socket's remote address is checked again once connected. Redirects are
 * never followed (a 3xx is a failed attempt), the whole attempt has a deadline, and at most `maxResponseBytes` of the
 * response are read.
 */
import * as Effect from "effect/Effect"
import { lookup as dnsLookup } from "node:dns"
import * as http from "node:http"
import * as https from "node:https"
import { isIP, type LookupFunction } from "node:net"
import type * as WebhookAddress from "../WebhookAddress.ts"

/** A resolver: every address of a hostname. */
export type Resolve = (
  hostname: string
) => Promise<ReadonlyArray<{ readonly address: string; readonly family: number }>>

/** The system resolver. */
export const systemResolve: Resolve = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses)))
  )

/** What an attempt came to. */
export type Outcome =
  | {
      readonly _tag: "Response"
      readonly status: number
      readonly retryAfter: string | undefined
      readonly body: string
    }
  | { readonly _tag: "Refused"; readonly reason: string }
  | { readonly _tag: "Failed"; readonly reason: string }
  | { readonly _tag: "TimedOut" }

export interface Request {
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly guard: WebhookAddress.Guard
  readonly resolve: Resolve
  readonly timeoutMillis: number
  readonly maxResponseBytes: number
}

class Refusal extends Error {}

/** Sends one POST; never fails: every way it can go wrong is an `Outcome`. */
export const send = (request: Request): Effect.Effect<Outcome> =>
  Effect.callback<Outcome>((resume) => {
    const { url, guard } = request
    const host = url.hostname.replace(/^\[|\]$/g, "")
    let done = false
    const finish = (outcome: Outcome) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(Effect.succeed(outcome))
    }
    if (isIP(host) !== 0) {
      const refusal = guard.refusal(host)
      if (refusal !== undefined) {
        finish({ _tag: "Refused", reason: refusal })
        return
      }
    }
    const lookup: LookupFunction = (hostname, options, callback) => {
      request.resolve(hostname).then(
        (answers) => {
          const refused = answers.map((answer) => guard.refusal(answer.address)).find((reason) => reason !== undefined)
          if (answers.length === 0) return callback(new Error(`${hostname} has no address`), "", 4)
          // One refused address refuses the name: a resolver that mixes public and private answers could otherwise
          // be used to reach the private one on a retry.
          if (refused !== undefined) return callback(new Refusal(`${hostname} resolves to ${refused}`), "", 4)
          if (options.all === true) {
            return (callback as unknown as (e: null, a: ReadonlyArray<{ address: string; family: number }>) => void)(
              null,
              answers
            )
          }
          callback(null, answers[0]!.address, answers[0]!.family)
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), "", 4)
      )
    }
    const client = url.protocol === "https:" ? https : http
    const outgoing = client.request(url, {
      method: "POST",
      headers: { ...request.headers, "content-length": String(Buffer.byteLength(request.body)) },
      lookup,
      agent: false
    })
    const timer = setTimeout(() => {
      finish({ _tag: "TimedOut" })
      outgoing.destroy()
    }, request.timeoutMillis)
    outgoing.on("socket", (socket) => {
      socket.on("connect", () => {
        const remote = socket.remoteAddress
        const refusal = remote === undefined ? "no remote address" : guard.refusal(remote)
        if (refusal !== undefined) {
          finish({ _tag: "Refused", reason: refusal })
          outgoing.destroy()
        }
      })
    })
    outgoing.on("error", (error) =>
      finish(
        error instanceof Refusal || (error as { cause?: unknown }).cause instanceof Refusal
          ? { _tag: "Refused", reason: error.message }
          : { _tag: "Failed", reason: error.message }
      )
    )
    outgoing.on("response", (response) => {
      const chunks: Array<Buffer> = []
      let size = 0
      const complete = () =>
        finish({
          _tag: "Response",
          status: response.statusCode ?? 0,
          retryAfter: typeof response.headers["retry-after"] === "string" ? response.headers["retry-after"] : undefined,
          body: Buffer.concat(chunks).toString("utf8")
        })
      response.on("data", (chunk: Buffer) => {
        const room = request.maxResponseBytes - size
        if (room > 0) chunks.push(chunk.subarray(0, room))
        size += chunk.length
        // Enough is read: the rest is not waited for, so an endless body cannot hold the delivery.
        if (size >= request.maxResponseBytes) {
          complete()
          response.destroy()
        }
      })
      response.on("end", complete)
      response.on("error", complete)
    })
    outgoing.end(request.body)
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
      outgoing.destroy()
    })
  })
