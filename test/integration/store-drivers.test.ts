/**
 * The database drivers are optional dependencies, loaded when a store opens: `discovery serve` without
 * better-sqlite3 (as `npm install --omit=optional` leaves it) stops with what to do and leaves no half-made
 * database behind (a driver built for another Node.js: test/unit/store-drivers.test.ts). Needs `npm run build`.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";

const ROOT = path.resolve(__dirname, "../..");
const BIN = path.join(ROOT, "bin/discovery.js");

/** Runs `discovery serve` on a fresh config, preloading `preload`. */
function serve(preload: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-drivers-"));
  const config = path.join(dir, "runtime.yaml");
  fs.writeFileSync(
    config,
    stringify({
      version: "v1",
      cluster_name: "drivers.test",
      listen_addr: "127.0.0.1:0",
      public_addr: "https://127.0.0.1:1",
    }),
  );
  const args = ["--require", preload, BIN, "serve", "--config", config];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 30_000 });
  return { ...r, dir, db: path.join(dir, "data", "discovery.db") };
}

describe("discovery serve: the SQLite driver", () => {
  it("missing: names the package, the config key that needs it and the install command; no database file", () => {
    // Module resolution refuses better-sqlite3 as it does when the optional dependency was not installed.
    const hook = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pd-hook-")), "omit-sqlite.js");
    fs.writeFileSync(
      hook,
      `const M = require("module"); const resolve = M._resolveFilename;
       M._resolveFilename = function (request, ...rest) {
         if (request === "better-sqlite3") { const e = new Error("Cannot find module 'better-sqlite3'"); e.code = "MODULE_NOT_FOUND"; throw e; }
         return resolve.call(this, request, ...rest);
       };`,
    );
    const r = serve(hook);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "discovery: the runtime's SQLite store (storage.type: sqlite, the default) needs the package better-sqlite3, " +
        "which is not installed: run 'npm install better-sqlite3' next to pulumi-discovery",
    );
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fs.existsSync(r.db)).toBe(false);
  });
});
