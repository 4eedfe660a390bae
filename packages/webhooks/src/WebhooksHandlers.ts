/**
 * The handlers of `WebhooksGroup`: `layer(Api, { roles })`, over the `Webhooks` service. Only a caller whose token's
 * role is one of `roles` (default `admin`) may use them: a subscription sends the audit trail out of the system, so
 * creating one is as sensitive as reading everything. The service's errors become the API's: an invalid field a 400
 * that names it, an unknown subscription a 404, a failure of the database a 500 that carries only a correlation id.
 *
 * @since 0.1.0
 */
import { ApiError, Principal } from "@annal/http"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { WebhookError } from "./WebhookError.ts"
import * as Webhooks from "./Webhooks.ts"
import type { WebhooksApi } from "./WebhooksApi.ts"

/** What the handlers take. */
export interface Options {
  /** The roles that may administer webhooks (default `["admin"]`). */
  readonly roles?: ReadonlyArray<string> | undefined
}

/** The service's error as the API's. */
const fromWebhookError = (
  error: WebhookError
): Effect.Effect<never, ApiError.InvalidRequest | ApiError.NotFound | ApiError.InternalError | ApiError.Timeout> => {
  switch (error._tag) {
    case "InvalidSubscription":
      return Effect.fail(ApiError.InvalidRequest.field(error.field, error.reason))
    case "SubscriptionNotFound":
      return Effect.fail(new ApiError.NotFound({ message: `No webhook subscription ${error.id}` }))
    case "WebhookStorageError":
      return ApiError.storage(error.operation, error)
  }
}

const toJson = (subscription: Webhooks.Subscription) => ({
  ...subscription,
  filter: subscription.filter as never,
  replayFrom: Option.getOrNull(subscription.replayFrom)
})

const build = (api: typeof WebhooksApi, options: Options) =>
  HttpApiBuilder.group(api, "webhooks", (handlers) =>
    Effect.gen(function* () {
      const webhooks = yield* Webhooks.Webhooks
      const roles = options.roles ?? ["admin"]
      /** Runs `effect` for an administrator; anyone else is refused before anything is read. */
      const admin = <A>(effect: Effect.Effect<A, WebhookError>) =>
        Effect.gen(function* () {
          const principal = yield* Principal.CurrentPrincipal
          if (!roles.includes(principal.role)) {
            return yield* new ApiError.Forbidden({ message: "Only an administrator may manage webhooks" })
          }
          return yield* Effect.catch(effect, fromWebhookError)
        })
      return handlers
        .handle("create", ({ payload }) =>
          admin(
            Effect.map(webhooks.create(payload), ({ subscription, secret }) => ({
              subscription: toJson(subscription),
              secret
            }))
          )
        )
        .handle("list", () =>
          admin(Effect.map(webhooks.list, (subscriptions) => ({ subscriptions: subscriptions.map(toJson) })))
        )
        .handle("get", ({ params }) => admin(Effect.map(webhooks.get(params.id), toJson)))
        .handle("update", ({ params, payload }) => {
          const { state, ...change } = payload
          return admin(
            Effect.gen(function* () {
              const changed = Object.keys(change).length === 0 ? undefined : yield* webhooks.update(params.id, change)
              if (state !== undefined) return toJson(yield* webhooks.setState(params.id, state))
              return toJson(changed ?? (yield* webhooks.get(params.id)))
            })
          )
        })
        .handle("remove", ({ params }) => admin(webhooks.remove(params.id)))
        .handle("addSecret", ({ params, payload }) =>
          admin(
            Effect.map(webhooks.addSecret(params.id, payload.secret), (added) => ({
              ...added,
              subscription: toJson(added.subscription)
            }))
          )
        )
        .handle("removeSecret", ({ params }) =>
          admin(Effect.map(webhooks.removeSecret(params.id, params.secretId), toJson))
        )
        .handle("deadLetters", ({ params }) =>
          admin(
            Effect.map(webhooks.deadLetters(params.id), (letters) => ({
              deadLetters: letters.map((letter) => ({
                eventId: letter.eventId,
                reason: letter.reason,
                attempts: letter.attempts,
                deadAt: letter.deadAt,
                redeliveredAt: Option.getOrNull(letter.redeliveredAt)
              }))
            }))
          )
        )
        .handle("redeliver", ({ params }) =>
          admin(Effect.map(webhooks.redeliver(params.id), (delivered) => ({ delivered })))
        )
        .handle("replay", ({ params, payload }) =>
          admin(Effect.map(webhooks.replay(params.id, DateTime.toUtc(payload.from)), toJson))
        )
        .handle("attempts", ({ params, query }) => {
          const limit = query.limit ?? 50
          return admin(
            // One more than the page: whether there is a next page is known without a count.
            Effect.map(webhooks.attempts(params.id, limit + 1, query.cursor), (rows) => {
              const page = rows.slice(0, limit)
              return {
                attempts: page.map((attempt) => ({
                  id: attempt.id,
                  eventId: attempt.eventId,
                  attempt: attempt.attempt,
                  outcome: attempt.outcome,
                  status: Option.getOrNull(attempt.status),
                  latencyMs: Duration.toMillis(attempt.latency),
                  error: Option.getOrNull(attempt.error),
                  at: attempt.at
                })),
                nextCursor: rows.length > limit ? page.at(-1)!.id : null
              }
            })
          )
        })
    })
  )

type Built = ReturnType<typeof build>

/** Nothing extra when the API's groups include the webhooks group; an impossible type otherwise. */
type HasWebhooksGroup<Groups extends HttpApiGroup.Constraint> =
  "webhooks" extends HttpApiGroup.Identifier<Groups>
    ? unknown
    : { readonly "the API must include WebhooksGroup": never }

/** The handlers of `WebhooksGroup` in the application's `api`, which must include it. */
export const layer: <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups> & HasWebhooksGroup<Groups>,
  options?: Options
) => Layer.Layer<HttpApiGroup.Service<Id, "webhooks">, Layer.Error<Built>, Layer.Services<Built>> =
  // As `AuditHandlers.layer`: the handlers are checked against `WebhooksApi`, whose group any API holding
  // `WebhooksGroup` shares, endpoint for endpoint.
  ((api: typeof WebhooksApi, options: Options = {}) => build(api, options)) as unknown as <
    Id extends string,
    Groups extends HttpApiGroup.Constraint
  >(
    api: HttpApi.HttpApi<Id, Groups> & HasWebhooksGroup<Groups>,
    options?: Options
  ) => Layer.Layer<HttpApiGroup.Service<Id, "webhooks">, Layer.Error<Built>, Layer.Services<Built>>
