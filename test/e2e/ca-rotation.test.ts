import * as fs from "fs";
import type { EnrollmentRecord } from "../../provider/runtime/store/types";
import { ExampleSandbox, startExampleSandbox } from "../fixtures/example-sandbox";
import { clientKey, sshLogin } from "../fixtures/ssh-client";
import { eventually } from "../fixtures/eventually";

/**
 * A CA rotation reaches agentless nodes (seed 000) in the sandbox, with real sshd and real `ssh` logins: after the
 * user CA rotation starts, the runtime's loop re-runs the installer on every enrolled agentless node, so a user
 * certificate from the new key logs in everywhere; completing it is refused while a node lags, and once completed,
 * the next pass takes the old key out of every node's trust, so a certificate from the old key is refused.
 */
const ACCOUNT = "123456789012";

describe("CA rotation in the sandbox", () => {
  let sb: ExampleSandbox;
  let keys: ReturnType<typeof clientKey>;
  let nodes: { name: string; port: number }[];

  const cas = async () =>
    (await sb.runtime("GET", "/v1/cas")).body as Record<
      "host" | "user",
      { public_keys: string[]; rotating: boolean; rotation?: { rotated: string[]; pending: { node: string }[] } }
    >;
  const userCertificate = async () => {
    const r = await sb.runtime("POST", "/v1/certs/user", {
      public_key: keys.publicKey,
      principals: ["root"],
      ttl: "1h",
    });
    expect(r.status).toBe(200);
    return (r.body as { certificate: string }).certificate;
  };
  const logins = async (certificate: string) => {
    const hostCaKeys = (await cas()).host.public_keys;
    return nodes.map((n) => sshLogin({ port: n.port, key: keys.key, certificate, hostName: n.name, hostCaKeys }));
  };

  beforeAll(async () => {
    sb = await startExampleSandbox();
    keys = clientKey();
    const token = {
      kind: "token",
      version: "v2",
      metadata: { name: "aws-discovery-iam-token" },
      spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: ACCOUNT }] },
    };
    const config = {
      kind: "discovery_config",
      version: "v1",
      metadata: { name: "rotation" },
      spec: {
        discovery_group: "sandbox",
        aws: [{ types: ["ec2"], regions: ["us-east-1"], tags: { team: "rotation" }, install: { mode: "agentless" } }],
      },
    };
    const ids = await sb.launch({ tags: "team=rotation", count: 2, agentless: true });
    for (const doc of [token, config]) expect((await sb.runtime("PUT", "/v1/resources", doc)).status).toBe(200);
    const ports = new Map((await sb.instances()).map((i) => [i.instanceId, i.sshPort!]));
    nodes = ids.map((id) => ({ name: `${ACCOUNT}-${id}`, port: ports.get(id)! }));
    // Enrolled, not merely joined: the installer restarts sshd after the join, and the command's end is the sign.
    await eventually("both instances enrolled by the loop", 90, async () => {
      const records = ((await sb.runtime("GET", "/v1/enrollments")).body as { enrollments: EnrollmentRecord[] })
        .enrollments;
      return nodes.every((n) => records.some((e) => e.nodeName === n.name && e.status === "enrolled"))
        ? true
        : undefined;
    });
  });
  afterAll(async () => {
    await sb?.stop();
    if (keys) fs.rmSync(keys.dir, { recursive: true, force: true });
  });

  it("logs in with the new key's certificates within one pass of start, and refuses the old key's after complete", async () => {
    const old = await userCertificate();
    expect((await logins(old)).map((l) => l.status)).toEqual([0, 0]);

    expect((await sb.runtime("POST", "/v1/cas/user/rotation", { action: "start" })).status).toBe(200);
    const fresh = await userCertificate();
    // The loop sees the rotation within about a second and re-runs the installer on both nodes.
    await eventually("the rotation reached every node", 90, async () => {
      const r = (await cas()).user.rotation;
      return r && r.pending.length === 0 && r.rotated.length === 2 ? r : undefined;
    });
    // The installer rewrites the trusted keys just after its join returns: give it that moment.
    const loggedIn = await eventually("the new key's certificate logs in everywhere", 30, async () => {
      const tries = await logins(fresh);
      return tries.every((l) => l.status === 0) ? tries : undefined;
    });
    expect(loggedIn.map((l) => l.out.trim())).toEqual(["logged-in", "logged-in"]);
    // The old key is still trusted until the rotation completes.
    expect((await logins(old)).map((l) => l.status)).toEqual([0, 0]);

    expect((await sb.runtime("POST", "/v1/cas/user/rotation", { action: "complete" })).status).toBe(200);
    let last: unknown;
    await eventually("the nodes stopped trusting the old key", 90, async () => {
      const tries = await logins(old);
      last = { tries, cas: await cas(), enrollments: (await sb.runtime("GET", "/v1/enrollments")).body };
      const refused = tries.every((l) => l.status !== 0 && /Permission denied/.test(l.out));
      return refused ? true : undefined;
    }).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(last).slice(0, 6000)}`);
    });
    expect((await logins(fresh)).map((l) => l.status)).toEqual([0, 0]);
  });

  it("refuses to complete a host rotation while a node still holds the old host key's certificate, unless forced", async () => {
    // Stop the loop from reaching the nodes: their instances are gone from the matcher's view.
    expect((await sb.runtime("DELETE", "/v1/resources/discovery_config/rotation")).status).toBe(200);
    expect((await sb.runtime("POST", "/v1/cas/host/rotation", { action: "start" })).status).toBe(200);
    const refused = await sb.runtime("POST", "/v1/cas/host/rotation", { action: "complete" });
    expect(refused.status).toBe(409);
    const error = (refused.body as { error: { code: string; message: string; nodes: { node: string }[] } }).error;
    expect(error.code).toBe("rotation_incomplete");
    expect(error.nodes.map((n) => n.node).sort()).toEqual(nodes.map((n) => n.name).sort());
    for (const n of nodes) expect(error.message).toContain(n.name);
    const forced = await sb.runtime("POST", "/v1/cas/host/rotation", { action: "complete", force: true });
    expect(forced.status).toBe(200);
    expect((await cas()).host.rotating).toBe(false);
  });
});
