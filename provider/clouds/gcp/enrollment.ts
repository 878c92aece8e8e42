/** GCP enrollment: registers the GCE fetcher and the SSH installer with the cloud-agnostic enrollment pass. */
import { registerCloud } from "../../enroll/clouds";
import type { GcpMatcher } from "../../model";
import { fetchGce } from "./fetch";
import { installViaGceSsh } from "./install-ssh";

/** Registers `gcp` for enrollment; idempotent, so whoever wires clouds may call it more than once. */
export function registerGcpEnrollment(): void {
  registerCloud<GcpMatcher>("gcp", {
    fetch: (matcher, ctx) => fetchGce(matcher, { onScope: ctx.onScope }),
    install: (candidates, matcher, ctx) => installViaGceSsh(candidates, { matcher, endpoint: ctx.runtime }),
  });
}
