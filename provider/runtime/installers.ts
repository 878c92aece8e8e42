import * as fs from "fs";
import * as path from "path";
import { BUILTIN_INSTALLERS, INSTALLER_NAME_RE, templateUses } from "../model";

import { shellQuote } from "../util/shell";
export { shellQuote };

/** Values of the template variables an installer may use. */
export interface InstallerValues {
  /** host:port of the runtime's public address. */
  PublicProxyAddr: string;
  ClusterName: string;
}

/** Replaces each `{{ .Var }}` with the shell-quoted value; unknown variables were refused by the model. */
export function renderInstaller(script: string, values: InstallerValues): string {
  let out = "";
  let from = 0;
  for (const use of templateUses(script)) {
    const name = use.expr?.replace(/^\./, "") as keyof InstallerValues | undefined;
    if (!name || !(name in values)) throw new Error(`installer uses an unknown template variable ${use.text}`);
    out += script.slice(from, use.offset) + shellQuote(values[name]);
    from = use.offset + use.text.length;
  }
  return out + script.slice(from);
}

let builtins: Map<string, string> | undefined;

/** The built-in installers (agent and agentless modes of one POSIX sh script), as templates. */
export function builtinInstallers(): Map<string, string> {
  if (!builtins) {
    const text = fs.readFileSync(path.join(__dirname, "installers", "installer.sh"), "utf8");
    const mode = (m: string, name: string) => text.replace(/__MODE__/g, m).replace(/__SCRIPT_NAME__/g, name);
    builtins = new Map([
      [BUILTIN_INSTALLERS[0], mode("agent", BUILTIN_INSTALLERS[0])],
      [BUILTIN_INSTALLERS[1], mode("agentless", BUILTIN_INSTALLERS[1])],
    ]);
  }
  return builtins;
}

/** Whether `name` may be looked up at all: nothing outside the pattern reaches the store. */
export function isInstallerName(name: string): boolean {
  return INSTALLER_NAME_RE.test(name);
}
