/** Requests over a raw socket, for tests that control the exact bytes a client sends and how much of them. */
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as TestApp from "./TestApp.ts"

export interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/**
 * Sends `head` and then `body` (written as the server accepts it) on a new connection, and resolves with the first
 * complete response; the connection is then destroyed, whatever is left unsent.
 */
export const raw = (port: number, head: string | Uint8Array, body: Iterable<string> = []) =>
  Effect.callback<RawResponse, Error>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    let received = ""
    const done = (result: Effect.Effect<RawResponse, Error>) => {
      socket.destroy()
      resume(result)
    }
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1")
      const end = received.indexOf("\r\n\r\n")
      if (end < 0) return
      const [statusLine, ...lines] = received.slice(0, end).split("\r\n")
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()])
      )
      const length = Number(headers["content-length"] ?? 0)
      const text = received.slice(end + 4)
      if (Buffer.byteLength(text, "latin1") < length) return
      done(Effect.succeed({ status: Number(statusLine!.split(" ")[1]), headers, body: text.slice(0, length) }))
    })
    socket.on("error", (error) => done(Effect.fail(error)))
    socket.on("connect", () => {
      socket.write(head)
      const chunks = body[Symbol.iterator]()
      // Writes while the socket takes them; a server that stopped reading leaves the rest unsent.
      const pump = (): void => {
        for (let next = chunks.next(); !next.done; next = chunks.next()) {
          if (!socket.write(next.value)) {
            socket.once("drain", pump)
            return
          }
        }
      }
      pump()
    })
    return Effect.sync(() => socket.destroy())
  })

/** The port of the server under test. */
export const port = Effect.map(TestApp.baseUrl, (base) => Number(new URL(base).port))
