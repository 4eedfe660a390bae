/**
 * @annal/webhooks: the audit trail's events delivered to HTTP endpoints as Standard Webhooks, in feed order, signed,
 * retried with backoff, dead-lettered, and guarded against server-side request forgery.
 *
 * @since 0.1.0
 * @module @annal/webhooks
 */
export * as WebhookAddress from "./WebhookAddress.ts"
export * as WebhookError from "./WebhookError.ts"
export * as WebhookEvents from "./WebhookEvents.ts"
export * as Webhooks from "./Webhooks.ts"
export * as WebhookSignature from "./WebhookSignature.ts"
export * as WebhooksApi from "./WebhooksApi.ts"
export * as WebhooksHandlers from "./WebhooksHandlers.ts"
