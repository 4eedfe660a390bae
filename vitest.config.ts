import { defineConfig } from "vitest/config"
import { projects } from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects: [...projects],
    globalSetup: ["./test/support/RunDatabase.ts"],
    reporters: ["default", "./test/support/EngineSummary.ts"]
  }
})
