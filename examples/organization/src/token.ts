/**
 * `npm run token -w @annal/example-organization -- --name ops --user-id <uuid> --role auditor`: makes a new API
 * token, prints it once, and prints the entry to add to `ANNAL_API_TOKENS`, which holds only the token's hash.
 *
 * @since 0.1.0
 */
import { ApiTokens, Principal } from "@annal/http"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"

const token = Command.make(
  "token",
  {
    name: Flag.String("name").pipe(Flag.withDescription("A name for the token, shown in logs")),
    userId: Flag.String("user-id").pipe(
      Flag.withDescription("The user the token acts as"),
      Flag.withSchema(ApiTokens.TokenEntry.fields.userId)
    ),
    role: Flag.String("role").pipe(
      Flag.withDescription(`The user's role; ${Principal.auditor} reads everything`),
      Flag.withSchema(Principal.Role)
    )
  },
  Effect.fn("token")(function* ({ name, userId, role }) {
    const bytes = yield* SecureRandom.SecureRandom.use((random) => random.randomBytes(32))
    const secret = `annal_${Base64Url.encode(bytes)}`
    const entry = { name, sha256: yield* ApiTokens.hash(secret), userId, role }
    yield* Console.log(
      [
        `token (shown once; give it to ${name}): ${secret}`,
        "entry for ANNAL_API_TOKENS (a JSON array of these):",
        JSON.stringify(Schema.encodeSync(ApiTokens.TokenEntry)(entry))
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Make an API token for the Organization app"))

Command.run(token, { version: "0.1.0" }).pipe(
  Effect.provide(Layer.mergeAll(SecureRandom.layerWebCrypto, NodeServices.layer)),
  NodeRuntime.runMain
)
