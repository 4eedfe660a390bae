// The entry bench/Peer.ts imports: it resolves Emmett from bench/peer/node_modules, which the root workspace never sees.
export { getPostgreSQLEventStore, readMessagesBatch } from "@event-driven-io/emmett-postgresql"
export { dumbo } from "@event-driven-io/dumbo"
