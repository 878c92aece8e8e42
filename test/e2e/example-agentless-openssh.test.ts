import { DescribeDocumentCommand, ListCommandsCommand, SSMClient } from "@aws-sdk/client-ssm";
import { spawnSync } from "child_process";
import * as fs from "fs";
import { discoveryAsync } from "../fixtures/cli";
import { ExampleSandbox, exampleStack, startExampleSandbox } from "../fixtures/example-sandbox";
import { MOTO_CREDENTIALS } from "../fixtures/moto";
import { certificateLogins, expectCertificateLoginsOnly } from "../fixtures/ssh-client";

interface Outcome {
  instanceId: string;
  nodeName: string;
  status: string;
}

/**
 * examples/agentless-openssh against the sandbox: `pulumi up` creates the custom SSM document, installs through it,
 * the instances join with their signed identity documents, and their plain OpenSSH servers then take short-lived
 * user certificates from the runtime (and only those), presenting host certificates the client checks.
 */
describe("examples/agentless-openssh", () => {
  let sb: ExampleSandbox;
  let dir: string | undefined;
  const ssm = () =>
    new SSMClient({ region: "us-east-1", endpoint: sb.env.AWS_ENDPOINT_URL_SSM, credentials: MOTO_CREDENTIALS });

  beforeAll(async () => {
    sb = await startExampleSandbox();
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  });

  it("enrolls through its own SSM document, and the instances take certificate logins only", async () => {
    const tagged = await sb.launch({ tags: "ssh-access=certificates", count: 2, agentless: true });
    const other = await sb.launch({ tags: "ssh-access=keys", agentless: true });
    const made = await exampleStack("agentless-openssh", sb.env, "openssh");
    dir = made.dir;
    const up = await made.stack.up();
    const outcomes = up.outputs.instances.value as Outcome[];
    expect(up.outputs.failed.value).toBe(0);
    expect(outcomes.map((o) => [o.instanceId, o.status]).sort()).toEqual(tagged.map((id) => [id, "enrolled"]).sort());
    expect(outcomes.map((o) => o.instanceId)).not.toContain(other[0]);

    // The installer went through the custom document, which the policy scopes SendCommand to.
    const client = ssm();
    const commands = (await client.send(new ListCommandsCommand({}))).Commands ?? [];
    expect(commands.map((c) => c.DocumentName)).toEqual(commands.map(() => "DiscoveryOpenSSHInstaller"));
    expect(commands.flatMap((c) => c.InstanceIds ?? []).sort()).toEqual([...tagged].sort());
    const arn = (up.outputs.documentArns.value as string[])[0];
    expect(arn).toBe("arn:aws:ssm:us-east-1:123456789012:document/DiscoveryOpenSSHInstaller");
    const send = (
      up.outputs.discoveryPolicy.value as { Statement: { Action: string[]; Resource: string[] }[] }
    ).Statement.find((s) => s.Action.includes("ssm:SendCommand"))!;
    expect(send.Resource).toContain("arn:aws:ssm:us-east-1:*:document/DiscoveryOpenSSHInstaller");
    expect(send.Resource).not.toContain("*");

    // They joined with their instance identity documents.
    const nodes = ((await sb.runtime("GET", "/v1/nodes")).body as { nodes: { name: string; join_method: string }[] })
      .nodes;
    expect(nodes.map((n) => [n.name, n.join_method]).sort()).toEqual(outcomes.map((o) => [o.nodeName, "ec2"]).sort());

    // A user certificate logs in, the host proving itself with a host certificate for the node's name; the same
    // key with a certificate from another CA is refused, and so is the host under another name.
    const ports = new Map((await sb.instances()).map((i) => [i.instanceId, i.sshPort]));
    const target = outcomes[0];
    expectCertificateLoginsOnly(await certificateLogins(sb.runtime, ports.get(target.instanceId)!, target.nodeName));

    // `discovery ssh` does the same without hand-written calls: the remote command's output and exit status come
    // back; pointed at the other node's sshd under this node's name, the host check refuses before any login.
    const env = { ...sb.env, USER: "root" };
    const login = await discoveryAsync(
      ["ssh", "--sandbox", sb.dir, `root@${target.nodeName}`, 'echo "$(whoami) on $(hostname)"; exit 7'],
      { env },
    );
    expect([login.status, login.stdout, login.stderr]).toEqual([7, "root on vm\n", ""]);
    const wrongHost = await discoveryAsync(
      [
        "ssh",
        "--address",
        "127.0.0.1",
        "-p",
        String(ports.get(outcomes[1].instanceId)),
        `root@${target.nodeName}`,
        "true",
      ],
      { env },
    );
    expect(wrongHost.status).toBe(255);
    expect(wrongHost.stderr).toContain("Certificate invalid: name is not a listed principal");
    expect(wrongHost.stderr).toContain("Host key verification failed.");
    const unknown = await discoveryAsync(["ssh", "--sandbox", sb.dir, "root@123456789012-i-0000000000000000f"], {
      env,
    });
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(
      /node 123456789012-i-0000000000000000f: not found in https:\/\/127\.0\.0\.1:\d+; 'discovery get nodes' lists the nodes/,
    );
    const printed = await discoveryAsync(["ssh", "--sandbox", sb.dir, "--print", `root@${target.nodeName}`, "id -un"], {
      env,
    });
    expect(printed.status).toBe(0);
    const line = printed.stdout.trim();
    expect(line).toMatch(
      new RegExp(
        `^ssh -i \\S+ .* -o StrictHostKeyChecking=yes -o HostKeyAlias=${target.nodeName} -p ${ports.get(target.instanceId)} root@127\\.0\\.0\\.1 -- 'id -un'$`,
      ),
    );
    const viaLine = spawnSync("sh", ["-c", line], { encoding: "utf8" });
    expect([viaLine.status, viaLine.stdout]).toEqual([0, "root\n"]);
    fs.rmSync(/ -i (\S+)\/id_ed25519 /.exec(line)![1], { recursive: true });

    expect((await made.stack.preview()).changeSummary).toEqual({ same: 5 });
    await made.stack.destroy();
    await expect(client.send(new DescribeDocumentCommand({ Name: "DiscoveryOpenSSHInstaller" }))).rejects.toThrow(
      /does not exist|InvalidDocument/,
    );
    client.destroy();
  });
});
