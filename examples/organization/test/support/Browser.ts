/**
 * Real headless Chromium for the UI's tests, driven by `playwright-core`: Debian's `/usr/bin/chromium` (or
 * `ANNAL_CHROMIUM`), with a fresh profile per test file, and helpers that save each view's screenshot under
 * `test-artifacts/ui/` (gitignored) for a person to look at. Every Playwright call is a promise, wrapped here so
 * the tests stay Effects.
 */
import * as Effect from "effect/Effect"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { chromium, type BrowserContext, type Page } from "playwright-core"

/** The Chromium binary: CI installs Debian's package (`.ci/run`). */
export const executablePath = process.env["ANNAL_CHROMIUM"] ?? "/usr/bin/chromium"

/** The flags of a quiet, sandbox-free headless Chromium that talks to nothing but the app (DEVELOPERS.md). */
export const flags: ReadonlyArray<string> = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** Where screenshots go: test artifacts, not committed. */
export const artifacts = Path.join(import.meta.dirname, "..", "..", "test-artifacts", "ui")

/** A browser profile of the test file's own. */
export class Browser extends Context.Service<Browser, BrowserContext>()("test/Browser") {}

/** The browser for the file, closed with its profile when the file's tests end. */
export const layer: Layer.Layer<Browser> = Layer.effect(
  Browser,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "annal-chromium-"))
      const context = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: [...flags],
        viewport: { width: 1280, height: 800 }
      })
      return Object.assign(context, { profile })
    }),
    (context) =>
      Effect.promise(async () => {
        await context.close()
        Fs.rmSync(context.profile, { recursive: true, force: true })
      })
  )
)

/** What the page said that a test should hear of: errors, and refusals by the Content Security Policy. */
export interface Watched {
  readonly page: Page
  readonly errors: Array<string>
}

/** A new tab, closed with the scope; it records page errors and CSP violations. */
export const page = Effect.gen(function* () {
  const context = yield* Browser
  return yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const page = await context.newPage()
      const errors: Array<string> = []
      page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`))
      page.on("console", (message) => {
        if (message.type() === "error" && /Content Security Policy|Refused to/.test(message.text())) {
          errors.push(`csp: ${message.text()}`)
        }
      })
      return { page, errors } satisfies Watched
    }),
    ({ page }) => Effect.promise(() => page.close())
  )
})

/** Runs a Playwright step. */
export const step = <A>(f: () => Promise<A>): Effect.Effect<A> => Effect.promise(f)

/** Saves a full-page screenshot as `test-artifacts/ui/<name>.png`. */
export const screenshot = (page: Page, name: string, fullPage = true) =>
  step(async () => {
    Fs.mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: Path.join(artifacts, `${name}.png`), fullPage })
  })

/** Opens the UI at `path` (under `/ui/`) and signs in with `token` when the sign-in form shows. */
export const signIn = (page: Page, base: string, token: string, path = "") =>
  step(async () => {
    await page.goto(`${base}/ui/${path}`)
    const form = page.locator("input[name=token]")
    await form.waitFor({ timeout: 20_000 })
    await form.fill(token)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.locator("header.top").waitFor({ timeout: 20_000 })
  })

const axeSource = Fs.readFileSync(
  Path.join(import.meta.dirname, "..", "..", "..", "..", "node_modules", "axe-core", "axe.min.js"),
  "utf8"
)

/** The serious and critical axe-core violations of the page as it is, by rule id and the elements hit. */
export const axeViolations = (page: Page) =>
  step(async () => {
    // Evaluated through the DevTools protocol: the page's CSP, which refuses inline scripts, does not apply to it.
    await page.evaluate(axeSource)
    const results: {
      violations: ReadonlyArray<{ id: string; impact: string | null; nodes: ReadonlyArray<{ target: unknown }> }>
    } = await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return results.violations
      .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
      .map((violation) => `${violation.id}: ${JSON.stringify(violation.nodes.map((node) => node.target))}`)
  })

/** A TCP proxy in front of the app whose connections a test can cut, as a network drop would. */
export interface Proxy {
  readonly url: string
  /** Cuts every connection, and refuses new ones until `restore`. */
  readonly drop: () => void
  readonly restore: () => void
}

/** A proxy to `target` (`http://host:port`) on a free port, closed with the scope. */
export const proxy = (target: string) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<Proxy & { readonly server: Net.Server }>((resolve) => {
          const { hostname, port } = new URL(target)
          const sockets = new Set<Net.Socket>()
          let refusing = false
          const server = Net.createServer((client) => {
            if (refusing) return void client.destroy()
            const upstream = Net.connect(Number(port), hostname)
            for (const socket of [client, upstream]) {
              sockets.add(socket)
              socket.on("close", () => sockets.delete(socket))
              socket.on("error", () => socket.destroy())
            }
            client.pipe(upstream)
            upstream.pipe(client)
            client.on("close", () => upstream.destroy())
            upstream.on("close", () => client.destroy())
          })
          server.listen(0, "127.0.0.1", () => {
            const address = server.address() as Net.AddressInfo
            resolve({
              server,
              url: `http://127.0.0.1:${address.port}`,
              drop: () => {
                refusing = true
                for (const socket of sockets) socket.destroy()
              },
              restore: () => {
                refusing = false
              }
            })
          })
        })
    ),
    ({ server, drop }) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            drop()
            server.close(() => resolve())
          })
      )
  )
