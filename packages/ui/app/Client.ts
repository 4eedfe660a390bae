/**
 * The UI's typed client: Effect's `HttpApiClient` over the audit API and the event stream as `@annal/http` defines
 * them, and the UI server's two reads decoded with `@annal/http`'s own schemas, so every request, response and error
 * the UI handles is typed by the server's definitions, not by a copy. Each call ends in an `Outcome`: the value, or
 * why not, in the words the views need (sign in again, not allowed, failed).
 */
import { type AggregateHistory as History, AuditGroup } from "@annal/http/AuditApi"
import { Names, Session } from "@annal/http/AuditUiApi"
import { EventStreamGroup } from "@annal/http/EventStream"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiClient from "effect/http-api/HttpApiClient"
import * as Layer from "effect/Layer"

/** The API the UI reads: the audit group and the live event stream. */
export class UiApi extends HttpApi.make("annal-ui").add(AuditGroup).add(EventStreamGroup) {}

/** A stored event, as the audit API returns it. */
export type { AuditEvent } from "@annal/http/AuditApi"

/** A page of an aggregate's history, with its verification. */
export type AggregateHistory = typeof History.Type

/** The caller, as `{path}/api/session` says. */
export type SessionInfo = typeof Session.Type

/** Why a call gave nothing. */
export type Problem =
  | { readonly kind: "unauthenticated"; readonly message: string }
  | { readonly kind: "forbidden"; readonly message: string }
  | { readonly kind: "failed"; readonly message: string }

/** What a call gave. */
export type Outcome<A> = { readonly ok: true; readonly value: A } | ({ readonly ok: false } & Problem)

/** The problem an error is, in the views' terms. */
export const problemOf = (error: unknown): Problem => {
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : ""
  const message =
    typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
      ? error.message
      : String(error)
  if (tag === "Unauthenticated") return { kind: "unauthenticated", message }
  if (tag === "Forbidden") return { kind: "forbidden", message }
  return { kind: "failed", message: message === "" ? tag : message }
}

const authorized = (token: string) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, HttpClient.mapRequest(HttpClientRequest.bearerToken(token)))
  ).pipe(Layer.provide(FetchHttpClient.layer))

/** The typed client of the API, for `token`, against the page's own origin. */
export const makeClient = (token: string) =>
  HttpApiClient.make(UiApi, { baseUrl: globalThis.location.origin }).pipe(Effect.provide(authorized(token)))

/** The API's client. */
export type Client = Effect.Success<ReturnType<typeof makeClient>>

/** The client, built at once: building it reads nothing and cannot fail. */
export const makeClientSync = (token: string): Client => Effect.runSync(makeClient(token))

/** Runs a call, ending in an `Outcome`. */
export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<Outcome<A>> =>
  Effect.runPromise(
    effect.pipe(
      Effect.map((value): Outcome<A> => ({ ok: true, value })),
      Effect.catchCause((cause) =>
        Effect.succeed<Outcome<A>>({
          ok: false,
          ...problemOf(cause.reasons.find((reason) => reason._tag === "Fail")?.error ?? cause)
        })
      )
    )
  )

/**
 * Downloads the audit export of `query` (the search's filters and `format`) as a file under the name the server
 * gives it. The export needs the bearer token, which a plain link cannot send, so the file is fetched and handed to
 * the browser as a blob: it is held in the page's memory, fine for what one searches for in a browser; the whole
 * log is exported with `annal export` or `curl`.
 */
export const download = (token: string, query: URLSearchParams) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.get(
      new URL(`/audit/export?${query.toString()}`, globalThis.location.origin).toString()
    )
    if (response.status !== 200) return yield* Effect.fail(yield* response.json)
    const disposition = response.headers["content-disposition"] ?? ""
    const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `annal-export.${query.get("format") ?? "csv"}`
    const bytes = yield* response.arrayBuffer
    yield* Effect.sync(() => {
      const url = URL.createObjectURL(new Blob([bytes], { type: response.headers["content-type"] ?? "" }))
      const link = Object.assign(globalThis.document.createElement("a"), { href: url, download: name })
      link.click()
      URL.revokeObjectURL(url)
    })
  }).pipe(Effect.provide(authorized(token)))

/** A read of the UI server's own, `api/…` next to the page, decoded with `schema`. */
const uiRead = <S extends typeof Session | typeof Names>(token: string, path: string, schema: S) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.get(new URL(path, globalThis.document.baseURI).toString())
    if (response.status === 401) return yield* Effect.fail({ _tag: "Unauthenticated", message: "Unknown token" })
    return yield* HttpClientResponse.schemaBodyJson(schema)(response)
  }).pipe(Effect.provide(authorized(token)))

/** Who `token` is. */
export const session = (token: string) => run(uiRead(token, "api/session", Session))

/** The directory's names of `userIds`. */
export const names = (token: string, userIds: ReadonlyArray<string>) =>
  run(uiRead(token, `api/names?${new URLSearchParams(userIds.map((id) => ["userId", id])).toString()}`, Names))
