import * as http from "http";
import { AddressInfo } from "net";
import { DescribeDocumentCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { Candidate, InstallOutcome } from "../../provider/enroll/types";
import { installViaSsm, SsmInstallRequest } from "../../provider/clouds/aws/install-ssm";
import {
  createInstallerDocument,
  deleteInstallerDocument,
  documentContent,
  readInstallerDocument,
  runShellScriptCommands,
  SsmDocumentError,
  updateInstallerDocument,
} from "../../provider/clouds/aws/ssm-document";
import { awsMatcher } from "../../provider/model";
import { Moto, MOTO_CREDENTIALS, startMoto } from "../fixtures/moto";

const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const PIN = "sha256//tYh4Wx8sV0XQb5h3s2lN+2m3CjYkAR9Xb8n7Qe1UZ8o=";

/** What the fake SSM knows about one managed instance. */
interface Managed {
  PingStatus?: string;
  PlatformType?: string;
  PlatformName?: string;
  PlatformVersion?: string;
}
/** One GetCommandInvocation answer. */
interface Invocation {
  Status: string;
  StatusDetails?: string;
  ResponseCode?: number;
  StandardOutputContent?: string;
  StandardErrorContent?: string;
}
/** The story the fake SSM tells. */
interface Scenario {
  managed: Record<string, Managed>;
  /** The invocation of an instance (a plugin step for custom documents) at its nth poll. */
  result?: (instanceId: string, plugin: string | undefined, poll: number) => Invocation;
  deny?: string[];
  /** Action -> how many calls answer ThrottlingException before the rest go through. */
  throttle?: Record<string, number>;
  /** DescribeInstanceInformation page size, to make the installer follow NextToken. */
  pageSize?: number;
  /** How many first polls of each invocation answer InvocationDoesNotExist, as SSM does right after a send. */
  unrecordedPolls?: number;
  /** Action -> how many calls answer 500 InternalServerError (after SendCommand's, the command is recorded). */
  serverErrors?: Record<string, number>;
}
/** A request the fake saw. */
interface Seen {
  action: string;
  body: Record<string, any>;
  accessKey: string;
  region: string;
}

const SUCCESS: Invocation = {
  Status: "Success",
  StatusDetails: "Success",
  ResponseCode: 0,
  StandardOutputContent: "joined\n",
};

/** A minimal SSM endpoint (awsJson1_1, X-Amz-Target: AmazonSSM.<Action>) that answers one scenario. */
class FakeSsm {
  readonly seen: Seen[] = [];
  readonly commands = new Map<
    string,
    { ids: string[]; document: string; parameters: Record<string, string[]>; comment?: string }
  >();
  private polls = new Map<string, number>();
  private server = http.createServer((req, res) => this.handle(req, res));
  url = "";
  constructor(public scenario: Scenario) {}

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
  calls(action: string): Seen[] {
    return this.seen.filter((s) => s.action === action);
  }
  /** Instance ids of every accepted SendCommand. */
  sentIds(): string[] {
    return [...this.commands.values()].flatMap((c) => c.ids);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      const action = String(req.headers["x-amz-target"]).replace(/^AmazonSSM\./, "");
      const cred = /Credential=([^/]+)\/\d+\/([^/]+)\/ssm\//.exec(String(req.headers.authorization)) ?? [];
      const body = JSON.parse(data || "{}");
      this.seen.push({ action, body, accessKey: cred[1], region: cred[2] });
      const [status, out] = this.answer(action, body);
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(out));
    });
  }

  private answer(action: string, body: Record<string, any>): [number, object] {
    const error = (type: string, message: string): [number, object] => [400, { __type: type, message }];
    const throttled = this.scenario.throttle?.[action] ?? 0;
    if (this.calls(action).length <= throttled) return error("ThrottlingException", "Rate exceeded");
    if (this.scenario.deny?.includes(action))
      return error(
        "AccessDeniedException",
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/discovery is not authorized to perform: ssm:${action}`,
      );
    if (action === "DescribeInstanceInformation") {
      const ids: string[] = body.Filters?.find((f: { Key: string }) => f.Key === "InstanceIds")?.Values ?? [];
      if (ids.length > 50) return error("InvalidFilterValue", "at most 50 instance ids");
      const known = ids.filter((id) => id in this.scenario.managed);
      const size = this.scenario.pageSize ?? 50;
      const from = Number(body.NextToken ?? 0);
      const page = known.slice(from, from + size).map((id) => ({
        InstanceId: id,
        PingStatus: "Online",
        PlatformType: "Linux",
        LastPingDateTime: 1748779200,
        ...this.scenario.managed[id],
      }));
      const next = from + size < known.length ? { NextToken: String(from + size) } : {};
      return [200, { InstanceInformationList: page, ...next }];
    }
    if (action === "SendCommand") {
      if (body.InstanceIds.length > 50) return error("ValidationException", "at most 50 instance ids");
      const id = `cmd-${this.commands.size + 1}`;
      const { InstanceIds: ids, DocumentName: document, Parameters: parameters, Comment: comment } = body;
      this.commands.set(id, { ids, document, parameters, comment });
      // As SSM may: the command is recorded, then the answer is lost to a server error.
      if (this.calls(action).length <= (this.scenario.serverErrors?.[action] ?? 0))
        return [500, { __type: "InternalServerError", message: "internal error" }];
      return [200, { Command: { CommandId: id, DocumentName: body.DocumentName, InstanceIds: body.InstanceIds } }];
    }
    if (action === "ListCommandInvocations") {
      // Newest first, as SSM lists them; one command per page, to make the installer follow NextToken.
      const mine = [...this.commands].reverse().filter(([, c]) => c.ids.includes(body.InstanceId));
      const from = Number(body.NextToken ?? 0);
      const page = mine.slice(from, from + 1).map(([id, c]) => ({
        CommandId: id,
        InstanceId: body.InstanceId,
        Comment: c.comment,
        Status: "InProgress",
      }));
      return [200, { CommandInvocations: page, ...(from + 1 < mine.length && { NextToken: String(from + 1) }) }];
    }
    if (action === "GetCommandInvocation") {
      const command = this.commands.get(body.CommandId);
      if (!command?.ids.includes(body.InstanceId)) return error("InvocationDoesNotExist", "no such invocation");
      const key = `${body.CommandId}/${body.InstanceId}/${body.PluginName ?? ""}`;
      const poll = (this.polls.get(key) ?? 0) + 1;
      this.polls.set(key, poll);
      if (poll <= (this.scenario.unrecordedPolls ?? 0)) return error("InvocationDoesNotExist", "not yet");
      const r = this.scenario.result?.(body.InstanceId, body.PluginName, poll) ?? SUCCESS;
      return [200, { CommandId: body.CommandId, InstanceId: body.InstanceId, PluginName: body.PluginName, ...r }];
    }
    return error("UnknownOperationException", action);
  }
}

const ids = (n: number, prefix = "i-0a") =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(15, "0")}`);
const candidates = (instanceIds: string[], account = ACCOUNT, region = REGION): Candidate[] =>
  instanceIds.map((instanceId) => ({
    cloud: "aws",
    account,
    region,
    instanceId,
    nodeName: `${account}-${instanceId}`,
    state: "running",
    tags: {},
  }));
const linux = (list: string[]) => Object.fromEntries(list.map((id) => [id, {}]));
const byClass = (outcomes: InstallOutcome[]) =>
  outcomes.reduce<Record<string, number>>((acc, o) => {
    const k = o.failureClass ?? o.status;
    acc[k] = (acc[k] ?? 0) + 1;
    return acc;
  }, {});

let fake: FakeSsm | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

async function install(scenario: Scenario, list: Candidate[], over: Partial<SsmInstallRequest> = {}) {
  fake = await new FakeSsm(scenario).start();
  const { client, ...rest } = over;
  const outcomes = await installViaSsm(list, {
    matcher: awsMatcher.parse({ regions: [REGION], tags: { env: "prod" } }),
    endpoint: { proxyAddr: "runtime.internal:3080", caPin: PIN },
    client: { endpoint: fake.url, credentials: async () => MOTO_CREDENTIALS, ...client },
    pollIntervalMs: 5,
    retry: { baseDelayMs: 1 },
    ...rest,
  });
  return { fake, outcomes };
}

describe("installViaSsm against a scenario SSM endpoint", () => {
  it("sends 120 instances in batches of at most 50 with the AWS-RunShellScript commands, and all succeed", async () => {
    const list = ids(120);
    const { fake, outcomes } = await install({ managed: linux(list), pageSize: 7 }, candidates(list));
    expect(outcomes.map((o) => [o.instanceId, o.status])).toEqual(list.map((id) => [id, "succeeded"]));
    expect(outcomes[0]).toEqual({
      instanceId: list[0],
      account: ACCOUNT,
      region: REGION,
      status: "succeeded",
      exitCode: 0,
      commandId: "cmd-1",
      stdoutTail: "joined",
    });
    expect(fake.calls("SendCommand").map((c) => c.body.InstanceIds.length)).toEqual([50, 50, 20]);
    expect(fake.sentIds().sort()).toEqual([...list].sort());
    for (const c of fake.calls("DescribeInstanceInformation"))
      expect(c.body.Filters[0].Values.length).toBeLessThanOrEqual(50);
    // 7 per page: the installer followed NextToken through every page of every chunk.
    expect(fake.calls("DescribeInstanceInformation")).toHaveLength(8 + 8 + 3);
    const send = fake.calls("SendCommand")[0].body;
    expect(send.DocumentName).toBe("AWS-RunShellScript");
    expect(send.Parameters).toEqual({
      commands: runShellScriptCommands({
        mode: "agent",
        token: "aws-discovery-iam-token",
        scriptName: "default-installer",
        proxyAddr: "runtime.internal:3080",
        method: "iam",
        caPin: PIN,
        sshdConfig: "/etc/ssh/sshd_config",
      }),
    });
    expect(fake.seen.every((s) => s.accessKey === "testing" && s.region === REGION)).toBe(true);
  });

  it("reports pre-check failures without sending them anything", async () => {
    const list = ids(120);
    const managed: Record<string, Managed> = {};
    list.forEach((id, i) => {
      if (i % 5 === 1) managed[id] = { PingStatus: "ConnectionLost" };
      else if (i % 5 === 2) managed[id] = { PingStatus: "Inactive" };
      else if (i % 5 === 3)
        managed[id] = {
          PlatformType: "Windows",
          PlatformName: "Microsoft Windows Server 2022",
          PlatformVersion: "10.0",
        };
      else if (i % 5 === 4) managed[id] = {};
      // i % 5 === 0: unknown to SSM
    });
    const { fake, outcomes } = await install({ managed }, candidates(list));
    expect(byClass(outcomes)).toEqual({
      "ssm-agent-not-registered": 24,
      "ssm-agent-connection-lost": 48,
      "unsupported-os": 24,
      succeeded: 24,
    });
    const refused = new Set(outcomes.filter((o) => o.status === "failed").map((o) => o.instanceId));
    expect(fake.sentIds().filter((id) => refused.has(id))).toEqual([]);
    expect(fake.sentIds()).toHaveLength(24);
    expect(fake.calls("SendCommand").every((c) => c.body.InstanceIds.length <= 50)).toBe(true);
    const profileFix =
      "attach an instance profile with AmazonSSMManagedInstanceCore (or `discovery policy aws`'s instance policy), " +
      "check the SSM agent is installed and running (systemctl status amazon-ssm-agent), and that the instance " +
      "reaches the ssm, ssmmessages and ec2messages endpoints (internet, NAT gateway or VPC endpoints)";
    expect(outcomes.slice(0, 4)).toEqual([
      {
        instanceId: list[0],
        account: ACCOUNT,
        region: REGION,
        status: "failed",
        failureClass: "ssm-agent-not-registered",
        reason: `instance ${list[0]} is not registered with SSM in account ${ACCOUNT} (${REGION})`,
        remediation: profileFix,
      },
      {
        instanceId: list[1],
        account: ACCOUNT,
        region: REGION,
        status: "failed",
        failureClass: "ssm-agent-connection-lost",
        reason: `the SSM agent on ${list[1]} is ConnectionLost (last seen 2025-06-01T12:00:00.000Z)`,
        remediation: `check the instance is running and its SSM agent is up; then ${profileFix}`,
      },
      expect.objectContaining({
        failureClass: "ssm-agent-connection-lost",
        reason: `the SSM agent on ${list[2]} is Inactive (last seen 2025-06-01T12:00:00.000Z)`,
      }),
      {
        instanceId: list[3],
        account: ACCOUNT,
        region: REGION,
        status: "failed",
        failureClass: "unsupported-os",
        reason: `${list[3]} runs Windows (Microsoft Windows Server 2022 10.0); the installer runs on Linux only`,
        remediation: "exclude the instance from the matcher (a tag it lacks), or enroll it another way",
      },
    ]);
  });

  it("script-failure: the exit code and the last 20 lines of stderr", async () => {
    const list = ids(3);
    const stderr = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
    const { fake, outcomes } = await install(
      {
        managed: linux(list),
        unrecordedPolls: 2,
        result: (id, _plugin, poll) =>
          poll < 5
            ? { Status: "InProgress", StatusDetails: "InProgress", ResponseCode: -1 }
            : id === list[1]
              ? { Status: "Failed", StatusDetails: "Failed", ResponseCode: 3, StandardErrorContent: stderr }
              : SUCCESS,
      },
      candidates(list),
    );
    expect(outcomes.map((o) => o.status)).toEqual(["succeeded", "failed", "succeeded"]);
    expect(outcomes[1]).toEqual({
      instanceId: list[1],
      account: ACCOUNT,
      region: REGION,
      status: "failed",
      failureClass: "script-failure",
      reason: "the installer exited with code 3: line 40",
      remediation:
        "read stderrTail; if curl could not reach the runtime, open the path from the instance to it " +
        "(security groups, install.proxy_addr); rerun the command on the instance to reproduce",
      exitCode: 3,
      stderrTail: Array.from({ length: 20 }, (_, i) => `line ${i + 21}`).join("\n"),
      stdoutTail: "",
      commandId: "cmd-1",
    });
    // Not yet recorded twice, in progress twice, then finished: every instance polled five times.
    expect(fake.calls("GetCommandInvocation")).toHaveLength(15);
  });

  it("script-failure: a long stderr is cut to its last 2 KB", async () => {
    const list = ids(1);
    const long = "x".repeat(5000) + "END";
    const { outcomes } = await install(
      {
        managed: linux(list),
        result: () => ({ Status: "Failed", ResponseCode: 1, StandardErrorContent: long }),
      },
      candidates(list),
    );
    expect(outcomes[0].stderrTail).toBe(long.slice(-2048));
  });

  it("invocation-failure: undeliverable, delivery timed out, failed without exit code, no result by the deadline", async () => {
    const list = ids(4);
    const results: Record<string, Invocation> = {
      [list[0]]: { Status: "Failed", StatusDetails: "Undeliverable", ResponseCode: -1 },
      [list[1]]: { Status: "TimedOut", StatusDetails: "DeliveryTimedOut", ResponseCode: -1 },
      [list[2]]: { Status: "Failed", StatusDetails: "Failed" },
      [list[3]]: { Status: "InProgress", StatusDetails: "InProgress", ResponseCode: -1 },
    };
    const started = Date.now();
    const { fake, outcomes } = await install({ managed: linux(list), result: (id) => results[id] }, candidates(list), {
      deadline: new Date(Date.now() + 300),
      pollIntervalMs: 50,
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(outcomes.map((o) => [o.failureClass, o.reason, (o.remediation ?? "").length > 20])).toEqual([
      [
        "invocation-failure",
        "SSM could not deliver the command: the instance stopped, was terminated, or its agent cannot reach SSM (Undeliverable)",
        true,
      ],
      [
        "invocation-failure",
        "the SSM agent did not pick the command up before the delivery timeout (DeliveryTimedOut)",
        true,
      ],
      ["invocation-failure", "the command ended Failed without an exit code (Failed)", true],
      ["invocation-failure", "no result before the deadline: the command was still InProgress", true],
    ]);
    expect(outcomes.every((o) => o.status === "failed" && o.commandId === "cmd-1" && o.exitCode === undefined)).toBe(
      true,
    );
    // The unfinished one was polled until the deadline, the finished ones once.
    const polls = (id: string) => fake.calls("GetCommandInvocation").filter((c) => c.body.InstanceId === id).length;
    expect(polls(list[0])).toBe(1);
    expect(polls(list[3])).toBeGreaterThan(2);
  });

  it("permission-denied on SendCommand names the action, the account and what to allow; pre-check failures keep their class", async () => {
    const list = ids(60);
    const managed = linux(list.slice(1));
    const { fake, outcomes } = await install({ managed, deny: ["SendCommand"] }, candidates(list));
    expect(byClass(outcomes)).toEqual({ "ssm-agent-not-registered": 1, "permission-denied": 59 });
    expect(outcomes[1]).toEqual({
      instanceId: list[1],
      account: ACCOUNT,
      region: REGION,
      status: "failed",
      failureClass: "permission-denied",
      reason:
        `ssm:SendCommand was denied in account ${ACCOUNT} (${REGION}): User: arn:aws:sts::${ACCOUNT}:assumed-role/discovery ` +
        "is not authorized to perform: ssm:SendCommand",
      remediation:
        `allow ssm:SendCommand for the discovery role in account ${ACCOUNT} (${REGION}) on ` +
        `arn:aws:ssm:${REGION}::document/AWS-RunShellScript and arn:aws:ec2:${REGION}:*:instance/*; ` +
        "`discovery policy aws --config FILE` prints the policy the discovery role needs",
    });
    expect(fake.calls("SendCommand").map((c) => c.body.InstanceIds.length)).toEqual([49, 10]);
  });

  it("permission-denied on DescribeInstanceInformation sends nothing", async () => {
    const list = ids(5);
    const { fake, outcomes } = await install(
      { managed: linux(list), deny: ["DescribeInstanceInformation"] },
      candidates(list),
    );
    expect(outcomes.map((o) => o.failureClass)).toEqual(Array(5).fill("permission-denied"));
    expect(outcomes[0].reason).toMatch(
      /^ssm:DescribeInstanceInformation was denied in account 123456789012 \(us-east-1\)/,
    );
    expect(fake.calls("SendCommand")).toHaveLength(0);
  });

  it("permission-denied on GetCommandInvocation keeps the command id", async () => {
    const list = ids(2);
    const { outcomes } = await install({ managed: linux(list), deny: ["GetCommandInvocation"] }, candidates(list));
    expect(outcomes.map((o) => [o.failureClass, o.commandId])).toEqual([
      ["permission-denied", "cmd-1"],
      ["permission-denied", "cmd-1"],
    ]);
    expect(outcomes[0].reason).toMatch(/^ssm:GetCommandInvocation was denied in account 123456789012/);
  });

  it("permission-denied when the account's credentials cannot be had (assume role refused)", async () => {
    const list = ids(2);
    const denied = Object.assign(new Error("not authorized to perform: sts:AssumeRole"), { name: "AccessDenied" });
    const { fake, outcomes } = await install({ managed: linux(list) }, candidates(list), {
      client: { credentials: () => Promise.reject(denied) },
    });
    expect(outcomes.map((o) => o.failureClass)).toEqual(["permission-denied", "permission-denied"]);
    expect(outcomes[0].reason).toBe(
      "sts:AssumeRole (credentials for the account) was denied in account 123456789012 (us-east-1): " +
        "not authorized to perform: sts:AssumeRole",
    );
    expect(fake.seen).toHaveLength(0);
  });

  it("throttling is retried with backoff; each batch is sent once", async () => {
    const list = ids(70);
    const { fake, outcomes } = await install(
      { managed: linux(list), throttle: { DescribeInstanceInformation: 2, SendCommand: 3, GetCommandInvocation: 4 } },
      candidates(list),
    );
    expect(byClass(outcomes)).toEqual({ succeeded: 70 });
    expect(fake.calls("SendCommand")).toHaveLength(3 + 2);
    expect(fake.commands.size).toBe(2);
  });

  it("a throttled call that never recovers fails as throttled, saying nothing was sent, not a crash", async () => {
    const list = ids(2);
    const { fake, outcomes } = await install(
      { managed: linux(list), throttle: { SendCommand: 100 } },
      candidates(list),
      { retry: { attempts: 3, baseDelayMs: 1 } },
    );
    expect(outcomes.map((o) => o.failureClass)).toEqual(["throttled", "throttled"]);
    expect(outcomes[0].reason).toMatch(
      /^ssm:SendCommand was throttled in account 123456789012 \(us-east-1\) past the retries \(ThrottlingException: Rate exceeded\); nothing was sent$/,
    );
    expect(outcomes[0].attempt).toBeUndefined();
    expect(fake.commands.size).toBe(0);
  });

  it("custom document: token, scriptName, proxyAddr, joinMethod, caPin and sshdConfigPath; each step read by plugin name", async () => {
    const list = ids(3);
    const matcher = awsMatcher.parse({
      regions: [REGION],
      ssm: { document_name: "DiscoveryAgentlessInstaller" },
      install: { mode: "agentless", join_params: { method: "ec2" }, proxy_addr: "https://proxy.example.com:443/" },
    });
    const { fake, outcomes } = await install(
      {
        managed: linux(list),
        result: (id, plugin) =>
          id === list[1] && plugin === "download"
            ? {
                Status: "Failed",
                ResponseCode: 90,
                StandardErrorContent: "curl: (90) SSL: public key does not match pinned public key\n",
              }
            : id === list[2] && plugin === "install"
              ? { Status: "Failed", ResponseCode: 2, StandardErrorContent: "discovery-installer: error: no sshd\n" }
              : SUCCESS,
      },
      candidates(list),
      { matcher },
    );
    const send = fake.calls("SendCommand")[0].body;
    expect(send.DocumentName).toBe("DiscoveryAgentlessInstaller");
    expect(send.Parameters).toEqual({
      token: ["aws-discovery-iam-token"],
      scriptName: ["default-agentless-installer"],
      proxyAddr: ["proxy.example.com:443"],
      joinMethod: ["ec2"],
      caPin: [PIN],
      sshdConfigPath: ["/etc/ssh/sshd_config"],
    });
    const steps = (id: string) =>
      fake
        .calls("GetCommandInvocation")
        .filter((c) => c.body.InstanceId === id)
        .map((c) => c.body.PluginName);
    expect(steps(list[0])).toEqual(["download", "install"]);
    expect(steps(list[1])).toEqual(["download"]);
    expect(outcomes[0].status).toBe("succeeded");
    expect(outcomes[1]).toMatchObject({
      failureClass: "script-failure",
      exitCode: 90,
      reason:
        "downloading the installer from https://proxy.example.com:443/webapi/scripts/installer/default-agentless-installer " +
        "failed (step download, exit code 90): curl: (90) SSL: public key does not match pinned public key",
      remediation:
        "make https://proxy.example.com:443/webapi/scripts/installer/default-agentless-installer reachable from the " +
        "instance (security groups, install.proxy_addr); curl's exit code 90 means the runtime's TLS key does not " +
        "match the pin (caPin) the document was given",
      stderrTail: "curl: (90) SSL: public key does not match pinned public key",
    });
    expect(outcomes[2]).toMatchObject({
      failureClass: "script-failure",
      exitCode: 2,
      reason: "the installer exited with code 2: discovery-installer: error: no sshd",
    });
  });

  it("custom document: a setting its patterns refuse fails every instance, naming the parameter, before any send", async () => {
    const list = ids(2);
    const matcher = awsMatcher.parse({
      regions: [REGION],
      ssm: { document_name: "DiscoveryInstaller" },
      install: { proxy_addr: "-k.example.com:443" }, // the model takes it; as a URL host it is no host name
    });
    const { fake, outcomes } = await install({ managed: linux(list) }, candidates(list), { matcher });
    expect(fake.calls("SendCommand")).toHaveLength(0);
    expect(outcomes.map((o) => o.failureClass)).toEqual(["invocation-failure", "invocation-failure"]);
    expect(outcomes[0].reason).toMatch(/^SSM document parameter proxyAddr "-k.example.com:443" does not match/);
    expect(outcomes[0].remediation).toContain("correct the matcher's install block (install.proxy_addr");
  });

  it("groups by account and region, with each scope's own credentials, and keeps the input order", async () => {
    const a = candidates(ids(3, "i-0a"), "111111111111", "us-east-1");
    const b = candidates(ids(3, "i-0b"), "222222222222", "eu-west-1");
    const mixed = [a[0], b[0], a[1], b[1], a[2], b[2]];
    const asked: string[] = [];
    const { fake, outcomes } = await install({ managed: linux(mixed.map((c) => c.instanceId)) }, mixed, {
      client: {
        credentials: async (account, region) => {
          asked.push(`${account}/${region}`);
          return { accessKeyId: `AKIA${account}`, secretAccessKey: "secret" };
        },
      },
    });
    expect(outcomes.map((o) => [o.account, o.instanceId, o.status])).toEqual(
      mixed.map((c) => [c.account, c.instanceId, "succeeded"]),
    );
    expect(asked.sort()).toEqual(["111111111111/us-east-1", "222222222222/eu-west-1"]);
    for (const c of fake.calls("SendCommand")) {
      const account = c.accessKey.slice(4);
      const expected = account === "111111111111" ? a : b;
      expect(c.region).toBe(expected[0].region);
      expect(c.body.InstanceIds).toEqual(expected.map((x) => x.instanceId));
    }
  });
});

describe("installViaSsm: exactly once across crashes and faults (attempts)", () => {
  const attempted = (list: string[], attempt: string, resume = false) =>
    candidates(list).map((c) => ({ ...c, attempt, resume }));

  it("names the attempt in the command's Comment, first, so SSM's 100-character cut keeps it", async () => {
    const list = ids(2);
    const long = "x".repeat(63);
    const matcher = awsMatcher.parse({ regions: [REGION], tags: { env: "prod" }, install: { script_name: long } });
    const { fake } = await install({ managed: linux(list) }, attempted(list, "0123456789abcdef"), { matcher });
    const [command] = [...fake.commands.values()];
    expect(command.comment).toBe(`pulumi-discovery attempt 0123456789abcdef: install ${long}`.slice(0, 100));
    expect(command.comment).toMatch(/^pulumi-discovery attempt 0123456789abcdef: install x+$/);
  });

  it("a resumed attempt whose command SSM has is followed, not sent again (the runtime died after sending)", async () => {
    const list = ids(3);
    fake = await new FakeSsm({ managed: linux(list) }).start();
    // The dead runtime's command for attempt A, then an unrelated later one of another attempt.
    fake.commands.set("cmd-A", {
      ids: list.slice(0, 2),
      document: "AWS-RunShellScript",
      parameters: {},
      comment: "pulumi-discovery attempt aaaaaaaaaaaaaaaa: install default-installer",
    });
    fake.commands.set("cmd-B", {
      ids: list.slice(0, 1),
      document: "AWS-RunShellScript",
      parameters: {},
      comment: "pulumi-discovery attempt bbbbbbbbbbbbbbbb: install default-installer",
    });
    const outcomes = await installViaSsm(attempted(list, "aaaaaaaaaaaaaaaa", true), {
      matcher: awsMatcher.parse({ regions: [REGION], tags: { env: "prod" } }),
      endpoint: { proxyAddr: "runtime.internal:3080", caPin: PIN },
      client: { endpoint: fake.url, credentials: async () => MOTO_CREDENTIALS },
      pollIntervalMs: 5,
      retry: { baseDelayMs: 1 },
    });
    expect(outcomes.map((o) => [o.status, o.commandId])).toEqual([
      ["succeeded", "cmd-A"],
      ["succeeded", "cmd-A"],
      // The third was claimed but the runtime died before sending: it is sent now, under the same attempt.
      ["succeeded", "cmd-3"],
    ]);
    expect(fake.calls("SendCommand").map((c) => c.body.InstanceIds)).toEqual([[list[2]]]);
    expect(fake.commands.get("cmd-3")?.comment).toBe(
      "pulumi-discovery attempt aaaaaaaaaaaaaaaa: install default-installer",
    );
  });

  it("a SendCommand answered 500 is not retried blindly: the failure keeps its attempt, and resuming it follows the recorded command", async () => {
    const list = ids(2);
    const first = await install(
      { managed: linux(list), serverErrors: { SendCommand: 1 } },
      attempted(list, "c0ffee00c0ffee00"),
    );
    expect(first.fake.calls("SendCommand")).toHaveLength(1);
    expect(first.outcomes.map((o) => [o.failureClass, o.attempt])).toEqual([
      ["invocation-failure", "c0ffee00c0ffee00"],
      ["invocation-failure", "c0ffee00c0ffee00"],
    ]);
    expect(first.outcomes[0].reason).toMatch(
      /^ssm:SendCommand failed in account 123456789012 \(us-east-1\): InternalServerError/,
    );
    // The next pass resumes the attempt against the same SSM: it finds the command and sends nothing.
    const outcomes = await installViaSsm(attempted(list, "c0ffee00c0ffee00", true), {
      matcher: awsMatcher.parse({ regions: [REGION], tags: { env: "prod" } }),
      endpoint: { proxyAddr: "runtime.internal:3080", caPin: PIN },
      client: { endpoint: first.fake.url, credentials: async () => MOTO_CREDENTIALS },
      pollIntervalMs: 5,
      retry: { baseDelayMs: 1 },
    });
    expect(outcomes.map((o) => [o.status, o.commandId])).toEqual([
      ["succeeded", "cmd-1"],
      ["succeeded", "cmd-1"],
    ]);
    expect(first.fake.calls("SendCommand")).toHaveLength(1);
  });

  it("SSM unreachable: endpoint-unreachable names the endpoint and the socket error; nothing was sent", async () => {
    const list = ids(1);
    fake = await new FakeSsm({ managed: linux(list) }).start();
    const url = fake.url;
    await fake.stop();
    fake = undefined;
    const outcomes = await installViaSsm(attempted(list, "dddddddddddddddd"), {
      matcher: awsMatcher.parse({ regions: [REGION], tags: { env: "prod" } }),
      endpoint: { proxyAddr: "runtime.internal:3080", caPin: PIN },
      client: { endpoint: url, credentials: async () => MOTO_CREDENTIALS },
      retry: { baseDelayMs: 1 },
    });
    expect(outcomes[0]).toMatchObject({ status: "failed", failureClass: "endpoint-unreachable" });
    expect(outcomes[0].reason).toBe(
      `ssm:DescribeInstanceInformation could not reach SSM at ${url} for account ${ACCOUNT} (${REGION}): ` +
        `connect ECONNREFUSED ${url.replace("http://", "")}; nothing was sent`,
    );
    expect(outcomes[0].attempt).toBeUndefined();
  });

  it("SSM unreachable while resuming: the lookup failure keeps the attempt, so nothing is sent blind", async () => {
    const list = ids(1);
    fake = await new FakeSsm({ managed: linux(list) }).start();
    const url = fake.url;
    await fake.stop();
    fake = undefined;
    const outcomes = await installViaSsm(attempted(list, "eeeeeeeeeeeeeeee", true), {
      matcher: awsMatcher.parse({ regions: [REGION], tags: { env: "prod" } }),
      endpoint: { proxyAddr: "runtime.internal:3080", caPin: PIN },
      client: { endpoint: url, credentials: async () => MOTO_CREDENTIALS },
      retry: { baseDelayMs: 1 },
    });
    expect(outcomes[0]).toMatchObject({ failureClass: "endpoint-unreachable", attempt: "eeeeeeeeeeeeeeee" });
    expect(outcomes[0].reason).toMatch(/^ssm:ListCommandInvocations could not reach SSM at /);
  });

  it("GetCommandInvocation throttled past the retries keeps watching the sent command: no failure, no second send", async () => {
    const list = ids(2);
    const { fake, outcomes } = await install(
      { managed: linux(list), throttle: { GetCommandInvocation: 12 } },
      attempted(list, "ffffffffffffffff"),
      { retry: { attempts: 2, baseDelayMs: 1 } },
    );
    expect(outcomes.map((o) => o.status)).toEqual(["succeeded", "succeeded"]);
    expect(fake.calls("SendCommand")).toHaveLength(1);
  });
});

describe("installer document lifecycle on moto", () => {
  let moto: Moto;
  let client: SSMClient;
  beforeAll(async () => {
    moto = await startMoto();
    client = new SSMClient({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  });
  afterAll(async () => {
    client?.destroy();
    await moto?.stop();
  });

  it("creates, reads, updates to a new default version, skips unchanged content, and deletes", async () => {
    const name = "DiscoveryInstaller";
    const created = await createInstallerDocument(client, { name, mode: "agent", tags: { team: "platform" } });
    const agent = { name, content: documentContent("agent"), defaultVersion: "1", latestVersion: "1" };
    expect(created).toEqual(agent);
    expect(await readInstallerDocument(client, name)).toEqual(agent);

    expect(await updateInstallerDocument(client, { name, mode: "agent" })).toEqual({ state: agent, changed: false });
    expect((await readInstallerDocument(client, name))?.latestVersion).toBe("1");

    const agentless = { name, content: documentContent("agentless"), defaultVersion: "2", latestVersion: "2" };
    expect(await updateInstallerDocument(client, { name, mode: "agentless" })).toEqual({
      state: agentless,
      changed: true,
    });
    expect(await readInstallerDocument(client, name)).toEqual(agentless);
    expect(await updateInstallerDocument(client, { name, mode: "agentless" })).toEqual({
      state: agentless,
      changed: false,
    });

    // Back to content version 1 already has: SSM makes no duplicate version, version 1 becomes the default again.
    const back = { ...agent, defaultVersion: "1", latestVersion: "2" };
    expect(await updateInstallerDocument(client, { name, mode: "agent" })).toEqual({ state: back, changed: true });
    expect(await readInstallerDocument(client, name)).toEqual(back);

    await deleteInstallerDocument(client, name);
    expect(await readInstallerDocument(client, name)).toBeUndefined();
    await expect(deleteInstallerDocument(client, name)).resolves.toBeUndefined();
  });

  it("refuses a name that exists, and updating one that does not", async () => {
    await createInstallerDocument(client, { name: "Taken.Installer", mode: "agent" });
    await expect(createInstallerDocument(client, { name: "Taken.Installer", mode: "agentless" })).rejects.toEqual(
      new SsmDocumentError(
        "document_exists",
        "SSM document Taken.Installer already exists in this account and region; choose another name or delete it first",
      ),
    );
    await expect(updateInstallerDocument(client, { name: "Missing_Installer", mode: "agent" })).rejects.toEqual(
      new SsmDocumentError("document_not_found", "SSM document Missing_Installer does not exist; create it first"),
    );
  });

  it.each([
    [
      "AWS-Installer",
      'document name "AWS-Installer" must not start with "aws" or "amazon" (AWS reserves them); choose a name such as DiscoveryInstaller',
    ],
    [
      "amazon.installer",
      'document name "amazon.installer" must not start with "aws" or "amazon" (AWS reserves them); choose a name such as DiscoveryInstaller',
    ],
    ["no", 'document name "no" must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller'],
    [
      "bad/name",
      'document name "bad/name" must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller',
    ],
  ])("refuses the name %s before calling AWS", async (name, message) => {
    const refusal = new SsmDocumentError("invalid_document_name", message);
    await expect(createInstallerDocument(client, { name, mode: "agent" })).rejects.toEqual(refusal);
    await expect(readInstallerDocument(client, name)).rejects.toEqual(refusal);
    // moto itself would have taken it: the refusal is ours, made before any request.
    const created = await client
      .send(new DescribeDocumentCommand({ Name: name }))
      .then(() => true)
      .catch(() => false);
    expect(created).toBe(false);
  });
});
