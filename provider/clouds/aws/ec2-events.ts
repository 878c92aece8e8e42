/**
 * EC2 state-change events, as an EventBridge rule delivers them to an SQS queue: "EC2 Instance State-change
 * Notification" from `aws.ec2`. Each message is checked for shape (account, region, instance id) and read only as
 * "look at this instance now"; the instance's tags, state and account are then what DescribeInstances says.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { EventQueue, EventVerdict, QueueProblem } from "../../enroll/events";
import { AWS_REGION_RE, type AwsEventQueue } from "../../model";
import { scopeError } from "./fetch-support";

/** EventBridge's detail-type of EC2 instance state changes. */
export const EC2_STATE_CHANGE = "EC2 Instance State-change Notification";
/** The states worth a look: `pending` comes first, `running` when the instance can take a command. */
export const EC2_EVENT_STATES = ["pending", "running"] as const;
/** How long ReceiveMessage waits for a message (SQS's most). */
export const SQS_WAIT_SECONDS = 20;
/**
 * How long a received message stays hidden from other readers: longer than a targeted pass (which waits up to the
 * join timeout), so it is not handled twice; a runtime that dies mid-pass leaves it to come back.
 */
export const SQS_VISIBILITY_SECONDS = 300;

/** The rule's event pattern: EC2 state changes to pending or running. */
export const EC2_EVENT_PATTERN = {
  source: ["aws.ec2"],
  "detail-type": [EC2_STATE_CHANGE],
  detail: { state: [...EC2_EVENT_STATES] },
};

/** The queue policy: EventBridge may send to the queue, for this rule only. */
export function eventQueueSendPolicy(queueArn: string, ruleArn: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "EventBridgeDelivers",
        Effect: "Allow",
        Principal: { Service: "events.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: queueArn,
        Condition: { ArnEquals: { "aws:SourceArn": ruleArn } },
      },
    ],
  });
}

const INSTANCE_ID_RE = /^i-([0-9a-f]{8}|[0-9a-f]{17})$/;
const ACCOUNT_RE = /^\d{12}$/;
const INSTANCE_ARN_RE = /^arn:aws(?:-[a-z]+)*:ec2:([a-z0-9-]+):(\d{12}):instance\/(i-[0-9a-f]+)$/;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * What an SQS message body says: an instance to look at, an EC2 event of another kind or state (ignored), or
 * something that is not a well-formed EC2 state-change event (malformed, with why). The account comes from the
 * event's `account`, else from the instance ARN in `resources` (moto omits `account`); when both are there they must
 * agree, as must the ARN's region and instance id.
 */
export function parseEc2StateChange(body: string): EventVerdict {
  let e: unknown;
  try {
    e = JSON.parse(body);
  } catch {
    return { malformed: "the message is not JSON" };
  }
  if (!isObject(e)) return { malformed: "the message is not a JSON object" };
  if (e.source !== "aws.ec2" || e["detail-type"] !== EC2_STATE_CHANGE)
    return { ignored: `not an ${EC2_STATE_CHANGE} from aws.ec2 (source ${String(e.source)})` };
  const detail = e.detail;
  if (!isObject(detail)) return { malformed: "detail is missing" };
  const instanceId = detail["instance-id"];
  if (typeof instanceId !== "string" || !INSTANCE_ID_RE.test(instanceId))
    return { malformed: 'detail["instance-id"] is not an EC2 instance id such as i-0123456789abcdef0' };
  if (typeof detail.state !== "string") return { malformed: "detail.state is missing" };
  if (!(EC2_EVENT_STATES as readonly string[]).includes(detail.state))
    return { ignored: `instance ${instanceId} is ${detail.state}` };
  const region = e.region;
  if (typeof region !== "string" || !AWS_REGION_RE.test(region))
    return { malformed: "region is not an AWS region name" };
  let account = e.account === undefined ? undefined : e.account;
  if (account !== undefined && (typeof account !== "string" || !ACCOUNT_RE.test(account)))
    return { malformed: "account is not a 12-digit AWS account id" };
  const resources = e.resources === undefined ? [] : e.resources;
  if (!Array.isArray(resources)) return { malformed: "resources is not a list" };
  for (const r of resources) {
    const m = typeof r === "string" ? INSTANCE_ARN_RE.exec(r) : null;
    if (!m) continue;
    if (m[3] !== instanceId || m[1] !== region || (account !== undefined && m[2] !== account))
      return {
        malformed: `resources names ${r}, which is not instance ${instanceId} of the event's account and region`,
      };
    account ??= m[2];
  }
  if (account === undefined) return { malformed: "names no account (neither account nor an instance ARN)" };
  return { instance: { cloud: "aws", account: account as string, region, instanceId } };
}

const DENIED = /AccessDenied|UnauthorizedOperation|InvalidClientTokenId|Forbidden|KMS\.AccessDenied/i;
const MISSING = /NonExistentQueue|QueueDoesNotExist/i;

/** The cause and the fix of a failed ReceiveMessage or DeleteMessageBatch on `queue`. */
export function sqsQueueProblem(err: unknown, queue: AwsEventQueue): QueueProblem {
  const { code, message } = scopeError(err, `reading the EC2 event queue ${queue.sqs_queue_url}`);
  let fix =
    "check the queue URL and region in discovery_service.events.aws, and that the runtime reaches SQS; " +
    "the poll keeps enrolling meanwhile";
  if (MISSING.test(code))
    fix =
      `create the queue (DiscoveryService with aws.ec2Events creates it) or correct sqs_queue_url; ` +
      `its region is ${queue.region}`;
  else if (DENIED.test(code))
    fix =
      "allow sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue to the runtime's role " +
      "(the SDK's aws.eventQueuePolicy builds the statement), and kms:Decrypt if the queue uses a customer KMS key";
  return { code, message, fix };
}

/** An SQS queue of EC2 state-change events; the SQS endpoint is the SDK's (it honours AWS_ENDPOINT_URL). */
export function sqsEventQueue(queue: AwsEventQueue, client?: Pick<SQSClient, "send">): EventQueue {
  const sqs = client ?? new SQSClient({ region: queue.region });
  return {
    name: queue.sqs_queue_url,
    async receive(signal) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queue.sqs_queue_url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: SQS_WAIT_SECONDS,
          VisibilityTimeout: SQS_VISIBILITY_SECONDS,
        }),
        { abortSignal: signal },
      );
      return (out.Messages ?? []).flatMap((m) =>
        m.ReceiptHandle ? [{ receipt: m.ReceiptHandle, body: m.Body ?? "" }] : [],
      );
    },
    async remove(receipts) {
      for (let i = 0; i < receipts.length; i += 10) {
        const batch = receipts.slice(i, i + 10);
        const out = await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queue.sqs_queue_url,
            Entries: batch.map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle })),
          }),
        );
        const failed = out.Failed ?? [];
        if (failed.length > 0)
          throw Object.assign(new Error(`${failed.length} message(s) not deleted: ${failed[0].Message ?? ""}`), {
            name: failed[0].Code ?? "DeleteMessageBatchFailed",
          });
      }
    },
    parse: parseEc2StateChange,
    problem: (err) => sqsQueueProblem(err, queue),
  };
}
