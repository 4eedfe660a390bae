/**
 * Bearer-token authentication as an `HttpApiMiddleware`: a group that adds it answers 401 to a request without a
 * known token before anything else happens, and gives every handler the caller as `CurrentPrincipal`. The caller's
 * user also becomes the user of the request's `EventContext`, so every event the request emits is attributed to
 * it without handler code passing it.
 *
 * @since 0.1.0
 */
import { EventContext } from "@annal/core"
import * as Effect from "effect/Effect"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSecurity from "effect/http-api/HttpApiSecurity"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Unauthenticated } from "./ApiError.ts"
import * as ApiTokens from "./ApiTokens.ts"
import { CurrentPrincipal } from "./Principal.ts"

/** The middleware: `Authorization: Bearer <token>`, required on every endpoint of the groups that add it. */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentPrincipal }>()(
  "@annal/http/Authentication",
  {
    security: { bearer: HttpApiSecurity.bearer },
    error: Unauthenticated
  }
) {}

/** Authenticates against the `ApiTokens` in context. */
export const layer: Layer.Layer<Authentication, never, ApiTokens.ApiTokens> = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const tokens = yield* ApiTokens.ApiTokens
    return Authentication.of({
      bearer: (httpEffect, { credential }) =>
        Effect.gen(function* () {
          if (Redacted.value(credential).length === 0) {
            return yield* new Unauthenticated({
              message: "Missing bearer token: send the header Authorization: Bearer <token>"
            })
          }
          const principal = yield* tokens.authenticate(credential)
          if (Option.isNone(principal)) {
            return yield* new Unauthenticated({ message: "Unknown bearer token" })
          }
          yield* Effect.annotateCurrentSpan({ "annal.token": principal.value.name })
          return yield* httpEffect.pipe(
            Effect.provideService(CurrentPrincipal, principal.value),
            EventContext.provide({ userId: principal.value.userId })
          )
        })
    })
  })
)
