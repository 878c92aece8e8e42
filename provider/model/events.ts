/**
 * `discovery_service.events`: the queues a runtime reads cloud state-change events from, so a new instance is
 * enrolled within seconds instead of at the next poll. An event only says "look at this instance now": the pass that
 * follows fetches the instance from the cloud and matches it as any pass does.
 */
import { z } from "zod";
import { awsRegion } from "./regions";

/** An SQS queue's name: 1 to 80 of letters, digits, - and _, with `.fifo` for a FIFO queue. */
const QUEUE_NAME_RE = /^[A-Za-z0-9_-]{1,80}(\.fifo)?$/;
/** The region in an AWS SQS endpoint host: `sqs.<region>.amazonaws.com[.cn]` or the legacy `<region>.queue.…`. */
const SQS_HOST_RE = /^(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?$/;

/** The account, queue name and (for an AWS endpoint) region of an SQS queue URL; undefined when it is none. */
export function parseSqsQueueUrl(url: string): { account: string; name: string; region?: string } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return undefined;
  if (u.search || u.hash || u.username || u.password) return undefined;
  const m = /^\/(\d{12})\/([^/]+)$/.exec(u.pathname);
  if (!m || !QUEUE_NAME_RE.test(m[2])) return undefined;
  const host = SQS_HOST_RE.exec(u.hostname);
  return { account: m[1], name: m[2], ...(host && { region: host[1] ?? host[2] }) };
}

const QUEUE_URL_HINT =
  "must be an SQS queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/discovery-ec2-events " +
  "(the queue's QueueUrl)";

/** One SQS queue that EventBridge fills with EC2 state-change events. */
const awsEventQueue = z
  .object({
    sqs_queue_url: z.string().refine((v) => parseSqsQueueUrl(v) !== undefined, { message: QUEUE_URL_HINT }),
    region: awsRegion.optional(),
  })
  .strict()
  .superRefine((q, ctx) => {
    const parsed = parseSqsQueueUrl(q.sqs_queue_url);
    if (!parsed) return;
    if (parsed.region && q.region && parsed.region !== q.region)
      ctx.addIssue({
        code: "custom",
        path: ["region"],
        message: `is ${q.region} but the queue URL is in ${parsed.region}; leave region out or make them agree`,
      });
    if (parsed.region === undefined && q.region === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["region"],
        message:
          "is required when sqs_queue_url is not an AWS endpoint (https://sqs.<region>.amazonaws.com/...): " +
          "name the queue's region, such as us-east-1",
      });
  })
  .transform((q) => {
    const parsed = parseSqsQueueUrl(q.sqs_queue_url)!;
    return {
      sqs_queue_url: q.sqs_queue_url,
      region: (q.region ?? parsed.region) as string,
      account: parsed.account,
      queue_name: parsed.name,
    };
  });

/** `discovery_service.events`: state-change event queues per cloud (AWS: EventBridge rule → SQS queue). */
export const eventsSection = z
  .object({
    aws: z.array(awsEventQueue).optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    const seen = new Set<string>();
    (e.aws ?? []).forEach((q, i) => {
      // A local endpoint (moto) gives queues of one name the same URL in every region.
      const k = `${q.sqs_queue_url} ${q.region}`;
      if (seen.has(k))
        ctx.addIssue({
          code: "custom",
          path: ["aws", i, "sqs_queue_url"],
          message: "names the same queue as an earlier entry; list each queue once",
        });
      seen.add(k);
    });
  })
  .optional()
  .transform((e) => ({ aws: e?.aws ?? [] }));

/** A validated `discovery_service.events` section (empty lists when absent). */
export type EventsSection = z.output<typeof eventsSection>;
/** One validated AWS event queue. */
export type AwsEventQueue = EventsSection["aws"][number];
