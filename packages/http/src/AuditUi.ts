/**
 * The audit timeline in the browser (`@annal/ui`), served by the application under a path of its choosing:
 * `AuditUi.layer({ path: "/ui" })` on the router that serves the audit API. The UI reads only the audit API and the
 * live stream, with the bearer token its user pastes, so it sees exactly what that token may see; the layer adds two
 * small reads of its own, both behind the same tokens:
 *
 * - `GET {path}/api/session`: who the token is (user id, name, role), so the UI can greet and sign in.
 * - `GET {path}/api/names?userId=…`: the names of the users it shows, from the application's `UserDirectory`; an id
 *   the directory does not know is left out, and the UI shows it as itself.
 *
 * The files are served with a Content Security Policy that allows only the UI's own origin (`'self'`), no inline
 * script or style, and no framing; hashed assets are cached for a year, `index.html` never.
 *
 * @since 0.1.0
 */
import { assetsDirectory } from "@annal/ui"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpStaticServer from "effect/http/HttpStaticServer"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Unauthenticated } from "./ApiError.ts"
import { type DirectoryEntry, maxNamesPerRequest, Names, Session } from "./AuditUiApi.ts"
import * as ApiTokens from "./ApiTokens.ts"

/**
 * Who users are, by name: the application's own directory (its users table, its identity provider). The UI shows
 * these names instead of user ids; an id it does not know shows as itself.
 */
export class UserDirectory extends Context.Service<
  UserDirectory,
  {
    /** The names of those of `userIds` the directory knows. */
    readonly names: (userIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<DirectoryEntry>>
  }
>()("@annal/http/AuditUi/UserDirectory") {}

/** A directory of a fixed list of users, such as a demo's. */
export const layerDirectory = (entries: ReadonlyArray<DirectoryEntry>): Layer.Layer<UserDirectory> => {
  const byId = new Map(entries.map((entry) => [entry.userId.toLowerCase(), entry]))
  return Layer.succeed(
    UserDirectory,
    UserDirectory.of({
      names: (userIds) =>
        Effect.succeed(userIds.flatMap((id) => Option.toArray(Option.fromNullishOr(byId.get(id.toLowerCase())))))
    })
  )
}

/** A directory that knows nobody: every user shows as their id. */
export const layerNoDirectory: Layer.Layer<UserDirectory> = layerDirectory([])

/** How to serve the UI. */
export interface Options {
  /** Where, such as `/ui`: a path of one or more segments, without a trailing slash. */
  readonly path: `/${string}`
  /** The folder of the built UI; `@annal/ui`'s by default. */
  readonly root?: string | undefined
  /**
   * Whether `GET /` sends a browser (a request that accepts HTML) to the UI. Other clients get the router's 404 there
   * as before, so an API client that probes `/` sees JSON, not a page.
   */
  readonly home?: boolean | undefined
}

/**
 * Only the UI's own origin, for everything; no inline code, no plugins, no framing, no form posted elsewhere.
 * `img-src data:` is for the icons the stylesheet draws inline.
 */
export const contentSecurityPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const encodeUnauthenticated = Schema.encodeSync(Schema.toCodecJson(Unauthenticated))

const unauthenticated = (message: string) =>
  HttpServerResponse.jsonUnsafe(encodeUnauthenticated(new Unauthenticated({ message })), { status: 401 })

/** The principal of the request's bearer token, or the 401 to answer. */
const principalOf = Effect.fnUntraced(function* (tokens: ApiTokens.ApiTokens["Service"]) {
  const request = yield* HttpServerRequest.HttpServerRequest
  const header = request.headers["authorization"] ?? ""
  const match = /^Bearer (.+)$/i.exec(header)
  if (match === null) return Option.none()
  return yield* tokens.authenticate(Redacted.make(match[1]!.trim()))
})

const secured = (response: HttpServerResponse.HttpServerResponse, immutable: boolean) =>
  HttpServerResponse.setHeaders(response, {
    "content-security-policy": contentSecurityPolicy,
    "referrer-policy": "no-referrer",
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache"
  })

/**
 * The UI under `options.path`, and its two reads, on the router in context. It needs the application's
 * `ApiTokens` (the same tokens as the API) and `UserDirectory`, and the platform's file system.
 */
export const layer = (options: Options) =>
  HttpRouter.use(
    Effect.fnUntraced(function* (router) {
      const tokens = yield* ApiTokens.ApiTokens
      const directory = yield* UserDirectory
      const files = yield* HttpStaticServer.make({ root: options.root ?? assetsDirectory, index: "index.html" })
      const path: `/${string}` = `/${options.path.replace(/^\/+|\/+$/g, "")}`

      if (options.home === true && path !== "/") {
        yield* router.add(
          "GET",
          "/",
          Effect.gen(function* () {
            const request = yield* HttpServerRequest.HttpServerRequest
            if (!(request.headers["accept"] ?? "").includes("text/html")) {
              return yield* new HttpServerError.RouteNotFound({ request })
            }
            return HttpServerResponse.redirect(`${path}/`, { status: 302 })
          })
        )
      }
      yield* router.add(
        "GET",
        `${path}/api/session`,
        Effect.gen(function* () {
          const principal = yield* principalOf(tokens)
          if (Option.isNone(principal)) return unauthenticated("Missing or unknown bearer token")
          const [named] = yield* directory.names([principal.value.userId])
          return HttpServerResponse.jsonUnsafe(
            Schema.encodeSync(Session)({
              userId: principal.value.userId,
              name: named?.name ?? principal.value.name,
              role: principal.value.role
            })
          )
        })
      )
      yield* router.add(
        "GET",
        `${path}/api/names`,
        Effect.gen(function* () {
          const principal = yield* principalOf(tokens)
          if (Option.isNone(principal)) return unauthenticated("Missing or unknown bearer token")
          const request = yield* HttpServerRequest.HttpServerRequest
          const ids = new URL(request.url, "http://ui").searchParams.getAll("userId").slice(0, maxNamesPerRequest)
          const names = yield* directory.names(ids)
          return HttpServerResponse.jsonUnsafe(Schema.encodeSync(Names)({ names }))
        })
      )
      yield* router.prefixed(path).add(
        "GET",
        "/*",
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const response = yield* files
          return secured(response, request.url.includes("/assets/") && response.status === 200)
        })
      )
    })
  )
