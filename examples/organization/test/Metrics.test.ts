/**
 * `GET /metrics`, scraped as Prometheus scrapes it: only with the scrape token, and with values that follow what the
 * app did (appends, events by type, open event streams, the consumers' and the feed's gauges read at the scrape).
 */
import { ApiTokens } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as http from "node:http"
import * as App from "../src/App.ts"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const scrapeToken = `scrape-${crypto.randomUUID()}`

const appLayer = Layer.unwrap(
  Effect.gen(function* () {
    const tokens = yield* DemoUsers.tokenEntries
    const metricsTokenSha256 = yield* ApiTokens.hash(scrapeToken)
    return App.layer({ port: 0, host: "127.0.0.1", tokens, requestTimeout: TestApp.requestTimeout, metricsTokenSha256 })
  })
).pipe(Layer.provideMerge(TestApp.sqlLayer), Layer.provideMerge(FetchHttpClient.layer), Layer.orDie)

/** Scrapes `/metrics` with the scrape token; fails the test on anything but a 200. */
const scrape = Effect.gen(function* () {
  const response = yield* TestApp.request("GET", "/metrics", { as: { token: scrapeToken } })
  assert.strictEqual(response.status, 200, response.text)
  return response.text
})

/**
 * The value of the sample `name{labels}` in a scrape, summed over the samples whose labels include `labels`;
 * 0 when there is none, as Prometheus reads an absent counter.
 */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number => {
  let total = 0
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const given = new Map(
      [...(match[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [
        pair[1]!,
        pair[2]!
      ])
    )
    if (Object.entries(labels).every(([key, value]) => given.get(key) === value)) total += Number(match[4])
  }
  return total
}

const organization = () => ({
  name: "Metrics Trading",
  type: "private_limited",
  email: "accounts@metrics.example",
  pan: `AAAPM${String(Math.floor(Math.random() * 10_000)).padStart(4, "0")}M`
})

/** Opens an event stream as alice for her own events; the connection is destroyed when the scope closes. */
const openStream = Effect.gen(function* () {
  const base = yield* TestApp.baseUrl
  const alice = DemoUsers.user("alice")
  return yield* Effect.acquireRelease(
    Effect.callback<{ readonly status: number; readonly request: http.ClientRequest }>((resume) => {
      const request = http.get(
        `${base}/events/stream?userId=${alice.userId}`,
        { headers: { authorization: `Bearer ${alice.token}` }, agent: false },
        (response) => resume(Effect.succeed({ status: response.statusCode ?? 0, request }))
      )
      request.on("error", () => undefined)
    }),
    ({ request }) => Effect.sync(() => request.destroy())
  )
})

layer(appLayer, TestApp.layerOptions)("GET /metrics", (it) => {
  it.effect("answers 401 without the scrape token, and to an API token: it is not an audit reader's", () =>
    Effect.gen(function* () {
      const none = yield* TestApp.request("GET", "/metrics")
      assert.strictEqual(none.status, 401)
      assert.strictEqual(TestApp.header(none, "www-authenticate"), 'Bearer realm="annal"')
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(none.body)._tag, "Unauthenticated")
      const auditor = yield* TestApp.request("GET", "/metrics", { as: "dana" })
      assert.strictEqual(auditor.status, 401)
      const wrong = yield* TestApp.request("GET", "/metrics", { as: { token: `${scrapeToken}x` } })
      assert.strictEqual(wrong.status, 401)
      assert.notInclude(wrong.text, "annal_")
    })
  )

  it.effect("a scrape after appends: the counters moved by what was done, the database's gauges are read", () =>
    Effect.gen(function* () {
      const before = yield* scrape
      const response = yield* TestApp.request("POST", "/organizations", { as: "alice", body: organization() })
      assert.strictEqual(response.status, 201, response.text)
      const after = yield* scrape
      const response2 = yield* TestApp.request("GET", "/metrics", { as: { token: scrapeToken } })
      assert.strictEqual(TestApp.header(response2, "content-type"), "text/plain; version=0.0.4; charset=utf-8")

      assert.include(after, "# TYPE annal_appends_total counter")
      assert.include(after, "# TYPE annal_append_duration_seconds histogram")
      assert.isAtLeast(sample(after, "annal_appends_total") - sample(before, "annal_appends_total"), 1)
      assert.strictEqual(
        sample(after, "annal_events_appended_total", { event_type: "organization.created" }) -
          sample(before, "annal_events_appended_total", { event_type: "organization.created" }),
        1
      )
      assert.isAtLeast(
        sample(after, "annal_append_duration_seconds_count") - sample(before, "annal_append_duration_seconds_count"),
        1
      )
      // Read from the database at the scrape: nothing holds the fence here.
      assert.include(after, "annal_feed_fence_age_seconds 0")
      assert.include(after, "annal_feed_pending_events 0")
      // Counts by type only: the organization's name and e-mail stay in the audit API.
      assert.notInclude(after, "Metrics Trading")
      assert.notInclude(after, "accounts@metrics.example")
    })
  )

  it.effect("counts the open event streams", () =>
    Effect.gen(function* () {
      const before = sample(yield* scrape, "annal_sse_connections")
      const stream = yield* Effect.scoped(
        Effect.gen(function* () {
          const opened = yield* openStream
          assert.strictEqual(opened.status, 200)
          return sample(yield* scrape, "annal_sse_connections")
        })
      )
      assert.strictEqual(stream - before, 1)
      // Closed by the client: the server sees it go when its socket closes, which it does not say when; asked again
      // until then, within the test's timeout.
      const closed = yield* scrape.pipe(
        Effect.map((text) => sample(text, "annal_sse_connections")),
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (open) => open === before })
      )
      assert.strictEqual(closed, before)
    })
  )
})
