/**
 * DiscoveryService's aws target with `ec2Events`: an SQS queue, an EventBridge rule for EC2 instance state changes
 * (pending, running) in the runtime's region with the queue as its target, the queue policy that lets only that rule
 * send, the runtime role's permission to read and delete on that queue only, and the queue in the runtime's config.
 */
import * as pulumi from "@pulumi/pulumi";
import type * as awsTypes from "@pulumi/aws";
import { eventQueuePolicy } from "../clouds/aws/policy";
import { EC2_EVENT_PATTERN, eventQueueSendPolicy } from "../clouds/aws/ec2-events";
import type { WireRuntimeConfig } from "../deploy/runtime-config";

/** `wire` with the queue added to discovery_service.events.aws; throws naming the field when it has no loop. */
export function withEventQueue(wire: WireRuntimeConfig, url: string, region: string): WireRuntimeConfig {
  const ds = wire.discovery_service as Record<string, unknown> | undefined;
  if (!ds || ds.enabled === false)
    throw new Error(
      "aws.ec2Events: the runtime has no discovery loop to enroll with; set config.discoveryService " +
        "(AWS matchers or a discoveryGroup), or leave ec2Events out",
    );
  const events = (ds.events ?? {}) as { aws?: unknown[] };
  const aws = [...(events.aws ?? []), { sqs_queue_url: url, region }];
  return { ...wire, discovery_service: { ...ds, events: { ...events, aws } } };
}

/** Declares the queue, rule, target, queue policy and role policy; the runtime config with the queue in it. */
export function deployEc2Events(
  aws: typeof awsTypes,
  o: {
    name: string;
    parent: pulumi.Resource;
    region: string;
    role: awsTypes.iam.Role;
    wire: WireRuntimeConfig;
    tags: Record<string, string>;
  },
): pulumi.Output<WireRuntimeConfig> {
  withEventQueue(o.wire, "https://sqs.invalid/000000000000/check", o.region); // fails early, before any resource
  const opts = { parent: o.parent };
  const queue = new aws.sqs.Queue(
    `${o.name}-ec2-events`,
    // Longer than a targeted pass (which waits for the join), so a message is not handled twice.
    { region: o.region, visibilityTimeoutSeconds: 300, messageRetentionSeconds: 3600, sqsManagedSseEnabled: true, tags: o.tags }, // prettier-ignore
    opts,
  );
  const rule = new aws.cloudwatch.EventRule(
    `${o.name}-ec2-state-change`,
    {
      region: o.region,
      description: `pulumi-discovery ${o.name}: EC2 instances starting, for enrollment at once`,
      eventPattern: JSON.stringify(EC2_EVENT_PATTERN),
      tags: o.tags,
    },
    opts,
  );
  new aws.sqs.QueuePolicy(
    `${o.name}-ec2-events-policy`,
    {
      region: o.region,
      queueUrl: queue.url,
      policy: pulumi.all([queue.arn, rule.arn]).apply(([q, r]) => eventQueueSendPolicy(q, r)),
    },
    opts,
  );
  new aws.cloudwatch.EventTarget(
    `${o.name}-ec2-events-target`,
    { region: o.region, rule: rule.name, arn: queue.arn },
    opts,
  );
  new aws.iam.RolePolicy(
    `${o.name}-ec2-events-read`,
    { role: o.role.id, policy: queue.arn.apply((arn) => JSON.stringify(eventQueuePolicy([arn]))) },
    opts,
  );
  return queue.url.apply((url) => withEventQueue(o.wire, url, o.region));
}
