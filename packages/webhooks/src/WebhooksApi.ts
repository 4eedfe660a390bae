/**
 * The webhooks admin API, a group of its own (`webhooks`, under `/webhooks`) that an application adds to its
 * `HttpApi` beside the audit groups: subscriptions created, listed, read, changed (URL, filter, secrets for a
 * rotation, state) and deleted; dead letters listed and redelivered; a replay from a point in time; and the delivery
 * log, a page at a time. It lives in `@annal/webhooks`, not `@annal/http`, so that the HTTP package does not depend on
 * webhooks; it takes `@annal/http`'s authentication, validation and errors.
 *
 * Secrets are write-only: the creation and `POST …/secrets` answer with the new secret once; every other answer shows
 * a subscription's secrets by id.
 *
 * @since 0.1.0
 */
import { ApiError, ApiGroup, AuditApi } from "@annal/http"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import * as Webhooks from "./Webhooks.ts"

/** A subscription's state. */
export const State = Schema.Literals(["active", "paused", "disabled"])

/** What a dead letter does to its subscription. */
export const OnDeadLetter = Schema.Literals(["pause", "disable"])

/** Which events a subscription receives: the audit API's filter. */
export const Filter = Schema.Struct({
  eventTypes: Schema.optional(Schema.Array(AuditApi.EventType)),
  aggregateType: Schema.optional(AuditApi.AggregateType),
  aggregateId: Schema.optional(AuditApi.Uuid),
  userId: Schema.optional(AuditApi.Uuid)
}).annotate({ identifier: "WebhookFilter" })

/** A subscription as the API shows it: its secrets by id only. */
export const Subscription = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  filter: Filter,
  state: State,
  onDeadLetter: OnDeadLetter,
  maxAttempts: Schema.Int,
  secrets: Schema.Array(Schema.Struct({ id: Schema.String, createdAt: Schema.DateTimeUtc })),
  replayFrom: Schema.NullOr(Schema.DateTimeUtc),
  revision: Schema.Int,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}).annotate({ identifier: "WebhookSubscription" })

const Url = Schema.String.check(Schema.isBetweenLength(1, 2000))
const Secret = Schema.String.check(Schema.isMaxLength(200))
const MaxAttempts = Schema.Int.check(
  Schema.isBetween({ minimum: 1, maximum: 100 }, { message: "must be an integer from 1 to 100" })
)

/** What both creating and changing a subscription may set. */
const settings = {
  filter: Schema.optional(Filter),
  onDeadLetter: Schema.optional(OnDeadLetter),
  maxAttempts: Schema.optional(MaxAttempts)
}

/** What creating a subscription takes. */
export const CreateSubscription = Schema.Struct({
  url: Url,
  secret: Schema.optional(Secret),
  ...settings
}).annotate({ identifier: "CreateWebhookSubscription" })

/** What a change takes; what it leaves out stays. */
export const UpdateSubscription = Schema.Struct({
  url: Schema.optional(Url),
  state: Schema.optional(State),
  ...settings
}).annotate({ identifier: "UpdateWebhookSubscription" })

/** One delivery attempt. */
export const Attempt = Schema.Struct({
  id: Schema.String,
  eventId: Schema.String,
  attempt: Schema.Int,
  outcome: Schema.Literals(["delivered", "retry", "failed", "refused"]),
  status: Schema.NullOr(Schema.Int),
  latencyMs: Schema.Number,
  error: Schema.NullOr(Schema.String),
  at: Schema.DateTimeUtc
}).annotate({ identifier: "WebhookAttempt" })

/** An event that could not be delivered. */
export const DeadLetter = Schema.Struct({
  eventId: Schema.String,
  reason: Schema.String,
  attempts: Schema.Int,
  deadAt: Schema.DateTimeUtc,
  redeliveredAt: Schema.NullOr(Schema.DateTimeUtc)
}).annotate({ identifier: "WebhookDeadLetter" })

/** What every endpoint may answer besides its success: a caller without the role, a failure, an unknown id. */
const errors = [ApiError.Forbidden, ApiError.InternalError, ApiError.NotFound]

