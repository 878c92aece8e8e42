import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { discoveryAsync } from "../fixtures/cli";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack, REPO } from "../fixtures/pulumi";
import { ensureBuilt, parseEnvFile } from "../fixtures/sandbox";

/** `pulumi up` enrolls a simulated fleet; `pulumi preview` shows the instances a new update would enroll. */
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
    expect((await stack.preview()).changeSummary).toEqual({ same: 3 });

    const [added] = await launch(1);
    const preview = await stack.preview({ diff: true });
    expect(preview.changeSummary).toEqual({ same: 2, update: 1 });
    expect(preview.stdout).toContain(`123456789012-${added}`);

    const again = await stack.up();
    expect(again.outputs.enrolled.value).toBe(3);
    const statuses = Object.fromEntries(
      again.outputs.instances.value.map((i: { instanceId: string; status: string }) => [i.instanceId, i.status]),
    );
    expect(statuses[added]).toBe("enrolled");
    expect(statuses[first[0]]).toBe("already_enrolled");
    expect((await stack.preview()).changeSummary).toEqual({ same: 3 });
    await stack.destroy();
  });
});
