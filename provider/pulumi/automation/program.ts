import * as pulumi from "@pulumi/pulumi";
import { DiscoveryConfig, DiscoveryConfigArgs } from "../../../sdk/discovery-config";
import { Enrollment } from "../../../sdk/enrollment";
import { Installer, InstallerArgs } from "../../../sdk/installer";
import { ProvisionToken, ProvisionTokenArgs } from "../../../sdk/provision-token";
import { camelize } from "../../model";
import { Declaration, isSecretToken, sdkArgsOf } from "./documents";

/** What the inline program declares besides the documents' resources. */
export interface ProgramOptions {
  /** The runtime's URL and admin token; absent fields fall back to stack config discovery:*, then DISCOVERY_*. */
  server?: string;
  /** The runtime's admin token (kept secret in the state). */
  adminToken?: string;
  /** PEM of the CA (or self-signed certificate) to trust for the runtime's TLS. */
  caCert?: string;
  /** Also declare an Enrollment per discovery_config: every update runs an enrollment pass over its matchers. */
  enroll?: boolean;
  /** How long an installed instance may take to join, for the Enrollments; default 120. */
  joinTimeoutSeconds?: number;
  /** Take over documents the runtime holds already instead of refusing them (the resources' `adopt`). */
  adopt?: boolean;
}

/** The name of the Enrollment of a discovery_config: `enrollment/<config name>`. */
export function enrollmentName(configName: string): string {
  return `enrollment/${configName}`;
}

/**
 * The inline Pulumi program of a set of documents: a ProvisionToken, Installer or DiscoveryConfig per document,
 * named `kind/name`, and with `enroll` an Enrollment per discovery_config that runs after every token and installer
 * exists. Its outputs: `resources` (kind, name, id; a secret token's name reads "(secret)") and `enrollments`
 * (per discovery_config: name, enrolled, failed, instances).
 */
export function inlineProgram(
  declarations: Declaration[],
  opts: ProgramOptions,
): () => Promise<Record<string, unknown>> {
  return async () => {
    const connection = {
      ...(opts.server ? { server: opts.server } : {}),
      ...(opts.adminToken ? { adminToken: opts.adminToken } : {}),
      ...(opts.caCert ? { caCert: opts.caCert } : {}),
    };
    const prerequisites: pulumi.Resource[] = [];
    const resources: { kind: string; name: string; id: pulumi.Output<string> }[] = [];
    const configs: { name: string; resource: DiscoveryConfig; spec: Record<string, unknown> }[] = [];
    for (const d of declarations) {
      const args = { ...sdkArgsOf(d.resource), ...connection, ...(opts.adopt ? { adopt: true } : {}) };
      const r = d.resource;
      let created: pulumi.CustomResource;
      if (r.kind === "token") {
        created = new ProvisionToken(d.resourceName, args as unknown as ProvisionTokenArgs);
        prerequisites.push(created);
      } else if (r.kind === "installer") {
        created = new Installer(d.resourceName, args as unknown as InstallerArgs);
        prerequisites.push(created);
      } else {
        const config = new DiscoveryConfig(d.resourceName, args as unknown as DiscoveryConfigArgs);
        configs.push({ name: r.metadata.name, resource: config, spec: camelize(r.spec) as Record<string, unknown> });
        created = config;
      }
      resources.push({ kind: r.kind, name: isSecretToken(r) ? "(secret)" : r.metadata.name, id: created.id });
    }
    const enrollments: Record<string, unknown>[] = [];
    if (opts.enroll)
      for (const c of configs) {
        const enrollment = new Enrollment(
          enrollmentName(c.name),
          {
            aws: c.spec.aws as never,
            gcp: c.spec.gcp as never,
            azure: c.spec.azure as never,
            ...connection,
            ...(opts.joinTimeoutSeconds !== undefined ? { joinTimeoutSeconds: opts.joinTimeoutSeconds } : {}),
          },
          { dependsOn: [...prerequisites, c.resource] },
        );
        enrollments.push({
          name: c.name,
          enrolled: enrollment.enrolled,
          failed: enrollment.failed,
          instances: enrollment.instances,
        });
      }
    return { resources, enrollments };
  };
}
