/**
 * GCP as one CloudPlugin: the gcp join method (identity token from the metadata server, checked live with
 * instances.get), the GCE fetcher and the SSH installer (an ephemeral metadata key).
 */
import type { GcpMatcher } from "../../model";
import type { CloudJoinMethod, CloudPlugin } from "../plugin";
import { attestGcp, checkGcpJoinRequest, gcpAllowProblem } from "./attest-gcp";
import { computeInstances, GcpInstances } from "./instances";
import { existingGceInstances } from "./existing";
import { fetchGce } from "./fetch";
import { GCE_FAILURE_CLASSES, installViaGceSsh } from "./install-ssh";
import { JwksCache, JwksCacheOptions } from "../jwks";
import { metadataIdentityToken } from "./metadata";

/** Stand-ins for the network, for unit tests: the Compute call and the JWKS fetch. */
export interface GcpJoinSeams {
  instances?: GcpInstances;
  jwks?: JwksCacheOptions;
}

/**
 * The gcp join method. One key cache per JWKS URL (a runtime has one; tests start several), and one Compute client,
 * made on first use and re-made when `GOOGLE_COMPUTE_ENDPOINT` changes (tests point it at fakes).
 */
export function gcpJoinMethod(seams: GcpJoinSeams = {}): CloudJoinMethod {
  const caches = new Map<string, JwksCache>();
  let instances: { endpoint: string | undefined; api: GcpInstances & { close(): Promise<void> } } | undefined;
  const liveInstances = (): GcpInstances => {
    if (seams.instances) return seams.instances;
    const endpoint = process.env.GOOGLE_COMPUTE_ENDPOINT;
    const current = instances;
    if (current && current.endpoint === endpoint) return current.api;
    void current?.api.close();
    const api = computeInstances();
    instances = { endpoint, api };
    return api;
  };
  return {
    needsChallenge: false,
    allowProblem: gcpAllowProblem,
    validate: (body) => checkGcpJoinRequest(body),
    // The token's audience is the cluster name, which the runtime states; a token for another audience is refused.
    nodeFields: async (ctx) => {
      if (!ctx.clusterName) throw new Error("a gcp join needs the runtime's cluster name");
      return { id_token: await metadataIdentityToken(await ctx.clusterName()) };
    },
    attest: async (body, ctx) => {
      const url = ctx.settings.gcp.jwksUrl;
      let jwks = caches.get(url);
      if (!jwks) caches.set(url, (jwks = new JwksCache(url, seams.jwks)));
      const a = await attestGcp(body.id_token as string, {
        token: ctx.token,
        jwks,
        issuer: ctx.settings.gcp.issuer,
        clusterName: ctx.clusterName,
        now: ctx.now,
        instances: liveInstances(),
      });
      return { nodeName: a.nodeName, labels: a.labels, principals: a.principals };
    },
  };
}

/** `<project>-<zone>-<instance-id>`: the name a GCE VM joins as (RFD 113). */
export const gceNodeName = (project: string, instanceId: string, zone?: string): string =>
  `${project}-${zone ?? ""}-${instanceId}`;

/**
 * The login the ephemeral key is for: `discovery` (the guest agent creates it with passwordless sudo), unless
 * `DISCOVERY_GCP_SSH_USER` names another, e.g. where an image reserves that name or the sandbox, whose sshd can
 * only log in users the host has.
 */
const sshUser = (env: NodeJS.ProcessEnv = process.env) => env.DISCOVERY_GCP_SSH_USER || undefined;

/** GCP: enrollment over SSH with an ephemeral metadata key, the gcp join, and GCE node identity. */
export const GCP_PLUGIN: CloudPlugin<GcpMatcher> = {
  enrollment: {
    fetch: (matcher, ctx) => fetchGce(matcher, { onScope: ctx.onScope, acquireScope: ctx.acquireScope }),
    install: (candidates, matcher, ctx) =>
      installViaGceSsh(candidates, { matcher, endpoint: ctx.runtime, user: sshUser() }),
    existing: (_matcher, query) => existingGceInstances(query),
    failureClasses: GCE_FAILURE_CLASSES,
  },
  joinMethods: { gcp: gcpJoinMethod() },
  identity: { accountLabel: "discovery/project-id", regionLabel: "discovery/zone", nodeName: gceNodeName },
};
