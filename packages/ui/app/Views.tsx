/**
 * The views: an entity's timeline with its verification and its state at any moment, a user's activity, the live
 * changes, the search, and a correlation trail. Each reads the API with the signed-in token and shows what the API
 * gives: a 403 is said plainly, with no data, and the UI adds no rules of its own.
 */
import type { ComponentChildren } from "preact"
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { AggregateType, eventsQuery, Uuid } from "@annal/http/AuditApi"
import { StreamMessage } from "@annal/http/EventStream"
import * as Effect from "effect/Effect"
import * as Sse from "effect/encoding/Sse"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Client from "./Client.ts"
import { Entry, FieldTable, Link, navigate, UserName } from "./Entry.tsx"
import { eventLabel } from "./Labels.ts"
import { useNames } from "./Names.ts"
import { usePaged, type Paged } from "./Paged.ts"
import * as Route from "./Route.ts"
import * as State from "./State.ts"
import * as Trail from "./Trail.ts"

/** What every view is given. */
export interface ViewProps {
  readonly token: string
  readonly client: Client.Client
  readonly session: Client.SessionInfo
  readonly onProblem: (problem: Client.Problem) => void
}

const pageSize = 200

/** An entity's address, checked by the API's own schemas. */
const EntityParams = Schema.Struct({ aggregateType: AggregateType, aggregateId: Uuid })

/** The search's filters, checked by the API's own schemas. */
const SearchQuery = Schema.Struct({
  eventType: eventsQuery.eventType,
  aggregateType: eventsQuery.aggregateType,
  aggregateId: eventsQuery.aggregateId,
  userId: eventsQuery.userId,
  correlationId: eventsQuery.correlationId,
  from: eventsQuery.from,
  to: eventsQuery.to
})

const decodeMessage = Schema.decodeUnknownEffect(StreamMessage)

/** The live stream's filter, checked by the API's own schemas. */
const StreamQuery = Schema.Struct({ userId: eventsQuery.userId })

/** Says a problem plainly; a 403 as what this user may not see. */
export const ProblemNotice = (props: { readonly problem: Client.Problem }) =>
  props.problem.kind === "forbidden" ? (
    <div class="notice forbidden" role="alert">
      <h2>Not yours to see</h2>
      <p>Your account may not see this. The server says: “{props.problem.message}”</p>
    </div>
  ) : (
    <div class="notice failed" role="alert">
      <h2>Could not read this</h2>
      <p>{props.problem.message}</p>
    </div>
  )

/** The list's end: reads the next page when it scrolls into sight, or on the button. */
const More = (props: { readonly paged: Paged<unknown, unknown> }) => {
  const sentinel = useRef<HTMLDivElement>(null)
  const { more } = props.paged
  useEffect(() => {
    const element = sentinel.current
    if (element === null || props.paged.done) return
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) more()
    })
    observer.observe(element)
    return () => observer.disconnect()
  }, [more, props.paged.done])
  return (
    <div class="more" ref={sentinel}>
      {props.paged.done ? (
        <p class="end">
          {props.paged.items.length === 0 ? "No events." : `All ${props.paged.items.length} events shown.`}
        </p>
      ) : (
        <button type="button" onClick={more} disabled={props.paged.loading}>
          {props.paged.loading ? "Loading…" : `Load more (${props.paged.items.length} shown)`}
        </button>
      )}
    </div>
  )
}

/** Tells the shell of a 401 or 403, once per problem. */
const useProblem = (paged: Paged<unknown, unknown>, onProblem: ViewProps["onProblem"]) => {
  useEffect(() => {
    if (paged.problem !== undefined) onProblem(paged.problem)
  }, [paged.problem])
}

const useNow = () => {
  const [now, setNow] = useState(() => new Date())
  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), 30_000)
    return () => clearInterval(timer)
  }, [])
  return now
}

const Heading = (props: { readonly title: ComponentChildren; readonly children?: ComponentChildren }) => (
  <header class="view-head">
    <h1>{props.title}</h1>
    {props.children}
  </header>
)

type Verification = NonNullable<Client.AggregateHistory["verification"]>

/**
 * What the server's check against the latest stored digest adds to a chain that holds: the digest its head matched,
 * or why there was none to match. An auditor reads "holds" and "matches the digest" as two different proofs: the
 * first says no event was changed, the second that none was cut off the end.
 */
