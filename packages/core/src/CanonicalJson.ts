/**
 * The JSON Canonicalization Scheme (RFC 8785): one text per JSON value, whatever the order its object keys were
 * stored in, so that a hash or a signature over a value can be recomputed from any copy of it. PostgreSQL's jsonb
 * reorders keys (shortest first), so the hash chain and the signed digests hash this form, never the stored text.
 *
 * The rules: no whitespace; object members sorted by their keys' UTF-16 code units, recursively; numbers as
 * ECMAScript serializes them (`Number.prototype.toString`: shortest round-trip digits, `1e+21`, `-0` as `0`);
 * strings with only `"`, `\` and the control characters below U+0020 escaped (`\b \t \n \f \r` in short form,
 * the others as `\u00xx`), everything else as is.
 *
 * @since 0.1.0
 */
import type * as Schema from "effect/Schema"

/**
 * The canonical text of a JSON value. Members whose value is `undefined` are left out and `undefined` array
 * elements become `null`, as `JSON.stringify` does, so the form is that of the JSON text the value is sent as.
 * Throws a `RangeError` for what I-JSON (RFC 7493) excludes: a number that is not finite, a string with an
 * unpaired surrogate, or anything that is not JSON (a value the caller has checked, typed `unknown`, is accepted
 * for that reason); Annal refuses such values before they are stored.
 */
export const serialize = (value: Schema.Json | unknown): string => serializeValue(value)

/** The canonical text of a JSON value, as UTF-8 bytes: what gets hashed or signed. */
export const toBytes = (value: Schema.Json | unknown): Uint8Array => encoder.encode(serialize(value))

/** Orders object keys as RFC 8785 requires: by UTF-16 code units, which is what `<` on strings compares. */
export const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const encoder = new TextEncoder()

// The characters RFC 8785 escapes: the control characters, the quotation mark and the reverse solidus. Tested
// before replacing, as most strings have none and a test is much cheaper than a replace.
// oxlint-disable-next-line no-control-regex
const mustEscape = /[\u0000-\u001F"\\]/g
// oxlint-disable-next-line no-control-regex
const hasEscape = /[\u0000-\u001F"\\]/

const shortEscapes: Readonly<Record<string, string>> = {
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
  '"': '\\"',
  "\\": "\\\\"
}

const escapeChar = (char: string): string =>
  shortEscapes[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`

/** A string literal: RFC 8785, section 3.2.2.2. */
export const serializeString = (value: string): string => {
  // isWellFormed: no unpaired surrogate, checked natively.
  if (!value.isWellFormed()) throw new RangeError("RFC 8785: a string has an unpaired UTF-16 surrogate")
  return hasEscape.test(value) ? `"${value.replace(mustEscape, escapeChar)}"` : `"${value}"`
}

/** A number: RFC 8785, section 3.2.2.3, which is ECMAScript's own serialization of doubles. */
export const serializeNumber = (value: number): string => {
  if (!Number.isFinite(value)) throw new RangeError(`RFC 8785: ${value} is not a JSON number`)
  // String(-0) is already "0"; the check is for a reader who wonders.
  return Object.is(value, -0) ? "0" : String(value)
}

// Written for speed: the verifier runs it over every event. Strings are built by concatenation rather than arrays
// joined, which V8 does without the garbage of intermediate arrays.
const serializeValue = (value: unknown): string => {
  switch (typeof value) {
    case "string":
      return serializeString(value)
    case "number":
      return serializeNumber(value)
    case "boolean":
      return value ? "true" : "false"
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        let out = "["
        for (let index = 0; index < value.length; index++) {
          const item: unknown = value[index]
          out += `${index === 0 ? "" : ","}${item === undefined ? "null" : serializeValue(item)}`
        }
        return `${out}]`
      }
      if (!isPlainObject(value)) throw new RangeError("RFC 8785: only plain objects are JSON objects")
      let out = "{"
      let first = true
      // The default sort compares strings by UTF-16 code units, which is the order RFC 8785 asks for.
      for (const key of Object.keys(value).toSorted()) {
        const member = value[key]
        if (member === undefined) continue
        out += `${first ? "" : ","}${serializeString(key)}:${serializeValue(member)}`
        first = false
      }
      return `${out}}`
    }
    default:
      throw new RangeError(`RFC 8785: a ${typeof value} is not a JSON value`)
  }
}

const isPlainObject = (value: object): value is { readonly [key: string]: unknown } => {
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}
