/**
 * The typed errors of Annal's public methods. Driver errors never leave a public method raw: they are mapped at
 * the service edge into one of these.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as SqlError from "effect/sql/SqlError"

/** The stream's version was not the one the caller expected: someone else appended first. */
export class ConcurrencyConflict extends Schema.TaggedError<ConcurrencyConflict>("@annal/core/ConcurrencyConflict")(
  "ConcurrencyConflict",
  {
    aggregateType: Schema.String,
    aggregateId: Schema.String,
    expectedVersion: Schema.Union([Schema.Literals(["any", "no_stream"]), Schema.Number]),
    /** The stream's version when the conflict was seen: read again after a race, so it includes the winner. */
    actualVersion: Schema.Number
  }
) {
  override get message(): string {
    return `Concurrency conflict on stream ${this.aggregateType}/${this.aggregateId}: expected version ${this.expectedVersion}, actual ${this.actualVersion}`
  }
}

/**
 * An append reused an event id for a different event: an id is the identity of one event, and the same event again
 * is a duplicate, but anything else under a stored id (another stream, type, version, user, payload or metadata) is
 * refused, and nothing of the append is written.
 */
export class EventIdConflict extends Schema.TaggedError<EventIdConflict>("@annal/core/EventIdConflict")(
  "EventIdConflict",
  {
    eventId: Schema.String,
    /** The stream of the event stored under the id. */
    aggregateType: Schema.String,
    aggregateId: Schema.String
  }
) {
  override get message(): string {
    return `Event id ${this.eventId} is already stored, for a different event in stream ${this.aggregateType}/${this.aggregateId}`
  }
}

/** An event was refused before anything was written: the field that is wrong and why. */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>("@annal/core/InvalidEvent")("InvalidEvent", {
  eventType: Schema.String,
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid event ${this.eventType}: ${this.field}: ${this.reason}`
  }
}

/** A stored row names an event type that the registry used to read it does not know. */
export class UnknownEventType extends Schema.TaggedError<UnknownEventType>("@annal/core/UnknownEventType")(
  "UnknownEventType",
  { eventId: Schema.String, eventType: Schema.String }
) {
  override get message(): string {
    return `Event ${this.eventId} has type ${this.eventType}, which is not registered`
  }
}

/** A stored row has a schema version that its event definition does not declare. */
export class UnknownEventVersion extends Schema.TaggedError<UnknownEventVersion>("@annal/core/UnknownEventVersion")(
  "UnknownEventVersion",
  { eventId: Schema.String, eventType: Schema.String, version: Schema.Number }
) {
  override get message(): string {
    return `Event ${this.eventId} of type ${this.eventType} has version ${this.version}, which is not registered`
  }
}

/** A stored payload does not decode with the schema its type and version name. */
export class EventDecodeError extends Schema.TaggedError<EventDecodeError>("@annal/core/EventDecodeError")(
  "EventDecodeError",
  { eventId: Schema.String, eventType: Schema.String, version: Schema.Number, reason: Schema.String }
) {
  override get message(): string {
    return `Event ${this.eventId} (${this.eventType} v${this.version}) does not decode: ${this.reason}`
  }
}

/** A pagination cursor that was not produced by Annal, or was altered. */
export class InvalidCursor extends Schema.TaggedError<InvalidCursor>("@annal/core/InvalidCursor")("InvalidCursor", {
  cursor: Schema.String
}) {
  override get message(): string {
    return "Invalid cursor"
  }
}

/** A query argument that cannot be answered, such as a time range that ends before it starts. */
export class InvalidQuery extends Schema.TaggedError<InvalidQuery>("@annal/core/InvalidQuery")("InvalidQuery", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid query: ${this.field}: ${this.reason}`
  }
}

/**
 * What an event caused is more than a read may hold: deeper than `maxDepth` levels, or more than `maxEvents` events.
 * Ask for a larger bound (up to its maximum), or read the causes level by level.
 */
export class EffectsTooLarge extends Schema.TaggedError<EffectsTooLarge>("@annal/core/EffectsTooLarge")(
  "EffectsTooLarge",
  { eventId: Schema.String, bound: Schema.Literals(["maxDepth", "maxEvents"]), limit: Schema.Int }
) {
  override get message(): string {
    return `What event ${this.eventId} caused goes beyond ${this.bound} = ${this.limit}`
  }
}

/** Two writers met on one stream (a unique violation at append): the transaction rolled back, and running it again helps. */
export class ConcurrentWrite extends Schema.TaggedError<ConcurrentWrite>("@annal/core/StorageError/ConcurrentWrite")(
  "ConcurrentWrite",
  {}
) {
  /** Always: the whole transaction, run again, reads the winner's state. */
  get isRetryable(): boolean {
    return true
  }
}

/** A row came back in a shape the table's definition does not allow: the table was changed outside Annal. */
export class UnexpectedRow extends Schema.TaggedError<UnexpectedRow>("@annal/core/StorageError/UnexpectedRow")(
  "UnexpectedRow",
  {}
) {
  /** Never: the same row comes back on every read. */
  get isRetryable(): boolean {
    return false
  }
}

/** The migrations could not run; `kind` is the `Migrator`'s own. */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>("@annal/core/StorageError/MigrationFailed")(
  "MigrationFailed",
  { kind: Schema.String }
) {
  /** Never: a missing or misnamed migration stays so. */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Why storage failed: the driver's own reason (`SqlError`'s typed union, kept as the driver classified it) or one of
 * Annal's. Each says whether a retry may succeed.
 */
export const StorageErrorReason = Schema.Union([
  ...SqlError.SqlErrorReason.members,
  ConcurrentWrite,
  UnexpectedRow,
  MigrationFailed
])

/** Why storage failed. */
export type StorageErrorReason = SqlError.SqlErrorReason | ConcurrentWrite | UnexpectedRow | MigrationFailed

/**
 * The database failed in a way the caller cannot fix by changing its input. `reason` is typed, so callers match on
 * its `_tag` (`StatementTimeoutError`, `ConnectionError`, `ConcurrentWrite`, ...), never on a string.
 */
export class StorageError extends Schema.TaggedError<StorageError>("@annal/core/StorageError")("StorageError", {
  operation: Schema.String,
  reason: StorageErrorReason,
  detail: Schema.String
}) {
  /** Whether running the operation again may succeed, as its reason says. */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  override get message(): string {
    return `${this.operation} failed (${this.reason._tag}): ${this.detail}`
  }
}

/** Any error that reading events can produce. */
export type ReadError = UnknownEventType | UnknownEventVersion | EventDecodeError | StorageError
