/**
 * An entity's state rebuilt from the original design's payload conventions (docs/design.md), for an application that
 * registered no projection of its own: `entity.created` carries the entity's fields, `entity.updated` carries
 * `changes: { field: { old, new } }`, `entity.deleted` marks it deleted. The fold reads the JSON of each event's
 * current version, so a stored v1 payload is folded as its upcast reads it.
 *
 * Only the entity's own events follow the conventions: a type of two segments, `{aggregate}.{action}`. Events of
 * what belongs to it (`organization.gst.added`) and payloads that do not fit are counted as ignored, never guessed
 * at: a rebuilt state that is silently wrong is worse, in an audit, than one that says what it left out.
 *
 * @since 0.1.0
 */
import type * as Schema from "effect/Schema"
import * as Projection from "./Projection.ts"

/** Whether the entity had been created, and was deleted, as of the last event folded. */
export type Status = "absent" | "exists" | "deleted"

/** The rebuilt state: the entity's fields, its status, and which events made it. */
export interface EntityState {
  readonly status: Status
  /** The fields as of the last event folded; after a DELETE, the fields the entity had when it was deleted. */
  readonly fields: { readonly [field: string]: Schema.Json }
  /** The stream version of the last event folded (ignored or not); 0 before any. */
  readonly streamVersion: number
  /** How many events were folded. */
  readonly events: number
  /** How many of them did not follow the conventions and changed nothing. */
  readonly ignored: number
}

/** What the fold reads of an event: its type, the JSON of its current version, and its place in the stream. */
export interface FoldedEvent {
  readonly eventType: string
  readonly data: unknown
  readonly streamVersion: number
}

/** Which convention an event follows: CREATE, UPDATE, DELETE, or none. */
export type Kind = "create" | "update" | "delete" | "other"

/** The state before any event. */
export const initial: EntityState = { status: "absent", fields: {}, streamVersion: 0, events: 0, ignored: 0 }

const isRecord = (value: unknown): value is { readonly [key: string]: unknown } =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The action of an entity's own event (`organization.updated` → `updated`); undefined for any other type. */
const actionOf = (eventType: string): string | undefined => {
  const segments = eventType.split(".")
  return segments.length === 2 ? segments[1] : undefined
}

/**
 * An UPDATE's changes, when `data` is one: an object of `{ old, new }` objects. A change without `new` removed the
 * field: `Payload.diff` of a field that is gone gives `new: undefined`, which JSON leaves out.
 */
const changesOf = (data: unknown): ReadonlyArray<readonly [string, Schema.Json | undefined]> | undefined => {
  if (!isRecord(data) || !isRecord(data["changes"])) return undefined
  const changes: Array<readonly [string, Schema.Json | undefined]> = []
  for (const [field, change] of Object.entries(data["changes"])) {
    if (!isRecord(change) || !(Object.hasOwn(change, "new") || Object.hasOwn(change, "old"))) return undefined
    changes.push([field, Object.hasOwn(change, "new") ? (change["new"] as Schema.Json) : undefined])
  }
  return changes
}

/** Which convention `event` follows. */
export const kindOf = (event: FoldedEvent): Kind => {
  switch (actionOf(event.eventType)) {
    case "created":
      return isRecord(event.data) ? "create" : "other"
    case "updated":
      return changesOf(event.data) === undefined ? "other" : "update"
    case "deleted":
      return "delete"
    default:
      return "other"
  }
}

/** Folds one event into the state. */
export const apply = (state: EntityState, event: FoldedEvent): EntityState => {
  const folded = { streamVersion: event.streamVersion, events: state.events + 1 }
  switch (kindOf(event)) {
    case "create":
      // A CREATE carries the whole entity: it starts over, also after a DELETE (the entity was created again).
      return { ...state, ...folded, status: "exists", fields: { ...(event.data as Record<string, Schema.Json>) } }
    case "update": {
      const fields: Record<string, Schema.Json> = { ...state.fields }
      for (const [field, value] of changesOf(event.data) ?? []) {
        // Defined, not assigned: a field named `__proto__` is data here, never the object's prototype.
        if (value === undefined) delete fields[field]
        else Object.defineProperty(fields, field, { value, enumerable: true, writable: true, configurable: true })
      }
      return { ...state, ...folded, fields }
    }
    case "delete":
      return { ...state, ...folded, status: "deleted" }
    case "other":
      return { ...state, ...folded, ignored: state.ignored + 1 }
  }
}

/** The conventions as a projection, for `AuditService.getEntityStateAsOf` or `Projection.fold`. */
export const projection: Projection.Projection<EntityState, FoldedEvent> = Projection.make({ initial, apply })
