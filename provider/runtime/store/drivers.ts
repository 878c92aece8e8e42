/**
 * The database drivers are runtime-only dependencies (optionalDependencies in package.json): a
 * Pulumi program that installs this package for its resources never loads them, and a machine
 * that cannot compile better-sqlite3 can still install the package. They are required when a
 * store opens, and a driver that is missing or was compiled for another Node.js fails with what
 * to do, not a stack trace.
 */
export type DriverName = "better-sqlite3" | "pg";

const PURPOSE: Record<DriverName, string> = {
  "better-sqlite3": "the runtime's SQLite store (storage.type: sqlite, the default)",
  pg: "the runtime's PostgreSQL store (storage.type: postgres)",
};

/** The friendly error for a driver that is missing or built for another Node.js, else undefined. */
export function driverError(name: DriverName, err: unknown): Error | undefined {
  const e = err as NodeJS.ErrnoException;
  const message = String(e?.message ?? err);
  if (e?.code === "MODULE_NOT_FOUND" && message.includes(`'${name}'`)) {
    return new Error(
      `${PURPOSE[name]} needs the package ${name}, which is not installed: run 'npm install ${name}' ` +
        `next to pulumi-discovery (it is an optional dependency; Pulumi programs do not need it)`,
    );
  }
  const abi = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(message);
  if (abi) {
    return new Error(
      `${name} was compiled for another Node.js (module ABI ${abi[1]}) than the one running ` +
        `(${process.version}, ABI ${abi[2]}): run 'npm rebuild ${name}' with this node, or, in a ` +
        `checkout of pulumi-discovery, put .tools/bin first on PATH (export PATH="$PWD/.tools/bin:$PATH") ` +
        `so the node that 'npm run setup' built it for runs`,
    );
  }
  return undefined;
}

/**
 * Requires the driver and runs `open` with it. better-sqlite3 loads its compiled addon on first use,
 * not on require, so the opening call is inside the same guard; its other errors pass unchanged.
 */
export function withDriver<M, T>(name: DriverName, open: (driver: M) => T): T {
  try {
    return open(require(name) as M);
  } catch (err) {
    throw driverError(name, err) ?? err;
  }
}
