/**
 * Signing as the Standard Webhooks specification defines it, so that a receiver verifies a delivery with any of its
 * libraries (`standardwebhooks` on npm among them): the signed content is `<webhook-id>.<webhook-timestamp>.<body>`,
 * signed with HMAC-SHA256 under each secret, and `webhook-signature` lists one `v1,<base64>` per secret, separated by
 * spaces. During a key rotation a subscription has two secrets, and both sign: receivers that know either verify.
 *
 * @since 0.1.0
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"

/** The prefix of a secret's text form, as the specification writes it: `whsec_<base64 of 24 to 64 bytes>`. */
export const secretPrefix = "whsec_"

/** The headers of a signed delivery. */
export interface Headers {
  readonly "webhook-id": string
  readonly "webhook-timestamp": string
  readonly "webhook-signature": string
}

const secretPattern = /^whsec_[A-Za-z0-9+/]+={0,2}$/

/** Whether `text` is a secret in the specification's form, with 24 to 64 bytes of key. */
export const isSecret = (text: string): boolean => {
  if (!secretPattern.test(text)) return false
  const bytes = Buffer.from(text.slice(secretPrefix.length), "base64").length
  return bytes >= 24 && bytes <= 64
}

/** A new secret: 32 random bytes. */
export const generateSecret = (): string => `${secretPrefix}${randomBytes(32).toString("base64")}`

/** One signature: `v1,` and the base64 HMAC-SHA256 of `<id>.<timestamp>.<body>` under `secret`. */
export const signature = (secret: string, id: string, timestamp: number, body: string): string =>
  `v1,${createHmac("sha256", Buffer.from(secret.slice(secretPrefix.length), "base64"))
    .update(`${id}.${timestamp}.${body}`)
    .digest("base64")}`

/** The headers of a delivery of `body` under `id`, at `timestamp` (seconds since the epoch), signed by every secret. */
export const sign = (secrets: ReadonlyArray<string>, id: string, timestamp: number, body: string): Headers => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": secrets.map((secret) => signature(secret, id, timestamp, body)).join(" ")
})

/** Whether one of the signatures in `header` is `secret`'s over the content, compared in constant time. */
export const verify = (secret: string, headers: Headers, body: string): boolean => {
  const expected = Buffer.from(
    signature(secret, headers["webhook-id"], Number(headers["webhook-timestamp"]), body).slice(3)
  )
  return headers["webhook-signature"].split(" ").some((entry) => {
    if (!entry.startsWith("v1,")) return false
    const given = Buffer.from(entry.slice(3))
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}
