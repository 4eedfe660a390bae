/**
 * Hostile payloads for the store, generated with fast-check, and the equality that says whether one read back as it
 * was sent.
 *
 * The leaves are what breaks JSON pipelines: `\u0000`, lone surrogates, byte-order marks and line separators, NaN,
 * the infinities, -0, integers beyond 2^53, bigints, `undefined`, symbols, dates and class instances. Keys include
 * `__proto__`, `constructor`, `prototype` and the empty string; objects are built with `Object.fromEntries`, which
 * makes such keys own properties as JSON.parse does. Besides the generated trees there are deep ones (up to 10,000
 * levels, as arrays, objects or both), and big strings of up to 5 MB in the corpus.
 *
 * `limitCases` are built to fall on either side of the documented limits (docs/concepts.md: nesting beyond 512, data or
 * metadata over 5 MiB of JSON), each with what the store must do with it, so that every chunk of a run reaches them.
 */
import type * as Schema from "effect/Schema"
import fc from "fast-check"
import type * as Event from "../../../packages/core/src/Event.ts"

/** What the store must do with a case built around a documented limit: store it, or refuse it for that limit. */
export type Expectation = "stored" | "too deep" | "too large"

/** One generated case: the payload, the metadata sent with it, and what must happen to it if that is known. */
export interface Payload {
  readonly data: unknown
  readonly metadata?: Event.EventMetadata
  readonly expect?: Expectation
}

/**
 * The limits as docs/concepts.md documents them, written out here rather than imported, so that a store whose limits
 * drifted from the documented ones fails.
 */
export const documentedMaxDepth = 512
export const documentedMaxBytes = 5 * 1024 * 1024

// Characters that JSON, SQL or PostgreSQL treat specially, and that can be stored.
const specialUnits = [
  "\u0001",
  "\u001f",
  "\u007f",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ufffe",
  "\uffff",
  "\ud83d\ude00",
  '"',
  "\\",
  "'",
  "\n",
  "\r",
  "\t",
  "\b",
  "\f",
  "$",
  "%",
  "{",
  "}",
  "?",
  "::"
]

// What jsonb cannot store: a NUL, and halves of surrogate pairs on their own.
const unstorableUnit = fc.oneof(
  fc.constantFrom("\u0000", "\ud800", "\udbff", "\udc00", "\udfff"),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code))
)

/**
 * One code point of any kind, a special character, or now and then one that cannot be stored: rare enough that
 * most payloads are stored and read back, common enough that thousands are refused.
 */
const unit = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom(...specialUnits) },
  { weight: 60, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  { weight: 80, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: unstorableUnit }
)

const nastyStrings = [
  "",
  " ",
  "\\u0000",
  "'; DROP TABLE events; --",
  "$1",
  "${x}",
  "%s%s%n",
  "null",
  "undefined",
  "NaN",
  "-0",
  "9007199254740993",
  '{"__proto__": {"polluted": true}}',
  "\ud800\udc00",
  "e\u0301",
  "\u202e\u0041\u0042"
]

/** A string of hostile units, or one of the classics. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom(...nastyStrings) }
)

/** Numbers JSON cannot keep, or keeps only just. */
const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  { weight: 12, arbitrary: fc.double({ min: -1e15, max: 1e15 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 10, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(Number) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      2 ** 53,
      2 ** 53 + 2,
      -(2 ** 53),
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      Number.EPSILON,
      1e21,
      1e-7,
      0.1 + 0.2
    )
  }
)

/** Values that are not JSON at all. */
const notJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  fc.bigInt(),
  fc.constant(Symbol("payload")),
  fc.constant(new Date(0)),
  fc.constant(new Map([["a", 1]])),
  fc.constant(() => 1)
)

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: hostileString },
  { weight: 9, arbitrary: hostileNumber },
  { weight: 3, arbitrary: fc.constantFrom(true, false, null) },
  { weight: 1, arbitrary: notJson }
)

