/**
 * The event that records an auditor's read: who looked (the event's user), at what (the endpoint and its
 * parameters), how much came back, and from where and why (the request's metadata). Each auditor's reads form one
 * stream, `audit/<user id>`, so "what did this auditor look at" is one entity history.
 *
 * @since 0.1.0
 */
import { EventDefinition, EventRegistry } from "@annal/core"
import * as Schema from "effect/Schema"

/** `audit.read`: an auditor read events through the audit API. */
export const AuditRead = EventDefinition.make("audit.read", {
  aggregateType: "audit",
  schema: Schema.Struct({
    /** The endpoint, such as `entityHistory`. */
    endpoint: Schema.String,
    /** What was asked: the path and query parameters, without the page cursor. */
    parameters: Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Array(Schema.String)])),
    /** Whether the read continued an earlier page. */
    continued: Schema.Boolean,
    /** How many events were returned, or the count that was returned. */
    returned: Schema.Int
  })
})

/** The events the audit API itself writes. */
export const events = EventRegistry.make(AuditRead)
