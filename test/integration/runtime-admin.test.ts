import * as fs from "fs";
import * as path from "path";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const TOKEN_YAML = `kind: token
version: v2
metadata: {name: ec2-token}
spec:
  roles: [Node]
  join_method: ec2
  allow: [{aws_account: "123456789012", aws_regions: [us-east-1]}]
`;
const SECRET_TOKEN = "s3cr3t-join-token-0123456789";
const SECRET_YAML = `kind: token\nversion: v2\nmetadata: {name: ${SECRET_TOKEN}}\nspec: {roles: [Node], join_method: token}\n`;

describe("the runtime's HTTP API", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime();
  });
  afterAll(async () => rt?.stop());

  it("answers ping, health, readiness and metrics without a token", async () => {
    const ping = await rt.call("GET", "/webapi/ping");
    expect(ping.status).toBe(200);
    expect(ping.body).toEqual({
      cluster_name: "discovery.test",
      server_version: expect.any(String),
      public_addr: rt.url,
    });
    expect((await rt.call("GET", "/healthz")).status).toBe(200);
    expect((await rt.call("GET", "/readyz")).body).toEqual({ status: "ready" });
    const metrics = await rt.call("GET", "/metrics");
    expect(metrics.text).toContain("discovery_nodes 0");
  });

  it("writes the admin token with mode 0600 and refuses admin calls without it (401)", async () => {
    const file = path.join(rt.dir, "data", "admin.token");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    for (const [method, p] of [
      ["GET", "/v1/nodes"],
      ["GET", "/v1/resources/token"],
      ["PUT", "/v1/resources"],
      ["POST", "/v1/certs/user"],
    ]) {
      const r = await rt.call(method, p, method === "GET" ? undefined : {});
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe("unauthorized");
    }
  });

  it("stores valid documents and refuses an invalid batch without storing any of it", async () => {
    const ok = await rt.call("PUT", "/v1/resources", TOKEN_YAML, { admin: true, contentType: "application/yaml" });
    expect(ok.status).toBe(200);
    expect(ok.body.resources).toEqual([{ kind: "token", name: "ec2-token", revision: 1 }]);

    const bad = TOKEN_YAML.replace("123456789012", "999") + "---\n" + TOKEN_YAML.replace("ec2-token", "other");
    const refused = await rt.call("PUT", "/v1/resources", bad, { admin: true, contentType: "application/yaml" });
    expect(refused.status).toBe(400);
    expect(refused.body.error.problems).toEqual([
      expect.objectContaining({ line: 7, path: ["spec", "allow", 0, "aws_account"] }),
    ]);
    // Neither the other document of the batch nor a change to the stored one was written.
    expect((await rt.call("GET", "/v1/resources/token/other", undefined, { admin: true })).status).toBe(404);
    const stored = await rt.call("GET", "/v1/resources/token/ec2-token", undefined, { admin: true });
    expect(stored.body.spec.allow[0].aws_account).toBe("123456789012");
    expect(stored.body.spec.aws_iid_ttl).toBe("5m");
  });

  it("writes and deletes on condition: If-None-Match creates only, If-Match only over the revision read", async () => {
    const doc = (name: string, account: string) => ({
      kind: "token",
      version: "v2",
      metadata: { name },
      spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: account }] },
    });
    const put = (body: unknown, headers: Record<string, string>) =>
      rt.call("PUT", "/v1/resources", body, { admin: true, headers });
    const get = () => rt.call("GET", "/v1/resources/token/cond", undefined, { admin: true });

    expect((await put(doc("cond", "111111111111"), { "if-none-match": "*" })).status).toBe(200);
    const exists = await put(doc("cond", "222222222222"), { "if-none-match": "*" });
    expect(exists.status).toBe(412);
    expect(exists.body.error).toEqual({
      code: "precondition_failed",
      message: 'token "cond" already exists; nothing was changed',
    });
    const read = await get();
    expect(read.headers.etag).toBe('"1"');

    // Another writer gets in between the read and a conditional write: the write is refused, theirs kept.
    expect((await put(doc("cond", "333333333333"), {})).status).toBe(200);
    const stale = await put(doc("cond", "444444444444"), { "if-match": read.headers.etag as string });
    expect(stale.status).toBe(412);
    expect(stale.body.error.message).toBe(
      'token "cond" changed since it was read (revision 2, not 1); nothing was changed',
    );
    const staleDelete = await rt.call("DELETE", "/v1/resources/token/cond", undefined, {
      admin: true,
      headers: { "if-match": '"1"' },
    });
    expect(staleDelete.status).toBe(412);
    expect((await get()).body.spec.allow).toEqual([{ aws_account: "333333333333" }]);

    expect((await put(doc("cond", "555555555555"), { "if-match": '"2"' })).status).toBe(200);
    const batch = await put([doc("cond", "555555555555"), doc("cond-2", "555555555555")], { "if-match": '"3"' });
    expect(batch.status).toBe(400);
    expect(batch.body.error.message).toBe("If-Match names one revision: send one document; nothing was stored");
    expect((await put(doc("cond", "555555555555"), { "if-match": "W/1" })).status).toBe(400);
    const deleted = await rt.call("DELETE", "/v1/resources/token/cond", undefined, {
      admin: true,
      headers: { "if-match": '"3"' },
    });
    expect(deleted.status).toBe(200);
    expect((await get()).status).toBe(404);
  });

  it("keeps token-method names secret: stored hashed, never listed, masked when read", async () => {
    const put = await rt.call("PUT", "/v1/resources", SECRET_YAML, { admin: true, contentType: "application/yaml" });
    expect(put.status).toBe(200);
    expect(put.text).not.toContain(SECRET_TOKEN);
    const list = await rt.call("GET", "/v1/resources/token", undefined, { admin: true });
    expect(list.text).not.toContain(SECRET_TOKEN);
    expect(list.body.resources.map((r: any) => r.metadata.name)).toEqual(["ec2-token"]);
    const one = await rt.call("GET", `/v1/resources/token/${SECRET_TOKEN}`, undefined, { admin: true });
    expect(one.status).toBe(200);
    expect(one.text).not.toContain(SECRET_TOKEN);
    expect(one.body.spec.join_method).toBe("token");
    const db = fs.readFileSync(path.join(rt.dir, "data", "discovery.db"));
    expect(db.includes(Buffer.from(SECRET_TOKEN))).toBe(false);
    const log = fs.readFileSync(path.join(rt.dir, "runtime.log"), "utf8");
    expect(log).not.toContain(SECRET_TOKEN);
    const rm = await rt.call("DELETE", `/v1/resources/token/${SECRET_TOKEN}`, undefined, { admin: true });
    expect(rm.status).toBe(200);
    expect(rm.text).not.toContain(SECRET_TOKEN);
    expect((await rt.call("DELETE", `/v1/resources/token/${SECRET_TOKEN}`, undefined, { admin: true })).status).toBe(
      404,
    );
  });

  it("serves the built-in installers and custom ones with shell-escaped values", async () => {
    for (const name of ["default-installer", "default-agentless-installer"]) {
      for (const prefix of ["/webapi", "/v1/webapi"]) {
        const r = await rt.call("GET", `${prefix}/scripts/installer/${name}`);
        expect(r.status).toBe(200);
        expect(r.headers["content-type"]).toMatch(/^text\/plain/);
        expect(r.text.startsWith("#!/bin/sh\n")).toBe(true);
        expect(r.text).toContain(`PROXY='127.0.0.1:${new URL(rt.url).port}'`);
        expect(r.text).toContain("CLUSTER='discovery.test'");
        expect(r.text).toContain(`MODE=${name === "default-installer" ? "agent" : "agentless"}`);
      }
    }
    const custom = `kind: installer\nversion: v1\nmetadata: {name: mine}\nspec:\n  script: "echo {{ .ClusterName }} {{.PublicProxyAddr}}"\n`;
    expect(
      (await rt.call("PUT", "/v1/resources", custom, { admin: true, contentType: "application/yaml" })).status,
    ).toBe(200);
    expect((await rt.call("GET", "/webapi/scripts/installer/mine")).text).toBe(
      `echo 'discovery.test' '127.0.0.1:${new URL(rt.url).port}'`,
    );
  });

  it("answers 404 for unknown installers and for names outside the pattern, without lookups", async () => {
    for (const name of ["nope", "Default-Installer", "..%2F..%2Fetc%2Fpasswd", "a".repeat(64), "-x", "x%00y"]) {
      const r = await rt.call("GET", `/webapi/scripts/installer/${name}`);
      expect([name, r.status]).toEqual([name, 404]);
    }
  });

  it("issues user certificates and refuses bad requests naming the field", async () => {
    const { execFileSync } = await import("child_process");
    const keyFile = path.join(rt.dir, "user_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    const pub = fs.readFileSync(keyFile + ".pub", "utf8").trim();
    const r = await rt.call(
      "POST",
      "/v1/certs/user",
      { public_key: pub, principals: ["root"], ttl: "10m" },
      { admin: true },
    );
    expect(r.status).toBe(200);
    fs.writeFileSync(keyFile + "-cert.pub", r.body.certificate + "\n");
    const shown = execFileSync("ssh-keygen", ["-L", "-f", keyFile + "-cert.pub"], { encoding: "utf8" });
    expect(shown).toContain("user certificate");
    expect(shown).toMatch(/Principals: \n\s+root/);
    const noKey = await rt.call("POST", "/v1/certs/user", { principals: ["root"] }, { admin: true });
    expect([noKey.status, noKey.body.error.message]).toEqual([
      400,
      "public_key: is required (an OpenSSH public key line)",
    ]);
    const longTtl = await rt.call(
      "POST",
      "/v1/certs/user",
      { public_key: pub, principals: ["root"], ttl: "9999h" },
      { admin: true },
    );
    expect([longTtl.status, longTtl.body.error.message]).toEqual([
      400,
      "ttl: must be a duration such as 1h, at most 720h",
    ]);
  });
});

