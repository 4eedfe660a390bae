/**
 * The payload conventions of the original design (docs/design.md). CREATE carries the entity's fields; UPDATE carries
 * `changes: { field: { old, new } }` with only the fields that changed; DELETE carries a name and `deletedAt`.
 *
 * @since 0.1.0
 */
import * as Equal from "effect/Equal"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"

/** One field's change. */
export interface Change<A> {
  readonly old: A
  readonly new: A
}

/** The payload of an UPDATE event: the fields that changed, each with its old and new value. */
export interface Changes<A extends object> {
  readonly changes: { readonly [K in keyof A]?: Change<A[K]> }
}

type ChangeField<S extends Schema.Top> = Schema.optionalKey<Schema.Struct<{ readonly old: S; readonly new: S }>>

interface ChangeLambda extends Struct.Lambda {
  <S extends Schema.Top>(field: S): ChangeField<S>
  readonly "~lambda.out": this["~lambda.in"] extends Schema.Top ? ChangeField<this["~lambda.in"]> : never
}

const toChange = Struct.lambda<ChangeLambda>((field) => Schema.optionalKey(Schema.Struct({ old: field, new: field })))

/** The UPDATE payload schema of an entity whose fields `entity` describes: every field optional, as old and new. */
export const ChangesOf = <Fields extends Schema.Struct.Fields>(entity: Schema.Struct<Fields>) =>
  Schema.Struct({ changes: entity.mapFields(Struct.map(toChange)) })

/**
 * The changes from `before` to `after`: every own field whose value differs (by structural equality), and none
 * when nothing changed, so that an update that changes nothing emits nothing.
 */
export const diff = <A extends object>(before: A, after: A): Option.Option<Changes<A>> => {
  const changes: { [K in keyof A]?: Change<A[K]> } = {}
  let changed = false
  // Object.keys is typed string[] for any object; these are the keys of A by construction.
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<keyof A & string>
  // Own fields only: a field missing on one side is undefined there, not what its prototype holds (`__proto__`).
  const field = (value: A, key: keyof A & string): A[keyof A & string] | undefined =>
    Object.hasOwn(value, key) ? value[key] : undefined
  for (const key of keys) {
    const old = field(before, key)
    const next = field(after, key)
    if (!Equal.equals(old, next)) {
      // Defined, not assigned: a field named `__proto__` is a change like any other, not the object's prototype.
      Object.defineProperty(changes, key, {
        value: { old, new: next },
        enumerable: true,
        writable: true,
        configurable: true
      })
      changed = true
    }
  }
  return changed ? Option.some({ changes }) : Option.none()
}

/** The DELETE payload: what was deleted, by name, and when. */
export const Deleted = Schema.Struct({
  name: Schema.String,
  deletedAt: Schema.DateTimeUtcFromString
})
