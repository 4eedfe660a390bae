/**
 * The address guard: loopback, private, shared, link-local and metadata addresses are refused, in IPv4, IPv6 and
 * IPv4-mapped IPv6 forms; public addresses pass; an allowlist lets its ranges through and nothing else.
 */
import { assert, describe, it } from "@effect/vitest"
import * as WebhookAddress from "../src/WebhookAddress.ts"

const refused = [
  "127.0.0.1",
  "127.255.0.9",
  "10.1.2.3",
  "172.16.0.1",
  "172.31.255.255",
  "192.168.1.1",
  "169.254.169.254",
  "100.64.0.1",
  "0.0.0.0",
  "224.0.0.1",
  "255.255.255.255",
  "::",
  "::1",
  "fe80::1",
  "fc00::1",
  "fd00:ec2::254",
  "::ffff:127.0.0.1",
  "::ffff:7f00:1",
  "::ffff:a9fe:a9fe",
  "::ffff:10.0.0.1"
]
const allowed = ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]

describe("WebhookAddress", () => {
  it("refuses loopback, private, link-local and metadata addresses, in every form", () => {
    const guard = WebhookAddress.make()
    for (const address of refused) assert.isDefined(guard.refusal(address), address)
    for (const address of allowed) assert.isUndefined(guard.refusal(address), address)
    assert.isDefined(guard.refusal("example.com"))
  })

  it("lets an allowlist's ranges through, and only them", () => {
    const guard = WebhookAddress.make(["127.0.0.0/8", "10.1.0.0/16"])
    assert.isUndefined(guard.refusal("127.0.0.1"))
    assert.isUndefined(guard.refusal("::ffff:127.0.0.1"))
    assert.isUndefined(guard.refusal("10.1.2.3"))
    assert.isDefined(guard.refusal("10.2.0.1"))
    assert.isDefined(guard.refusal("169.254.169.254"))
    assert.isDefined(guard.refusal("::1"))
  })

  it("refuses a malformed allowlist entry", () => {
    assert.throws(() => WebhookAddress.make(["localhost"]))
    assert.throws(() => WebhookAddress.make(["10.0.0.0/33"]))
  })
})
