/**
 * The schemas of the two reads `AuditUi` serves beside the UI (`{path}/api/session` and `{path}/api/names`), in a
 * module of their own so that the UI, in the browser, decodes them with the server's own schemas without bundling
 * the server.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** A user as the directory names them. */
export const DirectoryEntry = Schema.Struct({ userId: Schema.String, name: Schema.String }).annotate({
  identifier: "DirectoryEntry"
})

/** A user as the directory names them. */
export type DirectoryEntry = typeof DirectoryEntry.Type

/** The answer of `GET {path}/api/session`: the caller, by the token they sent. */
export const Session = Schema.Struct({ userId: Schema.String, name: Schema.String, role: Schema.String }).annotate({
  identifier: "Session"
})

/** The answer of `GET {path}/api/names`: the names the directory knows, of the ids asked for. */
export const Names = Schema.Struct({ names: Schema.Array(DirectoryEntry) }).annotate({ identifier: "Names" })

/** The most ids one `names` request may ask for: a page of events names at most a page of users. */
export const maxNamesPerRequest = 500
