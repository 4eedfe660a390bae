/**
 * The handlers of the app's own groups. They only check the caller's role and call the services: validation
 * happened when the request was decoded, and the user, ip address, user agent, correlation id and reason reach the
 * events through the request's `EventContext`, not through these functions.
 *
 * @since 0.1.0
 */
import { ApiError, Principal } from "@annal/http"
import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import { Api } from "./Api.ts"
import { Commodities } from "./Commodities.ts"
import { Memberships } from "./Memberships.ts"
import { Organizations } from "./Organizations.ts"

/** Auditors read the books; they do not change them. */
const requireWriter = Effect.gen(function* () {
  const principal = yield* Principal.CurrentPrincipal
  if (Principal.isAuditor(principal)) {
    return yield* new ApiError.Forbidden({ message: "Auditors read business data; they do not change it" })
  }
})

/**
 * Only the organization's members change it: checked before the change, so that a clerk who is not a member can
 * neither change it nor, by changing it, come to read its history. A missing organization is refused alike, so a
 * refusal says nothing of which ids exist.
 */
const requireMember = (memberships: Memberships["Service"], organizationId: string) =>
  Effect.gen(function* () {
    yield* requireWriter
    const principal = yield* Principal.CurrentPrincipal
    const member = yield* memberships
      .isMember(organizationId, principal.userId)
      .pipe(Effect.catch((error) => ApiError.storage("checking membership", error)))
    if (!member) {
      return yield* new ApiError.Forbidden({ message: "Only the organization's members change it" })
    }
  })

/** The organizations group. */
export const OrganizationsHandlers = HttpApiBuilder.group(Api, "organizations", (handlers) =>
  Effect.gen(function* () {
    const organizations = yield* Organizations
    const memberships = yield* Memberships
    const member = (id: string) => requireMember(memberships, id)
    return handlers
      .handle("create", ({ payload }) => Effect.andThen(requireWriter, organizations.create(payload)))
      .handle("list", () => organizations.list)
      .handle("get", ({ params }) => organizations.get(params.id))
      .handle("update", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.update(params.id, payload))
      )
      .handle("remove", ({ params }) => Effect.andThen(member(params.id), organizations.remove(params.id)))
      .handle("addGstRegistration", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.addGstRegistration(params.id, payload))
      )
      .handle("updateGstRegistration", ({ params, payload }) =>
        Effect.andThen(
          member(params.id),
          organizations.updateGstRegistration(params.id, params.gstRegistrationId, payload)
        )
      )
      .handle("addBankAccount", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.addBankAccount(params.id, payload))
      )
      .handle("updateBankAccount", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.updateBankAccount(params.id, params.bankAccountId, payload))
      )
      .handle("addFinancialYear", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.addFinancialYear(params.id, payload))
      )
      .handle("addDocumentSeries", ({ params, payload }) =>
        Effect.andThen(member(params.id), organizations.addDocumentSeries(params.id, payload))
      )
  })
)

/** The commodities group. */
export const CommoditiesHandlers = HttpApiBuilder.group(Api, "commodities", (handlers) =>
  Effect.gen(function* () {
    const commodities = yield* Commodities
    return handlers
      .handle("create", ({ payload }) => Effect.andThen(requireWriter, commodities.create(payload)))
      .handle("list", () => commodities.list)
      .handle("get", ({ params }) => commodities.get(params.id))
      .handle("update", ({ params, payload }) => Effect.andThen(requireWriter, commodities.update(params.id, payload)))
  })
)

/** The health check. */
export const SystemHandlers = HttpApiBuilder.group(Api, "system", (handlers) =>
  handlers.handle("health", () => Effect.succeed({ status: "ok" as const }))
)
