/**
 * Least-privilege IAM policy documents for a discovery config's AWS matchers: what the discovery service's role
 * needs to list and install, and what enrolled instances need so SSM can reach them.
 */
import { type AwsMatcher, DEFAULT_SSM_DOCUMENT, type DiscoveryConfig } from "../../model";

/** One IAM policy statement; Action and Resource are always lists, sorted. */
export interface PolicyStatement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: string[];
}

/** An IAM policy document. */
export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** What the policy builders accept: a discovery_config document, its spec, or AWS matchers. */
export type PolicyInput = DiscoveryConfig | DiscoveryConfig["spec"] | readonly AwsMatcher[];

/** The AWS partition of a region (`*` is taken as the commercial partition). */
export function partitionOf(region: string): string {
  if (region.startsWith("cn-")) return "aws-cn";
  if (region.startsWith("us-gov-")) return "aws-us-gov";
  return "aws";
}

/** True for documents AWS owns (no account in their ARN); custom names may not start with aws or amazon. */
export function isAwsOwnedDocument(name: string): boolean {
  return /^(aws|amazon)/i.test(name);
}

/** ARN of an SSM document in `region` (`*` for all); custom documents live in `account` (`*` when unknown). */
export function documentArn(region: string, document: string, account = "*"): string {
  const owner = isAwsOwnedDocument(document) ? "" : account;
  return `arn:${partitionOf(region)}:ssm:${region}:${owner}:document/${document}`;
}

/** ARN pattern of every EC2 instance in `region` (`*` for all), the other resource ssm:SendCommand names. */
export function instanceArn(region: string): string {
  return `arn:${partitionOf(region)}:ec2:${region}:*:instance/*`;
}

function awsMatchers(input: PolicyInput): readonly AwsMatcher[] {
  if (Array.isArray(input)) return input as readonly AwsMatcher[];
  if ("spec" in input) return input.spec.aws;
  return (input as DiscoveryConfig["spec"]).aws;
}

// `*` in an IAM resource matches any run of characters, so a pattern can cover another pattern literally.
function covers(pattern: string, arn: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(arn);
}

/** Sorted, without duplicates or ARNs another one in the list already covers. */
function resources(arns: Iterable<string>): string[] {
  const unique = [...new Set(arns)].sort();
  return unique.filter((arn) => !unique.some((other) => other !== arn && covers(other, arn)));
}

function statement(Sid: string, actions: string[], arns: Iterable<string>): PolicyStatement {
  return { Sid, Effect: "Allow", Action: [...new Set(actions)].sort(), Resource: resources(arns) };
}

const ORGANIZATIONS_READ = [
  "organizations:DescribeOrganization",
  "organizations:ListAccountsForParent",
  "organizations:ListChildren",
  "organizations:ListOrganizationalUnitsForParent",
  "organizations:ListRoots",
];

/** The account a matcher's SSM calls run in, when the config names it (the assumed role's account). */
function matcherAccount(m: AwsMatcher): string {
  const roleArn = m.assume_role?.role_arn;
  return roleArn ? (roleArn.split(":")[4] ?? "*") : "*";
}

/**
 * The discovery role's policy: list instances, resolve `*` regions, check SSM registration and custom documents,
 * send the installer (only the documents and regions the matchers use), read results, assume the configured roles
 * and walk the named organizations; for matchers that install with iam joins, read instance profiles, which the
 * runtime checks before naming a node after an instance. Where roles are assumed, the assumed roles need the
 * same EC2, IAM and SSM actions.
 */
