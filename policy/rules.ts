/**
 * The resource policies of the pulumi-discovery policy pack. Each is a plain object that a test can call
 * directly (`policy.validateResource(args, reportViolation)`); nothing here starts a policy server.
 */
import type { ReportViolation, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { DEFAULT_AWS_IID_TTL, parseDuration } from "../provider/model";
import { allowsAction, coversUnnamed, policyDocumentsOf, statementsOf } from "./iam";
import {
  asArray,
  asObject,
  asString,
  matchersOf,
  Obj,
  RUNTIME_BACKED_TYPES,
  serviceConfigOf,
  show,
  tokenOf,
  TYPES,
} from "./resources";

/** A Go-style duration, as the model parses it. */
const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/** The policy's config with the schema's defaults filled in (the engine does this too; tests may not). */
function configOf<T extends object>(args: { getConfig<C extends object>(): C }, defaults: T): T {
  const given = (args.getConfig<Partial<T>>() ?? {}) as Partial<T>;
  const out = { ...defaults };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) (out as Obj)[k] = v;
  return out;
}

/** Whether a value holds an IAM-style wildcard. */
function hasWildcard(value: string): boolean {
  return value.includes("*") || value.includes("?");
}

/** Defaults of ec2-token-iid-ttl-and-regions' config. */
const IID_DEFAULTS = { maxAwsIidTtl: DEFAULT_AWS_IID_TTL };

/** ec2 tokens: identity documents no older than `maxAwsIidTtl` (5m), and a region list in every allow rule. */
export const ec2TokenIidTtlAndRegions: ResourceValidationPolicy = {
  name: "ec2-token-iid-ttl-and-regions",
  description:
    "An ec2 token accepts instance identity documents at most maxAwsIidTtl (default 5m) old, and every allow rule lists the regions its instances run in.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      maxAwsIidTtl: {
        type: "string",
        pattern: DURATION_PATTERN,
        default: IID_DEFAULTS.maxAwsIidTtl,
        description: "The longest awsIidTtl an ec2 token may have, as a duration such as 5m or 300s.",
      },
    },
  },
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const token = tokenOf(args);
    if (!token || token.joinMethod !== "ec2") return;
    const { maxAwsIidTtl } = configOf(args, IID_DEFAULTS);
    const maxMs = parseDuration(maxAwsIidTtl);
    if (maxMs === undefined)
      throw new Error(`policy config maxAwsIidTtl ${show(maxAwsIidTtl)} is not a duration such as 5m`);
    const ttl = token.awsIidTtl ?? DEFAULT_AWS_IID_TTL;
    const ttlMs = typeof ttl === "string" ? parseDuration(ttl) : undefined;
    if (ttlMs === undefined)
      report(`${token.at}awsIidTtl ${show(ttl)} is not a duration: set it to ${maxAwsIidTtl} or less, such as "5m"`);
    else if (ttlMs > maxMs)
      report(
        `${token.at}awsIidTtl is ${show(ttl)}, longer than the ${maxAwsIidTtl} allowed: a stolen identity document ` +
          `can be replayed for that long. Set awsIidTtl to ${show(maxAwsIidTtl)} or less (or leave it out for 5m).`,
      );
    token.allow.forEach((rule, i) => {
      const regions = asArray(asObject(rule)?.awsRegions);
      const where = `${token.at}allow[${i}].awsRegions`;
      if (regions.length === 0)
        report(
          `${where} is missing: an ec2 allow rule must list the regions its instances run in, ` +
            `e.g. awsRegions: ["us-east-1"], so a document signed in any other region is refused.`,
        );
      else if (regions.some((r) => typeof r !== "string" || hasWildcard(r)))
        report(`${where} ${show(regions)} has a wildcard: list the region names, e.g. ["us-east-1", "eu-west-1"].`);
    });
  },
};

/** Defaults of token-allow-rules' config. */
const ALLOW_DEFAULTS = { allowTokenMethod: false };

/** A 12-digit account in the account field of an ARN glob, or undefined when the account is a wildcard. */
function arnAccount(arn: string): string | undefined {
  const account = arn.split(":")[4] ?? "";
  return /^\d{12}$/.test(account) ? account : undefined;
}

