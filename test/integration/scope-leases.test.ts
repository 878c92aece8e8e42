import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { freePort, Moto, MOTO_CREDENTIALS, startMoto } from "../fixtures/moto";
import { Postgres, startPostgres } from "../fixtures/postgres";
import { openStore, Store } from "../../provider/runtime/store";

/**
 * Replicas share scans, end to end: two `discovery serve` processes of one discovery group on one PostgreSQL
 * database, each reaching moto through a proxy of its own that counts its EC2 DescribeInstances calls per region.
 * Once settled, each region is described by exactly one replica; after one replica is SIGKILLed, the other
 * describes its regions too, but not before their leases expired.
 */
const REGIONS = ["ap-south-1", "eu-central-1", "eu-west-1", "sa-east-1", "us-east-1", "us-west-2"];
const POLL_S = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A proxy in front of moto that records each DescribeInstances it forwards: region and time. */
async function countingProxy(target: string) {
  const calls: { region: string; at: number }[] = [];
  const port = await freePort();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/ec2\//.exec(String(req.headers.authorization))?.[1];
      if (region && body.toString().includes("Action=DescribeInstances")) calls.push({ region, at: Date.now() });
      const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    /** Regions described since `since` (ms epoch), with how many times each. */
    described(since = 0): Map<string, number> {
      const out = new Map<string, number>();
      for (const c of calls) if (c.at >= since) out.set(c.region, (out.get(c.region) ?? 0) + 1);
      return out;
    },
    firstCall: (region: string, since: number) => calls.find((c) => c.region === region && c.at >= since)?.at,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface Replica {
  dir: string;
  proc: ChildProcess;
  proxy: Awaited<ReturnType<typeof countingProxy>>;
  log: () => string;
  /** The holder name on its leases: `<cluster>/<runtime id>`. */
  holder: () => string;
  /** Its `GET /metrics` (self-signed TLS, not verified: loopback only). */
  metrics: () => Promise<string>;
}

describe("two discovery serve replicas of one group on PostgreSQL and moto", () => {
  let pg: Postgres;
  let moto: Moto;
  let store: Store;
  const replicas: Replica[] = [];

  async function startReplica(name: string): Promise<Replica> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pd-lease-${name}-`));
    const port = await freePort();
    const proxy = await countingProxy(moto.endpoint);
    const config = {
      version: "v1",
      cluster_name: "leases.test",
      listen_addr: `127.0.0.1:${port}`,
      public_addr: `https://127.0.0.1:${port}`,
      storage: { type: "postgres", url: pg.url },
      discovery_service: {
        discovery_group: "shared",
        poll_interval: `${POLL_S}s`,
        aws: [{ types: ["ec2"], regions: REGIONS, tags: { "*": "*" } }],
      },
    };
    fs.writeFileSync(path.join(dir, "runtime.yaml"), stringify(config));
    const proc = spawn(process.execPath, [path.resolve("bin/discovery.js"), "serve", "--config", "runtime.yaml"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        AWS_ENDPOINT_URL: proxy.endpoint,
        AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      },
    });
    let log = "";
    proc.stdout?.on("data", (d) => (log += d));
    proc.stderr?.on("data", (d) => (log += d));
    const r: Replica = {
      dir,
      proc,
      proxy,
      log: () => log,
      holder: () => `leases.test/${fs.readFileSync(path.join(dir, "data", "runtime-id"), "utf8").trim()}`,
      metrics: () =>
        new Promise((resolve, reject) =>
          https
            .get(`https://127.0.0.1:${port}/metrics`, { rejectUnauthorized: false }, (res) => {
              let body = "";
              res.on("data", (d) => (body += d));
              res.on("end", () => resolve(body));
            })
            .on("error", reject),
        ),
    };
    replicas.push(r);
    await until(`replica ${name} listening`, 30_000, async () =>
      /discovery runtime listening/.test(log) ? true : undefined,
    );
    return r;
  }

  async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline)
        throw new Error(`${what} did not happen within ${timeoutMs} ms:\n${replicas.map((r) => r.log()).join("\n")}`);
      await sleep(250);
    }
  }

  /** Leases of the group held now, as holder → regions. */
  async function holdings(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const l of await store.listScopeLeases("shared"))
      if (Date.parse(l.expiresAt) > Date.now()) out.set(l.holder, [...(out.get(l.holder) ?? []), l.region].sort());
    return out;
  }

  beforeAll(async () => {
    [pg, moto] = await Promise.all([startPostgres(), startMoto()]);
    store = await openStore({ type: "postgres", url: pg.url });
  }, 90_000);
  afterAll(async () => {
    for (const r of replicas) {
      if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill("SIGKILL");
      await r.proxy.close();
      fs.rmSync(r.dir, { recursive: true, force: true });
    }
    await store?.close();
    await Promise.all([pg?.stop(), moto?.stop()]);
  });

  it("describe each region from one replica only, and take over a killed replica's regions after its leases expire", async () => {
    const [a, b] = await Promise.all([startReplica("a"), startReplica("b")]);
    // Settled: three regions each (the first round of one may take all, and hand half over on its next).
    const split = await until("an even split of the six regions", 40_000, async () => {
      const h = await holdings();
      const counts = [a, b].map((r) => h.get(r.holder())?.length ?? 0);
      return counts[0] === 3 && counts[1] === 3 ? h : undefined;
    });
    const aRegions = split.get(a.holder())!;
    const bRegions = split.get(b.holder())!;
    expect([...aRegions, ...bRegions].sort()).toEqual(REGIONS);

    // Two more poll intervals: every region is described, each only by its holder.
    const since = Date.now();
    await sleep(2 * POLL_S * 1000 + 1500);
    const byA = a.proxy.described(since);
    const byB = b.proxy.described(since);
    expect([...byA.keys()].sort()).toEqual(aRegions);
    expect([...byB.keys()].sort()).toEqual(bRegions);
    // Once per interval, not once per replica per interval: at most one call per pass of the holder.
    for (const n of [...byA.values(), ...byB.values()]) expect(n).toBeLessThanOrEqual(4);

    // SIGKILL: no clean release. A's leases run out at their expiry, and only then may B describe A's regions.
    const expiry = Math.max(
      ...(await store.listScopeLeases("shared"))
        .filter((l) => l.holder === a.holder())
        .map((l) => Date.parse(l.expiresAt)),
    );
    const killedAt = Date.now();
    a.proc.kill("SIGKILL");
    await until("B describing all of A's regions", 30_000, async () =>
      aRegions.every((r) => b.proxy.firstCall(r, killedAt) !== undefined) ? true : undefined,
    );
    for (const r of aRegions) expect(b.proxy.firstCall(r, killedAt)!).toBeGreaterThanOrEqual(expiry);
    expect(b.log()).toContain(`from replica ${a.holder()}`);
    expect((await holdings()).get(b.holder())).toEqual(REGIONS);
    await until("B's metrics counting all six leases", 15_000, async () =>
      (await b.metrics()).includes('discovery_scope_leases_held{cloud="aws"} 6') ? true : undefined,
    );
  }, 120_000);
});
