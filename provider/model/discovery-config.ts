import { z } from "zod";
import {
  absolutePath,
  awsOrganizationId,
  awsRoleArn,
  duration,
  gcpProjectId,
  installerName,
  metadata,
  nonEmptyList,
  proxyAddr,
  resourceName,
  tagMap,
  wildcardList,
  fieldError,
} from "./common";
import { awsRegion, azureRegion, gcpLocation } from "./regions";
import { JoinMethod } from "./token";
import { eventsSection } from "./events";

/** Clouds a discovery_config can match instances in. */
export const CLOUDS = ["aws", "gcp", "azure"] as const;
/** A cloud. */
export type Cloud = (typeof CLOUDS)[number];

/** Per-cloud defaults of a matcher's install block. */
export const INSTALL_DEFAULTS: Record<Cloud, { tokenName: string; method: JoinMethod; methods: JoinMethod[] }> = {
  aws: { tokenName: "aws-discovery-iam-token", method: "iam", methods: ["iam", "ec2", "token"] },
  gcp: { tokenName: "gcp-discovery-token", method: "gcp", methods: ["gcp", "token"] },
  azure: { tokenName: "azure-discovery-token", method: "azure", methods: ["azure", "token"] },
};

/** The SSM document used when a matcher names none: a stock AWS document, nothing to create. */
export const DEFAULT_SSM_DOCUMENT = "AWS-RunShellScript";
/** Where the agentless installer finds sshd's configuration unless told otherwise. */
export const DEFAULT_SSHD_CONFIG = "/etc/ssh/sshd_config";
/** Default discovery poll interval (Teleport's default). */
export const DEFAULT_POLL_INTERVAL = "5m";
/** How long a node of a terminated instance stays listed as stale before it is removed. */
export const DEFAULT_STALE_NODE_GRACE = "24h";
/**
 * How long an install claim holds before another runtime may take the instance over (following the command the
 * claim sent, if any): longer than an install and its join wait (10 + 2 minutes) take.
 */
export const DEFAULT_CLAIM_TIMEOUT = "15m";
const MATCH_ALL = { "*": "*" } as Record<string, string | string[]>;

function installSchema(cloud: Cloud) {
  const { tokenName, method, methods } = INSTALL_DEFAULTS[cloud];
  return z
    .object({
      join_params: z
        .object({
          token_name: resourceName.optional(),
          method: z
            .enum(
              methods as [JoinMethod, ...JoinMethod[]],
              fieldError(`must be one of ${methods.join(", ")} for ${cloud} matchers`),
            )
            .optional(),
        })
        .strict()
        .optional(),
      script_name: installerName.optional(),
      mode: z.enum(["agent", "agentless"], fieldError("must be agent or agentless")).optional(),
      install_teleport: z.boolean().optional(),
      agentless: z.boolean().optional(),
      sshd_config: absolutePath.optional(),
      proxy_addr: proxyAddr.optional(),
    })
    .strict()
    .superRefine((install, ctx) => {
      const teleportSaysAgentless = install.install_teleport === false || install.agentless === true;
      if (install.install_teleport === true && install.agentless === true)
        ctx.addIssue({
          code: "custom",
          path: ["agentless"],
          message: "contradicts install_teleport: true; keep one of them",
        });
      if (install.mode === "agent" && teleportSaysAgentless)
        ctx.addIssue({
          code: "custom",
          path: [install.agentless === true ? "agentless" : "install_teleport"],
          message: "contradicts mode: agent; use mode: agentless alone",
        });
    })
    .optional()
    .transform((install) => {
      const i = install ?? {};
      const mode: "agent" | "agentless" =
        i.mode ?? (i.install_teleport === false || i.agentless === true ? "agentless" : "agent");
      return {
        join_params: { token_name: i.join_params?.token_name ?? tokenName, method: i.join_params?.method ?? method },
        script_name: i.script_name ?? (mode === "agentless" ? "default-agentless-installer" : "default-installer"),
        mode,
        sshd_config: i.sshd_config ?? DEFAULT_SSHD_CONFIG,
        ...(i.proxy_addr !== undefined ? { proxy_addr: i.proxy_addr } : {}),
      };
    });
}

