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
for (const dir of [
  "provider/runtime/installers",
  "provider/runtime/status/templates",
  "provider/runtime/status/assets",
]) {
  fs.cpSync(path.join(root, dir), path.join(root, "dist", dir), { recursive: true });
}
// The ready-to-run policy pack: PulumiPolicy.yaml beside the compiled entry point, and the package.json
// PolicyPack reads its version from (the package's own version, so the pack and the rules never disagree).
const pack = path.join(root, "dist", "policy", "pack");
fs.copyFileSync(path.join(root, "policy", "pack", "PulumiPolicy.yaml"), path.join(pack, "PulumiPolicy.yaml"));
const { version } = require(path.join(root, "package.json"));
fs.writeFileSync(
  path.join(pack, "package.json"),
  JSON.stringify({ name: "pulumi-discovery-policy-pack", version, private: true, main: "index.js" }, null, 2) + "\n",
);
