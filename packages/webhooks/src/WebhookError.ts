/**
 * The typed errors of the webhooks service.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** A subscription was refused: the field that is wrong and why (an address the guard refuses among them). */
export class InvalidSubscription extends Schema.TaggedError<InvalidSubscription>("@annal/webhooks/InvalidSubscription")(
  "InvalidSubscription",
  { field: Schema.String, reason: Schema.String }
) {
  override get message(): string {
    return `Invalid webhook subscription: ${this.field}: ${this.reason}`
  }
}

/** No subscription has this id. */
export class SubscriptionNotFound extends Schema.TaggedError<SubscriptionNotFound>(
  "@annal/webhooks/SubscriptionNotFound"
)("SubscriptionNotFound", { id: Schema.String }) {
  override get message(): string {
    return `No webhook subscription ${this.id}`
  }
}

/** The database or the audit trail failed: what was being done, and why. */
export class WebhookStorageError extends Schema.TaggedError<WebhookStorageError>("@annal/webhooks/WebhookStorageError")(
  "WebhookStorageError",
  { operation: Schema.String, reason: Schema.String }
) {
  override get message(): string {
    return `Webhooks: ${this.operation} failed: ${this.reason}`
  }
}

/** Every error of the service's methods. */
export type WebhookError = InvalidSubscription | SubscriptionNotFound | WebhookStorageError
