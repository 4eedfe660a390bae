/**
 * Checks that a value survives the trip through PostgreSQL's jsonb unchanged, before anything is written.
 *
 * jsonb refuses `\u0000` and unpaired surrogates (a raw driver error after the fact), and JSON itself has no NaN,
 * Infinity, undefined or bigint. An integer beyond 2^53 has already lost precision in JavaScript, so storing it
 * would record a number nobody sent.
 */

/** How deep payloads may nest: far beyond business data, well within what PostgreSQL parses on its stack. */
export const maxDepth = 512

/** Where a value is not storable as JSON, and why; `undefined` when it is. */
export interface JsonProblem {
  readonly path: string
  readonly reason: string
}

// A NUL, or a surrogate that is not part of a pair. Matching the control character is the point.
// oxlint-disable-next-line no-control-regex
const badString = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const describeString = (value: string): string | undefined =>
  badString.test(value)
    ? value.includes("\u0000")
      ? "contains \\u0000, which PostgreSQL cannot store in jsonb"
      : "contains an unpaired UTF-16 surrogate, which is not valid Unicode"
    : undefined

/** The first problem found in `value`, walking it without recursion so that deep values cannot overflow the stack. */
export const findProblem = (value: unknown, root: string): JsonProblem | undefined => {
  const stack: Array<readonly [value: unknown, path: string, depth: number]> = [[value, root, 0]]
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop()!
    if (current === null || typeof current === "boolean") continue
    if (typeof current === "string") {
      const reason = describeString(current)
      if (reason !== undefined) return { path, reason }
      continue
    }
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return { path, reason: `${current} is not a JSON number` }
      if (Number.isInteger(current) && !Number.isSafeInteger(current)) {
        return { path, reason: `${current} is beyond 2^53 and cannot be kept exactly; send it as a string` }
      }
      continue
    }
    if (typeof current !== "object") return { path, reason: `a ${typeof current} is not a JSON value` }
    if (depth >= maxDepth) return { path, reason: `nesting deeper than ${maxDepth} levels` }
    if (Array.isArray(current)) {
      for (let index = current.length - 1; index >= 0; index--) {
        stack.push([current[index], `${path}[${index}]`, depth + 1])
      }
      continue
    }
    const prototype = Object.getPrototypeOf(current)
    if (prototype !== Object.prototype && prototype !== null) {
      return { path, reason: "only plain objects are JSON values; encode it with its schema first" }
    }
    const entries = Object.entries(current)
    for (let index = entries.length - 1; index >= 0; index--) {
      const [key, child] = entries[index]!
      const keyReason = describeString(key)
      if (keyReason !== undefined) return { path: `${path}.${key}`, reason: `key ${keyReason}` }
      // JSON leaves out a property whose value is undefined, as an absent optional key reads back.
      if (child === undefined) continue
      stack.push([child, `${path}.${key}`, depth + 1])
    }
  }
  return undefined
}
