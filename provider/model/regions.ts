/**
 * The cloud regions this version knows, and the check of a region a user wrote against them. A name the cloud
 * cannot have (a misspelt direction, AWS's `us-east-9` when us-east stops at 2) is refused with the name meant; a
 * well-formed name this list lacks is accepted with a warning, since clouds open regions after a release.
 */
import { z } from "zod";
import { didYouMean, FieldPath, Problem } from "./common";

/** AWS regions by partition (the AWS SDK's endpoint partitions; a unit test compares them). */
export const AWS_PARTITION_REGIONS: Readonly<Record<string, readonly string[]>> = {
  aws: [
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
    "me-west-1", "mx-central-1", "sa-east-1", "sa-west-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
  ],
  "aws-us-gov": ["us-gov-east-1", "us-gov-west-1"],
  "aws-cn": ["cn-north-1", "cn-northwest-1"],
  "aws-eusc": ["eusc-de-east-1"],
  "aws-iso": ["us-iso-east-1", "us-iso-west-1"],
  "aws-iso-b": ["us-isob-east-1", "us-isob-west-1"],
  "aws-iso-e": ["eu-isoe-west-1"],
  "aws-iso-f": ["us-isof-east-1", "us-isof-south-1"],
}; // prettier-ignore

/** Every AWS region this version knows. */
export const AWS_REGIONS: readonly string[] = Object.values(AWS_PARTITION_REGIONS).flat();

/** An AWS region name such as us-east-1, eu-central-1, us-gov-west-1 or eusc-de-east-1. */
export const AWS_REGION_RE = /^([a-z]{2}(-gov|-iso[a-z]?)?|eusc-[a-z]{2})-[a-z]+-\d{1,2}$/;

/** Google Cloud regions (zones are a region and a letter: us-central1-a). */
export const GCP_REGIONS: readonly string[] = [
  "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
  "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1",
  "australia-southeast2", "europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1",
  "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10",
  "europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1", "northamerica-northeast2",
  "northamerica-south1", "southamerica-east1", "southamerica-west1", "us-central1", "us-east1", "us-east4",
  "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
]; // prettier-ignore

/** A GCP region or zone as GCP names them: `<area>-<direction><number>`, and `-<letter>` for a zone. */
export const GCP_LOCATION_RE = /^([a-z]+)-([a-z]+)(\d{1,2})(-[a-z])?$/;

/** What the model accepts as a GCP location at all; names outside GCP_LOCATION_RE are accepted with a warning. */
const GCP_LOCATION_SHAPE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** Azure regions by their programmatic names (public cloud, US Government and China). */
export const AZURE_REGIONS: readonly string[] = [
  "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast", "austriaeast", "belgiumcentral",
  "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia", "centralus", "chilecentral",
  "eastasia", "eastus", "eastus2", "francecentral", "francesouth", "germanynorth", "germanywestcentral",
  "indonesiacentral", "israelcentral", "italynorth", "japaneast", "japanwest", "jioindiacentral", "jioindiawest",
  "koreacentral", "koreasouth", "malaysiawest", "mexicocentral", "newzealandnorth", "northcentralus", "northeurope",
  "norwayeast", "norwaywest", "polandcentral", "qatarcentral", "southafricanorth", "southafricawest",
  "southcentralus", "southeastasia", "southindia", "spaincentral", "swedencentral", "swedensouth",
  "switzerlandnorth", "switzerlandwest", "uaecentral", "uaenorth", "uksouth", "ukwest", "westcentralus",
  "westeurope", "westindia", "westus", "westus2", "westus3", "usgovarizona", "usgovtexas", "usgovvirginia",
  "usdodcentral", "usdodeast", "chinaeast", "chinaeast2", "chinaeast3", "chinanorth", "chinanorth2", "chinanorth3",
]; // prettier-ignore

/** What a region check found: nothing (known), a refusal, or a warning (well-formed but unknown). */
export interface RegionVerdict {
  error?: string;
  warning?: string;
}

const DIRECTIONS = ["north", "south", "east", "west", "central", "northeast", "northwest", "southeast", "southwest"];

/** Region numbers per family (`us-east` -> [1, 2]), for telling a typo from a region opened since. */
function familyNumbers(regions: readonly string[], split: (r: string) => [string, number] | undefined) {
  const out = new Map<string, number[]>();
  for (const r of regions) {
    const parts = split(r);
    if (parts) out.set(parts[0], [...(out.get(parts[0]) ?? []), parts[1]]);
  }
  return out;
}

const splitAws = (r: string): [string, number] | undefined => {
  const m = /^(.*)-(\d+)$/.exec(r);
  return m ? [m[1], Number(m[2])] : undefined;
};
const AWS_FAMILIES = familyNumbers(AWS_REGIONS, splitAws);

/** `; did you mean "X"?` with the closest known name, or nothing when none is close. */
function meant(name: string, known: readonly string[]): string {
  const best = didYouMean(name, known);
  return best ? `; did you mean "${best}"?` : "";
}

