import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ENGINE_PROGRAM, upPreviewDestroy } from "../fixtures/engine-checks";
import { copyProgram, localStack, REPO } from "../fixtures/pulumi";

describe("the real Pulumi engine with this package installed from its npm pack tarball", () => {
  let work: string;
  let project: string;

  beforeAll(() => {
    // Outside the repo, so nothing can resolve through the repo's own node_modules.
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-tarball-"));
    const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", work], {
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
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
      cwd: project,
      stdio: "inherit",
    });
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it("ships only the built package: no sources, no tests", () => {
    const installed = path.join(project, "node_modules", "pulumi-discovery");
    expect(fs.existsSync(path.join(installed, "dist", "sdk", "index.js"))).toBe(true);
    expect(fs.existsSync(path.join(installed, "bin", "discovery.js"))).toBe(true);
    expect(fs.existsSync(path.join(installed, "provider"))).toBe(false);
    expect(fs.existsSync(path.join(installed, "test"))).toBe(false);
  });

  it("runs up, a no-change preview, and destroy", async () => {
    await upPreviewDestroy(await localStack(project, "packed"));
  });
});
