import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack, REPO } from "../fixtures/pulumi";

/** The program both engine tests run: two ResourceDocuments. */
export const ENGINE_PROGRAM = path.join(REPO, "test", "fixtures", "pulumi-program");

/** up, a preview that must show no change, and destroy: what a user's first session does. */
export async function upPreviewDestroy(stack: Stack): Promise<void> {
  const up = await stack.up();
  expect(up.summary.result).toBe("succeeded");
  expect(up.summary.resourceChanges).toEqual({ create: 3 }); // the stack and two documents
  expect(up.outputs.tokenUrn.value).toMatch(/::pulumi-nodejs:dynamic\/discovery:ResourceDocument::ec2-token$/);
  expect(up.outputs.tokenYaml.value).toContain("aws_iid_ttl: 5m"); // default applied by the model
  const config = JSON.parse(up.outputs.configJson.value);
  expect(config.spec.aws[0].install).toEqual({
    join_params: { token_name: "aws-discovery-iam-token", method: "iam" },
    script_name: "default-agentless-installer",
    mode: "agentless",
    sshd_config: "/etc/ssh/sshd_config",
  });
  expect(config.spec.aws[0].tags).toEqual({ env: "prod", "team-name": ["a", "b"] });

  const preview = await stack.preview();
  expect(preview.changeSummary).toEqual({ same: 3 });

  const destroy = await stack.destroy();
  expect(destroy.summary.result).toBe("succeeded");
  expect(destroy.summary.resourceChanges).toEqual({ delete: 3 });
}

describe("the real Pulumi engine with this package linked inside the repo", () => {
  let dir: string;
  beforeAll(() => {
    dir = copyProgram(ENGINE_PROGRAM, IN_REPO_WORK);
    linkPackage(dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("runs up, a no-change preview, and destroy", async () => {
    await upPreviewDestroy(await localStack(dir, "linked"));
  });

  it("refuses an invalid document at preview, naming the camelCase property, and creates nothing", async () => {
    const stack = await localStack(dir, "invalid");
    await stack.setConfig("account", { value: "12345" });
    const err = await stack.preview().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(String(err?.message)).toContain("spec.allow[0].awsAccount");
    expect(String(err?.message)).toContain("must be a 12-digit AWS account id");
    const state = await stack.exportStack();
    expect(state.deployment.resources ?? []).toHaveLength(0);
  });
});
