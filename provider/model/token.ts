import { z } from "zod";
import {
  awsAccountId,
  awsArnGlob,
  awsOrganizationId,
  awsRegion,
  awsRoleArn,
  duration,
  metadata,
  nonEmptyList,
} from "./common";

/** Join methods a token can allow. */
export const JOIN_METHODS = ["token", "ec2", "iam", "gcp", "azure"] as const;
/** A join method. */
export type JoinMethod = (typeof JOIN_METHODS)[number];

/** Roles a joining node may receive. */
export const TOKEN_ROLES = ["Node", "Discovery"] as const;

/** Default lifetime of an EC2 instance identity document accepted by an ec2 token. */
export const DEFAULT_AWS_IID_TTL = "5m";

const awsRule = z
  .object({
    aws_account: awsAccountId.optional(),
    aws_regions: nonEmptyList(awsRegion, "region").optional(),
    aws_role: awsRoleArn.optional(),
    aws_arn: awsArnGlob.optional(),
    aws_organization_id: awsOrganizationId.optional(),
  })
  .strict();

const gcpRule = z
  .object({
    project_ids: nonEmptyList(z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, { message: "is not a GCP project id" }), "project id"),
    locations: nonEmptyList(z.string().regex(/^[a-z]+-[a-z]+\d+(-[a-z])?$/, { message: "is not a GCP region or zone such as us-central1 or us-central1-a" }), "location").optional(),
    service_accounts: nonEmptyList(z.string().email({ message: "must be a service account email" }), "service account").optional(),
  })
  .strict();

const azureRule = z
  .object({
    subscription: z.string().uuid({ message: "must be an Azure subscription id (a UUID)" }),
    resource_groups: nonEmptyList(z.string().min(1), "resource group").optional(),
  })
  .strict();

const ONLY_FOR: Record<string, JoinMethod> = {
  aws_regions: "ec2",
  aws_role: "ec2",
  aws_arn: "iam",
  aws_organization_id: "iam",
};

const tokenSpec = z
  .object({
    roles: nonEmptyList(z.enum(TOKEN_ROLES, { errorMap: () => ({ message: `must be one of ${TOKEN_ROLES.join(", ")}` }) }), "role"),
    join_method: z.enum(JOIN_METHODS, { errorMap: () => ({ message: `must be one of ${JOIN_METHODS.join(", ")}` }) }),
    aws_iid_ttl: duration.optional(),
    allow: z.array(awsRule).optional(),
    gcp: z.object({ allow: z.array(gcpRule) }).strict().optional(),
    azure: z.object({ allow: z.array(azureRule) }).strict().optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const method = spec.join_method;
    const seen = new Set<string>();
    spec.roles.forEach((role, i) => {
      if (seen.has(role)) ctx.addIssue({ code: "custom", path: ["roles", i], message: `role ${role} is listed twice` });
      seen.add(role);
    });
    if (spec.aws_iid_ttl !== undefined && method !== "ec2")
      ctx.addIssue({ code: "custom", path: ["aws_iid_ttl"], message: `applies only to join_method ec2, not ${method}; remove it` });
    const isAws = method === "ec2" || method === "iam";
    if (isAws) {
      if (!spec.allow || spec.allow.length === 0)
        ctx.addIssue({ code: "custom", path: ["allow"], message: `a ${method} token needs at least one allow rule naming an aws_account` });
    } else if (spec.allow !== undefined) {
      ctx.addIssue({ code: "custom", path: ["allow"], message: `allow rules apply to ec2 and iam tokens; for ${method} remove allow${method === "gcp" || method === "azure" ? ` and use ${method}.allow` : ""}` });
    }
    (spec.allow ?? []).forEach((rule, i) => {
      for (const [field, only] of Object.entries(ONLY_FOR)) {
        if ((rule as Record<string, unknown>)[field] !== undefined && isAws && only !== method)
          ctx.addIssue({ code: "custom", path: ["allow", i, field], message: `applies only to join_method ${only}, not ${method}` });
      }
      if (method === "ec2" && rule.aws_account === undefined)
        ctx.addIssue({ code: "custom", path: ["allow", i, "aws_account"], message: "is required for an ec2 allow rule" });
      if (method === "iam" && !rule.aws_account && !rule.aws_arn && !rule.aws_organization_id)
        ctx.addIssue({ code: "custom", path: ["allow", i], message: "an iam allow rule needs aws_account, aws_arn or aws_organization_id" });
    });
    for (const cloud of ["gcp", "azure"] as const) {
      const block = spec[cloud];
      if (method === cloud) {
        if (!block || block.allow.length === 0)
          ctx.addIssue({ code: "custom", path: block ? [cloud, "allow"] : [], message: `a ${cloud} token needs ${cloud}.allow with at least one rule` });
      } else if (block !== undefined) {
        ctx.addIssue({ code: "custom", path: [cloud], message: `applies only to join_method ${cloud}, not ${method}; remove it` });
      }
    }
  })
  .transform((spec) => (spec.join_method === "ec2" && spec.aws_iid_ttl === undefined ? { ...spec, aws_iid_ttl: DEFAULT_AWS_IID_TTL } : spec));

/** kind: token, version v2: the join rules for one join method. */
export const tokenDocument = z
  .object({
    kind: z.literal("token"),
    version: z.literal("v2", { errorMap: () => ({ message: 'token documents are version "v2"' }) }),
    metadata,
    spec: tokenSpec,
  })
  .strict();

/** A token document as written by a user (before defaults). */
export type TokenInput = z.input<typeof tokenDocument>;
/** A validated token document with defaults applied. */
export type Token = z.output<typeof tokenDocument>;
