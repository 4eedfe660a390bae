/** A program that uses only @annal/core: its bundle must hold no PGlite (test/package/check.sh). */
import { EventStore, Feed, FeedSignal } from "@annal/core"

console.log(typeof EventStore.layer(), typeof Feed.layer(), typeof FeedSignal.layerPoll)
