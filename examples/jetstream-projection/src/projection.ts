/**
 * The read model this example builds: per organization, its name, how many events it has had and the version of the
 * last one. A pure fold over events in the JSON the relay publishes (the audit API's), so the same function runs in
 * the remote consumer and in the tests' local consumer that it is compared with.
 */

/** An event as the relay publishes it; only the fields this projection reads. */
export interface RelayedEvent {
  readonly eventType: string
  readonly aggregateId: string
  readonly streamVersion: number
  readonly data: unknown
}

/** One organization's row. */
export interface Organization {
  readonly name: string | null
  readonly events: number
  readonly version: number
}

/** The projection: organizations by id. */
export type Projection = Readonly<Record<string, Organization>>

/** The state before any event. */
export const initial: Projection = {}

const nameIn = (data: unknown): string | null => {
  if (typeof data !== "object" || data === null) return null
  const name = (data as { readonly name?: unknown }).name
  return typeof name === "string" ? name : null
}

/** Applies one event. */
export const apply = (state: Projection, event: RelayedEvent): Projection => {
  const before = state[event.aggregateId]
  const name = event.eventType === "organization.created" ? nameIn(event.data) : (before?.name ?? null)
  return {
    ...state,
    [event.aggregateId]: { name, events: (before?.events ?? 0) + 1, version: event.streamVersion }
  }
}
