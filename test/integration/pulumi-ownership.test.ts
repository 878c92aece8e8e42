import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { discoveryAsync } from "../fixtures/cli";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack, TOOLS_BIN } from "../fixtures/pulumi";
import { ensureBuilt } from "../fixtures/sandbox";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const PROGRAM = path.resolve(__dirname, "../fixtures/pulumi-ownership-program");
const OWNER_LABEL = "discovery/owner";
/** A token applied with the CLI before any stack: two allow rules. */
const CLI_TOKEN = {
  kind: "token",
  version: "v2",
  metadata: { name: "shared-token" },
  spec: {
    roles: ["Node"],
    join_method: "iam",
    allow: [{ aws_account: "111111111111" }, { aws_account: "222222222222" }],
  },
};

/** Runs `fn` and returns the message of what it throws. */
async function failure(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return String((err as Error).message);
  }
  throw new Error("expected the operation to fail");
}

/**
 * One ProvisionToken that the CLI, two stacks and shells with different DISCOVERY_SERVERs compete for, through the
 * real engine: who may create, update and delete the runtime's document, and what preview and refresh say.
 */
describe("a ProvisionToken's document is owned by one stack, on the runtime recorded at create", () => {
  let rt: TestRuntime;
  let dir: string;
  let stateDir: string;
  let env: Record<string, string>;
  /** The program's stack `name` in a shell whose DISCOVERY_SERVER is `server` ("" for none). */
  const stackIn = (name: string, server = rt.url): Promise<Stack> =>
    localStack(dir, name, { ...env, DISCOVERY_SERVER: server });
  const stored = () => rt.call("GET", "/v1/resources/token/shared-token", undefined, { admin: true });

  beforeAll(async () => {
    ensureBuilt();
    rt = await startTestRuntime();
    dir = copyProgram(PROGRAM, IN_REPO_WORK);
    linkPackage(dir);
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-ownership-"));
    env = { DISCOVERY_ADMIN_TOKEN: rt.runtime.adminToken, NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile };
  });
  afterAll(async () => {
    await rt?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("reports a bad property as the program spells it, with advice for code", async () => {
    const a = await stackIn("a");
    await a.setConfig("account", { value: "12345" });
    const message = await failure(() => a.preview());
    expect(message).toContain(
      "resource 'shared' has a problem: allow[0].awsAccount: must be a 12-digit AWS account id such as " +
        '"123456789012" (pass it as a string: a number loses the leading zeros)',
    );
    expect(message).not.toContain("YAML");
    await a.removeConfig("account");
  });

  it("refuses to create over a token applied with the CLI, saying how to adopt it; adopt: true takes it over", async () => {
    expect((await rt.call("PUT", "/v1/resources", CLI_TOKEN, { admin: true })).status).toBe(200);
    const a = await stackIn("a");
    const refused = await failure(() => a.up());
    expect(refused).toContain(
      `token "shared-token" already exists in the runtime ${rt.url}, written outside Pulumi (discovery apply, the ` +
        "API, or a version without owner labels); creating it would overwrite it. To manage it from this stack, set " +
        "adopt: true on the resource",
    );
    expect((await stored()).body.spec.allow).toEqual(CLI_TOKEN.spec.allow); // no allow rule lost

    // discovery preview --adopt: the update of the document the runtime holds, with the properties it changes.
    const docs = path.join(stateDir, "token.yaml");
    fs.writeFileSync(
      docs,
      JSON.stringify({ ...CLI_TOKEN, spec: { ...CLI_TOKEN.spec, allow: [CLI_TOKEN.spec.allow[0]] } }),
    );
    const adopting = await discoveryAsync(["preview", "--adopt", "--config", docs, "--state-dir", stateDir], {
      env: { ...env, DISCOVERY_SERVER: rt.url, PATH: `${TOOLS_BIN}${path.delimiter}${process.env.PATH ?? ""}` },
    });
    expect(adopting.stderr).toMatch(
      /^update +ProvisionToken +token\/shared-token +would update \(allow\), taking over the runtime's document \(no owner\)$/m,
    );
    expect(adopting.stderr).toMatch(/^preview of stack dev: 1 to update$/m);
    expect(adopting.status).toBe(0);

    await a.setConfig("adopt", { value: "true" });
    const up = await a.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, create: 1 }); // the stack, made by the refused up
    const doc = (await stored()).body;
    expect(doc.spec.allow).toEqual([{ aws_account: "111111111111" }]);
    expect(doc.metadata.labels).toEqual({ [OWNER_LABEL]: up.outputs.urn.value });
    expect(up.outputs.owner.value).toBe(up.outputs.urn.value);
  });

  it("makes a second stack adopt it too; destroying the first then leaves the token, saying so", async () => {
    const a = await stackIn("a");
    const b = await stackIn("b");
    const aUrn = (await a.outputs()).urn.value;
    expect(await failure(() => b.up())).toContain(
      `token "shared-token" already exists in the runtime ${rt.url}, owned by ${aUrn}`,
    );
    await b.setConfig("adopt", { value: "true" });
    const bUrn = (await b.up()).outputs.urn.value;

    const destroy = await a.destroy();
    expect(destroy.summary.result).toBe("succeeded");
    expect(destroy.stdout).toContain(
      `token "shared-token" was left in the runtime ${rt.url}, not deleted: it is owned by ${bUrn}, which adopted it`,
    );
    expect((await stored()).body.metadata.labels).toEqual({ [OWNER_LABEL]: bUrn });
  });

  it("in a shell without DISCOVERY_SERVER, refreshes from the recorded runtime: drift shows as an update reverting it", async () => {
    const edited = (await stored()).body;
    edited.spec.allow.push({ aws_account: "999999999999" });
    expect((await rt.call("PUT", "/v1/resources", edited, { admin: true })).status).toBe(200);
    const b = await stackIn("b", "");
    const preview = await b.preview({ refresh: true, diff: true });
    expect(preview.changeSummary).toEqual({ same: 1, update: 1 });
    expect(preview.stdout).toMatch(/~ allow *: \[/);
    expect(preview.stdout).toMatch(/- \[1\]: \{\s+- awsAccount: "999999999999"/);
    await b.up({ refresh: true });
    expect((await stored()).body.spec.allow).toEqual([{ aws_account: "111111111111" }]);
  });

  it("refuses refresh and destroy while DISCOVERY_SERVER names another runtime; destroys it without the variable", async () => {
    const other = "https://127.0.0.1:9";
    const elsewhere = await stackIn("b", other);
    const refused = `lives on the runtime ${rt.url} (recorded in the stack's state when it was created, from DISCOVERY_SERVER), but DISCOVERY_SERVER is now ${other}: refusing to act on another runtime`;
    expect(await failure(() => elsewhere.refresh())).toContain(refused);
    expect(await failure(() => elsewhere.destroy())).toContain(refused);
    expect((await stored()).status).toBe(200);

    const destroy = await (await stackIn("b", "")).destroy();
    expect(destroy.summary.resourceChanges).toEqual({ delete: 2 });
    expect((await stored()).status).toBe(404);
  });
});
