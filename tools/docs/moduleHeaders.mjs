// A TypeDoc plugin: every module of Annal starts with a doc comment that says what it is for, but TypeDoc takes a
// file's first comment as the module's only when it carries `@module` or `@packageDocumentation`, and our packages
// re-export their modules as namespaces (`export * as EventStore from "./EventStore.ts"`), whose pages would then be
// empty. This gives each such namespace its file's header, so the reference shows it without a tag in every file.
import { Comment, Converter, MinimalSourceFile, ReflectionKind } from "typedoc"
import ts from "typescript"

/** The text of a file's leading `/** … *\/` comment, without its stars and block tags (`@since`). */
const header = (sourceFile) => {
  const range = (ts.getLeadingCommentRanges(sourceFile.text, 0) ?? []).find((r) =>
    sourceFile.text.startsWith("/**", r.pos)
  )
  if (range === undefined) return undefined
  const lines = sourceFile.text
    .slice(range.pos + 3, range.end - 2)
    .split("\n")
    .map((line) => line.replace(/^\s*\* ?/, ""))
  const firstTag = lines.findIndex((line) => line.startsWith("@"))
  const text = (firstTag === -1 ? lines : lines.slice(0, firstTag)).join("\n").trim()
  return text === "" ? undefined : text
}

/** @param {import("typedoc").Application} app */
export const load = (app) => {
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Namespace) || reflection.comment !== undefined) return
    const symbol = context.getSymbolFromReflection(reflection)
    const target = symbol === undefined ? undefined : context.resolveAliasedSymbol(symbol)
    const sourceFile = target?.declarations?.find(ts.isSourceFile)
    if (sourceFile === undefined) return
    const text = header(sourceFile)
    if (text === undefined) return
    const { content } = context.converter.parseRawComment(
      new MinimalSourceFile(text, sourceFile.fileName),
      context.project.files
    )
    reflection.comment = new Comment(content)
  })
}
