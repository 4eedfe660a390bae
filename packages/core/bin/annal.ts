#!/usr/bin/env node
/**
 * The `annal` executable. Node 24 runs it as TypeScript; run it through npm (`npm run annal -- migrate`) so that
 * the project's pinned Node is the one on PATH.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Cli from "../src/Cli.ts"

Cli.run.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