const digestNote = (digest: Verification["digest"]): string =>
  digest === null
    ? "; no digest is stored to check its head against"
    : digest.signedVersion === null
      ? `; digest #${digest.id} was made before its first event`
      : `, and its head matches digest #${digest.id} (signed at #${digest.signedVersion})`

/** The entity's verification: its chain and its head against the latest digest, and the first bad event when it breaks. */
const Badge = (props: { readonly verification: Client.AggregateHistory["verification"] | undefined }) => {
  const v = props.verification
  if (v === undefined) return null
  if (v === null) return <p class="badge unknown">Not verified: this server checks no chains</p>
  if (v.verified) {
    return (
      <p class="badge verified" role="status">
        <strong>Verified</strong> — the hash chain of all {v.events} events holds{digestNote(v.digest)}
      </p>
    )
  }
  return (
    <p class="badge broken" role="alert">
      <strong>Tampered</strong> — the chain breaks at event #{v.finding?.streamVersion ?? "?"}
      {v.finding === null ? "" : ` (${v.finding.kind}): ${v.finding.detail}`}
    </p>
  )
}

/** The state as of a version, rebuilt from the events read so far. */
const StatePanel = (props: {
  readonly events: ReadonlyArray<Client.AuditEvent>
  readonly at: number
  readonly onAt: (version: number) => void
}) => {
  const last = props.events.length === 0 ? 0 : Math.max(...props.events.map((e) => e.streamVersion))
  const at = Math.min(props.at, last)
  const state = useMemo(() => State.at(props.events as ReadonlyArray<State.FoldedEvent>, at), [props.events, at])
  const event = props.events.find((e) => e.streamVersion === at)
  return (
    <aside class="state" aria-labelledby="state-title">
      <h2 id="state-title">State as of #{at}</h2>
      <label class="slider">
        <span>Move through time</span>
        <input
          type="range"
          min={1}
          max={Math.max(last, 1)}
          value={at}
          onInput={(e) => props.onAt(Number((e.target as HTMLInputElement).value))}
        />
      </label>
      {event !== undefined && (
        <p class="state-when">
          after {eventLabel(event.eventType)}, {new Date(event.timestamp.epochMilliseconds).toISOString()}
        </p>
      )}
      {state.deleted && <p class="deleted-note">Deleted</p>}
      <FieldTable fields={state.fields} caption="Fields" />
    </aside>
  )
}

/** An entity's timeline, oldest first, with its verification on top and its state at the chosen moment. */
export const EntityView = (props: ViewProps & { readonly route: Extract<Route.Route, { view: "entity" }> }) => {
  const { type, id } = props.route
  const paged = usePaged<Client.AuditEvent, Client.AggregateHistory["verification"]>(`${type}/${id}`, (cursor) =>
    Client.run(
      Schema.decodeUnknownEffect(EntityParams)({ aggregateType: type, aggregateId: id })
        .pipe(
          Effect.flatMap((params) =>
            props.client.audit.aggregateHistory({
              params,
              // The badge speaks for the whole chain, so the first page asks for the whole stream's verification
              // (`verify=full`); later pages are verified from their cursors' anchors, at the cost of a page.
              query: cursor === undefined ? { limit: pageSize, verify: "full" } : { limit: pageSize, cursor }
            })
          )
        )
        .pipe(Effect.map((h) => ({ items: h.events, nextCursor: h.nextCursor, extra: h.verification })))
    )
  )
  useProblem(paged, props.onProblem)
  useNames(props.token, [...new Set(paged.items.map((e) => e.userId))])
  const now = useNow()
  const finding = paged.extra?.finding ?? null
  const selected = props.route.at ?? (paged.items.length === 0 ? 0 : paged.items[paged.items.length - 1]!.streamVersion)
  const select = (version: number) => {
    globalThis.history.replaceState(null, "", Route.format({ view: "entity", type, id, at: version }))
    globalThis.dispatchEvent(new PopStateEvent("popstate"))
  }
  return (
    <section class="view entity">
      <Heading
        title={
          <>
            {type.charAt(0).toUpperCase() + type.slice(1).replaceAll("_", " ")} <code>{id}</code>
          </>
        }
      >
        <Badge verification={paged.extra} />
      </Heading>
      {paged.problem !== undefined ? (
        <ProblemNotice problem={paged.problem} />
      ) : (
        <div class="split">
          <div>
            <ol class="timeline" aria-label="Changes, oldest first">
              {paged.items.map((event) => (
                <Entry
                  key={event.eventId}
                  event={event}
                  now={now}
                  selected={event.streamVersion === selected}
                  onSelect={() => select(event.streamVersion)}
                  mark={
                    finding !== null &&
                    (finding.eventId === event.eventId || finding.streamVersion === event.streamVersion)
                      ? { detail: finding.detail }
                      : undefined
                  }
                />
              ))}
            </ol>
            <More paged={paged} />
          </div>
          {paged.items.length > 0 && <StatePanel events={paged.items} at={selected} onAt={select} />}
        </div>
      )}
    </section>
  )
}

