import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ENGINE_PROGRAM, upPreviewDestroy } from "../fixtures/engine-checks";
import { copyProgram, localStack, REPO } from "../fixtures/pulumi";
import { ensureBuilt } from "../fixtures/sandbox";

describe("the real Pulumi engine with this package installed from its npm pack tarball", () => {
  let work: string;
  let project: string;

  beforeAll(() => {
    // Outside the repo, so nothing can resolve through the repo's own node_modules.
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-tarball-"));
    // The dist/ `npm run build` made, packed as it is: npm pack's prepack would rebuild dist/ in place, pulling it
    // from under the suites running beside this one.
    ensureBuilt();
    const packed = execFileSync("npm", ["pack", "--silent", "--ignore-scripts", "--pack-destination", work], {
      cwd: REPO,
      encoding: "utf8",
    });
    const tarball = path.join(work, packed.trim().split("\n").at(-1) as string);
    project = copyProgram(ENGINE_PROGRAM, work);
    const pkg = JSON.parse(fs.readFileSync(path.join(project, "package.json"), "utf8"));
    const pulumiVersion = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).dependencies[
      "@pulumi/pulumi"
    ];
    pkg.dependencies = { "pulumi-discovery": `file:${tarball}`, "@pulumi/pulumi": pulumiVersion };
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify(pkg, null, 2));
    // Without the optional dependencies (the runtime's database drivers): the SDK must not need them.
    execFileSync(
      "npm",
      ["install", "--omit=optional", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
      {
        cwd: project,
        stdio: "inherit",
      },
    );
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it("ships only the built package: no sources, no tests", () => {
    const installed = path.join(project, "node_modules", "pulumi-discovery");
    expect(fs.existsSync(path.join(installed, "dist", "sdk", "index.js"))).toBe(true);
    expect(fs.existsSync(path.join(installed, "bin", "discovery.js"))).toBe(true);
    expect(fs.existsSync(path.join(installed, "provider"))).toBe(false);
    expect(fs.existsSync(path.join(installed, "test"))).toBe(false);
  });

  it("stays light: the database drivers are optional and not installed, the docs --help names are shipped", () => {
    const installed = path.join(project, "node_modules", "pulumi-discovery");
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8"));
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(["better-sqlite3", "pg"]);
    expect(manifest.dependencies["better-sqlite3"]).toBeUndefined();
    expect(fs.existsSync(path.join(project, "node_modules", "better-sqlite3"))).toBe(false);
    expect(fs.existsSync(path.join(project, "node_modules", "pg"))).toBe(false);
    // Every docs/*.md a --help text points at is in the package.
    const bin = path.join(installed, "bin", "discovery.js");
    const commands = [
      "serve",
      "enroll",
      "apply",
      "get",
      "rm",
      "validate",
      "join",
      "policy",
      "up",
      "preview",
      "destroy",
    ];
    const help = commands
      .map((c) => execFileSync(process.execPath, [bin, c, "--help"], { encoding: "utf8" }))
      .join("\n");
    const named = [...new Set([...help.matchAll(/docs\/[A-Z_-]+\.md/g)].map((m) => m[0]))];
    expect(named).toContain("docs/OPERATIONS.md");
    for (const doc of named) expect(fs.existsSync(path.join(installed, doc))).toBe(true);
  });

  it("the README's TypeScript program type-checks against the installed package", () => {
    const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
    const program = /## In a Pulumi program[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(program).toContain('import * as discovery from "pulumi-discovery"');
    fs.writeFileSync(path.join(project, "readme.ts"), program as string);
    const tsc = path.join(REPO, "node_modules", "typescript", "bin", "tsc");
    const flags = ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--skipLibCheck"];
    const r = spawnSync(process.execPath, [tsc, ...flags, "readme.ts"], { cwd: project, encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe(""); // tsc prints each type error
    expect(r.status).toBe(0);
  });

  it("runs up, a no-change preview, and destroy", async () => {
    await upPreviewDestroy(await localStack(project, "packed"));
  });
});
