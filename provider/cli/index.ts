import * as fs from "fs";
import * as path from "path";
import { Command } from "commander";
import { silenceAwsSdkNodeVersionWarning } from "../clouds/aws/sdk-warning";
import { adminCommands } from "./admin";
import { automationCommands } from "./automation";
import { enrollCommand } from "./enroll";
import { joinCommand } from "./join";
import { policyCommand } from "./policy";
import { retryFailedCommand } from "./retry";
import { sandboxCommand } from "./sandbox";
import { serveCommand } from "./serve";
import { sshCommand } from "./ssh";
import { validateCommand } from "./validate";

/** This package's version, from the nearest package.json above this file (source or dist layout). */
export function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "pulumi-discovery" && pkg.version) return pkg.version;
    }
  }
  return "0.0.0";
}

/** Builds the `discovery` command line. */
export function program(): Command {
  const version = packageVersion();
  const cmd = new Command("discovery")
    .description("discover cloud VMs and enroll them without shared secrets")
    .version(version)
    .addCommand(validateCommand())
    .addCommand(serveCommand())
    .addCommand(joinCommand())
    .addCommand(enrollCommand())
    .addCommand(retryFailedCommand())
    .addCommand(policyCommand())
    .addCommand(sandboxCommand())
    .addCommand(sshCommand());
  for (const c of adminCommands()) cmd.addCommand(c);
  for (const c of automationCommands()) cmd.addCommand(c);
  return cmd;
}

/** Entry point of the `discovery` bin. */
export async function main(argv: string[] = process.argv): Promise<void> {
  // Before any command runs: the sandbox and the runtime it spawns inherit the setting.
  silenceAwsSdkNodeVersionWarning();
  await program().parseAsync(argv);
}
