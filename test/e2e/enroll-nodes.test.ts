import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EC2Client, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { request } from "../../provider/http/client";
import { discoveryAsync } from "../fixtures/cli";
import { ensureBuilt, parseEnvFile } from "../fixtures/sandbox";

/**
 * What `discovery enroll --config` takes (a teleport.yaml, discovery_config documents, several files, the runtime
 * from the environment), stale nodes of terminated instances (marked, shown, removed after the grace period), and
 * `--reinstall`, against the sandbox.
 */
const ACCOUNT = "123456789012";
const REGION = "us-west-2";

type Instance = { instance_id: string; status: string; reason?: string };
type ApiNode = { name: string; joined_at: string; state: string; stale_since?: string };

describe("discovery enroll: inputs, stale nodes and reinstall, against the sandbox", () => {
  let dir: string;
  let env: Record<string, string | undefined>;
  const ids: Record<string, string[]> = {};
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  // The SDK's own switch is cleared, so a run shows whether our entry points keep its warning out.
  const cli = (args: string[]) =>
    discoveryAsync(args, { env: { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined } });
  const enroll = async (...args: string[]) => {
    const r = await cli(["enroll", "--once", "--json", "--join-timeout", "45", ...args]);
    expect(r.stderr).not.toContain("node >=22");
    expect(r.status).toBe(0);
    return new Map((JSON.parse(r.stdout).instances as Instance[]).map((i) => [i.instance_id, i]));
  };
  const nodes = async (): Promise<Map<string, ApiNode>> => {
    const r = await cli(["get", "nodes", "-o", "json"]);
    expect(r.status).toBe(0);
    return new Map((JSON.parse(r.stdout) as ApiNode[]).map((n) => [n.name, n]));
  };
  const launch = async (tags: string, count: number) => {
    const r = await cli(
      ["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", REGION].concat([
        "--tags",
        tags,
        "--count",
        String(count),
        "--agentless",
      ]),
    );
    expect(r.status).toBe(0);
    return r.stdout.trim().split("\n");
  };
  const matcher = (tag: string) =>
    JSON.stringify({
      types: ["ec2"],
      regions: [REGION],
      tags: { fleet: tag },
      install: { mode: "agentless", join_params: { token_name: "ec2-token", method: "ec2" } },
    });

  let teleportYaml: string;
  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-enroll-nodes-"));
    expect((await discoveryAsync(["sandbox", "start", "--dir", dir])).status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    const token = file(
      "token.yaml",
      `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}"}]}\n`,
    );
    expect((await cli(["apply", "-f", token])).status).toBe(0);
    ids.tele = await launch("fleet=tele", 2);
    ids.docs = await launch("fleet=docs", 1);
    teleportYaml = file(
      "teleport.yaml",
      `version: v3\nteleport: {nodename: discovery}\nauth_service: {enabled: false}\n` +
        `discovery_service:\n  enabled: yes\n  stale_node_grace: 3s\n  aws: [${matcher("tele")}]\n`,
    );
  });
  afterAll(async () => {
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("enrolls from a teleport.yaml, the runtime named by DISCOVERY_SERVER and friends", async () => {
    const r = await enroll("--config", teleportYaml);
    expect([...r.values()].map((i) => [i.instance_id, i.status]).sort()).toEqual(
      ids.tele.map((id) => [id, "enrolled"]).sort(),
    );
  });

  it("combines the matchers of two files, one of them discovery_config documents", async () => {
    const docs = file(
      "docs.yaml",
      `kind: token\nversion: v2\nmetadata: {name: unused}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}"}]}\n---\n` +
        `kind: discovery_config\nversion: v1\nmetadata: {name: docs}\nspec: {discovery_group: g, aws: [${matcher("docs")}]}\n`,
    );
    const r = await enroll("--config", docs, "--config", teleportYaml);
    expect(r.get(ids.docs[0])?.status).toBe("enrolled");
    for (const id of ids.tele) expect(r.get(id)?.status).toBe("already_enrolled");
  });

  it("refuses a file without matchers, naming it and what to add", async () => {
    const tokensOnly = file("tokens-only.yaml", fs.readFileSync(path.join(dir, "token.yaml"), "utf8"));
    const r = await cli(["enroll", "--once", "--config", teleportYaml, "--config", tokensOnly]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `${tokensOnly}: holds no matchers; add aws, gcp or azure matchers under discovery_service`,
    );
    expect(r.stdout).toBe("");
  });

  it("marks the node of a terminated instance stale at the next pass, then removes it after the grace period", async () => {
    const [gone, kept] = ids.tele;
    const ec2 = new EC2Client({
      region: REGION,
      endpoint: env.AWS_ENDPOINT_URL,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
    ec2.destroy();

    const pass = await cli(["enroll", "--once", "--config", teleportYaml]);
    expect(pass.status).toBe(0);
    expect(pass.stderr).toContain(`node ${ACCOUNT}-${gone} is stale: its instance is terminated or gone`);
    const listed = await nodes();
    expect(listed.get(`${ACCOUNT}-${gone}`)).toMatchObject({ state: "stale", stale_since: expect.any(String) });
    expect(listed.get(`${ACCOUNT}-${kept}`)?.state).toBe("active");
    const table = (await cli(["get", "nodes"])).stdout;
    expect(table.split("\n")[0]).toMatch(/STATE\s+SINCE$/);
    expect(table).toMatch(new RegExp(`${ACCOUNT}-${gone} .* stale\\s+\\d{4}-`));

    await new Promise((r) => setTimeout(r, 3500));
    const later = await cli(["enroll", "--once", "--config", teleportYaml]);
    expect(later.stderr).toContain(`node ${ACCOUNT}-${gone} removed: stale for longer than the grace period`);
    const after = await nodes();
    expect(after.has(`${ACCOUNT}-${gone}`)).toBe(false);
    expect(after.get(`${ACCOUNT}-${kept}`)?.state).toBe("active");
  });

  it("reinstalls a joined instance with --reinstall: it joins again with a new certificate", async () => {
    const id = ids.tele[1];
    const name = `${ACCOUNT}-${id}`;
    const before = (await nodes()).get(name)!;
    const r = await enroll("--config", teleportYaml, "--reinstall", id);
    expect(r.get(id)?.status).toBe("enrolled");
    const after = (await nodes()).get(name)!;
    expect(Date.parse(after.joined_at)).toBeGreaterThan(Date.parse(before.joined_at));
    const audit = (
      await request(
        { server: env.DISCOVERY_SERVER!, adminToken: env.DISCOVERY_ADMIN_TOKEN, caFile: env.NODE_EXTRA_CA_CERTS },
        "GET",
        "/v1/audit",
      )
    ).body as { events: { type: string; node?: string }[] };
    const mine = audit.events.filter((e) => e.node === name).map((e) => e.type);
    expect(mine.filter((t) => t === "join.accepted")).toHaveLength(2);
    expect(mine).toContain("enrollment.reinstall");
  });
});
