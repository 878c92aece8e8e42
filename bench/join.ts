/**
 * bench/join: ec2 joins per second at 64 concurrent clients, on SQLite and on PostgreSQL, beside the raw
 * RSA-2048 verify rate of this machine (the floor cost of checking one identity document's signature).
 * Every join is real: a PKCS7 verified against the trusted CA, DescribeInstances against moto, a host
 * certificate signed, the node recorded. Run: npm run bench:join [-- --joins 512 --concurrency 64]
 *
 * `--storm N`: N joins at once from one account and region against the benchmark control plane
 * (bench/control-plane.ts: EC2 with 50 ms per call and AWS's token buckets). First the instance checks alone,
 * naive (one DescribeInstances per join, as Teleport does) beside ours (coalesced, paced), with the bound the
 * API allows; then N real joins through the runtime.
 *
 * `--verify`: the CPU cost of verifying one identity document, with its BER parse and RSA verify, beside asn1js's
 * parse alone.
 *
 * `--rates 500,1000,2000 [--seconds 5] [--regions 1] [--answers lean|full] [--floor]`: ordinary load, open loop
 * (after one unmeasured join per connection), the control plane in its own process: each rate offered for that many
 * seconds over `--concurrency` keep-alive HTTPS connections, against the control plane, the instances spread over
 * `--regions` regions (each with its own EC2 buckets); joins/s achieved, p50 and p99 from the scheduled send time.
 * `--answers full` answers DescribeInstances as AWS does (about 3.7 KB an instance) instead of the lean form;
 * `--floor` then runs the same steps against a server that does none of a join's work (HTTPS, HTTP and JSON only).
 * In every mode the clients run in a worker thread (bench/join-client.js), off the runtime's event loop, and
 * `--json` prints one JSON object instead of the tables.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { Worker } from "worker_threads";
import Fastify from "fastify";
import pino from "pino";
import sshpk from "sshpk";
import { stringify } from "yaml";
import { DescribeImagesCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import * as asn1js from "asn1js";
import { verifyInstanceIdentity } from "../provider/clouds/aws/attest-ec2";
import { sdkInstanceApi } from "../provider/clouds/aws/instance-lookup";
import { parseBer } from "../provider/util/ber";
import { EC2_UNFILTERED } from "../provider/clouds/aws/rate-limits";
import { ControlPlane, startControlPlane } from "./control-plane";
import { startControlPlaneProcess } from "./control-plane-process";
import { flag, JSON_OUT, machine, numberArg, stringArg, tableLine } from "./report";
import type { InstanceAnswers } from "./control-plane-ec2";
import { parseRuntimeConfig } from "../provider/runtime/config";
import { startRuntime } from "../provider/runtime/server";
import { makeSelfSignedCertificate } from "../provider/runtime/tls";
import { identityDocument, signIdentityDocument, testCa } from "../test/fixtures/iid-signer";
import { freePort, MOTO_CREDENTIALS, startMoto } from "../test/fixtures/moto";
import { startPostgres } from "../test/fixtures/postgres";

const JOINS = numberArg("joins", 512);
const STORM = numberArg("storm", 0);
const CONCURRENCY = numberArg("concurrency", STORM ? 256 : 64);
const LATENCY_MS = numberArg("latency-ms", 50);
const RATES_RAW = stringArg("rates", "");
const RATES = RATES_RAW ? RATES_RAW.split(",").map(Number) : [];
const SECONDS = numberArg("seconds", 5);
// `--floor` (with --rates): the same load against a server that does none of a join's work, after the runtime.
const FLOOR = flag("floor");
// `--answers full`: DescribeInstances answers with every field AWS returns (about 3.7 KB an instance, which the SDK
// reads for every join's check) instead of the lean ones (only the fields read).
const ANSWERS = stringArg("answers", "lean") as InstanceAnswers;
if (ANSWERS !== "lean" && ANSWERS !== "full") throw new Error(`--answers ${ANSWERS}: give lean or full`);
// Ordinary load comes from many regions (and accounts): each region has its own EC2 buckets.
const LOAD_REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ca-central-1", "sa-east-1"]; // prettier-ignore
const REGIONS = Math.min(LOAD_REGIONS.length, numberArg("regions", 1));
const SQLITE = { type: "sqlite", path: "./data/discovery.db" };
if (RATES.some((r) => !(r > 0)))
  throw new Error("--rates takes joins a second, comma-separated, e.g. --rates 500,1000");

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

/** One step of load: `bodies` sent closed loop at `concurrency`, or open loop at `rate` a second. */
type Step = { bodies: string[]; concurrency?: number; rate?: number };
/** What bench/join-client.js reports for a step. */
type StepResult = { joins: number; failed: number; seconds: number; rate: number; p50: number; p99: number } & {
  /** CPU time of the runtime's thread (the server; the control plane shares it) per join, in ms. */
  server_cpu_ms_per_join: number;
  client_cpu_ms_per_join: number;
};

