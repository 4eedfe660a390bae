/**
 * Which clerks keep which organizations. A clerk changes, and reads the history of, only the organizations they are
 * a member of: whoever creates an organization becomes its first member, in the same transaction, and further
 * members are added by the application (the demo data adds the clerk who shares the books). Writing grants nothing:
 * a change by a clerk who is not a member is refused before it is made, so it can never open the history to them.
 *
 * @since 0.1.0
 */
import { AnnalError } from "@annal/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

/** The service. */
export class Memberships extends Context.Service<
  Memberships,
  {
    /** Whether `userId` is a member of the organization `organizationId`. */
    readonly isMember: (organizationId: string, userId: string) => Effect.Effect<boolean, AnnalError.StorageError>
    /**
     * Makes `userId` a member of `organizationId`; being one already is no error. Runs in the caller's transaction
     * when there is one, so that an organization and its first member are written together.
     */
    readonly add: (organizationId: string, userId: string) => Effect.Effect<void, AnnalError.StorageError>
  }
>()("@annal/example-organization/Memberships") {}

/** Builds the service over the `SqlClient` in context. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const isMember = Effect.fn("Memberships.isMember")(
    function* (organizationId: string, userId: string) {
      const rows = yield* sql`SELECT 1 AS one FROM memberships
        WHERE organization_id = ${organizationId} AND user_id = ${userId}`
      return rows.length > 0
    },
    Effect.catchTag("SqlError", (error) => storageError("Memberships.isMember", error))
  )

  const add = Effect.fn("Memberships.add")(
    function* (organizationId: string, userId: string) {
      yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${organizationId}, ${userId})
        ON CONFLICT DO NOTHING`
    },
    Effect.catchTag("SqlError", (error) => storageError("Memberships.add", error))
  )

  return Memberships.of({ isMember, add })
})

/** The service, over the `SqlClient` in context. */
export const layer: Layer.Layer<Memberships, never, SqlClient.SqlClient> = Layer.effect(Memberships, make)

const storageError = (operation: string, error: SqlError) =>
  Effect.fail(new AnnalError.StorageError({ operation, reason: error.reason, detail: error.message }))
