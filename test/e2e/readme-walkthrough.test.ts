/**
 * The README's command-line walkthrough, run as written by bash from the checkout: it installs the package into
 * a new directory, starts a sandbox, applies the token and the fleet it shows, waits for the runtime's loop, logs in
 * with `discovery ssh`, runs a pass by hand and a reinstall, and stops the sandbox. Only the sandbox directory is
 * changed (so runs never share /tmp/sb). Needs `npm run build` and `npm run setup`.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { discovery } from "../fixtures/cli";

const REPO = path.resolve(__dirname, "../..");

/** The shell block after "The same enrollment from the command line:". */
function walkthrough(): string {
  const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
  const block = /The same enrollment from the command line:\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error("README.md: the command-line walkthrough block is gone");
  return block;
}

describe("README: the command-line walkthrough", () => {
  const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), "pd-readme-sb-"));
  afterAll(() => {
    discovery(["sandbox", "stop", "--dir", sandbox]);
    fs.rmSync(sandbox, { recursive: true, force: true });
  });

  it("runs as written from a fresh shell, outside the repository once installed", async () => {
    const script = walkthrough();
    expect(script).toContain("npx discovery sandbox start --dir /tmp/sb");
    const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, USER: "root", PATH: process.env.PATH, LANG: "C.UTF-8" };
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("bash", ["-euo", "pipefail", "-c", script.replaceAll("/tmp/sb", sandbox)], {
        cwd: REPO,
        env,
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      child.on("exit", (code) => resolve({ code, out }));
    });
    expect(run.out).not.toMatch(/discovery: |Error:/);
    expect(run.code).toBe(0);
    expect(run.out).toContain("token/aws-discovery-iam-token created");
    expect(run.out).toContain("discovery_config/dev created");
    expect(run.out).toMatch(
      /dev +discovery_config +group=sandbox aws=1 gcp=0 azure=0 status=running found=3 enrolled=3 failed=0/,
    );
    expect(run.out.match(/^123456789012-i-[0-9a-f]{17} +iam +123456789012 +us-east-1 /gm)).toHaveLength(3);
    expect(run.out).toContain("root on vm\n");
    expect(run.out).toContain("1 scope(s) scanned (0 failed), 3 instance(s), 0 command(s) sent, 0 enrolled");
    expect(run.out).toContain("1 scope(s) scanned (0 failed), 3 instance(s), 1 command(s) sent, 1 enrolled");
    expect(run.out).toMatch(/enrollment\.reinstall +123456789012-i-/);
    expect(run.out).toMatch(
      /a pass (started|will start once the one in progress ends): it retries the failed instances/,
    );
    expect(run.out).toContain(`sandbox in ${sandbox} stopped`);
  });
});
