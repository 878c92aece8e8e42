/**
 * bench/join: ec2 joins per second at 64 concurrent clients, on SQLite and on PostgreSQL, beside the raw
 * RSA-2048 verify rate of this machine (the floor cost of checking one identity document's signature).
 * Every join is real: a PKCS7 verified against the trusted CA, DescribeInstances against moto, a host
 * certificate signed, the node recorded. Run: npm run bench:join [-- --joins 512 --concurrency 64]
 *
 * `--storm N`: N joins at once from one account and region against the benchmark control plane
 * (bench/control-plane.ts: EC2 with 50 ms per call and AWS's token buckets). First the instance checks alone,
 * naive (one DescribeInstances per join, as Teleport does) beside ours (coalesced, paced), with the bound the
 * API allows; then N real joins through the runtime. `--json` prints one JSON object instead of the tables.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import pino from "pino";
import sshpk from "sshpk";
import { stringify } from "yaml";
import { DescribeImagesCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { sdkInstanceApi } from "../provider/clouds/aws/instance-lookup";
import { EC2_UNFILTERED } from "../provider/clouds/aws/rate-limits";
import { ControlPlane, startControlPlane } from "./control-plane";
import { emit, machine, numberArg, tableLine } from "./report";
import { parseRuntimeConfig } from "../provider/runtime/config";
import { startRuntime } from "../provider/runtime/server";
import { identityDocument, signIdentityDocument, testCa } from "../test/fixtures/iid-signer";
import { freePort, MOTO_CREDENTIALS, startMoto } from "../test/fixtures/moto";
import { startPostgres } from "../test/fixtures/postgres";

const JOINS = numberArg("joins", 512);
const STORM = numberArg("storm", 0);
const CONCURRENCY = numberArg("concurrency", STORM ? 256 : 64);
const LATENCY_MS = numberArg("latency-ms", 50);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function rsaVerifyRate(seconds = 2): number {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const data = Buffer.from(JSON.stringify(identityDocument()));
  const sig = crypto.sign("sha256", data, privateKey);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) if (!crypto.verify("sha256", data, publicKey, sig)) throw new Error("verify failed");
    n += 100;
  }
  return n / seconds;
}

async function run(backend: string, storage: object, iids: string[], hostKeys: string[], caFile: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pd-bench-${backend}-`));
  const port = await freePort();
  const cfg = {
    version: "v1",
    cluster_name: "bench",
    listen_addr: `127.0.0.1:${port}`,
    public_addr: `https://127.0.0.1:${port}`,
    storage,
    join: { aws: { extra_ca_certs: [caFile] }, rate_limit: { requests_per_minute: 1e6, burst: 1e6 } },
  };
  fs.writeFileSync(path.join(dir, "runtime.yaml"), stringify(cfg));
  const runtime = await startRuntime(parseRuntimeConfig(stringify(cfg), path.join(dir, "runtime.yaml")), {
    logger: pino({ level: "silent" }),
  });
  const agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: runtime.tls.cert });
  const post = (p: string, body: object, admin = false) =>
    new Promise<number>((resolve, reject) => {
      const req = https.request(
        `${runtime.url}${p}`,
        {
          method: p === "/v1/resources" ? "PUT" : "POST",
          agent,
          headers: {
            "content-type": "application/json",
            ...(admin ? { authorization: `Bearer ${runtime.adminToken}` } : {}),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  const token = {
    kind: "token",
    version: "v2",
    metadata: { name: "ec2" },
    spec: { roles: ["Node"], join_method: "ec2", allow: [{ aws_account: "123456789012" }] },
  };
  if ((await post("/v1/resources", token, true)) !== 200) throw new Error("could not apply the token");
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < iids.length; i = next++) {
        const t = performance.now();
        const status = await post("/v1/join", {
          method: "ec2",
          token: "ec2",
          host_public_key: hostKeys[i],
          iid: iids[i],
        });
        latencies.push(performance.now() - t);
        if (status !== 200) failed++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  await runtime.close();
  fs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    backend,
    joins: iids.length - failed,
    failed,
    seconds,
    rate: (iids.length - failed) / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

/** What N ec2 joins send: identity documents signed by a test CA (trusted through `caFile`) and host keys. */
async function joinRequests(ids: string[]) {
  const ca = await testCa();
  const caFile = path.join(os.tmpdir(), `pd-bench-ca-${process.pid}.pem`);
  fs.writeFileSync(caFile, ca.certPem);
  const iids = await Promise.all(ids.map((id) => signIdentityDocument(identityDocument({ instanceId: id }), ca)));
  const hostKeys = ids.map(() => {
    const { publicKey } = crypto.generateKeyPairSync("ed25519");
    return sshpk.parseKey(publicKey.export({ type: "spki", format: "pem" }) as string, "pem").toString("ssh");
  });
  return { caFile, iids, hostKeys };
}

