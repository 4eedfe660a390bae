/**
 * Every view's state in the page's URL, as query parameters under the UI's own path (`/ui/?view=entity&…`), so a
 * link can be shared and a reload restores the same view. The token is never part of it.
 */

/** The search filters, as the audit API's `GET /audit/events` takes them. */
export interface SearchFilters {
  readonly eventType?: string
  readonly aggregateType?: string
  readonly aggregateId?: string
  readonly userId?: string
  readonly correlationId?: string
  readonly from?: string
  readonly to?: string
}

/** A view, and what it shows. */
export type Route =
  | { readonly view: "home" }
  | { readonly view: "entity"; readonly type: string; readonly id: string; readonly at?: number }
  | { readonly view: "user"; readonly userId: string }
  | { readonly view: "live" }
  | { readonly view: "search"; readonly filters: SearchFilters }
  | { readonly view: "trail"; readonly correlationId: string }

/** The names of the search filters, in the order the form shows them. */
export const filterNames = [
  "eventType",
  "aggregateType",
  "aggregateId",
  "userId",
  "correlationId",
  "from",
  "to"
] as const satisfies ReadonlyArray<keyof SearchFilters>

/** The route that `search` (a URL's query) names. */
export const parse = (search: string): Route => {
  const query = new URLSearchParams(search)
  const get = (name: string): string | undefined => {
    const value = query.get(name)?.trim()
    return value === undefined || value === "" ? undefined : value
  }
  switch (get("view")) {
    case "entity": {
      const type = get("type")
      const id = get("id")
      const at = Number(get("at"))
      if (type === undefined || id === undefined) return { view: "search", filters: {} }
      return Number.isInteger(at) && at > 0 ? { view: "entity", type, id, at } : { view: "entity", type, id }
    }
    case "user": {
      const userId = get("userId")
      return userId === undefined ? { view: "home" } : { view: "user", userId }
    }
    case "live":
      return { view: "live" }
    case "trail": {
      const correlationId = get("correlationId")
      return correlationId === undefined ? { view: "search", filters: {} } : { view: "trail", correlationId }
    }
    case "search": {
      const filters: { -readonly [K in keyof SearchFilters]: string } = {}
      for (const name of filterNames) {
        const value = get(name)
        if (value !== undefined) filters[name] = value
      }
      return { view: "search", filters }
    }
    default:
      return { view: "home" }
  }
}

/** The query of the URL of `route`, with its leading `?`. */
export const format = (route: Route): string => {
  const query = new URLSearchParams({ view: route.view })
  switch (route.view) {
    case "entity":
      query.set("type", route.type)
      query.set("id", route.id)
      if (route.at !== undefined) query.set("at", String(route.at))
      break
    case "user":
      query.set("userId", route.userId)
      break
    case "trail":
      query.set("correlationId", route.correlationId)
      break
    case "search":
      for (const name of filterNames) {
        const value = route.filters[name]
        if (value !== undefined && value !== "") query.set(name, value)
      }
      break
    case "home":
      return "?"
    case "live":
      break
  }
  return `?${query.toString()}`
}
