/**
 * The runtime's discovery loop as an operator watches it: `/metrics` scraped after a pass and a refused join, the one
 * log line per pass, and `discovery retry-failed` (POST /v1/enrollments/retry) making the loop retry a failed
 * instance now rather than after its backoff. The runtime is real (HTTPS, store, join service, loop); the cloud is
 * an in-memory fake whose API throttles its first calls, retried with the project's retry helper.
 */
import * as path from "path";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import type { Candidate } from "../../provider/enroll/types";
import { AWS_PLUGIN } from "../../provider/clouds/aws";
import { isThrottling } from "../../provider/clouds/aws/rate-limits";
import type { AwsMatcher } from "../../provider/model";
import { withRetries } from "../../provider/util/retry";
import { discoveryAsync } from "../fixtures/cli";
import { eventually } from "../fixtures/eventually";
import { newHostKey } from "../fixtures/joins";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { ensureBuilt } from "../fixtures/sandbox";
import { tokenDocument } from "../fixtures/store-documents";

const ACCOUNT = "123456789012";

/** A fake AWS: EC2 answers ThrottlingException to its first `throttled` calls; installs join or fail by instance. */
function fakeAws(rt: () => TestRuntime) {
  const world = { instances: ["i-ok", "i-flaky", "i-orphan"], failing: new Set(["i-flaky"]), throttled: 2 };
  const describe = async () => {
    if (world.throttled-- > 0) throw Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException" });
    return world.instances;
  };
  const impl: CloudEnrollment<AwsMatcher> = {
    failureClasses: AWS_PLUGIN.enrollment.failureClasses,
    async fetch(m, ctx) {
      const ids = await withRetries(describe, { isRetryable: isThrottling, onRetry: ctx.onRetry, sleep: async () => {} }); // prettier-ignore
      const team = m.tags.team;
      const mine = ids.filter((id) => (team === "orphan") === (id === "i-orphan"));
      const candidates: Candidate[] = mine.map((id) => ({
        ...{ cloud: "aws", account: ACCOUNT, region: "us-east-1", instanceId: id, nodeName: `${ACCOUNT}-${id}` },
        ...{ state: "running", tags: { team: String(team) } },
      }));
      return { candidates, scopes: [{ cloud: "aws", account: ACCOUNT, region: "us-east-1", instances: mine.length }] };
    },
    async install(cs) {
      return Promise.all(
        cs.map(async (c) => {
          const base = { instanceId: c.instanceId, account: c.account, region: c.region };
          if (world.failing.has(c.instanceId))
            return { ...base, status: "failed" as const, failureClass: "script-failure", reason: "the installer exited with code 1", exitCode: 1 }; // prettier-ignore
          await rt().runtime.store.insertNode({
            name: c.nodeName,
            labels: { "discovery/account-id": c.account, "discovery/instance-id": c.instanceId },
            ...{ joinMethod: "iam", token: "iam-token", hostPublicKey: newHostKey(), principals: [] },
            joinedAt: new Date().toISOString(),
          });
          return { ...base, status: "succeeded" as const };
        }),
      );
    },
  };
  return { impl, world };
}

