import { Command } from "commander";
import { validateCommand } from "./validate";

/** Builds the `discovery` command line. */
export function program(): Command {
  const version = (require("../../../package.json") as { version: string }).version;
  return new Command("discovery")
    .description("discover cloud VMs and enroll them without shared secrets")
    .version(version)
    .addCommand(validateCommand());
}

/** Entry point of the `discovery` bin. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await program().parseAsync(argv);
}
