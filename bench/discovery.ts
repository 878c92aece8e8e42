/**
 * bench/discovery: a full discovery pass over 10,000 instances in 3 accounts × 17 regions, every AWS call delayed
 * by 50 ms (a latency proxy in front of moto) and paced by EC2's token buckets, beside the lower bound computed
 * from the calls no pass can avoid; the same pass one scope after another (as Teleport scans) for comparison;
 * and the time from an instance's launch to its SendCommand in the sandbox runtime (poll_interval 5m, events on).
 * Run: npm run bench:discovery [-- --instances 10000 --latency 50]
 */
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { DescribeImagesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { ListCommandsCommand, SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsMatcher } from "../provider/model";
import { fetchEc2 } from "../provider/clouds/aws/fetch";
import { freePort, MOTO_CREDENTIALS, startMoto } from "../provider/sandbox/moto";
import { discoveryAsync } from "../test/fixtures/cli";
import { enrollConfigFile, ensureBuilt, parseEnvFile } from "../test/fixtures/sandbox";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const INSTANCES = arg("instances", 10_000);
const LATENCY_MS = arg("latency", 50);
const REGIONS = [
  "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2", "eu-west-3",
  "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
  "ap-southeast-1", "ap-southeast-2", "sa-east-1",
]; // prettier-ignore
const ACCOUNTS = ["123456789012", "210987654321", "345678901234"];

/** A proxy that holds every request `latencyMs` before passing it to moto, and counts them. */
async function latencyProxy(target: string, latencyMs: number) {
  const port = await freePort();
  let calls = 0;
  let busyMs = 0;
  let inFlight = 0;
  let busySince = 0;
  // Busy = wall time with at least one request at moto (the union of the intervals, not their sum).
  const begin = () => {
    if (inFlight++ === 0) busySince = performance.now();
  };
  const finish = () => {
    if (--inFlight === 0) busyMs += performance.now() - busySince;
  };
  const server = http.createServer((req, res) => {
    calls++;
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () =>
      setTimeout(() => {
        begin();
        const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
          r.on("end", finish);
        });
        up.on("error", () => {
          finish();
          res.writeHead(502).end();
        });
        up.end(Buffer.concat(chunks));
      }, latencyMs),
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls: () => calls,
    /** Wall time moto had work: it is CPU-bound (one Python process), so no pass can finish faster than this. */
    busySeconds: () => busyMs / 1000,
    reset: () => ((calls = 0), (busyMs = 0)),
    close: () => new Promise((r) => server.close(r)),
  };
}

async function credentialsFor(motoEndpoint: string, account: string) {
  if (account === ACCOUNTS[0]) return MOTO_CREDENTIALS;
  const sts = new STSClient({ region: "us-east-1", endpoint: motoEndpoint, credentials: MOTO_CREDENTIALS });
  const c = (
    await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${account}:role/seed`, RoleSessionName: "seed" }))
  ).Credentials!;
  return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken };
}

async function seed(motoEndpoint: string): Promise<number> {
  const perScope = Math.ceil(INSTANCES / (ACCOUNTS.length * REGIONS.length));
  let made = 0;
  for (const account of ACCOUNTS) {
    const credentials = await credentialsFor(motoEndpoint, account);
    await Promise.all(
      REGIONS.map(async (region) => {
        const ec2 = new EC2Client({ region, endpoint: motoEndpoint, credentials });
        const image = (await ec2.send(new DescribeImagesCommand({}))).Images![0].ImageId;
        const n = Math.min(perScope, INSTANCES - made);
        if (n <= 0) return;
        made += n;
        await ec2.send(
          new RunInstancesCommand({
            ImageId: image,
            MinCount: n,
            MaxCount: n,
            TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "fleet", Value: "bench" }] }],
          }),
        );
        ec2.destroy();
      }),
    );
  }
  return made;
}

function matchers(): AwsMatcher[] {
  const base = {
    types: ["ec2" as const],
    regions: REGIONS,
    tags: { fleet: "bench" },
    ssm: { document_name: "AWS-RunShellScript" },
  };
  const install = {
    join_params: { token_name: "t", method: "iam" as const },
    script_name: "default-installer",
    mode: "agent" as const,
    sshd_config: "/etc/ssh/sshd_config",
  };
  return [
    { ...base, install },
    ...ACCOUNTS.slice(1).map((a) => ({
      ...base,
      install,
      assume_role: { role_arn: `arn:aws:iam::${a}:role/discovery` },
    })),
  ];
}

async function pass(endpoint: string, concurrency: number) {
  const started = performance.now();
  const results = await Promise.all(
    matchers().map((m) => fetchEc2(m, { endpoint, credentials: MOTO_CREDENTIALS, concurrency })),
  );
  const seconds = (performance.now() - started) / 1000;
  const found = results.reduce((n, r) => n + r.candidates.length, 0);
  const failed = results.reduce((n, r) => n + r.scopes.filter((s) => s.error).length, 0);
  const calls = results.reduce((n, r) => n + r.apiCalls, 0);
  return { seconds, found, failed, calls };
}

/** launch → SendCommand in the sandbox: the runtime polls every 5 minutes and reads EC2 state-change events. */
async function launchToSendCommand(): Promise<{ singles: number[]; burst: number[] }> {
  ensureBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-bench-sandbox-"));
  try {
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir, "--events", "--poll-interval", "5m"]);
    if (started.status !== 0) throw new Error(`sandbox did not start: ${started.stderr}`);
    const env = parseEnvFile(path.join(dir, "env.sh"));
    const file = path.join(dir, "latency.yaml");
    fs.writeFileSync(
      file,
      `kind: token\nversion: v2\nmetadata: {name: aws-discovery-iam-token}\n` +
        `spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNTS[0]}"}]}\n---\n` +
        "kind: discovery_config\nversion: v1\nmetadata: {name: latency}\n" +
        "spec: {discovery_group: sandbox, aws: [{types: [ec2], regions: [us-east-1], tags: {fleet: latency}}]}\n",
    );
    if ((await discoveryAsync(["apply", "-f", file], { env })).status !== 0) throw new Error("apply failed");
    await new Promise((r) => setTimeout(r, 5000)); // the config's first pass (on apply) is over
    const ssm = new SSMClient({
      region: "us-east-1",
      endpoint: env.AWS_ENDPOINT_URL_SSM,
      credentials: MOTO_CREDENTIALS,
    });
    // From the start of `sandbox launch` (the CLI's own start-up included) to the SendCommand naming the instance.
    const launch = async (count: number) => {
      const at = Date.now();
      const where = ["--account", ACCOUNTS[0], "--region", "us-east-1", "--tags", "fleet=latency"];
      const out = await discoveryAsync(["sandbox", "launch", "--dir", dir, ...where, "--count", String(count)], {
        env,
      });
      const ids = out.stdout.trim().split("\n");
      const sent = new Map<string, number>();
      const deadline = Date.now() + 120_000;
      while (sent.size < ids.length && Date.now() < deadline) {
        for (const c of (await ssm.send(new ListCommandsCommand({}))).Commands ?? [])
          for (const id of c.InstanceIds ?? [])
            if (ids.includes(id) && c.RequestedDateTime) sent.set(id, c.RequestedDateTime.getTime() - at);
        await new Promise((r) => setTimeout(r, 200));
      }
      return ids.map((id) => sent.get(id) ?? NaN);
    };
    const singles: number[] = [];
    for (let i = 0; i < 10; i++) singles.push(...(await launch(1)));
    const burst = await launch(10);
    ssm.destroy();
    return { singles, burst };
  } finally {
    await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** p50 / p95 / max of latencies in ms (NaN: not sent within 2 minutes). */
function percentiles(ms: number[]) {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { n: ms.length, p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] };
}

