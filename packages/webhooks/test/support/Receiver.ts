/**
 * Webhook receivers that the tests start on 127.0.0.1: each records what it was sent and answers as its behaviour
 * says (verify with a secret, fail at random, hold requests until released, answer 410…). Closed with the scope.
 */
import * as Effect from "effect/Effect"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

/** One request as it arrived. */
export interface Received {
  readonly id: string
  readonly timestamp: string
  readonly signature: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** What a receiver answers: a status, and headers. */
export interface Answer {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>>
}

/** A running receiver. */
export interface Receiver {
  readonly url: string
  /** Every request, in the order they arrived. */
  readonly received: ReadonlyArray<Received>
  /** The requests answered 2xx, in the order they were answered. */
  readonly accepted: ReadonlyArray<Received>
}

const headersOf = (request: IncomingMessage): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const [key, value] of Object.entries(request.headers)) if (typeof value === "string") headers[key] = value
  return headers
}

/** Starts a receiver whose answer to each request is `answer`'s (which may wait). */
export const start = (answer: (request: Received) => Promise<Answer> | Answer) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly receiver: Receiver; readonly close: () => void }>((resume) => {
      const received: Array<Received> = []
      const accepted: Array<Received> = []
      const server = createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const headers = headersOf(request)
          const entry: Received = {
            id: headers["webhook-id"] ?? "",
            timestamp: headers["webhook-timestamp"] ?? "",
            signature: headers["webhook-signature"] ?? "",
            headers,
            body: Buffer.concat(chunks).toString("utf8")
          }
          received.push(entry)
          Promise.resolve(answer(entry)).then(
            (result) => {
              if (result.status >= 200 && result.status < 300) accepted.push(entry)
              response.writeHead(result.status, result.headers ?? {})
              response.end()
            },
            () => {
              response.writeHead(500)
              response.end()
            }
          )
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(
          Effect.succeed({
            receiver: { url: `http://127.0.0.1:${port}/hook`, received, accepted },
            close: () => {
              server.closeAllConnections()
              server.close()
            }
          })
        )
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ receiver }) => receiver))

/** The distinct ids in the order they were first accepted. */
export const firstAccepted = (receiver: Receiver): ReadonlyArray<string> => [
  ...new Set(receiver.accepted.map((entry) => entry.id))
]
