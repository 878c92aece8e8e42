/** GCP: registers the gcp join method (identity token from the metadata server, checked live with instances.get). */
import { registerJoinMethod } from "../../join/methods";
import { attestGcp, checkGcpJoinRequest } from "./attest-gcp";
import { computeInstances, GcpInstances } from "./instances";
import { JwksCache, JwksCacheOptions } from "./jwks";

/** Stand-ins for the network, for unit tests: the Compute call and the JWKS fetch. */
export interface GcpJoinSeams {
  instances?: GcpInstances;
  jwks?: JwksCacheOptions;
}

/**
 * Registers the gcp join method. One key cache per JWKS URL (a runtime has one; tests start several), and one
 * Compute client, made on first use and re-made when `GOOGLE_COMPUTE_ENDPOINT` changes (tests point it at fakes).
 */
export function registerGcpJoin(seams: GcpJoinSeams = {}): void {
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
  registerJoinMethod("gcp", {
    needsChallenge: false,
    validate: (body) => checkGcpJoinRequest(body),
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
  });
}

registerGcpJoin();
