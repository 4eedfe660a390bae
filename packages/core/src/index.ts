/**
 * @annal/core: an immutable, queryable audit trail of business events in PostgreSQL, on Effect.
 *
 * @since 0.1.0
 * @module @annal/core
 */
export * as AnnalError from "./AnnalError.ts"
export * as AuditService from "./AuditService.ts"
export * as CanonicalJson from "./CanonicalJson.ts"
export * as Checkpoint from "./Checkpoint.ts"
export * as Consumer from "./Consumer.ts"
export * as Consumers from "./Consumers.ts"
export * as Digest from "./Digest.ts"
export * as Event from "./Event.ts"
export * as Export from "./Export.ts"
export * as EntityState from "./EntityState.ts"
export * as EventContext from "./EventContext.ts"
export * as EventCatalog from "./EventCatalog.ts"
export * as EventDefinition from "./EventDefinition.ts"
export * as EventEmitter from "./EventEmitter.ts"
export * as EventRegistry from "./EventRegistry.ts"
export * as EventStore from "./EventStore.ts"
export * as EventTable from "./EventTable.ts"
export * as Feed from "./Feed.ts"
export * as FeedSignal from "./FeedSignal.ts"
export * as Filter from "./Filter.ts"
export * as Integrity from "./Integrity.ts"
export * as Metrics from "./Metrics.ts"
export * as Migrations from "./Migrations.ts"
export * as Payload from "./Payload.ts"
export * as Projection from "./Projection.ts"
export * as Transaction from "./Transaction.ts"
