/**
 * Warnings about valid documents: what is accepted but worth a second look. Today, well-formed regions this
 * version does not know (clouds open regions after a release); `discovery validate` and `apply` print them and
 * go on, the runtime returns them with what it stored.
 */
import type { FieldPath, Problem } from "./common";
import type { Cloud, DiscoveryServiceSection } from "./discovery-config";
import type { Resource } from "./document";
import { checkAwsRegion, checkAzureRegion, checkGcpLocation, regionWarnings } from "./regions";

/** Warnings for the matchers of a discovery_config spec or a `discovery_service` section at `prefix`. */
export function matcherWarnings(m: Pick<DiscoveryServiceSection, Cloud>, prefix: FieldPath): Problem[] {
  return [
    ...m.aws.flatMap((a, i) => regionWarnings(a.regions, [...prefix, "aws", i, "regions"], checkAwsRegion)),
    ...m.gcp.flatMap((g, i) => regionWarnings(g.locations, [...prefix, "gcp", i, "locations"], checkGcpLocation)),
    ...m.azure.flatMap((a, i) => regionWarnings(a.regions, [...prefix, "azure", i, "regions"], checkAzureRegion)),
  ];
}

/** Warnings for a validated resource document, at paths into it. */
export function resourceWarnings(r: Resource): Problem[] {
  if (r.kind === "discovery_config") return matcherWarnings(r.spec, ["spec"]);
  if (r.kind !== "token") return [];
  return [
    ...(r.spec.allow ?? []).flatMap((a, i) =>
      regionWarnings(a.aws_regions, ["spec", "allow", i, "aws_regions"], checkAwsRegion),
    ),
    ...(r.spec.gcp?.allow ?? []).flatMap((g, i) =>
      regionWarnings(g.locations, ["spec", "gcp", "allow", i, "locations"], checkGcpLocation),
    ),
  ];
}
