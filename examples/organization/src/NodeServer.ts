/**
 * Node's HTTP server for the app, answering the requests that its parser refuses before any Effect code sees them
 * (a request line and headers over Node's 16 KB limit, bytes that are not HTTP) with the API's typed JSON error, as
 * every other refusal is answered. Without this, Node writes a bare `431` or `400` with no body.
 *
 * It also answers while the app cannot: the port opens before the migrations have run (so that a port in use is
 * reported at once), and until the app's handler is attached every request gets a typed 503 `Unavailable` with
 * `Retry-After` (and `/health/live` a 200: the process is alive), where Node would leave it waiting with no
 * listener. Once `drain` is called, every response asks the client to close its connection (`Connection: close`)
 * and idle keep-alive connections are closed, so that the shutdown waits for the requests in flight and nothing
 * else.
 *
 * @since 0.1.0
 */
import { ApiError } from "@annal/http"
import * as Schema from "effect/Schema"
import * as Http from "node:http"
import type { Duplex } from "node:stream"

const encode = Schema.encodeSync(Schema.toCodecJson(ApiError.InvalidRequest))
const encodeUnavailable = Schema.encodeSync(Schema.toCodecJson(ApiError.Unavailable))

/** The headers `writeHead` takes. */
type Headers = Http.OutgoingHttpHeaders | Http.OutgoingHttpHeader[]

/** What `drain` does to each server `make` built. */
const drains = new WeakMap<Http.Server, () => void>()

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

/** A new server whose parser errors are answered with a typed body, and that answers 503 until the app serves. */
export const make = (): Http.Server => {
  let draining = false
  // Every response, whichever handler writes it (Node's `request` or `checkContinue` event), is made here, and its
  // head is written here, also when the request arrived before the drain began.
  class Response extends Http.ServerResponse {
    override writeHead(statusCode: number, messageOrHeaders?: string | Headers, headers?: Headers): this {
      if (draining && !this.headersSent) this.setHeader("connection", "close")
      // Node reads the second argument as the status message when it is a string, else as the headers; a caller
      // may also pass no message (undefined) and the headers third.
      return typeof messageOrHeaders === "string"
        ? super.writeHead(statusCode, messageOrHeaders, headers)
        : super.writeHead(statusCode, messageOrHeaders ?? headers)
    }
  }
  const server = Http.createServer({ ServerResponse: Response })
  server.on("request", (request: Http.IncomingMessage, response: Http.ServerResponse) => {
    // Another listener is the app's handler, which answers; alone, this one stands in for it.
    if (server.listenerCount("request") > 1) return
    request.resume()
    if (!draining && request.url?.split("?")[0] === "/health/live") {
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "live" }))
      return
    }
    const message = draining
      ? "The server is stopping; retry on another, or once it has restarted"
      : "The server is starting; retry in a moment"
    const body = JSON.stringify(encodeUnavailable(new ApiError.Unavailable({ message })))
    response
      .writeHead(503, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "retry-after": "1",
        "cache-control": "no-store"
      })
      .end(body)
  })
  drains.set(server, () => {
    draining = true
    server.closeIdleConnections()
  })
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

/**
 * Begins the drain of a server `make` built: from now on each response closes its connection once sent, and the
 * connections idle between requests are closed now.
 */
export const drain = (server: Http.Server): void => drains.get(server)?.()