/** Every token names who may join: allow rules that pin an account, project or subscription. */
export const tokenAllowRules: ResourceValidationPolicy = {
  name: "token-allow-rules",
  description:
    "Every token has allow rules that pin who may join (an AWS account or organization, GCP projects, an Azure subscription); shared-secret tokens (joinMethod token) have none and are refused unless allowTokenMethod is true.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowTokenMethod: {
        type: "boolean",
        default: ALLOW_DEFAULTS.allowTokenMethod,
        description: "Accept joinMethod token (a shared secret, no allow rules), e.g. for hand-joined nodes.",
      },
    },
  },
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const token = tokenOf(args);
    if (!token) return;
    const at = token.at;
    switch (token.joinMethod) {
      case "token":
        if (!configOf(args, ALLOW_DEFAULTS).allowTokenMethod)
          report(
            `${at}joinMethod is token: a shared-secret token has no allow rules, so anyone who learns its name can ` +
              `join. Use ec2, iam, gcp or azure with allow rules (or set this policy's allowTokenMethod to true).`,
          );
        return;
      case "ec2":
      case "iam": {
        if (token.allow.length === 0) {
          report(
            `${at}allow is empty: an ${token.joinMethod} token needs at least one rule, e.g. allow: [{ awsAccount: "123456789012" }].`,
          );
          return;
        }
        token.allow.forEach((raw, i) => {
          const rule = asObject(raw) ?? {};
          const account = asString(rule.awsAccount);
          if (token.joinMethod === "ec2") {
            if (!account || !/^\d{12}$/.test(account))
              report(`${at}allow[${i}].awsAccount is missing: name the 12-digit AWS account the instances run in.`);
            return;
          }
          const arn = asString(rule.awsArn);
          if (account || asString(rule.awsOrganizationId) || (arn && arnAccount(arn))) return;
          report(
            arn
              ? `${at}allow[${i}].awsArn ${show(arn)} matches callers in every AWS account: add awsAccount or ` +
                  `awsOrganizationId, or put the 12-digit account in the ARN.`
              : `${at}allow[${i}] names no account: add awsAccount, awsOrganizationId, or an awsArn with its account.`,
          );
        });
        return;
      }
      case "gcp":
        if (token.gcpAllow.length === 0)
          report(
            `${at}gcp.allow is empty: a gcp token needs at least one rule, e.g. [{ projectIds: ["my-project"] }].`,
          );
        token.gcpAllow.forEach((raw, i) => {
          const projects = asArray(asObject(raw)?.projectIds);
          if (projects.length === 0)
            report(`${at}gcp.allow[${i}].projectIds is missing: list the projects whose VMs may join.`);
          else if (projects.some((p) => typeof p !== "string" || hasWildcard(p)))
            report(`${at}gcp.allow[${i}].projectIds ${show(projects)} has a wildcard: list the project ids.`);
        });
        return;
      case "azure":
        if (token.azureAllow.length === 0)
          report(`${at}azure.allow is empty: an azure token needs at least one rule naming a subscription.`);
        token.azureAllow.forEach((raw, i) => {
          if (!asString(asObject(raw)?.subscription))
            report(`${at}azure.allow[${i}].subscription is missing: name the subscription whose VMs may join.`);
        });
        return;
    }
  },
};

/** Join methods a matcher of each cloud may install with: the ones the cloud attests. */
const CLOUD_JOIN_METHODS: Record<string, string[]> = { aws: ["iam", "ec2"], gcp: ["gcp"], azure: ["azure"] };

/** Matchers install with their cloud's join method, never a shared secret. */
export const matcherCloudJoinMethod: ResourceValidationPolicy = {
  name: "matcher-cloud-join-method",
  description:
    "Discovery matchers install with a cloud join method (iam or ec2 for AWS, gcp for GCP, azure for Azure), never joinMethod token.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    for (const m of matchersOf(args)) {
      const allowed = CLOUD_JOIN_METHODS[m.cloud];
      if (allowed.includes(m.method)) continue;
      report(
        `${m.path}.install.joinParams.method is ${show(m.method)}: discovered ${m.cloud} instances must join with ` +
          `a method the cloud attests. Set it to ${allowed.map((a) => show(a)).join(" or ")}` +
          `${m.methodGiven ? " (or remove it for the default)" : ""}.`,
      );
    }
  },
};