const ouId = z.string().regex(/^(\*|ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$/, {
  message: 'must be an organizational unit id such as ou-ab12-cd34ef56, a root id such as r-ab12, or "*"',
});

/** An AWS EC2 matcher. */
export const awsMatcher = z
  .object({
    types: nonEmptyList(z.enum(["ec2"], fieldError('must be "ec2"')), "type").optional(),
    regions: wildcardList(awsRegion, "region"),
    tags: tagMap.optional(),
    assume_role: z
      .object({
        role_arn: awsRoleArn.optional(),
        external_id: z.string().min(2).max(1224).optional(),
        role_name: z
          .string()
          .regex(/^[\w+=,.@-]{1,64}$/, { message: "must be an IAM role name (not an ARN) such as DiscoveryMember" })
          .optional(),
      })
      .strict()
      .optional(),
    assume_role_arn: awsRoleArn.optional(),
    external_id: z.string().min(2).max(1224).optional(),
    organization: z
      .object({
        organization_id: awsOrganizationId,
        organizational_units: z
          .object({ include: nonEmptyList(ouId, "organizational unit").optional(), exclude: z.array(ouId).optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    ssm: z
      .object({
        document_name: z
          .string()
          .regex(/^[a-zA-Z0-9_.-]{3,128}$/, { message: "must be an SSM document name: 3 to 128 of a-z A-Z 0-9 _ . -" }),
      })
      .strict()
      .optional(),
    install: installSchema("aws"),
  })
  .strict()
  .superRefine((m, ctx) => {
    const ar = m.assume_role ?? {};
    if (m.assume_role_arn !== undefined && ar.role_arn !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["assume_role_arn"],
        message: "set either assume_role.role_arn or assume_role_arn, not both",
      });
    if (m.external_id !== undefined && ar.external_id !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["external_id"],
        message: "set either assume_role.external_id or external_id, not both",
      });
    const roleArn = ar.role_arn ?? m.assume_role_arn;
    const externalId = ar.external_id ?? m.external_id;
    if (externalId !== undefined && roleArn === undefined && ar.role_name === undefined)
      ctx.addIssue({
        code: "custom",
        path: m.external_id !== undefined ? ["external_id"] : ["assume_role", "external_id"],
        message: "an external_id needs a role to assume; set assume_role.role_arn",
      });
    if (m.organization && ar.role_name === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["organization"],
        message: "needs assume_role.role_name: the role assumed in every member account",
      });
    if (m.organization && roleArn !== undefined)
      ctx.addIssue({
        code: "custom",
        path: m.assume_role_arn !== undefined ? ["assume_role_arn"] : ["assume_role", "role_arn"],
        message: "with organization, name the member-account role with assume_role.role_name instead of an ARN",
      });
    if (!m.organization && ar.role_name !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["assume_role", "role_name"],
        message: "applies only with organization; to assume one role use assume_role.role_arn",
      });
  })
  .transform((m) => {
    const roleArn = m.assume_role?.role_arn ?? m.assume_role_arn;
    const externalId = m.assume_role?.external_id ?? m.external_id;
    const roleName = m.assume_role?.role_name;
    const assumeRole =
      roleArn || roleName
        ? {
            ...(roleArn ? { role_arn: roleArn } : {}),
            ...(roleName ? { role_name: roleName } : {}),
            ...(externalId ? { external_id: externalId } : {}),
          }
        : undefined;
    return {
      types: m.types ?? ["ec2" as const],
      regions: m.regions as string[],
      tags: m.tags ?? MATCH_ALL,
      ...(assumeRole ? { assume_role: assumeRole } : {}),
      ...(m.organization
        ? {
            organization: {
              organization_id: m.organization.organization_id,
              organizational_units: {
                include: m.organization.organizational_units?.include ?? ["*"],
                exclude: m.organization.organizational_units?.exclude ?? [],
              },
            },
          }
        : {}),
      ssm: { document_name: m.ssm?.document_name ?? DEFAULT_SSM_DOCUMENT },
      install: m.install,
    };
  });

/** A GCP Compute Engine matcher. */
export const gcpMatcher = z
  .object({
    types: nonEmptyList(z.enum(["gce", "vm"], fieldError('must be "gce" (or "vm")')), "type").optional(),
    project_ids: wildcardList(gcpProjectId, "project id"),
    locations: wildcardList(gcpLocation, "location").optional(),
    labels: tagMap.optional(),
    tags: tagMap.optional(),
    service_accounts: nonEmptyList(
      z.string().email({ message: "must be a service account email" }),
      "service account",
    ).optional(),
    install: installSchema("gcp"),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.labels !== undefined && m.tags !== undefined)
      ctx.addIssue({ code: "custom", path: ["tags"], message: "tags is another name for labels; keep one of them" });
  })
  .transform((m) => ({
    types: ["gce" as const],
    project_ids: m.project_ids as string[],
    locations: (m.locations ?? ["*"]) as string[],
    labels: m.labels ?? m.tags ?? MATCH_ALL,
    ...(m.service_accounts ? { service_accounts: m.service_accounts } : {}),
    install: m.install,
  }));

