import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as CanonicalJson from "../src/CanonicalJson.ts"
import * as Integrity from "../src/Integrity.ts"
import { canonicalParts } from "../src/internal/integrity/chain.ts"

/** The double whose IEEE 754 bits are `hex`, as RFC 8785 Appendix B lists its test values. */
const fromBits = (hex: string): number => {
  const view = new DataView(new ArrayBuffer(8))
  view.setBigUint64(0, BigInt(`0x${hex}`))
  return view.getFloat64(0)
}

describe("CanonicalJson (RFC 8785)", () => {
  it("section 3.2.2: the example with numbers, an escaped string and literals", () => {
    // The input as the RFC writes it, parsed by a JSON parser: escapes, 1E30, 4.50, a long decimal.
    const input = JSON.parse(`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
      "literals": [null, true, false]
    }`)
    assert.strictEqual(
      CanonicalJson.serialize(input),
      `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`
    )
  })

  it("section 3.2.3: members sorted by UTF-16 code units, not code points or locale", () => {
    const input = JSON.parse(`{
      "\\u20ac": "Euro Sign",
      "\\r": "Carriage Return",
      "\\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\\ud83d\\ude00": "Emoji: Grinning Face",
      "\\u0080": "Control",
      "\\u00f6": "Latin Small Letter O With Diaeresis"
    }`)
    const output = CanonicalJson.serialize(input)
    assert.strictEqual(
      output,
      `{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}`
    )
    // By code point, U+1F600 would sort after U+FB33; by UTF-16 its high surrogate U+D83D sorts before it.
    assert.isBelow(output.indexOf("😀"), output.indexOf("\ufb33"))
  })

  it("Appendix B: ECMAScript number serialization of the RFC's IEEE 754 test values", () => {
    const cases: ReadonlyArray<readonly [bits: string, text: string]> = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"]
    ]
    for (const [bits, text] of cases) assert.strictEqual(CanonicalJson.serialize(fromBits(bits)), text, bits)
  })

  it("Appendix B: NaN and Infinity are not JSON and are refused", () => {
    for (const bits of ["7fffffffffffffff", "7ff0000000000000"]) {
      assert.throws(() => CanonicalJson.serialize(fromBits(bits)), RangeError)
    }
  })

  it("escapes only the quotation mark, the reverse solidus and control characters, in their short forms", () => {
    assert.strictEqual(
      CanonicalJson.serialize('\b\t\n\f\r\u0000\u001f\u007f\u2028"\\/é😀'),
      `"\\b\\t\\n\\f\\r\\u0000\\u001f\u007f\u2028\\"\\\\/é😀"`
    )
  })

  it("refuses an unpaired surrogate, in a value or in a key (I-JSON)", () => {
    assert.throws(() => CanonicalJson.serialize("a\uD800b"), RangeError)
    assert.throws(() => CanonicalJson.serialize({ "\uDC00": 1 }), RangeError)
  })

  it("leaves out undefined members and writes undefined array elements as null, as JSON.stringify does", () => {
    assert.strictEqual(CanonicalJson.serialize({ b: undefined, a: [undefined, 1] }), `{"a":[null,1]}`)
  })

  it("property: the same value in any key order has one text, which parses back to the value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = CanonicalJson.serialize(value)
        const shuffled = JSON.parse(JSON.stringify(value, (_, v) => reverseKeys(v)))
        assert.strictEqual(CanonicalJson.serialize(shuffled), text)
        assert.deepStrictEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)))
        // Already canonical text is its own canonical form.
        assert.strictEqual(CanonicalJson.serialize(JSON.parse(text)), text)
      }),
      { numRuns: 500 }
    )
  })

  it("property: primitives are what JSON.stringify writes, for valid strings and finite numbers", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: "grapheme" }), fc.double({ noNaN: true, noDefaultInfinity: true })),
        (value) => {
          assert.strictEqual(CanonicalJson.serialize(value), JSON.stringify(value))
        }
      ),
      { numRuns: 1000 }
    )
  })

  it("property: the chain's hand-ordered record is exactly the RFC 8785 form of the record", () => {
    const uuid = fc.uuid()
    const text = fc.string({ unit: "grapheme", maxLength: 20 })
    fc.assert(
      fc.property(
        fc.record({
          eventId: uuid,
          eventType: text,
          aggregateType: text,
          aggregateId: uuid,
          userId: uuid,
          timestamp: fc.bigInt({ min: -(10n ** 17n), max: 10n ** 17n }).map(String),
          version: fc.integer({ min: 1, max: 1000 }),
          data: fc.jsonValue(),
          metadata: fc.dictionary(text, fc.jsonValue()),
          correlationId: fc.option(text, { nil: null }),
          causationId: fc.option(text, { nil: null }),
          streamVersion: fc.integer({ min: 1, max: 2 ** 31 - 1 })
        }),
        (fields) => {
          const { head, tail } = canonicalParts(fields)
          const expected = CanonicalJson.serialize(Integrity.record(fields))
          assert.strictEqual(`${head}${fields.streamVersion}${tail}`, expected)
          assert.strictEqual(Integrity.canonical(fields), expected)
        }
      ),
      { numRuns: 300 }
    )
  })
})

const reverseKeys = (value: unknown): unknown =>
  value !== null && typeof value === "object" && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).toReversed())
    : value
