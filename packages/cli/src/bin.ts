#!/usr/bin/env node
/**
 * The `annal` executable (`dist/bin.js` once built). In this repository, `npm run annal -- migrate` runs it from
 * source with the project's pinned Node.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Cli from "./Cli.ts"

Cli.run.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
