import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ListCommandsCommand, SSMClient } from "@aws-sdk/client-ssm";
import { discoveryAsync } from "../fixtures/cli";
import { eventually } from "../fixtures/eventually";
import { FaultProxy, ServeProcess, servePort, startFaultProxy, startServe, startTcpFront } from "../fixtures/faults";
import { Postgres, startPostgres } from "../fixtures/postgres";
import { ensureBuilt, parseEnvFile, sandboxSsm } from "../fixtures/sandbox";

/**
 * Faults in the middle of a pass, with real processes: a `discovery serve` killed with SIGKILL after its
 * SendCommand, SSM and EC2 cut off (a proxy in front of moto and the SSM simulator closes its port), every call
 * throttled for a while, and one of two PostgreSQL replicas killed. After each, every matching instance is enrolled
 * exactly once (one SendCommand per instance in SSM's command list, none lost) and what the user saw named the
 * cause. One sandbox for the file; each test has its own runtime, instances (tags) and store.
 */
const ACCOUNT = "123456789012";

// Sleeps a little (a SIGKILL lands while it runs), then waits for the runtime (any replica behind its address) to
// answer before it runs the default installer: an installer that outlives a runtime restart.
const SLOW_INSTALLER = `kind: installer
version: v1
metadata: {name: restart-tolerant}
spec:
  script: |
    #!/bin/sh
    addr={{ .PublicProxyAddr }}
    sleep 3
    i=0
    until curl -sS -k --max-time 2 -o /dev/null "https://$addr/webapi/ping"; do
      i=$((i+1)); [ "$i" -lt 120 ] || exit 1; sleep 1
    done
    installer="$(curl -sS --fail -k --pinnedpubkey "$DISCOVERY_CA_PIN" "https://$addr/webapi/scripts/installer/default-installer")" && printf '%s\\n' "$installer" | sh
`;
const TOKEN = `kind: token
version: v2
metadata: {name: aws-discovery-iam-token}
spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}
`;
const config = (name: string, group: string, team: string, script = "default-installer") =>
  `kind: discovery_config
version: v1
metadata: {name: ${name}}
spec:
  discovery_group: ${group}
  aws: [{types: [ec2], regions: [us-east-1], tags: {team: ${team}}, install: {script_name: ${script}}}]
`;

interface Enrollment {
  instanceId: string;
  status: string;
  reason?: string;
  detail?: { failureClass?: string; nextAttemptAt?: string };
}

