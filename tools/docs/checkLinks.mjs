// Checks that every relative link in README.md and docs/**/*.md (the generated docs/api aside) points at a file
// that exists, and that a `#fragment` names a heading of the target as GitHub renders it. Links to the web are not
// followed: CI has no business depending on other sites. Run by `npm run docs`, after TypeDoc has written
// docs/api, so links into the API reference are checked too. Exits 1, listing each broken link.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const root = resolve(dirname(new URL(import.meta.url).pathname), "../..")

const markdownFiles = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return path === join(root, "docs/api") ? [] : markdownFiles(path)
    return entry.name.endsWith(".md") ? [path] : []
  })

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, "")
    .replace(/[^\p{L}\p{N} -]/gu, "")
    .replace(/ /g, "-")

/** The anchors a Markdown file offers: its headings, with GitHub's -1, -2 suffixes for repeats. */
const anchors = (path) => {
  const seen = new Map()
  const text = readFileSync(path, "utf8").replace(/```[\s\S]*?```/g, "")
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) => {
      const base = slug(match[1])
      const count = seen.get(base) ?? 0
      seen.set(base, count + 1)
      return count === 0 ? base : `${base}-${count}`
    })
  )
}

const broken = []
const files = [join(root, "README.md"), ...markdownFiles(join(root, "docs"))]
for (const file of files) {
  // Code blocks hold code, not links.
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "")
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z+.-]*:/i.test(target)) continue
    const [path, fragment] = target.split("#")
    const resolved = path === "" ? file : resolve(dirname(file), decodeURIComponent(path))
    const where = `${relative(root, file)}: ${target}`
    if (!existsSync(resolved)) broken.push(`${where} (no such file)`)
    else if (fragment !== undefined && resolved.endsWith(".md") && !statSync(resolved).isDirectory()) {
      if (!anchors(resolved).has(fragment)) broken.push(`${where} (no heading #${fragment})`)
    }
  }
}
if (broken.length > 0) {
  console.error(`broken links:\n  ${broken.join("\n  ")}`)
  process.exit(1)
}
console.log(`links: ${files.length} Markdown files, every relative link resolves`)
