/**
 * A list read a page at a time, as the API pages it (an opaque `nextCursor`), for histories of any length: the view
 * shows what it has read and reads the next page when asked or when the end of the list scrolls into sight.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import type * as Client from "./Client.ts"

/** One page: its items and where the next starts. */
export interface Page<A, Extra> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
  readonly extra?: Extra
}

/** The list so far. */
export interface Paged<A, Extra> {
  readonly items: ReadonlyArray<A>
  readonly extra: Extra | undefined
  readonly loading: boolean
  readonly done: boolean
  readonly problem: Client.Problem | undefined
  readonly more: () => void
}

/** Reads `fetchPage` from the start whenever `key` changes. */
export const usePaged = <A, Extra = never>(
  key: string,
  fetchPage: (cursor: string | undefined) => Promise<Client.Outcome<Page<A, Extra>>>
): Paged<A, Extra> => {
  const [state, setState] = useState<Omit<Paged<A, Extra>, "more"> & { readonly cursor: string | undefined }>({
    items: [],
    extra: undefined,
    loading: true,
    done: false,
    problem: undefined,
    cursor: undefined
  })
  const generation = useRef(0)
  const busy = useRef(false)
  const load = useCallback(
    (cursor: string | undefined, reset: boolean) => {
      if (busy.current && !reset) return
      busy.current = true
      const mine = ++generation.current
      setState((s) => ({ ...s, loading: true }))
      void fetchPage(cursor).then((outcome) => {
        if (mine !== generation.current) return
        busy.current = false
        setState((s) =>
          outcome.ok
            ? {
                items: reset ? outcome.value.items : [...s.items, ...outcome.value.items],
                extra: reset || s.extra === undefined ? outcome.value.extra : s.extra,
                loading: false,
                done: outcome.value.nextCursor === null,
                problem: undefined,
                cursor: outcome.value.nextCursor ?? undefined
              }
            : { ...s, loading: false, problem: outcome }
        )
      })
    },
    [key]
  )
  useEffect(() => {
    setState({ items: [], extra: undefined, loading: true, done: false, problem: undefined, cursor: undefined })
    load(undefined, true)
  }, [key])
  const more = useCallback(() => {
    if (!state.done && !state.loading && state.problem === undefined) load(state.cursor, false)
  }, [state.done, state.loading, state.cursor, state.problem, load])
  return { ...state, more }
}