describe("certificate authority rotation", () => {
  let rt: TestRuntime;
  const SECRET = "rotation-secret-0a9b8c7d";
  beforeAll(async () => {
    rt = await startTestRuntime();
    const doc = `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}\n`;
    await rt.call("PUT", "/v1/resources", doc, { admin: true, contentType: "application/yaml" });
  });
  afterAll(async () => rt?.stop());

  const joinKeys = async () => {
    const { newHostKey } = await import("../fixtures/joins");
    const r = await rt.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: newHostKey() });
    expect(r.status).toBe(200);
    return r.body.user_ca_public_keys as string[];
  };

  it("keeps the old key trusted until the rotation completes, and refuses a second start", async () => {
    const before = (await rt.call("GET", "/v1/cas", undefined, { admin: true })).body.user.public_keys as string[];
    expect(before).toHaveLength(1);
    const started = await rt.call("POST", "/v1/cas/user/rotation", { action: "start" }, { admin: true });
    expect(started.body.rotating).toBe(true);
    expect(started.body.public_keys).toHaveLength(2);
    expect(started.body.public_keys[1]).toBe(before[0]);
    expect(await joinKeys()).toEqual(started.body.public_keys); // nodes learn both keys during the rotation

    const twice = await rt.call("POST", "/v1/cas/user/rotation", { action: "start" }, { admin: true });
    expect([twice.status, twice.body.error.code]).toEqual([409, "rotation_in_progress"]);

    const done = await rt.call("POST", "/v1/cas/user/rotation", { action: "complete" }, { admin: true });
    expect(done.body).toEqual({ type: "user", public_keys: [started.body.public_keys[0]], rotating: false });
    expect(await joinKeys()).toEqual([started.body.public_keys[0]]);
  });

  it("refuses unknown authorities and actions", async () => {
    expect((await rt.call("POST", "/v1/cas/root/rotation", { action: "start" }, { admin: true })).status).toBe(404);
    const bad = await rt.call("POST", "/v1/cas/host/rotation", { action: "restart" }, { admin: true });
    expect([bad.status, bad.body.error.message]).toEqual([400, 'action: must be "start" or "complete"']);
  });
});

