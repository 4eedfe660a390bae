/**
 * Words for what the API returns in codes: an event type as a sentence (`organization.bank_account.updated` is
 * "Bank account updated"), an instant as "3 minutes ago", a user id as a name from the directory.
 */

const words = (segment: string): string => segment.replaceAll("_", " ")

const capitalized = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

/** The event type as a human label: the entity (or its part) and what happened to it. */
export const eventLabel = (eventType: string): string => {
  const segments = eventType.split(".")
  if (segments.length < 2) return capitalized(words(eventType))
  const subject = segments.length === 2 ? segments[0]! : segments.slice(1, -1).join(" ")
  return capitalized(`${words(subject)} ${words(segments[segments.length - 1]!)}`)
}

/** What an event type does, by the payload conventions: it decides how its data is shown. */
export const eventKind = (eventType: string): "create" | "update" | "delete" | "other" => {
  const action = eventType.split(".").pop() ?? ""
  return action === "created" || action === "added"
    ? "create"
    : action === "updated"
      ? "update"
      : action === "deleted" || action === "removed"
        ? "delete"
        : "other"
}

const units: ReadonlyArray<readonly [Intl.RelativeTimeFormatUnit, number]> = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1]
]

const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" })

/** `instant` relative to `now`, such as "3 minutes ago". */
export const relative = (instant: Date, now: Date): string => {
  const seconds = Math.round((instant.getTime() - now.getTime()) / 1000)
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relativeFormat.format(Math.round(seconds / size), unit)
    }
  }
  return relativeFormat.format(0, "second")
}

/** `instant` in full, in UTC, to the millisecond: what an auditor quotes. */
export const absolute = (instant: Date): string => instant.toISOString().replace("T", " ").replace("Z", " UTC")

/** A JSON value, shown compactly; a string as itself. */
export const jsonText = (value: unknown): string =>
  value === undefined ? "—" : typeof value === "string" ? value : JSON.stringify(value)
