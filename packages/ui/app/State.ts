/**
 * An entity's state at any moment, rebuilt from its events by the original design's payload conventions: a CREATE
 * (`*.created`) holds the entity's fields, an UPDATE (`*.updated`) a `changes` object of `{ old, new }` per field,
 * a DELETE (`*.deleted`) what was deleted. A part of the entity that has its own id (`organization.gst.added` with a
 * `gstRegistrationId`) is kept in a collection named after the part, keyed by that id. The audit API has no state
 * endpoint, so the UI folds the history it has already read: what it shows is what the events say, no more.
 */

/** A JSON value. */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** The parts of an event the fold reads. */
export interface FoldedEvent {
  readonly eventType: string
  readonly streamVersion: number
  readonly data: Json
}

/** The entity's state after some of its events. */
export interface EntityState {
  /** Its fields; a part with its own id is a field holding an object of those parts by id. */
  readonly fields: { readonly [key: string]: Json }
  /** Whether a DELETE was the last word. */
  readonly deleted: boolean
  /** The stream version of the last event folded, 0 before any. */
  readonly version: number
}

/** The state before any event. */
export const empty: EntityState = { fields: {}, deleted: false, version: 0 }

const isObject = (value: Json | undefined): value is { readonly [key: string]: Json } =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The `new` value of every field of an UPDATE's `changes`. */
const newValues = (changes: Json | undefined): { readonly [key: string]: Json } => {
  if (!isObject(changes)) return {}
  const values: { [key: string]: Json } = {}
  for (const [field, change] of Object.entries(changes)) {
    if (isObject(change) && "new" in change) values[field] = change["new"] ?? null
  }
  return values
}

/** The part's id field (`gstRegistrationId`) and its value, when a part event carries one. */
const partId = (data: { readonly [key: string]: Json }): readonly [string, string] | undefined => {
  for (const [key, value] of Object.entries(data)) {
    if (key.endsWith("Id") && typeof value === "string") return [key, value]
  }
  return undefined
}

/** The state after `event`. Events of a kind it does not know change nothing but the version. */
export const apply = (state: EntityState, event: FoldedEvent): EntityState => {
  const segments = event.eventType.split(".")
  const action = segments[segments.length - 1] ?? ""
  const data = isObject(event.data) ? event.data : {}
  const version = event.streamVersion
  if (segments.length <= 2) {
    if (action === "created") return { fields: { ...data }, deleted: false, version }
    if (action === "updated") return { ...state, fields: { ...state.fields, ...newValues(data["changes"]) }, version }
    if (action === "deleted") return { ...state, deleted: true, version }
    return { ...state, version }
  }
  // A part of the entity: `organization.bank_account.added` goes into `bank_account`, by its id.
  const part = segments.slice(1, -1).join(".")
  const id = partId(data)
  if (id === undefined) return { ...state, version }
  const [idField, idValue] = id
  const existing = state.fields[part]
  const parts = isObject(existing) ? existing : {}
  const before = parts[idValue]
  const current = isObject(before) ? before : {}
  const { [idField]: _, changes, ...rest } = data
  const next: Json | undefined =
    action === "added" || action === "created"
      ? rest
      : action === "updated"
        ? { ...current, ...newValues(changes) }
        : action === "removed" || action === "deleted"
          ? undefined
          : current
  const { [idValue]: __, ...others } = parts
  return {
    ...state,
    fields: { ...state.fields, [part]: next === undefined ? others : { ...others, [idValue]: next } },
    version
  }
}

/** The state after every event up to and including stream version `version`, in stream order. */
export const at = (events: ReadonlyArray<FoldedEvent>, version: number): EntityState =>
  events
    .filter((event) => event.streamVersion <= version)
    .toSorted((a, b) => a.streamVersion - b.streamVersion)
    .reduce(apply, empty)
