/**
 * Traces and metrics exported over OTLP/HTTP with Effect's own exporter (`effect/observability`), switched on by the
 * standard `OTEL_EXPORTER_OTLP_ENDPOINT` and off when it is unset (or when `OTEL_SDK_DISABLED=true`).
 *
 * Two layers, because they sit at two places of an application: `layerTracer` is provided around everything, so that
 * every span (requests, appends, consumers) reaches the collector, and is released last, so that the spans of the
 * shutdown are sent; `layerMetrics` needs the store's `Metrics.Sampler`, so it is built beside the services. Before
 * each metrics export the sampler reads the gauges that need the database (consumer lag, fence age, digest age), as
 * a Prometheus scrape does, and once more when the layer is released, before the exporter's last export.
 *
 * Effect's own `layerFromConfig` also wants `OTEL_TRACES_EXPORTER=otlp` and `OTEL_METRICS_EXPORTER=otlp`, which the
 * OpenTelemetry specification makes the default: the endpoint alone switches export on here, as operators expect.
 * Read from the environment: `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` and `/v1/metrics`
 * are appended), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`),
 * `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`, for a vendor's API key), `OTEL_SERVICE_NAME`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, 60 000) and `OTEL_BSP_SCHEDULE_DELAY`
 * (milliseconds between span batches, 5 000).
 *
 * @since 0.1.0
 */
import { Metrics } from "@annal/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Headers from "effect/http/Headers"
import type * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Layer from "effect/Layer"
import * as OtlpExporter from "effect/observability/OtlpExporter"
import * as OtlpMetrics from "effect/observability/OtlpMetrics"
import * as OtlpSerialization from "effect/observability/OtlpSerialization"
import * as OtlpTracer from "effect/observability/OtlpTracer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** Where and how to export. */
export interface Options {
  /** The collector's base URL; `/v1/traces` and `/v1/metrics` are appended. */
  readonly endpoint: string
  readonly serviceName: string
  /** The wire format (default `http/protobuf`, the OTLP default). */
  readonly protocol?: Protocol | undefined
  /** Sent with every export, for a collector that wants a key. */
  readonly headers?: Headers.Input | undefined
  /** How often metrics are exported (default 60 seconds). */
  readonly metricsExportInterval?: Duration.Input | undefined
  /** How often finished spans are sent (default 5 seconds). */
  readonly tracesExportInterval?: Duration.Input | undefined
}

/** The OTLP/HTTP wire formats Effect's exporter speaks. */
export const Protocol = Schema.Literals(["http/protobuf", "http/json"])

/** An OTLP/HTTP wire format. */
export type Protocol = typeof Protocol.Type

/** The defaults of `Options`. */
export const defaults = {
  protocol: "http/protobuf" as Protocol,
  metricsExportInterval: Duration.seconds(60),
  tracesExportInterval: Duration.seconds(5)
} as const

const millis = (name: string) => Config.Int(name).pipe(Config.map(Duration.millis), Config.option)

/**
 * The options from the environment, none when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset or `OTEL_SDK_DISABLED` is
 * true. `serviceName` is the name used when `OTEL_SERVICE_NAME` is unset.
 */
export const config = (serviceName: string): Config.Config<Option.Option<Options>> =>
  Config.all({
    disabled: Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    endpoint: Config.option(Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT")),
    protocol: Config.schema(Protocol, "OTEL_EXPORTER_OTLP_PROTOCOL").pipe(Config.withDefault(defaults.protocol)),
    headers: Config.option(
      Config.Record(Schema.String, Schema.StringFromUriComponent, "OTEL_EXPORTER_OTLP_HEADERS", { trim: true })
    ),
    serviceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault(serviceName)),
    metricsExportInterval: millis("OTEL_METRIC_EXPORT_INTERVAL"),
    tracesExportInterval: millis("OTEL_BSP_SCHEDULE_DELAY")
  }).pipe(
    Config.map((settings) =>
      settings.disabled
        ? Option.none()
        : Option.map(settings.endpoint, (endpoint): Options => ({
            endpoint: endpoint.toString(),
            serviceName: settings.serviceName,
            protocol: settings.protocol,
            headers: Option.getOrUndefined(settings.headers),
            metricsExportInterval: Option.getOrUndefined(settings.metricsExportInterval),
            tracesExportInterval: Option.getOrUndefined(settings.tracesExportInterval)
          }))
    )
  )

const url = (options: Options, signal: "traces" | "metrics"): string =>
  HttpClientRequest.appendUrl(HttpClientRequest.get(options.endpoint), `/v1/${signal}`).url

const serialization = (options: Options) =>
  (options.protocol ?? defaults.protocol) === "http/json"
    ? OtlpSerialization.layerJson
    : OtlpSerialization.layerProtobuf

/**
 * The OTLP tracer: every span of what it is provided to goes to `<endpoint>/v1/traces`, the last ones on release.
 * Its `Flusher` sends the spans that wait, at once.
 */
export const layerTracer = (options: Options): Layer.Layer<OtlpExporter.Flusher, never, HttpClient.HttpClient> =>
  OtlpTracer.layer({
    url: url(options, "traces"),
    resource: { serviceName: options.serviceName },
    headers: options.headers,
    exportInterval: options.tracesExportInterval ?? defaults.tracesExportInterval
  }).pipe(Layer.provide(serialization(options)))

/**
 * The OTLP metrics exporter of Effect's whole registry, to `<endpoint>/v1/metrics`: each export, and the last one
 * when the layer is released, runs the `Metrics.Sampler` first.
 */
export const layerMetrics = (options: Options): Layer.Layer<never, never, HttpClient.HttpClient | Metrics.Sampler> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sampler = yield* Metrics.Sampler
      const flusher = yield* OtlpExporter.Flusher
      const interval = Duration.fromInputUnsafe(options.metricsExportInterval ?? defaults.metricsExportInterval)
      // The exporter's own timer never fires: it reads the registry synchronously, with no room for a database read,
      // so the export is driven from here, the sample first.
      yield* OtlpMetrics.make({
        url: url(options, "metrics"),
        resource: { serviceName: options.serviceName },
        headers: options.headers,
        exportInterval: Duration.infinity
      })
      // Added after the exporter's, so run before its last export (finalizers run in reverse).
      yield* Effect.addFinalizer(() => sampler.sample)
      yield* Effect.sleep(interval).pipe(
        Effect.andThen(sampler.sample),
        Effect.andThen(flusher.flush),
        Effect.forever,
        Effect.forkScoped
      )
    })
  ).pipe(Layer.provide([serialization(options), OtlpExporter.layerFlusher]))

/** `layerTracer` from the environment (`config`); when export is off, a `Flusher` with nothing to flush. */
export const layerTracerConfig = (
  serviceName: string
): Layer.Layer<OtlpExporter.Flusher, Config.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrap(
    Effect.map(config(serviceName), Option.match({ onNone: () => OtlpExporter.layerFlusher, onSome: layerTracer }))
  )

/** `layerMetrics` from the environment (`config`), or nothing when export is off. */
export const layerMetricsConfig = (
  serviceName: string
): Layer.Layer<never, Config.ConfigError, HttpClient.HttpClient | Metrics.Sampler> =>
  Layer.unwrap(Effect.map(config(serviceName), Option.match({ onNone: () => Layer.empty, onSome: layerMetrics })))
