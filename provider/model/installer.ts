import { z } from "zod";
import { didYouMean, installerName, metadata, resourceName, fieldError } from "./common";

/** Template variables an installer script may use. */
export const INSTALLER_VARIABLES = [".PublicProxyAddr", ".ClusterName"] as const;

/** Installers that always exist on the runtime. */
export const BUILTIN_INSTALLERS = ["default-installer", "default-agentless-installer"] as const;

/** One `{{ ... }}` occurrence found in a script. */
export interface TemplateUse {
  /** Offset of `{{` in the script. */
  offset: number;
  /** The whole `{{ ... }}` text as written. */
  text: string;
  /** The expression between the braces, trimmed; undefined when the braces never close. */
  expr?: string;
}

/** Lists every `{{ ... }}` in a script, including unterminated ones. */
export function templateUses(script: string): TemplateUse[] {
  const uses: TemplateUse[] = [];
  let from = 0;
  for (;;) {
    const start = script.indexOf("{{", from);
    if (start < 0) return uses;
    const end = script.indexOf("}}", start + 2);
    if (end < 0) {
      uses.push({ offset: start, text: script.slice(start, start + 20) });
      return uses;
    }
    uses.push({ offset: start, text: script.slice(start, end + 2), expr: script.slice(start + 2, end).trim() });
    from = end + 2;
  }
}

function hint(expr: string): string {
  const best = didYouMean(expr, INSTALLER_VARIABLES);
  return best ? ` (did you mean {{ ${best} }}?)` : "";
}

/** Problems with the template variables of a script: each names the variable and the allowed ones. */
export function templateProblems(script: string): { offset: number; text: string; message: string }[] {
  const allowed = INSTALLER_VARIABLES.map((v) => `{{ ${v} }}`).join(" or ");
  return templateUses(script)
    .filter((u) => u.expr === undefined || !(INSTALLER_VARIABLES as readonly string[]).includes(u.expr))
    .map((u) => ({
      offset: u.offset,
      text: u.text,
      message:
        u.expr === undefined
          ? `"{{" is never closed with "}}"`
          : `template variable ${u.text} is not allowed${hint(u.expr)}; use ${allowed}`,
    }));
}

const installerSpec = z
  .object({
    script: z
      .string()
      .min(1, { message: "must not be empty" })
      .max(256 * 1024, { message: "must be at most 256 KiB" })
      .superRefine((script, ctx) => {
        for (const p of templateProblems(script))
          ctx.addIssue({ code: "custom", message: p.message, params: { needle: p.text } });
      }),
  })
  .strict();

/** kind: installer, version v1: a shell script template served at /webapi/scripts/installer/{name}. */
export const installerDocument = z
  .object({
    kind: z.literal("installer"),
    version: z.literal("v1", fieldError('installer documents are version "v1"')),
    metadata: metadata.extend({ name: resourceName.pipe(installerName) }),
    spec: installerSpec,
  })
  .strict();

/** An installer document as written by a user. */
export type InstallerInput = z.input<typeof installerDocument>;
/** A validated installer document. */
export type Installer = z.output<typeof installerDocument>;
