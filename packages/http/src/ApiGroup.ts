/**
 * What every Annal `HttpApiGroup` is put behind: typed 400s for malformed requests (`RequestValidation`, with its
 * strict `parseOptions`), bearer-token authentication (`Authentication`) and a time bound (`RequestTimeout`), under
 * the group's path prefix. The audit, reports, export, event-stream and webhooks groups, and an application's own
 * groups, apply the chain with `guard` rather than each spelling it out, so that a group cannot drop a link or take
 * them in another order: a group without the strict parse options would silently ignore a misspelt filter, and one
 * without the validation middleware would answer a bad request with Effect's empty 400.
 *
 * @since 0.1.0
 */
import type * as HttpRouter from "effect/http/HttpRouter"
import type * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import { Authentication } from "./Authentication.ts"
import { RequestTimeout } from "./RequestTimeout.ts"
import { parseOptions, RequestValidation } from "./RequestValidation.ts"

/** A group's endpoints once `guard` has applied the chain: the three middlewares, in order, and the prefix. */
export type Guarded<
  Endpoints extends HttpApiEndpoint.Constraint,
  Prefix extends HttpRouter.PathInput
> = HttpApiEndpoint.AddPrefix<
  HttpApiEndpoint.AddMiddleware<
    HttpApiEndpoint.AddMiddleware<HttpApiEndpoint.AddMiddleware<Endpoints, RequestValidation>, Authentication>,
    RequestTimeout
  >,
  Prefix
>

/**
 * Puts the group's endpoints behind `RequestValidation`, `Authentication` and `RequestTimeout`, under `prefix`, with
 * the strict `RequestValidation.parseOptions`. Each middleware wraps the ones before it: validation sits next to the
 * handler, where the request is decoded; authentication around it, so that a request without a known token is a 401
 * before anything of it is decoded; the time bound outermost, covering the token lookup too. Apply it after the last
 * `add`, as `.pipe(ApiGroup.guard("/audit"))`: endpoints added later get none of it.
 */
export const guard =
  <const Prefix extends HttpRouter.PathInput>(prefix: Prefix) =>
  <Id extends string, Endpoints extends HttpApiEndpoint.Constraint, TopLevel extends boolean>(
    group: HttpApiGroup.HttpApiGroup<Id, Endpoints, TopLevel>
  ): HttpApiGroup.HttpApiGroup<Id, Guarded<Endpoints, Prefix>, TopLevel> =>
    group
      .middleware(RequestValidation)
      .middleware(Authentication)
      .middleware(RequestTimeout)
      .prefix(prefix)
      .annotateMerge(parseOptions)