export function discoveryPolicy(input: PolicyInput): PolicyDocument {
  const matchers = awsMatchers(input);
  const Statement: PolicyStatement[] = [];
  if (matchers.length === 0) return { Version: "2012-10-17", Statement };
  const allRegions = matchers.some((m) => m.regions.includes("*"));
  const send: string[] = [];
  const check: string[] = [];
  const roles: string[] = [];
  const profiles: string[] = [];
  for (const m of matchers) {
    const regions = m.regions.includes("*") ? ["*"] : m.regions;
    if (m.install.join_params.method === "iam")
      profiles.push(`arn:${partitionOf(regions[0])}:iam::*:instance-profile/*`);
    for (const region of regions) {
      send.push(documentArn(region, m.ssm.document_name, matcherAccount(m)), instanceArn(region));
      if (m.ssm.document_name !== DEFAULT_SSM_DOCUMENT)
        check.push(documentArn(region, m.ssm.document_name, matcherAccount(m)));
    }
    if (m.assume_role?.role_arn) roles.push(m.assume_role.role_arn);
    if (m.organization && m.assume_role?.role_name)
      roles.push(`arn:${partitionOf(regions[0])}:iam::*:role/${m.assume_role.role_name}`);
  }
  Statement.push(statement("DescribeInstances", ["ec2:DescribeInstances"], ["*"]));
  // iam joins: an instance-profile session is named after its instance only once the profile's role is the caller's.
  if (profiles.length > 0) Statement.push(statement("VerifyIamJoins", ["iam:GetInstanceProfile"], profiles));
  if (allRegions) Statement.push(statement("ListRegions", ["account:ListRegions", "ec2:DescribeRegions"], ["*"]));
  Statement.push(
    statement(
      "ReadSsmInstallResults",
      ["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:ListCommandInvocations"],
      ["*"],
    ),
  );
  Statement.push(statement("SendSsmInstaller", ["ssm:SendCommand"], send));
  // A pass checks a custom document exists in each account and region before sending (AWS owns its own).
  if (check.length > 0) Statement.push(statement("CheckSsmDocuments", ["ssm:DescribeDocument"], check));
  if (roles.length > 0) Statement.push(statement("AssumeDiscoveryRoles", ["sts:AssumeRole"], roles));
  if (matchers.some((m) => m.organization)) Statement.push(statement("ReadOrganization", ORGANIZATIONS_READ, ["*"]));
  return { Version: "2012-10-17", Statement };
}

// AmazonSSMManagedInstanceCore's agent actions that Run Command relies on: registration and heartbeat
// (UpdateInstanceInformation), command delivery (ec2messages), and the agent's control channel (ssmmessages).
const SSM_AGENT_CORE = [
  "ec2messages:AcknowledgeMessage",
  "ec2messages:DeleteMessage",
  "ec2messages:FailMessage",
  "ec2messages:GetEndpoint",
  "ec2messages:GetMessages",
  "ec2messages:SendReply",
  "ssm:UpdateInstanceInformation",
  "ssmmessages:CreateControlChannel",
  "ssmmessages:CreateDataChannel",
  "ssmmessages:OpenControlChannel",
  "ssmmessages:OpenDataChannel",
];

/** The policy for enrolled instances' instance profile: what the SSM agent needs to receive the installer. */
export function instancePolicy(input: PolicyInput): PolicyDocument {
  const Statement = awsMatchers(input).length > 0 ? [statement("SsmAgentCore", SSM_AGENT_CORE, ["*"])] : [];
  return { Version: "2012-10-17", Statement };
}

/** The SQS actions the runtime uses on an EC2 state-change event queue (`discovery_service.events.aws`). */
export const EVENT_QUEUE_ACTIONS = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"];

/** ARN of the SQS queue a `discovery_service.events.aws` entry names. */
export function eventQueueArn(q: { region: string; account: string; queue_name: string }): string {
  return `arn:${partitionOf(q.region)}:sqs:${q.region}:${q.account}:${q.queue_name}`;
}

/** The runtime role's policy for reading EC2 state-change events: receive and delete on these queues only. */
export function eventQueuePolicy(queueArns: readonly string[]): PolicyDocument {
  if (queueArns.length === 0) return { Version: "2012-10-17", Statement: [] };
  return { Version: "2012-10-17", Statement: [statement("ReadEc2StateChangeEvents", EVENT_QUEUE_ACTIONS, queueArns)] };
}