/** The path parameter of every endpoint under `/subscriptions/:id`. */
const subscriptionId = { id: AuditApi.Uuid }

/** What every endpoint on one subscription shares: its id in the path, and the errors. */
const onSubscription = { params: subscriptionId, error: errors }

/** The admin endpoints, authenticated and validated as the audit groups are; only the handlers' roles may call them. */
export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("create", "/subscriptions", {
      payload: CreateSubscription,
      success: Schema.Struct({ subscription: Subscription, secret: Schema.String }).pipe(HttpApiSchema.status(201)),
      error: errors
    }).annotateMerge(
      OpenApi.annotations({ description: "Creates an active subscription; the answer holds its secret, once." })
    ),
    HttpApiEndpoint.get("list", "/subscriptions", {
      success: Schema.Struct({ subscriptions: Schema.Array(Subscription) }),
      error: errors
    }),
    HttpApiEndpoint.get("get", "/subscriptions/:id", { ...onSubscription, success: Subscription }),
    HttpApiEndpoint.patch("update", "/subscriptions/:id", {
      ...onSubscription,
      payload: UpdateSubscription,
      success: Subscription
    }).annotateMerge(
      OpenApi.annotations({ description: "Changes the URL, filter, dead-letter rule, attempts or state." })
    ),
    HttpApiEndpoint.delete("remove", "/subscriptions/:id", {
      ...onSubscription,
      success: HttpApiSchema.NoContent
    }),
    HttpApiEndpoint.post("addSecret", "/subscriptions/:id/secrets", {
      ...onSubscription,
      payload: Schema.Struct({ secret: Schema.optional(Secret) }),
      success: Schema.Struct({ subscription: Subscription, secretId: Schema.String, secret: Schema.String })
    }).annotateMerge(
      OpenApi.annotations({
        description: "Adds a secret (a rotation begins: both sign); the answer holds the new secret, once."
      })
    ),
    HttpApiEndpoint.delete("removeSecret", "/subscriptions/:id/secrets/:secretId", {
      params: { ...subscriptionId, secretId: AuditApi.Uuid },
      success: Subscription,
      error: errors
    }),
    HttpApiEndpoint.get("deadLetters", "/subscriptions/:id/dead-letters", {
      ...onSubscription,
      success: Schema.Struct({ deadLetters: Schema.Array(DeadLetter) })
    }),
    HttpApiEndpoint.post("redeliver", "/subscriptions/:id/dead-letters/redeliver", {
      ...onSubscription,
      success: Schema.Struct({ delivered: Schema.Array(Schema.String) })
    }),
    HttpApiEndpoint.post("replay", "/subscriptions/:id/replay", {
      ...onSubscription,
      payload: Schema.Struct({ from: AuditApi.Instant }),
      success: Subscription
    }).annotateMerge(
      OpenApi.annotations({ description: "Delivers again every event recorded at or after `from`, in feed order." })
    ),
    HttpApiEndpoint.get("attempts", "/subscriptions/:id/attempts", {
      ...onSubscription,
      query: {
        limit: Schema.optional(AuditApi.PageSize),
        cursor: Schema.optional(
          Schema.String.check(Schema.makeFilter(Webhooks.isAttemptId, { message: "is not a cursor" }))
        )
      },
      success: Schema.Struct({ attempts: Schema.Array(Attempt), nextCursor: Schema.NullOr(Schema.String) })
    }).annotateMerge(
      OpenApi.annotations({ description: "The delivery log, newest first, a page at a time (`nextCursor`)." })
    )
  )
  .pipe(ApiGroup.guard("/webhooks"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Webhooks",
      description: "Webhook subscriptions, their dead letters, replays and delivery log; for administrators only."
    })
  ) {}

/** The admin endpoints on their own, to type their handlers or build a client. */
export class WebhooksApi extends HttpApi.make("annal-webhooks")
  .add(WebhooksGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal webhooks", version: "0.1.0" })) {}
