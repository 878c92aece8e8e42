import { spawn } from "child_process";
import * as path from "path";
import { ensureBuilt } from "../fixtures/sandbox";

/** The README's first command stays true: the demo runs end to end and shows what it promises. */
describe("npm run demo", () => {
  it("ups the quickstart, enrolls the sandbox fleet, prints the inventory and logs in over SSH", async () => {
    ensureBuilt();
    const root = path.resolve(__dirname, "../..");
    const { status, out } = await new Promise<{ status: number | null; out: string }>((resolve) => {
      const child = spawn("bash", [path.join(root, "scripts", "demo.sh")], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      child.on("exit", (code) => resolve({ status: code, out }));
    });
    expect(out).toContain("no changes");
    expect(out).toMatch(/3 instance\(s\), 3 command\(s\) sent, 3 enrolled/);
    expect(out).toMatch(/^NAME\s+METHOD\s+ACCOUNT/m);
    expect(out).toContain("logged in to vm as root with a certificate from the discovery runtime");
    expect(out).toContain("stack destroyed");
    expect(status).toBe(0);
  });
});
