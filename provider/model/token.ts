import { z } from "zod";
import {
  awsAccountId,
  awsArnGlob,
  awsOrganizationId,
  duration,
  gcpProjectId,
  metadata,
  nonEmptyList,
  fieldError,
} from "./common";
import { awsRegion, gcpLocation } from "./regions";

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
    aws_role: z
      .string()
      .regex(/^arn:aws(-[a-z]+)*:iam::(\d{12}|\*):role\/[\w+=,.@/-]{1,512}$/, {
        message: "must be an IAM role ARN such as arn:aws:iam::123456789012:role/discovery",
      })
      .optional(),
    aws_arn: awsArnGlob.optional(),
    aws_organization_id: awsOrganizationId.optional(),
  })
  .strict();

const gcpRule = z
  .object({
    project_ids: nonEmptyList(gcpProjectId, "project id"),
    locations: nonEmptyList(gcpLocation, "location").optional(),
    service_accounts: nonEmptyList(
      z.string().email({ message: "must be a service account email" }),
      "service account",
    ).optional(),
  })
  .strict();

const azureRule = z
  .object({
    subscription: z.string().uuid({ message: "must be an Azure subscription id (a UUID)" }),
    resource_groups: nonEmptyList(z.string().min(1), "resource group").optional(),
  })
  .strict();

// aws_role serves both: ec2 checks the instance runs, iam checks a caller named after an instance is it.
const ONLY_FOR: Record<string, JoinMethod[]> = {
  aws_regions: ["ec2"],
  aws_role: ["ec2", "iam"],
  aws_arn: ["iam"],
  aws_organization_id: ["iam"],
};

/**
 * The join method of a token that names none, as Teleport infers it: allow rules mean ec2 (the method
 * they were introduced for), a gcp or azure block means that cloud, and otherwise a shared-secret token.
 */
export function joinMethodOf(spec: {
  join_method?: JoinMethod;
  allow?: unknown[];
  gcp?: unknown;
  azure?: unknown;
}): JoinMethod {
  if (spec.join_method) return spec.join_method;
  if (spec.allow?.length) return "ec2";
  if (spec.gcp) return "gcp";
  if (spec.azure) return "azure";
  return "token";
}

const tokenSpec = z
  .object({
    roles: nonEmptyList(z.enum(TOKEN_ROLES, fieldError(`must be one of ${TOKEN_ROLES.join(", ")}`)), "role"),
    join_method: z.enum(JOIN_METHODS, fieldError(`must be one of ${JOIN_METHODS.join(", ")}`)).optional(),
    aws_iid_ttl: duration.optional(),
    allow: z.array(awsRule).optional(),
    gcp: z
      .object({ allow: z.array(gcpRule) })
      .strict()
      .optional(),
    azure: z
      .object({ allow: z.array(azureRule) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const method = joinMethodOf(spec);
    const seen = new Set<string>();
    spec.roles.forEach((role, i) => {
      if (seen.has(role)) ctx.addIssue({ code: "custom", path: ["roles", i], message: `role ${role} is listed twice` });
      seen.add(role);
    });
    if (spec.aws_iid_ttl !== undefined && method !== "ec2")
      ctx.addIssue({
        code: "custom",
        path: ["aws_iid_ttl"],
        message: `applies only to join_method ec2, not ${method}; remove it`,
      });
    const isAws = method === "ec2" || method === "iam";
    if (isAws) {
      if (!spec.allow || spec.allow.length === 0)
        ctx.addIssue({
          code: "custom",
          path: ["allow"],
          message: `an ${method} token needs at least one allow rule naming an aws_account`,
        });
    } else if (spec.allow !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["allow"],
        message: `allow rules apply to ec2 and iam tokens; for ${method} remove allow${method === "gcp" || method === "azure" ? ` and use ${method}.allow` : ""}`,
      });
    }
    (spec.allow ?? []).forEach((rule, i) => {
      for (const [field, only] of Object.entries(ONLY_FOR)) {
        if ((rule as Record<string, unknown>)[field] !== undefined && isAws && !only.includes(method))
          ctx.addIssue({
            code: "custom",
            path: ["allow", i, field],
            message: `applies only to join_method ${only.join(" and ")}, not ${method}`,
          });
      }
      // For iam, `*` is the caller's account (organization rules); an ec2 rule names its one account.
      if (method !== "iam" && rule.aws_role?.includes(":iam::*:"))
        ctx.addIssue({
          code: "custom",
          path: ["allow", i, "aws_role"],
          message: `a * account applies only to iam rules (the caller's account); name the account for ${method}`,
        });
      if (method === "ec2" && rule.aws_account === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["allow", i, "aws_account"],
          message: "is required for an ec2 allow rule",
        });
      if (method === "iam" && !rule.aws_account && !rule.aws_arn && !rule.aws_organization_id)
        ctx.addIssue({
          code: "custom",
          path: ["allow", i],
          message: "an iam allow rule needs aws_account, aws_arn or aws_organization_id",
        });
    });
    for (const cloud of ["gcp", "azure"] as const) {
      const block = spec[cloud];
      if (method === cloud) {
        if (!block || block.allow.length === 0)
          ctx.addIssue({
            code: "custom",
            path: block ? [cloud, "allow"] : [],
            message: `a ${cloud} token needs ${cloud}.allow with at least one rule`,
          });
      } else if (block !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [cloud],
          message: `applies only to join_method ${cloud}, not ${method}; remove it`,
        });
      }
    }
  })
  .transform((spec) => {
    const join_method = joinMethodOf(spec);
    return join_method === "ec2"
      ? { ...spec, join_method, aws_iid_ttl: spec.aws_iid_ttl ?? DEFAULT_AWS_IID_TTL }
      : { ...spec, join_method };
  });

/** kind: token, version v2: the join rules for one join method. */
export const tokenDocument = z
  .object({
    kind: z.literal("token"),
    version: z.literal("v2", fieldError('token documents are version "v2"')),
    metadata,
    spec: tokenSpec,
  })
  .strict();

/** A token document as written by a user (before defaults). */
export type TokenInput = z.input<typeof tokenDocument>;
/** A validated token document with defaults applied. */
export type Token = z.output<typeof tokenDocument>;
