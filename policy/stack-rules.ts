/**
 * The stack policies of the pulumi-discovery policy pack: rules that need to see several resources at once
 * (which token a matcher installs with; which GCP projects turned OS Login on).
 */
import type { PolicyResource, ReportViolation, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import { asArray, asObject, asString, matchersOf, show, tokenOf, TYPES } from "./resources";

/** `ProvisionToken "name"`: how a message points at a resource without printing secret values. */
function label(r: { type: string; name: string }): string {
  return `${r.type.slice(r.type.lastIndexOf(":") + 1)} ${show(r.name)}`;
}

/** Tokens used for discovery (role Discovery, or named by a matcher's install) do not use joinMethod token. */
export const discoveryTokenJoinMethod: StackValidationPolicy = {
  name: "discovery-token-join-method",
  description:
    "A token that discovery installs with (named by a matcher's install.joinParams.tokenName, or the default name) or that grants the Discovery role does not use joinMethod token: its name would be a shared secret sent to every discovered VM.",
  enforcementLevel: "mandatory",
  validateStack: (args: StackValidationArgs, report: ReportViolation) => {
    const users = new Map<string, string[]>();
    for (const r of args.resources)
      for (const m of matchersOf(r))
        users.set(m.tokenName, [...(users.get(m.tokenName) ?? []), `${label(r)} ${m.path}`]);
    for (const r of args.resources) {
      const token = tokenOf(r);
      if (!token || token.joinMethod !== "token") continue;
      const usedBy = typeof token.name === "string" ? (users.get(token.name) ?? []) : [];
      const discoveryRole = token.roles.includes("Discovery");
      if (usedBy.length === 0 && !discoveryRole) continue;
      const why = [
        ...(usedBy.length > 0
          ? [`the matchers ${usedBy.join(", ")} install with it (install.joinParams.tokenName)`]
          : []),
        ...(discoveryRole ? ["it grants the Discovery role"] : []),
      ].join(" and ");
      // The name of a token-method token is its secret: point at the resource, never at the name.
      report(
        `${label(r)} is a discovery token (${why}), but its ${token.at}joinMethod is token: its name would be a ` +
          `shared secret handed to every discovered VM. Set ${token.at}joinMethod to iam or ec2 (AWS), gcp or ` +
          `azure, with allow rules naming the accounts or projects discovery enrolls.`,
        r.urn,
      );
    }
  },
};

/** Defaults of gcp-os-login-projects' config. */
const OS_LOGIN_DEFAULTS: { osLoginProjects: string[] } = { osLoginProjects: [] };

/** Whether a metadata value turns OS Login on ("TRUE", "true", "1"). */
function isOn(value: unknown): boolean {
  return typeof value === "string" && /^(true|1)$/i.test(value.trim());
}

/** The project a GCP resource applies to: its own `project`, else its provider's. */
function projectOf(r: PolicyResource): string | undefined {
  return asString(r.props.project) ?? asString(asObject(r.provider?.props)?.project);
}

/** Projects the stack itself turns OS Login on in (project metadata `enable-oslogin`), with the resource that does. */
function osLoginInStack(resources: PolicyResource[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of resources) {
    const on =
      r.type === TYPES.gcpProjectMetadataItem
        ? r.props.key === "enable-oslogin" && isOn(r.props.value)
        : r.type === TYPES.gcpProjectMetadata && isOn(asObject(r.props.metadata)?.["enable-oslogin"]);
    const project = on ? projectOf(r) : undefined;
    if (project) out.set(project, `enable-oslogin is on in ${label(r)}`);
  }
  return out;
}

/** A warning for GCP matchers on projects with OS Login, where the metadata SSH key the installer uses is refused. */
export const gcpOsLoginProjects: StackValidationPolicy = {
  name: "gcp-os-login-projects",
  description:
    "Warns when a GCP matcher targets a project with OS Login (listed in osLoginProjects, or turned on by project metadata in the stack): those VMs refuse the SSH key discovery puts in instance metadata, so they are never enrolled.",
  enforcementLevel: "advisory",
  configSchema: {
    properties: {
      osLoginProjects: {
        type: "array",
        items: { type: "string" },
        default: OS_LOGIN_DEFAULTS.osLoginProjects,
        description: "GCP project ids where OS Login is enabled.",
      },
    },
  },
  validateStack: (args: StackValidationArgs, report: ReportViolation) => {
    const configured = asArray(args.getConfig<Partial<typeof OS_LOGIN_DEFAULTS>>()?.osLoginProjects);
    const osLogin = osLoginInStack(args.resources);
    for (const p of configured) if (typeof p === "string") osLogin.set(p, "listed in this policy's osLoginProjects");
    if (osLogin.size === 0) return;
    const fix =
      "VMs with OS Login refuse the SSH key discovery adds to instance metadata, so the installer never runs there. " +
      "Set enable-oslogin to FALSE in the metadata of the VMs to enroll, or take the project out of the matcher.";
    for (const r of args.resources) {
      for (const m of matchersOf(r)) {
        if (m.cloud !== "gcp") continue;
        const projects = asArray(m.matcher.projectIds).filter((p): p is string => typeof p === "string");
        const hits = projects.includes("*") ? [...osLogin.keys()] : projects.filter((p) => osLogin.has(p));
        for (const project of hits)
          report(
            `${label(r)} ${m.path}.projectIds ${projects.includes("*") ? "matches every project, including" : "targets"} ` +
              `${show(project)}, where OS Login is enabled (${osLogin.get(project)}). ${fix}`,
            r.urn,
          );
      }
    }
  },
};

/** The stack policies, in the order the pack lists them. */
export const stackPolicies: StackValidationPolicy[] = [discoveryTokenJoinMethod, gcpOsLoginProjects];