/** Keys that objects and JSON handle specially. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: hostileString },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "__proto__",
      "constructor",
      "prototype",
      "toString",
      "valueOf",
      "hasOwnProperty",
      "__defineGetter__",
      "toJSON",
      "",
      " ",
      "0",
      "-1",
      "length",
      "$ref",
      "a.b"
    )
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }
)

const { tree } = fc.letrec<{ tree: unknown; array: ReadonlyArray<unknown>; object: Readonly<Record<string, unknown>> }>(
  (tie) => ({
    tree: fc.oneof({ depthSize: "small", maxDepth: 6 }, leaf, tie("array"), tie("object")),
    array: fc.array(tie("tree"), { maxLength: 6 }),
    object: fc.array(fc.tuple(hostileKey, tie("tree")), { maxLength: 6 }).map((entries) => Object.fromEntries(entries))
  })
)

/** A value nested `depth` levels deep, built without recursion. */
const nest = (depth: number, shape: "array" | "object" | "mixed", leafValue: unknown): unknown => {
  let value = leafValue
  for (let level = 0; level < depth; level++) {
    const asArray = shape === "array" || (shape === "mixed" && level % 2 === 0)
    value = asArray ? [value] : Object.fromEntries([["__proto__", value]])
  }
  return value
}

/** Deep values: up to 10,000 levels, and around the store's limit of 512. */
export const deep: fc.Arbitrary<unknown> = fc
  .record({
    depth: fc.oneof(
      fc.integer({ min: 1, max: 10_000 }),
      fc.constantFrom(10_000, 511, 512, 513),
      fc.integer({ min: 1, max: 600 })
    ),
    shape: fc.constantFrom("array" as const, "object" as const, "mixed" as const),
    leaf
  })
  .map(({ depth, shape, leaf }) => nest(depth, shape, leaf))

// Metadata is typed, so its values are JSON as far as the compiler knows: hostile strings and numbers, nested.
const { json } = fc.letrec<{ json: Schema.Json; array: Schema.JsonArray; object: Schema.JsonObject }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    hostileString,
    hostileNumber,
    fc.constantFrom(true, false, null),
    tie("array"),
    tie("object")
  ),
  array: fc.array(tie("json"), { maxLength: 4 }),
  object: fc.array(fc.tuple(hostileKey, tie("json")), { maxLength: 4 }).map((entries) => Object.fromEntries(entries))
}))

const metadata: fc.Arbitrary<Event.EventMetadata> = fc.record(
  {
    reason: hostileString,
    correlationId: hostileString,
    extras: fc.array(fc.tuple(hostileKey, json), { maxLength: 4 }).map((entries) => Object.fromEntries(entries))
  },
  { requiredKeys: [] }
)

/** A payload: mostly trees of hostile leaves, some deep ones, sometimes with hostile metadata. */
export const payload: fc.Arbitrary<Payload> = fc
  .record({
    data: fc.oneof({ weight: 18, arbitrary: tree }, { weight: 1, arbitrary: deep }, { weight: 1, arbitrary: leaf }),
    metadata: fc.option(metadata, { freq: 4 })
  })
  .map(({ data, metadata }) => (metadata === null ? { data } : { data, metadata }))

// Patterns that are stored as they are, one byte of JSON or several: their JSON size is exactly computable.
const storablePatterns = ["x", "ab", "\u00e9", "\u2713 ", '"\\', "\ud83d\ude00", "\u0001", "\n\t"] as const

/** A string of `pattern` whose JSON (quotes and escapes included) is as close as it gets to `jsonBytes` bytes. */
const stringOfJsonSize = (pattern: string, jsonBytes: number): string => {
  const unit = Buffer.byteLength(JSON.stringify(pattern)) - 2
  return pattern.repeat(Math.max(1, Math.floor((jsonBytes - 2) / unit)))
}

