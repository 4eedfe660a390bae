/**
 * A correlation trail as a tree: every event of one correlation id in order, an event whose `causationId` names
 * another event of the trail nested under it, and any other event (no cause, or a cause outside the trail) at the
 * top. An event cannot be its own cause, and a cycle of causes (which only a forged history holds) puts its events
 * at the top instead of hiding them.
 */

/** The parts of an event the trail reads. */
export interface TrailEvent {
  readonly eventId: string
  readonly metadata: { readonly causationId?: string | undefined }
}

/** An event of the trail and the events it caused. */
export interface Node<E extends TrailEvent> {
  readonly event: E
  readonly caused: ReadonlyArray<Node<E>>
}

/** The trail's events as a tree, each level in the order given. */
export const nest = <E extends TrailEvent>(events: ReadonlyArray<E>): ReadonlyArray<Node<E>> => {
  const byId = new Map(events.map((event) => [event.eventId, event]))
  /** Whether following the causes up from `event` reaches an event of the trail with no cause in it. */
  const rooted = (event: E): boolean => {
    const seen = new Set<string>()
    let current: E | undefined = event
    while (current !== undefined) {
      if (seen.has(current.eventId)) return false
      seen.add(current.eventId)
      const cause: string | undefined = current.metadata.causationId
      current = cause === undefined ? undefined : byId.get(cause)
    }
    return true
  }
  const children = new Map<string, Array<E>>()
  const roots: Array<E> = []
  for (const event of events) {
    const cause = event.metadata.causationId
    if (cause !== undefined && cause !== event.eventId && byId.has(cause) && rooted(event)) {
      children.set(cause, [...(children.get(cause) ?? []), event])
    } else roots.push(event)
  }
  const node = (event: E): Node<E> => ({ event, caused: (children.get(event.eventId) ?? []).map(node) })
  return roots.map(node)
}
