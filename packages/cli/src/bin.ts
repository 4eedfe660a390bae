#!/usr/bin/env node
/**
 * The `annal` executable (`dist/bin.js` once built). In this repository, `npm run annal -- migrate` runs it from
 * source with the project's pinned Node.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Cli from "./Cli.ts"

/** One of Annal's typed errors: its message says what went wrong, for an operator, without a stack trace. */
const isAnnalError = (error: unknown): error is Error => error instanceof Error && error.name.startsWith("@annal/")

Cli.run.pipe(
  Effect.catchIf(isAnnalError, (error) =>
    Effect.andThen(
      Console.error(`${error.name}: ${error.message}`),
      Effect.sync(() => {
        process.exitCode = 1
      })
    )
  ),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
