/**
 * DiscoveryService's aws target with `aws.ec2Events`, under Pulumi mocks: the queue, the EventBridge rule and its
 * target, a queue policy that lets only that rule send, the runtime role's read access to that queue only, and the
 * queue's URL in the config the VM boots with (checked by the runtime's own loader).
 */
import * as pulumi from "@pulumi/pulumi";
import { runtimeKeysProvider } from "../../provider/pulumi/runtime-keys";
import { parseRuntimeConfig } from "../../provider/runtime/config";
import * as aws from "../../sdk/aws";
import { DiscoveryService } from "../../sdk/discovery-service";

const QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/disc-ec2-events-1a2b";
const QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:disc-ec2-events-1a2b";
const RULE_ARN = "arn:aws:events:eu-west-1:123456789012:rule/disc-ec2-state-change-3c4d";
const made: { type: string; name: string; inputs: Record<string, any> }[] = [];

beforeAll(async () => {
  const outputsOf: Record<string, Record<string, unknown>> = {
    "aws:sqs/queue:Queue": { url: QUEUE_URL, arn: QUEUE_ARN },
    "aws:cloudwatch/eventRule:EventRule": { arn: RULE_ARN, name: "disc-ec2-state-change-3c4d" },
    "aws:ssm/parameter:Parameter": { name: "disc-secrets-5d6e", arn: "arn:aws:ssm:eu-west-1:123456789012:parameter/s" },
    "aws:ec2/eip:Eip": { publicIp: "203.0.113.10", publicDns: "ec2-203-0-113-10.compute-1.amazonaws.com" },
  };
  await pulumi.runtime.setMocks(
    {
      async newResource({ type, name, inputs }) {
        made.push({ type, name, inputs });
        const state =
          type === "pulumi-nodejs:dynamic/discovery:RuntimeKeys"
            ? (await runtimeKeysProvider.create!(inputs)).outs
            : { ...inputs, ...outputsOf[type] };
        return { id: `${name}-id`, state };
      },
      call: ({ inputs }) => ({ ...inputs, value: "ami-0a1b2c3d4e5f67890" }),
    },
    "discovery-test",
    "dev",
    false,
  );
});

const settled = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));
async function deploy(name: string, ec2Events: boolean) {
  const svc = new DiscoveryService(name, {
    target: "aws",
    config: { discoveryService: { pollInterval: "5m", aws: [{ types: ["ec2"], regions: ["eu-west-1"], tags: { env: "prod" } }] } }, // prettier-ignore
    aws: { region: "eu-west-1", ec2Events },
    package: "pulumi-discovery@0.1.0",
  });
  await settled(pulumi.all([svc.address, svc.instanceId, svc.adminToken]));
  for (let n = -1; n !== made.length;) {
    n = made.length;
    await new Promise((r) => setTimeout(r, 50));
  }
  return made.filter((r) => r.name.startsWith(`${name}-`));
}
const one = (rs: typeof made, type: string) => {
  const found = rs.filter((r) => r.type === type);
  expect(found).toHaveLength(1);
  return found[0];
};

describe("DiscoveryService aws target with ec2Events", () => {
  it("creates the queue, the rule, its target, the queue policy and the role's read access to that queue only", async () => {
    const rs = await deploy("disc", true);
    const rule = one(rs, "aws:cloudwatch/eventRule:EventRule");
    expect(rule.name).toBe("disc-ec2-state-change");
    expect(JSON.parse(rule.inputs.eventPattern)).toEqual({
      source: ["aws.ec2"],
      "detail-type": ["EC2 Instance State-change Notification"],
      detail: { state: ["pending", "running"] },
    });
    expect(one(rs, "aws:cloudwatch/eventTarget:EventTarget").inputs).toMatchObject({ arn: QUEUE_ARN, region: "eu-west-1" }); // prettier-ignore
    const queuePolicy = one(rs, "aws:sqs/queuePolicy:QueuePolicy").inputs;
    expect(queuePolicy.queueUrl).toBe(QUEUE_URL);
    expect(JSON.parse(queuePolicy.policy).Statement).toEqual([
      {
        Sid: "EventBridgeDelivers",
        Effect: "Allow",
        Principal: { Service: "events.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: QUEUE_ARN,
        Condition: { ArnEquals: { "aws:SourceArn": RULE_ARN } },
      },
    ]);
    const read = rs.find((r) => r.name === "disc-ec2-events-read")!;
    expect(JSON.parse(read.inputs.policy)).toEqual(aws.eventQueuePolicy([QUEUE_ARN]));
    expect(JSON.parse(read.inputs.policy).Statement).toEqual([
      {
        Sid: "ReadEc2StateChangeEvents",
        Effect: "Allow",
        Action: ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
        Resource: [QUEUE_ARN],
      },
    ]);
  });

  it("boots the runtime with the queue in discovery_service.events, and without it when ec2Events is off", async () => {
    const configOf = (rs: typeof made) => {
      const userData: string = one(rs, "aws:ec2/instance:Instance").inputs.userData;
      const m = /cat > \/etc\/discovery\/config\.yaml <<'(\w+)'\n([\s\S]*?)\n\1\n/.exec(userData)!;
      return parseRuntimeConfig(m[2] + "\n", "/etc/discovery/config.yaml");
    };
    expect(configOf(await deploy("on", true)).discoveryService?.events.aws).toEqual([
      { sqs_queue_url: QUEUE_URL, region: "eu-west-1", account: "123456789012", queue_name: "disc-ec2-events-1a2b" },
    ]);
    const off = await deploy("off", false);
    expect(configOf(off).discoveryService?.events.aws).toEqual([]);
    expect(off.filter((r) => r.type.startsWith("aws:sqs") || r.type.startsWith("aws:cloudwatch"))).toEqual([]);
  });

  it("refuses ec2Events for a runtime without a discovery loop, naming the field", () => {
    expect(
      () =>
        new DiscoveryService("none", {
          target: "aws",
          config: { clusterName: "c.example" },
          aws: { region: "eu-west-1", ec2Events: true },
        }),
    ).toThrow(/aws\.ec2Events: the runtime has no discovery loop to enroll with; set config\.discoveryService/);
  });

  it("refuses a policy for something that is not a queue ARN", () => {
    expect(() => aws.eventQueuePolicy(["arn:aws:sns:eu-west-1:123456789012:t"])).toThrow(
      /queueArns\[0\]: must be an SQS queue ARN/,
    );
  });
});
