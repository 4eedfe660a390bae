/**
 * The UI's build: the app in `app/` to static files in `dist/app`, with relative asset URLs so that it works under
 * whatever path an application mounts it, and the workspace's packages read from their sources.
 */
import { createLogger, defineConfig } from "vite"

const logger = createLogger()
const warn = logger.warn.bind(logger)
// `@annal/core`'s index names its Node-only integrity modules; the UI imports none of them, tree-shaking drops them,
// and the size test checks that no stub of a Node module is left in the bundle. The warning would only be noise.
logger.warn = (message, options) => {
  if (!message.includes("externalized for browser compatibility")) warn(message, options)
}

export default defineConfig({
  root: "app",
  base: "./",
  customLogger: logger,
  resolve: { conditions: ["@annal/source"] },
  build: { outDir: "../dist/app", emptyOutDir: true, target: "es2022", reportCompressedSize: false },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } }
})
