import * as fs from "fs";
import { ExampleSandbox, exampleStack, startExampleSandbox } from "../fixtures/example-sandbox";

/**
 * examples/discovery-config-only against the sandbox: `pulumi up` stores a DiscoveryConfig of group `sandbox` and
 * nothing else runs an install, yet the sandbox runtime's loop enrolls the tagged fleet; `pulumi refresh` then
 * shows the status the runtime keeps as an output, with no diff, and `pulumi destroy` stops the scanning.
 */
describe("examples/discovery-config-only", () => {
  let sb: ExampleSandbox;
  let dir: string | undefined;
  const nodes = async () =>
    ((await sb.runtime("GET", "/v1/nodes")).body as { nodes: { labels: Record<string, string> }[] }).nodes.map(
      (n) => n.labels["discovery/instance-id"],
    );
  const until = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 90_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`${what}: not within 90 s`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  };

  beforeAll(async () => {
    sb = await startExampleSandbox();
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  });

  it("enrolls the fleet with a DiscoveryConfig alone, and shows its status after a refresh without a diff", async () => {
    const web = await sb.launch({ tags: "fleet=web", count: 2 });
    const other = await sb.launch({ tags: "fleet=db" });
    const made = await exampleStack("discovery-config-only", sb.env, "config-only");
    dir = made.dir;
    const up = await made.stack.up();
    expect(up.outputs.status?.value).toBeUndefined();
    await until("the fleet=web instances joined", async () => {
      const n = await nodes();
      return web.every((id) => n.includes(id));
    });
    expect(await nodes()).not.toContain(other[0]);

    // A refresh updates the resource's state (stack outputs follow at the next up, which has nothing to change).
    let status: Record<string, unknown> | undefined;
    await until("a running status after the pass", async () => {
      const refreshed = await made.stack.refresh();
      expect(refreshed.summary.resourceChanges).not.toHaveProperty("update");
      const state = await made.stack.exportStack();
      const resources = (state.deployment as { resources: { type: string; outputs?: Record<string, unknown> }[] })
        .resources;
      status = resources.find((r) => r.type === "pulumi-nodejs:dynamic/discovery:DiscoveryConfig")?.outputs?.status as
        Record<string, unknown> | undefined;
      return status?.state === "running" && status.enrolled === 2;
    });
    expect(status).toMatchObject({ state: "running", errorMessage: "", found: 2, enrolled: 2, failed: 0 });
    expect(status?.lastSyncTime).toEqual(expect.any(String));
    expect((await made.stack.preview()).changeSummary).toEqual({ same: 3 });
    const again = await made.stack.up();
    expect(again.summary.resourceChanges).toEqual({ same: 3 });
    expect(again.outputs.status.value).toMatchObject({ found: 2, enrolled: 2 });

    await made.stack.destroy();
    const late = await sb.launch({ tags: "fleet=web" });
    await new Promise((r) => setTimeout(r, 35_000)); // two polls of the sandbox runtime
    expect(await nodes()).not.toContain(late[0]);
  });
});
