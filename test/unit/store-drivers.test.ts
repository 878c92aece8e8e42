import { SqliteStore } from "../../provider/runtime/store";
import { driverError, withDriver } from "../../provider/runtime/store/drivers";

/**
 * A driver built for another Node.js: the text Node itself raises when better-sqlite3's addon was compiled for
 * another ABI (copied from a real run: node 20 loading a build for node 22). Whatever node runs the tests, the
 * message it gets is the one below, so this needs no second Node.js on the machine.
 */
const ABI_MISMATCH =
  "The module '/srv/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\n" +
  "was compiled against a different Node.js version using\n" +
  "NODE_MODULE_VERSION 127. This version of Node.js requires\n" +
  "NODE_MODULE_VERSION 115. Please try re-compiling or re-installing\n" +
  "the module (for instance, using `npm rebuild` or `npm install`).";

describe("the database drivers, loaded when a store opens", () => {
  it("run by another Node.js than the driver was built for: says which and how to fix it", () => {
    const err = Object.assign(new Error(ABI_MISMATCH), { code: "ERR_DLOPEN_FAILED" });
    expect(() =>
      withDriver("better-sqlite3", () => {
        throw err;
      }),
    ).toThrow(
      new RegExp(
        `^better-sqlite3 was compiled for another Node.js \\(module ABI 127\\) than the one running \\(v[\\d.]+, ABI 115\\): ` +
          "run 'npm rebuild better-sqlite3' with this node",
      ),
    );
    expect(driverError("better-sqlite3", err)?.message).toContain('export PATH="$PWD/.tools/bin:$PATH"');
  });

  it("passes any other error of the opening call through unchanged", () => {
    const other = Object.assign(new Error("unable to open database file"), { code: "SQLITE_CANTOPEN" });
    expect(() =>
      withDriver("better-sqlite3", () => {
        throw other;
      }),
    ).toThrow(other);
    expect(driverError("pg", new Error("Cannot find module 'pg-native'"))).toBeUndefined();
  });

  it("opens a store with the installed driver", async () => {
    const store = new SqliteStore(":memory:");
    await store.migrate();
    await store.close();
  });
});
