/**
 * Hostile API input: the battery's place for the HTTP part of issue 7, to be written once `@annal/http` is done.
 *
 * What it is to check, the same way as the rest of the battery (cases and failures recorded with
 * `support/Battery.ts`, each promise shown to catch a broken variant):
 * - 5,000 generated filters, cursors, page sizes and time ranges (fast-check, hostile strings from
 *   `support/Payloads.ts`): every answer is a typed 400 or a success, never a 500, and each request is bounded in time
 *   by a statement timeout; broken variants: a handler that lets a raw error through, one without the timeout;
 * - a matrix of role × endpoint × object: no token reads data it must not; broken variant: a handler that skips the
 *   authorization check.
 */
import { describe, it } from "@effect/vitest"

describe("reliability: hostile API input", () => {
  it.todo("5,000 generated filters, cursors, page sizes and time ranges: typed 400s, never a 500, each bounded")
  it.todo("role × endpoint × object: no token reads data it must not")
})
