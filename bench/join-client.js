/**
 * The load generator of bench/join, run in a worker thread so the clients' HTTPS work is not done on the
 * runtime's event loop. Plain JavaScript with Node's own modules only, so it runs as a worker without a loader.
 *
 * workerData: { url, ca, sockets, steps }. Each step sends `bodies` to POST /v1/join over keep-alive HTTPS,
 * either closed loop (`concurrency` clients, each sending its next request when the last one answers) or open
 * loop (`rate` requests a second on a fixed schedule whatever the answers; latency is measured from the
 * scheduled send time, so a server that falls behind is charged for the queue it builds). Posts one result a step,
 * with this thread's CPU time per join (the clients' own cost).
 */
const https = require("https");
const { parentPort, workerData } = require("worker_threads");

const { url, ca, sockets, steps } = workerData;
const agent = new https.Agent({ keepAlive: true, maxSockets: sockets, ca });

function post(body) {
  return new Promise((resolve) => {
    const req = https.request(
      `${url}/v1/join`,
      { method: "POST", agent, headers: { "content-type": "application/json" } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

async function closedLoop(bodies, concurrency, record) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        const t = performance.now();
        record(await post(bodies[i]), t);
      }
    }),
  );
}

async function openLoop(bodies, rate, record) {
  const start = performance.now();
  const pending = [];
  for (let i = 0; i < bodies.length; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(post(bodies[i]).then((status) => record(status, due)));
  }
  await Promise.all(pending);
}

async function main() {
  for (const step of steps) {
    const latencies = [];
    let failed = 0;
    const record = (status, sentAt) => {
      latencies.push(performance.now() - sentAt);
      if (status !== 200) failed++;
    };
    const started = performance.now();
    const cpu = process.threadCpuUsage();
    if (step.rate) await openLoop(step.bodies, step.rate, record);
    else await closedLoop(step.bodies, step.concurrency, record);
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
    const joined = step.bodies.length - failed;
    const used = process.threadCpuUsage(cpu);
    const clientCpuMs = (used.user + used.system) / 1000 / step.bodies.length;
    const result = { joins: joined, failed, seconds, rate: joined / seconds, p50: at(50), p99: at(99) };
    parentPort.postMessage({ ...result, client_cpu_ms_per_join: clientCpuMs });
  }
  agent.destroy();
}

main().catch((err) => {
  throw err;
});
