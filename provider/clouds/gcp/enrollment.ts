/** GCP enrollment: registers the GCE fetcher and the SSH installer with the cloud-agnostic enrollment pass. */
import { registerCloud } from "../../enroll/clouds";
import type { GcpMatcher } from "../../model";
import { fetchGce } from "./fetch";
import { GceInstallRequest, installViaGceSsh } from "./install-ssh";

/** Install settings a deployment may choose (no matcher field carries them): the SSH login, external IPs. */
export type GcpEnrollmentOptions = Pick<GceInstallRequest, "user" | "useExternalIp">;

/** Registers `gcp` for enrollment; idempotent, so whoever wires clouds may call it more than once. */
export function registerGcpEnrollment(opts: GcpEnrollmentOptions = {}): void {
  registerCloud<GcpMatcher>("gcp", {
    fetch: (matcher, ctx) => fetchGce(matcher, { onScope: ctx.onScope }),
    install: (candidates, matcher, ctx) => installViaGceSsh(candidates, { ...opts, matcher, endpoint: ctx.runtime }),
  });
}
