/**
 * `discovery enroll` against the sandbox (moto behind the SSM simulator, a simulated fleet, a runtime) where the
 * custom SSM document exists in us-east-1 only and one matcher names a token the runtime does not have: nothing is
 * sent where it cannot work, the output and the tasks say which document or token, which account and the fix, and
 * the pass after the fix installs. Then `--retry-failed` retries an instance whose installer failed, at once.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ListCommandsCommand } from "@aws-sdk/client-ssm";
import { createInstallerDocument } from "../../provider/clouds/aws/ssm-document";
import { builtinInstallers } from "../../provider/runtime/installers";
import { discoveryAsync } from "../fixtures/cli";
import { enrollConfigFile, ensureBuilt, parseEnvFile, sandboxApi, sandboxSsm } from "../fixtures/sandbox";
import { tokenDocument } from "../fixtures/store-documents";

const ACCOUNT = "123456789012";
const DOCUMENT = "DiscoveryInstaller";

type Instance = { instance_id: string; region: string; status: string; reason?: string };

describe("discovery enroll checks the token and the SSM document before sending", () => {
  let dir: string;
  let env: Record<string, string>;
  let config: string;
  const ids: Record<string, string[]> = {};
  const cli = (args: string[]) => discoveryAsync(args, { env });
  const api = (method: string, route: string, body?: object | string) => sandboxApi(env, method, route, body);
  const ssm = (region: string) => sandboxSsm(env, region);
  /** The instance ids of every command sent in `region`. */
  const commandTargets = async (region: string) => {
    const client = ssm(region);
    const out = await client.send(new ListCommandsCommand({ MaxResults: 50 }));
    client.destroy();
    return (out.Commands ?? []).flatMap((c) => c.InstanceIds ?? []);
  };
  const createDocument = async (region: string) => {
    const client = ssm(region);
    await createInstallerDocument(client, { name: DOCUMENT, mode: "agent" });
    client.destroy();
  };
  const launch = async (region: string, role: string) => {
    const r = await cli([
      ...["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", region],
      ...["--tags", `fleet=checks,role=${role}`],
      ...(role === "docs" ? ["--count", "2"] : []),
    ]);
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n");
  };
  const pass = async (...flags: string[]) => {
    const r = await cli(["enroll", "--config", config, "--once", "--json", "--join-timeout", "40", ...flags]);
    expect(r.status).not.toBe(1);
    const instances = JSON.parse(r.stdout).instances as Instance[];
    expect(r.status).toBe(instances.some((i) => i.status === "failed") ? 3 : 0);
    return new Map(instances.map((i) => [i.instance_id, i]));
  };
  const statusOf = (m: Map<string, Instance>, group: string[]) => group.map((id) => m.get(id)?.status);

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-enroll-checks-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    const token = tokenDocument("iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] });
    expect((await api("PUT", "/v1/resources", token)).status).toBe(200);
    await createDocument("us-east-1");
    ids.east = await launch("us-east-1", "docs");
    ids.west = await launch("us-west-2", "docs");
    ids.orphan = await launch("us-east-1", "orphan");
    ids.flaky = await launch("us-east-1", "flaky");
    const iam = { join_params: { token_name: "iam-token", method: "iam" } };
    const matcher = (role: string, extra: Record<string, unknown>) => ({
      ...{ types: ["ec2"], regions: ["us-east-1"], tags: { fleet: "checks", role } },
      ...extra,
    });
    config = enrollConfigFile(dir, "enroll.yaml", {
      enabled: true,
      aws: [
        matcher("docs", { regions: ["us-east-1", "us-west-2"], ssm: { document_name: DOCUMENT }, install: iam }),
        matcher("orphan", { install: { join_params: { token_name: "no-such-token", method: "iam" } } }),
        // An installer the runtime does not serve yet: the download fails until it is applied.
        matcher("flaky", { install: { ...iam, script_name: "later-installer" } }),
      ],
    });
  });
  afterAll(async () => {
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("sends nothing to the region without the document nor to the instance without a token, and says why", async () => {
    const first = await pass();
    expect(statusOf(first, ids.east)).toEqual(["enrolled", "enrolled"]);
    expect(statusOf(first, [...ids.west, ...ids.orphan, ...ids.flaky])).toEqual(["failed", "failed", "failed", "failed"]); // prettier-ignore
    expect(first.get(ids.west[0])!.reason).toBe(
      `ssm-document-missing: SSM document "${DOCUMENT}" does not exist in account ${ACCOUNT}, region us-west-2; ` +
        `fix: create "${DOCUMENT}" in account ${ACCOUNT}, region us-west-2 (SSM documents are regional: one in ` +
        `every region the matcher scans; e.g. aws.SsmInstallerDocument with region "us-west-2"), or set the ` +
        "matcher's ssm.document_name to AWS-RunShellScript, which every region has; nothing was sent to the " +
        "instance; the next pass checks again",
    );
    expect(first.get(ids.orphan[0])!.reason).toMatch(
      new RegExp(
        `^join-token-missing: join token "no-such-token" does not exist in the runtime, so instance ` +
          `${ids.orphan[0]} of aws account ${ACCOUNT} \\(us-east-1\\) could not join; fix: create it `,
      ),
    );
    // AWS-RunShellScript fetches the installer in its one step: curl's 404 is the script's exit code.
    expect(first.get(ids.flaky[0])!.reason).toMatch(/^script-failure: the installer exited with code 22: curl: \(22\) .*404/); // prettier-ignore

    // SSM saw commands for the east instances and the flaky one only.
    expect(await commandTargets("us-west-2")).toEqual([]);
    expect((await commandTargets("us-east-1")).sort()).toEqual([...ids.east, ...ids.flaky].sort());

    const tasks = (await api("GET", "/v1/tasks")).body.tasks as {
      issue_type: string;
      scope: string;
      fix: string;
      instances: { instance_id: string }[];
    }[];
    const docTask = tasks.find((t) => t.issue_type === "ssm-document-missing")!;
    expect(docTask.scope).toBe(`${ACCOUNT}/us-west-2`);
    expect(docTask.instances.map((i) => i.instance_id).sort()).toEqual([...ids.west].sort());
    expect(docTask.fix).toContain(`create "${DOCUMENT}" in account ${ACCOUNT}, region us-west-2`);
    const tokenTask = tasks.find((t) => t.issue_type === "join-token-missing")!;
    expect(tokenTask.scope).toBe(`${ACCOUNT}/us-east-1`);
    expect(tokenTask.fix).toContain(`join_method iam, an allow rule for ${ACCOUNT}`);
  });

  it("installs in the region once the document exists there, without waiting for a backoff", async () => {
    await createDocument("us-west-2");
    const second = await pass();
    expect(statusOf(second, ids.west)).toEqual(["enrolled", "enrolled"]);
    expect((await commandTargets("us-west-2")).sort()).toEqual([...ids.west].sort());
    // The instance whose installer failed is backing off, and was sent nothing.
    expect(second.get(ids.flaky[0])).toMatchObject({ status: "skipped" });
    expect(second.get(ids.flaky[0])!.reason).toMatch(/^script-failure: backing off after 1 failed attempt\(s\) until /);
  });

  it("retries the failed instance at once with --retry-failed", async () => {
    const script = builtinInstallers().get("default-installer")!;
    const installer = JSON.stringify({ kind: "installer", version: "v1", metadata: { name: "later-installer" }, spec: { script } }); // prettier-ignore
    expect((await api("PUT", "/v1/resources", installer)).status).toBe(200);
    const third = await pass("--retry-failed");
    expect(statusOf(third, ids.flaky)).toEqual(["enrolled"]);
    // Only the orphan still fails, with the same reason and nothing sent.
    expect(statusOf(third, ids.orphan)).toEqual(["failed"]);
    expect(await commandTargets("us-east-1")).not.toContain(ids.orphan[0]);
  });
});