/** What a storm measured, as `--json` prints it. */
type StormResult = ReturnType<typeof machine> & {
  bench: string;
  n: number;
  latency_ms: number;
  bound_seconds: number;
  checks: (Awaited<ReturnType<typeof stormChecks>> & { ratio_to_bound: number })[];
  joins: Awaited<ReturnType<typeof run>> & { concurrency: number; describe_calls: number; throttled: number };
};

/** The instance checks of a storm: N concurrent DescribeInstances checks, naive or ours, against the control plane. */
async function stormChecks(cp: ControlPlane, ids: string[], how: "naive" | "ours") {
  cp.reset();
  const credentials = MOTO_CREDENTIALS;
  const started = performance.now();
  let failed = 0;
  if (how === "naive") {
    // One call per join with the SDK's standard retries, as Teleport's ec2 join does.
    const ec2 = new EC2Client({ region: "us-east-1", endpoint: cp.endpoint, credentials });
    await Promise.all(
      ids.map((id) =>
        ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })).then(
          (out) => (out.Reservations?.[0]?.Instances?.[0]?.InstanceId === id ? undefined : failed++),
          () => failed++,
        ),
      ),
    );
    ec2.destroy();
  } else {
    const api = sdkInstanceApi({ region: "us-east-1" }, { endpoint: cp.endpoint, credentials });
    await Promise.all(
      ids.map((id) =>
        api.describeInstance(id).then(
          (found) => (found?.instanceId === id ? undefined : failed++),
          () => failed++,
        ),
      ),
    );
    api.destroy();
  }
  const seconds = (performance.now() - started) / 1000;
  return { how, checks: ids.length, failed, seconds, ...cp.stats() };
}

async function storm() {
  // Lean answers (id, state, addresses), as the control plane answered when the documented storm figures were taken.
  const cp = await startControlPlane({ latencyMs: LATENCY_MS, answers: "lean" });
  const ids = cp.addInstances("us-east-1", STORM);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: cp.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
  });
  try {
    // The bound: ceil(N / 1000) DescribeInstances by id; within the bucket's burst they could all run at once,
    // so one round trip; past it, the refill paces the rest.
    const needed = Math.ceil(STORM / 1000);
    const boundSeconds =
      LATENCY_MS / 1000 + Math.max(0, needed - EC2_UNFILTERED.capacity) / EC2_UNFILTERED.refillPerSecond;
    const checks = [await stormChecks(cp, ids, "naive"), await stormChecks(cp, ids, "ours")];

    const { caFile, iids, hostKeys } = await joinRequests(ids);
    cp.reset();
    const joins = await run("sqlite", { type: "sqlite", path: "./data/discovery.db" }, iids, hostKeys, caFile);
    const joinCalls = cp.stats();
    fs.rmSync(caFile, { force: true });
    const result: StormResult = {
      bench: "join --storm",
      n: STORM,
      latency_ms: LATENCY_MS,
      ...machine(),
      bound_seconds: boundSeconds,
      checks: checks.map((c) => ({ ...c, ratio_to_bound: c.seconds / boundSeconds })),
      joins: { ...joins, concurrency: CONCURRENCY, describe_calls: joinCalls.calls, throttled: joinCalls.throttled },
    };
    emit(result, () => stormTables(result, needed));
  } finally {
    await cp.close();
  }
}