/**
 * Runs `steps` against a fresh runtime on `storage`, the clients in a worker thread over `sockets` keep-alive
 * connections. `sample`, a join body kept out of the steps, is sent first and its answer returned, so the platform
 * floor (`floor`) can send answers of the same size.
 */
async function run(
  storage: object,
  caFile: string,
  steps: Step[],
  sockets: number,
  sample?: string,
): Promise<StepResult[] & { answer?: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-bench-join-"));
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
  try {
    const token = {
      kind: "token",
      version: "v2",
      metadata: { name: "ec2" },
      spec: { roles: ["Node"], join_method: "ec2", allow: [{ aws_account: "123456789012" }] },
    };
    const put = await fetchTls(`${runtime.url}/v1/resources`, runtime.tls.cert, runtime.adminToken, token);
    if (put.status !== 200) throw new Error(`could not apply the token: HTTP ${put.status}`);
    let answer: string | undefined;
    if (sample) {
      const got = await fetchTls(`${runtime.url}/v1/join`, runtime.tls.cert, "", JSON.parse(sample), "POST");
      if (got.status !== 200) throw new Error(`the sample join was refused: HTTP ${got.status} ${got.body}`);
      answer = got.body;
    }
    return Object.assign(await drive(runtime.url, runtime.tls.cert, steps, sockets), { answer });
  } finally {
    await runtime.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The platform floor: the same steps, clients and connections against a server that does none of a join's work.
 * It is built as the runtime's is (Fastify over HTTPS with a self-signed ECDSA P-256 certificate, the 64 KiB body
 * limit, JSON parsed) and answers every POST /v1/join with `answer`, a real join's answer. What it costs per join
 * is what HTTPS, HTTP and JSON cost on this machine under this load: no runtime can answer for less.
 */
async function floor(steps: Step[], sockets: number, answer: string): Promise<StepResult[]> {
  const made = await makeSelfSignedCertificate("bench", ["127.0.0.1", "localhost"]);
  const app = Fastify({ bodyLimit: 64 * 1024, https: { cert: made.cert, key: made.key } });
  app.post("/v1/join", async (req, reply) => {
    const body = req.body as { iid?: unknown; host_public_key?: unknown };
    if (typeof body?.iid !== "string" || typeof body.host_public_key !== "string") return reply.code(400).send({});
    return reply.type("application/json; charset=utf-8").send(answer);
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const { port } = app.server.address() as { port: number };
    return await drive(`https://127.0.0.1:${port}`, made.cert, steps, sockets);
  } finally {
    await app.close();
  }
}

/** Sends `steps` to `url` from the clients' worker thread; this thread's CPU time per join is the server's. */
function drive(url: string, ca: string, steps: Step[], sockets: number): Promise<StepResult[]> {
  const worker = new Worker(path.join(__dirname, "join-client.js"), { workerData: { url, ca, sockets, steps } });
  return new Promise<StepResult[]>((resolve, reject) => {
    const results: StepResult[] = [];
    // The server runs on this thread: its CPU time per join is what bounds one runtime, however loaded the machine.
    let cpu = process.threadCpuUsage();
    worker.on("message", (r: StepResult) => {
      const used = process.threadCpuUsage(cpu);
      cpu = process.threadCpuUsage();
      const server = (used.user + used.system) / 1000 / steps[results.length].bodies.length;
      if (results.push({ ...r, server_cpu_ms_per_join: server }) === steps.length) resolve(results);
    });
    worker.on("error", reject);
    worker.on("exit", (code) => results.length < steps.length && reject(new Error(`client exited ${code}`)));
  });
}

/** A request over TLS trusting `ca`: a PUT with the admin token (applying the bench's join token), or a POST. */
function fetchTls(
  url: string,
  ca: string,
  adminToken: string,
  body: object,
  method = "PUT",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", ...(adminToken && { authorization: `Bearer ${adminToken}` }) }; // prettier-ignore
    const req = https.request(url, { method, ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** The JSON bodies of ec2 joins. */
const joinBodies = (iids: string[], hostKeys: string[]) =>
  iids.map((iid, i) => JSON.stringify({ method: "ec2", token: "ec2", host_public_key: hostKeys[i], iid }));

/** What N ec2 joins send: identity documents signed by a test CA (trusted through `caFile`) and host keys. */
async function joinRequests(ids: string[], regionOf: (i: number) => string = () => "us-east-1") {
  const ca = await testCa();
  const caFile = path.join(os.tmpdir(), `pd-bench-ca-${process.pid}.pem`);
  fs.writeFileSync(caFile, ca.certPem);
  const iids = await Promise.all(
    ids.map((id, i) => signIdentityDocument(identityDocument({ instanceId: id, region: regionOf(i) }), ca)),
  );
  const hostKeys = ids.map(() => {
    const { publicKey } = crypto.generateKeyPairSync("ed25519");
    return sshpk.parseKey(publicKey.export({ type: "spki", format: "pem" }) as string, "pem").toString("ssh");
  });
  return { caFile, iids, hostKeys };
}

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
  // Lean answers (id, state, addresses), as the control plane answered when the documented figures were taken; the
  // full ~3.7 KB an instance AWS returns is measured by bench/discovery.
  const cp = await startControlPlane({ latencyMs: LATENCY_MS, answers: ANSWERS });
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
    const steps = [{ bodies: joinBodies(iids, hostKeys), concurrency: CONCURRENCY }];
    const [joins] = await run(SQLITE, caFile, steps, CONCURRENCY);
    const joinCalls = cp.stats();
    fs.rmSync(caFile, { force: true });
    const result = {
      bench: "join --storm",
      n: STORM,
      latency_ms: LATENCY_MS,
      ...machine(),
      bound_seconds: boundSeconds,
      checks: checks.map((c) => ({ ...c, ratio_to_bound: c.seconds / boundSeconds })),
      joins: {
        backend: "sqlite",
        ...joins,
        concurrency: CONCURRENCY,
        describe_calls: joinCalls.calls,
        throttled: joinCalls.throttled,
      },
    };
    if (JSON_OUT) {
      console.log(JSON.stringify(result));
      return;
    }
    const line = tableLine();
    console.log(
      `\nbench/join --storm ${STORM}: one account and region, EC2 at ${LATENCY_MS} ms a call with AWS's buckets, ` +
        `${os.cpus().length} cores, node ${process.version}, load average ${result.load_average.join(" ")}`,
    );
    console.log(line(["checks", "done", "failed", "seconds", "calls", "throttled", "÷ bound"]));
    for (const c of result.checks)
      console.log(
        line([c.how, String(c.checks - c.failed), String(c.failed), c.seconds.toFixed(2), String(c.calls), String(c.throttled), c.ratio_to_bound.toFixed(1)]), // prettier-ignore
      );
    console.log(line(["bound", String(STORM), "", boundSeconds.toFixed(2), String(needed), "0", "1.0"]));
    console.log(line(["joins", "joined", "failed", "seconds", "joins/s", "p50 ms", "p99 ms", "calls", "server ms"])); // prettier-ignore
    const j = result.joins;
    console.log(
      line(["ours", String(j.joins), String(j.failed), j.seconds.toFixed(2), j.rate.toFixed(0), j.p50.toFixed(1), j.p99.toFixed(1), String(j.describe_calls), j.server_cpu_ms_per_join.toFixed(3)]), // prettier-ignore
    );
    console.log("(server ms: CPU time per join of the runtime's thread)");
  } finally {
    await cp.close();
  }
}

/**
 * Ordinary load: open-loop steps at each of `--rates` joins a second for `--seconds` each, one account and region
 * against the control plane (EC2 at `--latency-ms` a call, AWS's buckets), over `--concurrency` keep-alive HTTPS
 * connections; each join a distinct instance, so every one is a first join.
 */
async function load() {
  // In a process of its own, so the runtime thread's CPU figures are the runtime's alone (AWS answers elsewhere too).
  const cp = await startControlPlaneProcess({ latencyMs: LATENCY_MS, answers: ANSWERS });
  const counts = RATES.map((r) => Math.round(r * SECONDS));
  // First a warm-up step (closed loop, one join per connection) so every step measured runs over open
  // connections (512 TLS handshakes cost the first step half a second otherwise), and one sample join whose
  // answer the floor sends back.
  const warm = CONCURRENCY;
  const total = warm + 1 + counts.reduce((a, b) => a + b, 0);
  // Round robin over the regions, so consecutive joins (and each step) spread over every region's bucket.
  const regions = LOAD_REGIONS.slice(0, REGIONS);
  const perRegion = await Promise.all(regions.map((r, k) => cp.addInstances(r, Math.ceil((total - k) / regions.length)))); // prettier-ignore
  const ids = Array.from({ length: total }, (_, i) => perRegion[i % regions.length][Math.floor(i / regions.length)]);
  Object.assign(process.env, { AWS_ENDPOINT_URL: cp.endpoint, AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" }); // prettier-ignore
  try {
    const { caFile, iids, hostKeys } = await joinRequests(ids, (i) => regions[i % regions.length]);
    const bodies = joinBodies(iids, hostKeys);
    const sample = bodies[warm];
    let at = warm + 1;
    const steps = [
      { bodies: bodies.slice(0, warm), concurrency: warm },
      ...RATES.map((rate, i) => ({ rate, bodies: bodies.slice(at, (at += counts[i])) })),
    ];
    const before = machine();
    const results = await run(SQLITE, caFile, steps, CONCURRENCY, sample);
    fs.rmSync(caFile, { force: true });
    const rows = results.slice(1).map((r, i) => ({ offered: RATES[i], ...r }));
    // The platform floor, right after and over the same bodies: HTTPS, HTTP and JSON alone.
    const floorRows = FLOOR
      ? (await floor(steps, CONCURRENCY, results.answer!)).slice(1).map((r, i) => ({ offered: RATES[i], ...r }))
      : undefined;
    const result = { bench: "join --rates", seconds_per_step: SECONDS, latency_ms: LATENCY_MS, regions: regions.length, connections: CONCURRENCY, answers: ANSWERS, ...before, steps: rows, ...(floorRows && { floor: floorRows, answer_bytes: results.answer!.length }), ...(await cp.stats()) }; // prettier-ignore
    if (JSON_OUT) return console.log(JSON.stringify(result));
    const line = tableLine();
    console.log(
      `\nbench/join --rates: open loop, ${SECONDS} s a step, ${CONCURRENCY} keep-alive HTTPS connections, ` +
        `${regions.length} region(s), EC2 at ${LATENCY_MS} ms a call with ${ANSWERS} answers (${result.calls} calls, ${result.throttled} throttled), ${before.cores} cores, node ${process.version}, load average ${before.load_average.join(" ")}`,
    );
    const table = (what: string, rs: typeof rows) => {
      console.log(line([what, "joins", "failed", "seconds", "joins/s", "p50 ms", "p99 ms", "server ms", "client ms"])); // prettier-ignore
      for (const r of rs)
        console.log(line([String(r.offered), String(r.joins), String(r.failed), r.seconds.toFixed(2), r.rate.toFixed(0), r.p50.toFixed(1), r.p99.toFixed(1), r.server_cpu_ms_per_join.toFixed(3), r.client_cpu_ms_per_join.toFixed(3)])); // prettier-ignore
    };
    table("offered/s", rows);
    if (floorRows) {
      console.log(`floor: the same load against Fastify over HTTPS answering a real join's ${result.answer_bytes} bytes, no join work:`); // prettier-ignore
      table("offered/s", floorRows);
    }
    console.log("(server ms, client ms: CPU time per join of the runtime's thread and of the clients' thread)");
  } finally {
    await cp.close();
  }
}

/**
 * `--verify`: the CPU cost of checking one identity document, ours beside its parts and beside what a library
 * parse alone costs: asn1js.fromBER of the same bytes (pkijs builds its objects on top of that tree).
 */
async function verifyCost() {
  const ca = await testCa();
  const docs = 200;
  const ids = Array.from({ length: docs }, (_, i) => `i-${(0x10000000 + i).toString(16)}00000`);
  const iids = await Promise.all(ids.map((id) => signIdentityDocument(identityDocument({ instanceId: id }), ca)));
  const ders = iids.map((t) => new Uint8Array(Buffer.from(t, "base64")));
  const opts = { extraCaPems: [ca.certPem], now: new Date(), ttlMs: 5 * 60_000 };
  const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const data = Buffer.from(JSON.stringify(identityDocument()));
  const signature = crypto.sign("sha256", data, privateKey);
  const perDoc = (f: (i: number) => unknown, n = 20_000) => {
    for (let i = 0; i < 2000; i++) f(i % docs);
    // CPU time of this thread, not wall time: the figure holds on a machine others share.
    const cpu = process.threadCpuUsage();
    for (let i = 0; i < n; i++) f(i % docs);
    const used = process.threadCpuUsage(cpu);
    return (used.user + used.system) / n;
  };
  const rows = [
    { what: "verifyInstanceIdentity", us: perDoc((i) => verifyInstanceIdentity(iids[i], opts)) },
    { what: "  of which BER parse", us: perDoc((i) => parseBer(ders[i])) },
    { what: "  of which RSA verify", us: perDoc(() => crypto.verify("sha256", data, publicKey, signature)) },
    { what: "asn1js.fromBER alone", us: perDoc((i) => asn1js.fromBER(ders[i]), 5000) },
  ];
  if (JSON_OUT) return console.log(JSON.stringify({ bench: "join --verify", ...machine(), rows }));
  console.log(`\nbench/join --verify: CPU time per ${ders[0].length}-byte document, load average ${machine().load_average.join(" ")}`); // prettier-ignore
  for (const r of rows) console.log(`${r.what.padEnd(26)}${r.us.toFixed(1).padStart(10)} µs${(1e6 / r.us).toFixed(0).padStart(12)}/s`); // prettier-ignore
}

async function main() {
  if (flag("verify")) return verifyCost();
  if (STORM > 0) return storm();
  if (RATES.length) return load();
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
    const steps = [{ bodies: joinBodies(iids, hostKeys), concurrency: CONCURRENCY }];
    const rows = [
      { backend: "sqlite", ...(await run(SQLITE, caFile, steps, CONCURRENCY))[0] },
      { backend: "postgres", ...(await run({ type: "postgres", url: pg.url }, caFile, steps, CONCURRENCY))[0] },
    ];
    fs.rmSync(caFile, { force: true });
    if (JSON_OUT) {
      const out = { bench: "join", n: JOINS, concurrency: CONCURRENCY, ...machine(), verify_per_second: verifyRate };
      console.log(JSON.stringify({ ...out, backends: rows }));
      return;
    }
    const line = tableLine();
    console.log(`\nbench/join: ${JOINS} ec2 joins, ${CONCURRENCY} concurrent clients, ${os.cpus().length} cores`);
    console.log(line(["backend", "joins", "failed", "seconds", "joins/s", "p50 ms", "p99 ms", "÷ verify/s"]));
    for (const r of rows)
      console.log(
        line([
          r.backend,
          String(r.joins),
          String(r.failed),
          r.seconds.toFixed(2),
          r.rate.toFixed(1),
          r.p50.toFixed(1),
          r.p99.toFixed(1),
          (r.rate / verifyRate).toFixed(4),
        ]),
      );
    console.log(
      line(["baseline", "", "", "", verifyRate.toFixed(0), "", "", "1.0000"]) +
        "   (raw RSA-2048 crypto.verify per second, same machine)",
    );
  } finally {
    await pg.stop();
    await moto.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
