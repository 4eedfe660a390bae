/**
 * Who is calling: the user and role an API token maps to. Authentication provides it to every handler; handlers
 * read it to decide what the caller may see, and the event context carries its user into every event the request
 * emits.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"

/** The role that reads everything. Every other role reads only what its user may see. */
export const auditor = "auditor"

/** A role: one lowercase word, such as `auditor` or `clerk`. Only `auditor` means something to the audit API. */
export const Role = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_-]{0,31}$/, { message: "must be a lowercase word such as auditor or clerk" })
)

/** The caller, as its token names it. */
export interface Principal {
  /** The token's name, for logs: it identifies the credential, never the secret. */
  readonly name: string
  readonly userId: string
  readonly role: string
}

/** The authenticated caller of the current request. */
export class CurrentPrincipal extends Context.Service<CurrentPrincipal, Principal>()("@annal/http/CurrentPrincipal") {}

/** Whether the caller reads everything. */
export const isAuditor = (principal: Principal): boolean => principal.role === auditor