describe("faults during a pass", () => {
  let dir: string;
  let env: Record<string, string>;
  let ssm: SSMClient;
  let ec2Proxy: FaultProxy;
  let ssmProxy: FaultProxy;
  const running: ServeProcess[] = [];

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-faults-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    if (started.status !== 0) throw new Error(`sandbox start failed: ${started.stderr}`);
    env = parseEnvFile(path.join(dir, "env.sh"));
    ssm = sandboxSsm(env);
    ec2Proxy = await startFaultProxy(env.AWS_ENDPOINT_URL);
    ssmProxy = await startFaultProxy(env.AWS_ENDPOINT_URL_SSM);
  }, 180_000);
  afterAll(async () => {
    for (const p of running) await p.kill("SIGKILL");
    ssm?.destroy();
    await ec2Proxy?.close();
    await ssmProxy?.close();
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const launch = async (team: string, count: number) => {
    const args = ["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", "us-east-1"];
    const r = await discoveryAsync([...args, "--tags", `team=${team}`, "--count", String(count)], { env });
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n");
  };
  /** The runtime config: the sandbox's join settings, this test's store and discovery group, short timings. */
  const runtimeConfig = (group: string, port: number, extra: Record<string, unknown> = {}) => ({
    version: "v1",
    cluster_name: "faults.discovery.local",
    public_addr: `https://127.0.0.1:${port}`,
    storage: { type: "sqlite", path: "./data/discovery.db" },
    admin_token_file: "./data/admin.token",
    join: {
      aws: { extra_ca_certs: [path.join(dir, "sandbox-ca.pem")], sts_endpoint: env.AWS_ENDPOINT_URL },
      rate_limit: { requests_per_minute: 6000, burst: 1000 },
    },
    discovery_service: { discovery_group: group, poll_interval: "5s", claim_timeout: "15s" },
    ...extra,
  });
  /** The runtime's AWS calls go through the fault proxies; the credentials are the sandbox's. */
  const awsEnv = () => ({
    AWS_ENDPOINT_URL: ec2Proxy.url,
    AWS_ENDPOINT_URL_SSM: ssmProxy.url,
    AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
    AWS_REGION: "us-east-1",
  });
  const serve = async (name: string, group: string, port?: number, extra: Record<string, unknown> = {}) => {
    const p = port ?? (await servePort());
    const proc = await startServe(path.join(dir, name), p, runtimeConfig(group, p, extra), awsEnv());
    running.push(proc);
    return proc;
  };
  const apply = async (rt: ServeProcess, docs: string[]) => {
    for (const doc of docs) expect((await rt.api("PUT", "/v1/resources", doc)).status).toBe(200);
  };
  /** `discovery get enrollments -o json` against a runtime, as a user would read them. */
  const enrollments = async (rt: ServeProcess, ids: string[]): Promise<Enrollment[]> => {
    const r = await discoveryAsync(["get", "enrollments", "-o", "json"], { env: rt.cliEnv });
    expect(r.stderr).toBe("");
    const all = JSON.parse(r.stdout) as Enrollment[] | { enrollments: Enrollment[] };
    return (Array.isArray(all) ? all : all.enrollments).filter((e) => ids.includes(e.instanceId));
  };
  const allEnrolled = (rt: ServeProcess, ids: string[], seconds = 120) =>
    eventually(`${ids.length} instances enrolled`, seconds, async () => {
      const e = await enrollments(rt, ids);
      return e.length === ids.length && e.every((x) => x.status === "enrolled") ? e : undefined;
    });
  /** SSM's command list (the simulator, not through the proxy): how many commands each instance got. */
  const commandsPer = async (ids: string[]): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const id of ids) {
      const r = await ssm.send(new ListCommandsCommand({ InstanceId: id }));
      out[id] = (r.Commands ?? []).length;
    }
    return out;
  };
  const once = (ids: string[]) => Object.fromEntries(ids.map((id) => [id, 1]));
  const nodesOf = async (rt: ServeProcess, ids: string[]) => {
    const nodes = (await rt.api("GET", "/v1/nodes")).body.nodes as { labels: Record<string, string> }[];
    return nodes.map((n) => n.labels["discovery/instance-id"]).filter((id) => ids.includes(id));
  };

  it("SIGKILL right after the SendCommand: the restarted runtime follows that command, none is sent twice", async () => {
    const ids = await launch("crash", 3);
    const port = await servePort();
    let rt = await serve("crash", "crash", port);
    await apply(rt, [TOKEN, SLOW_INSTALLER, config("crash", "crash", "crash", "restart-tolerant")]);
    // Mid-pass: the command is in SSM and its installers are running; the runtime has recorded no outcome yet.
    await eventually("the pass's SendCommand in SSM", 60, async () =>
      Object.values(await commandsPer(ids)).some((n) => n > 0) ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await rt.kill("SIGKILL");
    const claimed = fs.readFileSync(path.join(rt.dir, "runtime.log"), "utf8");
    expect(claimed).not.toMatch(/"msg":"discovery pass:/);

    rt = await serve("crash", "crash", port);
    const done = await allEnrolled(rt, ids);
    expect(done.map((e) => e.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect((await nodesOf(rt, ids)).sort()).toEqual([...ids].sort());
    expect(await commandsPer(ids)).toEqual(once(ids));
  });

  it("SSM, then EC2, cut off during passes: the user sees connection refused and the endpoint; then exactly once", async () => {
    const ids = await launch("cut", 3);
    await ssmProxy.down();
    try {
      const rt = await serve("cut", "cut");
      await apply(rt, [TOKEN, config("cut", "cut", "cut")]);
      // The pass found the instances (EC2 answers) and claimed them; SSM refused the connection before any send.
      const failed = await eventually("the instances failed with the cause", 60, async () => {
        const e = await enrollments(rt, ids);
        return e.length === ids.length && e.every((x) => x.status === "failed") ? e : undefined;
      });
      for (const e of failed) {
        expect(e.detail?.failureClass).toBe("endpoint-unreachable");
        expect(e.reason).toContain(`could not reach SSM at ${ssmProxy.url}`);
        expect(e.reason).toContain(`ECONNREFUSED 127.0.0.1:${ssmProxy.port}`);
        // Nothing was sent and the instance is fine: no backoff, the next pass tries again.
        expect(e.detail?.nextAttemptAt).toBeUndefined();
      }
      const tasks = await discoveryAsync(["get", "tasks"], { env: rt.cliEnv });
      expect(tasks.stdout).toMatch(/endpoint-unreachable/);
      expect(await commandsPer(ids)).toEqual(Object.fromEntries(ids.map((id) => [id, 0])));

      // EC2 goes too: the config's status names the refused endpoint.
      await ec2Proxy.down();
      const status = await eventually("a status naming the refused EC2 endpoint", 60, async () => {
        const st = (await rt.api("GET", "/v1/resources/discovery_config/cut")).body.status;
        return st?.state === "error" ? st : undefined;
      });
      expect(status.error_message).toContain(`ECONNREFUSED 127.0.0.1:${ec2Proxy.port}`);
      // And what the scan was doing: its first call, finding the account, or listing the region.
      expect(status.error_message).toMatch(
        /sts:GetCallerIdentity: connect ECONNREFUSED|DescribeInstances in account 123456789012, region us-east-1/,
      );

      await ec2Proxy.up();
      await ssmProxy.up();
      await allEnrolled(rt, ids);
      expect(await commandsPer(ids)).toEqual(once(ids));
      const healed = (await rt.api("GET", "/v1/resources/discovery_config/cut")).body.status;
      expect(healed.state).toBe("running");
    } finally {
      for (const p of [ec2Proxy, ssmProxy]) await p.up().catch(() => undefined);
    }
  });

  it("every call throttled for a while: errors name throttling, then every instance is enrolled exactly once", async () => {
    const ids = await launch("throttle", 3);
    const rt = await serve("throttle", "throttle");
    await apply(rt, [TOKEN]);
    // From the first pass on: EC2 (and STS) throttled through a couple of scans; SSM long enough that the first
    // install after them outlasts its retries (at most about 8 s) whatever their jitter.
    ec2Proxy.throttleFor(10_000);
    ssmProxy.throttleFor(40_000);
    await apply(rt, [config("throttle", "throttle", "throttle")]);
    const status = await eventually("a status naming EC2's throttling", 60, async () => {
      const st = (await rt.api("GET", "/v1/resources/discovery_config/throttle")).body.status;
      return st?.state === "error" ? st : undefined;
    });
    expect(status.error_message).toMatch(/RequestLimitExceeded|Throttling/);
    const seen: string[] = [];
    const throttled = await eventually("instances failed as throttled", 60, async () => {
      const e = await enrollments(rt, ids);
      seen.push(JSON.stringify(e.map((x) => [x.status, x.detail?.failureClass, x.reason])));
      return e.some((x) => x.detail?.failureClass === "throttled") ? e : undefined;
    }).catch((err: Error) => {
      const passes = rt
        .log()
        .split("\n")
        .filter((l) => /discovery pass/.test(l));
      throw new Error(`${err.message}\nenrollments seen: ${seen.join("\n")}\npasses: ${passes.join("\n")}`);
    });
    const one = throttled.find((x) => x.detail?.failureClass === "throttled")!;
    expect(one.reason).toMatch(
      /was throttled in account 123456789012 \(us-east-1\) past the retries \(ThrottlingException/,
    );
    expect(one.detail?.nextAttemptAt).toBeUndefined();

    await allEnrolled(rt, ids);
    expect(await commandsPer(ids)).toEqual(once(ids));
    expect(ec2Proxy.throttled).toBeGreaterThan(0);
    expect(ssmProxy.throttled).toBeGreaterThan(0);
  });

  describe("two replicas on one PostgreSQL", () => {
    let pg: Postgres;
    beforeAll(async () => {
      pg = await startPostgres();
    }, 120_000);
    afterAll(async () => {
      await pg?.stop();
    });

    it("one replica SIGKILLed mid-pass: the other takes its claims over after the claim timeout, exactly once", async () => {
      const ids = await launch("replicas", 4);
      const ports = [await servePort(), await servePort()];
      const front = await startTcpFront(() => ports);
      try {
        const shared = (name: string) => ({
          // Both replicas sit behind one address (the front), as behind a load balancer, with one certificate.
          public_addr: `https://127.0.0.1:${front.port}`,
          storage: { type: "postgres", url: pg.url },
          admin_token_file: path.join(dir, name, "data", "admin.token"),
        });
        const a = await serve("replica-a", "replicas", ports[0], shared("replica-a"));
        fs.mkdirSync(path.join(dir, "replica-b", "data"), { recursive: true });
        for (const f of ["tls.crt", "tls.key"])
          fs.copyFileSync(path.join(a.dir, "data", f), path.join(dir, "replica-b", "data", f));
        const b = await serve("replica-b", "replicas", ports[1], shared("replica-b"));
        await apply(a, [TOKEN, SLOW_INSTALLER, config("replicas", "replicas", "replicas", "restart-tolerant")]);

        await eventually("a replica's SendCommand in SSM", 60, async () =>
          Object.values(await commandsPer(ids)).some((n) => n > 0) ? true : undefined,
        );
        await new Promise((r) => setTimeout(r, 1000));
        // The replica holding claims is the one to drop (with scope leases, the only one scanning).
        const claims = (await b.api("GET", "/v1/enrollments")).body.enrollments as {
          status: string;
          detail: { discoveredBy?: string };
        }[];
        const idOf = (rt: ServeProcess) =>
          `faults.discovery.local/${fs.readFileSync(path.join(rt.dir, "data", "runtime-id"), "utf8").trim()}`;
        const holders = claims.filter((c) => c.status === "installing").map((c) => c.detail.discoveredBy);
        const victim =
          holders.filter((h) => h === idOf(b)).length > holders.filter((h) => h === idOf(a)).length ? b : a;
        const survivor = victim === a ? b : a;
        await victim.kill("SIGKILL");
        ports.splice(ports.indexOf(victim.port), 1);

        const done = await allEnrolled(survivor, ids, 150);
        expect(done.map((e) => e.status)).toEqual(ids.map(() => "enrolled"));
        expect((await nodesOf(survivor, ids)).sort()).toEqual([...ids].sort());
        expect(await commandsPer(ids)).toEqual(once(ids));
      } finally {
        await front.close();
      }
    });
  });
});
