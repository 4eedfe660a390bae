/**
 * `annal catalog`: the event catalog of an application's registry as a readable Markdown (default) or HTML page.
 *
 * The CLI has no registry of its own, and the application's is code, not configuration: `--registry` names the
 * module that exports it and the export, `./dist/Events.js#OrganizationEvents` (the default export without `#`). The
 * module is imported as Node imports it, relative to the working directory; a TypeScript module works where Node
 * runs TypeScript (Node 23.6 and later strip types).
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { EventCatalog, type EventRegistry } from "@annal/core"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import * as Flags from "./flags.ts"
import * as OutputFile from "./outputFile.ts"

/** The registry could not be loaded from `--registry`. */
export class CatalogError extends Schema.TaggedError<CatalogError>("@annal/cli/CatalogError")("CatalogError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `annal catalog: ${this.reason}`
  }
}

/** Imports the registry `reference` (`<module>#<export>`) names. */
export const loadRegistry = Effect.fnUntraced(function* (reference: string) {
  const hash = reference.lastIndexOf("#")
  const path = hash === -1 ? reference : reference.slice(0, hash)
  const name = hash === -1 ? "default" : reference.slice(hash + 1)
  if (path.length === 0 || name.length === 0) {
    return yield* new CatalogError({ reason: "--registry takes <module path>#<export name>" })
  }
  const module: Record<string, unknown> = yield* Effect.tryPromise({
    try: () => import(pathToFileURL(resolve(path)).href) as Promise<Record<string, unknown>>,
    catch: (cause) => new CatalogError({ reason: `cannot import ${path}: ${String(cause)}` })
  })
  const registry = module[name]
  if (!isRegistry(registry)) {
    return yield* new CatalogError({ reason: `${path} exports no event registry named ${name}` })
  }
  return registry
})

const isRegistry = (value: unknown): value is EventRegistry.Any =>
  typeof value === "object" &&
  value !== null &&
  (value as { readonly definitions?: unknown }).definitions instanceof Map &&
  typeof (value as { readonly decode?: unknown }).decode === "function"

/** The catalog as Markdown: a section per type, its versions with what each upcast changed and their schemas. */
export const toMarkdown = (catalog: EventCatalog.Catalog, title: string): string => {
  const lines = [`# ${title}`, "", `${catalog.types.length} event types.`, ""]
  lines.push("| Event type | Aggregate type | Current version |", "| --- | --- | --- |")
  for (const type of catalog.types)
    lines.push(`| \`${type.eventType}\` | \`${type.aggregateType}\` | ${type.version} |`)
  for (const type of catalog.types) {
    lines.push(
      "",
      `## \`${type.eventType}\``,
      "",
      `Aggregate type \`${type.aggregateType}\`, current version ${type.version}.`
    )
    for (const version of type.versions) {
      lines.push("", `### Version ${version.version}`, "", describeChanges(version.changes), "", "```json")
      lines.push(JSON.stringify(version.schema, null, 2), "```")
    }
  }
  return `${lines.join("\n")}\n`
}

/** The catalog as a standalone HTML page, every text escaped. */
export const toHtml = (catalog: EventCatalog.Catalog, title: string): string => {
  const parts = [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>`,
    "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}" +
      "pre{background:#f5f5f5;padding:1rem;overflow:auto}table{border-collapse:collapse}" +
      "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}</style></head><body>",
    `<h1>${escape(title)}</h1>`,
    "<table><thead><tr><th>Event type</th><th>Aggregate type</th><th>Current version</th></tr></thead><tbody>"
  ]
  for (const type of catalog.types) {
    parts.push(
      `<tr><td><a href="#${escape(type.eventType)}"><code>${escape(type.eventType)}</code></a></td>` +
        `<td><code>${escape(type.aggregateType)}</code></td><td>${type.version}</td></tr>`
    )
  }
  parts.push("</tbody></table>")
  for (const type of catalog.types) {
    parts.push(`<h2 id="${escape(type.eventType)}"><code>${escape(type.eventType)}</code></h2>`)
    for (const version of type.versions) {
      parts.push(
        `<h3>Version ${version.version}</h3>`,
        `<p>${escape(describeChanges(version.changes))}</p>`,
        `<pre><code>${escape(JSON.stringify(version.schema, null, 2))}</code></pre>`
      )
    }
  }
  parts.push("</body></html>")
  return `${parts.join("\n")}\n`
}

const describeChanges = (changes: EventCatalog.Changes | undefined): string => {
  if (changes === undefined) return "The first version."
  const said = [
    changes.added.length === 0 ? undefined : `added ${changes.added.join(", ")}`,
    changes.removed.length === 0 ? undefined : `removed ${changes.removed.join(", ")}`,
    changes.changed.length === 0 ? undefined : `changed ${changes.changed.join(", ")}`
  ].filter((part) => part !== undefined)
  return said.length === 0
    ? "Upcast from the version before without a change to its fields."
    : `Upcast from the version before: ${said.join("; ")}.`
}

const escape = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")

/** `annal catalog`. */
export const catalog = Command.make(
  "catalog",
  {
    registry: Flag.String("registry").pipe(
      Flag.withDescription(
        "The application's event registry: <module path>#<export name>, such as ./dist/Events.js#Events"
      )
    ),
    format: Flag.Literals("format", ["markdown", "html"]).pipe(
      Flag.withDescription("Markdown (default) or a standalone HTML page"),
      Flag.withDefault("markdown" as const)
    ),
    output: Flags.output,
    title: Flag.String("title").pipe(Flag.withDescription("The page's title"), Flag.withDefault("Event catalog"))
  },
  Effect.fn("annal.catalog")(function* (flags) {
    const registry = yield* loadRegistry(flags.registry)
    const described = EventCatalog.make(registry)
    const page = flags.format === "html" ? toHtml(described, flags.title) : toMarkdown(described, flags.title)
    if (Option.isNone(flags.output)) return yield* Console.log(page.trimEnd())
    const fs = yield* FileSystem.FileSystem
    yield* OutputFile.writeWhole(flags.output.value, (temporary) =>
      fs.writeFileString(temporary, page, OutputFile.createNew)
    )
    yield* Console.error(`Wrote the catalog of ${described.types.length} event types to ${flags.output.value}`)
  })
).pipe(Command.withDescription("Write the event catalog of an application's registry as Markdown or HTML"))
