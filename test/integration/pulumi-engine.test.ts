import * as fs from "fs";
import { ENGINE_PROGRAM, upPreviewDestroy } from "../fixtures/engine-checks";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack } from "../fixtures/pulumi";

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
