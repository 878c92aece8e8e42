import { spawn } from "child_process";
import * as path from "path";
import { ensureBuilt } from "../fixtures/sandbox";

/** The README's first command stays true: the demo runs end to end and shows what it promises. */
describe("npm run demo", () => {
  it("enrolls the sandbox fleet with pulumi up, prints the inventory, logs in over SSH, enrolls a new instance", async () => {
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
    expect(out).toContain("enrolled: 3, failed: 0");
    expect(out).toContain("enrolled: 4");
    expect(out).toContain("no changes");
    expect(out).toMatch(/^NAME\s+METHOD\s+ACCOUNT/m);
    expect(out).toContain("logged in to vm as root with a certificate from the discovery runtime");
    expect(out).toContain("stack destroyed");
    expect(status).toBe(0);
  });
});