/** A well-formed region the list lacks: accepted, with a warning that says what to check. */
function unknownRegion(cloud: "AWS" | "GCP" | "Azure", name: string, known: readonly string[]): RegionVerdict {
  const best = didYouMean(name, known);
  const what = cloud === "GCP" ? `a GCP ${/-[a-z]$/.test(name) ? "zone" : "region"}` : `an ${cloud} region`;
  return {
    warning:
      `"${name}" is not ${what} this version knows; it is used as written in case ${cloud} opened it ` +
      `recently${best ? `: check it is not a typo of "${best}"` : ""}`,
  };
}

/**
 * Checks an AWS region name of the right shape (AWS_REGION_RE). AWS numbers the regions of a family (us-east,
 * ap-southeast) one after another, so a number past the next one is a typo, as is a direction AWS never uses.
 */
export function checkAwsRegion(name: string): RegionVerdict {
  if (AWS_REGIONS.includes(name)) return {};
  const m = /^(.*)-([a-z]+)-(\d+)$/.exec(name);
  if (!m) return {};
  const [, area, direction, digits] = m;
  if (!DIRECTIONS.includes(direction))
    return {
      error: `"${name}" is not an AWS region: "${direction}" is not a direction AWS names regions by${meant(name, AWS_REGIONS)}`,
    };
  const family = `${area}-${direction}`;
  const numbers = AWS_FAMILIES.get(family);
  if (digits.startsWith("0") || (numbers && Number(digits) > Math.max(...numbers) + 1)) {
    const [low, high] = numbers ? [Math.min(...numbers), Math.max(...numbers)] : [];
    const range = !numbers
      ? ""
      : low === high
        ? `${family} has region ${low} only`
        : `${family} regions are numbered ${low} to ${high}`;
    return {
      error: `"${name}" is not an AWS region${range ? `: ${range}` : ""}${meant(name, AWS_REGIONS)}`,
    };
  }
  return unknownRegion("AWS", name, AWS_REGIONS);
}

const GCP_AREAS = [...new Set(GCP_REGIONS.map((r) => r.split("-")[0]))];

/**
 * Checks a GCP region or zone: one named as GCP names them (GCP_LOCATION_RE) must use a direction and an area GCP
 * names regions by (a misspelt one is refused); an unknown number is only warned about, since GCP leaves gaps, as
 * is any other name.
 */
export function checkGcpLocation(name: string): RegionVerdict {
  const m = GCP_LOCATION_RE.exec(name);
  if (!m) return unknownRegion("GCP", name, GCP_REGIONS);
  const [, area, direction, , zone = ""] = m;
  const region = name.slice(0, name.length - zone.length);
  if (GCP_REGIONS.includes(region)) return {};
  const known = zone ? GCP_REGIONS.map((r) => r + zone) : GCP_REGIONS;
  if (!DIRECTIONS.includes(direction))
    return {
      error: `"${name}" is not a GCP ${zone ? "zone" : "region"}: "${direction}" is not a direction GCP names regions by${meant(name, known)}`,
    };
  if (!GCP_AREAS.includes(area) && area.length >= 4 && didYouMean(area, GCP_AREAS))
    return {
      error: `"${name}" is not a GCP ${zone ? "zone" : "region"}: "${area}" is not an area GCP names regions by${meant(name, known)}`,
    };
  return unknownRegion("GCP", name, known);
}

/**
 * Checks an Azure region name. Azure names have no numbering to tell a typo from a region opened since this
 * release (eastus3 may well come), so an unknown one is only warned about, with the closest known name.
 */
export function checkAzureRegion(name: string): RegionVerdict {
  return AZURE_REGIONS.includes(name) ? {} : unknownRegion("Azure", name, AZURE_REGIONS);
}

/** A string of `shape` that `check` does not refuse; the shape's message says what a name looks like. */
function regionName(shape: RegExp, shapeMessage: string, check: (name: string) => RegionVerdict) {
  return z
    .string()
    .regex(shape, { message: shapeMessage })
    .superRefine((name, ctx) => {
      const error = shape.test(name) ? check(name).error : undefined;
      if (error) ctx.addIssue({ code: "custom", message: error });
    });
}

/** An AWS region name such as us-east-1; a misspelt one is refused with the name meant. */
export const awsRegion = regionName(
  AWS_REGION_RE,
  "is not an AWS region name; use a name such as us-east-1",
  checkAwsRegion,
);

/** A GCP region or zone such as us-central1 or us-central1-a. */
export const gcpLocation = regionName(
  GCP_LOCATION_SHAPE,
  "is not a GCP region or zone such as us-central1 or us-central1-a",
  checkGcpLocation,
);

/** An Azure region such as eastus. */
export const azureRegion = regionName(/^[a-z][a-z0-9]+$/, "is not an Azure region such as eastus", checkAzureRegion);

/** A warning for each name of `names` (at `path`) that `check` warns about; `*` and refused names have none. */
export function regionWarnings(
  names: readonly string[] | undefined,
  path: FieldPath,
  check: (name: string) => RegionVerdict,
): Problem[] {
  const out: Problem[] = [];
  (names ?? []).forEach((name, i) => {
    const warning = name === "*" ? undefined : check(name).warning;
    if (warning) out.push({ path: [...path, i], message: warning });
  });
  return out;
}