/** The human tables of a storm. */
function stormTables(result: StormResult, needed: number): void {
  const line = tableLine();
  console.log(
    `\nbench/join --storm ${STORM}: one account and region, EC2 at ${LATENCY_MS} ms a call with AWS's buckets, ` +
      `${result.cores} cores, node ${result.node}, load average ${result.load_average.join(" ")}`,
  );
  console.log(line(["checks", "done", "failed", "seconds", "calls", "throttled", "÷ bound"]));
  for (const c of result.checks)
    console.log(
      line([c.how, String(c.checks - c.failed), String(c.failed), c.seconds.toFixed(2), String(c.calls), String(c.throttled), c.ratio_to_bound.toFixed(1)]), // prettier-ignore
    );
  console.log(line(["bound", String(STORM), "", result.bound_seconds.toFixed(2), String(needed), "0", "1.0"]));
  console.log(line(["joins", "joined", "failed", "seconds", "joins/s", "p50 ms", "p99 ms", "calls"]));
  const j = result.joins;
  console.log(
    line(["ours", String(j.joins), String(j.failed), j.seconds.toFixed(2), j.rate.toFixed(0), j.p50.toFixed(1), j.p99.toFixed(1), String(j.describe_calls)]), // prettier-ignore
  );
}

async function main() {
  if (STORM > 0) return storm();
  const moto = await startMoto();
  const pg = await startPostgres();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
  });
  try {
    const ec2 = new EC2Client({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    const image = (await ec2.send(new DescribeImagesCommand({}))).Images![0].ImageId;
    const ids: string[] = [];
    while (ids.length < JOINS) {
      const n = Math.min(500, JOINS - ids.length);
      const out = await ec2.send(
        new RunInstancesCommand({ ImageId: image, MinCount: n, MaxCount: n, InstanceType: "t3.micro" }),
      );
      ids.push(...out.Instances!.map((i) => i.InstanceId!));
    }
    const { caFile, iids, hostKeys } = await joinRequests(ids);
    const verifyRate = rsaVerifyRate();
    const rows = [
      await run("sqlite", { type: "sqlite", path: "./data/discovery.db" }, iids, hostKeys, caFile),
      await run("postgres", { type: "postgres", url: pg.url }, iids, hostKeys, caFile),
    ];
    fs.rmSync(caFile, { force: true });
    const result = {
      bench: "join",
      joins: JOINS,
      concurrency: CONCURRENCY,
      ...machine(),
      baseline_verify_per_second: verifyRate,
      backends: rows.map((r) => ({ ...r, ratio_to_verify: r.rate / verifyRate })),
    };
    emit(result, () => {
      const line = tableLine();
      console.log(
        `\nbench/join: ${JOINS} ec2 joins, ${CONCURRENCY} concurrent clients, ${result.cores} cores, ` +
          `load average ${result.load_average.join(" ")}`,
      );
      console.log(line(["backend", "joins", "failed", "seconds", "joins/s", "p50 ms", "p99 ms", "÷ verify/s"]));
      for (const r of result.backends)
        console.log(
          line([r.backend, String(r.joins), String(r.failed), r.seconds.toFixed(2), r.rate.toFixed(1), r.p50.toFixed(1), r.p99.toFixed(1), r.ratio_to_verify.toFixed(4)]), // prettier-ignore
        );
      console.log(
        line(["baseline", "", "", "", verifyRate.toFixed(0), "", "", "1.0000"]) +
          "   (raw RSA-2048 crypto.verify per second, same machine)",
      );
    });
  } finally {
    await pg.stop();
    await moto.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
