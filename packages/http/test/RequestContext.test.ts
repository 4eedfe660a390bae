import { NodeHttpServer } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as RequestContext from "../src/RequestContext.ts"

/** A route that reads its whole body and answers with its length. */
const echoLength = HttpRouter.add("POST", "/echo", (request) =>
  Effect.map(request.text, (text) => HttpServerResponse.text(String(text.length)))
)

const App = HttpRouter.serve(Layer.mergeAll(echoLength, RequestContext.layerWith({ maxBodySize: "1 KiB" })), {
  disableListenLog: true,
  disableLogger: true
}).pipe(Layer.provideMerge(NodeHttpServer.layerTest))

const post = (body: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(HttpClientRequest.bodyText(HttpClientRequest.post("/echo"), body))
    return { status: response.status, text: yield* response.text }
  })

layer(App)("RequestContext.layerWith", (it) => {
  it.effect("reads bodies up to its maxBodySize and refuses larger ones with a typed 413", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* post("x".repeat(1024)), { status: 200, text: "1024" })
      const refused = yield* post("x".repeat(1025))
      assert.strictEqual(refused.status, 413)
      assert.include(refused.text, "is larger than the 1 KiB this server reads")
    })
  )
})
