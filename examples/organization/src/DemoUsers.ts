/**
 * The demo's users and their API tokens, used when `ANNAL_API_TOKENS` is not set. The tokens are public (they are
 * in this file and in docs/example-app.md), so a deployment sets its own; the app says so when it starts with these.
 *
 * @since 0.1.0
 */
import { ApiTokens, AuditUi } from "@annal/http"
import * as Effect from "effect/Effect"

/** A demo user: who they are, their role, and their token. */
export interface DemoUser {
  readonly name: string
  readonly userId: string
  readonly role: string
  readonly token: string
}

/** Three clerks who keep the books, and an auditor who reads them. */
export const users: ReadonlyArray<DemoUser> = [
  { name: "alice", userId: "a11ce000-0000-4000-8000-000000000001", role: "clerk", token: "demo-alice" },
  { name: "bob", userId: "b0b00000-0000-4000-8000-000000000002", role: "clerk", token: "demo-bob" },
  { name: "carol", userId: "ca201000-0000-4000-8000-000000000003", role: "clerk", token: "demo-carol" },
  { name: "dana", userId: "da7a0000-0000-4000-8000-000000000004", role: "auditor", token: "demo-auditor" }
]

/** The demo user named `name`. */
export const user = (name: "alice" | "bob" | "carol" | "dana"): DemoUser => users.find((u) => u.name === name)!

/** The token configuration of the demo users: only the hashes of their tokens. */
export const tokenEntries: Effect.Effect<ReadonlyArray<ApiTokens.TokenEntry>> = Effect.forEach(users, (u) =>
  Effect.map(ApiTokens.hash(u.token), (sha256) => ({ name: u.name, sha256, userId: u.userId, role: u.role }))
)

/**
 * The audit timeline's user directory: the demo users by name, so that the UI shows "alice" where the API says
 * `a11ce000-…`. An application plugs its own users table or identity provider in with its own `UserDirectory`.
 */
export const directory = AuditUi.layerDirectory(users.map((u) => ({ userId: u.userId, name: u.name })))