/** An Azure VM matcher. */
export const azureMatcher = z
  .object({
    types: nonEmptyList(z.enum(["vm"], fieldError('must be "vm"')), "type").optional(),
    subscriptions: wildcardList(
      z.string().uuid({ message: "must be an Azure subscription id (a UUID)" }),
      "subscription",
    ),
    resource_groups: wildcardList(z.string().min(1).max(90), "resource group").optional(),
    regions: wildcardList(azureRegion, "region").optional(),
    tags: tagMap.optional(),
    install: installSchema("azure"),
  })
  .strict()
  .transform((m) => ({
    types: ["vm" as const],
    subscriptions: m.subscriptions as string[],
    resource_groups: (m.resource_groups ?? ["*"]) as string[],
    regions: (m.regions ?? ["*"]) as string[],
    tags: m.tags ?? MATCH_ALL,
    install: m.install,
  }));

const matchers = {
  aws: z.array(awsMatcher).optional(),
  gcp: z.array(gcpMatcher).optional(),
  azure: z.array(azureMatcher).optional(),
};

function requireAMatcher(spec: Partial<Record<Cloud, unknown[]>>, ctx: z.RefinementCtx) {
  if (!CLOUDS.some((c) => spec[c]?.length))
    ctx.addIssue({ code: "custom", message: "has no matchers; add at least one under aws, gcp or azure" });
}

const discoveryGroup = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
  message: "must be 1 to 63 of letters, digits . _ - starting with a letter or digit",
});

/** kind: discovery_config, version v1: matchers for one discovery group. */
export const discoveryConfigDocument = z
  .object({
    kind: z.literal("discovery_config"),
    version: z.literal("v1", fieldError('discovery_config documents are version "v1"')),
    metadata,
    spec: z
      .object({ discovery_group: discoveryGroup, ...matchers })
      .strict()
      .superRefine(requireAMatcher)
      .transform((s) => ({
        discovery_group: s.discovery_group,
        aws: s.aws ?? [],
        gcp: s.gcp ?? [],
        azure: s.azure ?? [],
      })),
    // The runtime maintains status; a document read back from `discovery get -o yaml` and applied again carries
    // one, so it is accepted and dropped rather than refused (SPEC §4: status in an applied document is ignored).
    status: z.unknown().optional(),
  })
  .strict()
  .transform(({ status: _ignored, ...doc }) => doc);

/** Teleport's `enabled: yes` style booleans. */
const TRUTHY: Record<string, boolean> = { yes: true, true: true, on: true, no: false, false: false, off: false };
const teleportBool = z.preprocess(
  (v) => (typeof v === "string" && v.toLowerCase() in TRUTHY ? TRUTHY[v.toLowerCase()] : v),
  z.boolean(fieldError("must be true or false (yes and no are accepted)")),
);

/** The `discovery_service` section of a teleport.yaml (or of the runtime config). */
export const discoveryServiceSection = z
  .object({
    enabled: teleportBool.optional(),
    discovery_group: discoveryGroup.optional(),
    poll_interval: duration.optional(),
    stale_node_grace: duration.optional(),
    events: eventsSection,
    claim_timeout: duration.optional(),
    ...matchers,
  })
  .strict()
  .superRefine((s, ctx) => {
    // With a discovery_group the runtime scans the stored discovery_configs of that group, so matchers are optional.
    if (s.enabled !== false && s.discovery_group === undefined) requireAMatcher(s, ctx);
  })
  .transform((s) => ({
    enabled: s.enabled ?? true,
    discovery_group: s.discovery_group ?? "default",
    /** Whether the group was named: only then does a runtime load stored discovery_configs (as in Teleport). */
    dynamic: s.discovery_group !== undefined,
    poll_interval: s.poll_interval ?? DEFAULT_POLL_INTERVAL,
    stale_node_grace: s.stale_node_grace ?? DEFAULT_STALE_NODE_GRACE,
    events: s.events,
    claim_timeout: s.claim_timeout ?? DEFAULT_CLAIM_TIMEOUT,
    aws: s.aws ?? [],
    gcp: s.gcp ?? [],
    azure: s.azure ?? [],
  }));

/** A discovery_config document as written by a user. */
export type DiscoveryConfigInput = z.input<typeof discoveryConfigDocument>;
/** A validated discovery_config document with defaults applied. */
export type DiscoveryConfig = z.output<typeof discoveryConfigDocument>;
/** A validated AWS matcher with defaults applied. */
export type AwsMatcher = z.output<typeof awsMatcher>;
/** A validated GCP matcher with defaults applied. */
export type GcpMatcher = z.output<typeof gcpMatcher>;
/** A validated Azure matcher with defaults applied. */
export type AzureMatcher = z.output<typeof azureMatcher>;
/** A validated discovery_service section. */
export type DiscoveryServiceSection = z.output<typeof discoveryServiceSection>;
