/**
 * Node's HTTP server for the app, answering the requests that its parser refuses before any Effect code sees them
 * (a request line and headers over Node's 16 KB limit, bytes that are not HTTP) with the API's typed JSON error, as
 * every other refusal is answered. Without this, Node writes a bare `431` or `400` with no body.
 *
 * @since 0.1.0
 */
import { ApiError } from "@annal/http"
import * as Schema from "effect/Schema"
import * as Http from "node:http"
import type { Duplex } from "node:stream"

const encode = Schema.encodeSync(Schema.toCodecJson(ApiError.InvalidRequest))

/** The status and the typed body for a parser error of Node's. */
const refusal = (code: string | undefined): readonly [status: number, text: string, body: string] => {
  const [status, text, reason] =
    code === "HPE_HEADER_OVERFLOW"
      ? ([431, "Request Header Fields Too Large", "the request line and headers are too large"] as const)
      : code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? ([408, "Request Timeout", "was not received in time"] as const)
        : ([400, "Bad Request", "could not be read as HTTP"] as const)
  return [status, text, JSON.stringify(encode(ApiError.InvalidRequest.field("request", reason)))]
}

/** A new server whose parser errors are answered with a typed body. */
export const make = (): Http.Server => {
  const server = Http.createServer()
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A client that went away, or a socket that already answered, gets nothing more.
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy()
      return
    }
    const [status, text, body] = refusal(error.code)
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`
    )
  })
  return server
}