/** The value of one series in a Prometheus exposition, e.g. `name{a="b"}`; undefined when absent. */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("the runtime's passes: metrics, one log line each, and retrying failed instances now", () => {
  let rt: TestRuntime;
  let aws: ReturnType<typeof fakeAws>;
  const passes = () => rt.runtime.loop!.passes;
  const metrics = async () => (await rt.call("GET", "/metrics")).text;

  beforeAll(async () => {
    ensureBuilt();
    aws = fakeAws(() => rt);
    const install = { join_params: { token_name: "iam-token", method: "iam" } };
    rt = await startTestRuntime(
      {
        discovery_service: {
          poll_interval: "1h",
          aws: [
            { types: ["ec2"], regions: ["us-east-1"], tags: { team: "web" }, install },
            // Its token does not exist: the pass sends it nothing.
            {
              types: ["ec2"],
              regions: ["us-east-1"],
              tags: { team: "orphan" },
              install: { join_params: { token_name: "missing-token", method: "iam" } },
            },
          ],
        },
      },
      { runtime: { discovery: { clouds: (n) => (n === "aws" ? (aws.impl as CloudEnrollment) : undefined) } } },
    );
    // The loop's first pass ran at start, before the token existed; the one that counts runs after the apply.
    await eventually("the first pass", 30, async () => (passes() === 1 ? true : undefined));
    const applied = await rt.call("PUT", "/v1/resources", tokenDocument("iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] }), { admin: true }); // prettier-ignore
    expect(applied.status).toBe(200);
    await rt.runtime.loop!.runNow();
    expect(passes()).toBe(2);
  });
  afterAll(() => rt?.stop());

  it("counts passes, instances by outcome and failure class, commands, throttling retries and refused joins", async () => {
    const refused = await rt.call("POST", "/v1/join", { method: "token", token: "nope", host_public_key: newHostKey() }); // prettier-ignore
    expect(refused.status).toBe(403);
    const text = await metrics();
    expect(series(text, 'discovery_pass_duration_seconds_count{result="completed"}')).toBe(2);
    const instances = (status: string, cls = "") =>
      series(text, `discovery_pass_instances_total{cloud="aws",status="${status}",failure_class="${cls}"}`);
    // First pass: nothing had a token; second: i-ok enrolled, i-flaky failed its script, i-orphan still has none.
    expect(instances("enrolled")).toBe(1);
    expect(instances("failed", "script-failure")).toBe(1);
    expect(instances("failed", "join-token-missing")).toBe(4);
    expect(series(text, 'discovery_pass_commands_sent_total{cloud="aws"}')).toBe(2);
    expect(series(text, 'discovery_pass_api_retries_total{cloud="aws",phase="fetch"}')).toBe(2);
    expect(series(text, 'discovery_pass_api_retries_total{cloud="aws",phase="install"}')).toBe(0);
    expect(series(text, 'discovery_join_requests_total{method="token",result="join_refused",reason="token_not_allowed"}')).toBe(1); // prettier-ignore
    expect(text).toContain("# TYPE discovery_pass_duration_seconds histogram");
  });

  it("logs one line per pass, with its counts and top failure classes", () => {
    const lines = rt
      .log()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith("discovery pass:"));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      ...{ level: 30, component: "discovery", found: 3, enrolled: 1, already_enrolled: 0, failed: 2 },
      top_failures: [
        {
          failure_class: "join-token-missing",
          count: 1,
          example: expect.stringContaining(`join token "missing-token" does not exist in the runtime`),
        },
        { failure_class: "script-failure", count: 1, example: "the installer exited with code 1" },
      ],
    });
    expect(lines[1].msg).toBe(
      "discovery pass: 3 found, 1 enrolled, 0 already enrolled, 2 failed, 2 command(s) sent; top failures: " +
        `join-token-missing ×1 (${(lines[1].top_failures as { example: string }[])[0].example}); ` +
        "script-failure ×1 (the installer exited with code 1)",
    );
  });

  it("retries a failed instance now with `discovery retry-failed`, not after its backoff", async () => {
    aws.world.failing.clear();
    // A pass now without the retry leaves the fixed instance backing off.
    await rt.runtime.loop!.runNow();
    const record = async () =>
      ((await rt.call("GET", "/v1/enrollments", undefined, { admin: true })).body.enrollments as { instanceId: string; status: string }[]).find((e) => e.instanceId === "i-flaky"); // prettier-ignore
    expect((await record())?.status).toBe("failed");

    const r = await discoveryAsync([
      ...["retry-failed", "--server", rt.url, "--ca-cert", rt.runtime.tls.certFile],
      ...["--admin-token-file", path.join(rt.dir, "data", "admin.token")],
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      "a pass started: it retries the failed instances its matchers still select (1 backing off now); " +
        "`discovery get tasks` shows what still fails\n",
    );
    await eventually("i-flaky enrolled", 30, async () => ((await record())?.status === "enrolled" ? true : undefined));
    const audit = (await rt.call("GET", "/v1/audit", undefined, { admin: true })).body.events as { type: string }[];
    expect(audit.map((e) => e.type)).toContain("enrollment.retry");
    const completed = async () => series(await metrics(), 'discovery_pass_duration_seconds_count{result="completed"}');
    await eventually("the retry's pass counted", 30, async () => ((await completed()) === 4 ? true : undefined));
  });

  it("answers 409 where no discovery loop runs, and says where to retry instead", async () => {
    const bare = await startTestRuntime();
    try {
      const r = await bare.call("POST", "/v1/enrollments/retry", {}, { admin: true });
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe("no_discovery_loop");
      expect(r.body.error.message).toContain("discovery enroll --config FILE --once --retry-failed");
      expect((await bare.call("POST", "/v1/enrollments/retry", {})).status).toBe(401);
    } finally {
      await bare.stop();
    }
  });
});
