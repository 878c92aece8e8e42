import * as fs from "fs";
import * as path from "path";
import { AutomationError } from "./errors";

/** The plugin that runs dynamic providers; every resource of this package is one. */
export const DYNAMIC_PROVIDER_PLUGIN = "pulumi-resource-pulumi-nodejs";

const INSTALL_HINT =
  "install the Pulumi CLI (https://www.pulumi.com/docs/install/; its release archive holds pulumi, " +
  "pulumi-language-nodejs and pulumi-resource-pulumi-nodejs side by side) and put its folder on PATH, " +
  "or pass --pulumi PATH; in a checkout of this repo, npm run setup links them into .tools/bin";

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, pathVar: string): string | undefined {
  for (const dir of pathVar.split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

/** `.tools/bin` of the checkout this module runs from (source or dist layout), when setup made one. */
function repoToolsBin(): string | undefined {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) {
      const bin = path.join(dir, ".tools", "bin");
      return fs.existsSync(bin) ? bin : undefined;
    }
  }
  return undefined;
}

/** Where the CLI and the dynamic provider plugin are; the folder to put first on PATH for the engine. */
export interface PulumiCli {
  /** The `pulumi` binary. */
  binary: string;
  /** Folders the engine should search for plugins first: the CLI's own. */
  pathPrepend: string[];
}

/**
 * Finds the Pulumi CLI: `explicit` (--pulumi), else `pulumi` on PATH, else this checkout's .tools/bin; and checks
 * that the dynamic provider plugin sits next to it or on PATH. Refusals say what to install and where.
 */
export function findPulumiCli(explicit: string | undefined, pathVar = process.env.PATH ?? ""): PulumiCli {
  let binary: string | undefined;
  if (explicit) {
    binary = path.resolve(explicit);
    if (!isExecutable(binary))
      throw new AutomationError(
        "pulumi_cli_missing",
        `--pulumi ${explicit}: ${fs.existsSync(binary) ? "is not an executable file" : "no such file"}; ${INSTALL_HINT}`,
      );
  } else {
    const tools = repoToolsBin();
    binary =
      onPath("pulumi", pathVar) ??
      (tools && isExecutable(path.join(tools, "pulumi")) ? path.join(tools, "pulumi") : undefined);
    if (!binary)
      throw new AutomationError("pulumi_cli_missing", `the Pulumi CLI (pulumi) is not on PATH: ${INSTALL_HINT}`);
  }
  const dirs = [...new Set([path.dirname(binary), path.dirname(fs.realpathSync(binary))])];
  const nextToCli = dirs.some((d) => isExecutable(path.join(d, DYNAMIC_PROVIDER_PLUGIN)));
  if (!nextToCli && !onPath(DYNAMIC_PROVIDER_PLUGIN, pathVar))
    throw new AutomationError(
      "pulumi_plugin_missing",
      `the plugin ${DYNAMIC_PROVIDER_PLUGIN}, which runs this package's resources, is neither next to ${binary} nor ` +
        `on PATH: put the folder of the Pulumi release that holds it on PATH (in this repo: npm run setup)`,
    );
  return { binary, pathPrepend: dirs };
}

/**
 * The installation root PulumiCommand.get wants (it runs `<root>/bin/pulumi`): the CLI's grandparent when it sits
 * in a `bin` folder, else a `bin/pulumi` link to it under `scratch`.
 */
export function pulumiRoot(binary: string, scratch: string): string {
  if (path.basename(binary) === "pulumi" && path.basename(path.dirname(binary)) === "bin")
    return path.dirname(path.dirname(binary));
  const root = path.join(scratch, "pulumi-cli");
  const link = path.join(root, "bin", "pulumi");
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.rmSync(link, { force: true });
  fs.symlinkSync(binary, link);
  return root;
}
