/**
 * The event that records an auditor's read: who looked (the event's user), at what (the endpoint and its
 * parameters), how much came back, and from where and why (the request's metadata). Each auditor's reads form one
 * stream, `audit/<user id>`, so "what did this auditor look at" is one aggregate's history.
 *
 * @since 0.1.0
 */
import { EventDefinition, type EventEmitter, EventRegistry } from "@annal/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type InternalError, storage, type Timeout } from "./ApiError.ts"
import { isAuditor, type Principal } from "./Principal.ts"

/** `audit.read`: an auditor read events through the audit API. */
export const AuditRead = EventDefinition.make("audit.read", {
  aggregateType: "audit",
  schema: Schema.Struct({
    /** The endpoint, such as `aggregateHistory`. */
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

/**
 * Records an auditor's read with `emitter`, before its answer leaves (no record, no data); reads by anyone else are
 * not recorded.
 */
export const record = (
  emitter: EventEmitter.EventEmitter["Service"],
  principal: Principal,
  read: typeof AuditRead.schema.Type
): Effect.Effect<void, InternalError | Timeout> =>
  isAuditor(principal)
    ? emitter.emit(AuditRead.make({ aggregateId: principal.userId, data: read })).pipe(
        Effect.asVoid,
        Effect.catch((error) => storage("recording an auditor's read", error))
      )
    : Effect.void
