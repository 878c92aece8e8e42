/**
 * The sandbox's EC2 state-change events. moto's EC2 emits no EventBridge events, so the simulated control plane
 * does what AWS does: when the fleet launches an instance it puts "EC2 Instance State-change Notification" events
 * (pending, then running) on the default event bus of the instance's region, and moto's EventBridge routes them by
 * rule to an SQS queue, as a DiscoveryService with `aws.ec2Events` sets up in AWS.
 *
 * moto keeps queues and rules per region and an SQS target must be in the rule's region (as in AWS), so each region
 * gets its own rule and queue `discovery-ec2-events` in moto's default account, made on the first launch there.
 * Events of instances in other accounts go to the default account's bus too, as an organization forwards its
 * members' events to one account; their instance ARN names their own account. moto's events carry no `account`.
 */
import { EventBridgeClient, PutEventsCommand, PutRuleCommand, PutTargetsCommand } from "@aws-sdk/client-eventbridge";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SetQueueAttributesCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { EC2_EVENT_PATTERN, EC2_STATE_CHANGE, eventQueueSendPolicy } from "../clouds/aws/ec2-events";
import { MOTO_CREDENTIALS } from "./moto";

/** The queue and rule the sandbox makes in each region it launches in. */
export const SANDBOX_EVENTS_QUEUE = "discovery-ec2-events";
const RULE = "discovery-ec2-state-change";

/** The sandbox's simulated EC2 event source (see the module comment). */
export class SandboxEventBus {
  private readonly regions = new Map<string, Promise<{ url: string; arn: string }>>();

  constructor(private readonly endpoint: string) {}

  private client<T>(Client: new (c: object) => T, region: string): T {
    return new Client({ region, endpoint: this.endpoint, credentials: MOTO_CREDENTIALS, maxAttempts: 3 });
  }

  /** The queue of `region`, making it, its rule and the rule's target on the first call. */
  queue(region: string): Promise<{ url: string; arn: string }> {
    let made = this.regions.get(region);
    if (!made) {
      made = this.setUp(region);
      made.catch(() => this.regions.delete(region));
      this.regions.set(region, made);
    }
    return made;
  }

  private async setUp(region: string): Promise<{ url: string; arn: string }> {
    const sqs = this.client(SQSClient, region);
    const events = this.client(EventBridgeClient, region);
    try {
      const url = (await sqs.send(new CreateQueueCommand({ QueueName: SANDBOX_EVENTS_QUEUE }))).QueueUrl!;
      const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
      const arn = attrs.Attributes!.QueueArn!;
      const rule = await events.send(
        new PutRuleCommand({ Name: RULE, EventPattern: JSON.stringify(EC2_EVENT_PATTERN), State: "ENABLED" }),
      );
      await sqs.send(
        new SetQueueAttributesCommand({
          QueueUrl: url,
          Attributes: { Policy: eventQueueSendPolicy(arn, rule.RuleArn!) },
        }),
      );
      await events.send(new PutTargetsCommand({ Rule: RULE, Targets: [{ Id: "discovery", Arn: arn }] }));
      return { url, arn };
    } finally {
      sqs.destroy();
      events.destroy();
    }
  }

  /** Puts a state-change event per instance and state on the bus of `region` (after making its queue). */
  async emit(account: string, region: string, instanceIds: string[], states: string[]): Promise<void> {
    await this.queue(region);
    const events = this.client(EventBridgeClient, region);
    try {
      const entries = instanceIds.flatMap((id) =>
        states.map((state) => ({
          Source: "aws.ec2",
          DetailType: EC2_STATE_CHANGE,
          Detail: JSON.stringify({ "instance-id": id, state }),
          Resources: [`arn:aws:ec2:${region}:${account}:instance/${id}`],
        })),
      );
      // PutEvents takes at most 10 entries a call.
      for (let i = 0; i < entries.length; i += 10) {
        const out = await events.send(new PutEventsCommand({ Entries: entries.slice(i, i + 10) }));
        if (out.FailedEntryCount)
          throw new Error(
            `moto refused ${out.FailedEntryCount} event(s): ${out.Entries?.find((e) => e.ErrorCode)?.ErrorMessage}`,
          );
      }
    } finally {
      events.destroy();
    }
  }
}
