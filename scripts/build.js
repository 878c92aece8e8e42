// npm run build: a clean dist/, the TypeScript compile, and the non-TypeScript assets beside it.
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const root = path.resolve(__dirname, "..");
fs.rmSync(path.join(root, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
  cwd: root,
  stdio: "inherit",
});
for (const dir of ["provider/runtime/installers"]) {
  fs.cpSync(path.join(root, dir), path.join(root, "dist", dir), { recursive: true });
}