/** Cases around the documented limits, in data or in metadata: one of each kind, the same for a given seed. */
const limitCase: fc.Arbitrary<ReadonlyArray<Payload>> = fc
  .record({
    shallow: fc.integer({ min: 1, max: documentedMaxDepth }),
    tooDeep: fc.oneof(fc.constant(documentedMaxDepth + 1), fc.integer({ min: documentedMaxDepth + 1, max: 10_000 })),
    shape: fc.constantFrom("array" as const, "object" as const, "mixed" as const),
    small: fc.integer({ min: 1_000_000, max: 5_000_000 }),
    // The refused ones up to 1.5 MiB over, and 6 bytes over: a size counted short shows at the edge.
    large: fc.oneof(
      fc.constant(documentedMaxBytes + 6),
      fc.integer({ min: documentedMaxBytes + 6, max: documentedMaxBytes + 1_572_864 })
    ),
    smallPattern: fc.constantFrom(...storablePatterns),
    largePattern: fc.constantFrom(...storablePatterns),
    inMetadata: fc.boolean()
  })
  .map(({ shallow, tooDeep, shape, small, large, smallPattern, largePattern, inMetadata }) => {
    const deepValue = nest(tooDeep, shape, null) as Schema.Json
    // `{"text":…}` around the string adds 9 bytes, `{"reason":…}` 11: both refused, whatever the store counts them as.
    const largeText = stringOfJsonSize(largePattern, large)
    return [
      { data: nest(shallow, shape, "leaf"), expect: "stored" },
      inMetadata
        ? { data: { ok: true }, metadata: { extras: { deep: deepValue } }, expect: "too deep" }
        : { data: deepValue, expect: "too deep" },
      { data: { text: stringOfJsonSize(smallPattern, small) }, expect: "stored" },
      inMetadata
        ? { data: { ok: true }, metadata: { reason: largeText }, expect: "too large" }
        : { data: { text: largeText }, expect: "too large" }
    ]
  })

/** Two sets of cases around the documented limits, for one chunk of a run: the same for the same seed. */
export const limitCases = (seed: number): ReadonlyArray<Payload> => fc.sample(limitCase, { numRuns: 2, seed }).flat()

/** Payloads worth sending every time, whatever the seed: the classics, named. */
export const corpus: ReadonlyArray<Payload> = [
  { data: JSON.parse('{"__proto__": {"polluted": true}}') },
  { data: Object.fromEntries([["constructor", { prototype: { polluted: true } }]]) },
  { data: { "": "", " ": " " } },
  { data: null },
  { data: [null, { a: null }] },
  { data: "\u0000" },
  { data: { text: "before\u0000after" } },
  { data: { lone: "\ud800" } },
  { data: { lone: "\udfff" } },
  { data: { "\ud800": 1 } },
  { data: { pair: "\ud83d\ude00" } },
  { data: { n: Number.NaN } },
  { data: { n: Number.POSITIVE_INFINITY } },
  { data: { n: -0 } },
  { data: { n: 2 ** 53 + 2 } },
  { data: { n: Number.MAX_SAFE_INTEGER } },
  { data: { n: 12345678901234567890n } },
  { data: [undefined] },
  { data: { a: undefined, b: 1 } },
  { data: nest(10_000, "array", 1) },
  { data: nest(10_000, "object", "leaf") },
  { data: nest(512, "mixed", null) },
  { data: nest(513, "mixed", null) },
  { data: { text: "x".repeat(5_000_000) } },
  { data: { text: "\u0001".repeat(5_000_000) } },
  { data: { text: "\u00e9".repeat(2_500_000) } },
  { data: { ok: true }, metadata: { extras: Object.fromEntries([["__proto__", { polluted: true }]]) } },
  { data: { ok: true }, metadata: { reason: "\u0000" } }
]

/**
 * Whether `stored` is the JSON value `sent` denotes: properties whose value is `undefined` are absent, as JSON
 * leaves them out; numbers compare with `===`, so -0 and 0 are one number, as they are in JSON and in `numeric`;
 * prototypes do not matter, own keys do. Walks without recursion, for the deep ones.
 */
export const sameJson = (sent: unknown, stored: unknown): boolean => {
  const stack: Array<readonly [unknown, unknown]> = [[sent, stored]]
  while (stack.length > 0) {
    const [a, b] = stack.pop()!
    if (a === null || typeof a !== "object" || b === null || typeof b !== "object") {
      if (a !== b) return false
      continue
    }
    if (Array.isArray(a) || Array.isArray(b)) {
      if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
      for (let index = 0; index < a.length; index++) stack.push([a[index], b[index]])
      continue
    }
    const sentEntries = Object.entries(a).filter(([, value]) => value !== undefined)
    const storedEntries = new Map(Object.entries(b))
    if (sentEntries.length !== storedEntries.size) return false
    for (const [key, value] of sentEntries) {
      if (!storedEntries.has(key)) return false
      stack.push([value, storedEntries.get(key)])
    }
  }
  return true
}
