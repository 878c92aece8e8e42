import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ListCommandsCommand } from "@aws-sdk/client-ssm";
import { parse } from "yaml";
import { discoveryAsync } from "../fixtures/cli";
import { ensureBuilt, parseEnvFile, sandboxApi, sandboxSsm } from "../fixtures/sandbox";

/**
 * Event-driven enrollment, end to end in the sandbox: the sandbox's simulated control plane puts EC2 state-change
 * events on moto's EventBridge when it launches instances, a rule routes them to SQS, and the sandbox runtime
 * (`--events`, poll_interval 5m) enrolls a matching instance at once, long before its next poll.
 */
const ACCOUNT = "123456789012";

describe("discovery sandbox --events: a launch is enrolled at once, not at the next 5-minute poll", () => {
  let dir: string;
  let env: Record<string, string>;
  const cli = (args: string[]) => discoveryAsync(args, { env });

  async function apply(name: string, text: string) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    const r = await cli(["apply", "-f", file]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  }

  /** The SendCommands the SSM simulator saw for `id`. */
  async function commandsFor(id: string) {
    const ssm = sandboxSsm(env);
    try {
      return ((await ssm.send(new ListCommandsCommand({ InstanceId: id }))).Commands ?? []).filter((c) =>
        c.InstanceIds?.includes(id),
      );
    } finally {
      ssm.destroy();
    }
  }

  async function until<T>(what: string, get: () => Promise<T | undefined>, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await get();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-sandbox-events-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir, "--events", "--poll-interval", "5m"]);
    expect(started.stderr).toBe("");
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    await apply(
      "token.yaml",
      `kind: token\nversion: v2\nmetadata: {name: aws-discovery-iam-token}\n` +
        `spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}\n`,
    );
    await apply(
      "config.yaml",
      "kind: discovery_config\nversion: v1\nmetadata: {name: events}\n" +
        "spec: {discovery_group: sandbox, aws: [{types: [ec2], regions: [us-east-1], tags: {fleet: events}}]}\n",
    );
    // The config's first pass (on apply) has run, so what follows is up to the events.
    await until(
      "first pass over the config",
      async () => {
        const r = await sandboxApi(env, "GET", "/v1/resources/discovery_config/events");
        return r.body?.status?.last_sync_time ? true : undefined;
      },
      60_000,
    );
  }, 240_000);

  afterAll(async () => {
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("writes the queue into the runtime's config and env.sh", () => {
    const config = parse(fs.readFileSync(path.join(dir, "runtime.yaml"), "utf8"));
    expect(config.discovery_service).toEqual({
      discovery_group: "sandbox",
      poll_interval: "5m",
      events: { aws: [{ sqs_queue_url: env.DISCOVERY_SANDBOX_EVENTS_QUEUE_URL, region: "us-east-1" }] },
    });
    expect(env.DISCOVERY_SANDBOX_EVENTS_QUEUE_URL).toBe(`${env.AWS_ENDPOINT_URL}/${ACCOUNT}/discovery-ec2-events`);
  });

  it("sends the installer to a matching instance and enrolls it well within the poll interval", async () => {
    const launched = await cli([
      ...["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", "us-east-1"],
      ...["--tags", "fleet=events"],
    ]);
    expect(launched.status).toBe(0);
    const id = launched.stdout.trim();
    // Generous: the 5-minute poll could not have done it; the events path takes seconds.
    const [command] = await until("SendCommand", async () => ((await commandsFor(id)).length ? commandsFor(id) : undefined), 60_000); // prettier-ignore
    expect(command.InstanceIds).toEqual([id]);
    const node = await until(
      "node",
      async () => {
        const nodes = (await sandboxApi(env, "GET", "/v1/nodes")).body.nodes as { name: string }[];
        return nodes.find((n) => n.name === `${ACCOUNT}-${id}`);
      },
      60_000,
    );
    expect(node).toBeDefined();
    const log = fs.readFileSync(path.join(dir, "runtime.log"), "utf8");
    expect(log).toContain("enrolling instances named by state-change events");
  });

  it("sends nothing to an instance the config does not select, though its launch was an event too", async () => {
    const launched = await cli([
      ...["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", "us-east-1"],
      ...["--tags", "fleet=other"],
    ]);
    const id = launched.stdout.trim();
    // Wait until the runtime has handled that event (its targeted pass logged), then check nothing was sent.
    await until(
      "the event handled",
      async () => (fs.readFileSync(path.join(dir, "runtime.log"), "utf8").includes(id) ? true : undefined),
      60_000,
    );
    await new Promise((r) => setTimeout(r, 2000));
    expect(await commandsFor(id)).toEqual([]);
  });
});
