/**
 * The audit timeline's shell: sign-in with a pasted bearer token (kept in `sessionStorage` for the tab, never in the
 * URL), the navigation, and the view the URL names. A 401 anywhere signs the user out; a 403 stays in its view.
 */
import { render } from "preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import * as Client from "./Client.ts"
import { Link } from "./Entry.tsx"
import * as Route from "./Route.ts"
import { EntityView, LiveView, SearchView, TrailView, UserView, type ViewProps } from "./Views.tsx"
import "./style.css"

const tokenKey = "annal.token"

const SignIn = (props: {
  readonly onSignIn: (token: string, session: Client.SessionInfo) => void
  readonly note?: string | undefined
}) => {
  const [error, setError] = useState<string | undefined>(props.note)
  const [busy, setBusy] = useState(false)
  const submit = (event: Event) => {
    event.preventDefault()
    const token = String(new FormData(event.currentTarget as HTMLFormElement).get("token") ?? "").trim()
    if (token === "") return setError("Paste your API token first.")
    setBusy(true)
    void Client.session(token).then((outcome) => {
      setBusy(false)
      if (outcome.ok) props.onSignIn(token, outcome.value)
      else setError(outcome.kind === "unauthenticated" ? "That token is not known to this server." : outcome.message)
    })
  }
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Audit timeline</h1>
        <p>Sign in with your API bearer token. It stays in this tab only, and is never put in the address.</p>
        <label>
          <span>Bearer token</span>
          <input name="token" type="password" autocomplete="off" required autofocus />
        </label>
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  )
}

const useRoute = () => {
  const [route, setRoute] = useState(() => Route.parse(globalThis.location.search))
  useEffect(() => {
    const onPop = () => setRoute(Route.parse(globalThis.location.search))
    globalThis.addEventListener("popstate", onPop)
    return () => globalThis.removeEventListener("popstate", onPop)
  }, [])
  return route
}

const Shell = (props: ViewProps & { readonly route: Route.Route; readonly onSignOut: () => void }) => {
  const { route, session } = props
  const current = route.view === "home" ? "user" : route.view
  const tab = (view: string) => (current === view ? "page" : undefined)
  return (
    <>
      <header class="top">
        <a class="brand" href="?">
          Annal <span>audit timeline</span>
        </a>
        <nav aria-label="Views">
          <Link to={{ view: "user", userId: session.userId }}>
            <span aria-current={tab("user")}>My activity</span>
          </Link>
          <Link to={{ view: "live" }}>
            <span aria-current={tab("live")}>Live</span>
          </Link>
          <Link to={{ view: "search", filters: {} }}>
            <span aria-current={tab("search")}>Search</span>
          </Link>
        </nav>
        <div class="me">
          <span>
            {session.name} <small>({session.role})</small>
          </span>
          <button type="button" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main>
        {route.view === "entity" ? (
          <EntityView {...props} route={route} />
        ) : route.view === "live" ? (
          <LiveView {...props} />
        ) : route.view === "search" ? (
          <SearchView {...props} filters={route.filters} />
        ) : route.view === "trail" ? (
          <TrailView {...props} correlationId={route.correlationId} />
        ) : (
          <UserView {...props} userId={route.view === "user" ? route.userId : session.userId} />
        )}
      </main>
    </>
  )
}

const App = () => {
  const route = useRoute()
  const [auth, setAuth] = useState<{ token: string; session: Client.SessionInfo } | undefined>(undefined)
  const [checking, setChecking] = useState(() => globalThis.sessionStorage.getItem(tokenKey) !== null)
  const [note, setNote] = useState<string | undefined>(undefined)
  useEffect(() => {
    const token = globalThis.sessionStorage.getItem(tokenKey)
    if (token === null) return
    void Client.session(token).then((outcome) => {
      setChecking(false)
      if (outcome.ok) setAuth({ token, session: outcome.value })
      else globalThis.sessionStorage.removeItem(tokenKey)
    })
  }, [])
  const signOut = (message?: string) => {
    globalThis.sessionStorage.removeItem(tokenKey)
    setNote(message)
    setAuth(undefined)
  }
  const client = useMemo(() => (auth === undefined ? undefined : Client.makeClientSync(auth.token)), [auth?.token])
  if (checking) return <main class="signin" aria-busy="true"></main>
  if (auth === undefined || client === undefined) {
    return (
      <SignIn
        note={note}
        onSignIn={(token, session) => {
          globalThis.sessionStorage.setItem(tokenKey, token)
          setNote(undefined)
          setAuth({ token, session })
        }}
      />
    )
  }
  return (
    <Shell
      token={auth.token}
      session={auth.session}
      client={client}
      route={route}
      onSignOut={() => signOut()}
      onProblem={(problem) => {
        if (problem.kind === "unauthenticated") signOut("Your token is no longer accepted; sign in again.")
      }}
    />
  )
}

render(<App />, document.getElementById("app")!)
