/**
 * The built UI stays small and offline: its gzipped scripts and styles fit the budget written in the package
 * (`sizeBudget`), the page loads nothing from another origin, and no stub of a Node module was bundled. It reads
 * the build that `npm ci` (through `prepare`) or `npm run build` made.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import { assetsDirectory, sizeBudget } from "../src/index.ts"

const files = (extension: string): ReadonlyArray<string> =>
  Fs.readdirSync(Path.join(assetsDirectory, "assets"))
    .filter((name) => name.endsWith(extension))
    .map((name) => Path.join(assetsDirectory, "assets", name))

const gzipped = (paths: ReadonlyArray<string>): number =>
  paths.reduce((total, path) => total + Zlib.gzipSync(Fs.readFileSync(path), { level: 9 }).length, 0)

describe("the built UI", () => {
  it("fits its size budget, gzipped", () => {
    const scripts = gzipped(files(".js"))
    const styles = gzipped(files(".css"))
    assert.isAbove(scripts, 0, "no script was built")
    assert.isAtMost(scripts, sizeBudget.scripts, `scripts: ${scripts} bytes gzipped`)
    assert.isAtMost(styles, sizeBudget.styles, `styles: ${styles} bytes gzipped`)
    assert.isAtMost(scripts + styles, sizeBudget.total, `total: ${scripts + styles} bytes gzipped`)
  })

  it("loads nothing from another origin, and holds no stub of a Node module", () => {
    const page = Fs.readFileSync(Path.join(assetsDirectory, "index.html"), "utf8")
    const references = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!)
    assert.isAbove(references.length, 0)
    for (const reference of references) assert.match(reference, /^(\.\/assets\/|data:)/, reference)
    assert.notInclude(page, "<script>", "an inline script would need a looser Content Security Policy")
    for (const script of files(".js")) {
      const text = Fs.readFileSync(script, "utf8")
      assert.notInclude(text, "__vite-browser-external", `${script} bundles a stub of a Node module`)
      assert.notMatch(text, /import\s*\(?["']https?:/, `${script} imports from another origin`)
    }
  })
})
