/**
 * The audited events of webhook subscriptions: creating, changing and deleting one is recorded in the audit trail
 * like any business change, by the user of the current `EventContext`. Each subscription is a stream
 * (`webhook_subscription/<id>`). Secrets never appear in them: only their ids.
 *
 * @since 0.1.0
 */
import { EventDefinition, EventRegistry } from "@annal/core"
import * as Schema from "effect/Schema"

/** A subscription as its events record it. */
export const SubscriptionRecord = Schema.Struct({
  url: Schema.String,
  filter: Schema.Json,
  state: Schema.String,
  onDeadLetter: Schema.String,
  maxAttempts: Schema.Int,
  secretIds: Schema.Array(Schema.String)
})

/** `webhook_subscription.created`. */
export const SubscriptionCreated = EventDefinition.make("webhook_subscription.created", {
  aggregateType: "webhook_subscription",
  schema: SubscriptionRecord
})

/** `webhook_subscription.updated`: the subscription after the change, and what the change was. */
export const SubscriptionUpdated = EventDefinition.make("webhook_subscription.updated", {
  aggregateType: "webhook_subscription",
  schema: Schema.Struct({ change: Schema.String, subscription: SubscriptionRecord })
})

/** `webhook_subscription.deleted`. */
export const SubscriptionDeleted = EventDefinition.make("webhook_subscription.deleted", {
  aggregateType: "webhook_subscription",
  schema: Schema.Struct({ url: Schema.String })
})

/** The events of webhook subscriptions, for an application's registry. */
export const events = EventRegistry.make(SubscriptionCreated, SubscriptionUpdated, SubscriptionDeleted)