async function main() {
  const moto = await startMoto();
  const proxy = await latencyProxy(moto.endpoint, LATENCY_MS);
  try {
    const t = performance.now();
    const made = await seed(moto.endpoint);
    const seedSeconds = (performance.now() - t) / 1000;
    proxy.reset();
    const concurrent = await pass(proxy.endpoint, 32);
    const motoBusy = proxy.busySeconds();
    proxy.reset();
    const serial = await pass(proxy.endpoint, 1);
    // Unavoidable: per account GetCallerIdentity, then AssumeRole (other accounts), then one DescribeInstances page
    // per region (≤1,000 instances each); in parallel the chain is 3 calls deep. The buckets (100 burst) never bind at
    // 17 calls per account and region, so the bound is the chain's latency.
    const pages = Math.ceil(INSTANCES / (ACCOUNTS.length * REGIONS.length) / 1000);
    const bound = ((2 + pages) * LATENCY_MS) / 1000;
    const serialBound = ((ACCOUNTS.length * 2 - 1 + ACCOUNTS.length * REGIONS.length * pages) * LATENCY_MS) / 1000;
    // moto is one CPU-bound Python process: on this machine no pass can beat the time it had work either.
    const machineBound = Math.max(bound, motoBusy);
    const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(26) : x.padStart(12))).join("");
    console.log(
      `\nbench/discovery: ${made} instances in ${ACCOUNTS.length} accounts × ${REGIONS.length} regions, ${LATENCY_MS} ms per AWS call (seeded in ${seedSeconds.toFixed(0)} s)`,
    );
    console.log(line(["pass", "found", "failed", "API calls", "seconds", "bound s", "÷ bound"]));
    console.log(
      line([
        "concurrent (this project)",
        String(concurrent.found),
        String(concurrent.failed),
        String(concurrent.calls),
        concurrent.seconds.toFixed(2),
        bound.toFixed(2),
        (concurrent.seconds / bound).toFixed(2),
      ]),
    );
    console.log(
      line([
        "  same, bound incl. moto",
        "",
        "",
        "",
        concurrent.seconds.toFixed(2),
        machineBound.toFixed(2),
        (concurrent.seconds / machineBound).toFixed(2),
      ]),
    );
    console.log(
      line([
        "one scope at a time",
        String(serial.found),
        String(serial.failed),
        String(serial.calls),
        serial.seconds.toFixed(2),
        serialBound.toFixed(2),
        (serial.seconds / serialBound).toFixed(2),
      ]),
    );
    console.log(
      `  concurrent pass vs one-at-a-time: ${(serial.seconds / concurrent.seconds).toFixed(1)}× faster; proxy saw ${proxy.calls()} requests`,
    );
  } finally {
    await proxy.close();
    await moto.stop();
  }
  const { singles, burst } = await launchToSendCommand();
  console.log(
    `\nlaunch → SendCommand (sandbox runtime, poll_interval 5m, EC2 state-change events on), ms; goal p95 ≤ 10000:`,
  );
  for (const [label, ms] of [
    ["one at a time (10)", singles],
    ["burst of 10", burst],
    ["all", [...singles, ...burst]],
  ] as const) {
    const p = percentiles([...ms]);
    console.log(`  ${label.padEnd(20)} n ${p.n}  p50 ${p.p50}  p95 ${p.p95}  max ${p.max}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
