/**
 * Which addresses a webhook may reach: the guard against server-side request forgery. An audit trail's webhooks are
 * configured by operators and carry business events, so a subscription must not become a way to reach the
 * deployment's own network: loopback, private, shared (CGNAT), link-local (with the cloud metadata service at
 * 169.254.169.254 and fd00:ec2::254), multicast, reserved and unspecified addresses are refused unless an allowlist
 * names them. The rule is applied to the address a connection actually goes to, after DNS resolution and at connect
 * time, so a hostname that resolves to a private address, or one whose DNS answer changes after the subscription was
 * checked, is refused as well as an address written in the URL.
 *
 * @since 0.1.0
 */
import { BlockList, isIP } from "node:net"

/** Ranges refused by default (RFC 6890 special-purpose registries, and the metadata addresses). */
export const refusedRanges: ReadonlyArray<string> = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "::/128",
  "::1/128",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "100::/64",
  "2001::/23",
  "2001:db8::/32",
  "fc00::/7",
  "fe80::/10",
  "ff00::/8"
]

/** An address guard: whether an address may be connected to. */
export interface Guard {
  /** Why the address is refused, or `undefined` when it may be reached. */
  readonly refusal: (address: string) => string | undefined
}

const addRange = (list: BlockList, range: string) => {
  const [network = "", prefix] = range.split("/")
  const family = isIP(network) === 6 ? "ipv6" : "ipv4"
  if (prefix === undefined) list.addAddress(network, family)
  else list.addSubnet(network, Number(prefix), family)
}

/**
 * The IPv4 address inside an IPv4-mapped or IPv4-compatible IPv6 address (`::ffff:127.0.0.1`, `::ffff:7f00:1`), so
 * that writing a private IPv4 address in IPv6 form does not pass the guard.
 */
const embeddedIpv4 = (address: string): string | undefined => {
  const lower = address.toLowerCase()
  const dotted = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/.exec(lower)
  if (dotted !== null && isIP(dotted[1]!) === 4) return dotted[1]
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower)
  if (hex !== null) {
    const high = Number.parseInt(hex[1]!, 16)
    const low = Number.parseInt(hex[2]!, 16)
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  return undefined
}

/** Checks a CIDR range or single address of an allowlist; a malformed one is a configuration defect. */
const checkRange = (range: string): string => {
  const [network = "", prefix] = range.split("/")
  const family = isIP(network)
  const max = family === 6 ? 128 : 32
  if (family === 0 || (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= max))) {
    throw new Error(`WebhookAddress: ${JSON.stringify(range)} is not an address or a CIDR range`)
  }
  return range
}

/**
 * A guard that refuses the special-purpose ranges, except those in `allow` (CIDR ranges or addresses, such as
 * `127.0.0.0/8` for tests or `10.1.0.0/16` for an internal deployment).
 */
export const make = (allow: ReadonlyArray<string> = []): Guard => {
  const refused = new BlockList()
  for (const range of refusedRanges) addRange(refused, range)
  const allowed = new BlockList()
  for (const range of allow) addRange(allowed, checkRange(range))
  const check = (address: string, family: "ipv4" | "ipv6") =>
    allowed.check(address, family) ? undefined : refused.check(address, family) ? address : undefined
  return {
    refusal: (address) => {
      const family = isIP(address)
      if (family === 0) return `${address} is not an IP address`
      const v4 = family === 6 ? embeddedIpv4(address) : address
      const hit = v4 !== undefined ? check(v4, "ipv4") : check(address, "ipv6")
      return hit === undefined
        ? undefined
        : `${address} is a loopback, private, link-local or reserved address, and not in the allowlist`
    }
  }
}
