/**
 * Which events a read takes: one shape for the store's queries and counts, the feed, consumers and the audit
 * service. Every field is optional, and the fields given combine: an event matches when it matches all of them.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { InvalidQuery } from "./AnnalError.ts"
import * as Event from "./Event.ts"

/** Which events: all fields optional and combined. `from` is inclusive and `to` exclusive, on `timestamp`. */
export interface Filter {
  /** Any of these event types; at least one. */
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly aggregateType?: string | undefined
  readonly aggregateId?: string | undefined
  readonly userId?: string | undefined
  readonly correlationId?: string | undefined
  readonly from?: DateTime.Utc | undefined
  readonly to?: DateTime.Utc | undefined
}

/** The fields of a filter. */
export const fields: ReadonlyArray<keyof Filter> = [
  "eventTypes",
  "aggregateType",
  "aggregateId",
  "userId",
  "correlationId",
  "from",
  "to"
]

/** The filter fields of `input` that are given, and nothing else: a read's options without its other options. */
export const pick = (input: Filter): Filter => {
  const filter: { -readonly [K in keyof Filter]: Filter[K] } = {}
  for (const field of fields) {
    if (input[field] !== undefined) (filter as Record<string, unknown>)[field] = input[field]
  }
  return filter
}

/** Whether the filter leaves any event out. */
export const isFiltered = (filter: Filter): boolean => fields.some((field) => filter[field] !== undefined)

const invalid = (field: string, reason: string) => Effect.fail(new InvalidQuery({ field, reason }))

/**
 * Refuses a key of `input` that is neither a filter field nor one of `others`: a misspelt or outdated field (such
 * as `aggregateTypes`) would otherwise be dropped, and the read would silently take every event.
 */
export const refuseUnknown = (input: object, others: ReadonlyArray<string> = []): Effect.Effect<void, InvalidQuery> => {
  const unknown = Object.keys(input).find(
    (key) => !(fields as ReadonlyArray<string>).includes(key) && !others.includes(key)
  )
  return unknown === undefined
    ? Effect.void
    : invalid(unknown, `is not a filter field; the fields are ${[...fields, ...others].join(", ")}`)
}

/**
 * Checks a filter, naming the first field that no stored event could match and why: a type list that is empty or
 * holds a malformed type, an id that is not a UUID, a correlation id with `\u0000`, an instant PostgreSQL cannot
 * read, or `from` after `to`. Returns it with the ids in the lowercase they are stored in.
 */
export const validate = (filter: Filter): Effect.Effect<Filter, InvalidQuery> =>
  Effect.flatMap(refuseUnknown(filter), () => check(filter))

const check = (filter: Filter): Effect.Effect<Filter, InvalidQuery> => {
  if (filter.eventTypes !== undefined) {
    if (filter.eventTypes.length === 0) return invalid("eventTypes", "must name at least one type")
    const wrong = filter.eventTypes.find((type) => !Event.isEventType(type))
    if (wrong !== undefined) return invalid("eventTypes", `${JSON.stringify(wrong)} is not a well-formed type`)
  }
  if (filter.aggregateType !== undefined && !Event.isAggregateType(filter.aggregateType)) {
    return invalid("aggregateType", `${JSON.stringify(filter.aggregateType)} is not a well-formed type`)
  }
  for (const field of ["aggregateId", "userId"] as const) {
    const value = filter[field]
    if (value !== undefined && !Event.isUuid(value)) return invalid(field, "must be a UUID")
  }
  if (filter.correlationId !== undefined && filter.correlationId.includes("\u0000")) {
    return invalid("correlationId", "contains \\u0000, which no stored correlation id can")
  }
  for (const field of ["from", "to"] as const) {
    const value = filter[field]
    if (value !== undefined && !Event.isStorableInstant(value)) {
      return invalid(field, Event.storableInstants)
    }
  }
  if (filter.from !== undefined && filter.to !== undefined && DateTime.isGreaterThan(filter.from, filter.to)) {
    return invalid("from", "must not be after to")
  }
  return Effect.succeed({
    ...filter,
    ...(filter.aggregateId === undefined ? {} : { aggregateId: filter.aggregateId.toLowerCase() }),
    ...(filter.userId === undefined ? {} : { userId: filter.userId.toLowerCase() })
  })
}
