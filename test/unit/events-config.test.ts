/**
 * `discovery_service.events` in the runtime config: queue URLs read for account, name and region, each bad value
 * refused at its line naming the field and the fix; and what a queue failure tells the operator to do.
 */
import { parseEc2StateChange, sqsQueueProblem } from "../../provider/clouds/aws/ec2-events";
import { parseRuntimeConfig } from "../../provider/runtime/config";

const BASE =
  "version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\n" +
  "discovery_service:\n  aws: [{types: [ec2], regions: [us-east-1], tags: {env: prod}}]\n";
const parse = (events: string) => parseRuntimeConfig(BASE + events, "/etc/discovery/runtime.yaml");
const URL_AWS = "https://sqs.eu-west-1.amazonaws.com/123456789012/discovery-ec2-events";

describe("runtime config: discovery_service.events", () => {
  it("is off unless named", () => {
    expect(parse("").discoveryService?.events).toEqual({ aws: [] });
  });

  it("reads the region, account and name from an AWS queue URL, and takes a region for another endpoint", () => {
    const c = parse(
      `  events:\n    aws:\n      - sqs_queue_url: ${URL_AWS}\n` +
        "      - {sqs_queue_url: 'http://127.0.0.1:5000/123456789012/ec2-events', region: us-east-1}\n",
    );
    expect(c.discoveryService?.events.aws).toEqual([
      { sqs_queue_url: URL_AWS, region: "eu-west-1", account: "123456789012", queue_name: "discovery-ec2-events" },
      {
        ...{ sqs_queue_url: "http://127.0.0.1:5000/123456789012/ec2-events", region: "us-east-1" },
        ...{ account: "123456789012", queue_name: "ec2-events" },
      },
    ]);
  });

  it.each([
    [
      "  events: {aws: [{sqs_queue_url: arn:aws:sqs:us-east-1:123456789012:q}]}",
      /:6:34: discovery_service\.events\.aws\[0\]\.sqs_queue_url: must be an SQS queue URL such as https:\/\/sqs\.us-east-1/,
    ],
    [
      "  events: {aws: [{sqs_queue_url: 'https://sqs.us-east-1.amazonaws.com/12345/q'}]}",
      /sqs_queue_url: must be an SQS queue URL/,
    ],
    [
      "  events: {aws: [{sqs_queue_url: 'http://localhost:9324/123456789012/q'}]}",
      /events\.aws\[0\]\.region: is required when sqs_queue_url is not an AWS endpoint/,
    ],
    [
      `  events: {aws: [{sqs_queue_url: '${URL_AWS}', region: us-east-1}]}`,
      /events\.aws\[0\]\.region: is us-east-1 but the queue URL is in eu-west-1/,
    ],
    [
      `  events: {aws: [{sqs_queue_url: '${URL_AWS}'}, {sqs_queue_url: '${URL_AWS}'}]}`,
      /events\.aws\[1\]\.sqs_queue_url: names the same queue as an earlier entry/,
    ],
    [`  events: {aws: [{queue_url: '${URL_AWS}'}]}`, /events\.aws\[0\]\.queue_url: /],
    [`  events: {gcp: []}`, /discovery_service\.events\.gcp: /],
  ])("refuses %s", (line, message) => {
    expect(() => parse(line + "\n")).toThrow(message);
  });
});

describe("EC2 state-change events", () => {
  it("takes the account from the instance ARN when the event has none (as moto delivers it)", () => {
    const body = JSON.stringify({
      source: "aws.ec2",
      "detail-type": "EC2 Instance State-change Notification",
      region: "us-east-1",
      resources: ["arn:aws:ec2:us-east-1:210987654321:instance/i-0123456789abcdef0"],
      detail: { "instance-id": "i-0123456789abcdef0", state: "pending" },
    });
    expect(parseEc2StateChange(body)).toEqual({
      instance: { cloud: "aws", account: "210987654321", region: "us-east-1", instanceId: "i-0123456789abcdef0" },
    });
  });

  it.each([
    [{ account: "210987654321" }, /not instance i-0123456789abcdef0 of the event's account and region/],
    [{ account: "12" }, /account is not a 12-digit AWS account id/],
    [{ resources: "arn" }, /resources is not a list/],
  ])("refuses an event whose account does not hold together: %j", (over, reason) => {
    const body = JSON.stringify({
      source: "aws.ec2",
      "detail-type": "EC2 Instance State-change Notification",
      region: "us-east-1",
      account: "123456789012",
      resources: ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"],
      detail: { "instance-id": "i-0123456789abcdef0", state: "running" },
      ...over,
    });
    expect((parseEc2StateChange(body) as { malformed: string }).malformed).toMatch(reason);
  });

  it("tells the operator how to fix a missing queue and a denied one", () => {
    const queue = { sqs_queue_url: URL_AWS, region: "eu-west-1", account: "123456789012", queue_name: "q" };
    const missing = sqsQueueProblem(
      Object.assign(new Error("The specified queue does not exist."), { name: "QueueDoesNotExist" }),
      queue,
    );
    expect(missing).toMatchObject({ code: "QueueDoesNotExist" });
    expect(missing.message).toContain(`reading the EC2 event queue ${URL_AWS}: The specified queue does not exist.`);
    expect(missing.fix).toMatch(/create the queue .* or correct sqs_queue_url; its region is eu-west-1/);
    const denied = sqsQueueProblem(Object.assign(new Error("not authorized"), { name: "AccessDenied" }), queue);
    expect(denied.fix).toMatch(/allow sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue/);
  });
});
