/**
 * The audit trail as a file: `GET /audit/export?<the filters of /audit/events>&format=csv|ndjson`, a group of its own
 * (`auditExport`, under `/audit`) that an application adds to its `HttpApi`, and its handler,
 * `layer(Api, { registry })`.
 *
 * The file is streamed: the events are read a page at a time (`AuditService.streamEvents`) and written with the
 * core's `Export` encoders, and the next page is read only once the socket took the last one (the Node server waits
 * for `drain`), so an export of any range holds about one page in memory whatever its size, and a slow client slows
 * the reads rather than filling the server. It is offered for download (`Content-Disposition: attachment`).
 *
 * Who may export what is `/audit/events`' rule (`AuditHandlers.authorizeFilter`). An auditor's export is recorded as
 * one `audit.read` when it ends, with its filters and the number of events it handed to the connection, also when
 * the client went away before the end (the read happened, as far as it went). An event the registry cannot decode is
 * exported as stored and flagged (`decoded: false` and `decodeError`), as the audit API shows it. A failure midway
 * (the database went away) aborts the connection rather than end it, so a cut file never looks complete.
 *
 * @since 0.1.0
 */
import { AuditService, type Event, EventContext, EventEmitter, type EventRegistry, Export, Filter } from "@annal/core"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as HttpApi from "effect/http-api/HttpApi"
import type * as Layer from "effect/Layer"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ApiGroup from "./ApiGroup.ts"
import { Forbidden, InternalError } from "./ApiError.ts"
import { AuditAccess } from "./AuditAccess.ts"
import { filterQuery } from "./AuditApi.ts"
import { authorizeFilter, definedParameters, filterParameters, fromStoreError, toFilter } from "./AuditHandlers.ts"
import * as AuditRead from "./AuditRead.ts"
import * as EventJson from "./EventJson.ts"
import { CurrentPrincipal } from "./Principal.ts"

/** The query of `GET /audit/export`: the filters of `/audit/events`, and the format (`csv` by default). */
export const exportQuery = {
  ...filterQuery,
  format: Schema.optional(Export.Format)
}

/** The export group, authenticated and validated as the audit group is. */
export class AuditExportGroup extends HttpApiGroup.make("auditExport")
  .add(
    HttpApiEndpoint.get("export", "/export", {
      query: exportQuery,
      success: HttpApiSchema.StreamUint8Array({
        contentType: [Export.contentType("csv"), Export.contentType("ndjson")]
      }),
      error: [Forbidden, InternalError]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Events as a file",
        description:
          "Every event that matches the filters of `GET /audit/events` (`eventType` repeatable, `aggregateType`, " +
          "`aggregateId`, `userId`, `correlationId`, [`from`, `to`)), oldest first, as a download: `format=csv` " +
          "(the default; a header, then one row per event: the envelope's columns, `data` and `metadata` as JSON, " +
          "`decoded` and `decodeError`) or `format=ndjson` (one `AuditEvent` per line). Streamed in constant " +
          "memory, whatever the range. Users export their own events or those of an aggregate they may see; " +
          "auditors export anything, and each export is recorded as an `audit.read` with its filters and count."
      })
    )
  )
  // The time bound covers starting the export (the access check), not the download.
  .pipe(ApiGroup.guard("/audit"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Audit export",
      description: "The audit trail as CSV or NDJSON files, with the audit API's filters and access rules."
    })
  ) {}

/** The export on its own, to type its handler or build a client. */
export class AuditExportApi extends HttpApi.make("annal-audit-export")
  .add(AuditExportGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal audit export", version: "0.1.0" })) {}

/** What the handler needs from the application. */
export interface Options {
  /** Reads the application's events, as `AuditHandlers.layer` takes it. */
  readonly registry: EventRegistry.EventRegistry<Event.Event>
}

const build = (api: typeof AuditExportApi, options: Options) =>
  HttpApiBuilder.group(api, "auditExport", (handlers) =>
    Effect.gen(function* () {
      const audit = yield* AuditService.AuditService
      const emitter = yield* EventEmitter.EventEmitter
      const access = yield* AuditAccess
      const registry = EventJson.withAuditRead(options.registry)
      const toAuditEvent = EventJson.makeToAuditEvent(registry)

      return handlers.handleRaw(
        "export",
        Effect.fn("AuditApi.export")(function* ({ query }) {
          const principal = yield* CurrentPrincipal
          const { format = "csv", ...filters } = query
          // Refused now, as a 400: once the file has started, a refusal could only cut it.
          const filter = yield* toFilter(filters).pipe(
            Effect.flatMap((filter) => Filter.validate(filter).pipe(Effect.catch(fromStoreError)))
          )
          yield* authorizeFilter(access, principal, filters)
          // The body is read after this handler returns, outside the request's event context: it takes it along, so
          // that the record and a failure midway carry the request's correlation id.
          const eventContext = yield* EventContext.EventContext
          const exported = yield* Ref.make(0)
          // The record gets the context itself, not only through the stream: a client that leaves while the server
          // waits on its socket closes the stream from outside it, and a finalizer runs in the context of the fiber
          // that closes the scope, where there is no user (as in `EventStream`).
          const recordRead = Effect.flatMap(Ref.get(exported), (returned) =>
            AuditRead.record(emitter, principal, {
              endpoint: "export",
              parameters: { ...definedParameters(filterParameters(filters)), format },
              continued: false,
              returned
            })
          ).pipe(
            Effect.catchCause((cause) => Effect.logError("recording an auditor's export failed", cause)),
            Effect.provideService(EventContext.EventContext, eventContext)
          )
          const body = audit.streamEvents(registry, filter).pipe(
            Stream.catch((error) => Stream.fromEffect(fromStoreError(error))),
            // A page at a time, counted as the encoder takes it: on a disconnect the count may include the page
            // that was being written.
            Stream.mapArrayEffect((events) =>
              Effect.forEach(events, toAuditEvent).pipe(Effect.tap(Ref.update(exported, (n) => n + events.length)))
            ),
            Export.encode(format),
            Stream.ensuring(recordRead),
            Stream.provideService(EventContext.EventContext, eventContext)
          )
          return HttpServerResponse.stream(body, {
            contentType: Export.contentType(format),
            headers: {
              "content-disposition": `attachment; filename="${Export.fileName(format, yield* DateTime.now)}"`,
              "cache-control": "no-store",
              "x-content-type-options": "nosniff"
            }
          })
        })
      )
    })
  )

type Built = ReturnType<typeof build>

/** Nothing extra when the API's groups include the export group; an impossible type otherwise. */
type HasExportGroup<Groups extends HttpApiGroup.Constraint> =
  "auditExport" extends HttpApiGroup.Identifier<Groups>
    ? unknown
    : { readonly "the API must include AuditExportGroup": never }

/** The handler of `AuditExportGroup` in the application's `api`, which must include it. */
export const layer: <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups> & HasExportGroup<Groups>,
  options: Options
) => Layer.Layer<HttpApiGroup.Service<Id, "auditExport">, Layer.Error<Built>, Layer.Services<Built>> =
  // As `AuditHandlers.layer`: the handler is checked against `AuditExportApi`, whose group any API holding
  // `AuditExportGroup` shares.
  build as unknown as <Id extends string, Groups extends HttpApiGroup.Constraint>(
    api: HttpApi.HttpApi<Id, Groups> & HasExportGroup<Groups>,
    options: Options
  ) => Layer.Layer<HttpApiGroup.Service<Id, "auditExport">, Layer.Error<Built>, Layer.Services<Built>>