/** ssm:SendCommand is granted only on named documents (and the instances it targets). */
export const ssmSendCommandDocumentScoped: ResourceValidationPolicy = {
  name: "ssm-send-command-document-scoped",
  description:
    "An IAM policy that allows ssm:SendCommand names the SSM documents it may run (document ARNs without wildcards in the name), so the role cannot run arbitrary commands.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    for (const doc of policyDocumentsOf(args)) {
      if (doc.error) {
        report(`${doc.path} ${doc.error}: it must be an IAM policy document so ssm:SendCommand can be checked.`);
        continue;
      }
      for (const st of statementsOf(doc)) {
        if (!allowsAction(st, "ssm:SendCommand")) continue;
        if (st.notResources) {
          report(
            `${st.label} allows ssm:SendCommand with NotResource, which covers every document it does not exclude: ` +
              `use Resource with document ARNs such as arn:aws:ssm:*:*:document/AWS-RunShellScript.`,
          );
          continue;
        }
        const broad = st.resources.filter((r) => coversUnnamed(r, "document"));
        if (broad.length > 0)
          report(
            `${st.label} allows ssm:SendCommand on ${broad.map((b) => show(b)).join(", ")}, which covers any SSM ` +
              `document: list the installer's document ARNs (arn:aws:ssm:<region>:<account>:document/<name>) and ` +
              `the instance ARNs instead, as aws.discoveryPolicy() does.`,
          );
      }
    }
  },
};

/** Keys that hold the runtime's public address. */
const PUBLIC_ADDRESS_KEYS = new Set(["publicAddress", "publicAddr", "public_addr", "address"]);
/** Keys that hold the address a node reaches the runtime at (host:port is allowed, as in SPEC §1). */
const PROXY_ADDRESS_KEYS = new Set(["proxyAddr", "proxy_addr"]);

/** Every public or proxy address under `value`, with its path; branches that cannot be read are skipped. */
function addresses(value: unknown, path: string, keys: Set<string>, depth = 0): { path: string; value: unknown }[] {
  const obj = asObject(value);
  if (!obj && !Array.isArray(value)) return [];
  if (depth > 6) return [];
  const out: { path: string; value: unknown }[] = [];
  const entries: [string, string][] = Array.isArray(value)
    ? value.map((_, i) => [String(i), `${path}[${i}]`])
    : Object.keys(obj!).map((k) => [k, path ? `${path}.${k}` : k]);
  for (const [key, at] of entries) {
    if (keys.has(key)) {
      out.push({ path: at, value: (value as Obj)[key] }); // an unknown address surfaces (the engine reports it)
      continue;
    }
    let child: unknown;
    try {
      child = (value as Obj)[key];
    } catch {
      continue; // a value not known yet, and not an address: nothing to check in it
    }
    out.push(...addresses(child, at, keys, depth + 1));
  }
  return out;
}

