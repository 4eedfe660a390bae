/**
 * A throwaway PostgreSQL cluster of the test's own: `initdb` into a temporary folder, started with `pg_ctl`,
 * listening on a Unix socket in that folder and on no TCP port, stopped with `-m immediate` (no checkpoint, no
 * goodbye to clients: a crash as far as the clients and the WAL are concerned) and started again on demand, and
 * removed when the layer's scope closes. The shared server that the other tests use is never touched.
 *
 * PostgreSQL refuses to run as root, so as root the commands run as the `postgres` OS user (`runuser`), which owns
 * the folder. `ANNAL_PG_BINDIR` names the binaries' folder; otherwise `pg_config --bindir` does.
 *
 * No TCP port: a free port found beforehand would have to be let go before PostgreSQL binds it, and another process
 * could take it in between, at the first start or at any restart. The socket's folder is the cluster's own.
 */
import { NodeServices } from "@effect/platform-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Stream from "effect/Stream"
import { chownSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A running cluster that can be crashed and started again. */
export class Cluster extends Context.Service<
  Cluster,
  {
    /** A URL of its `postgres` database, as the superuser, over the cluster's Unix socket. */
    readonly url: string
    /** `pg_ctl stop -m immediate`: every backend quits at once; what was not in the WAL on disk is gone. */
    readonly crash: Effect.Effect<void>
    /** `pg_ctl start -w`: returns once crash recovery is done and the server accepts connections. */
    readonly start: Effect.Effect<void>
  }
>()("@annal/test/reliability/Cluster") {}

/** Runs a command to its end; a failure is a defect that carries the command's output. */
const run = (
  spawner: ChildProcessSpawner.ChildProcessSpawner["Service"],
  command: string,
  args: ReadonlyArray<string>
) =>
  Effect.gen(function* () {
    // Not detached: a detached command's process group is signalled when its scope closes, and pg_ctl's children
    // must outlive it.
    const handle = yield* spawner.spawn(ChildProcess.make(command, args, { detached: false }))
    const [output, exitCode] = yield* Effect.all([Stream.mkString(Stream.decodeText(handle.all)), handle.exitCode], {
      concurrency: 2
    })
    if (exitCode !== 0)
      return yield* Effect.die(new Error(`${command} ${args.join(" ")} exited ${exitCode}: ${output}`))
    return output.trim()
  }).pipe(Effect.scoped, Effect.orDie)

/** The port names the socket file only (`.s.PGSQL.<port>` in the cluster's folder); no TCP port is opened. */
const socketPort = 5432

/** A cluster for the layer's lifetime. */
export const layer: Layer.Layer<Cluster> = Layer.effect(
  Cluster,
  Effect.gen(function* () {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const asRoot = process.getuid?.() === 0
    const bin = process.env["ANNAL_PG_BINDIR"] ?? (yield* run(spawner, "pg_config", ["--bindir"]))
    const owner = asRoot
      ? {
          uid: Number(yield* run(spawner, "id", ["-u", "postgres"])),
          gid: Number(yield* run(spawner, "id", ["-g", "postgres"]))
        }
      : undefined
    const asOwner = (program: string, args: ReadonlyArray<string>) =>
      asRoot
        ? run(spawner, "runuser", ["-u", "postgres", "--", join(bin, program), ...args])
        : run(spawner, join(bin, program), args)
    const folder = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const folder = mkdtempSync(join(tmpdir(), "annal-cluster-"))
        if (owner !== undefined) chownSync(folder, owner.uid, owner.gid)
        return folder
      }),
      (folder) => Effect.sync(() => rmSync(folder, { recursive: true, force: true }))
    )
    const data = join(folder, "data")
    yield* asOwner("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
    // pg_ctl hands the options to a shell: '' is the empty list of TCP addresses.
    const options = `-p ${socketPort} -c listen_addresses='' -c unix_socket_directories=${folder} -c max_connections=50`
    const start = Effect.asVoid(
      asOwner("pg_ctl", ["-D", data, "-l", join(folder, "log"), "-o", options, "-w", "-t", "120", "start"])
    )
    const crash = Effect.asVoid(asOwner("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]))
    // Stopped the quick way at the end too, whatever state a failed test left it in.
    yield* Effect.acquireRelease(start, () => Effect.asVoid(Effect.exit(crash)))
    // A `host` that is a folder makes the client connect to the socket in it.
    const url = `postgres://postgres@localhost/postgres?host=${encodeURIComponent(folder)}&port=${socketPort}`
    return Cluster.of({ url, crash, start })
  })
).pipe(Layer.provide(NodeServices.layer))