/** A list of events across entities, with a heading. */
const EventListView = (
  props: ViewProps & {
    readonly title: ComponentChildren
    readonly paged: Paged<Client.AuditEvent, never>
    readonly className: string
  }
) => {
  useProblem(props.paged, props.onProblem)
  useNames(props.token, [...new Set(props.paged.items.map((e) => e.userId))])
  const now = useNow()
  return (
    <section class={`view ${props.className}`}>
      <Heading title={props.title} />
      {props.paged.problem !== undefined ? (
        <ProblemNotice problem={props.paged.problem} />
      ) : (
        <>
          <ol class="timeline">
            {props.paged.items.map((event) => (
              <Entry key={event.eventId} event={event} now={now} showEntity />
            ))}
          </ol>
          <More paged={props.paged} />
        </>
      )}
    </section>
  )
}

/** What a user did, newest first. */
export const UserView = (props: ViewProps & { readonly userId: string }) => {
  const paged = usePaged<Client.AuditEvent>(props.userId, (cursor) =>
    Client.run(
      Schema.decodeUnknownEffect(Uuid)(props.userId)
        .pipe(
          Effect.flatMap((userId) =>
            props.client.audit.userActivity({
              params: { userId },
              query: cursor === undefined ? { limit: pageSize } : { limit: pageSize, cursor }
            })
          )
        )
        .pipe(Effect.map((page) => ({ items: page.events, nextCursor: page.nextCursor })))
    )
  )
  useNames(props.token, [props.userId])
  return (
    <EventListView
      {...props}
      className="user"
      paged={paged}
      title={
        <>
          Activity of <UserName userId={props.userId} />
        </>
      }
    />
  )
}

