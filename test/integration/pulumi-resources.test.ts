import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { Stack } from "@pulumi/pulumi/automation";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack } from "../fixtures/pulumi";

const PROGRAM = path.resolve(__dirname, "../fixtures/pulumi-resources-program");
const SECRET_TOKEN = "join-secret-8f2c1e7d9a4b";

/** A resource of an exported deployment. */
interface StateResource {
  urn: string;
  type: string;
  id?: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

/** Whether an exported state value is a secret (`stack export --show-secrets` keeps the marker). */
function isSecret(value: unknown): boolean {
  return typeof value === "object" && value !== null && "4dabf18193072939515e22adb298388d" in value;
}

/** Every file under `dir`. */
function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Runs `fn` and returns the error it throws (undefined when it does not). */
async function failure(fn: () => Promise<unknown>): Promise<Error | undefined> {
  return fn().then(
    () => undefined,
    (e: Error) => e,
  );
}

describe("ProvisionToken, Installer and DiscoveryConfig against a runtime, through the real engine", () => {
  let rt: TestRuntime;
  let dir: string;
  let stack: Stack;
  const get = async (kind: string, name: string) => (await rt.call("GET", `/v1/resources/${kind}/${name}`)).status;
  const getAdmin = (kind: string, name: string) =>
    rt.call("GET", `/v1/resources/${kind}/${encodeURIComponent(name)}`, undefined, { admin: true });

  /** The admin token and the token-method token's name are nowhere in the state in clear, history included. */
  const expectSecretsKept = async () => {
    // stack.exportStack() decrypts secrets (it runs `stack export --show-secrets`), so read what is at rest:
    // every file of the local backend, checkpoints and history alike.
    const files = walk(path.join(dir, ".backend"));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const raw = fs.readFileSync(file);
      const text = (file.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("utf8");
      expect(text).not.toContain(rt.runtime.adminToken);
      expect(text).not.toContain(SECRET_TOKEN);
    }
    const resources = (await stack.exportStack()).deployment.resources as StateResource[];
    const secretToken = resources.find((r) => r.urn.endsWith("::secret-token"))!;
    expect(isSecret(secretToken.inputs.name)).toBe(true);
    expect(isSecret(secretToken.outputs.name)).toBe(true);
    expect(secretToken.id).not.toContain(SECRET_TOKEN);
    for (const r of resources.filter((r) => r.type.startsWith("pulumi-nodejs:dynamic/discovery:"))) {
      expect(isSecret(r.inputs.adminToken)).toBe(true);
      expect(isSecret(r.outputs.adminToken)).toBe(true);
    }
    const ec2Token = resources.find((r) => r.urn.endsWith("::ec2-token"))!;
    expect(ec2Token.outputs.name).toMatch(/^ec2-token/); // names that are not secrets stay readable
  };

  beforeAll(async () => {
    rt = await startTestRuntime();
    dir = copyProgram(PROGRAM, IN_REPO_WORK);
    linkPackage(dir);
    stack = await localStack(dir, "resources", { NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile });
    await stack.setConfig("discovery:server", { value: rt.url });
    await stack.setConfig("discovery:adminToken", { value: rt.runtime.adminToken, secret: true });
    await stack.setConfig("secretToken", { value: SECRET_TOKEN, secret: true });
  });
  afterAll(async () => {
    await rt?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("creates every resource in the runtime, with the dynamic types of SPEC §5", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 5 }); // the stack and four resources
    const types = (up.outputs.urns.value as string[]).map((u) => u.split("::")[2]);
    expect(types).toEqual([
      "pulumi-nodejs:dynamic/discovery:ProvisionToken",
      "pulumi-nodejs:dynamic/discovery:ProvisionToken",
      "pulumi-nodejs:dynamic/discovery:Installer",
      "pulumi-nodejs:dynamic/discovery:DiscoveryConfig",
    ]);
    expect(up.outputs.ec2TokenIidTtl.value).toBe("5m"); // the model's default, as an output
    expect(up.outputs.matcherInstall.value).toEqual({
      joinParams: { tokenName: "ec2-token", method: "ec2" },
      scriptName: "default-agentless-installer",
      mode: "agentless",
      sshdConfig: "/etc/ssh/sshd_config",
    });

    expect(await get("token", "ec2-token")).toBe(401); // the admin API wants the token
    const ec2 = await getAdmin("token", "ec2-token");
    expect(ec2.status).toBe(200);
    expect(ec2.body.spec.allow).toEqual([{ aws_account: "123456789012", aws_regions: ["us-east-1", "eu-west-1"] }]);
    const secret = await getAdmin("token", SECRET_TOKEN);
    expect(secret.status).toBe(200);
    expect(secret.body.metadata.name).toBe("(secret)");
    expect((await getAdmin("installer", "custom-installer")).body.metadata.description).toBe("first");
    const config = await getAdmin("discovery_config", "prod");
    expect(config.body.spec.aws[0].assume_role).toEqual({
      role_arn: "arn:aws:iam::123456789012:role/discovery",
      external_id: "ext-id",
    });
    expect(config.body.spec.aws[0].ssm).toEqual({ document_name: "DiscoveryInstaller" });
  });

  it("shows no change in a preview right after up", async () => {
    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ same: 5 });
  });

  it("keeps the admin token and the token-method token's name out of the state in clear", async () => {
    await expectSecretsKept();
  });

  it("updates a changed field in place", async () => {
    await stack.setConfig("installerDescription", { value: "second" });
    await stack.setConfig("account", { value: "210987654321" });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 3, update: 2 });
    expect((await getAdmin("installer", "custom-installer")).body.metadata.description).toBe("second");
    expect((await getAdmin("token", "ec2-token")).body.spec.allow[0].aws_account).toBe("210987654321");
  });

  it("replaces a resource whose name changes, removing the old document", async () => {
    await stack.setConfig("ec2Name", { value: "ec2-token-2" });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 4, replace: 1 });
    expect((await getAdmin("token", "ec2-token")).status).toBe(404);
    expect((await getAdmin("token", "ec2-token-2")).status).toBe(200);
  });

  it("fails preview on a bad field, naming the camelCase property, and changes nothing", async () => {
    await stack.setConfig("account", { value: "12345" });
    const err = await failure(() => stack.preview());
    expect(String(err?.message)).toContain("allow[0].awsAccount");
    expect(String(err?.message)).toContain("must be a 12-digit AWS account id");
    await stack.setConfig("account", { value: "210987654321" });
    expect((await getAdmin("token", "ec2-token-2")).body.spec.allow[0].aws_account).toBe("210987654321");
  });

  it("sees a document changed behind its back on refresh, and up restores the declared one", async () => {
    const edited = (await getAdmin("installer", "custom-installer")).body;
    edited.metadata.description = "edited by hand";
    expect((await rt.call("PUT", "/v1/resources", edited, { admin: true })).status).toBe(200);
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges).toEqual({ same: 4, update: 1 });
    await expectSecretsKept(); // a refresh rewrites the inputs from what the runtime holds
    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ same: 4, update: 1 });
    await stack.up();
    expect((await getAdmin("installer", "custom-installer")).body.metadata.description).toBe("second");
  });

  it("sees a document deleted behind its back on refresh, and up puts it back", async () => {
    const del = await rt.call("DELETE", "/v1/resources/installer/custom-installer", undefined, { admin: true });
    expect(del.status).toBe(200);
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges).toEqual({ same: 4, delete: 1 });
    const urns = ((await stack.exportStack()).deployment.resources ?? []).map((r: { urn: string }) => r.urn);
    expect(urns.some((u: string) => u.endsWith("::installer"))).toBe(false);
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 4, create: 1 });
    expect((await getAdmin("installer", "custom-installer")).status).toBe(200);
  });

  it("removes every document from the runtime on destroy", async () => {
    const destroy = await stack.destroy();
    expect(destroy.summary.resourceChanges).toEqual({ delete: 5 });
    for (const [kind, name] of [
      ["token", "ec2-token-2"],
      ["token", SECRET_TOKEN],
      ["installer", "custom-installer"],
      ["discovery_config", "prod"],
    ])
      expect((await getAdmin(kind, name)).status).toBe(404);
  });
});
