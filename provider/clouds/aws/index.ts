/** AWS as one CloudPlugin: the ec2 and iam join methods, the EC2 fetcher and the SSM installer. */
import { JoinRefusal } from "../../join/errors";
import type { AwsMatcher } from "../../model";
import type { CloudJoinMethod, CloudPlugin } from "../plugin";
import { attestEc2 } from "./attest-ec2";
import { attestIam, checkIamJoinRequest, OrganizationCache } from "./attest-iam";
import { accountCredentials } from "./credentials";
import { existingInstances } from "./existing";
import { sqsEventQueue } from "./ec2-events";
import { fetchEc2 } from "./fetch";
import { AWS_NODE_IDENTITY } from "./identity";
import { installViaSsm } from "./install-ssm";
import { awsScopeProblem } from "./scope-problem";
import { ec2JoinFields, iamJoinFields } from "./join-request";
import { cachedInstanceApis } from "./instance-lookup";
import { organizationsDescribeAccount } from "./organizations";
import { silenceAwsSdkNodeVersionWarning } from "./sdk-warning";
import { SSM_FAILURE_CLASSES } from "./ssm-failure-classes";
import { describeDocument, missingSsmDocuments } from "./ssm-preflight";
import type { SsmClientOptions } from "./ssm-client";
import { ec2AllowProblem, iamAllowProblem } from "./token-rules";

// Every process that enrolls or attests loads this module: the runtime, the CLI, the Enrollment provider.
silenceAwsSdkNodeVersionWarning();

const orgCache = new OrganizationCache();
// One set of EC2/IAM clients per region and role, shared by iam joins; AWS_ENDPOINT_URL (tests) applies to all.
const iamInstanceApis = cachedInstanceApis({ roleSessionName: "discovery-iam-join" });
// The ec2 join's DescribeInstances clients, kept per region and role (a new client and credential chain per join
// was about 7% of a join's CPU).
const ec2InstanceApis = cachedInstanceApis({ roleSessionName: "discovery-ec2-join" });
let describeAccount: ReturnType<typeof organizationsDescribeAccount> | undefined;

/** The iam method: a signed sts:GetCallerIdentity over a server challenge. */
const iamMethod: CloudJoinMethod = {
  needsChallenge: true,
  nodeFields: iamJoinFields,
  allowProblem: iamAllowProblem,
  validate: (body, settings, now) => checkIamJoinRequest(body, { stsEndpoint: settings.aws.stsEndpoint, now }),
  attest: async (body, ctx) => {
    if (!ctx.challenge) throw new JoinRefusal("challenge_missing", "an iam join needs a challenge", 400);
    const a = await attestIam(body, {
      token: ctx.token,
      challenge: ctx.challenge.challenge,
      stsEndpoint: ctx.settings.aws.stsEndpoint,
      now: ctx.now,
      orgCache,
      describeAccount: (id) => (describeAccount ??= organizationsDescribeAccount())(id),
      instances: iamInstanceApis,
      enrollmentRegion: ctx.settings.aws.enrollmentRegion,
    });
    return { nodeName: a.nodeName, labels: a.labels, principals: a.principals };
  },
};

/** The ec2 method: the instance identity document's PKCS7 signature. */
const ec2Method: CloudJoinMethod = {
  needsChallenge: false,
  nodeFields: ec2JoinFields,
  allowProblem: ec2AllowProblem,
  attest: async (body, ctx) => {
    if (typeof body.iid !== "string" || body.iid.length === 0)
      throw new JoinRefusal("missing_field", 'request field "iid" is required: the IMDS rsa2048 PKCS7, base64', 400);
    const a = await attestEc2(body.iid, {
      token: ctx.token,
      extraCaPems: ctx.settings.aws.extraCaPems,
      now: ctx.now,
      instances: ec2InstanceApis,
    });
    return { nodeName: a.nodeName, labels: a.labels, principals: a.principals };
  },
};

// Per matcher, so a pass's document check and install share one assumed role session per account.
const ssmClientsByMatcher = new WeakMap<AwsMatcher, SsmClientOptions>();

/** How SSM is reached for a matcher: through its assumed role, if it names one, else the default credentials. */
function ssmClientOptions(matcher: AwsMatcher): SsmClientOptions | undefined {
  if (!(matcher.assume_role?.role_arn || matcher.assume_role?.role_name)) return undefined;
  let options = ssmClientsByMatcher.get(matcher);
  if (!options) {
    const roleCredentials = accountCredentials(matcher);
    options = {
      credentials: async (account, region) => {
        const c = await roleCredentials(account, region);
        if (!c) throw new Error(`no role to assume in account ${account}`);
        return c;
      },
    };
    ssmClientsByMatcher.set(matcher, options);
  }
  return options;
}

/** AWS: registered in provider/clouds/index.ts. */
export const AWS_PLUGIN: CloudPlugin<AwsMatcher> = {
  joinMethods: { iam: iamMethod, ec2: ec2Method },
  identity: AWS_NODE_IDENTITY,
  scopeProblem: awsScopeProblem,
  eventQueues: (events) => events.aws.map((q) => sqsEventQueue(q)),
  enrollment: {
    failureClasses: SSM_FAILURE_CLASSES,
    fetch: (matcher, ctx) =>
      fetchEc2(matcher, { onScope: ctx.onScope, retry: { onRetry: ctx.onRetry }, acquireScope: ctx.acquireScope }),
    // An event's instances are looked at whichever replica leases their scope: SQS hands each message to one.
    fetchInstances: (matcher, only, ctx) =>
      fetchEc2(matcher, { only, onScope: ctx.onScope, retry: { onRetry: ctx.onRetry } }),
    existing: (matcher, query) => existingInstances(matcher, query),
    preflight: (candidates, matcher, ctx) =>
      missingSsmDocuments(candidates, {
        matcher,
        exists: describeDocument(ssmClientOptions(matcher), { onRetry: ctx.onRetry }),
        once: ctx.once,
      }),
    install: (candidates, matcher, ctx) =>
      installViaSsm(candidates, {
        matcher,
        endpoint: ctx.runtime,
        client: ssmClientOptions(matcher),
        retry: { onRetry: ctx.onRetry },
      }),
  },
};