/** Every event of a correlation id, across entities, in order; an event caused by another is nested under it. */
export const TrailView = (props: ViewProps & { readonly correlationId: string }) => {
  const auditor = props.session.role === "auditor"
  const paged = usePaged<Client.AuditEvent>(props.correlationId, (cursor) =>
    Client.run(
      Effect.gen(function* () {
        // Only auditors list anyone's events by correlation id; anyone else lists their own.
        const userId = auditor ? undefined : yield* Schema.decodeUnknownEffect(Uuid)(props.session.userId)
        return yield* props.client.audit.events({
          query: {
            correlationId: props.correlationId,
            ...(userId === undefined ? {} : { userId }),
            order: "asc",
            limit: pageSize,
            ...(cursor === undefined ? {} : { cursor })
          }
        })
      }).pipe(Effect.map((page) => ({ items: page.events, nextCursor: page.nextCursor })))
    )
  )
  useProblem(paged, props.onProblem)
  useNames(props.token, [...new Set(paged.items.map((e) => e.userId))])
  const now = useNow()
  const tree = (nodes: ReadonlyArray<Trail.Node<Client.AuditEvent>>): ComponentChildren =>
    nodes.map(({ event, caused }) => (
      <>
        <Entry key={event.eventId} event={event} now={now} showEntity />
        {caused.length > 0 && (
          <li class="caused" key={`${event.eventId}-caused`}>
            <ol class="timeline nested" aria-label="Caused by the event above">
              {tree(caused)}
            </ol>
          </li>
        )}
      </>
    ))
  return (
    <section class="view trail">
      <Heading
        title={
          <>
            Correlation <code>{props.correlationId}</code>
          </>
        }
      />
      {!auditor && <p class="hint">Your own events of this correlation; auditors see everyone's.</p>}
      {paged.problem !== undefined ? (
        <ProblemNotice problem={paged.problem} />
      ) : (
        <>
          <ol class="timeline">{tree(Trail.nest(paged.items))}</ol>
          <More paged={paged} />
        </>
      )}
    </section>
  )
}

const filterLabels: Record<(typeof Route.filterNames)[number], string> = {
  eventType: "Event types (comma-separated)",
  aggregateType: "Entity type",
  aggregateId: "Entity id",
  userId: "User id",
  correlationId: "Correlation id",
  from: "From (ISO 8601, inclusive)",
  to: "To (ISO 8601, exclusive)"
}

/** Puts the form's filters in the URL, which the view reads them from. */
const submitSearch = (event: Event) => {
  event.preventDefault()
  const form = new FormData(event.currentTarget as HTMLFormElement)
  const next: { -readonly [K in keyof Route.SearchFilters]: string } = {}
  for (const name of Route.filterNames) {
    const value = String(form.get(name) ?? "").trim()
    if (value !== "") next[name] = value
  }
  navigate({ view: "search", filters: next })
}

/** Downloads the search's events, as `GET /audit/export` answers the same filters; a refusal is shown as any. */
const exportAs = (props: ViewProps, filters: Route.SearchFilters, format: "csv" | "ndjson") => {
  const query = new URLSearchParams()
  for (const name of Route.filterNames) {
    const value = filters[name]
    if (value === undefined) continue
    if (name === "eventType") {
      for (const type of value.split(",")) if (type.trim() !== "") query.append(name, type.trim())
    } else query.set(name, value)
  }
  query.set("format", format)
  return Client.run(Client.download(props.token, query)).then((outcome) => {
    if (!outcome.ok) props.onProblem(outcome)
  })
}

/** The search: every filter of `GET /audit/events`, in the URL. */
export const SearchView = (props: ViewProps & { readonly filters: Route.SearchFilters }) => {
  const { filters } = props
  const key = Route.format({ view: "search", filters })
  const anything = Route.filterNames.some((name) => filters[name] !== undefined)
  const paged = usePaged<Client.AuditEvent>(key, (cursor) => {
    if (!anything) return Promise.resolve({ ok: true, value: { items: [], nextCursor: null } })
    const eventType = filters.eventType
      ?.split(",")
      .map((t) => t.trim())
      .filter((t) => t !== "")
    return Client.run(
      Effect.gen(function* () {
        // The server's own schemas check the filters, so a typo is named as the API would name it.
        const query = yield* Schema.decodeUnknownEffect(SearchQuery)({
          ...filters,
          ...(eventType === undefined || eventType.length === 0 ? {} : { eventType })
        })
        return yield* props.client.audit.events({
          query: { ...query, order: "desc", limit: pageSize, ...(cursor === undefined ? {} : { cursor }) }
        })
      }).pipe(Effect.map((page) => ({ items: page.events, nextCursor: page.nextCursor })))
    )
  })
  return (
    <>
      <form class="search" onSubmit={submitSearch} key={key} aria-label="Search events">
        {Route.filterNames.map((name) => (
          <label key={name}>
            <span>{filterLabels[name]}</span>
            <input name={name} defaultValue={filters[name] ?? ""} autocomplete="off" />
          </label>
        ))}
        <div class="actions">
          <button type="submit">Search</button>
          {anything &&
            (["csv", "ndjson"] as const).map((format) => (
              <button key={format} type="button" class="export" onClick={() => void exportAs(props, filters, format)}>
                Export {format.toUpperCase()}
              </button>
            ))}
          {filters.aggregateType !== undefined && filters.aggregateId !== undefined && (
            <Link to={{ view: "entity", type: filters.aggregateType, id: filters.aggregateId }}>Open its timeline</Link>
          )}
        </div>
      </form>
      {anything ? (
        <EventListView {...props} className="search-results" paged={paged} title="Matching events, newest first" />
      ) : (
        <p class="hint">Give any filter to search; the results and the filters are in the address, to share.</p>
      )}
    </>
  )
}

/** The most live entries kept on the page. */
const liveLimit = 500

/**
 * The changes as they happen, over the event stream, newest on top. Pausing closes the stream; resuming, or coming
 * back after a network drop, reopens it with the last event's id as `Last-Event-ID`, so nothing is missed or shown
 * twice. Auditors see everything; anyone else the events they made themselves, as the API allows.
 */
export const LiveView = (props: ViewProps) => {
  const [events, setEvents] = useState<ReadonlyArray<Client.AuditEvent>>([])
  const [paused, setPaused] = useState(false)
  const [status, setStatus] = useState<"connecting" | "live" | "reconnecting" | "paused">("connecting")
  const [problem, setProblem] = useState<Client.Problem | undefined>(undefined)
  const lastId = useRef<string | undefined>(undefined)
  const auditor = props.session.role === "auditor"
  useEffect(() => {
    if (paused) {
      setStatus("paused")
      return
    }
    setStatus("connecting")
    const open = Stream.unwrap(
      Effect.gen(function* () {
        const query = yield* Schema.decodeUnknownEffect(StreamQuery)(auditor ? {} : { userId: props.session.userId })
        // The response itself: Effect's SSE decoder ends the stream at the server's `retry:` advice, which this
        // server sends first, so the messages are parsed here and decoded with the server's `StreamMessage`.
        const response = yield* props.client.eventStream.stream({
          query,
          headers: lastId.current === undefined ? {} : { "last-event-id": lastId.current },
          responseMode: "response-only"
        })
        if (response.status !== 200) return yield* Effect.fail(yield* response.json)
        yield* Effect.sync(() => setStatus("live"))
        const parsed: Array<Sse.Event> = []
        const parser = Sse.makeParser((event) => {
          if (event._tag === "Event") parsed.push(event)
        })
        return response.stream.pipe(
          Stream.decodeText,
          Stream.mapEffect((chunk) => {
            const error = parser.feed(chunk)
            return error === undefined ? Effect.succeed(parsed.splice(0)) : Effect.fail(error)
          }),
          Stream.flattenIterable,
          Stream.mapEffect((event) => decodeMessage({ id: event.id, event: event.event, data: event.data })),
          // A stream the server ends (it restarted, a proxy cut it) is a drop like any other: reconnect.
          Stream.concat(Stream.fail(new Error("The event stream ended")))
        )
      })
    ).pipe(
      // A 401 or 403 will not change by retrying: it ends the stream, and is said. A dropped connection is retried,
      // with the last id, every second.
      Stream.catchIf(
        (error) => Client.problemOf(error).kind !== "failed",
        (error) =>
          Stream.fromEffect(
            Effect.sync(() => {
              const p = Client.problemOf(error)
              setProblem(p)
              props.onProblem(p)
            })
          ).pipe(Stream.drain)
      ),
      Stream.tapError(() => Effect.sync(() => setStatus("reconnecting"))),
      Stream.retry(Schedule.spaced("1 second"))
    )
    const fiber = Effect.runFork(
      Stream.runForEach(open, (message) =>
        Effect.sync(() => {
          lastId.current = message.id
          setEvents((list) => [message.data, ...list].slice(0, liveLimit))
        })
      ).pipe(Effect.ignore)
    )
    // The stream answers its headers only once an event or a heartbeat comes; until then it is open and waiting.
    const opened = setTimeout(() => setStatus((s) => (s === "connecting" ? "live" : s)), 1500)
    return () => {
      clearTimeout(opened)
      Effect.runFork(Fiber.interrupt(fiber))
    }
  }, [paused, props.client])
  useNames(props.token, [...new Set(events.map((e) => e.userId))])
  const now = useNow()
  return (
    <section class="view live">
      <Heading title="Live changes">
        <div class="live-controls">
          <span class={`status ${status}`} role="status" aria-live="polite">
            {status === "live"
              ? "Live"
              : status === "paused"
                ? "Paused"
                : status === "reconnecting"
                  ? "Reconnecting…"
                  : "Connecting…"}
          </span>
          <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
            {paused ? "Resume" : "Pause"}
          </button>
        </div>
      </Heading>
      {!auditor && <p class="hint">You see your own changes as they happen; auditors see everyone's.</p>}
      {problem !== undefined ? (
        <ProblemNotice problem={problem} />
      ) : events.length === 0 ? (
        <p class="hint">Waiting for changes…</p>
      ) : (
        <ol class="timeline" aria-label="Changes, newest first">
          {events.map((event) => (
            <Entry key={event.eventId} event={event} now={now} showEntity />
          ))}
        </ol>
      )}
    </section>
  )
}
