import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { discoveryAsync } from "../fixtures/cli";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack, REPO } from "../fixtures/pulumi";
import { ensureBuilt, parseEnvFile } from "../fixtures/sandbox";

/**
 * `pulumi up` enrolls a simulated fleet; `pulumi preview` shows only the instances a new update would enroll, and no
 * change for an unchanged fleet.
 */
describe("the Enrollment resource through the real engine, against the sandbox", () => {
  let sandbox: string;
  let env: Record<string, string>;
  let program: string;
  const launch = async (count: number) =>
    (
      await discoveryAsync(
        [
          "sandbox",
          "launch",
          "--dir",
          sandbox,
          "--account",
          "123456789012",
          "--region",
          "us-east-1",
          "--tags",
          "team=pulumi",
          "--agentless",
          "--count",
          String(count),
        ],
        { env },
      )
    ).stdout
      .trim()
      .split("\n");

  beforeAll(async () => {
    ensureBuilt();
    sandbox = fs.mkdtempSync(path.join(os.tmpdir(), "pd-pulumi-enroll-"));
    expect((await discoveryAsync(["sandbox", "start", "--dir", sandbox])).status).toBe(0);
    env = parseEnvFile(path.join(sandbox, "env.sh"));
    program = copyProgram(path.join(REPO, "test", "fixtures", "pulumi-enrollment-program"), IN_REPO_WORK);
    linkPackage(program);
  });
  afterAll(async () => {
    if (sandbox) await discoveryAsync(["sandbox", "stop", "--dir", sandbox]);
    if (sandbox) fs.rmSync(sandbox, { recursive: true, force: true });
    if (program) fs.rmSync(program, { recursive: true, force: true });
  });

  it("enrolls on up, shows new instances at preview, enrolls them on the next up, then shows no change", async () => {
    const first = await launch(2);
    const stack = await localStack(program, "enroll", env);
    const up = await stack.up();
    expect(up.outputs.enrolled.value).toBe(2);
    expect(up.outputs.failed.value).toBe(0);
    expect(
      up.outputs.instances.value.map((i: { instanceId: string; status: string }) => [i.instanceId, i.status]).sort(),
    ).toEqual(first.map((id) => [id, "enrolled"]).sort());
    const unchanged = await stack.preview({ diff: true });
    expect(unchanged.changeSummary).toEqual({ same: 3 });
    // The AWS SDK's Node version warning from the provider process would land in the preview's output.
    expect(unchanged.stdout + unchanged.stderr).not.toContain("node >=22");

    const [added] = await launch(1);
    const preview = await stack.preview({ diff: true });
    expect(preview.changeSummary).toEqual({ same: 2, update: 1 });
    // Only the instance the update will enroll: the ones enrolled by the last update do not show as a change.
    expect(preview.stdout).toMatch(new RegExp(`\\+ +"?123456789012-${added}"?: `));
    // Instances enrolled by the last update are at most context lines, never marked added, removed or changed.
    for (const id of first) expect(preview.stdout).not.toMatch(new RegExp(`[-+~] +"?123456789012-${id}`));
    expect(preview.stdout + preview.stderr).not.toContain("node >=22");

    const again = await stack.up();
    expect(again.outputs.enrolled.value).toBe(3);
    const statuses = Object.fromEntries(
      again.outputs.instances.value.map((i: { instanceId: string; status: string }) => [i.instanceId, i.status]),
    );
    expect(statuses[added]).toBe("enrolled");
    expect(statuses[first[0]]).toBe("already_enrolled");
    // Listed by node name, so the same fleet always gives the same output.
    const names = again.outputs.instances.value.map((i: { nodeName: string }) => i.nodeName);
    expect(names).toEqual([...names].sort());
    expect((await stack.preview()).changeSummary).toEqual({ same: 3 });
    await stack.destroy();
  });
});
