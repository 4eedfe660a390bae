/**
 * `annal catalog`: the catalog of a registry named by `--registry <module>#<export>`, as Markdown on standard output
 * or HTML in a file, and a clear error (exit code 1) for a module or export that holds no registry.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { run } from "./support/runCli.ts"

const fixtures = join(import.meta.dirname, "../../core/test/support/Fixtures.ts")

describe("annal catalog", () => {
  it("prints the registry's types and versions as Markdown, with what each upcast added", async () => {
    const result = await run(["catalog", "--registry", `${fixtures}#OrganizationEvents`])
    assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    assert.include(result.stdout, "# Event catalog")
    assert.include(result.stdout, "| `organization.created` | `organization` | 2 |")
    assert.include(result.stdout, "## `organization.gst.added`")
    assert.include(result.stdout, "### Version 2\n\nUpcast from the version before: added country.")
    assert.include(result.stdout, '"$schema": "https://json-schema.org/draft/2020-12/schema"')
  }, 60_000)

  it("writes a standalone HTML page to --output", async () => {
    const folder = mkdtempSync(join(tmpdir(), "annal-catalog-"))
    try {
      const out = join(folder, "catalog.html")
      writeFileSync(out, "an older catalog")
      const result = await run([
        "catalog",
        "--registry",
        `${fixtures}#OrganizationEvents`,
        "--format",
        "html",
        "--title",
        "Books <& more>",
        "--output",
        out
      ])
      assert.strictEqual(result.code, 0, result.stdout + result.stderr)
      assert.include(result.stderr, "Wrote the catalog of 4 event types")
      assert.deepStrictEqual(readdirSync(folder), ["catalog.html"], "replaced in place, no temporary file left")
      const page = readFileSync(out, "utf8")
      assert.match(page, /^<!doctype html>/)
      assert.include(page, "<h1>Books &lt;&amp; more&gt;</h1>")
      assert.include(page, '<h2 id="organization.created"><code>organization.created</code></h2>')
      assert.include(page, "&quot;country&quot;")
    } finally {
      rmSync(folder, { recursive: true, force: true })
    }
  }, 60_000)

  it("exits with code 1 naming what is wrong when the export is no registry, or the module does not load", async () => {
    const wrongExport = await run(["catalog", "--registry", `${fixtures}#OrganizationCreated`])
    assert.strictEqual(wrongExport.code, 1)
    assert.include(wrongExport.stdout + wrongExport.stderr, "exports no event registry named OrganizationCreated")
    const missing = await run(["catalog", "--registry", "./no/such/module.js#Events"])
    assert.strictEqual(missing.code, 1)
    assert.include(missing.stdout + missing.stderr, "cannot import ./no/such/module.js")
  }, 60_000)
})