/** The runtime is reached over https: its public address, the `server` of every runtime-backed resource. */
export const runtimeAddressHttps: ResourceValidationPolicy = {
  name: "runtime-address-https",
  description:
    "The runtime's public address (a DiscoveryService's config publicAddr or public_addr, a matcher's install.proxyAddr) and every runtime-backed resource's server URL use https: nodes send identities and receive certificates there, and programs send the admin token.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const found: { path: string; value: unknown; bareHostAllowed: boolean }[] = [];
    if (args.type === TYPES.discoveryService) {
      const yamlConfig = typeof args.props.config === "string" ? serviceConfigOf(args) : undefined;
      found.push(
        ...[
          ...addresses(args.props, "", PUBLIC_ADDRESS_KEYS),
          ...addresses(yamlConfig, "config", PUBLIC_ADDRESS_KEYS),
        ].map((a) => ({ ...a, bareHostAllowed: false })),
      );
    }
    if (RUNTIME_BACKED_TYPES.includes(args.type) && args.props.server !== undefined)
      found.push({ path: "server", value: args.props.server, bareHostAllowed: false });
    if (args.type === TYPES.resourceDocument)
      found.push(
        ...addresses(args.props.spec, "spec", new Set([...PUBLIC_ADDRESS_KEYS].filter((k) => k !== "address"))).map(
          (a) => ({ ...a, bareHostAllowed: false }),
        ),
      );
    for (const m of matchersOf(args)) {
      const proxy = asObject(m.matcher.install)?.proxyAddr;
      if (proxy !== undefined) found.push({ path: `${m.path}.install.proxyAddr`, value: proxy, bareHostAllowed: true });
    }
    for (const a of found) {
      if (a.value === undefined || a.value === null || a.value === "") continue;
      const text = String(a.value);
      const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
      if (scheme === "https" || (scheme === undefined && a.bareHostAllowed)) continue;
      report(
        `${a.path} is ${show(text)}: the runtime must be reached over https (nodes send identity documents and ` +
          `receive host certificates there; the admin token travels with every call). Use ` +
          `${show(`https://${text.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "")}`)}.`,
      );
    }
  },
};

/** Roles to assume are named: no wildcard in matchers' assumeRole, tokens' awsRole or sts:AssumeRole grants. */
export const noWildcardAssumeRole: ResourceValidationPolicy = {
  name: "no-wildcard-assume-role",
  description:
    "Roles to assume are named exactly: no wildcard in a matcher's assumeRole (roleArn, roleName), a token's awsRole, or the Resource of an IAM statement allowing sts:AssumeRole (an account wildcard with a fixed role name, as organization scanning and iam tokens' organization rules need, is allowed).",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const fix = "name the role exactly, e.g. arn:aws:iam::123456789012:role/discovery";
    for (const m of matchersOf(args)) {
      const assume = asObject(m.matcher.assumeRole) ?? {};
      const candidates: [string, unknown][] = [
        [`${m.path}.assumeRole.roleArn`, assume.roleArn],
        [`${m.path}.assumeRole.roleName`, assume.roleName],
        [`${m.path}.assumeRoleArn`, m.matcher.assumeRoleArn],
      ];
      for (const [path, value] of candidates)
        if (typeof value === "string" && hasWildcard(value)) report(`${path} ${show(value)} has a wildcard: ${fix}.`);
    }
    const token = tokenOf(args);
    token?.allow.forEach((rule, i) => {
      const role = asObject(rule)?.awsRole;
      // An iam rule's `*` account is the caller's (organization rules): a fixed role name is still named exactly.
      const wild = token.joinMethod === "iam" ? (r: string) => coversUnnamed(r, "role") : hasWildcard;
      if (typeof role === "string" && wild(role))
        report(`${token.at}allow[${i}].awsRole ${show(role)} has a wildcard: ${fix}.`);
    });
    for (const doc of policyDocumentsOf(args)) {
      for (const st of statementsOf(doc)) {
        if (!allowsAction(st, "sts:AssumeRole")) continue;
        if (st.notResources) {
          report(`${st.label} allows sts:AssumeRole with NotResource, which covers every other role: ${fix}.`);
          continue;
        }
        const broad = st.resources.filter((r) => coversUnnamed(r, "role"));
        if (broad.length > 0)
          report(
            `${st.label} allows sts:AssumeRole on ${broad.map((b) => show(b)).join(", ")}, which covers any role: ` +
              `list the role ARNs the discovery service assumes (a fixed role name with a * account is allowed).`,
          );
      }
    }
  },
};

/** The resource policies, in the order the pack lists them. */
export const resourcePolicies: ResourceValidationPolicy[] = [
  ec2TokenIidTtlAndRegions,
  tokenAllowRules,
  matcherCloudJoinMethod,
  ssmSendCommandDocumentScoped,
  runtimeAddressHttps,
  noWildcardAssumeRole,
];
