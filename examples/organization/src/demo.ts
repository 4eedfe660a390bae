/**
 * `npm run demo`: fills the app's database (the one `npm start` uses) with several organizations kept by three
 * clerks over six months, so the audit API has history to show, reporting each month as it goes. Run it while the
 * app is stopped when the database is embedded PGlite; it refuses to run beside it. It does nothing when the demo
 * data is there already. `ANNAL_DEMO_ORGANIZATIONS` (6) and `ANNAL_DEMO_MONTHS` (6) size it.
 *
 * @since 0.1.0
 */
import { Database } from "@annal/cli"
import { NodeRuntime } from "@effect/platform-node"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as App from "./App.ts"
import * as DemoData from "./DemoData.ts"
import * as DemoUsers from "./DemoUsers.ts"

const main = Effect.gen(function* () {
  const database = yield* Database.config
  const organizations = yield* Config.Int("ANNAL_DEMO_ORGANIZATIONS").pipe(Config.withDefault(6))
  const months = yield* Config.Int("ANNAL_DEMO_MONTHS").pipe(Config.withDefault(6))
  yield* Console.log(
    `Filling demo data into ${Database.describe(database)}: ${organizations} organizations, ${months} months`
  )
  // On PGlite the client holds the folder's lock from before the database opens until after it closes.
  const services = App.services.pipe(Layer.provideMerge(Database.layer(database)))
  const summary = yield* DemoData.write({ organizations, months, onProgress: Console.log }).pipe(
    Effect.provide(services)
  )
  if (!summary.written) {
    yield* Console.log("The demo data is there already; nothing was written.")
    return
  }
  const alice = DemoUsers.user("alice")
  yield* Console.log(
    [
      `Done: ${summary.changes} changes to ${summary.organizations} organizations and ${summary.commodities} commodities.`,
      "Start the app with npm start, then for instance:",
      `  curl -H "Authorization: Bearer ${alice.token}" http://localhost:3000/audit/users/${alice.userId}/activity`,
      `  curl -H "Authorization: Bearer demo-auditor" "http://localhost:3000/audit/changes/recent?hours=720"`
    ].join("\n")
  )
})

main.pipe(NodeRuntime.runMain)
