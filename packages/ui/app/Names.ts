/**
 * The names of the users the views show, asked of the application's user directory in batches and kept for the
 * session: an id the directory does not know shows as itself.
 */
import { useEffect, useState } from "preact/hooks"
import * as Client from "./Client.ts"

const known = new Map<string, string | null>()
const listeners = new Set<() => void>()
let pending = new Set<string>()
let scheduled = false

const flush = (token: string) => {
  scheduled = false
  const ids = [...pending]
  pending = new Set()
  if (ids.length === 0) return
  void Client.names(token, ids).then((outcome) => {
    const found = outcome.ok ? new Map(outcome.value.names.map((entry) => [entry.userId, entry.name])) : new Map()
    for (const id of ids) known.set(id, found.get(id) ?? null)
    for (const listener of listeners) listener()
  })
}

/** The name of `userId`, once known; the id itself until then, and when the directory does not know it. */
export const nameOf = (userId: string): string => known.get(userId) ?? userId

/** Whether the directory named `userId`. */
export const isNamed = (userId: string): boolean => typeof known.get(userId) === "string"

/** Asks the directory for the names of `userIds` not yet asked, and re-renders when they arrive. */
export const useNames = (token: string, userIds: ReadonlyArray<string>): void => {
  const [, setVersion] = useState(0)
  useEffect(() => {
    const listener = () => setVersion((v) => v + 1)
    listeners.add(listener)
    return () => void listeners.delete(listener)
  }, [])
  useEffect(() => {
    for (const id of userIds) if (!known.has(id)) pending.add(id)
    if (pending.size > 0 && !scheduled) {
      scheduled = true
      queueMicrotask(() => flush(token))
    }
  }, [token, userIds.join(",")])
}
