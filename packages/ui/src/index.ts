/**
 * The audit timeline's built files, for a server to serve: `@annal/http`'s `AuditUi.layer` serves them under a
 * path of the application's choosing. The app itself is in `app/` and is built by Vite into `dist/app`.
 *
 * @since 0.1.0
 */
import { fileURLToPath } from "node:url"

/**
 * The folder of the built UI (`index.html` and `assets/`). It is the same from the sources and from `dist`, as
 * both sit one level under the package.
 */
export const assetsDirectory: string = fileURLToPath(new URL("../dist/app/", import.meta.url))

/**
 * The most the built UI may weigh, gzipped, in bytes: what a browser downloads on a first visit. A test of the
 * package checks the build against it, so a dependency that bloats the bundle fails CI instead of slowing auditors.
 */
export const sizeBudget = { scripts: 100_000, styles: 10_000, total: 115_000 } as const