describe("host certificate lifetime (join.certificate_ttl)", () => {
  let rt: TestRuntime;
  const SECRET = "ttl-secret-4e7a1c9b";
  beforeAll(async () => {
    rt = await startTestRuntime({ join: { certificate_ttl: "2h30m" } });
    const doc = `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}\n`;
    await rt.call("PUT", "/v1/resources", doc, { admin: true, contentType: "application/yaml" });
  });
  afterAll(async () => rt?.stop());

  it("issues certificates valid for the configured time, as ssh-keygen reads them", async () => {
    const { execFileSync } = await import("child_process");
    const { newHostKey } = await import("../fixtures/joins");
    const before = Date.now();
    const r = await rt.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: newHostKey() });
    expect(r.status).toBe(200);
    const file = path.join(rt.dir, "host-cert.pub");
    fs.writeFileSync(file, r.body.host_certificate + "\n");
    const shown = execFileSync("ssh-keygen", ["-L", "-f", file], { encoding: "utf8", env: { TZ: "UTC" } });
    const [, from, to] = /Valid: from (\S+) to (\S+)/.exec(shown) ?? [];
    const validFrom = Date.parse(from + "Z");
    const validTo = Date.parse(to + "Z");
    // Back-dated a minute for clock skew; the lifetime counts from the moment of issue.
    expect(validTo - validFrom).toBe((2.5 * 3600 + 60) * 1000);
    expect(validTo).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 2.5 * 3600_000);
    expect(validTo).toBeLessThanOrEqual(Date.now() + 2.5 * 3600_000);
    expect(Math.abs(Date.parse(r.body.expires_at) - validTo)).toBeLessThan(1000);
  });
});

describe("readiness", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime();
  });
  afterAll(async () => rt?.stop());

  it("answers 503 with a generic reason when the store fails, the details only in the log", async () => {
    expect((await rt.call("GET", "/readyz")).body).toEqual({ status: "ready" });
    await rt.runtime.store.close();
    const r = await rt.call("GET", "/readyz");
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ status: "not ready", reason: "the store is not reachable; see the runtime log" });
    expect(rt.log()).toContain("The database connection is not open");
  });
});
