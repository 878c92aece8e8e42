import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { discovery } from "../fixtures/cli";
import { freePort } from "../fixtures/moto";

const SECRET = "cli-secret-5b8e1f0a7d";

describe("discovery serve, apply, get, rm and join, as a user runs them", () => {
  let dir: string;
  let server: ChildProcess;
  let url: string;
  let env: NodeJS.ProcessEnv;
  let stderr = "";

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-cli-"));
    const port = await freePort();
    url = `https://127.0.0.1:${port}`;
    const config = { version: "v1", cluster_name: "cli.test", listen_addr: `127.0.0.1:${port}`, public_addr: url };
    fs.writeFileSync(path.join(dir, "runtime.yaml"), stringify(config));
    server = spawn(
      process.execPath,
      [path.resolve("bin/discovery.js"), "serve", "--config", path.join(dir, "runtime.yaml")],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    server.stderr?.on("data", (d) => (stderr += d));
    let log = "";
    server.stdout?.on("data", (d) => (log += d));
    const deadline = Date.now() + 30_000;
    while (!/discovery runtime listening/.test(log)) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`serve did not start: ${log}${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(log).toMatch(/"fingerprint":"([0-9A-F]{2}:){31}[0-9A-F]{2}"/);
    // The line an operator copies: where the token is, never the token itself.
    const listening = JSON.parse(log.split("\n").find((l) => l.includes("discovery runtime listening"))!);
    expect(listening.use).toBe(
      `export DISCOVERY_SERVER='${url}' DISCOVERY_ADMIN_TOKEN="$(cat '${path.join(dir, "data", "admin.token")}')" ` +
        `NODE_EXTRA_CA_CERTS='${path.join(dir, "data", "tls.crt")}'`,
    );
    expect(listening.pin).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/);
    expect(log).not.toContain(fs.readFileSync(path.join(dir, "data", "admin.token"), "utf8").trim());
    env = {
      DISCOVERY_SERVER: url,
      DISCOVERY_ADMIN_TOKEN: fs.readFileSync(path.join(dir, "data", "admin.token"), "utf8").trim(),
      NODE_EXTRA_CA_CERTS: path.join(dir, "data", "tls.crt"),
    };
  });
  afterAll(() => {
    if (server.exitCode === null) server.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("applies documents, lists them as a table and as YAML, and refuses a bad file without applying any", () => {
    const file = path.join(dir, "tokens.yaml");
    fs.writeFileSync(
      file,
      `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}\n---\n` +
        `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "123456789012"}]}\n`,
    );
    const applied = discovery(["apply", "-f", file], { env });
    expect(applied.stderr).toBe("");
    expect(applied.stdout).toBe("token/(secret) created\ntoken/ec2-token created\n");
    const again = discovery(["apply", "-f", file], { env });
    expect(again.stdout).toBe("token/(secret) updated (revision 2)\ntoken/ec2-token updated (revision 2)\n");

    const list = discovery(["get", "tokens"], { env });
    expect(list.stdout).toBe("NAME       KIND   DETAIL\nec2-token  token  ec2 roles=Node\n");
    const yaml = discovery(["get", "token", "ec2-token", "-o", "yaml"], { env });
    expect(yaml.stdout).toContain("aws_iid_ttl: 5m");

    const bad = path.join(dir, "bad.yaml");
    fs.writeFileSync(bad, "kind: installer\nversion: v1\nmetadata: {name: x}\nspec:\n  script: echo {{ .Nope }}\n");
    const refused = discovery(["apply", "-f", bad], { env });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${bad}:5:16: spec.script: template variable {{ .Nope }} is not allowed`);
    expect(refused.stderr).toContain("nothing was applied");
    expect(discovery(["get", "installer", "x"], { env }).status).toBe(1);
    expect(discovery(["get", "installers"], { env }).stdout).toBe(
      "NAME                         KIND       DETAIL\n" +
        "default-installer            installer  built-in (agent mode)\n" +
        "default-agentless-installer  installer  built-in (agentless mode)\n",
    );
  });

  it("joins a node with the token method and shows it in the inventory", () => {
    const data = path.join(dir, "node");
    const joined = discovery(
      [
        "join",
        "--method",
        "token",
        "--token",
        SECRET,
        "--server",
        url,
        "--data-dir",
        data,
        "--host-key",
        path.join(data, "hk"),
      ],
      { env: { NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS } },
    );
    expect(joined.stderr).toBe("");
    const node = /^joined as (node-[0-9a-f]{16})$/m.exec(joined.stdout)?.[1];
    expect(node).toBeDefined();
    expect(fs.readFileSync(path.join(data, "hk-cert.pub"), "utf8")).toMatch(/^ssh-ed25519-cert-v01@openssh.com /);
    expect(fs.readFileSync(path.join(data, "known_hosts"), "utf8")).toMatch(/^@cert-authority \* ssh-ed25519 /);
    const nodes = discovery(["get", "nodes"], { env });
    expect(nodes.stdout.split("\n")[0]).toMatch(
      /^NAME\s+METHOD\s+ACCOUNT\s+REGION\s+INSTANCE\s+JOINED\s+STATE\s+SINCE$/,
    );
    expect(nodes.stdout).toContain(`${node}  token`);
    const twice = discovery(
      [
        "join",
        "--method",
        "token",
        "--token",
        SECRET,
        "--server",
        url,
        "--data-dir",
        data,
        "--host-key",
        path.join(data, "hk"),
      ],
      {
        env: { NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS },
      },
    );
    expect(twice.status).toBe(1);
    expect(twice.stderr).toContain("already joined; a second join is refused (already_joined)");

    // One node in full; the audit log with the refused second join; the node removed, so it may join again.
    const one = discovery(["get", "node", node!, "-o", "json"], { env });
    expect(one.status).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ name: node, join_method: "token", state: "active" });
    expect(JSON.parse(one.stdout).principals).toContain(node);
    const missing = discovery(["get", "node", "node-0000000000000000"], { env });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no node "node-0000000000000000"');
    const audit = discovery(["get", "audit"], { env });
    expect(audit.stdout.split("\n")[0]).toMatch(/^AT\s+TYPE\s+NODE\s+CODE\s+SOURCE\s+REASON$/);
    expect(audit.stdout).toMatch(new RegExp(`join\\.refused\\s+${node}\\s+already_joined`));
    const removed = discovery(["rm", "node", node!], { env });
    expect(removed.stdout).toBe(`node/${node} deleted\n`);
    expect(discovery(["get", "nodes"], { env }).stdout).not.toContain(node);
    expect(discovery(["get", "audit", "-o", "json"], { env }).stdout).toContain('"type": "node.removed"');
    expect(discovery(["rm", "node", node!], { env }).stderr).toContain(`no node "${node}"`);
    const again = discovery(
      ["join", "--method", "token", "--token", SECRET, "--server", url, "--data-dir", data, "--host-key", path.join(data, "hk")], // prettier-ignore
      { env: { NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS } },
    );
    expect(again.stderr).toBe("");
    expect(again.stdout).toContain(`joined as ${node}`);
  });

  it("removes resources, and says what is missing when no runtime is named", () => {
    expect(discovery(["rm", "token", SECRET], { env }).stdout).toBe("token/(secret) deleted\n");
    const none = discovery(["get", "nodes"], { env: { DISCOVERY_SERVER: "", DISCOVERY_ADMIN_TOKEN: "" } });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain("no runtime: pass --server URL or set DISCOVERY_SERVER");
    const wrong = discovery(["get", "nodes"], { env: { ...env, DISCOVERY_ADMIN_TOKEN: "x".repeat(40) } });
    expect(wrong.stderr).toContain("a valid admin bearer token is required");
  });

  it("shuts down gracefully on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
    server.kill("SIGTERM");
    expect(await exited).toBe(0);
    await expect(
      new Promise((resolve, reject) =>
        https
          .get(`${url}/healthz`, { ca: fs.readFileSync(env.NODE_EXTRA_CA_CERTS as string) }, resolve)
          .on("error", reject),
      ),
    ).rejects.toThrow(/ECONNREFUSED/);
  });
});
