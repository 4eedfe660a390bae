/**
 * One change, as an auditor reads it: what happened (a label from the event type), who (by name), when (relative and
 * absolute, and when it was recorded if that differs), why and from where, the correlation id as a link to its trail,
 * and the data by the payload conventions: an UPDATE's changes as a field / old → new table, a CREATE's fields, what a
 * DELETE deleted.
 */
import type { ComponentChildren } from "preact"
import type { AuditEvent } from "./Client.ts"
import { absolute, eventKind, eventLabel, jsonText, relative } from "./Labels.ts"
import { isNamed, nameOf } from "./Names.ts"
import * as Route from "./Route.ts"

/** A link to another view, handled in the page. */
export const Link = (props: {
  readonly to: Route.Route
  readonly children: ComponentChildren
  readonly class?: string
}) => (
  <a
    href={Route.format(props.to)}
    class={props.class}
    onClick={(event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return
      event.preventDefault()
      navigate(props.to)
    }}
  >
    {props.children}
  </a>
)

/** Goes to `route`, keeping the way back. */
export const navigate = (route: Route.Route) => {
  globalThis.history.pushState(null, "", Route.format(route))
  globalThis.dispatchEvent(new PopStateEvent("popstate"))
}

/** The user, by name when the directory knows them. */
export const UserName = (props: { readonly userId: string }) => (
  <Link to={{ view: "user", userId: props.userId }} class={isNamed(props.userId) ? "user" : "user unknown"}>
    {nameOf(props.userId)}
  </Link>
)

type JsonObject = { readonly [key: string]: unknown }

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A field / value table, each value as JSON text. */
export const FieldTable = (props: { readonly fields: JsonObject; readonly caption: string }) => (
  <table class="fields">
    <caption>{props.caption}</caption>
    <tbody>
      {Object.entries(props.fields).map(([field, value]) => (
        <tr key={field}>
          <th scope="row">{field}</th>
          <td>{jsonText(value)}</td>
        </tr>
      ))}
    </tbody>
  </table>
)

/** The event's data, as its kind says to show it. */
export const EventData = (props: { readonly event: AuditEvent }) => {
  const data: JsonObject = isObject(props.event.data) ? props.event.data : {}
  const kind = eventKind(props.event.eventType)
  const { changes, ...rest } = data
  if (kind === "update" && isObject(changes)) {
    return (
      <div class="data">
        {Object.keys(rest).length > 0 && <FieldTable fields={rest} caption="Of" />}
        <table class="changes">
          <caption>Changes</caption>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Old</th>
              <th scope="col" aria-hidden="true"></th>
              <th scope="col">New</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(changes).map(([field, change]) => (
              <tr key={field}>
                <th scope="row">{field}</th>
                <td class="old">{jsonText(isObject(change) ? change["old"] : change)}</td>
                <td class="arrow" aria-hidden="true">
                  →
                </td>
                <td class="new">{jsonText(isObject(change) ? change["new"] : undefined)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )
  }
  if (Object.keys(data).length === 0) return null
  return (
    <div class="data">
      <FieldTable fields={data} caption={kind === "create" ? "Fields" : kind === "delete" ? "Deleted" : "Data"} />
    </div>
  )
}

/** What an entry is marked with: a finding of the chain's check. */
export interface Mark {
  readonly detail: string
}

/** One event as a timeline entry. */
export const Entry = (props: {
  readonly event: AuditEvent
  readonly now: Date
  readonly showEntity?: boolean
  readonly selected?: boolean
  readonly mark?: Mark | undefined
  readonly onSelect?: (() => void) | undefined
}) => {
  const { event } = props
  const when = new Date(event.timestamp.epochMilliseconds)
  const recorded = new Date(event.recordedAt.epochMilliseconds)
  const kind = eventKind(event.eventType)
  const metadata = event.metadata
  return (
    <li
      class={`entry ${kind}${props.selected === true ? " selected" : ""}${props.mark === undefined ? "" : " broken"}`}
      data-version={event.streamVersion}
      data-event-id={event.eventId}
    >
      <div class="entry-head">
        <span class={`kind ${kind}`} aria-hidden="true"></span>
        <h3 class="label">
          {props.onSelect === undefined ? (
            eventLabel(event.eventType)
          ) : (
            <button type="button" class="select" aria-pressed={props.selected === true} onClick={props.onSelect}>
              {eventLabel(event.eventType)}
            </button>
          )}
        </h3>
        <span class="by">
          by <UserName userId={event.userId} />
        </span>
        <time dateTime={when.toISOString()} title={absolute(when)}>
          {relative(when, new Date(Math.max(props.now.getTime(), when.getTime())))} · {absolute(when)}
        </time>
      </div>
      {props.mark !== undefined && (
        <p class="finding" role="alert">
          Chain broken here: {props.mark.detail}
        </p>
      )}
      <dl class="meta">
        {props.showEntity === true && (
          <>
            <dt>Entity</dt>
            <dd>
              <Link to={{ view: "entity", type: event.aggregateType, id: event.aggregateId }}>
                {event.aggregateType} {event.aggregateId}
              </Link>
            </dd>
          </>
        )}
        {metadata.reason !== undefined && (
          <>
            <dt>Reason</dt>
            <dd class="reason">{metadata.reason}</dd>
          </>
        )}
        {recorded.getTime() !== when.getTime() && (
          <>
            <dt>Recorded</dt>
            <dd>{absolute(recorded)}</dd>
          </>
        )}
        {metadata.ipAddress !== undefined && (
          <>
            <dt>From</dt>
            <dd>{metadata.ipAddress}</dd>
          </>
        )}
        {metadata.userAgent !== undefined && (
          <>
            <dt>Client</dt>
            <dd class="agent">{metadata.userAgent}</dd>
          </>
        )}
        {metadata.correlationId !== undefined && (
          <>
            <dt>Correlation</dt>
            <dd>
              <Link to={{ view: "trail", correlationId: metadata.correlationId }} class="correlation">
                {metadata.correlationId}
              </Link>
            </dd>
          </>
        )}
        <dt>Version</dt>
        <dd>
          {event.eventType} v{event.version} · #{event.streamVersion}
        </dd>
      </dl>
      <EventData event={event} />
    </li>
  )
}
