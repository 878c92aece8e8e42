/**
 * How the policies read the resources they check: the discovery resources' inputs (dynamic resources, the
 * ResourceDocument and the DiscoveryService component), normalized to camelCase with the path each value came
 * from, so a violation can name the property the user wrote.
 */
import { parse } from "yaml";
import { camelize, CLOUDS, Cloud, INSTALL_DEFAULTS, JoinMethod, joinMethodOf } from "../provider/model";

/** The type prefix of the package's dynamic resources (SPEC §5). */
export const DYNAMIC_PREFIX = "pulumi-nodejs:dynamic/discovery:";

/** Resource types the policies recognise. */
export const TYPES = {
  provisionToken: `${DYNAMIC_PREFIX}ProvisionToken`,
  installer: `${DYNAMIC_PREFIX}Installer`,
  discoveryConfig: `${DYNAMIC_PREFIX}DiscoveryConfig`,
  enrollment: `${DYNAMIC_PREFIX}Enrollment`,
  ssmInstallerDocument: `${DYNAMIC_PREFIX}SsmInstallerDocument`,
  resourceDocument: `${DYNAMIC_PREFIX}ResourceDocument`,
  discoveryService: "discovery:index:DiscoveryService",
  awsIamPolicy: "aws:iam/policy:Policy",
  awsIamRolePolicy: "aws:iam/rolePolicy:RolePolicy",
  awsIamUserPolicy: "aws:iam/userPolicy:UserPolicy",
  awsIamGroupPolicy: "aws:iam/groupPolicy:GroupPolicy",
  awsIamRole: "aws:iam/role:Role",
  gcpProjectMetadata: "gcp:compute/projectMetadata:ProjectMetadata",
  gcpProjectMetadataItem: "gcp:compute/projectMetadataItem:ProjectMetadataItem",
} as const;

/** Resources that talk to a runtime through their `server` input. */
export const RUNTIME_BACKED_TYPES: readonly string[] = [
  TYPES.provisionToken,
  TYPES.installer,
  TYPES.discoveryConfig,
  TYPES.enrollment,
];

/** A plain object, or undefined. */
export type Obj = Record<string, unknown>;

/** `value` when it is a plain object (not an array), else undefined. */
export function asObject(value: unknown): Obj | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Obj) : undefined;
}

/** `value` when it is an array, else an empty array. */
export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** `value` when it is a string, else undefined. */
export function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The inputs of a resource, as a policy sees them. */
export interface ResourceLike {
  type: string;
  props: Obj;
}

/** A token's spec fields in camelCase, and where they sit in the resource's inputs (`` or `spec.`). */
export interface TokenView {
  /** metadata.name: the shared secret itself for a `token` token, so never put it in a message. */
  name: unknown;
  roles: string[];
  joinMethod: JoinMethod;
  awsIidTtl?: unknown;
  allow: unknown[];
  hasAllow: boolean;
  gcpAllow: unknown[];
  azureAllow: unknown[];
  /** Prefix of every property path: "" for ProvisionToken, "spec." for a ResourceDocument. */
  at: string;
}

function tokenView(name: unknown, spec: Obj, at: string): TokenView {
  const gcp = asObject(spec.gcp);
  const azure = asObject(spec.azure);
  const method = joinMethodOf({
    join_method: asString(spec.joinMethod) as JoinMethod | undefined,
    allow: Array.isArray(spec.allow) ? spec.allow : undefined,
    gcp: gcp ?? undefined,
    azure: azure ?? undefined,
  });
  return {
    name,
    roles: asArray(spec.roles).filter((r): r is string => typeof r === "string"),
    joinMethod: method,
    awsIidTtl: spec.awsIidTtl,
    allow: asArray(spec.allow),
    hasAllow: Array.isArray(spec.allow),
    gcpAllow: asArray(gcp?.allow),
    azureAllow: asArray(azure?.allow),
    at,
  };
}

/** The token a ProvisionToken or a `kind: token` ResourceDocument declares; undefined for anything else. */
export function tokenOf(r: ResourceLike): TokenView | undefined {
  if (r.type === TYPES.provisionToken) {
    const { roles, joinMethod, awsIidTtl, allow, gcp, azure } = r.props;
    return tokenView(r.props.name, camelize({ roles, joinMethod, awsIidTtl, allow, gcp, azure }) as Obj, "");
  }
  if (r.type === TYPES.resourceDocument && r.props.kind === "token")
    return tokenView(r.props.name, (camelize(asObject(r.props.spec) ?? {}) as Obj) ?? {}, "spec.");
  return undefined;
}

/** One matcher of a discovery config or enrollment, in camelCase, with its property path. */
export interface MatcherView {
  cloud: Cloud;
  matcher: Obj;
  /** Where it is: `aws[0]` (DiscoveryConfig, Enrollment) or `spec.aws[0]` (ResourceDocument). */
  path: string;
  /** install.joinParams.tokenName, or the cloud's default. */
  tokenName: string;
  /** install.joinParams.method, or the cloud's default. */
  method: string;
  /** Whether install.joinParams.method was written (not the default). */
  methodGiven: boolean;
}

function matcherViews(source: Obj, at: string): MatcherView[] {
  const out: MatcherView[] = [];
  for (const cloud of CLOUDS) {
    asArray(source[cloud]).forEach((raw, i) => {
      const matcher = asObject(camelize(raw));
      if (!matcher) return;
      const joinParams = asObject(asObject(matcher.install)?.joinParams);
      const method = asString(joinParams?.method);
      out.push({
        cloud,
        matcher,
        path: `${at}${cloud}[${i}]`,
        tokenName: asString(joinParams?.tokenName) ?? INSTALL_DEFAULTS[cloud].tokenName,
        method: method ?? INSTALL_DEFAULTS[cloud].method,
        methodGiven: method !== undefined,
      });
    });
  }
  return out;
}

/**
 * A DiscoveryService's runtime config as written: its `config` object, or its YAML text parsed (keys as the user
 * wrote them); undefined for other resources, or when there is none or the YAML does not parse.
 */
export function serviceConfigOf(r: ResourceLike): Obj | undefined {
  if (r.type !== TYPES.discoveryService) return undefined;
  const config = r.props.config;
  if (typeof config !== "string") return asObject(config);
  try {
    return asObject(parse(config));
  } catch {
    return undefined; // the component itself refuses YAML it cannot read
  }
}

/**
 * The matchers of a DiscoveryConfig, an Enrollment, a `kind: discovery_config` ResourceDocument, or the
 * discoveryService section of a DiscoveryService's runtime config.
 */
export function matchersOf(r: ResourceLike): MatcherView[] {
  if (r.type === TYPES.discoveryConfig || r.type === TYPES.enrollment) return matcherViews(r.props, "");
  if (r.type === TYPES.resourceDocument && r.props.kind === "discovery_config")
    return matcherViews(asObject(r.props.spec) ?? {}, "spec.");
  const section = asObject(camelize(serviceConfigOf(r) ?? {}))?.discoveryService;
  if (section) return matcherViews(asObject(section) ?? {}, "config.discoveryService.");
  return [];
}

/** Quotes a value for a message. */
export function show(value: unknown): string {
  return JSON.stringify(value);
}
