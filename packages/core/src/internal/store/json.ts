/**
 * Checks that a value survives the trip through PostgreSQL's jsonb unchanged, before anything is written.
 *
 * jsonb refuses `\u0000` and unpaired surrogates (a raw driver error after the fact), and JSON itself has no NaN,
 * Infinity, undefined or bigint. An integer beyond 2^53 has already lost precision in JavaScript, so storing it
 * would record a number nobody sent. A value whose JSON is too large to be read back in one row is refused too.
 */

import type * as Schema from "effect/Schema"

/** How deep payloads may nest: far beyond business data, well within what PostgreSQL parses on its stack. */
export const maxDepth = 512

/**
 * How large a value's JSON may be, in UTF-8 bytes. jsonb prints a value in at most 1.5 times its JSON (a space after
 * every comma and colon), so an event whose data and metadata are each within this still reads back as one row under
 * the 16 MiB message limit of `@effect/sql-pg`'s default client. Without it a write could store a row that the same
 * client can never read: 5 MB of control characters is 30 MB of JSON.
 */
export const maxBytes = 5 * 1024 * 1024

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

/** The UTF-8 length of a string's JSON, quotes and escapes included; its surrogates are paired (checked before). */
const jsonStringBytes = (value: string): number => {
  let bytes = 2
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index)
    if (code === 0x22 || code === 0x5c) bytes += 2
    else if (code < 0x20)
      bytes += code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d ? 2 : 6
    else if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4
      index++
    } else bytes += 3
  }
  return bytes
}

/** The first problem found in `value`, walking it without recursion so that deep values cannot overflow the stack. */
export const findProblem = (value: unknown, root: string): JsonProblem | undefined => {
  const stack: Array<readonly [value: unknown, path: string, depth: number]> = [[value, root, 0]]
  // The size of the value's JSON so far, counted as the walk goes.
  let bytes = 0
  const tooLarge = (): JsonProblem => ({ path: root, reason: `its JSON is larger than ${maxBytes} bytes` })
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop()!
    if (current === null || typeof current === "boolean") {
      bytes += current === false ? 5 : 4
      continue
    }
    if (typeof current === "string") {
      const reason = describeString(current)
      if (reason !== undefined) return { path, reason }
      bytes += jsonStringBytes(current)
      if (bytes > maxBytes) return tooLarge()
      continue
    }
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return { path, reason: `${current} is not a JSON number` }
      if (Number.isInteger(current) && !Number.isSafeInteger(current)) {
        return { path, reason: `${current} is beyond 2^53 and cannot be kept exactly; send it as a string` }
      }
      bytes += String(current).length
      continue
    }
    if (typeof current !== "object") return { path, reason: `a ${typeof current} is not a JSON value` }
    if (depth >= maxDepth) return { path, reason: `nesting deeper than ${maxDepth} levels` }
    if (Array.isArray(current)) {
      // The brackets and the commas.
      bytes += 1 + Math.max(1, current.length)
      if (bytes > maxBytes) return tooLarge()
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
    bytes += 2
    for (let index = entries.length - 1; index >= 0; index--) {
      const [key, child] = entries[index]!
      const keyReason = describeString(key)
      if (keyReason !== undefined) return { path: `${path}.${key}`, reason: `key ${keyReason}` }
      // JSON leaves out a property whose value is undefined, as an absent optional key reads back.
      if (child === undefined) continue
      // The key, its colon and a comma (one too many for the last member: the count stays an upper bound).
      bytes += jsonStringBytes(key) + 2
      stack.push([child, `${path}.${key}`, depth + 1])
    }
    if (bytes > maxBytes) return tooLarge()
  }
  return undefined
}

/**
 * Whether a value is JSON: what a driver gives for a jsonb column always is, and this checks it in a plain loop,
 * several times faster than decoding with `Schema.Json`. Cycles cannot occur in parsed JSON; nesting is bounded by
 * what PostgreSQL stored.
 */
export const isJson = (value: unknown): value is Schema.Json => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true
    case "number":
      return Number.isFinite(value)
    case "object": {
      if (value === null) return true
      if (Array.isArray(value)) {
        for (const item of value) if (!isJson(item)) return false
        return true
      }
      const prototype: unknown = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) return false
      // `for in` over a plain object visits its own keys only, without the array `Object.values` would build.
      const record = value as Readonly<Record<string, unknown>>
      for (const key in record) if (!isJson(record[key])) return false
      return true
    }
    default:
      return false
  }
}
